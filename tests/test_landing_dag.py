"""Bad input through the real DAG: a file redelivered under another name (the run's only outcome),
impossible dates and a `.gz` export in a run that still publishes, and misplaced files that stop
the run at the raw gate with a message naming what is wrong."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pytest

from crmtier.cli import main, run_dag
from crmtier.samples.generate import generate
from tests.conftest import write_csv

pytestmark = pytest.mark.e2e

ORDERS = "order_id,customer_id,order_time,amount,currency,status"


def log_text(home: Path, as_of: str) -> str:
    return (home / "logs" / f"run-{as_of}.log").read_text(errors="replace")


def warehouse_rows(home: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(home / "warehouse" / "crm.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def published_as_of(home: Path) -> str:
    con = duckdb.connect(str(home / "publish" / "crm.duckdb"), read_only=True)
    try:
        return con.execute("select as_of_date::varchar from _snapshot").fetchone()[0]
    finally:
        con.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp("landing_dag") / "var"
        mp.setenv("CRMTIER_HOME", str(home))
        for var in ("CRMTIER_LANDING", "CRMTIER_WAREHOUSE", "CRMTIER_PUBLISH", "AIRFLOW_HOME"):
            mp.delenv(var, raising=False)
        landing = home / "landing"
        written = generate(landing, 120, seed=8, as_of="2026-11-01")
        customer = warehouse_free_customer_id(written["customers"])
        write_csv(landing / "generic/orders/late.csv", ORDERS, [
            f"L1,{customer},2999-01-01 00:00:00,10.00,CNY,paid", f"L2,{customer},infinity,10.00,CNY,paid",
            f"L3,{customer},2026-10-20 10:00:00,10.00,CNY,paid"])
        (landing / "generic/orders/extra.csv.gz").write_bytes(
            gzip.compress(f"{ORDERS}\nG1,{customer},2026-10-21 10:00:00,25.00,CNY,paid\n".encode()))
        # mixed line ends, a quoted comma in the header, a last line cut short
        (landing / "generic/orders/mixed.csv").write_bytes(
            f'{ORDERS},"note, free text"\nM1,{customer},2026-10-22 10:00:00,1.00,CNY,paid,"a, b"\r\n'
            f'M2,{customer},2026-10-22 11:00:00,2.00,CNY,paid,c\rM3,{customer},2026-10-2'.encode())
        first = run_dag("2026-11-01", landing, quiet=True)
        first_log = warehouse_rows(home, "select file_name, load_id, rows_in, rows_loaded, rows_quarantined "
                                         "from raw.load_log order by file_name")
        first_quarantine = warehouse_rows(home, "select _file_name, raw_values::json->>'order_id', reason "
                                                "from raw.quarantine order by all")
        # the user retracts the late.csv load; the same customers export arrives again, renamed:
        # the second run's only ingest outcome
        late = next(load_id for name, load_id, *_ in first_log if name == "late.csv")
        retracted = main(["retract", late, "--reason", "dates from the future"])
        (landing / "generic/customers/export_again.csv").write_bytes(written["customers"].read_bytes())
        second = run_dag("2026-11-02", landing, quiet=True)
        staged_after_second = warehouse_rows(home, "select order_id from staging.stg_crm__orders "
                                                   "where order_id in ('L3', 'G1', 'M1', 'M2') order by 1")
        published_after_second = published_as_of(home) if second == 0 else None
        # misplaced files: an unknown source folder and a typo entity folder
        write_csv(landing / "shopify/orders/o.csv", ORDERS, [f"S1,{customer},2026-10-30,1,CNY,paid"])
        write_csv(landing / "generic/order/o.csv", ORDERS, [f"T1,{customer},2026-10-30,1,CNY,paid"])
        third = run_dag("2026-11-03", landing, quiet=True)
        yield {"home": home, "codes": (first, second, third), "published_after_second": published_after_second,
               "first_log": first_log, "first_quarantine": first_quarantine, "retracted": retracted, "staged_after_second": staged_after_second}


def warehouse_free_customer_id(customers_csv: Path) -> str:
    return customers_csv.read_text().splitlines()[1].split(",")[0]


def test_impossible_dates_are_quarantined_and_gz_is_read_and_the_run_publishes(runs):
    home = runs["home"]
    assert runs["codes"][0] == 0, log_text(home, "2026-11-01")[-4000:]
    assert [row[1:] for row in runs["first_quarantine"] if row[0] == "late.csv"] == [
        ("L1", "impossible_date"), ("L2", "unparseable_timestamp")]
    assert ("extra.csv.gz", 1, 1, 0) in [(name, *counts) for name, _, *counts in runs["first_log"]]
    # mixed line ends and a quoted-comma header load; the cut last line is one quarantined row
    assert ("mixed.csv", 3, 2, 1) in [(name, *counts) for name, _, *counts in runs["first_log"]]
    assert [row[2] for row in runs["first_quarantine"] if row[0] == "mixed.csv"] == ["malformed_line"]


def test_retracted_load_leaves_raw_and_staging(runs):
    home = runs["home"]
    assert runs["retracted"] == 0 and runs["codes"][1] == 0
    assert warehouse_rows(home, "select status from raw.load_log where file_name = 'late.csv'") == [("retracted",)]
    assert warehouse_rows(home, "select count(*) from raw.orders where _file_name = 'late.csv'") == [(0,)]
    assert runs["staged_after_second"] == [("G1",), ("M1",), ("M2",)]  # L3 left staging with its load


def test_redelivered_file_alone_does_not_crash_the_run(runs):
    home = runs["home"]
    assert runs["codes"][1] == 0, log_text(home, "2026-11-02")[-4000:]
    assert runs["published_after_second"] == "2026-11-02"
    ingest = json.loads((home / "reports" / "2026-11-02" / "ingest.json").read_text())
    assert [(f["file_name"], f["status"]) for f in ingest] == [("export_again.csv", "duplicate_file")]
    report = (home / "reports" / "2026-11-02" / "quarantine.md").read_text()
    assert "| generic | customers | export_again.csv | duplicate_file |" in report


def test_misplaced_files_stop_the_run_at_the_raw_gate_saying_why(runs):
    home = runs["home"]
    assert runs["codes"][2] != 0
    text = log_text(home, "2026-11-03")
    assert "gate raw failed" in text
    assert "unknown source folder 'shopify'" in text and "known sources are" in text
    assert "unknown entity folder generic/order/" in text
    assert "Traceback" not in text.split("gate raw failed")[0]  # ingest itself did not crash
    assert published_as_of(home) == "2026-11-02"  # nothing published by the failed run
