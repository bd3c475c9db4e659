"""Ingest: every row is loaded or quarantined with a reason; files load once; bad files are rejected whole."""
from __future__ import annotations

import duckdb
import pytest

from crmtier.ingest.landing import ingest_landing
from tests.conftest import write_csv

pytestmark = pytest.mark.integration

CUSTOMERS = "customer_id,name,gender,birth_date,phone,email,occupation,income,province,city,created_at"
ORDERS = "order_id,customer_id,order_time,amount,currency,status"
EVENTS = "event_id,customer_id,event_time,event_type,channel"


@pytest.fixture
def db(tmp_path):
    return tmp_path / "wh.duckdb"


def rows(db, sql):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_valid_and_bad_rows_reconcile(tmp_path, db):
    landing = tmp_path / "landing"
    write_csv(landing / "generic/orders/a.csv", ORDERS, [
        "O1,C1,2026-10-01 10:00:00,10.50,CNY,paid",
        "O2,C1,2026-10-02,abc,CNY,paid",
        "O3,C1,2026-10-03,-5,CNY,paid",
        "O4,C1,not-a-date,5,CNY,paid",
        "O5,C1,2026-10-03,5,CNY,shipped",
        ",C1,2026-10-03,5,CNY,paid",
        "O6,,2026-10-03,5,CNY,paid",
        "O1,C2,2026-10-03,5,CNY,paid",
        "O7,C2,2026-10-03,5,CNY,Refunded",
    ])
    report = ingest_landing(db, landing)
    (outcome,) = report.files
    assert (outcome.status, outcome.rows_in, outcome.rows_loaded, outcome.rows_quarantined) == ("loaded", 9, 2, 7)
    reasons = dict(rows(db, "select _row_number, reason from raw.quarantine"))
    assert reasons == {2: "non_numeric_amount", 3: "negative_amount", 4: "unparseable_timestamp",
                       5: "unknown_status", 6: "missing_id", 7: "missing_id", 8: "duplicate_id_in_file"}
    assert rows(db, "select order_id, _row_number from raw.orders order by 1") == [("O1", 1), ("O7", 9)]
    assert rows(db, "select rows_in - rows_loaded - rows_quarantined from raw.load_log") == [(0,)]
    # reason is the code alone; the detail has its own column
    assert rows(db, "select reason, detail from raw.quarantine where _row_number in (2, 8) order by _row_number") == [
        ("non_numeric_amount", "amount=abc (a plain decimal with at most 4 decimal places)"),
        ("duplicate_id_in_file", "O1 (first in row 1)")]


@pytest.fixture(autouse=True)
def _no_settle_wait(monkeypatch):
    """Files here are written whole before ingest runs: no landing-protocol wait (tested apart)."""
    monkeypatch.setenv("CRMTIER_LANDING_SETTLE_SECONDS", "0")


def test_same_file_twice_even_renamed_loads_once(tmp_path, db):
    landing = tmp_path / "landing"
    first = write_csv(landing / "generic/events/day1.csv", EVENTS, ["E1,C1,2026-10-01 08:00:00,login,app"])
    ingest_landing(db, landing)
    assert ingest_landing(db, landing).files == []  # nothing new
    (landing / "generic/events/day1_copy.csv").write_bytes(first.read_bytes())
    (outcome,) = ingest_landing(db, landing).files
    assert outcome.status == "duplicate_file" and "day1.csv" in outcome.message
    assert rows(db, "select count(*) from raw.events") == [(1,)]


def test_reexport_keeps_latest_version_per_key_in_staging_input(tmp_path, db):
    landing = tmp_path / "landing"
    write_csv(landing / "generic/orders/full_1.csv", ORDERS, ["O1,C1,2026-10-01,10,CNY,paid"])
    ingest_landing(db, landing)
    write_csv(landing / "generic/orders/full_2.csv", ORDERS, ["O1,C1,2026-10-01,10,CNY,refunded",
                                                             "O2,C1,2026-10-05,20,CNY,paid"])
    ingest_landing(db, landing)
    # raw keeps both versions with their load order; staging keeps the latest (tested in dbt)
    assert rows(db, "select order_id, status, _load_seq from raw.orders order by _load_seq, order_id") == [
        ("O1", "paid", 1), ("O1", "refunded", 2), ("O2", "paid", 2)]


@pytest.mark.parametrize("content, message", [
    (f"{ORDERS.replace('amount,', '')}\nO1,C1,2026-10-01,CNY,paid\n", "required column(s) amount missing"),
    ("", "empty file"),
    (f"{ORDERS}\n", "empty file (header only"),
    (ORDERS.replace(",", ";") + "\nO1;C1;2026-10-01;1;CNY;paid\n", "one column only"),
    (f'{ORDERS}\nO1,C1,2026-10-01,1,CNY,paid\nO2,C1,2026-10-01,1,CNY,"pa', "unterminated quote"),
])
def test_file_level_problems_reject_the_whole_file(tmp_path, db, content, message):
    landing = tmp_path / "landing"
    path = landing / "generic/orders/bad.csv"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    (outcome,) = ingest_landing(db, landing).files
    assert outcome.status == "rejected"
    assert message in outcome.message and "bad.csv" in outcome.message
    assert rows(db, "select count(*) from raw.orders") == [(0,)]
    # still rejected on the next run, until fixed
    (again,) = ingest_landing(db, landing).files
    assert again.status == "rejected"
    assert rows(db, "select count(*) from raw.load_log where status = 'rejected'") == [(1,)]


def test_malformed_lines_are_quarantined_with_their_line(tmp_path, db):
    landing = tmp_path / "landing"
    write_csv(landing / "generic/events/e.csv", EVENTS, [
        "E1,C1,2026-10-01,login,app", "E2,C1,2026-10-01,login", "E3,C1,2026-10-01,login,app,extra",
        "E4,C1,2026-10-01,login,app"])
    (outcome,) = ingest_landing(db, landing).files
    assert (outcome.rows_in, outcome.rows_loaded, outcome.rows_quarantined) == (4, 2, 2)
    assert rows(db, "select event_id, _row_number from raw.events order by 1") == [("E1", 1), ("E4", 4)]
    assert rows(db, "select _row_number, reason, split_part(detail, ' (', 1) from raw.quarantine order by 1") == [
        (2, "malformed_line", "missing columns"), (3, "malformed_line", "too many columns")]


def test_extra_columns_are_kept_and_reported(tmp_path, db):
    landing = tmp_path / "landing"
    write_csv(landing / "generic/customers/c.csv", CUSTOMERS + ",vip_flag",
              ["C1,张三,M,1990-01-01,,,,,广东,深圳,2024-01-01,yes"])
    (outcome,) = ingest_landing(db, landing).files
    assert "vip_flag" in outcome.message
    assert rows(db, "select _extra from raw.customers") == [('{"vip_flag":"yes"}',)]


def test_quarantine_report_counts_by_reason_and_file_with_samples(tmp_path, db):
    from crmtier.ingest.quarantine_report import build_report, write_report

    landing = tmp_path / "landing"
    write_csv(landing / "generic/orders/a.csv", ORDERS, [
        "O1,C1,2026-10-01,10,CNY,paid", "O2,C1,2026-10-01,abc,CNY,paid", "O3,C1,2026-10-01,x,CNY,paid",
        "O4,C1,2026-10-01,5,CNY,shipped"])
    write_csv(landing / "generic/events/e.csv", EVENTS, ["E1,,2026-10-01,login,app"])
    report = ingest_landing(db, landing)
    data = build_report(db, report.load_ids)
    counts = {(r["reason"], r["file"]): r["rows"] for r in data["by_reason"]}
    assert counts == {("non_numeric_amount", "a.csv"): 2, ("unknown_status", "a.csv"): 1,
                      ("missing_id", "e.csv"): 1}
    assert {(s["file"], s["row"]) for s in data["samples"]} == {("a.csv", 2), ("a.csv", 3), ("a.csv", 4),
                                                                ("e.csv", 1)}
    path = write_report(db, report.load_ids, tmp_path / "report", "2026-11-01")
    text = path.read_text()
    assert "| non_numeric_amount | generic | orders | a.csv | 2 |" in text and "amount=abc" in text
