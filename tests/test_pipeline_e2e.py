"""End to end: the real Airflow DAG (`airflow dags test`), real dbt, real GX gates, a real DuckDB file."""
from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from crmtier.cli import run_dag
from crmtier.paths import get_paths
from crmtier.samples.generate import generate
from tests.conftest import write_csv
from tests.reference import counts, reference_outputs

pytestmark = pytest.mark.e2e

AS_OF = "2026-11-01"


def published(path: Path) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()]
        return {name: con.execute(f"select * from {name} order by all").df() for name in names if name != "_snapshot"}
    finally:
        con.close()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("e2e") / "var"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRMTIER_HOME", str(home))
        for var in ("CRMTIER_LANDING", "CRMTIER_WAREHOUSE", "CRMTIER_PUBLISH", "AIRFLOW_HOME"):
            mp.delenv(var, raising=False)
        landing = home / "landing"
        generate(landing, 2000, seed=7, as_of=AS_OF)
        code = run_dag(AS_OF, landing, quiet=True)
        first = published(get_paths().publish) if code == 0 else None
        yield {"home": home, "landing": landing, "code": code, "first": first, "mp": mp}


def test_run_succeeds_and_publishes_every_mart(demo_run):
    assert demo_run["code"] == 0, (demo_run["home"] / "logs" / f"run-{AS_OF}.log").read_text()[-5000:]
    tables = demo_run["first"]
    for name in ("dim_customers", "fct_customer_behaviour", "customer_value_scores", "customer_tiers",
                 "customer_status"):
        assert len(tables[name]) > 0, name
    # PII never reaches what BI reads
    for frame in tables.values():
        assert not {"customer_name", "phone", "email", "name"} & set(frame.columns)


def test_counts_match_an_independent_computation(demo_run):
    assert demo_run["code"] == 0
    expected = reference_outputs(demo_run["landing"], AS_OF)
    tables = demo_run["first"]
    assert counts(tables["customer_status"], "status") == counts(expected, "status")
    assert counts(tables["customer_tiers"], "tier") == counts(expected, "tier")
    merged = tables["customer_status"].merge(expected, on="customer_id", suffixes=("", "_ref"))
    assert len(merged) == len(expected)
    assert (merged["status"] == merged["status_ref"]).all()
    # the generated data really exercise every status band
    assert set(expected["status"]) >= {"active", "dormant", "churned", "prospect", "new"}


def test_rows_reconcile_from_landing_to_raw(demo_run):
    con = duckdb.connect(str(demo_run["home"] / "warehouse" / "crm.duckdb"), read_only=True)
    try:
        log = con.execute("select entity, file_name, rows_in, rows_loaded, rows_quarantined from raw.load_log").fetchall()
        quarantined = con.execute("select count(*) from raw.quarantine").fetchone()[0]
    finally:
        con.close()
    for entity, file_name, rows_in, loaded, bad in log:
        path = demo_run["landing"] / "generic" / entity / file_name
        data_lines = sum(1 for _ in path.open(encoding="utf-8")) - 1
        assert rows_in == data_lines == loaded + bad
    assert quarantined == sum(r[4] for r in log) > 0


def test_second_run_of_the_same_date_gives_identical_tables(demo_run):
    """... without running dbt staging: no file was loaded since its tables were built and tested."""
    assert demo_run["code"] == 0
    assert run_dag(AS_OF, demo_run["landing"], quiet=True) == 0
    log = (demo_run["home"] / "logs" / f"run-{AS_OF}.log").read_text()
    assert "dbt staging: not run: the staging tables were built and tested at" in log
    assert "dbt staging: dbt build" not in log and "dbt marts: dbt build" in log
    again = published(get_paths().publish)
    assert again.keys() == demo_run["first"].keys()
    for name, frame in demo_run["first"].items():
        pd.testing.assert_frame_equal(frame, again[name], obj=name)


def _failed_run(tmp_path, monkeypatch, build_landing) -> tuple[int, str, Path]:
    home = tmp_path / "var"
    monkeypatch.setenv("CRMTIER_HOME", str(home))
    landing = tmp_path / "landing"
    build_landing(landing)
    code = run_dag(AS_OF, landing, quiet=True)
    return code, (home / "logs" / f"run-{AS_OF}.log").read_text(), home


def _tables(db: Path, schema: str) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = ?", [schema]).fetchall()]
    finally:
        con.close()


def test_rejected_file_stops_the_run_at_the_raw_gate(tmp_path, monkeypatch):
    def landing(root):
        generate(root, 300, seed=3, as_of=AS_OF)
        write_csv(root / "generic/orders/broken.csv", "order_id,customer_id,order_time,currency,status",
                  ["X1,C0000001,2026-10-01,CNY,paid"])

    code, log, home = _failed_run(tmp_path, monkeypatch, landing)
    assert code != 0
    assert "gate raw failed" in log and "broken.csv" in log and "amount" in log
    assert _tables(home / "warehouse" / "crm.duckdb", "staging") == []  # dbt never ran
    assert not (home / "publish" / "crm.duckdb").exists()


def test_orphan_orders_stop_the_run_at_the_staging_gate(tmp_path, monkeypatch):
    def landing(root):
        generate(root, 300, seed=4, as_of=AS_OF)
        orphans = [f"Z{i},NOBODY{i},2026-10-01 10:00:00,10.00,CNY,paid" for i in range(2000)]
        write_csv(root / "generic/orders/orphans.csv", "order_id,customer_id,order_time,amount,currency,status",
                  orphans)

    code, log, home = _failed_run(tmp_path, monkeypatch, landing)
    assert code != 0
    assert "gate staging failed" in log
    assert _tables(home / "warehouse" / "crm.duckdb", "marts") == []  # marts never built
    assert not (home / "publish" / "crm.duckdb").exists()


@pytest.fixture(autouse=True)
def _no_leaking_env():
    before = os.environ.get("CRMTIER_HOME")
    yield
    if before is None:
        os.environ.pop("CRMTIER_HOME", None)
