"""Where the pipeline reads and writes. Everything it writes lives under one home folder (`var/`)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
EXPECTATIONS_DIR = REPO_ROOT / "expectations"
DAGS_DIR = REPO_ROOT / "dags"


@dataclass(frozen=True)
class Paths:
    home: Path

    @property
    def landing(self) -> Path:
        return Path(os.environ.get("CRMTIER_LANDING", self.home / "landing"))

    @property
    def warehouse(self) -> Path:
        return Path(os.environ.get("CRMTIER_WAREHOUSE", self.home / "warehouse" / "crm.duckdb"))

    @property
    def publish(self) -> Path:
        return Path(os.environ.get("CRMTIER_PUBLISH", self.home / "publish" / "crm.duckdb"))

    @property
    def airflow_home(self) -> Path:
        return Path(os.environ.get("AIRFLOW_HOME", self.home / "airflow"))

    @property
    def gx_results(self) -> Path:
        return self.home / "gx"

    @property
    def dbt_target(self) -> Path:
        return self.home / "dbt_target"

    @property
    def reports(self) -> Path:
        return self.home / "reports"


def get_paths() -> Paths:
    """Paths from the environment (`CRMTIER_HOME`, default `<repo>/var`)."""
    return Paths(Path(os.environ.get("CRMTIER_HOME", REPO_ROOT / "var")).resolve())
