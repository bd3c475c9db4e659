"""One real backfill shared by the report and explain tests (session fixture `report_run` in conftest).

Generated exports (600 customers, bad rows included) as of 2026-11-01, run through the real DAG for
three as-of dates a week apart: history, transitions, alerts, outbox, gates and the run report of
each date. CRMTIER_TEST_ARTIFACTS (a folder) keeps the last report and its screenshot after the tests.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

DATES = ["2026-10-18", "2026-10-25", "2026-11-01"]
CUSTOMERS = 600


@dataclass(frozen=True)
class ReportRun:
    home: Path
    landing: Path
    dates: list[str]
    exit_code: int
    output: str

    @property
    def as_of(self) -> str:
        return self.dates[-1]

    @property
    def snapshot(self) -> Path:
        return self.home / "publish" / "crm.duckdb"


def backfill_for_report(tmp_path_factory):
    import contextlib
    import io

    from crmtier.cli import run_dag
    from crmtier.samples.generate import generate

    home = tmp_path_factory.mktemp("report_run") / "var"
    landing = home / "landing"
    mp = pytest.MonkeyPatch()
    mp.setenv("CRMTIER_HOME", str(home))
    for var in ("CRMTIER_LANDING", "CRMTIER_WAREHOUSE", "CRMTIER_PUBLISH", "CRMTIER_OUTBOX", "AIRFLOW_HOME",
                "CRMTIER_NOTIFY_WEBHOOK", "CRMTIER_NOTIFY_EMAIL_TO"):
        mp.delenv(var, raising=False)
    generate(landing, CUSTOMERS, seed=11, as_of=DATES[-1])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run_dag(DATES, landing)
    yield ReportRun(home, landing, DATES, code, out.getvalue())
    mp.undo()
