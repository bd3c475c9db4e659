"""Usage: python docs/bench_publish.py WAREHOUSE WORKDIR SCALE DATES

Publish time on a ~50k-customer history: old layout (Parquet partitions >= as-of + views)
vs new (history in the file)."""
import importlib
import importlib.util
import shutil
import sys
import time
from pathlib import Path

import duckdb

src = Path(sys.argv[1])
work = Path(sys.argv[2])
scale = int(sys.argv[3])
dates = int(sys.argv[4])
work.mkdir(parents=True, exist_ok=True)
wh = work / "wh.duckdb"
if not wh.exists():
    shutil.copy(src, wh)
    con = duckdb.connect(str(wh))
    for schema in ("marts",):
        for (t,) in con.execute(
                f"select table_name from information_schema.tables where table_schema='{schema}'").fetchall():
            cols = [r[0] for r in con.execute(
                f"select column_name from information_schema.columns "
                f"where table_schema='{schema}' and table_name='{t}'").fetchall()]
            sel = ", ".join(f"{c} || '_' || k as {c}" if c == "customer_id" else c for c in cols)
            con.execute(f"create or replace table {schema}.{t} as select {sel} from {schema}.{t}, range({scale}) r(k)")
    for (t,) in con.execute(
            "select table_name from information_schema.tables where table_schema='history'").fetchall():
        cols = [r[0] for r in con.execute(
            f"select column_name from information_schema.columns "
            f"where table_schema='history' and table_name='{t}'").fetchall()]

        def expr(c):
            if c == "customer_id":
                return "customer_id || '_' || k as customer_id"
            if c in ("as_of_date", "effective_date"):
                return f"{c} - d::int as {c}"
            return c

        sel = ", ".join(expr(c) for c in cols)
        n = con.execute(f"select count(*) from history.{t}").fetchone()[0]
        if "as_of_date" in cols and t == "customer_history":
            src_rows = (f"(select * from history.{t} "
                        f"where as_of_date = (select max(as_of_date) from history.customer_history))")
        else:
            src_rows = f"history.{t}"
        con.execute(f"create or replace table history.{t} as select {sel} "
                    f"from {src_rows}, range({scale}) r(k), range({dates}) dd(d)")
    history_tables = con.execute(
        "select table_name from information_schema.tables where table_schema='history'").fetchall()
    print({t: con.execute(f"select count(*) from history.{t}").fetchone()[0] for (t,) in history_tables},
          "customers", con.execute("select count(*) from marts.customer_tiers").fetchone()[0])
    con.close()
as_of = str(duckdb.connect(str(wh), read_only=True).execute(
    "select max(as_of_date) from history.customer_history").fetchone()[0])


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


old = load("/tmp/publish_old.py", "publish_old")  # from: git show c137b54:crmtier/delivery/publish.py
# The repository root on the path (the script runs from docs/), then the current code.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
new = importlib.import_module("crmtier.delivery.publish")

for name, mod in (("old (partitions >= as-of, views)", old), ("new (history inside the file)", new)):
    times = []
    for _ in range(3):
        target = work / name.split()[0] / "crm.duckdb"
        target.parent.mkdir(exist_ok=True)
        t = time.monotonic()
        mod.publish_snapshot(wh, target, as_of, "bench")
        times.append(time.monotonic() - t)
    size = sum(p.stat().st_size for p in target.parent.rglob("*") if p.is_file())
    print(f"{name}: {', '.join(f'{x:.2f}s' for x in times)}; published size {size/1e6:.0f} MB")
