"""Shared fixtures: every test that writes gets its own CRMTIER_HOME (warehouse, Airflow DB, snapshot)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")


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
