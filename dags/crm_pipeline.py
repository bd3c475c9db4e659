"""
### CRM tiers and status (用户分级 / 用户状态)

Daily: ingest new CRM exports from the landing folder, gate them (Great Expectations),
build the dbt layers (staging -> intermediate -> marts, history), check drift against the
previous date, publish a consistent snapshot for BI tools, write the alerts' outbox and notify.
Every gate stops the run on bad data; nothing downstream is published or handed over.

The as-of date is the run's logical date (`ds`): a backfill of any past date gives the same answer as
its daily run. Logic: `crmtier.pipeline`. Publish updates the Asset `crmtier.airflow_setup.snapshot_asset()`.
"""
from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from crmtier.airflow_setup import WAREHOUSE_POOL, runs_in_scheduler, snapshot_asset
from crmtier.delivery.notifiers import ConnectionsNotifier
from crmtier.layout import EARLIEST_DATE
from crmtier.pipeline import on_failure

on_failed = [on_failure, ConnectionsNotifier("failure")]  # log and CRMTIER_NOTIFY_*; Airflow Connections


@dag(
    dag_id="crm_pipeline",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    start_date=pendulum.parse(EARLIEST_DATE, tz="UTC"),  # any historical as-of date can run
    catchup=False,  # ...but the scheduler only schedules the latest interval, never backfills by itself
    max_active_runs=1,  # one writer on the DuckDB warehouse at a time
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30), "on_failure_callback": on_failed,
                  "pool": WAREHOUSE_POOL,  # one slot: one task on the DuckDB warehouse at a time
                  "depends_on_past": runs_in_scheduler()},  # dates in order: a date waits for the previous one
    on_failure_callback=on_failed,
    on_success_callback=[ConnectionsNotifier("success")],
    params={"full_refresh": Param(False, type="boolean", description="rebuild incremental dbt models from scratch")},
    tags=["crm", "dbt", "great-expectations"],
    doc_md=__doc__,
)
def crm_pipeline():
    @task
    def ingest(ds=None) -> list[str]:
        from crmtier.pipeline import ingest_step
        return ingest_step(ds)

    @task
    def gate_raw(load_ids: list[str], ds=None) -> dict:
        from crmtier.pipeline import gate_step
        return gate_step("raw", {"load_ids": load_ids, "as_of_date": ds})  # as_of_date: the run's timings

    @task
    def dbt_staging(ds=None, params=None) -> None:
        from crmtier.pipeline import dbt_step
        dbt_step("staging", ds, full_refresh=params["full_refresh"])

    @task
    def gate_staging(ds=None) -> dict:
        from crmtier.pipeline import gate_step
        return gate_step("staging", {"as_of_date": ds})

    @task
    def dbt_marts(ds=None, params=None) -> None:
        from crmtier.pipeline import dbt_step
        dbt_step("marts", ds, full_refresh=params["full_refresh"])

    @task
    def gate_marts(ds=None) -> dict:
        from crmtier.pipeline import gate_step
        return gate_step("marts", {"as_of_date": ds})

    @task
    def gate_drift(ds=None) -> dict:
        from crmtier.pipeline import drift_gate_step
        return drift_gate_step(ds)

    @task(outlets=[snapshot_asset()])  # downstream DAGs: schedule=[snapshot_asset()]
    def publish(ds=None, run_id=None) -> dict:
        from crmtier.pipeline import publish_step
        return publish_step(ds, run_id)

    @task
    def outbox(ds=None, run_id=None) -> dict:
        from crmtier.pipeline import outbox_step
        return outbox_step(ds, run_id)

    @task
    def notify(handed_over: dict, ds=None, run_id=None) -> dict:
        from crmtier.pipeline import notify_step
        return notify_step(ds, run_id, handed_over)

    raw_ok = gate_raw(ingest())
    handed_over = outbox()
    raw_ok >> dbt_staging() >> gate_staging() >> dbt_marts() >> gate_marts() >> gate_drift() >> publish() >> handed_over
    notify(handed_over)


crm_pipeline()
