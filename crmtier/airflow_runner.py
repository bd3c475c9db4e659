"""Run the DAG for one or more as-of dates in one process (`python -m crmtier.airflow_runner D1 [D2 ...]`).

Each date is a real Airflow DagRun (`dag.test()`: the same code path as `airflow dags test`,
recorded in the metadata DB), run in date order. One process pays Airflow's start-up, and the
imports of dbt and GX, once for a whole backfill instead of once per date. A backfill stops at
the first failed date: history, transitions and alert cooldowns of later dates build on it.

A DagRun's own state is not trusted alone: Airflow ends a run "success" when it created no task
(a logical date before the DAG's start_date) or when tasks were skipped. After each DagRun the
runner checks that every task of the DAG ran and succeeded and that the published snapshot is
the one this run wrote; otherwise the run fails with one sentence saying what did not happen.
"""
from __future__ import annotations

import os
import sys
import time

from crmtier.duckdb_config import duckdb_config

VERDICT = "[crmtier] RUN FAILED"  # the CLI shows lines starting with this as the reason of a failure


def task_states(dag_id: str, run_id: str) -> dict[str, str | None]:
    """State of every task instance of one DagRun, from the metadata DB."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(TaskInstance.task_id, TaskInstance.state)
                               .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)).all()
    return {task_id: (str(state.value if hasattr(state, "value") else state) if state else None)
            for task_id, state in rows}


def unfinished_work(task_ids: list[str], states: dict[str, str | None], as_of: str, dag_start: str) -> str:
    """One sentence on what the DagRun did not do, or "" when every task ran and succeeded."""
    if not any(states.get(t) for t in task_ids):
        why = f" ({as_of} is before the DAG's start_date {dag_start})" if as_of < dag_start else ""
        return f"the DagRun as of {as_of} ran no task{why}; nothing was ingested or published."
    not_done = {t: states.get(t) or ("no state" if t in states else "missing") for t in task_ids
                if states.get(t) != "success"}
    if not_done:
        listed = ", ".join(f"{t}={s}" for t, s in not_done.items())
        return f"the DagRun as of {as_of} did not run every task to success ({listed})."
    return ""


def published_by_other_run(snapshot_path, as_of: str, run_id: str) -> str:
    """One sentence if the published snapshot is not the one this run wrote, else ""."""
    from pathlib import Path

    import duckdb

    if not Path(snapshot_path).exists():
        return f"the DagRun as of {as_of} published nothing: {snapshot_path} does not exist."
    con = duckdb.connect(str(snapshot_path), read_only=True, config=duckdb_config())
    try:
        published_as_of, published_run, republished_for = con.execute(
            "select as_of_date::varchar, run_id, history_republished_for::varchar from _snapshot").fetchone()
    finally:
        con.close()
    # an older date than the snapshot's republishes history only (crmtier.delivery.publish): that is this run's work
    if published_run != run_id or as_of not in (published_as_of, republished_for):
        return (f"the published snapshot is as of {published_as_of} (run {published_run}), not this run's "
                f"({as_of}, run {run_id}): the DagRun did not publish.")
    return ""


def serve_only_the_sdk_api_version() -> str:
    """Build the in-process task execution API for the one version this process's task SDK speaks.

    `dag.test()` serves Airflow's task execution API in process, and Cadwyn builds the routes of every
    dated version of it on the first request (9 versions in Airflow 3.3): ~4 s of each runner process,
    most of the first task's start-up. The in-process client sends one version, the SDK's `API_VERSION`,
    whose routes are generated from the head version alone, so they are the same in a bundle that keeps
    only that version, the one before it (whose changes restore the routes head marks as existing only in
    older versions, which Cadwyn insists on) and an empty oldest one. Returns what was done, for the log;
    with another Airflow, whose bundle does not start with the SDK's version, nothing is changed.
    """
    from airflow.api_fastapi.execution_api import versions
    from airflow.sdk.api.client import API_VERSION
    from cadwyn import HeadVersion, Version, VersionBundle

    full = versions.bundle
    served = [version.value for version in full.versions]
    if len(served) < 4 or served[0] != API_VERSION or full.head_version.changes:
        return f"execution API: every version served ({', '.join(served)})"
    for version in full.versions:  # a version change binds to one bundle: release them for the new one
        for change in version.changes:
            change._bound_version_bundle = None  # noqa: SLF001 - Cadwyn has no public unbind
    kept, oldest = full.versions[:2], full.versions[2]
    versions.bundle = VersionBundle(HeadVersion(), *(Version(v.value, *v.changes) for v in kept),
                                    Version(oldest.value))
    return f"execution API: version {API_VERSION} served in process (of {len(served)})"


def load_dag():
    """(the pipeline's DAG, None), or (None, the import errors): Airflow imported, the DAG parsed, its
    pool ensured and the in-process execution API trimmed (`serve_only_the_sdk_api_version`)."""
    from airflow.dag_processing.dagbag import DagBag

    from crmtier.airflow_setup import EMBEDDED_ENV, ensure_pool
    from crmtier.paths import DAGS_DIR

    os.environ[EMBEDDED_ENV] = "1"  # this process orders the dates (crmtier.airflow_setup.runs_in_scheduler)
    bag = DagBag(dag_folder=str(DAGS_DIR))
    if bag.import_errors:
        return None, bag.import_errors
    ensure_pool()  # the DAG's tasks run in the one-slot warehouse pool
    print(f"[crmtier] {serve_only_the_sdk_api_version()}", flush=True)
    return bag.dags["crm_pipeline"], None


def run_dates(dates: list[str]) -> int:
    import pendulum

    from crmtier.long_lived import collections_line, count_collections, long_lived
    from crmtier.paths import get_paths

    count_collections()
    with long_lived():  # Airflow's modules and the parsed DAG live as long as this process
        dag, import_errors = load_dag()
    if import_errors:
        print(f"{VERDICT}: the DAG does not import: {import_errors}", flush=True)
        return 2
    dag_start = dag.start_date.date().isoformat()
    for as_of in dates:
        started = time.monotonic()
        print(f"[crmtier] === as of {as_of}: DagRun starting", flush=True)
        run = dag.test(logical_date=pendulum.parse(as_of, tz="UTC"))
        state = str(getattr(run.state, "value", run.state))
        problem = unfinished_work(list(dag.task_ids), task_states(dag.dag_id, run.run_id), as_of, dag_start)
        if not problem and state != "success":
            problem = f"the DagRun as of {as_of} ended in state {state}."
        if not problem:
            problem = published_by_other_run(get_paths().publish, as_of, run.run_id)
        if problem:
            print(f"{VERDICT}: {problem}", flush=True)
            return 1
        print(f"[crmtier] === as of {as_of}: DagRun success, every task ran, snapshot published "
              f"({time.monotonic() - started:.1f}s; {collections_line()})", flush=True)
    return 0


def exit_now(code: int) -> None:
    """Exit without the interpreter's teardown: unloading Airflow, dbt and GX took ~5 s of a run
    (measured after the last DagRun ended). Nothing is left to release by then: every DuckDB file is
    closed after its step and the metadata DB has committed; logs and output are flushed here."""
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(run_dates(sys.argv[1:]))
