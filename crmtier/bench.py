"""`make bench`: the gated pipeline against one hand-written DuckDB script on the same files.

Prints wall time per stage (from Airflow's task instances), peak memory, the hand-written
script's time and the ratio, whether both give the same tier and status counts, a daily
incremental run's time, and the CLV model fit time. Figures only: nothing is asserted.
"""
from __future__ import annotations

import argparse
import resource
import shutil
import sqlite3
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np

from crmtier.paths import REPO_ROOT


def handwritten(landing: Path, as_of: str) -> tuple[float, dict, dict]:
    sql = (Path(__file__).with_name("bench_handwritten.sql").read_text()
           .replace("{landing}", str(landing)).replace("{as_of}", as_of))
    con = duckdb.connect()
    started = time.monotonic()
    con.execute(sql)
    seconds = time.monotonic() - started
    tiers = dict(con.execute("select tier, count(*) from result group by 1 order by 1").fetchall())
    status = dict(con.execute("select status, count(*) from result group by 1 order by 1").fetchall())
    con.close()
    return seconds, tiers, status


def task_times(airflow_db: Path, as_of: str) -> list[tuple[str, float]]:
    con = sqlite3.connect(str(airflow_db))
    try:
        run_id = con.execute("select run_id from dag_run where dag_id = 'crm_pipeline' and "
                             "date(logical_date) = ? order by id desc limit 1", [as_of]).fetchone()[0]
        rows = con.execute("select task_id, start_date, end_date from task_instance where dag_id = 'crm_pipeline' "
                           "and run_id = ? order by start_date", [run_id]).fetchall()
    finally:
        con.close()
    from datetime import datetime
    out = []
    for task_id, start, end in rows:
        if start and end:
            seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
            out.append((task_id, seconds))
    return out


def write_delta(landing: Path, customers: int, day: str, share: float = 0.003, seed: int = 99) -> None:
    """One more day of exports: a few orders and events for existing customers."""
    rng = np.random.default_rng(seed)
    k = max(1, int(customers * share))
    ids = rng.choice(np.arange(1, customers + 1), size=k, replace=False)
    seconds = rng.integers(0, 86400, size=k)
    stamp = [f"{day} {s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}" for s in seconds]
    orders = landing / "generic" / "orders" / f"delta_{day}.csv"
    events = landing / "generic" / "events" / f"delta_{day}.csv"
    with orders.open("w") as out:
        out.write("order_id,customer_id,order_time,amount,currency,status\n")
        for i, (cid, ts) in enumerate(zip(ids, stamp)):
            out.write(f"D{day.replace('-', '')}{i:07d},C{cid:07d},{ts},{rng.uniform(10, 500):.2f},CNY,paid\n")
    with events.open("w") as out:
        out.write("event_id,customer_id,event_time,event_type,channel\n")
        for i, (cid, ts) in enumerate(zip(ids, stamp)):
            out.write(f"DE{day.replace('-', '')}{i:07d},C{cid:07d},{ts},page_view,web\n")


def run_pipeline(home: Path, landing: Path, as_of: str) -> tuple[float, int, float]:
    import os

    from crmtier.cli import run_dag

    os.environ["CRMTIER_HOME"] = str(home)
    started = time.monotonic()
    code = run_dag(as_of, landing, quiet=True)
    wall = time.monotonic() - started
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 / 1024
    return wall, code, peak_gb


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders-per-customer", type=float, default=10.0)
    parser.add_argument("--events-per-customer", type=float, default=20.0)
    parser.add_argument("--as-of", default="2026-11-01")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "var" / "bench")
    args = parser.parse_args(argv)

    from crmtier.samples.generate import generate

    tag = f"{args.customers}-{args.orders_per_customer:g}-{args.events_per_customer:g}"
    landing = args.work / f"landing-{tag}"
    marker = landing / ".complete"
    if not marker.exists():
        shutil.rmtree(landing, ignore_errors=True)
        started = time.monotonic()
        generate(landing, args.customers, seed=42, as_of=args.as_of,
                 orders_per_customer=args.orders_per_customer, events_per_customer=args.events_per_customer)
        marker.touch()
        print(f"generated workload {tag} in {time.monotonic() - started:.1f}s")
    rows = {}
    for entity in ("customers", "orders", "events"):
        rows[entity] = sum(sum(1 for _ in p.open("rb")) - 1 for p in (landing / "generic" / entity).glob("*.csv"))
    print(f"workload: {rows['customers']:,} customers, {rows['orders']:,} orders, {rows['events']:,} events")

    hand_s, hand_tiers, hand_status = handwritten(landing, args.as_of)
    print(f"hand-written DuckDB script: {hand_s:.1f}s")

    home = args.work / "home"
    shutil.rmtree(home, ignore_errors=True)
    delta_landing = args.work / "landing-delta"
    shutil.rmtree(delta_landing, ignore_errors=True)
    wall, code, peak = run_pipeline(home, landing, args.as_of)
    print(f"\ncold pipeline run (as of {args.as_of}): {wall:.1f}s, exit {code}, peak RSS of a process {peak:.2f} GB")
    for task_id, seconds in task_times(home / "airflow" / "airflow.db", args.as_of):
        print(f"  {task_id:14s} {seconds:6.1f}s")
    print(f"  ratio to the hand-written script: {wall / hand_s:.1f}x "
          f"(excluding Airflow start-up and task overhead: see stage times)")

    from crmtier.pipeline import summarize
    summary = summarize(home / "publish" / "crm.duckdb")
    same = summary["tiers"] == hand_tiers and summary["status"] == hand_status
    print(f"  same tier and status counts as the hand-written script: {same}")
    if not same:
        print(f"    pipeline: {summary}\n    script:   tiers={hand_tiers} status={hand_status}")

    next_day = (date.fromisoformat(args.as_of) + timedelta(days=1)).isoformat()
    write_delta(landing, args.customers, next_day)
    try:
        wall2, code2, _ = run_pipeline(home, landing, next_day)
        print(f"\nincremental daily run (as of {next_day}, one new day of files): {wall2:.1f}s, exit {code2}, "
              f"{wall2 / wall:.2f} of the cold run")
        for task_id, seconds in task_times(home / "airflow" / "airflow.db", next_day):
            print(f"  {task_id:14s} {seconds:6.1f}s")
    finally:
        for entity in ("orders", "events"):
            (landing / "generic" / entity / f"delta_{next_day}.csv").unlink(missing_ok=True)

    from crmtier.value.clv import benchmark_fit
    fit = benchmark_fit(n=args.customers, seed=0)
    print(f"\nCLV model fits on {args.customers:,} customers' summaries: {fit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
