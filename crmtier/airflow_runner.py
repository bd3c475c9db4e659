"""Run the DAG for one or more as-of dates in one process (`python -m crmtier.airflow_runner D1 [D2 ...]`).

Each date is a real Airflow DagRun (`dag.test()`: the same code path as `airflow dags test`,
recorded in the metadata DB), run in date order. One process pays Airflow's start-up, and the
imports of dbt and GX, once for a whole backfill instead of once per date. A backfill stops at
the first failed date: history, transitions and alert cooldowns of later dates build on it.
"""
from __future__ import annotations

import os
import sys
import time


def run_dates(dates: list[str]) -> int:
    import pendulum
    from airflow.dag_processing.dagbag import DagBag

    from crmtier.airflow_setup import EMBEDDED_ENV
    from crmtier.paths import DAGS_DIR

    os.environ[EMBEDDED_ENV] = "1"  # this process orders the dates (crmtier.airflow_setup.runs_in_scheduler)
    bag = DagBag(dag_folder=str(DAGS_DIR))
    if bag.import_errors:
        print(f"[crmtier] DAG import errors: {bag.import_errors}", flush=True)
        return 2
    dag = bag.dags["crm_pipeline"]
    from crmtier.airflow_setup import ensure_pool

    ensure_pool()  # the DAG's tasks run in the one-slot warehouse pool
    for as_of in dates:
        started = time.monotonic()
        print(f"[crmtier] === as of {as_of}: DagRun starting", flush=True)
        run = dag.test(logical_date=pendulum.parse(as_of, tz="UTC"))
        state = str(getattr(run, "state", "unknown"))
        print(f"[crmtier] === as of {as_of}: DagRun {state} in {time.monotonic() - started:.1f}s", flush=True)
        if "success" not in state:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_dates(sys.argv[1:]))
