"""Validating a DuckDB-reduced frame with Great Expectations: an ephemeral GX context, a suite
built from its JSON, and the GX result rewritten with weighted (true table) row counts.
GX and pandas are imported inside functions: importing this module is cheap."""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import math
import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

from crmtier.long_lived import long_lived
from crmtier.quality.config import GateConfigError, _suite_parameter_names, _suite_parameter_value

DEFAULT_WEIGHT_COLUMN = "n"
SAMPLE_SUFFIX = "__samples"
GENERIC_SAMPLE_COLUMN = "samples"
MAX_SAMPLES = 5
DATASOURCE_NAME = "crmtier_gates"
# GX result keys that refer to positions in the reduced frame, meaningless for the table.
_FRAME_POSITION_KEYS = ("unexpected_list", "unexpected_index_list", "partial_unexpected_index_list",
                        "unexpected_index_query", "unexpected_index_column_names", "unexpected_rows")


def _quiet_gx_logging() -> None:
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if (name.startswith("great_expectations") and isinstance(logger, logging.Logger)
                and (logger.level == logging.NOTSET or logger.level < logging.WARNING)):
            logger.setLevel(logging.WARNING)


def _import_gx():
    """Import GX quietly: no analytics, no INFO chatter (hundreds of 'Skipping registering ...')."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    started = time.perf_counter()
    with long_lived() if "great_expectations" not in sys.modules else contextlib.nullcontext():
        import great_expectations as gx  # its modules live as long as the process

    logging.getLogger("crmtier.gates").info("GX imported in %.2fs", time.perf_counter() - started)  # make bench
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
            with contextlib.suppress(OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):
                gx_frame[col] = gx_frame[col].astype("datetime64[ns]")
    return gx_frame, samples, weight_column


def _py(value: Any) -> Any:
    """numpy/pandas scalars -> plain Python; NaN/NaT/NA -> None."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [_py(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        with contextlib.suppress(TypeError, ValueError):
            value = value.tolist()
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


def _expectation_parameters(suite, suite_dict: dict, suite_parameters: dict | None) -> dict:
    """The suite parameters the suite's expectations use; every one must be given."""
    wanted = _suite_parameter_names(suite_dict.get("expectations", []))
    suite_parameters = suite_parameters or {}
    missing = sorted(wanted - set(suite_parameters))
    if missing:
        raise GateConfigError(f"suite {suite.name!r} needs suite parameter(s) {missing} (thresholds in gates.yml)")
    return {k: _suite_parameter_value(suite_parameters[k]) for k in wanted}


def _metric_row(gx_frame: pd.DataFrame, weight_column: str | None, metrics: bool | None) -> dict | None:
    """The frame's one row as a dict when it is a row of aggregates (see ``validate_frame``), else None."""
    if metrics is None:
        metrics = weight_column is None and len(gx_frame) == 1
    if metrics and weight_column is None and len(gx_frame) == 1:
        return {c: _py(gx_frame[c].iloc[0]) for c in gx_frame.columns}
    return None


def _raised(er) -> bool:
    """Whether evaluating the expectation raised (GX reports it in ``exception_info``)."""
    return bool((er.exception_info or {}).get("raised_exception")) or any(
        isinstance(v, dict) and v.get("raised_exception") for v in (er.exception_info or {}).values())


def _result_item(er, gx_frame: pd.DataFrame, samples, weights, metric_row: dict | None, suite_name: str,
                 table: str | None, check: str | None) -> dict:
    """One expectation's result as a dict (weighting ``er`` in place when there are weights)."""
    cfg = er.expectation_config
    kwargs = {k: _py(v) for k, v in cfg.kwargs.items() if k != "batch_id"}
    raw_idx = (er.result or {}).get("unexpected_index_list")
    idx = [int(i) for i in raw_idx] if raw_idx is not None else None
    raised = _raised(er)
    if weights is not None and not raised:
        _weighted_result(er, gx_frame, weights)
    res = er.result or {}
    item = {
        "check": check,
        "table": table,
        "suite": suite_name,
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
    return item


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
    expectation_parameters = _expectation_parameters(suite, suite_dict, suite_parameters)
    suite_result = validator.validate(gx_frame, suite, expectation_parameters, asset_name=asset_name)
    weights = gx_frame[weight_column] if weight_column is not None else None
    metric_row = _metric_row(gx_frame, weight_column, metrics)
    checks = [_result_item(er, gx_frame, samples, weights, metric_row, suite.name, table, check)
              for er in suite_result.results]
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
