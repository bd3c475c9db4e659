"""The one-line-per-failing-expectation messages of a gate (what a failed run prints)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from crmtier.quality.config import GateConfigError, _render_param
from crmtier.quality.validation import MAX_SAMPLES

if TYPE_CHECKING:  # pragma: no cover
    from crmtier.quality.gates import GateResult


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
