"""Gate configuration: expectations/gates.yml (gates, checks, thresholds), the GX suites in
expectations/suites/, and the DuckDB queries rendered from them with a gate's parameters."""
from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path
from typing import Any

import yaml

from crmtier.paths import EXPECTATIONS_DIR

GATES_FILE = EXPECTATIONS_DIR / "gates.yml"
SUITES_DIR = EXPECTATIONS_DIR / "suites"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


GATES_FILE = EXPECTATIONS_DIR / "gates.yml"


SUITES_DIR = EXPECTATIONS_DIR / "suites"


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class GateConfigError(ValueError):
    """gates.yml, a suite or the run parameters are wrong (a bug, not bad data)."""


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
