"""Publish the marts as one consistent snapshot file for BI tools.

The snapshot is built as a new DuckDB file next to the target and renamed over it
(`os.replace`, atomic on POSIX). A BI tool holding the old file open keeps reading the
old snapshot (its inode survives the rename) and never blocks the next publish; a reader
opening the path always sees a complete snapshot.

History tables (schema `history`: one row per customer and date) grow with every run, so
they are not copied whole: each run rewrites only the Parquet partitions of dates on or after
its as-of date (the only ones it can change), each file atomically, and the snapshot holds
views over the partitions. Partitions are written before the snapshot is swapped.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

PUBLISHED_TABLES = ("dim_customers", "fct_customer_behaviour", "customer_value_scores",
                    "customer_tiers", "customer_status")


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
    """History tables and the date column they are partitioned by (None: small, copied whole)."""
    rows = con.execute(
        "select table_name, column_name from information_schema.columns where table_catalog = ? "
        "and table_schema = 'history' order by table_name, ordinal_position", [catalog]).fetchall()
    tables: dict[str, str | None] = {}
    for table, column in rows:
        tables.setdefault(table, None)
        if tables[table] is None and column in HISTORY_DATE_COLUMNS:
            tables[table] = column
    return tables


def publish_history_partitions(con: duckdb.DuckDBPyConnection, root: Path, table: str, date_column: str,
                               as_of_date: str) -> int:
    """Rewrite the partitions of `table` for dates >= as_of_date; return rows written."""
    folder = root / table
    dates = [str(r[0]) for r in con.execute(
        f"select distinct {date_column} from wh.history.{table} where {date_column} >= ?::date order by 1",
        [as_of_date]).fetchall()]
    written = 0
    for day in dates:
        part = folder / f"{date_column}={day}"
        part.mkdir(parents=True, exist_ok=True)
        tmp = part / f".data.{os.getpid()}.parquet.tmp"
        written += con.execute(f"copy (select * from wh.history.{table} where {date_column} = ?::date) "
                               f"to '{tmp}' (format parquet)", [day]).fetchone()[0]  # COPY returns its row count
        os.replace(tmp, part / "data.parquet")
    return written


def publish_snapshot(warehouse: str | Path, target: str | Path, as_of_date: str, run_id: str = "") -> dict:
    warehouse, target = Path(warehouse), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    history_root = target.parent / "history"
    counts: dict[str, int] = {}
    con = duckdb.connect(str(tmp))
    try:
        con.execute(f"attach '{warehouse}' as wh (read_only)")
        for table in published_tables(con, "wh"):
            con.execute(f"create table main.{table} as select * from wh.marts.{table}")
            counts[table] = con.execute(f"select count(*) from main.{table}").fetchone()[0]
        for table, date_column in history_tables(con, "wh").items():
            if date_column is None:
                con.execute(f"create table main.{table} as select * from wh.history.{table}")
                counts[table] = con.execute(f"select count(*) from main.{table}").fetchone()[0]
                continue
            counts[f"{table} (partitions >= {as_of_date})"] = publish_history_partitions(
                con, history_root, table, date_column, as_of_date)
            if any((history_root / table).glob("*/data.parquet")):
                pattern = (history_root / table).resolve() / "*" / "data.parquet"
                con.execute(f"create view main.{table} as select * from read_parquet('{pattern}', hive_partitioning = false)")
        con.execute("""create table main._snapshot as
                       select ?::date as as_of_date, ? as run_id, ?::varchar as tables""",
                    [as_of_date, run_id, ",".join(counts)])
        con.execute("detach wh")
    finally:
        con.close()
    os.replace(tmp, target)
    log.info("published %s (as of %s): %s", target, as_of_date, counts)
    return counts
