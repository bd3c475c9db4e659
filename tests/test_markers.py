"""Every test module declares one tier (unit, integration, e2e) in a module-level `pytestmark`, the
tiers are registered under --strict-markers, and `make test-fast` runs the unit tier only."""
from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from tests.conftest import HEAVY_FIRST, SHARED, TIERS

pytestmark = pytest.mark.unit

TESTS = Path(__file__).parent
REPO = TESTS.parent
MODULES = sorted(TESTS.glob("test_*.py"))


def _marks(node: ast.expr) -> list[str]:
    """Names of `pytest.mark.<name>` (called or not) in a `pytestmark` value (one mark or a list)."""
    items = node.elts if isinstance(node, (ast.List, ast.Tuple)) else [node]
    names = []
    for item in items:
        target = item.func if isinstance(item, ast.Call) else item
        if isinstance(target, ast.Attribute) and ast.unparse(target.value) == "pytest.mark":
            names.append(target.attr)
    return names


def _module_tiers(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    values = [node.value for node in tree.body if isinstance(node, ast.Assign)
              and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)]
    return [name for value in values for name in _marks(value) if name in TIERS]


def _function_tiers(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{node.name}: {name}" for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))
            for decorator in node.decorator_list for name in _marks(decorator) if name in TIERS]


def test_the_tiers_are_registered_and_strict():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in config["addopts"].split()
    assert [line.split(":")[0] for line in config["markers"]] == list(TIERS)


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_every_module_declares_exactly_one_tier(path):
    assert len(MODULES) > 30
    assert len(_module_tiers(path)) == 1, f"{path.name}: declare one of {TIERS} as `pytestmark` at module level"
    # a test marked otherwise than its module would still be selected by the module's tier
    assert _function_tiers(path) == [], f"{path.name}: move a test of another tier to a module of that tier"


def test_the_parser_sees_marks_in_every_form():
    tree = ast.parse('pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("report_run")]\n'
                     "x = pytest.mark.unit\n")
    assert _marks(tree.body[0].value) == ["e2e", "xdist_group"]
    assert _marks(tree.body[1].value) == ["unit"]


def test_make_targets_select_the_tiers():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    fast = re.search(r"^test-fast:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert fast and "-m unit" in fast.group(1)
    full = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert full and "pytest" in full.group(1) and "--dist loadfile" in full.group(1)
    assert not re.search(r"-m ['\"]?(not |unit|integration|e2e)", full.group(1))  # all of it


def test_heavy_work_units_exist():
    """The scheduling order names real modules or shared-fixture groups (a renamed module would be
    scheduled last and end alone on one worker)."""
    groups = {m.stem for m in MODULES} | set(SHARED)
    assert set(HEAVY_FIRST) <= groups, set(HEAVY_FIRST) - groups


@pytest.mark.parametrize("fixture", sorted(SHARED))
def test_every_user_of_a_shared_session_fixture_is_in_its_work_unit(fixture):
    """Else a second worker builds the fixture (its DagRuns) again."""
    users = {m.stem for m in MODULES if any(
        isinstance(node, ast.FunctionDef) and fixture in [a.arg for a in node.args.args]
        for node in ast.walk(ast.parse(m.read_text(encoding="utf-8"))))}
    assert users and users == set(SHARED[fixture])
