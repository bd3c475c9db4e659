"""Run dbt for one stage of the pipeline, in this process (dbt's programmatic `dbtRunner`).

dbt-duckdb keeps the DuckDB file open for the life of its environment; it is closed after every
command, so the next stage (a gate, or another writer) can open the file.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import sys
from pathlib import Path

import yaml

from crmtier.duckdb_config import TEMP_DIRECTORY_ENV, duckdb_env
from crmtier.faults import fault_point, fault_requested
from crmtier.long_lived import long_lived
from crmtier.paths import DBT_PROJECT_DIR, get_paths

log = logging.getLogger(__name__)


class DbtFailed(Exception):
    """A dbt command failed (a model error or a failing data test)."""


def config_version(extra_vars: dict | None = None) -> str:
    """A short hash of the thresholds (dbt vars) and rule seeds: it changes whenever the config does,
    so a tier change caused by a config edit can be told apart from one caused by behaviour."""
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    rules = dict(project.get("vars", {}))
    rules.pop("as_of_date", None)
    rules.pop("config_version", None)
    rules.update({k: v for k, v in (extra_vars or {}).items() if k not in ("as_of_date", "config_version")})
    digest = hashlib.sha256(json.dumps(rules, sort_keys=True, default=str).encode())
    for seed in sorted((DBT_PROJECT_DIR / "seeds").glob("*.csv")):
        digest.update(seed.name.encode())
        digest.update(seed.read_bytes())
    return digest.hexdigest()[:12]


def seeds_fingerprint(project_dir: Path = DBT_PROJECT_DIR) -> str:
    """What the seed tables and the seeds' tests are made from: every file of the seeds and macros
    folders, dbt_project.yml (seed column types, test severity) and dbt's version. An edit to any of
    them makes the next staging stage load and test the seeds again (crmtier.pipeline.dbt_step)."""
    return _files_fingerprint(project_dir, [project_dir / "dbt_project.yml",
                                            *sorted((project_dir / "seeds").rglob("*")),
                                            *sorted((project_dir / "macros").rglob("*"))])


def project_fingerprint(project_dir: Path = DBT_PROJECT_DIR) -> str:
    """Every file of the dbt project (models, tests, macros, seeds, selectors, dbt_project.yml; not dbt's
    target and logs) and dbt's version: what the staging tables are built and tested with, besides raw."""
    skipped = {"target", "logs", "dbt_packages"}
    return _files_fingerprint(project_dir, [path for path in sorted(project_dir.rglob("*"))
                                            if not skipped & set(path.relative_to(project_dir).parts)])


def _files_fingerprint(project_dir: Path, files: list[Path]) -> str:
    from dbt.version import __version__ as dbt_version

    digest = hashlib.sha256(f"dbt {dbt_version}".encode())
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(project_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def run_dbt(args: list[str], as_of_date: str, warehouse: str | Path | None = None,
            extra_vars: dict | None = None, fault_point_name: str | None = None) -> str:
    """Run `dbt <args>` for one as-of date; return dbt's console output; raise DbtFailed on failure."""
    paths = get_paths()
    # as-of date and config version go in the environment: a changed --vars value would make
    # dbt re-parse the whole project on every run (macros/as_of.sql reads them when executing)
    env = {"CRMTIER_AS_OF_DATE": as_of_date,
           "CRMTIER_CONFIG_VERSION": config_version(extra_vars),
           "CRMTIER_WAREHOUSE": str(warehouse or paths.warehouse),
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
           "DBT_TARGET_PATH": str(paths.dbt_target),
           "DBT_LOG_PATH": str(paths.dbt_target / "logs"),
           "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
           **_quiet_logging(),
           **duckdb_env()}  # memory limit, threads, spill folder (profiles.yml settings)
    env.update(_relative_to_home(env, paths.home))
    paths.home.mkdir(parents=True, exist_ok=True)  # dbt runs in the home (relative paths above)
    cli_args = [*args, "--project-dir", str(DBT_PROJECT_DIR)]
    if extra_vars:
        cli_args += ["--vars", json.dumps(extra_vars)]
    log.info("running dbt %s (as of %s, in process)", " ".join(cli_args), as_of_date)
    console: list[str] = []
    kill_at = fault_point_name if fault_point_name and fault_requested(fault_point_name) else None
    printed = io.StringIO()  # what models print (the CLV Python model's fit line), shown as before
    with _environment(env), contextlib.chdir(paths.home), contextlib.redirect_stdout(_Tee(printed, sys.stdout)):
        succeeded, error = _invoke(cli_args, extra_vars, Path(env["CRMTIER_WAREHOUSE"]).stem,
                                   _console_collector(console, kill_at))
    shown = set(console)
    output = "\n".join(console + [line for line in printed.getvalue().splitlines()
                                   if line.strip() and line not in shown])
    if not succeeded:
        failures = [line for line in console
                    if any(k in line for k in ("ERROR", "FAIL ", "Failure in", "Error in", "Compilation Error"))]
        if error:
            failures.append(error)
        raise DbtFailed(f"dbt {' '.join(args)} failed:\n" + "\n".join(failures[-30:]))
    return output


# dbt runs in this process (dbtRunner): the import of dbt and the project's parse are paid once per
# process (a backfill of many dates, or the two dbt stages of a DagRun), not once per dbt command.
_MANIFESTS: dict[str, object] = {}


def _invoke(cli_args: list[str], extra_vars: dict | None, database: str, callback) -> tuple[bool, str]:
    """One dbt command with the project's manifest parsed once per process, vars and database name
    (dbt-duckdb names the database after the file: it is in every node); the DuckDB file is closed
    afterwards, so the gates and the next writer can open it."""
    key = json.dumps([extra_vars or {}, database], sort_keys=True)
    try:
        name_behavior_flags_without_reading_files()
        if key not in _MANIFESTS:
            with long_lived():  # dbt's modules and the manifest live as long as the process
                parsed = _parse(cli_args, key, callback)
            if not parsed.success:
                return False, str(parsed.exception or "dbt parse failed")
            _MANIFESTS[key] = parsed.result
        from dbt.cli.main import dbtRunner

        result = dbtRunner(manifest=_MANIFESTS[key], callbacks=[callback]).invoke(cli_args)
        return result.success, str(result.exception) if result.exception else ""
    finally:
        _close_duckdb()


def name_behavior_flags_without_reading_files() -> None:
    """Give dbt_common's behaviour flags the name of the module that declared them without inspect.stack().

    Each dbt command registers the adapter, whose behaviour flags (`BehaviorFlagRendered`) name the module
    that declared them by walking `inspect.stack()`, evaluated even when the flag names its source; that
    reads the source lines of every frame of the stack, ~60 of them inside an Airflow task: 0.25-0.45 s per
    dbt command (py-spy of the runner). The same name comes from the frames' globals, reading no file.
    Installed once per process; `__wrapped__` keeps dbt's own function (tests compare the two)."""
    from dbt_common import behavior_flags

    own = behavior_flags.BehaviorFlagRendered.__dict__["_default_source"].__func__
    if hasattr(own, "__wrapped__"):
        return

    def default_source() -> str:
        frame = sys._getframe(1)
        while frame is not None:
            module = frame.f_globals.get("__name__")
            if module and module != behavior_flags.__name__ and module in sys.modules:
                return module
            frame = frame.f_back
        return "Unknown"

    default_source.__wrapped__ = own
    behavior_flags.BehaviorFlagRendered._default_source = staticmethod(default_source)


def _parse(cli_args: list[str], key: str, callback):
    """`dbt parse` of the project, from the partial parse saved by the last process of this checkout."""
    from dbt.cli.main import dbtRunner

    parse_args = ["parse", *cli_args[cli_args.index("--project-dir"):]]
    shared, own = _shared_parse_file(key), get_paths().dbt_target / "partial_parse.msgpack"
    _seed_partial_parse(shared, own)
    parsed = dbtRunner(callbacks=[callback]).invoke(parse_args)
    if parsed.success:
        _share_partial_parse(own, shared)
    return parsed


# dbt's partial parsing (target/partial_parse.msgpack) is per home; a new home would pay a full parse of
# the project (~12 s). Its state check covers the profile's values, so the runner gives dbt the home's
# paths relative to the home (and runs dbt in it): every home of one checkout and machine then has the
# same profile, and a new home starts from the last parse saved in a per-user cache. dbt still checks
# every file's checksum, the vars, the profile and its version against the cached state and re-parses
# what differs, so the cache can only save time, never change a result.
PARSE_CACHE_ENV = "CRMTIER_DBT_PARSE_CACHE"  # a folder, or "off"; default ~/.cache/crmtier/dbt-parse


# dbt's own logging, unless the user sets these: writing every statement to dbt.log (debug level) cost
# ~3 s of a 5,000-customer run's 20 s of dbt, and dbt's console lines reach the task log through the
# callback (_console_collector), so dbt itself prints only errors and print() calls.
DBT_LOGGING_DEFAULTS = {"DBT_LOG_LEVEL_FILE": "info", "DBT_QUIET": "true", "DBT_USE_COLORS": "false"}


def _quiet_logging() -> dict[str, str]:
    """dbt's log settings: the user's environment first (DBT_LOG_LEVEL_FILE=debug for every statement)."""
    return {name: os.environ.get(name, default) for name, default in DBT_LOGGING_DEFAULTS.items()}


def _relative_to_home(env: dict[str, str], home: Path) -> dict[str, str]:
    """The warehouse and DuckDB spill folder relative to the home when they are inside it."""
    relative = {}
    for name in ("CRMTIER_WAREHOUSE", TEMP_DIRECTORY_ENV):
        path = Path(env[name]).resolve()
        if path.is_relative_to(home):
            relative[name] = str(path.relative_to(home))
    return relative


def _shared_parse_file(key: str) -> Path | None:
    setting = os.environ.get(PARSE_CACHE_ENV, "")
    if setting == "off":
        return None
    if setting:
        folder = Path(setting)
    else:
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "crmtier" / "dbt-parse"
    project = hashlib.sha256(f"{DBT_PROJECT_DIR.resolve()}|{key}".encode()).hexdigest()[:16]
    return folder / f"{project}.msgpack"


def _seed_partial_parse(shared: Path | None, own: Path) -> None:
    """A home without dbt's partial-parse file starts from the shared one (dbt validates it)."""
    if shared is None or own.exists() or not shared.exists():
        return
    own.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shared, own)


def _share_partial_parse(own: Path, shared: Path | None) -> None:
    """Save this home's partial-parse file for the next new home (atomically: runs share the cache)."""
    if shared is None or not own.exists():
        return
    try:
        shared.parent.mkdir(parents=True, exist_ok=True)
        tmp = shared.with_name(f".{shared.name}.{os.getpid()}.tmp")
        shutil.copyfile(own, tmp)
        os.replace(tmp, shared)
    except OSError as exc:  # a read-only or full cache folder costs time only
        log.info("dbt parse cache not written (%s): %s", shared, exc)


def _close_duckdb() -> None:
    """dbt-duckdb keeps one DuckDB instance per process (keep_open): close it to release the file."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    env = DuckDBConnectionManager._ENV  # noqa: SLF001 - dbt-duckdb has no public close
    if env is not None:
        env.close()
    DuckDBConnectionManager.close_all_connections()


def _console_collector(console: list[str], kill_at: str | None):
    """A dbt event callback keeping what dbt prints (info and above) and, for the fault suite
    (crmtier.faults), killing the run once dbt has built its first node, i.e. while it writes."""
    def on_event(event) -> None:
        if event.info.level in ("info", "warn", "error"):
            message = event.info.msg
            console.append(message)
            log.info("dbt | %s", message)
            if kill_at and " of " in message and " OK " in message:
                fault_point(kill_at)
    return on_event


class _Tee(io.TextIOBase):
    """A stdout that keeps a copy of what is written."""

    def __init__(self, copy: io.StringIO, stream):
        self.copy, self.stream = copy, stream

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """Set environment variables for one dbt command (profiles.yml and macros read them)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
