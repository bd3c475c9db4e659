"""The pipeline's stages as plain functions: Airflow tasks call these, tests call them directly.

ingest -> gate raw -> dbt staging -> gate staging -> dbt intermediate + marts (+ history) -> gate marts
-> gate drift -> publish -> outbox -> notify (writes the run report first)
"""
from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from crmtier.duckdb_config import duckdb_config
from crmtier.faults import fault_point
from crmtier.paths import get_paths

log = logging.getLogger("crmtier")

# What `dbt build` builds per stage: selectors of dbt_project/selectors.yml (seeds with staging,
# history with the marts; tests where their parents exist; no unit tests on data runs)
STAGE_SELECTORS = {"staging": "pipeline_staging", "marts": "pipeline_marts"}
# ...and staging without the seeds and their own tests, when the seed tables were built and tested from
# the very files of this checkout (their fingerprint, kept beside them in SEEDS_BUILT)
STAGING_WITHOUT_SEEDS = "pipeline_staging_models"
SEEDS_BUILT = "config._seeds_built"
# ...and no dbt staging at all when the staging tables were built and tested from the same loads and project
# files (a date with no new files: an incremental build would find no key to stage and pass the same tests)
STAGING_BUILT = "config._staging_built"


def progress(message: str) -> None:
    """One line a person follows while the run goes (the CLI echoes lines marked [crmtier])."""
    log.info("[crmtier] %s", message)


@contextmanager
def writer_step():
    """What every stage that writes does first: owner-only umask; outside `crmtier run` (which holds
    the home and warehouse locks for the whole run), the warehouse lock for this step."""
    from crmtier.lock import LOCK_HELD_ENV, warehouse_lock
    from crmtier.permissions import apply_umask

    apply_umask()
    if os.environ.get(LOCK_HELD_ENV):
        yield
        return
    lock = warehouse_lock(get_paths().warehouse).acquire(
        os.environ.get("AIRFLOW_CTX_EXECUTION_DATE", "?"), wait=True, on_wait=lambda who: progress(f"waiting: {who}"))
    try:
        yield
    finally:
        lock.release()


def clean_dead_run_leftovers() -> None:
    """Remove what a killed run left (temporary snapshot and outbox folders, their WAL) and replay
    the warehouse's write-ahead log; say so."""
    from crmtier.delivery.outbox import outbox_dir
    from crmtier.lock import clean_leftovers, wait_for_warehouse

    paths = get_paths()
    reports = [d for d in paths.reports.iterdir() if d.is_dir()] if paths.reports.is_dir() else []
    removed = clean_leftovers([paths.publish.parent, outbox_dir(), *reports])
    if removed:
        progress(f"cleanup: removed {len(removed)} temporary file(s) left by a killed run: "
                 + ", ".join(str(p) for p in removed[:6]) + (" ..." if len(removed) > 6 else ""))
    wal = paths.warehouse.with_name(paths.warehouse.name + ".wal")
    if wal.exists():
        progress(f"cleanup: the warehouse has a write-ahead log left by a run that did not close it ({wal}); "
                 "replaying it (committed work is kept, uncommitted work is dropped)")
    if paths.warehouse.exists():
        wait_for_warehouse(paths.warehouse, log=progress)  # opening replays and checkpoints the WAL


def timed(stage: str):
    """Record a step's start and duration in <reports>/<as-of>/timings.json (the run report's timings).
    `stage` may name the step's arguments, e.g. "dbt {stage}"; steps without an as-of date are not recorded.
    A step that returns {"not_run": why} (its work was done already) has the reason recorded beside its time."""
    def wrap(step):
        signature = inspect.signature(step)

        @functools.wraps(step)
        def run(*args, **kwargs):
            arguments = signature.bind(*args, **kwargs).arguments
            as_of = arguments.get("as_of_date") or (arguments.get("params") or {}).get("as_of_date")
            started, clock = datetime.now(UTC).isoformat(), time.perf_counter()
            result = None
            try:
                result = step(*args, **kwargs)
                return result
            finally:
                if as_of:
                    path = get_paths().reports / str(as_of) / "timings.json"
                    timings = json.loads(path.read_text()) if path.exists() else {}
                    entry = {"started": started, "seconds": round(time.perf_counter() - clock, 2)}
                    if isinstance(result, dict) and result.get("not_run"):
                        entry["not_run"] = result["not_run"]
                    timings[stage.format(**arguments)] = entry
                    _write_report(str(as_of), "timings.json", timings)
        return run
    return wrap


@timed("ingest")
def ingest_step(as_of_date: str) -> list[str]:
    from dataclasses import asdict

    from crmtier.ingest.landing import ingest_landing
    from crmtier.ingest.quarantine_report import write_report

    paths = get_paths()
    with writer_step():
        try:
            clean_dead_run_leftovers()
        except RuntimeError as exc:  # the warehouse is held by another process
            fail_without_retry(f"ingest: {exc}")
        progress(f"ingest: reading {paths.landing}")
        report = ingest_landing(paths.warehouse, paths.landing)
        _ensure_gated_column(paths.warehouse)
    fault_point("ingest")
    for line in report.summary().splitlines():
        progress(f"ingest: {line}")
    not_read = [asdict(n) for n in report.not_read]
    _write_report(as_of_date, "ingest.json", [asdict(f) for f in report.files])
    _write_report(as_of_date, "not_read.json", not_read)  # files of the landing folder not read, and why
    from crmtier.ingest.quarantine_report import reset_warnings

    reset_warnings(paths.reports / as_of_date)  # this run's steps write their warnings afresh
    path = write_report(paths.warehouse, report.load_ids, paths.reports / as_of_date, as_of_date, not_read)
    quarantined = sum(f.rows_quarantined for f in report.files)
    progress(f"ingest: {quarantined:,} rows quarantined, {len(report.not_read)} file(s) not read; "
             f"quarantine report: {path}")
    return report.load_ids


# The run's last gate (dags/crm_pipeline.py) rebuilds the Data Docs index, once per run: rebuilding it lists
# and loads every kept result (~0.4 s a gate at 20 kept runs). A failing gate rebuilds it too (run_gate).
DATA_DOCS_INDEX_GATE = "drift"


@timed("gate {gate}")
def gate_step(gate: str, params: dict) -> dict:
    from crmtier.quality.gates import run_gate

    paths = get_paths()
    if gate == "raw":  # this run's loads, and any a killed run loaded but never gated
        ungated = _ungated_loads(paths.warehouse)
        earlier = sorted(set(ungated) - set(params.get("load_ids") or []))
        if earlier:
            progress(f"gate raw: also gating {len(earlier)} load(s) a previous run loaded but never gated")
        params = {**params, "load_ids": sorted(set(params.get("load_ids") or []) | set(ungated))}
    progress(f"gate {gate}: validating")
    try:  # run_gate renders list params (this run's load ids) as SQL lists itself
        result = run_gate(paths.warehouse, gate, params=params, results_dir=paths.gx_results,
                          build_index=gate == DATA_DOCS_INDEX_GATE)
    except Exception as exc:
        if type(exc).__name__ == "GateFailed":
            fail_without_retry(f"gate {gate} failed: nothing downstream runs, nothing is published.\n{exc}")
        raise
    fault_point(f"gate_{gate}")
    if gate == "raw" and params["load_ids"]:
        with writer_step():
            _mark_gated(paths.warehouse, params["load_ids"])
    progress(f"gate {gate}: passed {len(result.checks)} checks in {result.seconds:.1f}s"
             + (f"; Data Docs: {result.docs_path}" if result.docs_path else ""))
    return {"gate": gate, "checks": len(result.checks), "seconds": round(result.seconds, 2)}


def stage_args(stage: str, full_refresh: bool = False, seeds_built: bool = False) -> list[str]:
    """`dbt build` arguments of a pipeline stage (staging or marts); `seeds_built`: staging leaves out the
    seeds, already built and tested from the same files."""
    without_seeds = stage == "staging" and seeds_built and not full_refresh
    args = ["build", "--selector", STAGING_WITHOUT_SEEDS if without_seeds else STAGE_SELECTORS[stage]]
    return [*args, "--full-refresh"] if full_refresh else args


def built_from(warehouse: Path, record: str, fingerprint: str, tables: set[str]) -> str | None:
    """When `tables` ("schema.name") were last built and tested from inputs of this fingerprint (the row of
    table `record`), or None: never, from other inputs, or one of the tables is missing since."""
    import duckdb

    if not warehouse.exists():
        return None
    con = duckdb.connect(str(warehouse), read_only=True, config=duckdb_config())
    try:
        present = {name for (name,) in con.execute(
            "select table_schema || '.' || table_name from information_schema.tables").fetchall()}
        if record not in present or not tables <= present:
            return None
        row = con.execute(f"select built_at::varchar from {record} where fingerprint = ?", [fingerprint]).fetchone()
        return row[0] if row else None
    finally:
        con.close()


def _record_built(warehouse: Path, fingerprints: dict[str, str | None]) -> None:
    """Set each record (table name: fingerprint) in one connection: None forgets what the tables were built
    from, before a build that writes them (a failed one leaves no record); a fingerprint records it after."""
    import duckdb

    con = duckdb.connect(str(warehouse), config=duckdb_config())
    try:
        for record, fingerprint in fingerprints.items():
            con.execute(f"create schema if not exists {record.split('.')[0]}")
            con.execute(f"create or replace table {record} (fingerprint varchar, built_at timestamp)")
            if fingerprint:
                con.execute(f"insert into {record} values (?, now())", [fingerprint])
    finally:
        con.close()


def seed_tables() -> set[str]:
    from crmtier.seeds import SEEDS_DIR

    return {f"{SEEDS_BUILT.split('.')[0]}.{path.stem}" for path in SEEDS_DIR.glob("*.csv")}


def staging_tables() -> set[str]:
    from crmtier.paths import DBT_PROJECT_DIR

    return {f"staging.{path.stem}" for path in (DBT_PROJECT_DIR / "models" / "staging").rglob("*.sql")}


def staging_fingerprint(warehouse: Path) -> str | None:
    """What the staging tables are built and tested from: the loads of raw.load_log (id, sequence, status,
    rows; a load, a supersession or a retraction changes it), every file of the dbt project and dbt's
    version. None without a warehouse. Staging reads no as-of date: a new date alone changes nothing."""
    import hashlib

    import duckdb

    from crmtier.dbt_runner import project_fingerprint

    if not warehouse.exists():
        return None
    con = duckdb.connect(str(warehouse), read_only=True, config=duckdb_config())
    try:
        if not con.execute("select count(*) from information_schema.tables "
                           "where table_schema = 'raw' and table_name = 'load_log'").fetchone()[0]:
            return None
        loads = con.execute("""select coalesce(string_agg(concat_ws('|', load_id, load_seq, status, rows_loaded,
                                                                    retracted_at), ',' order by load_seq, load_id), '')
                               from raw.load_log""").fetchone()[0]
    finally:
        con.close()
    return hashlib.sha256(f"{project_fingerprint()}\0{loads}".encode()).hexdigest()[:16]


@timed("dbt {stage}")
def dbt_step(stage: str, as_of_date: str, full_refresh: bool = False) -> dict | None:
    from crmtier.dbt_runner import run_dbt, seeds_fingerprint

    warehouse = get_paths().warehouse
    staged = staging_fingerprint(warehouse) if stage == "staging" else None
    # the stage builds the seeds too: a dropped seed table runs it
    unchanged = (built_from(warehouse, STAGING_BUILT, staged, staging_tables() | seed_tables())
                 if staged and not full_refresh else None)
    if unchanged:
        why = (f"the staging tables were built and tested at {unchanged} from the same loads and dbt project "
               "files (no file loaded or retracted since)")
        progress(f"dbt staging: not run: {why}")
        report_staging_warnings(as_of_date)
        return {"not_run": why}  # the run report says so beside the stage's time
    fingerprint = seeds_fingerprint() if stage == "staging" else None
    built = built_from(warehouse, SEEDS_BUILT, fingerprint, seed_tables()) if fingerprint and not full_refresh else None
    args = stage_args(stage, full_refresh, seeds_built=bool(built))
    progress(f"dbt {stage}: dbt {' '.join(args)} (as of {as_of_date})"
             + (f"; seeds not reloaded: built and tested from the same files at {built}" if built else ""))
    try:
        with writer_step():
            # the records this build rewrites: staging's, and the seeds' when it loads them
            rebuilt = ({STAGING_BUILT: staged} | ({} if built else {SEEDS_BUILT: fingerprint})
                       if stage == "staging" else {})
            if rebuilt and warehouse.exists():
                _record_built(warehouse, dict.fromkeys(rebuilt))
            output = run_dbt(args, as_of_date, fault_point_name=f"dbt_{stage}")
            if rebuilt:
                _record_built(warehouse, rebuilt)
    except Exception as exc:
        if type(exc).__name__ == "DbtFailed":
            fail_without_retry(f"dbt {stage} failed: nothing downstream runs, nothing is published.\n{exc}")
        raise
    done = [line for line in output.splitlines() if "Done. PASS=" in line]
    progress(f"dbt {stage}: {done[-1].split('Done. ')[-1] if done else 'ok'}")
    if stage == "staging":
        report_staging_warnings(as_of_date)
    if stage == "marts":
        report_marts_warnings(as_of_date)


def report_marts_warnings(as_of_date: str) -> None:
    """Thin data (no purchases: everyone prospect / low or placed by attributes; CLV fallback):
    console and run report, not only the full log."""
    from crmtier.ingest import quarantine_report as qr

    paths = get_paths()
    thin = qr.thin_data(paths.warehouse, as_of_date)
    path = qr.add_warnings(paths.reports / as_of_date, as_of_date, "thin_data", thin)
    lines = qr.thin_data_lines(thin)
    for line in lines:
        progress(f"marts: {line}")
    if lines:
        progress(f"marts: warnings report: {path.with_suffix('.md')}")


def report_staging_warnings(as_of_date: str) -> None:
    """What staging holds but no mart shows as written (orders and events of unknown customers;
    optional fields of this run's files that could not be read): console and run report."""
    from crmtier.ingest import quarantine_report as qr

    paths = get_paths()
    folder = paths.reports / as_of_date
    ingested = folder / "ingest.json"
    load_ids = [f["load_id"] for f in json.loads(ingested.read_text())] if ingested.exists() else []
    unknown = qr.unknown_customers(paths.warehouse)
    fields = qr.field_warnings(paths.warehouse, load_ids)
    qr.add_warnings(folder, as_of_date, "unknown_customers", unknown)
    path = qr.add_warnings(folder, as_of_date, "field_warnings", fields)
    lines = qr.unknown_customers_lines(unknown) + qr.field_warnings_lines(fields)
    for line in lines:
        progress(f"staging: {line}")
    if lines:
        progress(f"staging: warnings report: {path.with_suffix('.md')}")


@timed("publish")
def publish_step(as_of_date: str, run_id: str) -> dict:
    from crmtier.delivery.publish import publish_snapshot

    paths = get_paths()
    progress(f"publish: writing a new snapshot beside {paths.publish} (marts and history, one file)")
    with writer_step():
        published = publish_snapshot(paths.warehouse, paths.publish, as_of_date, run_id)
    counts = published["counts"]
    if published["kept_current"]:
        progress(f"publish: {as_of_date} is older than the published snapshot (as of {published['as_of_date']}): "
                 f"history republished with this date's rows; the current tables stay as of "
                 f"{published['as_of_date']}")
    progress(f"publish: {paths.publish} (as of {published['as_of_date']}, marts and history in one file) "
             + ", ".join(f"{t}={n}" for t, n in counts.items()))
    summary = summarize(paths.publish)
    _write_report(as_of_date, "summary.json", summary)
    log.info("%s", format_summary(summary))
    return counts


def drift_gate_step(as_of_date: str) -> dict:
    """Gate `drift`: this date against the previous as-of date in history.customer_history. The
    gate's bounds (gates.yml) also go to the SQL, so the failure message shows them."""
    from crmtier.quality.gates import load_gates

    bounds = load_gates()["gates"]["drift"].get("thresholds") or {}
    return gate_step("drift", {"as_of_date": as_of_date, **bounds})


@timed("outbox")
def outbox_step(as_of_date: str, run_id: str) -> dict:
    """Alerts of the date as files per action, with contacts (crmtier.delivery.outbox)."""
    from crmtier.delivery.outbox import outbox_dir, read_manifest, write_outbox

    out_dir = outbox_dir()
    progress(f"outbox: writing {out_dir / as_of_date} (whole folder, then swapped in)")
    with writer_step():
        counts = write_outbox(get_paths().warehouse, out_dir, as_of_date, run_id)
    manifest = read_manifest(out_dir, as_of_date)
    new = {action: info["new_alerts"] for action, info in manifest.get("actions", {}).items()}
    folder = out_dir / as_of_date
    unchanged = manifest.get("run_id") != run_id
    progress(f"outbox: {folder} "
             + (f"unchanged, handed over by run {manifest.get('run_id')}: " if unchanged else "")
             + (", ".join(f"{a}={n} ({new.get(a, 0)} new{' then' if unchanged else ''})" for a, n in counts.items())
                or "no alerts"))
    return {"outbox": str(folder), "alerts": counts, "new_alerts": new,
            "handed_over_by": manifest.get("run_id")}


def report_step(as_of_date: str) -> str:
    """The run report (crmtier.report): one HTML file with the charts, beside the snapshot too."""
    from crmtier.report import build_report

    path = build_report(as_of_date)
    progress(f"report: {path} (and {get_paths().publish.parent / 'report.html'})")
    return str(path)


def notify_step(as_of_date: str, run_id: str, outbox: dict) -> dict:
    """The run report, then the end-of-run message (alert counts per action, outbox folder, report) to the
    log, webhook and/or e-mail. A report that cannot be built fails the run (after the snapshot and outbox)."""
    from crmtier.delivery.notify import notify, run_message

    report = report_step(as_of_date)
    message = run_message(as_of_date, run_id, outbox.get("alerts") or {}, outbox.get("new_alerts"),
                          outbox.get("outbox"), str(get_paths().publish))
    message["report"] = report
    return {"sent": notify(message), "title": message["title"]}


def summarize(snapshot: str | Path) -> dict:
    """Tier and status counts of a published snapshot."""
    import duckdb

    con = duckdb.connect(str(snapshot), read_only=True, config=duckdb_config())
    try:
        as_of, republished_for = con.execute(
            "select as_of_date::varchar, history_republished_for::varchar from _snapshot").fetchone()
        tiers = dict(con.execute("select tier, count(*) from customer_tiers group by 1 order by 1").fetchall())
        status = dict(con.execute("select status, count(*) from customer_status group by 1 order by 1").fetchall())
    finally:
        con.close()
    return {"as_of_date": as_of, "history_republished_for": republished_for, "tiers": tiers, "status": status}


def format_summary(summary: dict, seeds_dir: Path | None = None) -> str:
    """Counts per tier (seed rank order, VIP first) and per status, labelled as the seeds say."""
    import unicodedata  # wide (CJK) characters take two columns: pad by display width

    from crmtier.seeds import labels, status_order, tier_order

    names = labels(seeds_dir)
    lines = [f"summary as of {summary['as_of_date']}"]
    for key, title, label, order in (("tiers", "tiers 用户分级", names["tier"], tier_order),
                                     ("status", "status 用户状态", names["status"], status_order)):
        counts = summary[key]
        total = sum(counts.values()) or 1
        lines.append(f"  {title}:")
        for name in order(counts, seeds_dir):
            text = f"{name} ({label[name]})" if name in label else name
            pad = " " * max(0, 30 - sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text))
            lines.append(f"    {text}{pad} {counts[name]:>10,d}  {100 * counts[name] / total:5.1f}%")
    return "\n".join(lines)


def fail_without_retry(message: str):
    """Bad data does not get better on retry: fail the task at once (retries are for transient errors)."""
    log.error("[crmtier] %s", message)
    try:
        from airflow.sdk.exceptions import AirflowFailException
    except ImportError:  # called outside Airflow
        raise RuntimeError(message) from None
    raise AirflowFailException(message)


def on_failure(context) -> None:
    """Failure callback (task and DAG level): one clear line naming what failed and why."""
    ti = context.get("task_instance")
    exc = context.get("exception")
    if exc is None:
        log.error("[crmtier] FAILED run %s: %s", context.get("run_id"), context.get("reason", "a task failed"))
    else:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.error("[crmtier] FAILED task %s (run %s): %s", getattr(ti, "task_id", "?"), context.get("run_id"), first)
    from crmtier.delivery.notify import notify_failure

    notify_failure(context)  # log, webhook and/or e-mail; never raises


def _write_report(as_of_date: str, name: str, payload) -> None:
    folder = get_paths().reports / as_of_date
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.{os.getpid()}.tmp"  # whole or not at all (a killed run leaves only the .tmp)
    tmp.write_text(json.dumps(payload, indent=2, default=str, ensure_ascii=False))
    os.replace(tmp, folder / name)


def _ensure_gated_column(warehouse: Path) -> None:
    """raw.load_log.gated_at: when the raw gate passed a load (NULL: loaded, not yet gated)."""
    import duckdb

    con = duckdb.connect(str(warehouse), config=duckdb_config())
    try:
        con.execute("alter table raw.load_log add column if not exists gated_at timestamp")
    finally:
        con.close()


def _ungated_loads(warehouse: Path) -> list[str]:
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True, config=duckdb_config())
    try:
        return [r[0] for r in con.execute(
            "select load_id from raw.load_log where status = 'loaded' and gated_at is null order by 1").fetchall()]
    finally:
        con.close()


def _mark_gated(warehouse: Path, load_ids: list[str]) -> None:
    import duckdb

    con = duckdb.connect(str(warehouse), config=duckdb_config())
    try:
        con.execute("update raw.load_log set gated_at = now() where list_contains(?, load_id) and gated_at is null",
                    [list(load_ids)])
    finally:
        con.close()
