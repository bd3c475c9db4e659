"""Shared fixtures: every test that writes gets its own CRMTIER_HOME (warehouse, Airflow DB, snapshot)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")

TIERS = ("unit", "integration", "e2e")  # registered in pyproject.toml; one per test module
# Work units for `make test` (`-n 2 --dist loadgroup`), longest first so that the two workers end
# together: a unit is one module, or one shared session fixture with every module that uses it (a
# session fixture is built once per worker, so its users must run on the same worker). Measured
# costs on 2 cores; a module not listed runs after these, e2e before integration before unit.
HEAVY_FIRST = ("test_faults", "test_history", "test_deploy", "report_run", "test_control_groups",
               "test_landing_dag", "test_dates", "test_values_e2e", "test_pipeline_e2e",
               "test_online_retail_e2e", "test_attributes_only_e2e", "test_vendor_e2e")


def _tier(item: pytest.Item) -> str:
    tiers = {mark.name for mark in item.iter_markers() if mark.name in TIERS}
    if len(tiers) != 1:
        raise pytest.UsageError(f"{item.nodeid}: a test has exactly one of the markers {TIERS} "
                                f"(module-level `pytestmark`), not {sorted(tiers) or 'none'}")
    return tiers.pop()


def _work_unit(item: pytest.Item) -> str:
    groups = [mark.args[0] for mark in item.iter_markers("xdist_group")]
    return groups[0] if groups else item.module.__name__.rpartition(".")[2]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    rank = {}
    for item in items:
        unit = _work_unit(item)
        if not any(item.iter_markers("xdist_group")):
            item.add_marker(pytest.mark.xdist_group(unit))
        tier_rank = 1 + len(HEAVY_FIRST) + TIERS[::-1].index(_tier(item))
        rank[item] = HEAVY_FIRST.index(unit) if unit in HEAVY_FIRST else tier_rank
    items.sort(key=rank.__getitem__)  # stable: a module keeps its own order


@pytest.fixture
def crm_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "var"
    home.mkdir()
    monkeypatch.setenv("CRMTIER_HOME", str(home))
    for var in ("CRMTIER_LANDING", "CRMTIER_WAREHOUSE", "CRMTIER_PUBLISH", "AIRFLOW_HOME"):
        monkeypatch.delenv(var, raising=False)
    return home


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def report_run(tmp_path_factory):
    """One real backfill shared by the report and explain tests (tests/report_run.py)."""
    from tests.report_run import backfill_for_report

    yield from backfill_for_report(tmp_path_factory)
