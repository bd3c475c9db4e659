"""Time one dbt model in process on an existing home: `python docs/bench_model.py <model> <as-of>`.

CRMTIER_HOME names the home (e.g. var/bench/home-1000000 after `make bench`); to time another version
of the code, run it from a clone with that clone on PYTHONPATH. Prints the wall time of the dbt
command (start-up included), dbt's result line and the process's peak RSS.
"""
from __future__ import annotations

import os
import resource
import sys
import time

from crmtier.dbt_runner import run_dbt


def main(model: str, as_of: str) -> None:
    started = time.monotonic()
    output = run_dbt(["run", "--select", model], as_of)
    done = [line for line in output.splitlines() if "Done. PASS=" in line]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print(f"{model} as of {as_of}: {time.monotonic() - started:.1f}s; {done[-1] if done else output[-300:]}; "
          f"peak RSS {peak:.2f} GiB", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    os._exit(0)  # no interpreter teardown (seconds with dbt loaded)
