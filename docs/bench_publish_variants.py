"""Usage: python docs/bench_publish_variants.py WAREHOUSE WORKDIR SCALE DATES

Publish variants on a synthetic warehouse: the marts of WAREHOUSE (a real run's) replicated SCALE times,
the history SCALE x DATES times. Times crmtier.publish.publish_snapshot cold and again for the same date
(previous snapshot copied), ATTACH + COPY FROM DATABASE of the whole warehouse, and a plain file copy.
(docs/benchmarks.md, issue 13)"""
import shutil
import sys
import time
from pathlib import Path

import duckdb

from crmtier.delivery.publish import publish_snapshot
from crmtier.duckdb_config import duckdb_config


def load() -> str:
    return open("/proc/loadavg").read().split()[0]


def synthetic(src: Path, wh: Path, scale: int, dates: int) -> None:
    shutil.copy(src, wh)
    con = duckdb.connect(str(wh))

    def cols(schema, t):
        return [r[0] for r in con.execute("select column_name from information_schema.columns where table_schema = ? "
                                          "and table_name = ? order by ordinal_position", [schema, t]).fetchall()]

    def tables(schema):
        return [r[0] for r in con.execute("select table_name from information_schema.tables where table_schema = ? "
                                          "and table_type = 'BASE TABLE'", [schema]).fetchall()]

    for t in tables("marts"):
        sel = ", ".join(f"{c} || '_' || k as {c}" if c == "customer_id" else c for c in cols("marts", t))
        con.execute(f"create or replace table marts.{t} as select {sel} from marts.{t}, range({scale}) r(k)")
    for t in tables("history"):
        def expr(c):
            if c == "customer_id":
                return "customer_id || '_' || k as customer_id"
            return f"{c} - d::int as {c}" if c in ("as_of_date", "effective_date") else c
        rows = (f"(select * from history.{t} where as_of_date = (select max(as_of_date) from history.{t}))"
                if t == "customer_history" else f"history.{t}")
        con.execute(f"create or replace table history.{t} as select {', '.join(map(expr, cols('history', t)))} "
                    f"from {rows}, range({scale}) r(k), range({dates}) dd(d)")
    con.close()


def main() -> None:
    src, work, scale, dates = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    work.mkdir(parents=True, exist_ok=True)
    wh = work / "wh.duckdb"
    if not wh.exists():
        synthetic(src, wh, scale, dates)
    as_of = str(duckdb.connect(str(wh), read_only=True).execute("select max(as_of_date) from history.customer_history")
                .fetchone()[0])
    target = work / "pub" / "crm.duckdb"
    shutil.rmtree(target.parent, ignore_errors=True)
    for label in ("cold (no snapshot yet)", "same date again (previous snapshot copied)"):
        started, was = time.monotonic(), load()
        publish_snapshot(wh, target, as_of, "bench")
        print(f"publish {label}: {time.monotonic() - started:.1f}s, {target.stat().st_size / 1e6:.0f} MB [load {was}]")
    out = work / "copy.duckdb"
    out.unlink(missing_ok=True)
    started, was = time.monotonic(), load()
    con = duckdb.connect(str(out), config=duckdb_config())
    con.execute(f"attach '{wh}' as wh (read_only)")
    con.execute(f"copy from database wh to {out.stem}")
    con.close()
    print(f"ATTACH + COPY FROM DATABASE: {time.monotonic() - started:.1f}s, "
          f"{out.stat().st_size / 1e6:.0f} MB [load {was}]")
    started = time.monotonic()
    shutil.copyfile(target, work / "plain_copy.duckdb")
    print(f"plain file copy of the snapshot: {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
