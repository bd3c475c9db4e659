"""Where one DagRun's time goes, for dates run one by one in an existing home (figures for docs/benchmarks.md).

    python docs/bench_fixed_cost.py <CRMTIER_HOME> <YYYY-MM-DD> [<YYYY-MM-DD> ...]

Each date is a real `crmtier run` (crmtier.cli.run_dag: a real DagRun); after it, the breakdown that
`make bench` prints for its no-new-files run (crmtier.bench.fixed_cost), with the 1-minute load.
"""
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path


def main(home: Path, dates: list[str]) -> int:
    os.environ["CRMTIER_HOME"] = str(home)
    from crmtier import bench
    from crmtier.cli import run_dag

    for as_of in dates:
        started, clock = datetime.now(UTC), time.monotonic()
        code = run_dag(as_of, home / "landing", quiet=True)
        print(f"{as_of}: exit {code}, {time.monotonic() - clock:.1f}s, load {bench.loadavg()}", flush=True)
        for name, seconds in bench.fixed_cost(home, as_of, started):
            print(f"  {name:70s} {seconds:6.1f}s")
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))
