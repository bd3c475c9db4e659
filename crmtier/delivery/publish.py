"""Publish the marts and the history as one snapshot file for BI tools.

One DuckDB file holds everything BI reads: the marts (one as-of date, the latest), the history
tables (every date) and `_snapshot` (as-of date, history through, run id). It is built as a new
file beside the target and renamed over it (`os.replace`, atomic on POSIX), so:

* a reader opening the path sees one complete snapshot, marts and history of the same as-of date:
  there is no second file that could be swapped at another moment;
* a reader holding the old file open keeps reading the old snapshot (its inode survives the
  rename) and never blocks the next publish;
* the file is self-contained (no paths inside): copied elsewhere it reads the same.

The new file starts as a copy of the published one (a file copy is much faster than copying every
history row again): the marts are replaced and, in the history tables, only rows dated on or after
the as-of date (the only ones a run changes), after checking that the rows before it still match the
warehouse (else the table is copied whole).

The published snapshot is the *latest* as-of date. Re-running an older date (a backfill) updates
history in the warehouse; publishing it republishes the history with the current tables of the
snapshot already published (kept from the copy), so "current" never moves back in time.

A run killed mid-publish leaves `.<name>.<pid>.tmp` (and its `.wal`) beside the target; the next
run removes them (crmtier.lock.clean_leftovers).
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import duckdb

from crmtier.delivery.durable import fsync_dir
from crmtier.duckdb_config import duckdb_config
from crmtier.faults import fault_point
from crmtier.permissions import share_published

log = logging.getLogger(__name__)

PUBLISHED_TABLES = ("dim_customers", "fct_customer_behaviour", "customer_value_scores",
                    "customer_tiers", "customer_status")
LEGACY_HISTORY_FOLDER = "history"  # Parquet partitions of an older layout, replaced by tables in the file


def published_tables(con: duckdb.DuckDBPyConnection, catalog: str) -> list[str]:
    """Every table in the warehouse's `marts` schema: what BI reads."""
    names = [r[0] for r in con.execute(
        "select table_name from information_schema.tables where table_catalog = ? and table_schema = 'marts' "
        "order by 1", [catalog]).fetchall()]
    missing = [t for t in PUBLISHED_TABLES if t not in names]
    if missing:
        raise RuntimeError(f"cannot publish: marts missing from the warehouse: {', '.join(missing)}")
    return names


HISTORY_DATE_COLUMNS = ("as_of_date", "effective_date")


def history_tables(con: duckdb.DuckDBPyConnection, catalog: str) -> dict[str, str | None]:
    """History tables and the date column a run rewrites from (None: small, copied whole)."""
    rows = con.execute(
        "select table_name, column_name from information_schema.columns where table_catalog = ? "
        "and table_schema = 'history' order by table_name, ordinal_position", [catalog]).fetchall()
    tables: dict[str, str | None] = {}
    for table, column in rows:
        tables.setdefault(table, None)
        if tables[table] is None and column in HISTORY_DATE_COLUMNS:
            tables[table] = column
    return tables


def _columns(con: duckdb.DuckDBPyConnection, catalog: str, schema: str, table: str) -> list[tuple]:
    return con.execute("select column_name, data_type from information_schema.columns where table_catalog = ? "
                       "and table_schema = ? and table_name = ? order by ordinal_position",
                       [catalog, schema, table]).fetchall()


def _copy_history(con: duckdb.DuckDBPyConnection, catalog: str, table: str, date_column: str | None,
                  as_of_date: str, incremental: bool) -> None:
    """History into the new snapshot. Started from a copy of the previous snapshot, only rows dated on
    or after the as-of date are rewritten (the only ones a run changes), when the rows before it still
    match the warehouse (same columns, same count); else the table is copied whole."""
    if incremental and date_column is not None and \
            _columns(con, catalog, "main", table) == _columns(con, "wh", "history", table):
        before = f"where {date_column} < ?::date"
        kept = con.execute(f"select count(*) from main.{table} {before}", [as_of_date]).fetchone()[0]
        if kept == con.execute(f"select count(*) from wh.history.{table} {before}", [as_of_date]).fetchone()[0]:
            con.execute(f"delete from main.{table} where {date_column} >= ?::date", [as_of_date])
            con.execute(f"insert into main.{table} select * from wh.history.{table} "
                        f"where {date_column} >= ?::date", [as_of_date])
            return
    con.execute(f"create or replace table main.{table} as select * from wh.history.{table}")


def published_as_of(target: str | Path) -> str | None:
    """The as-of date of the snapshot at `target`, or None when there is none (or it is unreadable)."""
    if not Path(target).exists():
        return None
    try:
        con = duckdb.connect(str(target), read_only=True, config=duckdb_config())
        try:
            return str(con.execute("select as_of_date from _snapshot").fetchone()[0])
        finally:
            con.close()
    except duckdb.Error:
        return None


def publish_snapshot(warehouse: str | Path, target: str | Path, as_of_date: str, run_id: str = "") -> dict:
    """Write the snapshot; returns {"counts": {table: rows}, "as_of_date": the snapshot's current date,
    "kept_current": True when as_of_date is older than the published one (history republished only)}."""
    warehouse, target = Path(warehouse), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    current = published_as_of(target)
    kept_current = current is not None and current > as_of_date
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    # start from a copy of the published file (a file copy is much faster than copying the history
    # rows again); the copy is private until renamed, and the published file is never written in place
    incremental = current is not None
    if incremental:
        shutil.copyfile(target, tmp)
    counts: dict[str, int] = {}
    con = duckdb.connect(str(tmp), config=duckdb_config())
    try:
        con.execute("set enable_progress_bar = false")
        con.execute(f"attach '{warehouse}' as wh (read_only)")
        catalog = con.execute("select current_database()").fetchone()[0]
        marts = published_tables(con, "wh")
        if incremental:
            _drop_views(con, catalog)  # an older layout's views over Parquet files
            if not kept_current:  # the copy's marts are all replaced: free their blocks for the new ones
                _drop_tables(con, marts)
        for table in marts:
            if kept_current:  # the current tables stay those of the latest date: those of the copy
                if not _has_table(con, catalog, table):
                    continue
            else:
                con.execute(f"create or replace table main.{table} as select * from wh.marts.{table}")
            counts[table] = con.execute(f"select count(*) from main.{table}").fetchone()[0]
        for table, date_column in history_tables(con, "wh").items():
            _copy_history(con, catalog, table, date_column, as_of_date,
                          incremental and _has_table(con, catalog, table))
            counts[table] = con.execute(f"select count(*) from main.{table}").fetchone()[0]
        snapshot_date = current if kept_current else as_of_date
        through = con.execute("select max(as_of_date) from main.customer_history").fetchone()[0] \
            if "customer_history" in counts else None
        con.execute("""create or replace table main._snapshot as
                       select ?::date as as_of_date, ?::date as history_through, ? as run_id,
                              ?::date as history_republished_for, ?::varchar as tables""",
                    [snapshot_date, through, run_id, as_of_date if kept_current else None, ",".join(counts)])
        con.execute("detach wh")
        con.execute("checkpoint")
    finally:
        con.close()
    share_published(tmp)
    fault_point("publish")
    os.replace(tmp, target)
    fsync_dir(target.parent)
    legacy = target.parent / LEGACY_HISTORY_FOLDER
    if legacy.is_dir():  # history now lives inside the snapshot file
        shutil.rmtree(legacy, ignore_errors=True)
        log.info("removed %s (history Parquet partitions of an older layout; history is in the snapshot now)",
                 legacy)
    log.info("published %s (as of %s): %s", target, snapshot_date, counts)
    return {"counts": counts, "as_of_date": snapshot_date, "kept_current": kept_current}


def _drop_tables(con: duckdb.DuckDBPyConnection, tables: list[str]) -> None:
    """Drop tables of the copied snapshot before their replacements are written, and checkpoint, so
    the new tables reuse the freed blocks: `create or replace` wrote each new table beside the old
    one and the file grew to about twice its data on every other publish."""
    for table in tables:
        con.execute(f"drop table if exists main.{table}")
    con.execute("checkpoint")


def _has_table(con: duckdb.DuckDBPyConnection, catalog: str, table: str) -> bool:
    return con.execute("select count(*) from information_schema.tables where table_catalog = ? "
                       "and table_schema = 'main' and table_name = ? and table_type = 'BASE TABLE'",
                       [catalog, table]).fetchone()[0] > 0


def _drop_views(con: duckdb.DuckDBPyConnection, catalog: str) -> None:
    for (view,) in con.execute("select table_name from information_schema.tables where table_catalog = ? "
                               "and table_type = 'VIEW'", [catalog]).fetchall():
        con.execute(f"drop view main.{view}")
