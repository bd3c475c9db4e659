"""`crmtier` command line: generate sample exports, run the Airflow DAG embedded, print summaries."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import click

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
        shown = ", ".join(dates) if len(dates) < 4 else as_of.replace("_", " to ")
        print(f"[crmtier] run {DAG_ID} as of {shown}; landing {env.get('CRMTIER_LANDING', paths.landing)}; "
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
                # Airflow may echo a task's log line twice
                if message and not message.startswith("loc=") and message not in seen:
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


class IsoDate(click.ParamType):
    """A calendar date written YYYY-MM-DD (any year: 1850, 2011, ...)."""

    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not a date written YYYY-MM-DD", param, ctx)


ISO_DATE = IsoDate()


class MappingSources(click.Choice):
    """The CRMs with a mapping file (crmtier.ingest.mappings.list_sources: packaged and $CRMTIER_SOURCES_DIR), listed
    only when a command needs them: importing the mappings pulls in pandas, too slow for `crmtier --help`."""

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        from crmtier.ingest.mappings import list_sources

        return tuple(list_sources())

    @choices.setter
    def choices(self, _value) -> None:
        pass  # click.Choice.__init__ assigns the list; ours is read from the mapping files
HOME_NOTE = "Everything is read from and written under CRMTIER_HOME (default ./var): landing/, warehouse/, publish/."


class CommandsInOrder(click.Group):
    """Lists the subcommands in the order a user needs them (generate, run, summary, ...), not A-Z."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=CommandsInOrder, epilog=HOME_NOTE,
             context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="crmtier", prog_name="crmtier")
def cli() -> None:
    """CRM tiers and status pipeline (用户分级 / 用户状态): CRM exports in a landing folder, a DuckDB
    warehouse built by dbt and gated by Great Expectations, a published snapshot for BI."""


@cli.result_callback()
@click.pass_context
def _exit_with(ctx: click.Context, code: int | None) -> None:
    """Every subcommand returns its exit code (0 done, 1 failed, 75 another run holds the home)."""
    ctx.exit(code or 0)


@cli.command(short_help="Write deterministic sample CRM exports.")
@click.option("--customers", type=click.IntRange(min=1), default=2000, help="Number of customers to generate.")
@click.option("--seed", type=int, default=42, help="Random seed: the same seed writes the same files.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              show_default="$CRMTIER_HOME/landing", help="Landing folder to write the exports into.")
@click.option("--as-of", type=ISO_DATE, default="2026-11-01", help="Last day covered by the exports.")
@click.option("--orders-per-customer", type=click.FloatRange(min=0), default=10.0, help="Mean orders per customer.")
@click.option("--events-per-customer", type=click.FloatRange(min=0), default=20.0, help="Mean events per customer.")
@click.option("--source", type=MappingSources(), default="generic",
              help="Write the export layout of this CRM (a mapping file in crmtier/sources or $CRMTIER_SOURCES_DIR).")
def generate(customers: int, seed: int, out: Path | None, as_of: date, orders_per_customer: float,
             events_per_customer: float, source: str) -> int:
    """Write deterministic sample CRM exports (customers, orders, events) into a landing folder."""
    from crmtier.samples import generate as gen

    out = (out or get_paths().landing).resolve()
    started = time.monotonic()
    kw = dict(seed=seed, as_of=as_of.isoformat(), orders_per_customer=orders_per_customer,
              events_per_customer=events_per_customer)
    if source == "generic":
        written = gen.generate(out, customers, **kw)
    else:
        from crmtier.ingest.mappings import MappingError
        from crmtier.samples.vendor_export import write_vendor_export
        frames = gen.generate_frames(customers, **kw)
        frames.pop("_bad_rows", None)
        try:
            written = write_vendor_export({k: _to_pandas(v) for k, v in frames.items()}, out, source)
        except MappingError as exc:  # e.g. a mapping that reads orders only cannot write customers
            raise click.BadParameter(str(exc), param_hint="--source") from None
    for entity, path in written.items():
        print(f"[crmtier] wrote {entity}: {path}")
    print(f"[crmtier] generated {customers:,d} customers in {time.monotonic() - started:.1f}s")
    return 0


@cli.command(short_help="Run the DAG for one as-of date, or a backfill.")
@click.option("--landing", type=click.Path(file_okay=False, path_type=Path), default=None,
              show_default="$CRMTIER_LANDING or $CRMTIER_HOME/landing", help="Folder the CRM exports are read from.")
@click.option("--as-of", type=ISO_DATE, default=None, help="Run for this one as-of date.")
@click.option("--from", "date_from", type=ISO_DATE, default=None, help="Backfill: first as-of date (with --to).")
@click.option("--to", "date_to", type=ISO_DATE, default=None, help="Backfill: last as-of date (with --from).")
@click.option("--wait", is_flag=True, help="Wait for another run holding this home instead of exiting with 75.")
def run(landing: Path | None, as_of: date | None, date_from: date | None, date_to: date | None, wait: bool) -> int:
    """Run the Airflow DAG embedded (no server) for one as-of date (--as-of), or for every date from
    --from to --to in order (a backfill, one DagRun per date).

    Exit code 0 when the run published, 1 when it failed, 75 when another run holds this home."""
    if as_of and not (date_from or date_to):
        return run_dag(as_of.isoformat(), landing, wait=wait)
    if date_from and date_to and not as_of and date_from <= date_to:
        days = (date_to - date_from).days
        return run_dag([(date_from + timedelta(days=i)).isoformat() for i in range(days + 1)], landing, wait=wait)
    raise click.UsageError("run takes --as-of DATE, or --from DATE --to DATE (from <= to)")


@cli.command(short_help="Take a loaded file's rows out of the warehouse.")
@click.argument("load_id")
@click.option("--reason", default="", help="Why the load is retracted (kept in raw.load_log.message).")
def retract(load_id: str, reason: str) -> int:
    """Take a loaded file's rows out of the warehouse (raw.load_log keeps the record); the next run
    rebuilds staging without them. LOAD_ID is in the run's ingest report and in raw.load_log."""
    from crmtier.ingest.landing import retract_load

    warehouse = get_paths().warehouse
    if not warehouse.exists():
        print(f"[crmtier] retract FAILED: no warehouse at {warehouse}", file=sys.stderr)
        return 1
    try:
        done = retract_load(warehouse, load_id, reason)
    except ValueError as exc:
        print(f"[crmtier] retract FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"[crmtier] retracted load {done['load_id']} ({done['entity']}/{done['file_name']}): "
          f"{done['rows_removed']:,} rows and {done['quarantine_rows_removed']:,} quarantined rows removed from raw; "
          "the same file is not read again; the next run rebuilds staging without them")
    return 0


SNAPSHOT_OPTION = click.option("--snapshot", type=click.Path(dir_okay=False, path_type=Path), default=None,
                               show_default="$CRMTIER_PUBLISH or $CRMTIER_HOME/publish/crm.duckdb",
                               help="Published snapshot file to read.")


@cli.command(short_help="Tier and status counts of the published snapshot.")
@SNAPSHOT_OPTION
def summary(snapshot: Path | None) -> int:
    """Print tier counts (in the rank order of seed tier_rules, VIP first) and status counts of the
    published snapshot."""
    from crmtier.pipeline import format_summary, summarize

    print(format_summary(summarize(snapshot or get_paths().publish)))
    return 0


@cli.command(short_help="Why a customer has its tier and status.")
@click.argument("customer_id")
@click.option("--as-of", type=ISO_DATE, default=None, show_default="the snapshot's date",
              help="An earlier date kept in history.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (JSON).")
@SNAPSHOT_OPTION
def explain(customer_id: str, as_of: date | None, as_json: bool, snapshot: Path | None) -> int:
    """Why CUSTOMER_ID has its tier and status (from the published snapshot)."""
    from crmtier.report.explain import main as explain_main

    return explain_main(customer_id, as_of and as_of.isoformat(), as_json, snapshot)


@cli.command("check-model", short_help="Holdout check of the CLV model.")
@click.option("--as-of", type=ISO_DATE, required=True, help="End of the holdout window.")
@click.option("--holdout-days", type=click.IntRange(min=1), default=90, help="Length of the holdout window in days.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (JSON).")
def check_model(as_of: date, holdout_days: int, as_json: bool) -> int:
    """Calibration/holdout check of the CLV model (reads the warehouse read-only)."""
    from crmtier.report.model_check import main as check_main

    return check_main(as_of.isoformat(), holdout_days, as_json)


def main(argv: list[str] | None = None) -> int:
    """The `crmtier` entry point: the exit code of the subcommand (2 for a usage error, as argparse had)."""
    try:
        return cli.main(args=argv, prog_name="crmtier", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        print("Aborted!", file=sys.stderr)
        return 130


def _to_pandas(frame):
    return frame.to_pandas() if hasattr(frame, "to_pandas") else frame


if __name__ == "__main__":
    sys.exit(main())
