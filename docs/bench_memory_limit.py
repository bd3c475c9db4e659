"""W10 cold DagRun with a given DuckDB memory limit, in a fresh home (the bench's own functions):
`python docs/bench_memory_limit.py 8GB` after `make bench` generated var/bench/landing-1000000.
Prints the run's line (time, peak RSS, same counts as the hand-written script) and its stages."""
import os
import shutil
import sys
from pathlib import Path

os.environ["CRMTIER_DUCKDB_MEMORY_LIMIT"] = sys.argv[1]

from crmtier.bench import pipeline_run, run_landing  # noqa: E402  (reads the limit from the environment)
from crmtier.paths import REPO_ROOT  # noqa: E402

home = Path(os.environ.get("CRMTIER_HOME", REPO_ROOT / "var")) / f"bench-limit-{sys.argv[1]}"
shutil.rmtree(home, ignore_errors=True)
landing = run_landing(home, REPO_ROOT / "var" / "bench" / "landing-1000000")
measured = pipeline_run(f"W10 cold, memory limit {sys.argv[1]}", home, landing, "2026-11-01")
print(measured.stages, flush=True)
os._exit(0)  # no interpreter teardown
