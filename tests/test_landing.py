"""Bad input that used to break ingest, written the way real drops arrive: redelivery under other
names and folders, files still being written, changed files, retracted loads, impossible dates,
odd headers, mixed line endings and a landing folder with typos. Every file is read (rows in =
loaded + quarantined, counted independently) or reported with why."""
from __future__ import annotations

import gzip
import os

import duckdb
import pytest

from crmtier.ingest import landing as ingest
from crmtier.ingest.generic_csv import count_records
from crmtier.ingest.landing import IngestSettings, ingest_landing, retract_load
from tests.conftest import write_csv

pytestmark = pytest.mark.integration

ORDERS = "order_id,customer_id,order_time,amount,currency,status"
CUSTOMERS = "customer_id,created_at"
NO_WAIT = IngestSettings(settle_seconds=0)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "wh.duckdb"


def rows(db, sql, params=None):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def reconciled(db) -> list[tuple]:
    return rows(db, "select file_name, rows_in, rows_loaded + rows_quarantined from raw.load_log "
                    "where status = 'loaded' and rows_in <> rows_loaded + rows_quarantined")


# --- redelivery and duplicates ------------------------------------------------------------------

def test_same_bytes_under_customers_and_orders_are_two_files(tmp_path, db):
    """Duplicates key on (source, entity, content hash): the orders copy is read as orders (and
    rejected for its header), not skipped as a duplicate of the customers file."""
    landing = tmp_path / "landing"
    first = write_csv(landing / "generic/customers/c.csv", CUSTOMERS, ["C1,2024-01-01"])
    (landing / "generic/orders").mkdir(parents=True)
    (landing / "generic/orders/c.csv").write_bytes(first.read_bytes())
    report = ingest_landing(db, landing, NO_WAIT)
    assert [(f.entity, f.status) for f in report.files] == [("customers", "loaded"), ("orders", "rejected")]
    assert "required column(s) order_id" in report.files[1].message


def test_only_a_redelivered_file_reports_without_crashing(tmp_path, db):
    from crmtier.ingest.quarantine_report import build_report

    landing = tmp_path / "landing"
    first = write_csv(landing / "generic/customers/c.csv", CUSTOMERS, ["C1,2024-01-01"])
    ingest_landing(db, landing, NO_WAIT)
    (landing / "generic/customers/c_again.csv").write_bytes(first.read_bytes())
    report = ingest_landing(db, landing, NO_WAIT)
    assert [f.status for f in report.files] == ["duplicate_file"]
    data = build_report(db, report.load_ids)
    assert [(f["file"], f["status"]) for f in data["files"]] == [("c_again.csv", "duplicate_file")]
    assert build_report(db, [])["files"] == []  # no load at all: an empty report, not a crash


# --- counting ---------------------------------------------------------------------------------

@pytest.mark.parametrize("content, records", [
    (b"h\n1\n2\n", 2), (b"h\n1\n2", 2), (b"h\n1\n\n2\n\n", 2), (b'h,x\n1,"a\nb"\n2,c\n', 2),
    (b"h\r\n1\r\n\r\n2\r\n", 2), (b"h\n", 0), (b'h,x\n1,"a""\n\nb"\n', 1)])
def test_records_are_counted_apart_from_the_reader(tmp_path, content, records):
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    assert count_records(path) == records


def test_truncated_last_line_reconciles_as_one_quarantined_row(tmp_path, db):
    landing = tmp_path / "landing"
    path = landing / "generic/orders/cut.csv"
    path.parent.mkdir(parents=True)
    path.write_text(f"{ORDERS}\nO1,C1,2026-10-01 10:00:00,10.00,CNY,paid\nO2,C1,2026-1")
    (outcome,) = ingest_landing(db, landing, NO_WAIT).files
    assert (outcome.status, outcome.rows_in, outcome.rows_loaded, outcome.rows_quarantined) == ("loaded", 2, 1, 1)
    assert rows(db, "select _row_number, reason from raw.quarantine") == [(2, "malformed_line")]


def test_quoted_line_breaks_and_blank_lines_reconcile(tmp_path, db):
    landing = tmp_path / "landing"
    path = landing / "generic/orders/notes.csv"
    path.parent.mkdir(parents=True)
    path.write_text(f'{ORDERS},note\nO1,C1,2026-10-01,1,CNY,paid,"two\nlines"\n\nO2,C1,2026-10-01,2,CNY,paid,x\n')
    (outcome,) = ingest_landing(db, landing, NO_WAIT).files
    assert (outcome.rows_in, outcome.rows_loaded, outcome.rows_quarantined) == (2, 2, 0)


# --- files being written ----------------------------------------------------------------------

def test_file_still_being_written_waits_for_a_later_run(tmp_path, db, monkeypatch):
    landing = tmp_path / "landing"
    path = write_csv(landing / "generic/orders/o.csv", ORDERS, ["O1,C1,2026-10-01,10,CNY,paid"])

    def writer_still_writing(seconds):  # the export tool appends while ingest waits for it to settle
        with path.open("a") as fh:
            fh.write("O2,C1,2026-10-01,20,CNY,paid\n")

    monkeypatch.setattr(ingest.time, "sleep", writer_still_writing)
    report = ingest_landing(db, landing, IngestSettings(settle_seconds=30))
    assert report.files == []
    assert [(n.path, n.status) for n in report.not_read] == [("generic/orders/o.csv", "waiting")]
    assert "still being written" in report.not_read[0].reason
    assert rows(db, "select count(*) from raw.orders") == [(0,)]
    monkeypatch.undo()
    (outcome,) = ingest_landing(db, landing, NO_WAIT).files  # complete now: read
    assert (outcome.status, outcome.rows_loaded) == ("loaded", 2)


def test_done_marker_protocol(tmp_path, db):
    landing = tmp_path / "landing"
    path = write_csv(landing / "generic/orders/o.csv", ORDERS, ["O1,C1,2026-10-01,10,CNY,paid"])
    strict = IngestSettings(settle_seconds=3600, require_done=True)
    report = ingest_landing(db, landing, strict)
    assert report.files == [] and "no o.csv.done marker" in report.not_read[0].reason
    path.with_name("o.csv.done").touch()
    (outcome,) = ingest_landing(db, landing, strict).files  # the marker says complete: no wait
    assert outcome.status == "loaded"


def test_longer_version_of_a_partial_file_replaces_its_load(tmp_path, db):
    landing = tmp_path / "landing"
    header = "order_id,customer_id,order_time,status,currency,amount"
    path = landing / "generic/orders/o.csv"
    path.parent.mkdir(parents=True)
    complete = f"{header}\nO1,C1,2026-10-01,paid,CNY,10.00\nO2,C1,2026-10-02,paid,CNY,1234.50\nO3,C1,2026-10-0\n"
    cut_at = complete.index("1234.50") + 2
    path.write_text(complete[:cut_at])  # read while the export was being written: amount 12
    (partial,) = ingest_landing(db, landing, NO_WAIT).files
    assert rows(db, "select amount from raw.orders where order_id = 'O2'") == [("12",)]
    path.write_text(complete.replace("O3,C1,2026-10-0\n", "O3,C1,2026-10-03,paid,CNY,5\n"))
    (full,) = ingest_landing(db, landing, NO_WAIT).files
    assert full.status == "loaded" and partial.load_id in full.message
    assert rows(db, "select order_id, amount from raw.orders order by 1") == [
        ("O1", "10.00"), ("O2", "1234.50"), ("O3", "5")]
    assert rows(db, "select status from raw.load_log where load_id = ?", [partial.load_id]) == [("superseded",)]


# --- changed files ----------------------------------------------------------------------------

def test_changed_value_with_same_name_size_and_time_is_read(tmp_path, db):
    landing = tmp_path / "landing"
    path = write_csv(landing / "generic/orders/o.csv", ORDERS, ["O1,C1,2026-10-01,10,CNY,paid"])
    stamp = path.stat().st_mtime_ns
    ingest_landing(db, landing, NO_WAIT)
    path.write_text(path.read_text().replace(",10,", ",90,"))
    os.utime(path, ns=(stamp, stamp))
    (outcome,) = ingest_landing(db, landing, NO_WAIT).files
    assert outcome.status == "loaded"
    assert rows(db, "select amount from raw.orders order by _load_seq") == [("10",), ("90",)]


# --- impossible dates and retracting a load -------------------------------------------------------

def test_impossible_dates_are_quarantined_with_configurable_bounds(tmp_path, db):
    landing = tmp_path / "landing"
    path = write_csv(landing / "generic/orders/o.csv", ORDERS, [
        "O1,C1,2026-10-01,10,CNY,paid", "O2,C1,2999-01-01,10,CNY,paid", "O3,C1,infinity,10,CNY,paid",
        "O4,C1,epoch,10,CNY,paid", "O5,C1,1899-12-31,10,CNY,paid", "O6,C1,1950-06-01,10,CNY,paid"])
    os.utime(path, (1_790_000_000, 1_790_000_000))  # exported 2026-09-21: O1 is a day too late
    ingest_landing(db, landing, NO_WAIT)
    assert rows(db, "select order_id from raw.orders order by 1") == [("O6",)]
    assert dict(rows(db, """select raw_values::json->>'order_id', reason from raw.quarantine""")) == {
        "O1": "impossible_date", "O2": "impossible_date", "O3": "unparseable_timestamp",
        "O4": "unparseable_timestamp", "O5": "impossible_date"}
    detail = rows(db, "select detail from raw.quarantine where raw_values::json->>'order_id' = 'O2'")[0][0]
    assert "order_time=2999-01-01" in detail and "1900-01-01" in detail
    # bounds are settings: a 1950 lower bound quarantines O6 too
    write_csv(landing / "generic/orders/o2.csv", ORDERS, ["P6,C1,1950-06-01,10,CNY,paid"])
    ingest_landing(db, landing, IngestSettings(settle_seconds=0, earliest_date="1960-01-01"))
    assert rows(db, "select reason from raw.quarantine where _file_name = 'o2.csv'") == [("impossible_date",)]


def test_impossible_dates_in_a_vendor_export_are_quarantined(tmp_path, db):
    landing = tmp_path / "landing"
    write_csv(landing / "salesforce/customers/contacts.csv", "Id,FirstName,LastName,CreatedDate",
              ["003A,Ann,Lee,2024-01-05T09:00:00.000+0000", "003B,Bo,Ma,2999-01-01T09:00:00.000+0000"])
    (outcome,) = ingest_landing(db, landing, NO_WAIT).files
    assert (outcome.status, outcome.rows_loaded, outcome.rows_quarantined) == ("loaded", 1, 1)
    assert rows(db, "select reason from raw.quarantine") == [("impossible_date",)]


def test_retract_removes_a_load_and_staging_rebuilds_without_it(tmp_path, monkeypatch):
    from crmtier.dbt_runner import run_dbt
    from crmtier.pipeline import stage_args

    monkeypatch.setenv("CRMTIER_HOME", str(tmp_path / "var"))
    db = tmp_path / "var" / "warehouse" / "crm.duckdb"
    landing = tmp_path / "landing"
    write_csv(landing / "generic/customers/c.csv", CUSTOMERS, ["C1,2024-01-01 00:00:00"])
    write_csv(landing / "generic/orders/good.csv", ORDERS, ["O1,C1,2026-10-01 10:00:00,10,CNY,paid"])
    write_csv(landing / "generic/orders/wrong.csv", ORDERS, ["O9,C1,2026-10-02 10:00:00,99999,CNY,paid"])
    report = ingest_landing(db, landing, NO_WAIT)
    # the day table and the windows built from it are incremental: they must lose the retracted order too
    summed = "select paid_orders, net_spend::double from intermediate.int_customer_orders_aggregated"
    run_dbt(stage_args("staging"), "2026-11-01")
    run_dbt(["run", "--select", "int_customer_daily_orders", "int_customer_orders_aggregated"], "2026-11-01")
    staged = "select order_id from staging.stg_crm__orders order by 1"
    assert rows(db, staged) == [("O1",), ("O9",)]
    assert rows(db, summed) == [(2, 100009.0)]
    wrong = next(f.load_id for f in report.files if f.file_name == "wrong.csv")

    done = retract_load(db, wrong, "wrong amounts")
    assert done["rows_removed"] == 1
    assert rows(db, "select status, message like '%wrong amounts' from raw.load_log where load_id = ?", [wrong]) == [
        ("retracted", True)]
    again = ingest_landing(db, landing, NO_WAIT)  # the file is still there: not read again, and said so
    assert again.files == [] and [n.status for n in again.not_read] == ["retracted"]
    run_dbt(stage_args("staging"), "2026-11-01")
    assert rows(db, staged) == [("O1",)]
    run_dbt(["run", "--select", "int_customer_daily_orders", "int_customer_orders_aggregated"], "2026-11-01")
    assert rows(db, summed) == [(1, 10.0)]
    with pytest.raises(ValueError, match="only a loaded file"):
        retract_load(db, wrong)


def test_retract_command(tmp_path, monkeypatch, capsys):
    from crmtier.cli import main

    monkeypatch.setenv("CRMTIER_HOME", str(tmp_path / "var"))
    db = tmp_path / "var" / "warehouse" / "crm.duckdb"
    write_csv(tmp_path / "landing/generic/customers/c.csv", CUSTOMERS, ["C1,2024-01-01"])
    (outcome,) = ingest_landing(db, tmp_path / "landing", NO_WAIT).files
    assert main(["retract", outcome.load_id, "--reason", "test export"]) == 0
    assert "1 rows" in capsys.readouterr().out
    assert main(["retract", "no-such-load"]) == 1
    assert "no load 'no-such-load'" in capsys.readouterr().err


# --- headers ------------------------------------------------------------------------------------

def test_header_with_a_quoted_comma(tmp_path, db):
    landing = tmp_path / "landing"
    write_csv(landing / "generic/orders/o.csv", f'{ORDERS},"note, free text"',
              ['O1,C1,2026-10-01,10,CNY,paid,"hello, world"', "O2,C1,2026-10-01,10,CNY,paid,plain"])
    (outcome,) = ingest_landing(db, landing, NO_WAIT).files
    assert (outcome.rows_loaded, outcome.rows_quarantined) == (2, 0)
    assert rows(db, "select _extra from raw.orders order by order_id")[0] == ('{"note, free text":"hello, world"}',)


def test_a_10000_column_header_gets_a_true_message(tmp_path, db):
    landing = tmp_path / "landing"
    wide = ",".join(f"attribute_number_{i}" for i in range(10_000))
    assert len(wide) > 64 * 1024
    write_csv(landing / "generic/orders/wide.csv", wide, [",".join("x" * 10_000)])
    (outcome,) = ingest_landing(db, landing, NO_WAIT).files
    assert outcome.status == "rejected"
    assert "required column(s) order_id, customer_id, order_time, amount, status missing" in outcome.message
    assert "(10000 columns)" in outcome.message and "duplicate" not in outcome.message
    # with the required columns in front, the same width loads, the rest kept as extra columns
    write_csv(landing / "generic/orders/wide.csv", f"{ORDERS},{wide}",
              ["O1,C1,2026-10-01,10,CNY,paid," + ",".join("x" * 10_000)])
    (outcome,) = ingest_landing(db, landing, NO_WAIT).files
    assert (outcome.status, outcome.rows_loaded) == ("loaded", 1)


def test_repeated_header_names_are_named(tmp_path, db):
    landing = tmp_path / "landing"
    write_csv(landing / "generic/orders/o.csv", f"{ORDERS},amount", ["O1,C1,2026-10-01,10,CNY,paid,11"])
    (outcome,) = ingest_landing(db, landing, NO_WAIT).files
    assert outcome.status == "rejected" and "repeats column name(s) 'amount'" in outcome.message


# --- mixed line endings -------------------------------------------------------------------------

def test_mixed_line_endings_are_normalised(tmp_path, db):
    landing = tmp_path / "landing"
    path = landing / "generic/orders/mixed.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(f"{ORDERS}\nO1,C1,2026-10-01,1,CNY,paid\r\nO2,C1,2026-10-01,2,CNY,paid\r"
                     f"O3,C1,2026-10-01,3,CNY,paid\n".encode())
    (outcome,) = ingest_landing(db, landing, NO_WAIT).files
    assert (outcome.status, outcome.rows_in, outcome.rows_loaded) == ("loaded", 3, 3)
    assert rows(db, "select order_id, status from raw.orders order by 1") == [
        ("O1", "paid"), ("O2", "paid"), ("O3", "paid")]


def test_mixed_line_endings_in_a_vendor_export(tmp_path, db):
    landing = tmp_path / "landing"
    path = landing / "hubspot/customers/contacts.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"Record ID,First Name,Last Name,Create Date\n1,Ann,Lee,2024-01-05\r\n"
                     b"2,Bo,Ma,2024-01-06\r3,Cy,Wu,2024-01-07\n")
    (outcome,) = ingest_landing(db, landing, NO_WAIT).files
    assert (outcome.status, outcome.rows_in, outcome.rows_loaded) == ("loaded", 3, 3)


# --- landing folder -----------------------------------------------------------------------------

def test_every_file_in_the_landing_folder_is_read_or_reported(tmp_path, db):
    landing = tmp_path / "landing"
    write_csv(landing / "generic/customers/c.csv", CUSTOMERS, ["C1,2024-01-01"])
    write_csv(landing / "generic/order/typo.csv", ORDERS, ["O1,C1,2026-10-01,1,CNY,paid"])
    write_csv(landing / "shopify/orders/o.csv", ORDERS, ["O2,C1,2026-10-01,1,CNY,paid"])
    write_csv(landing / "orders.csv", ORDERS, ["O3,C1,2026-10-01,1,CNY,paid"])
    write_csv(landing / "generic/orders/notes.json", "{}", [])
    gz = landing / "generic/orders/orders.csv.gz"
    gz.write_bytes(gzip.compress(f"{ORDERS}\nO4,C1,2026-10-01,4,CNY,paid\n".encode()))
    (landing / "generic/orders/.partial.csv").write_text("hidden: an upload in progress")
    report = ingest_landing(db, landing, NO_WAIT)
    outcomes = {f.file_name: (f.status, f.message) for f in report.files}
    assert outcomes["c.csv"][0] == "loaded"
    assert outcomes["orders.csv.gz"][0] == "loaded"
    assert rows(db, "select order_id, amount from raw.orders") == [("O4", "4")]
    assert outcomes["generic/order/typo.csv"] == (
        "rejected", "unknown entity folder generic/order/: entities are customers, orders, events")
    status, message = outcomes["shopify/orders/o.csv"]
    assert status == "rejected" and "unknown source folder 'shopify'" in message
    assert "generic" in message and "salesforce" in message and "fxiaoke" in message
    assert outcomes["orders.csv"][0] == "rejected" and "<source>/<entity>/" in outcomes["orders.csv"][1]
    assert outcomes["generic/orders/notes.json"][0] == "rejected"
    assert len(report.files) == 6  # the hidden file is the only one not listed
    # rejected on every run until moved, so the raw gate keeps saying why
    assert {f.file_name for f in ingest_landing(db, landing, NO_WAIT).files} == {
        "generic/order/typo.csv", "shopify/orders/o.csv", "orders.csv", "generic/orders/notes.json"}


def test_ingest_report_lists_files_not_read(tmp_path, db, monkeypatch):
    from crmtier.ingest.quarantine_report import build_report, render_markdown

    landing = tmp_path / "landing"
    write_csv(landing / "generic/orders/o.csv", ORDERS, ["O1,C1,2026-10-01,10,CNY,paid"])
    report = ingest_landing(db, landing, IngestSettings(settle_seconds=3600, require_done=True))
    text = render_markdown(build_report(db, report.load_ids, [vars(n) for n in report.not_read]), "2026-11-01")
    assert "| generic/orders/o.csv | waiting | no o.csv.done marker yet" in text
    assert "not read (waiting) generic/orders/o.csv" in report.summary()
