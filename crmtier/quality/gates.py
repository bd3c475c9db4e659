"""Great Expectations gates between pipeline stages: GX on DuckDB-reduced frames.

A gate (``expectations/gates.yml``) is a list of checks. Each check is a DuckDB query that
reduces a warehouse table to a compact frame, plus a GX expectation suite
(``expectations/suites/*.json``) that GX's pandas datasource validates on that frame:

* row-level checks group the checked columns (or booleans derived in SQL) and carry a weight
  column ``n = count(*)``: the GX verdict of a row-level expectation on the grouped frame equals
  its verdict on the full table, and the true number of failing rows is the sum of ``n`` over the
  unexpected frame rows. The GX result is rewritten with these weighted counts, so the stored
  JSON, the Data Docs and the failure message all show table rows, not frame rows;
* metric checks return one row of aggregates (counts, shares, min/max, differences).

``run_gate`` opens the DuckDB file read-only, runs every query, closes the file, validates the
frames and raises :class:`GateFailed` (one line per failing expectation) when a critical
expectation fails. Module import is cheap: GX, pandas and DuckDB are imported inside functions.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from crmtier.duckdb_config import duckdb_config
from crmtier.quality.config import GateConfigError, load_gates, load_suite_dict, render_sql
from crmtier.quality.messages import format_gate_message
from crmtier.quality.validation import (
    DEFAULT_WEIGHT_COLUMN,
    _build_suite,
    _disable_progress_bars,
    _import_gx,
    _jsonable,
    _Validator,
    validate_frame,
)

log = logging.getLogger(__name__)


@dataclass
class GateResult:
    gate: str
    success: bool
    checks: list[dict]
    seconds: float
    docs_path: Path | None = None

    @property
    def failures(self) -> list[dict]:
        """Failed critical expectations (what fails the gate)."""
        return [c for c in self.checks if not c["success"] and c.get("severity", "critical") == "critical"]

    @property
    def warnings(self) -> list[dict]:
        return [c for c in self.checks if not c["success"] and c.get("severity", "critical") != "critical"]

    def message(self) -> str:
        return format_gate_message(self)

    def to_json_dict(self) -> dict:
        d = asdict(self)
        d["docs_path"] = str(self.docs_path) if self.docs_path else None
        return _jsonable(d)


class GateFailed(Exception):
    """A gate found bad data. The message has one line per failing expectation."""

    def __init__(self, message: str, result: GateResult | None = None):
        super().__init__(message)
        self.result = result


# --------------------------------------------------------------------------- configuration


# --------------------------------------------------------------------------- GX plumbing


# --------------------------------------------------------------------------- frames and results


# --------------------------------------------------------------------------- messages


# --------------------------------------------------------------------------- running a gate

def _run_queries(db_path: Path, checks: list[dict], params: dict) -> dict[str, tuple[Any, float, str | None]]:
    """Run every check's SQL on one read-only connection; the file is closed before returning."""
    import duckdb

    out: dict[str, tuple[Any, float, str | None]] = {}
    if not db_path.exists():
        raise FileNotFoundError(f"warehouse file {db_path} does not exist")
    con = duckdb.connect(str(db_path), read_only=True, config=duckdb_config())
    try:
        for check in checks:
            sql = render_sql(check["sql"], params)
            t = time.perf_counter()
            try:
                frame = con.execute(sql).df()
                out[check["name"]] = (frame, time.perf_counter() - t, None)
            except duckdb.Error as exc:
                out[check["name"]] = (None, time.perf_counter() - t, f"{type(exc).__name__}: {exc}".splitlines()[0])
    finally:
        con.close()
    return out


def gate_values(doc: dict, gate: str, params: dict | None = None) -> dict:
    """What fills a gate's SQL placeholders and suite parameters: global thresholds, then the
    gate's own thresholds, then the run parameters."""
    gate_cfg = doc["gates"][gate]
    return {**(doc.get("thresholds") or {}), **(gate_cfg.get("thresholds") or {}), **(params or {})}


def _gate_config(doc: dict, gate: str, params: dict) -> dict:
    """The gate's configuration; the gate must exist and every run parameter it declares be given."""
    if gate not in doc["gates"]:
        raise GateConfigError(f"unknown gate {gate!r}; gates.yml defines {sorted(doc['gates'])}")
    gate_cfg = doc["gates"][gate]
    declared = [p for p in gate_cfg.get("params") or [] if p not in params]
    if declared:
        raise GateConfigError(f"gate {gate!r} needs run parameter(s) {declared}")
    return gate_cfg


def _query_while_loading_gx(db_path: str | Path, gate: str, checks_cfg: list[dict],
                            values: dict) -> tuple[dict[str, tuple[Any, float, str | None]], Any]:
    """(frames per check, a validator): DuckDB runs the queries (releasing the GIL) while GX, a ~5 s
    import, loads in this thread."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"gate-{gate}-sql") as pool:
        pending = pool.submit(_run_queries, Path(db_path), checks_cfg, values)
        try:
            validator = _Validator()
        finally:
            frames = pending.result()  # the connection is closed when this returns
    return frames, validator


def _query_failed_item(check: dict, suite_dict: dict, error: str, q_seconds: float) -> dict:
    """The result item of a check whose query failed: a failed critical 'query' expectation."""
    return {
        "check": check["name"], "table": check["table"], "suite": suite_dict.get("name"),
        "expectation": "query", "kwargs": {}, "severity": "critical", "success": False,
        "weighted": False, "unexpected_rows": None, "total_rows": None, "samples": [], "sample_rows": [],
        "observed": None, "frame_rows": 0, "error": error, "query_seconds": round(q_seconds, 3),
    }


def _validate_checks(gate: str, checks_cfg: list[dict], frames: dict, validator: Any, values: dict,
                     suites_dir: Path) -> tuple[list[dict], list[tuple[dict, Any, dict]]]:
    """(result items of every check, (check, GX suite result, suite) of the checks whose query ran)."""
    all_checks: list[dict] = []
    stored: list[tuple[dict, Any, dict]] = []
    for check in checks_cfg:
        frame, q_seconds, error = frames[check["name"]]
        suite_dict = load_suite_dict(check["suite"], suites_dir)
        if error is not None:
            all_checks.append(_query_failed_item(check, suite_dict, error, q_seconds))
            continue
        weight_column = check.get("weight_column", DEFAULT_WEIGHT_COLUMN)
        t = time.perf_counter()
        suite_result, items = validate_frame(
            frame, suite_dict, weight_column=weight_column, suite_parameters=values,
            validator=validator, asset_name=f"{gate}.{check['name']}", table=check["table"], check=check["name"],
            metrics=False if weight_column is None else None)  # weight_column: null = one frame row per table row
        v_seconds = time.perf_counter() - t
        for item in items:
            item["query_seconds"] = round(q_seconds, 3)
            item["validate_seconds"] = round(v_seconds, 3)
        all_checks.extend(items)
        stored.append((check, suite_result, suite_dict))
    return all_checks, stored


def _announce(result: GateResult, db_path: str | Path, params: dict, raise_on_failure: bool) -> None:
    """Log the verdict; raise :class:`GateFailed` on failure when asked to."""
    message = format_gate_message(result, db_path=db_path, params=params)
    if result.success:
        log.info(message)
    elif raise_on_failure:
        raise GateFailed(message, result)  # the task log shows it once, with the traceback
    else:
        log.error(message)


def run_gate(db_path: str | Path, gate: str, params: dict | None = None, results_dir: str | Path | None = None,
             raise_on_failure: bool = True, *, gates_file: str | Path | None = None,
             keep_runs: int = 20, build_index: bool = True) -> GateResult:
    """Run one gate of ``expectations/gates.yml`` on a DuckDB warehouse file.

    ``params`` fill the SQL placeholders and may override thresholds (suite parameters).
    With ``results_dir``, GX validation results (weighted) and static Data Docs are written under
    ``results_dir/gx`` (the newest ``keep_runs`` runs per check are kept there, which bounds the
    cost of rebuilding the Data Docs index) and a summary JSON per run under
    ``results_dir/gate_results/<gate>/`` (kept). The gate's own Data Docs pages are always rendered;
    the index page, which lists every kept result and is most of the cost, only with ``build_index``
    or when the gate failed (the pipeline rebuilds it once per run, at its last gate).
    Raises :class:`GateFailed` when a critical expectation fails (unless ``raise_on_failure`` is
    False), :class:`GateConfigError` for configuration/parameter mistakes.
    """
    started = time.perf_counter()
    params = dict(params or {})
    doc = load_gates(gates_file)
    checks_cfg = _gate_config(doc, gate, params)["checks"]
    suites_dir = Path(doc["_suites_dir"])
    # Suite parameters and SQL placeholders: run params over the gate's thresholds over the global ones.
    values = gate_values(doc, gate, params)

    # Render everything first: a config mistake must not leave half a run behind.
    for check in checks_cfg:
        render_sql(check["sql"], values)
    frames, validator = _query_while_loading_gx(db_path, gate, checks_cfg, values)
    all_checks, stored = _validate_checks(gate, checks_cfg, frames, validator, values, suites_dir)

    success = not any(not c["success"] and c.get("severity", "critical") == "critical" for c in all_checks)
    result = GateResult(gate=gate, success=success, checks=all_checks, seconds=0.0, docs_path=None)

    if results_dir is not None:
        try:
            result.docs_path = _write_results(Path(results_dir), gate, params, values, result, stored, keep_runs,
                                              build_index=build_index or not success)
        except Exception as exc:  # noqa: BLE001 - documentation must never hide the verdict
            log.warning("GX gate %r: writing results/Data Docs failed: %s", gate, exc)
    result.seconds = round(time.perf_counter() - started, 3)
    _announce(result, db_path, params, raise_on_failure)
    return result


# --------------------------------------------------------------------------- results and Data Docs

def _prune_runs(gx_root: Path, gate: str, keep_runs: int) -> None:
    """Keep the newest ``keep_runs`` GX results (and their Data Docs pages) per check of a gate.

    Layout: <root>/<gate>/<check>/<run_name>/<run_time>/... in both the validations store and the
    Data Docs site. The gate summaries under results_dir/gate_results are never pruned.
    """
    import shutil

    uncommitted = gx_root / "uncommitted"
    for root in (uncommitted / "validations", uncommitted / "data_docs" / "local_site" / "validations"):
        for run_name_dir in (root / gate).glob("*/*"):
            runs = sorted(p for p in run_name_dir.iterdir() if p.is_dir())
            for old in runs[: max(len(runs) - keep_runs, 0)]:
                shutil.rmtree(old, ignore_errors=True)


def _write_results(results_dir: Path, gate: str, params: dict, values: dict, result: GateResult, stored,
                   keep_runs: int = 20, build_index: bool = True) -> Path | None:
    """Store the (weighted) GX results in a file context under results_dir and update Data Docs."""
    import fcntl

    gx = _import_gx()
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    results_dir.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.UTC)
    run_id = RunIdentifier(run_name=f"{gate}-gate", run_time=now)
    summary_dir = results_dir / "gate_results" / gate
    summary_dir.mkdir(parents=True, exist_ok=True)
    summary = result.to_json_dict()
    summary.update({"run_time": now.isoformat(), "params": _jsonable(params),
                    "thresholds": _jsonable({k: v for k, v in values.items() if k not in params})})

    with open(results_dir / ".gx.lock", "w") as lock:  # one writer of the GX project at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        context = gx.get_context(mode="file", project_root_dir=str(results_dir))
        _disable_progress_bars(context)
        keys = []
        for check, suite_result, suite_dict in stored:
            name = f"{gate}.{check['name']}"
            suite = _build_suite(gx, {k: v for k, v in suite_dict.items() if k != "id"}, name=name)
            context.suites.add_or_update(suite)
            suite_result.suite_name = name
            suite_result.meta["run_id"] = run_id
            suite_result.meta["validation_time"] = now
            suite_result.meta["crmtier"] = _jsonable({
                "gate": gate, "check": check["name"], "table": check["table"],
                "sql": render_sql(check["sql"], values), "weight_column": check.get("weight_column", "n"),
            })
            key = ValidationResultIdentifier(
                expectation_suite_identifier=ExpectationSuiteIdentifier(name=name),
                run_id=run_id, batch_identifier=check["name"])
            context.validation_results_store.set(key, suite_result)
            keys.append(key)
        _prune_runs(Path(context.root_directory), gate, keep_runs)  # Data Docs' index cost grows with history
        sites = context.build_data_docs(resource_identifiers=keys, build_index=build_index) if keys else {}
    summary["data_docs"] = sites
    (summary_dir / f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    url = next(iter(sites.values()), None) if sites else None
    if url and url.startswith("file://"):
        return Path(url[len("file://"):])
    return Path(url) if url else None
