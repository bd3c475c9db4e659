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
import math
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

from crmtier.paths import EXPECTATIONS_DIR

log = logging.getLogger(__name__)

GATES_FILE = EXPECTATIONS_DIR / "gates.yml"
SUITES_DIR = EXPECTATIONS_DIR / "suites"

DEFAULT_WEIGHT_COLUMN = "n"
SAMPLE_SUFFIX = "__samples"
GENERIC_SAMPLE_COLUMN = "samples"
MAX_SAMPLES = 5
DATASOURCE_NAME = "crmtier_gates"
# GX result keys that refer to positions in the reduced frame, meaningless for the table.
_FRAME_POSITION_KEYS = ("unexpected_list", "unexpected_index_list", "partial_unexpected_index_list",
                        "unexpected_index_query", "unexpected_index_column_names", "unexpected_rows")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class GateConfigError(ValueError):
    """gates.yml, a suite or the run parameters are wrong (a bug, not bad data)."""


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

def load_gates(path: str | Path | None = None) -> dict:
    """Parse and check ``gates.yml``; returns the whole document."""
    path = Path(path) if path else GATES_FILE
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    gates = doc.get("gates")
    if not isinstance(gates, dict) or not gates:
        raise GateConfigError(f"{path}: no `gates:` mapping")
    suites_dir = path.parent / "suites"
    for gate_name, gate in gates.items():
        checks = (gate or {}).get("checks")
        if not isinstance(checks, list) or not checks:
            raise GateConfigError(f"{path}: gate {gate_name!r} has no checks")
        seen = set()
        for check in checks:
            missing = [k for k in ("name", "table", "sql", "suite") if not check.get(k)]
            if missing:
                raise GateConfigError(f"{path}: gate {gate_name!r}: a check lacks {missing}: {check}")
            if check["name"] in seen:
                raise GateConfigError(f"{path}: gate {gate_name!r}: duplicate check name {check['name']!r}")
            seen.add(check["name"])
            if not (suites_dir / check["suite"]).is_file():
                raise GateConfigError(f"{path}: check {check['name']!r}: no suite file {suites_dir / check['suite']}")
    doc["_suites_dir"] = str(suites_dir)
    return doc


def load_suite_dict(name: str, suites_dir: str | Path | None = None) -> dict:
    return json.loads((Path(suites_dir or SUITES_DIR) / name).read_text(encoding="utf-8"))


def sql_literal(value: Any) -> str:
    """A Python value as a DuckDB literal (strings quoted, quotes doubled)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (_dt.date, _dt.datetime)):
        return "'" + value.isoformat() + "'"
    return "'" + str(value).replace("'", "''") + "'"


def sql_list(values) -> str:
    """``['L1', 'L2']`` -> ``('L1', 'L2')``; empty -> ``(NULL)`` (matches nothing)."""
    values = list(values)
    return "(" + ", ".join(sql_literal(v) for v in values) + ")" if values else "(NULL)"


def _render_param(name: str, value: Any) -> str:
    if isinstance(value, (list, tuple, set, frozenset)):
        return sql_list(sorted(value) if isinstance(value, (set, frozenset)) else value)
    if isinstance(value, _dt.datetime):
        value = value.date() if name.endswith("_date") else value.isoformat(sep=" ")
    if isinstance(value, _dt.date):
        return value.isoformat()
    if name.endswith("_date") and not (isinstance(value, str) and _ISO_DATE.match(value)):
        raise GateConfigError(f"parameter {name}={value!r} is not a YYYY-MM-DD date")
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "NULL"
    return str(value)


def render_sql(sql: str, params: dict | None) -> str:
    """Fill ``{name}`` placeholders from params (see gates.yml for the rules)."""
    params = params or {}
    missing = sorted({m for m in _PLACEHOLDER.findall(sql) if m not in params})
    if missing:
        raise GateConfigError(f"missing run parameter(s) {missing} for SQL placeholders")
    return _PLACEHOLDER.sub(lambda m: _render_param(m.group(1), params[m.group(1)]), sql)


def _suite_parameter_names(obj) -> set[str]:
    if isinstance(obj, dict):
        if set(obj) == {"$PARAMETER"}:
            return {obj["$PARAMETER"]}
        return set().union(*(_suite_parameter_names(v) for v in obj.values())) if obj else set()
    if isinstance(obj, list):
        return set().union(*(_suite_parameter_names(v) for v in obj)) if obj else set()
    return set()


def _suite_parameter_value(value: Any) -> Any:
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    return value


# --------------------------------------------------------------------------- GX plumbing

def _quiet_gx_logging() -> None:
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith("great_expectations") and isinstance(logger, logging.Logger):
            if logger.level == logging.NOTSET or logger.level < logging.WARNING:
                logger.setLevel(logging.WARNING)


def _import_gx():
    """Import GX quietly: no analytics, no INFO chatter (hundreds of 'Skipping registering ...')."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx

    _quiet_gx_logging()  # some GX modules set their own logger level at import
    return gx


def _disable_progress_bars(context) -> None:
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)


def _ephemeral_context():
    gx = _import_gx()
    context = gx.get_context(mode="ephemeral")
    _disable_progress_bars(context)
    return context


class _Validator:
    """One ephemeral GX context + pandas datasource, reused for all frames of a gate."""

    def __init__(self, context=None):
        self.gx = _import_gx()
        self.context = context or _ephemeral_context()
        self.datasource = self.context.data_sources.add_pandas(f"{DATASOURCE_NAME}_{id(self)}")
        self._n = 0

    def validate(self, frame: pd.DataFrame, suite, expectation_parameters: dict | None, asset_name: str | None = None):
        self._n += 1
        asset = self.datasource.add_dataframe_asset(asset_name or f"frame_{self._n}")
        batch_definition = asset.add_batch_definition_whole_dataframe("frame")
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
        return batch.validate(suite, result_format={"result_format": "COMPLETE"},
                              expectation_parameters=expectation_parameters or None)


def _build_suite(gx, suite_dict: dict, name: str | None = None):
    data = dict(suite_dict)
    if name:
        data["name"] = name
    try:
        return gx.ExpectationSuite(**data)
    except Exception as exc:  # noqa: BLE001 - report which suite is broken
        raise GateConfigError(f"suite {data.get('name')!r} is not a valid GX 1.x ExpectationSuite: {exc}") from exc


def _check_weighted_suite(suite, suite_name: str) -> None:
    """On a weighted frame only row-level (column map) expectations keep their meaning."""
    from great_expectations.expectations.expectation import ColumnMapExpectation

    for exp in suite.expectations:
        kwargs = exp.configuration.kwargs
        if not isinstance(exp, ColumnMapExpectation):
            raise GateConfigError(
                f"suite {suite_name!r}: {exp.expectation_type} is not a row-level expectation; on a grouped "
                "(weighted) frame use a metric query instead")
        if kwargs.get("mostly") not in (None, 1, 1.0):
            raise GateConfigError(
                f"suite {suite_name!r}: `mostly` on a weighted frame would count groups, not rows; "
                "express the share as a metric query")
        if kwargs.get("row_condition"):
            raise GateConfigError(f"suite {suite_name!r}: row_condition is not supported on a weighted frame")


# --------------------------------------------------------------------------- frames and results

def _prepare_frame(frame: pd.DataFrame, weight_column: str | None) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """(frame for GX, sample columns, weight column actually used)."""
    import pandas as pd

    frame = frame.reset_index(drop=True)
    if weight_column == DEFAULT_WEIGHT_COLUMN and weight_column not in frame.columns:
        weight_column = None  # default applies only when the frame has `n`
    if weight_column is not None:
        if weight_column not in frame.columns:
            raise GateConfigError(f"weight column {weight_column!r} not in the frame {list(frame.columns)}")
        weights = frame[weight_column]
        if weights.isna().any() or (weights < 0).any():
            raise GateConfigError(f"weight column {weight_column!r} has null or negative values")
    sample_cols = [c for c in frame.columns if c.endswith(SAMPLE_SUFFIX) or c == GENERIC_SAMPLE_COLUMN]
    samples = frame[sample_cols]
    gx_frame = frame.drop(columns=sample_cols)
    for col in gx_frame.columns:
        dtype = gx_frame[col].dtype
        # GX's between() only handles datetime64[ns] natively; DuckDB gives datetime64[us].
        if pd.api.types.is_datetime64_any_dtype(dtype) and str(dtype) != "datetime64[ns]" \
                and not isinstance(dtype, pd.DatetimeTZDtype):
            try:
                gx_frame[col] = gx_frame[col].astype("datetime64[ns]")
            except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):
                pass
    return gx_frame, samples, weight_column


def _py(value: Any) -> Any:
    """numpy/pandas scalars -> plain Python; NaN/NaT/NA -> None."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [_py(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        try:
            value = value.tolist()
        except (TypeError, ValueError):
            pass
        if isinstance(value, list):
            return [_py(v) for v in value]
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
        if isinstance(value, pd.Timestamp):
            return value.isoformat()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    v = _py(obj)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def _isna(value: Any) -> bool:
    try:
        import pandas as pd

        res = pd.isna(value)
        return bool(res) if not hasattr(res, "__len__") else False
    except (TypeError, ValueError):
        return False


def _weighted_result(er, gx_frame: pd.DataFrame, weights: pd.Series) -> None:
    """Rewrite a column-map result from frame rows to table rows (weights), in place."""
    res = dict(er.result or {})
    idx = res.get("unexpected_index_list")
    column = er.expectation_config.kwargs.get("column")
    if idx is None or column is None or column not in gx_frame.columns:
        return
    idx = [int(i) for i in idx]
    frame_unexpected = len(idx)
    total = int(weights.sum())
    unexpected = int(weights.iloc[idx].sum()) if idx else 0
    by_value: dict[Any, int] = {}
    for i in idx:
        value = _py(gx_frame[column].iloc[i])
        key = json.dumps(value, default=str) if isinstance(value, (list, dict)) else value
        by_value[key] = by_value.get(key, 0) + int(weights.iloc[i])
    counts = sorted(by_value.items(), key=lambda kv: (-kv[1], str(kv[0])))
    res["element_count"] = total
    res["unexpected_count"] = unexpected
    if "missing_count" in res:
        missing = int(weights[gx_frame[column].isna().to_numpy()].sum())
        nonmissing = total - missing
        res["missing_count"] = missing
        res["missing_percent"] = missing / total * 100 if total else None
        res["unexpected_percent_total"] = unexpected / total * 100 if total else None
        res["unexpected_percent_nonmissing"] = unexpected / nonmissing * 100 if nonmissing else None
        res["unexpected_percent"] = res["unexpected_percent_nonmissing"]
    else:
        res["unexpected_percent"] = unexpected / total * 100 if total else None
    res["partial_unexpected_counts"] = [{"value": v, "count": c} for v, c in counts[:20]]
    res["partial_unexpected_list"] = [v for v, _ in counts[:20]]
    for key in _FRAME_POSITION_KEYS:
        res.pop(key, None)
    res["reduced_frame"] = {"rows": int(len(gx_frame)), "unexpected_rows": frame_unexpected,
                            "weight_column": weights.name}
    er.result = res


def _is_sequence(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return True
    try:
        import numpy as np

        return isinstance(value, np.ndarray)
    except ImportError:  # pragma: no cover
        return False


def _unique(values, limit: int = MAX_SAMPLES) -> list:
    out: list = []
    for v in values:
        v = _py(v)
        if v not in out:
            out.append(v)
        if len(out) >= limit:
            break
    return out


def _flatten(series: pd.Series, idx: list[int]):
    for i in idx:
        value = series.iloc[i]
        for v in (list(value) if _is_sequence(value) else [value]):
            if not _isna(v):
                yield v


def _samples_for(er, gx_frame: pd.DataFrame, samples: pd.DataFrame, idx: list[int] | None) -> tuple[list, list]:
    """(sample unexpected values, sample rows) of a failed expectation.

    Values: from ``<column>__samples`` when the frame has it (the raw values behind a derived
    column), else GX's unexpected values. Rows: from the generic ``samples`` column (e.g. ids).
    """
    column = er.expectation_config.kwargs.get("column")
    if idx is None:
        return _unique((er.result or {}).get("partial_unexpected_list") or []), []
    if column and f"{column}{SAMPLE_SUFFIX}" in samples.columns:
        values = _unique(_flatten(samples[f"{column}{SAMPLE_SUFFIX}"], idx))
    elif column in gx_frame.columns:
        values = _unique(gx_frame[column].iloc[i] for i in idx)
    else:
        values = []
    rows = _unique(_flatten(samples[GENERIC_SAMPLE_COLUMN], idx)) if GENERIC_SAMPLE_COLUMN in samples.columns else []
    return values, rows


def validate_frame(frame: pd.DataFrame, suite_dict: dict, *, weight_column: str | None = DEFAULT_WEIGHT_COLUMN,
                   suite_parameters: dict | None = None, validator: _Validator | None = None,
                   asset_name: str | None = None, table: str | None = None, check: str | None = None,
                   metrics: bool | None = None):
    """Validate one frame with one suite; returns (GX suite result, list of per-expectation dicts).

    With a weight column (default ``n`` when present) the suite may only hold row-level
    expectations, and counts in the dicts and in the returned GX result are weighted (table rows).
    ``metrics``: the frame is one row of aggregates (failures report observed values); by default,
    an unweighted one-row frame is taken as metrics.
    """
    validator = validator or _Validator()
    gx = validator.gx
    suite = _build_suite(gx, suite_dict)
    gx_frame, samples, weight_column = _prepare_frame(frame, weight_column)
    if weight_column is not None:
        _check_weighted_suite(suite, suite.name)
    wanted = _suite_parameter_names(suite_dict.get("expectations", []))
    suite_parameters = suite_parameters or {}
    missing = sorted(wanted - set(suite_parameters))
    if missing:
        raise GateConfigError(f"suite {suite.name!r} needs suite parameter(s) {missing} (thresholds in gates.yml)")
    expectation_parameters = {k: _suite_parameter_value(suite_parameters[k]) for k in wanted}
    suite_result = validator.validate(gx_frame, suite, expectation_parameters, asset_name=asset_name)
    weights = gx_frame[weight_column] if weight_column is not None else None
    metric_row = None
    if metrics is None:
        metrics = weight_column is None and len(gx_frame) == 1
    if metrics and weight_column is None and len(gx_frame) == 1:
        metric_row = {c: _py(gx_frame[c].iloc[0]) for c in gx_frame.columns}
    checks = []
    for er in suite_result.results:
        cfg = er.expectation_config
        kwargs = {k: _py(v) for k, v in cfg.kwargs.items() if k != "batch_id"}
        raw_idx = (er.result or {}).get("unexpected_index_list")
        idx = [int(i) for i in raw_idx] if raw_idx is not None else None
        raised = bool((er.exception_info or {}).get("raised_exception")) or any(
            isinstance(v, dict) and v.get("raised_exception") for v in (er.exception_info or {}).values())
        if weights is not None and not raised:
            _weighted_result(er, gx_frame, weights)
        res = er.result or {}
        item = {
            "check": check,
            "table": table,
            "suite": suite.name,
            "expectation": cfg.type,
            "kwargs": kwargs,
            "severity": str(getattr(cfg, "severity", "critical") or "critical").split(".")[-1].lower(),
            "success": bool(er.success),
            "weighted": weights is not None,
            "unexpected_rows": res.get("unexpected_count"),
            "total_rows": res.get("element_count"),
            "samples": [],
            "sample_rows": [],
            "observed": None,
            "frame_rows": int(len(gx_frame)),
            "error": None,
        }
        if not er.success and metric_row is None:
            item["samples"], item["sample_rows"] = _samples_for(er, gx_frame, samples, idx)
        if metric_row is not None:
            column = kwargs.get("column")
            item["observed"] = {column: metric_row.get(column)} if column in metric_row else None
            item["metrics"] = metric_row
        if raised:
            item["success"] = False
            item["error"] = _exception_message(er.exception_info)
        checks.append(item)
    return suite_result, checks


def _exception_message(info) -> str:
    if not info:
        return "unknown error"
    if info.get("exception_message"):
        return str(info["exception_message"]).strip().splitlines()[-1][:300]
    for v in info.values():
        if isinstance(v, dict) and v.get("exception_message"):
            return str(v["exception_message"]).strip().splitlines()[-1][:300]
    return "unknown error"


# --------------------------------------------------------------------------- messages

def _fmt_value(v: Any, limit: int = 80) -> str:
    s = repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _fmt_kwargs(kwargs: dict) -> str:
    return ", ".join(f"{k}={_fmt_value(v, 200)}" for k, v in kwargs.items())


def _fmt_number(v: Any) -> str:
    if isinstance(v, float):
        return f"{int(v):,}" if v.is_integer() and abs(v) < 1e15 else f"{v:.6g}"
    if isinstance(v, int):
        return f"{v:,}"
    return _fmt_value(v)


def format_check_line(c: dict) -> str:
    head = f"{c.get('table')} [{c.get('check')}] {c['expectation']}({_fmt_kwargs(c['kwargs'])})"
    if c.get("error"):
        return f"{head}: ERROR {c['error']}"
    if c.get("weighted") or c.get("observed") is None:
        total = c.get("total_rows")
        rows = c.get("unexpected_rows")
        pct = f" ({rows / total:.2%})" if isinstance(rows, int) and total else ""
        line = f"{head}: failing rows: {_fmt_number(rows)} of {_fmt_number(total)}{pct}"
    else:
        observed = ", ".join(f"{k}={_fmt_number(v)}" for k, v in c["observed"].items())
        context = ", ".join(f"{k}={_fmt_number(v)}" for k, v in (c.get("metrics") or {}).items()
                            if k not in c["observed"])
        line = f"{head}: observed {observed}" + (f" ({context})" if context else "")
    if c.get("samples"):
        line += "; samples: " + ", ".join(_fmt_value(s, 60) for s in c["samples"][:MAX_SAMPLES])
    if c.get("sample_rows"):
        line += "; rows: " + ", ".join(_fmt_value(s, 60) for s in c["sample_rows"][:MAX_SAMPLES])
    return line


def _shown_param(name: str, value: Any) -> str:
    try:
        return _render_param(name, value)
    except GateConfigError:
        return repr(value)


def format_gate_message(result: GateResult, *, db_path: str | Path | None = None, params: dict | None = None) -> str:
    failures, warnings = result.failures, result.warnings
    where = f" on {db_path}" if db_path else ""
    shown = ", ".join(f"{k}={_shown_param(k, v)}" for k, v in (params or {}).items())
    status = "failed" if failures else "passed"
    lines = [f"GX gate {result.gate!r} {status}{where}: {len(failures)} of {len(result.checks)} expectations "
             f"failed" + (f" (params: {shown})" if shown else "")]
    lines += ["  FAIL " + format_check_line(c) for c in failures]
    lines += ["  WARN " + format_check_line(c) for c in warnings]
    if result.docs_path:
        lines.append(f"  Data Docs: {result.docs_path}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- running a gate

def _run_queries(db_path: Path, checks: list[dict], params: dict) -> dict[str, tuple[Any, float, str | None]]:
    """Run every check's SQL on one read-only connection; the file is closed before returning."""
    import duckdb

    out: dict[str, tuple[Any, float, str | None]] = {}
    if not db_path.exists():
        raise FileNotFoundError(f"warehouse file {db_path} does not exist")
    con = duckdb.connect(str(db_path), read_only=True)
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


def run_gate(db_path: str | Path, gate: str, params: dict | None = None, results_dir: str | Path | None = None,
             raise_on_failure: bool = True, *, gates_file: str | Path | None = None,
             keep_runs: int = 20) -> GateResult:
    """Run one gate of ``expectations/gates.yml`` on a DuckDB warehouse file.

    ``params`` fill the SQL placeholders and may override thresholds (suite parameters).
    With ``results_dir``, GX validation results (weighted) and static Data Docs are written under
    ``results_dir/gx`` (the newest ``keep_runs`` runs per check are kept there, which bounds the
    cost of rebuilding the Data Docs index) and a summary JSON per run under
    ``results_dir/gate_results/<gate>/`` (kept).
    Raises :class:`GateFailed` when a critical expectation fails (unless ``raise_on_failure`` is
    False), :class:`GateConfigError` for configuration/parameter mistakes.
    """
    started = time.perf_counter()
    params = dict(params or {})
    doc = load_gates(gates_file)
    if gate not in doc["gates"]:
        raise GateConfigError(f"unknown gate {gate!r}; gates.yml defines {sorted(doc['gates'])}")
    gate_cfg = doc["gates"][gate]
    declared = [p for p in gate_cfg.get("params") or [] if p not in params]
    if declared:
        raise GateConfigError(f"gate {gate!r} needs run parameter(s) {declared}")
    checks_cfg = gate_cfg["checks"]
    suites_dir = Path(doc["_suites_dir"])
    # Suite parameters and SQL placeholders: run params over the gate's thresholds over the global ones.
    values = gate_values(doc, gate, params)

    # Render everything first: a config mistake must not leave half a run behind.
    for check in checks_cfg:
        render_sql(check["sql"], values)
    # DuckDB runs the queries (releasing the GIL) while GX, a ~5 s import, loads in this thread.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"gate-{gate}-sql") as pool:
        pending = pool.submit(_run_queries, Path(db_path), checks_cfg, values)
        try:
            validator = _Validator()
        finally:
            frames = pending.result()  # the connection is closed when this returns
    all_checks: list[dict] = []
    stored: list[tuple[dict, Any, dict]] = []
    for check in checks_cfg:
        frame, q_seconds, error = frames[check["name"]]
        suite_dict = load_suite_dict(check["suite"], suites_dir)
        if error is not None:
            all_checks.append({
                "check": check["name"], "table": check["table"], "suite": suite_dict.get("name"),
                "expectation": "query", "kwargs": {}, "severity": "critical", "success": False,
                "weighted": False, "unexpected_rows": None, "total_rows": None, "samples": [], "sample_rows": [],
                "observed": None, "frame_rows": 0, "error": error, "query_seconds": round(q_seconds, 3),
            })
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

    success = not any(not c["success"] and c.get("severity", "critical") == "critical" for c in all_checks)
    result = GateResult(gate=gate, success=success, checks=all_checks, seconds=0.0, docs_path=None)

    if results_dir is not None:
        try:
            result.docs_path = _write_results(Path(results_dir), gate, params, values, result, stored, keep_runs)
        except Exception as exc:  # noqa: BLE001 - documentation must never hide the verdict
            log.warning("GX gate %r: writing results/Data Docs failed: %s", gate, exc)
    result.seconds = round(time.perf_counter() - started, 3)

    message = format_gate_message(result, db_path=db_path, params=params)
    if success:
        log.info(message)
    elif raise_on_failure:
        raise GateFailed(message, result)  # the task log shows it once, with the traceback
    else:
        log.error(message)
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
                   keep_runs: int = 20) -> Path | None:
    """Store the (weighted) GX results in a file context under results_dir and update Data Docs."""
    import fcntl

    gx = _import_gx()
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    results_dir.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.timezone.utc)
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
        sites = context.build_data_docs(resource_identifiers=keys) if keys else {}
    summary["data_docs"] = sites
    (summary_dir / f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    url = next(iter(sites.values()), None) if sites else None
    if url and url.startswith("file://"):
        return Path(url[len("file://"):])
    return Path(url) if url else None
