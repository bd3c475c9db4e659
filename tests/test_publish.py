"""Publish: one self-contained snapshot file (marts + history), incremental from the previous one,
never moving "current" back to an older date. Small hand-made warehouses (the DAG runs are in
test_faults.py)."""
from __future__ import annotations

import duckdb
import pytest

from crmtier.delivery.publish import PUBLISHED_TABLES, publish_snapshot
from tests.test_faults import table_hashes

pytestmark = pytest.mark.integration


def _warehouse(path, dates: list[str], customers: int = 20, marts_date: str | None = None):
    con = duckdb.connect(str(path))
    try:
        con.execute("create schema if not exists marts")
        con.execute("create schema if not exists history")
        as_of = marts_date or dates[-1]
        for table in PUBLISHED_TABLES:
            con.execute(f"create or replace table marts.{table} as select 'C' || i as customer_id, "
                        f"'{as_of}'::date as as_of_date, i % 3 as tier from range({customers}) t(i)")
        con.execute("create table if not exists history.customer_history (customer_id varchar, as_of_date date, "
                    "status varchar)")
        con.execute("create table if not exists history.customer_transitions (customer_id varchar, "
                    "effective_date date, as_of_date date, to_value varchar)")
        con.execute("create or replace table history.rules_seen as select 1 as n")  # no date column
        for day in dates:
            for table in ("customer_history", "customer_transitions"):
                con.execute(f"delete from history.{table} where as_of_date = ?::date", [day])
            con.execute("insert into history.customer_history select 'C' || i, ?::date, "
                        "case when i % 4 = 0 then 'dormant' else 'active' end from range(?) t(i)", [day, customers])
            con.execute("insert into history.customer_transitions select 'C' || i, ?::date, ?::date, 'dormant' "
                        "from range(?) t(i) where i % 4 = 0", [day, day, customers])
    finally:
        con.close()


def test_incremental_publish_equals_a_full_one_and_holds_no_paths(tmp_path):
    wh = tmp_path / "wh.duckdb"
    _warehouse(wh, ["1997-01-01", "1997-01-02"])
    daily = tmp_path / "daily" / "crm.duckdb"
    publish_snapshot(wh, daily, "1997-01-01", "r1")
    _warehouse(wh, ["1997-01-02", "1997-01-03"])
    result = publish_snapshot(wh, daily, "1997-01-02", "r2")  # starts from the copy of r1's file
    full = tmp_path / "full" / "crm.duckdb"
    publish_snapshot(wh, full, "1997-01-03", "r3")
    publish_snapshot(wh, daily, "1997-01-03", "r4")
    assert table_hashes(daily) == table_hashes(full)
    assert result["counts"]["customer_history"] == 60 and not result["kept_current"]
    con = duckdb.connect(str(daily), read_only=True)
    try:
        assert con.execute("select count(*) from information_schema.tables where table_type = 'VIEW'").fetchone()[0] == 0
        assert str(con.execute("select as_of_date from _snapshot").fetchone()[0]) == "1997-01-03"
    finally:
        con.close()
    assert sorted(p.name for p in daily.parent.iterdir()) == ["crm.duckdb"]  # no temporary file left


def test_an_older_date_republishes_history_and_keeps_the_current_tables(tmp_path):
    wh = tmp_path / "wh.duckdb"
    _warehouse(wh, ["2011-03-01", "2011-03-02"])
    snap = tmp_path / "crm.duckdb"
    publish_snapshot(wh, snap, "2011-03-02", "r1")
    current = {k: v for k, v in table_hashes(snap).items() if not k.startswith("main.customer_")
               or k.split(".")[1] in PUBLISHED_TABLES}
    # the older date is rebuilt: its history changes in the warehouse, the marts become that date's
    _warehouse(wh, ["2011-03-02"], marts_date="2011-03-01")
    con = duckdb.connect(str(wh))
    con.execute("update history.customer_history set status = 'churned' where as_of_date = '2011-03-01'")
    con.close()
    result = publish_snapshot(wh, snap, "2011-03-01", "r2")
    assert result["kept_current"] and result["as_of_date"] == "2011-03-02"
    con = duckdb.connect(str(snap), read_only=True)
    try:
        assert con.execute("select distinct status from customer_history where as_of_date = '2011-03-01'").fetchall() \
            == [("churned",)]
        assert con.execute("select distinct as_of_date::varchar from customer_tiers").fetchall() == [("2011-03-02",)]
        assert con.execute("select as_of_date::varchar, history_republished_for::varchar from _snapshot").fetchone() \
            == ("2011-03-02", "2011-03-01")
    finally:
        con.close()
    after = table_hashes(snap)
    for table in PUBLISHED_TABLES:
        assert after[f"main.{table}"] == current[f"main.{table}"]


def _blocks(path) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("select total_blocks from pragma_database_size()").fetchone()[0]
    finally:
        con.close()


def test_republishing_does_not_double_the_snapshot_file(tmp_path):
    """Each publish starts from a copy of the published file and replaces every mart: the old marts'
    blocks are freed before the new ones are written, so the file does not grow to twice its data."""
    wh = tmp_path / "wh.duckdb"
    _warehouse(wh, ["2011-05-01"], customers=50_000)
    target = tmp_path / "publish" / "crm.duckdb"
    publish_snapshot(wh, target, "2011-05-01", "r1")
    first = _blocks(target)
    for run in range(2, 5):
        publish_snapshot(wh, target, "2011-05-01", f"r{run}")
        assert _blocks(target) <= 1.5 * first, (run, first, _blocks(target))
