"""`crmtier` command line: generate sample exports, run the Airflow DAG embedded, print summaries."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from crmtier.airflow_runner import VERDICT
from crmtier.paths import DAGS_DIR, get_paths

DAG_ID = "crm_pipeline"


def airflow_env(landing: Path | None = None) -> dict[str, str]:
    """Environment for an embedded Airflow: local SQLite metadata DB under var/airflow, our dags folder."""
    paths = get_paths()
    home = paths.airflow_home
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CRMTIER_HOME": str(paths.home),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": os.environ.get("AIRFLOW__CORE__UNIT_TEST_MODE", "False"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"),
        "GX_ANALYTICS_ENABLED": "false",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        # task logs hold run details: owner-only like everything else (Airflow would chmod them 0664/0775)
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS": "0o600",
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS": "0o700",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(DAGS_DIR.parent), os.environ.get("PYTHONPATH")])),
    }
    env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}")
    if landing is not None:
        env["CRMTIER_LANDING"] = str(Path(landing).resolve())
    return env


def _airflow(args: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    exe = str(Path(sys.executable).with_name("airflow"))
    return subprocess.run([exe, *args], env=env, **kw)


# a SQLite metadata DB that `airflow db migrate` made (same Airflow version), copied into a new home
# instead of migrating again: the test suite's many fresh homes pay the ~15 s migration once
AIRFLOW_DB_TEMPLATE_ENV = "CRMTIER_AIRFLOW_DB_TEMPLATE"


def ensure_airflow_db(env: dict[str, str]) -> None:
    marker = Path(env["AIRFLOW_HOME"]) / ".migrated"
    if marker.exists() and env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite"):
        return
    template, db = env.get(AIRFLOW_DB_TEMPLATE_ENV), Path(env["AIRFLOW_HOME"]) / "airflow.db"
    if template and env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{db}" and not db.exists():
        shutil.copyfile(template, db)
        marker.touch()
        return
    proc = _airflow(["db", "migrate"], env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"airflow db migrate failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    marker.touch()


PROGRESS = re.compile(r"\[crmtier\] (.*?)(?:\s+\[[\w.]+\]\s+loc=\S+)?\s*$")


def run_dag(as_of: str | list[str], landing: Path | None = None, quiet: bool = False, wait: bool = False) -> int:
    """Run the whole DAG for one as-of date, or several in date order (a backfill), as real Airflow
    DagRuns in a child process (crmtier.airflow_runner), streaming progress. One run per home and
    per warehouse (crmtier.lock): another run exits at once saying who holds it, or waits (`wait`)."""
    from crmtier.lock import LockBusy, home_lock, warehouse_lock
    from crmtier.permissions import apply_umask, secure_home

    dates = [as_of] if isinstance(as_of, str) else list(as_of)
    previous_umask = apply_umask()  # owner-only files (CRMTIER_UMASK), inherited by Airflow, dbt and DuckDB
    paths = get_paths()
    paths.home.mkdir(parents=True, exist_ok=True)
    locks = []
    try:
        for lock in (home_lock(paths.home), warehouse_lock(paths.warehouse)):
            locks.append(lock.acquire(", ".join(dates), wait=wait, on_wait=lambda who: print(
                f"[crmtier] waiting: {who}", file=sys.stderr, flush=True)))
    except LockBusy as exc:
        for lock in locks:
            lock.release()
        print(f"[crmtier] not started: {exc}. Wait for it to finish (or `crmtier run --wait`).", file=sys.stderr)
        os.umask(previous_umask)
        return 75  # EX_TEMPFAIL
    try:
        tightened = secure_home(paths.home)
        if tightened and not quiet:
            print(f"[crmtier] permissions: {tightened} file(s) under {paths.home} made owner-only "
                  "(CRMTIER_UMASK / CRMTIER_SHARE_GROUP to share)", flush=True)
        return _run_locked(dates, landing, quiet, [lock.fd for lock in locks])
    finally:
        for lock in locks:
            lock.release()
        os.umask(previous_umask)


def _run_locked(dates: list[str], landing: Path | None, quiet: bool, lock_fds: list[int]) -> int:
    from crmtier.lock import LOCK_HELD_ENV

    as_of = dates[0] if len(dates) == 1 else f"{dates[0]}_{dates[-1]}"
    paths = get_paths()
    env = {**airflow_env(landing), LOCK_HELD_ENV: "1"}
    ensure_airflow_db(env)
    log_dir = paths.home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"run-{as_of}.log"
    started = time.monotonic()
    if not quiet:
        print(f"[crmtier] run {DAG_ID} as of {', '.join(dates) if len(dates) < 4 else as_of.replace('_', ' to ')}; landing {env.get('CRMTIER_LANDING', paths.landing)}; "
              f"full log {log_file}", flush=True)
    seen = set()
    verdicts: list[str] = []  # the runner's one-sentence reason when a DagRun did not do its work
    with log_file.open("w") as out:
        # the child shares the locks' descriptors: they are held while any process of the run lives
        proc = subprocess.Popen([sys.executable, "-m", "crmtier.airflow_runner", *dates], env=env,
                                stdout=subprocess.PIPE, pass_fds=lock_fds,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if line.startswith(VERDICT):
                verdicts.append(line.strip())
                continue  # shown once, with the failure
            match = PROGRESS.search(line)
            if match and not quiet:
                message = match.group(1).strip()
                if message and not message.startswith("loc=") and message not in seen:  # Airflow may echo a task's log line twice
                    seen.add(message)
                    print(f"  {message}", flush=True)
        code = proc.wait()
    failed = _failure_lines(log_file)
    summary, wrong_snapshot = _published_summary(paths.publish, dates[-1]) if code == 0 else (None, "")
    if code != 0 or failed or wrong_snapshot:
        print(f"[crmtier] run FAILED after {time.monotonic() - started:.0f}s; see {log_file}", file=sys.stderr)
        for line in [*verdicts, *([f"{VERDICT}: {wrong_snapshot}"] if wrong_snapshot else []), *failed][:40]:
            print(f"  {line}", file=sys.stderr)
        return code or 1
    if not quiet:
        from crmtier.pipeline import format_summary
        print(format_summary(summary))
        print(f"[crmtier] run succeeded in {time.monotonic() - started:.1f}s", flush=True)
    return 0


def _published_summary(snapshot: Path, as_of: str) -> tuple[dict | None, str]:
    """The summary of the snapshot this run published, or a sentence saying why there is none."""
    from crmtier.pipeline import summarize

    if not snapshot.exists():
        return None, f"nothing was published: {snapshot} does not exist."
    summary = summarize(snapshot)
    if as_of == summary["history_republished_for"]:
        print(f"[crmtier] {as_of} is older than the published snapshot: history was republished for it; "
              f"the current tables stay as of {summary['as_of_date']}", flush=True)
    elif summary["as_of_date"] != as_of:
        return None, f"the published snapshot is as of {summary['as_of_date']}, not {as_of}: this run did not publish."
    return summary, ""


TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\dT")


def _failure_lines(log_file: Path) -> list[str]:
    """The failure messages of a run (a gate's message spans several lines), each once."""
    lines: list[str] = []
    capture = False
    for line in log_file.read_text(errors="replace").splitlines():
        match = PROGRESS.search(line)
        if match and TIMESTAMPED.match(line):
            capture = "FAILED" in line or " failed" in line
            text = match.group(1).strip()
        elif capture and line.strip() and not TIMESTAMPED.match(line) and "Traceback" not in line:
            text = re.sub(r"\s*(\[[\w.]+\]\s+)?loc=\S+$", "", PROGRESS.sub(r"\1", line.strip())).strip()
        else:
            capture = capture and not TIMESTAMPED.match(line)
            continue
        if capture and text and not text.startswith("loc=") and text not in lines:
            lines.append(text)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crmtier", description="CRM tiers and status pipeline (用户分级 / 用户状态)")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write deterministic sample CRM exports")
    gen.add_argument("--customers", type=int, default=2000)
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--out", type=Path, default=None, help="landing folder (default var/landing)")
    gen.add_argument("--as-of", default="2026-11-01", help="last day covered by the exports")
    gen.add_argument("--orders-per-customer", type=float, default=10.0)
    gen.add_argument("--events-per-customer", type=float, default=20.0)
    gen.add_argument("--source", default="generic", help="emit the layout of this CRM (generic, fxiaoke, zoho_crm, "
                                                           "salesforce, hubspot)")

    run = sub.add_parser("run", help="run the Airflow DAG for one as-of date (embedded, no server)")
    run.add_argument("--landing", type=Path, default=None)
    run.add_argument("--as-of", type=date.fromisoformat, help="one as-of date")
    run.add_argument("--from", dest="date_from", type=date.fromisoformat, help="backfill: first as-of date")
    run.add_argument("--to", dest="date_to", type=date.fromisoformat, help="backfill: last as-of date")
    run.add_argument("--wait", action="store_true", help="wait for another run holding this home instead of exiting")

    retract = sub.add_parser("retract", help="take a loaded file's rows out of the warehouse (raw.load_log "
                                             "keeps the record); the next run rebuilds staging without them")
    retract.add_argument("load_id", help="the load id, as in the run's ingest report or raw.load_log")
    retract.add_argument("--reason", default="", help="why (kept in raw.load_log.message)")

    summ = sub.add_parser("summary", help="print tier and status counts of the published snapshot")
    summ.add_argument("--snapshot", type=Path, default=None)

    expl = sub.add_parser("explain", help="why a customer has its tier and status (from the published snapshot)")
    expl.add_argument("customer_id")
    expl.add_argument("--as-of", type=date.fromisoformat, default=None, help="an earlier date kept in history")
    expl.add_argument("--json", action="store_true", help="machine-readable output")
    expl.add_argument("--snapshot", type=Path, default=None)

    check = sub.add_parser("check-model", help="calibration/holdout check of the CLV model (reads the warehouse "
                                               "read-only)")
    check.add_argument("--as-of", type=date.fromisoformat, required=True, help="end of the holdout window")
    check.add_argument("--holdout-days", type=int, default=90)
    check.add_argument("--json", action="store_true")

    args = parser.parse_args(argv)
    if args.command == "explain":
        from crmtier.report.explain import main as explain_main
        return explain_main(args.customer_id, args.as_of and args.as_of.isoformat(), args.json, args.snapshot)
    if args.command == "check-model":
        from crmtier.report.model_check import main as check_main
        return check_main(args.as_of.isoformat(), args.holdout_days, args.json)
    if args.command == "generate":
        return _generate(args)
    if args.command == "run":
        if args.as_of and not (args.date_from or args.date_to):
            return run_dag(args.as_of.isoformat(), args.landing, wait=args.wait)
        if args.date_from and args.date_to and not args.as_of and args.date_from <= args.date_to:
            days = (args.date_to - args.date_from).days
            return run_dag([(args.date_from + timedelta(days=i)).isoformat() for i in range(days + 1)], args.landing,
                           wait=args.wait)
        parser.error("run takes --as-of DATE, or --from DATE --to DATE (from <= to)")
    if args.command == "retract":
        return _retract(args)
    if args.command == "summary":
        from crmtier.pipeline import format_summary, summarize
        print(format_summary(summarize(args.snapshot or get_paths().publish)))
        return 0
    return 2


def _retract(args) -> int:
    from crmtier.ingest import retract_load

    warehouse = get_paths().warehouse
    if not warehouse.exists():
        print(f"[crmtier] retract FAILED: no warehouse at {warehouse}", file=sys.stderr)
        return 1
    try:
        done = retract_load(warehouse, args.load_id, args.reason)
    except ValueError as exc:
        print(f"[crmtier] retract FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"[crmtier] retracted load {done['load_id']} ({done['entity']}/{done['file_name']}): "
          f"{done['rows_removed']:,} rows and {done['quarantine_rows_removed']:,} quarantined rows removed from raw; "
          "the same file is not read again; the next run rebuilds staging without them")
    return 0


def _generate(args) -> int:
    from crmtier import generate

    out = (args.out or get_paths().landing).resolve()
    started = time.monotonic()
    kw = dict(seed=args.seed, as_of=args.as_of, orders_per_customer=args.orders_per_customer,
              events_per_customer=args.events_per_customer)
    if args.source == "generic":
        written = generate.generate(out, args.customers, **kw)
    else:
        from crmtier.vendor import write_vendor_export
        frames = generate.generate_frames(args.customers, **kw)
        frames.pop("_bad_rows", None)
        written = write_vendor_export({k: _to_pandas(v) for k, v in frames.items()}, out, args.source)
    for entity, path in written.items():
        print(f"[crmtier] wrote {entity}: {path}")
    print(f"[crmtier] generated {args.customers:,d} customers in {time.monotonic() - started:.1f}s")
    return 0


def _to_pandas(frame):
    return frame.to_pandas() if hasattr(frame, "to_pandas") else frame


if __name__ == "__main__":
    sys.exit(main())
