"""Publish the marts as one consistent snapshot file for BI tools.

The snapshot is built as a new DuckDB file next to the target and renamed over it
(`os.replace`, atomic on POSIX). A BI tool holding the old file open keeps reading the
old snapshot (its inode survives the rename) and never blocks the next publish; a reader
opening the path always sees a complete snapshot.
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


def publish_snapshot(warehouse: str | Path, target: str | Path, as_of_date: str, run_id: str = "") -> dict:
    warehouse, target = Path(warehouse), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    counts: dict[str, int] = {}
    con = duckdb.connect(str(tmp))
    try:
        con.execute(f"attach '{warehouse}' as wh (read_only)")
        for table in published_tables(con, "wh"):
            con.execute(f"create table main.{table} as select * from wh.marts.{table}")
            counts[table] = con.execute(f"select count(*) from main.{table}").fetchone()[0]
        con.execute("""create table main._snapshot as
                       select ?::date as as_of_date, ? as run_id, ?::varchar as tables""",
                    [as_of_date, run_id, ",".join(counts)])
        con.execute("detach wh")
    finally:
        con.close()
    os.replace(tmp, target)
    log.info("published %s (as of %s): %s", target, as_of_date, counts)
    return counts
