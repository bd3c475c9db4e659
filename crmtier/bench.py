"""`make bench [SCALE=10]`: issue 13's table, every row measured side by side in one run.

W<s> is a workload of s × 100,000 customers, ~10 orders and ~20 events each (W10: 1M customers,
10M orders, 20M events), from the project's own generator (cached under var/bench/). Every pipeline
figure is a real Airflow DagRun (`crmtier run`, crmtier.cli.run_dag); every run's tier and status
counts are checked against the hand-written script on the same files and as-of date. Each figure is
printed with the machine's load (/proc/loadavg) before and after it, the stages' times (the run's
timings.json) and the peak RSS of the largest process of the run (/proc sampled). Nothing is
asserted: the table says which targets are met.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np

from crmtier.paths import REPO_ROOT

CUSTOMERS_PER_SCALE = 100_000  # W1
SMALL_CUSTOMERS = 5_000  # the small cold runs of the table
DAILY_SHARE = 0.01  # a daily run's new files: 1% of the workload's orders and events
# ... from this many customers, in every workload: W<s> daily and W<s/10> daily get the same day (rows and
# customers), and a day's data does not flip most of a small workload's statuses (the drift gate stops a
# run where over 25% of statuses change overnight: 300,000 rows over W1's 100,000 customers did)
DAILY_CUSTOMERS = 10_000
GIB = 1024 ** 3


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class PeakRss:
    """Largest resident set of any process under this one, sampled from /proc while a run goes."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak, self.name = interval, 0, ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        root = os.getpid()
        while not self._stop.is_set():
            children: dict[int, list[int]] = {}
            info: dict[int, tuple[int, str]] = {}
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                    rss = int(Path(f"/proc/{entry}/statm").read_text().split()[1]) * page
                except (OSError, IndexError, ValueError):
                    continue
                name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
                children.setdefault(int(rest[1]), []).append(int(entry))
                info[int(entry)] = (rss, name)
            todo = list(children.get(root, []))
            while todo:
                pid = todo.pop()
                todo.extend(children.get(pid, []))
                rss, name = info.get(pid, (0, ""))
                if rss > self.peak:
                    self.peak, self.name = rss, name
            self._stop.wait(self.interval)


@dataclass
class Measured:
    label: str
    seconds: float
    load_before: str
    load_after: str
    ok: bool = True
    rss: int = 0
    rss_process: str = ""
    stages: dict = field(default_factory=dict)
    same_counts: bool | None = None
    note: str = ""
    started_at: datetime | None = None

    def line(self) -> str:
        rss = f", peak RSS {self.rss / GIB:.2f} GiB ({self.rss_process})" if self.rss else ""
        same = "" if self.same_counts is None else f", same counts as the script: {'yes' if self.same_counts else 'NO'}"
        return (f"{self.label}: {self.seconds:.1f}s{'' if self.ok else ' FAILED'}{rss}{same} "
                f"[load {self.load_before} -> {self.load_after}]{(' ' + self.note) if self.note else ''}")


def handwritten(landing: Path, as_of: str) -> tuple[Measured, dict, dict]:
    """The limit: crmtier/bench_handwritten.sql on an in-memory database."""
    sql = (Path(__file__).with_name("bench_handwritten.sql").read_text()
           .replace("{landing}", str(landing)).replace("{as_of}", as_of))
    con = duckdb.connect()
    try:
        load = loadavg()
        started = time.monotonic()
        con.execute(sql)
        seconds = time.monotonic() - started
        tiers = dict(con.execute("select tier, count(*) from result group by 1 order by 1").fetchall())
        status = dict(con.execute("select status, count(*) from result group by 1 order by 1").fetchall())
    finally:
        con.close()
    return Measured(f"hand-written script {landing.name} as of {as_of}", seconds, load, loadavg()), tiers, status


def workload(work: Path, customers: int, as_of: str) -> Path:
    """The generated landing folder for `customers` (cached: generated once per size)."""
    from crmtier.samples.generate import generate

    landing = work / f"landing-{customers}"
    marker = landing / ".complete"
    if not marker.exists():
        shutil.rmtree(landing, ignore_errors=True)
        started = time.monotonic()
        generate(landing, customers, seed=42, as_of=as_of)
        marker.touch()
        print(f"generated {landing} in {time.monotonic() - started:.1f}s", flush=True)
    return landing


def run_landing(home: Path, source: Path) -> Path:
    """A run's own landing folder: hard links to the cached workload (new days are added beside them)."""
    landing = home / "landing"
    for csv in source.glob("generic/*/*.csv"):
        target = landing / csv.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(csv, target)
    return landing


def write_day(landing: Path, customers: int, day: str, orders: int, events: int, seed: int = 99,
              buyers: int = DAILY_CUSTOMERS) -> None:
    """One more day of exports: `orders` orders and `events` events of `buyers` existing customers, all on
    `day`."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(np.arange(1, customers + 1), size=min(customers, buyers), replace=False)
    stamp = day.replace("-", "")
    for entity, count, header in (
            ("orders", orders, "order_id,customer_id,order_time,amount,currency,status"),
            ("events", events, "event_id,customer_id,event_time,event_type,channel")):
        ids = rng.choice(chosen, size=count)
        seconds = rng.integers(0, 86400, size=count)
        amounts = rng.uniform(10, 500, size=count)
        lines = [header]
        for i in range(count):
            s = int(seconds[i])
            ts = f"{day} {s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
            if entity == "orders":
                lines.append(f"D{stamp}{i:08d},C{ids[i]:07d},{ts},{amounts[i]:.2f},CNY,paid")
            else:
                lines.append(f"DE{stamp}{i:08d},C{ids[i]:07d},{ts},page_view,web")
        (landing / "generic" / entity / f"day_{day}.csv").write_text("\n".join(lines) + "\n")


def pipeline_run(label: str, home: Path, landing: Path, as_of: str, check: bool = True,
                 migrate_first: bool = True) -> Measured:
    """One `crmtier run` (a real DagRun) in `home`, timed, with its stages and peak RSS; its tier and
    status counts compared with the hand-written script's on the same files and date."""
    from crmtier.cli import airflow_env, ensure_airflow_db, run_dag
    from crmtier.pipeline import summarize

    os.environ["CRMTIER_HOME"] = str(home)
    if migrate_first:  # the metadata DB exists already: measured apart (see first_run)
        ensure_airflow_db(airflow_env())
    load = loadavg()
    with PeakRss() as peak:
        started, started_at = time.monotonic(), datetime.now(UTC)
        code = run_dag(as_of, landing, quiet=True)
        seconds = time.monotonic() - started
    timings = home / "reports" / as_of / "timings.json"
    stages = {k: v["seconds"] for k, v in json.loads(timings.read_text()).items()} if timings.exists() else {}
    measured = Measured(label, seconds, load, loadavg(), code == 0, peak.peak, peak.name, stages)
    measured.started_at = started_at
    if check and code == 0:
        hand, tiers, status = handwritten(landing, as_of)
        summary = summarize(home / "publish" / "crm.duckdb")
        measured.same_counts = summary["tiers"] == tiers and summary["status"] == status
        measured.note = f"(script {hand.seconds:.1f}s)"
        if not measured.same_counts:
            measured.note += f" pipeline {summary['tiers']} {summary['status']}; script {tiers} {status}"
    print(measured.line(), flush=True)
    return measured


STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT[\d:.]+)Z? ")
COLLECTOR = re.compile(r"garbage collector: (\d+) collections, ([\d.]+)s")  # crmtier.long_lived.collections_line
DBT_STAMP = re.compile(r"(\d\d:\d\d:\d\d\.\d+) \[\w+ *\] \[MainThread\]: (.*)")


def fixed_cost(home: Path, as_of: str, started: datetime) -> list[tuple[str, float]]:
    """Where a run's time goes outside the stages' own work, from the timestamps of its log
    (<home>/logs/run-<as-of>.log) and dbt's log: Airflow start-up and DAG parse, the execution API's
    start-up, each task's overhead, each dbt invocation's start-up, parse and run, the GX import."""
    lines = (home / "logs" / f"run-{as_of}.log").read_text(errors="replace").splitlines()
    stamped = [(datetime.fromisoformat(m.group(1)).replace(tzinfo=UTC), line)
               for line in lines if (m := STAMP.match(line))]

    def first(text: str, after: datetime = started) -> datetime | None:
        return next((t for t, line in stamped if text in line and t >= after), None)

    phases: list[tuple[str, float]] = []

    def span(name: str, a: datetime | None, b: datetime | None) -> None:
        if a and b:
            phases.append((name, (b - a).total_seconds()))

    bag = first("Filling up the DagBag")
    span("process start + Airflow import (until DagBag fill)", started, bag)
    created = first("Created dag run")
    span("DAG parse, serialisation, DagRun created", bag, created)
    ingest_run = first("[DAG TEST] running task")
    span("execution API start-up (first task)", ingest_run, first("Task started", ingest_run or started))
    gx = next((line for _, line in stamped if "GX imported in" in line), "")
    if gx:
        phases.append(("GX import (first gate)", float(re.search(r"GX imported in ([\d.]+)s", gx).group(1))))
    timings = json.loads((home / "reports" / as_of / "timings.json").read_text())
    tasks = {line.split("task_id=")[1].split()[0]: t for t, line in stamped if "[DAG TEST] starting task_id=" in line}
    ends = {line.split("task_id=")[1].split()[0]: t for t, line in stamped if "[DAG TEST] end task task_id=" in line}
    stage_of = {"ingest": "ingest", "gate_raw": "gate raw", "dbt_staging": "dbt staging",
                "gate_staging": "gate staging", "dbt_marts": "dbt marts", "gate_marts": "gate marts",
                "gate_drift": "gate drift", "publish": "publish", "outbox": "outbox"}
    overhead = sum((ends[t] - tasks[t]).total_seconds() - timings.get(stage_of.get(t, ""), {}).get("seconds", 0)
                   for t in tasks if t in ends)
    phases.append((f"Airflow per-task overhead, {len(tasks)} tasks (task wall minus stage)", overhead))
    span("all tasks (first start to last end)", min(tasks.values(), default=None), max(ends.values(), default=None))
    # dbt's log has times of day (same day as the run)
    dbt_log = home / "dbt_target" / "logs" / "dbt.log"
    marks: list[tuple[datetime, str]] = []
    for line in dbt_log.read_text(errors="replace").splitlines() if dbt_log.exists() else []:
        m = DBT_STAMP.search(line)
        if m:
            t = datetime.combine(started.date(), datetime.strptime(m.group(1), "%H:%M:%S.%f").time(), UTC)
            if t >= started:
                marks.append((t, m.group(2)))
    launches = [t for t, line in stamped if "running dbt build" in line]
    found = [t for t, msg in marks if msg.startswith("Found ")]
    done = [t for t, msg in marks if msg.startswith("Finished running") or "succeeded at" in msg or "failed at" in msg]
    parse_says = ("Unable to do partial parsing", "Partial parsing enabled:", "Nothing changed")

    def parse_note(a: datetime, b: datetime) -> str:  # what dbt said about parsing in this invocation
        return "; ".join(msg for t, msg in marks if a <= t <= b and msg.startswith(parse_says)) or "no full parse"
    for i, launch in enumerate(launches):  # dbt runs in process: imports and parse on first use only
        ready = next((t for t in found if t >= launch), None)
        finished = next((t for t in done if ready and t >= ready), None)
        span(f"dbt #{i + 1}: start + parse ({parse_note(launch, ready) if ready else '?'})", launch, ready)
        span(f"dbt #{i + 1}: build", ready, finished)
    return phases + collector_phase(lines)


def collector_phase(lines: list[str]) -> list[tuple[str, float]]:
    """The garbage collector's time over the whole process, from the runner's last DagRun line."""
    found = [m for line in lines if (m := COLLECTOR.search(line))]
    return [(f"Python garbage collection, {found[-1].group(1)} collections (whole process)",
             float(found[-1].group(2)))] if found else []


FLOOR_DAG = '''"""One task doing nothing: the floor of an embedded Airflow DagRun (crmtier.bench)."""
import pendulum
from airflow.sdk import dag, task


@dag(dag_id="bench_floor", schedule=None, start_date=pendulum.datetime(2000, 1, 1, tz="UTC"))
def bench_floor():
    @task
    def nothing() -> None:
        return None

    nothing()


bench_floor()
'''


def airflow_floor(home: Path, as_of: str) -> Measured:
    """`airflow dags test` of a one-task DAG in the same Airflow home: what any embedded DagRun costs."""
    from crmtier.cli import airflow_env

    os.environ["CRMTIER_HOME"] = str(home)
    folder = home / "bench_floor_dags"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench_floor.py").write_text(FLOOR_DAG)
    env = {**airflow_env(), "AIRFLOW__CORE__DAGS_FOLDER": str(folder)}
    load = loadavg()
    started = time.monotonic()
    proc = subprocess.run([str(Path(os.sys.executable).with_name("airflow")), "dags", "test", "bench_floor", as_of],
                          env=env, capture_output=True, text=True)
    measured = Measured("Airflow floor: one-task `airflow dags test`", time.monotonic() - started, load, loadavg(),
                        proc.returncode == 0)
    print(measured.line(), flush=True)
    return measured


def small_home(work: Path, fresh: bool) -> Path:
    return work / ("home-small-fresh" if fresh else "home-small-warm")


def first_run(work: Path, landing: Path, as_of: str, fresh: bool) -> Measured:
    """A small cold run in a new home: with the metadata DB made first (untimed) or by the run itself."""
    home = small_home(work, fresh)
    shutil.rmtree(home, ignore_errors=True)
    label = (f"{SMALL_CUSTOMERS:,} customers, fresh home (metadata DB creation included)" if fresh
             else f"{SMALL_CUSTOMERS:,} customers, cold warehouse, metadata DB initialised")
    return pipeline_run(label, home, run_landing(home, landing), as_of, migrate_first=not fresh)


def small_idle_run(work: Path, as_of: str) -> Measured:
    """The next date in the warm small home, with no new files: the fixed cost of a DagRun (Airflow, dbt
    and GX start-up) with little data behind it."""
    home = small_home(work, fresh=False)
    return pipeline_run(f"{SMALL_CUSTOMERS:,} customers, no new files (next date)", home, home / "landing", as_of)


def disk_usage(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def stage_table(runs: list[Measured]) -> None:
    stages = list(dict.fromkeys(s for run in runs for s in run.stages))
    print("\nstages (seconds, from each run's timings.json)")
    print(f"  {'stage':16s}" + "".join(f"{run.label.split(':')[0][:14]:>16s}" for run in runs))
    for stage in [*stages, "whole run"]:
        cells = [run.seconds if stage == "whole run" else run.stages.get(stage) for run in runs]
        print(f"  {stage:16s}" + "".join(f"{'' if c is None else f'{c:.1f}':>16s}" for c in cells))
    loads = "".join(f"{run.load_before.split()[0]:>16s}" for run in runs)
    print(f"  {'load (1 min)':16s}{loads}")


def row(figure: str, measured: str, target: str, met: bool | None, load: str, runs: tuple = ()) -> tuple:
    """One row of issue 13's table; a figure that comes from a failed run (`runs`) is not met."""
    failed = [m.label for m in runs if not m.ok]
    if failed:
        return figure, f"{measured} from a FAILED run ({', '.join(failed)})", target, "NO", load
    return figure, measured, target, {True: "yes", False: "NO", None: "printed"}[met], load


def _parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=10.0, help="W<scale>: scale × 100,000 customers (default 10)")
    parser.add_argument("--as-of", default="2026-11-01")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "var" / "bench")
    parser.add_argument("--skip-small", action="store_true",
                        help="leave out the three 5,000-customer runs (cold, fresh home, no new files)")
    args = parser.parse_args(argv)
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    return args


def _describe_workload(landing: Path, scale: float) -> tuple[int, int]:
    """Print the workload's size; (new orders, new events) of one daily delivery."""
    rows = {e: sum(sum(1 for _ in p.open("rb")) - 1 for p in (landing / "generic" / e).glob("*.csv"))
            for e in ("customers", "orders", "events")}
    size = sum(p.stat().st_size for p in landing.glob("generic/*/*.csv"))
    print(f"workload W{scale:g}: {rows['customers']:,} customers, {rows['orders']:,} orders, {rows['events']:,} events "
          f"({size / 1e9:.2f} GB of CSV)", flush=True)
    return round(DAILY_SHARE * rows["orders"]), round(DAILY_SHARE * rows["events"])


@dataclass
class _BenchRuns:
    """Every measurement `main` reports."""

    scale: float
    tenth: float
    hand: Measured
    home: Path            # the big run's home
    cold: Measured
    daily: Measured
    idle: Measured
    floor: Measured
    disk: int             # bytes of the big run's home
    cold_small: Measured
    daily_small: Measured
    warm: Measured | None
    fresh: Measured | None
    idle_small: Measured | None = None

    @property
    def runs(self) -> list[Measured]:
        small = [m for m in (self.warm, self.fresh, self.idle_small) if m is not None]
        return [self.cold, self.daily, self.idle, self.cold_small, self.daily_small, *small]


def daily_buyers(small: int) -> int:
    """Customers the daily day goes to, the same in both workloads: at most a tenth of the smaller one (a
    day that touches every customer of it changes most statuses and rightly trips the drift gate)."""
    return max(1, min(DAILY_CUSTOMERS, small // 10))


def _big_runs(work: Path, big: int, scale: float, landing_big: Path, days: tuple[str, str, str], new_orders: int,
              new_events: int, buyers: int) -> tuple[Path, Measured, Measured, Measured, Measured, int]:
    """(home, cold, daily, no new files, Airflow floor, disk bytes) of the big workload."""
    day3 = days[2]
    day_rows = f"{new_orders + new_events:,} new rows of {buyers:,} customers"
    home, landing, cold, daily = _cold_and_daily(work, big, f"W{scale:g}", landing_big, days, new_orders, new_events,
                                                 day_rows, buyers)
    idle = pipeline_run(f"W{scale:g} no new files", home, landing, day3)
    floor = airflow_floor(home, day3)
    print(f"where the fixed cost goes (run with no new files, as of {day3}; load {idle.load_before}):")
    for name, seconds in fixed_cost(home, day3, idle.started_at):
        print(f"  {name:62s} {seconds:6.1f}s")
    return home, cold, daily, idle, floor, disk_usage(home)


def _small_runs(work: Path, small: int, tenth: float, landing_small: Path, days: tuple[str, str, str],
                new_orders: int, new_events: int, buyers: int) -> tuple[Measured, Measured]:
    """(cold, daily) of the workload a tenth the size, with the same daily delivery."""
    _, _, cold_small, daily_small = _cold_and_daily(work, small, f"W{tenth:g}", landing_small, days, new_orders,
                                                    new_events, "same new rows", buyers)
    return cold_small, daily_small


def _cold_and_daily(work: Path, customers: int, label: str, landing_source: Path, days: tuple[str, str, str],
                    new_orders: int, new_events: int, daily_note: str,
                    buyers: int) -> tuple[Path, Path, Measured, Measured]:
    """(home, landing, cold, daily) of one workload in a fresh home: a cold run, then one new day of files."""
    day1, day2, _ = days
    home = work / f"home-{customers}"
    shutil.rmtree(home, ignore_errors=True)
    landing = run_landing(home, landing_source)
    cold = pipeline_run(f"{label} cold", home, landing, day1)
    write_day(landing, customers, day2, new_orders, new_events, buyers=buyers)
    return home, landing, cold, pipeline_run(f"{label} daily: {daily_note}", home, landing, day2)


def _issue_table(r: _BenchRuns) -> list[tuple]:
    """The rows of issue 13's table: figure, measured, target, met?, load."""
    scale, tenth, hand, cold, daily, idle = r.scale, r.tenth, r.hand, r.cold, r.daily, r.idle
    runs = r.runs
    peak = max(runs[:3], key=lambda m: m.rss)
    w = f"W{scale:g}"
    table = [
        row(f"{w} cold gated DagRun / hand-written script", f"{cold.seconds / hand.seconds:.1f}× "
            f"({cold.seconds:.1f}s / {hand.seconds:.1f}s)", "≤ 6×", cold.seconds <= 6 * hand.seconds,
            f"{cold.load_before} / {hand.load_before}", (cold,)),
        row(f"{w} daily run / {w} cold", f"{daily.seconds / cold.seconds:.2f} ({daily.seconds:.1f}s)", "≤ 0.2",
            daily.seconds <= 0.2 * cold.seconds, daily.load_before, (cold, daily)),
        row(f"{w} daily / W{tenth:g} daily (same new rows)", f"{daily.seconds / r.daily_small.seconds:.2f} "
            f"({r.daily_small.seconds:.1f}s)", "≤ 1.5", daily.seconds <= 1.5 * r.daily_small.seconds,
            r.daily_small.load_before, (daily, r.daily_small)),
    ]
    if r.idle_small:  # the fixed cost itself: a date with no new files and little data behind it
        table.append(row(f"run with no new files (fixed cost), {SMALL_CUSTOMERS:,} customers",
                         f"{r.idle_small.seconds:.1f}s (Airflow floor {r.floor.seconds:.1f}s)", "≤ 12 s",
                         r.idle_small.seconds <= 12, f"{r.idle_small.load_before} / {r.floor.load_before}",
                         (r.idle_small,)))
    # ... and at the big scale, where a date also recomputes every customer's marts
    table.append(row(f"run with no new files, {w} (fixed cost + a date's marts over every customer)",
                     f"{idle.seconds:.1f}s (Airflow floor {r.floor.seconds:.1f}s)", "≤ 12 s", idle.seconds <= 12,
                     f"{idle.load_before} / {r.floor.load_before}", (idle,)))
    if r.warm and r.fresh:
        table += [row(f"{SMALL_CUSTOMERS:,} customers, cold warehouse, metadata DB initialised",
                      f"{r.warm.seconds:.1f}s", "≤ 20 s", r.warm.seconds <= 20, r.warm.load_before, (r.warm,)),
                  row(f"first run in a fresh home, {SMALL_CUSTOMERS:,} customers", f"{r.fresh.seconds:.1f}s",
                      "printed", None, r.fresh.load_before, (r.fresh,))]
    table.append(row(f"peak RSS of the largest process, {w}", f"{peak.rss / GIB:.2f} GiB ({peak.rss_process}, "
                     f"{peak.label})", "≤ 4 GiB" if scale <= 10 else "≤ 16 GiB",
                     peak.rss <= (4 if scale <= 10 else 16) * GIB, peak.load_before))
    if scale >= 100:
        table.append(row(f"{w} completes",
                         f"{'yes' if cold.ok else 'NO'}: {cold.seconds:.0f}s, home {r.disk / 1e9:.1f} GB on disk",
                         "≤ 16 GiB RSS", cold.ok and peak.rss <= 16 * GIB, cold.load_before))
    else:
        table.append(row("W100", "not run here (`make bench SCALE=100`)", "completes, ≤ 16 GiB", None, ""))
    table.append(row(f"{w} cold / W{tenth:g} cold", f"{cold.seconds / r.cold_small.seconds:.1f} "
                     f"({r.cold_small.seconds:.1f}s; 10 = linear)", "printed", None, r.cold_small.load_before,
                     (cold, r.cold_small)))
    checked = [m for m in runs if m.same_counts is not None]
    table.append(row("same tier and status counts as the script", f"{sum(m.same_counts for m in checked)} of "
                     f"{len(checked)} runs", "all", all(m.same_counts for m in checked) and len(checked) == len(runs),
                     ""))
    return table


def joint_limit_line(r: _BenchRuns) -> str:
    """What the first two rows allow together, measured in the same run: cold <= 6 × the script and daily <=
    0.2 × cold put a daily DagRun at <= 1.2 × the script; beside it, what a DagRun costs with no data to do."""
    allowed = 0.2 * 6 * r.hand.seconds
    fixed = r.idle_small or r.idle
    return (f"rows 1 and 2 together allow a W{r.scale:g} daily DagRun of at most 0.2 × 6 × the script = "
            f"{allowed:.1f}s; a DagRun with no new files ({fixed.label}) took {fixed.seconds:.1f}s, the one-task "
            f"Airflow floor {r.floor.seconds:.1f}s: both rows can be met together only if "
            f"{'they fit' if fixed.seconds <= allowed else 'the fixed cost falls below ' + f'{allowed:.1f}s'}")


def _print_issue_table(r: _BenchRuns, table: list[tuple]) -> None:
    print(f"\nissue 13's table (W{r.scale:g}; home {r.home}: {r.disk / 1e9:.2f} GB on disk; "
          f"ru_maxrss of children {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 / 1024:.2f} GiB)")
    print("| figure | measured | target | met? | load (1/5/15 min) |\n|---|---|---|---|---|")
    for cells in table:
        print("| " + " | ".join(cells) + " |")
    print(f"\n{joint_limit_line(r)}")


def main(argv=None) -> int:
    args = _parse_args(argv)
    scale, tenth = args.scale, args.scale / 10
    big, small = round(scale * CUSTOMERS_PER_SCALE), round(tenth * CUSTOMERS_PER_SCALE)
    day1 = args.as_of
    day2 = (date.fromisoformat(day1) + timedelta(days=1)).isoformat()
    day3 = (date.fromisoformat(day1) + timedelta(days=2)).isoformat()
    print(f"make bench: W{scale:g} ({big:,} customers) against W{tenth:g} ({small:,}); load {loadavg()}; "
          f"{os.cpu_count()} cores", flush=True)

    landing_big = workload(args.work, big, day1)
    landing_small = workload(args.work, small, day1)
    landing_5k = workload(args.work, SMALL_CUSTOMERS, day1)
    new_orders, new_events = _describe_workload(landing_big, scale)

    hand, _, _ = handwritten(landing_big, day1)
    print(hand.line(), flush=True)

    days = (day1, day2, day3)
    buyers = daily_buyers(small)
    home, cold, daily, idle, floor, disk = _big_runs(args.work, big, scale, landing_big, days, new_orders,
                                                     new_events, buyers)
    cold_small, daily_small = _small_runs(args.work, small, tenth, landing_small, days, new_orders, new_events,
                                          buyers)
    warm = fresh = idle_small = None
    if not args.skip_small:
        warm = first_run(args.work, landing_5k, day1, fresh=False)
        fresh = first_run(args.work, landing_5k, day1, fresh=True)
        idle_small = small_idle_run(args.work, day2)
    results = _BenchRuns(scale, tenth, hand, home, cold, daily, idle, floor, disk, cold_small, daily_small,
                         warm, fresh, idle_small)
    runs = results.runs

    stage_table(runs)
    _print_issue_table(results, _issue_table(results))
    failed = [r.label for r in runs if not r.ok]
    if failed:
        print(f"\nruns that FAILED: {', '.join(failed)} (see their homes' logs/)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
