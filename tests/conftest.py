"""Shared fixtures: every test that writes gets its own CRMTIER_HOME (warehouse, Airflow DB, snapshot)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")

TIERS = ("unit", "integration", "e2e")  # registered in pyproject.toml; one per test module
# Work units of `make test` (`-n 2 --dist loadfile`): a module, or the modules that share a session
# fixture (built once per worker, so its users must run on the same worker).
SHARED = {"report_run": ("test_report", "test_explain", "test_model_check", "test_pii_e2e")}
# The longest work units first, so that the two workers end together (a long one last would run alone);
# the rest after these: e2e, then integration, then unit modules.
HEAVY_FIRST = ("test_faults", "test_history", "test_deploy", "report_run", "test_control_groups",
               "test_landing_dag", "test_dates", "test_pipeline_e2e", "test_values_e2e",
               "test_online_retail_e2e", "test_attributes_only_e2e", "test_vendor_e2e")


def work_unit(module: str) -> str:
    """The work unit of a test module (its name without the package or `.py`)."""
    return next((group for group, modules in SHARED.items() if module in modules), module)


def _tier(item: pytest.Item) -> str:
    tiers = {mark.name for mark in item.iter_markers() if mark.name in TIERS}
    if len(tiers) != 1:
        raise pytest.UsageError(f"{item.nodeid}: a test has exactly one of the markers {TIERS} "
                                f"(module-level `pytestmark`), not {sorted(tiers) or 'none'}")
    return tiers.pop()


@pytest.hookimpl(tryfirst=True)  # every collected test, also those -m / -k deselect
def pytest_collection_modifyitems(config, items):
    rank = {}
    for item in items:
        unit = work_unit(item.path.stem)
        tier_rank = len(HEAVY_FIRST) + TIERS[::-1].index(_tier(item))
        rank[item] = HEAVY_FIRST.index(unit) if unit in HEAVY_FIRST else tier_rank
    items.sort(key=rank.__getitem__)  # stable: a module keeps its own order


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` by work unit instead of by file, in collection order (`--no-loadscope-reorder`).
    (`--dist loadgroup` with xdist_group marks does not group under pytest 9.2: pytest-xdist 3.8 sets
    `item._nodeid`, which pytest 9.2 no longer reads: every test became its own unit.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class WorkUnitScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(Path(nodeid.split("::", 1)[0]).stem)

    return WorkUnitScheduling(config, log)


@pytest.fixture(scope="session", autouse=True)
def airflow_db_template(request, tmp_path_factory):
    """One real `airflow db migrate` per worker, copied into every new home of an e2e test
    (crmtier.cli.ensure_airflow_db) instead of ~15 s of migration per home."""
    if not any(item.get_closest_marker("e2e") for item in request.session.items):
        yield None
        return
    from crmtier.cli import AIRFLOW_DB_TEMPLATE_ENV, ensure_airflow_db

    home = tmp_path_factory.mktemp("airflow_template")
    db = home / "airflow.db"
    ensure_airflow_db({**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                       "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db}"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(AIRFLOW_DB_TEMPLATE_ENV, str(db))
        yield db


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
