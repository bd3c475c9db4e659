"""Any historical as-of date runs every task for real (1997, a 2011 backfill), and a DagRun that does
not do its work (no task run, nothing published) is a failure with one clear sentence."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import pytest

from crmtier.cli import main, run_dag
from crmtier.paths import DAGS_DIR
from crmtier.samples.generate import generate

pytestmark = pytest.mark.e2e

PIPELINE_TASKS = {"ingest", "gate_raw", "dbt_staging", "gate_staging", "dbt_marts", "gate_marts", "gate_drift",
                  "publish", "outbox", "notify"}


def _home(tmp_path_factory, mp, name: str) -> Path:
    home = tmp_path_factory.mktemp(name) / "var"
    mp.setenv("CRMTIER_HOME", str(home))
    for var in ("CRMTIER_LANDING", "CRMTIER_WAREHOUSE", "CRMTIER_PUBLISH", "AIRFLOW_HOME"):
        mp.delenv(var, raising=False)
    return home


def task_states_by_date(home: Path) -> dict[str, dict[str, str]]:
    """Task states of every DagRun in the run's Airflow metadata DB, by logical date."""
    con = sqlite3.connect(home / "airflow" / "airflow.db")
    try:
        rows = con.execute("""select substr(dag_run.logical_date, 1, 10), ti.task_id, ti.state
                              from task_instance as ti join dag_run using (dag_id, run_id)""").fetchall()
        runs = [r[0][:10] for r in con.execute("select logical_date from dag_run").fetchall()]
    finally:
        con.close()
    states: dict[str, dict[str, str]] = {day: {} for day in runs}
    for day, task_id, state in rows:
        states[day][task_id] = state
    return states


def dag_run_ids(home: Path) -> dict[str, str]:
    con = sqlite3.connect(home / "airflow" / "airflow.db")
    try:
        return {day[:10]: run_id for day, run_id in con.execute("select logical_date, run_id from dag_run")}
    finally:
        con.close()


def snapshot(home: Path) -> tuple[str, str]:
    con = duckdb.connect(str(home / "publish" / "crm.duckdb"), read_only=True)
    try:
        return con.execute("select as_of_date::varchar, run_id from _snapshot").fetchone()
    finally:
        con.close()


def warehouse_rows(home: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(home / "warehouse" / "crm.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def run_1997(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        home = _home(tmp_path_factory, mp, "as_of_1997")
        generate(home / "landing", 100, seed=97, as_of="1997-09-30")
        code = run_dag("1997-09-30", home / "landing", quiet=True)
        yield {"home": home, "code": code, "mp": mp}


def test_dag_accepts_historical_dates_but_never_backfills_by_itself():
    source = (DAGS_DIR / "crm_pipeline.py").read_text()
    assert "catchup=False" in source and "EARLIEST_DATE" in source
    from crmtier.layout import EARLIEST_DATE
    assert EARLIEST_DATE <= "1997-09-30"


def test_1997_as_of_runs_every_task_and_publishes_it(run_1997):
    home = run_1997["home"]
    assert run_1997["code"] == 0, (home / "logs" / "run-1997-09-30.log").read_text()[-4000:]
    states = task_states_by_date(home)
    assert states["1997-09-30"] == {task: "success" for task in PIPELINE_TASKS}
    assert snapshot(home) == ("1997-09-30", dag_run_ids(home)["1997-09-30"])  # this run's snapshot
    loaded = warehouse_rows(home, "select count(distinct customer_id) from raw.customers")[0][0]
    assert warehouse_rows(home, "select count(*), min(as_of_date)::varchar from marts.customer_status") == [
        (loaded, "1997-09-30")]
    # real 1997 behaviour: recent buyers are active as of 1997
    assert warehouse_rows(home, "select count(*) > 0 from marts.customer_status where status = 'active'") == [(True,)]


def test_run_before_the_start_date_is_a_failure_and_keeps_the_snapshot(run_1997, capsys):
    home = run_1997["home"]
    assert run_1997["code"] == 0
    published = snapshot(home)
    code = run_dag("1899-12-31", home / "landing", quiet=True)
    err = capsys.readouterr().err
    assert code == 1
    assert "RUN FAILED: the DagRun as of 1899-12-31 ran no task (1899-12-31 is before the DAG's start_date " \
           "1900-01-01); nothing was ingested or published." in err
    assert "summary as of" not in err
    assert task_states_by_date(home)["1899-12-31"] == {}  # a real DagRun, with no task
    assert snapshot(home) == published


def test_fresh_home_run_that_does_nothing_fails_without_a_crash(tmp_path, monkeypatch, capsys):
    home = tmp_path / "var"
    monkeypatch.setenv("CRMTIER_HOME", str(home))
    for var in ("CRMTIER_LANDING", "CRMTIER_WAREHOUSE", "CRMTIER_PUBLISH", "AIRFLOW_HOME"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "landing").mkdir()
    code = main(["run", "--as-of", "1850-06-01", "--landing", str(tmp_path / "landing")])
    captured = capsys.readouterr()
    assert code == 1
    assert "ran no task" in captured.err and "Traceback" not in captured.err + captured.out
    assert not (home / "publish" / "crm.duckdb").exists()


def test_2011_backfill_runs_every_date(tmp_path_factory, capsys):
    with pytest.MonkeyPatch.context() as mp:
        home = _home(tmp_path_factory, mp, "backfill_2011")
        generate(home / "landing", 60, seed=11, as_of="2011-01-03")
        code = main(["run", "--from", "2011-01-01", "--to", "2011-01-03", "--landing", str(home / "landing")])
        out = capsys.readouterr().out
        assert code == 0, (home / "logs" / "run-2011-01-01_2011-01-03.log").read_text()[-4000:]
        days = ["2011-01-01", "2011-01-02", "2011-01-03"]
        states = task_states_by_date(home)
        assert sorted(states) == days
        for day in days:
            assert states[day] == {task: "success" for task in PIPELINE_TASKS}, day
        assert warehouse_rows(home, "select distinct as_of_date::varchar from history.customer_history order by 1") == [
            (day,) for day in days]
        assert snapshot(home)[0] == "2011-01-03"
        assert "summary as of 2011-01-03" in out
