"""Run dbt for one stage of the pipeline.

dbt runs in a child process: dbt-duckdb keeps the DuckDB file open for the life of the
process, and the next stage (a gate, or another writer) needs the lock released.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import yaml

from crmtier.duckdb_config import duckdb_env
from crmtier.faults import fault_point, fault_requested
from crmtier.paths import DBT_PROJECT_DIR, get_paths

log = logging.getLogger(__name__)


class DbtFailed(Exception):
    """A dbt command failed (a model error or a failing data test)."""


def config_version(extra_vars: dict | None = None) -> str:
    """A short hash of the thresholds (dbt vars) and rule seeds: it changes whenever the config does,
    so a tier change caused by a config edit can be told apart from one caused by behaviour."""
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    rules = dict(project.get("vars", {}))
    rules.pop("as_of_date", None)
    rules.pop("config_version", None)
    rules.update({k: v for k, v in (extra_vars or {}).items() if k not in ("as_of_date", "config_version")})
    digest = hashlib.sha256(json.dumps(rules, sort_keys=True, default=str).encode())
    for seed in sorted((DBT_PROJECT_DIR / "seeds").glob("*.csv")):
        digest.update(seed.name.encode())
        digest.update(seed.read_bytes())
    return digest.hexdigest()[:12]


def run_dbt(args: list[str], as_of_date: str, warehouse: str | Path | None = None,
            extra_vars: dict | None = None, fault_point_name: str | None = None) -> str:
    """Run `dbt <args>` with the as-of date and config version as vars; raise DbtFailed on failure."""
    paths = get_paths()
    # as-of date and config version go in the environment: a changed --vars value would make
    # dbt re-parse the whole project on every run (macros/as_of.sql reads them)
    env = {**os.environ,
           "CRMTIER_AS_OF_DATE": as_of_date,
           "CRMTIER_CONFIG_VERSION": config_version(extra_vars),
           "CRMTIER_WAREHOUSE": str(warehouse or paths.warehouse),
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
           "DBT_TARGET_PATH": str(paths.dbt_target),
           "DBT_LOG_PATH": str(paths.dbt_target / "logs"),
           "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
           **duckdb_env()}  # memory limit, threads, spill folder (profiles.yml settings)
    cmd = [str(Path(sys.executable).with_name("dbt")), *args, "--project-dir", str(DBT_PROJECT_DIR)]
    if extra_vars:
        cmd += ["--vars", json.dumps(extra_vars)]
    log.info("running %s", " ".join(cmd))
    if fault_point_name and fault_requested(fault_point_name):
        _run_until_first_node(cmd, env, fault_point_name)
    proc = subprocess.run(cmd, env=env, cwd=DBT_PROJECT_DIR, text=True, capture_output=True)
    output = proc.stdout + proc.stderr
    for line in output.splitlines():
        log.info("dbt | %s", line)
    if proc.returncode != 0:
        failures = [line for line in output.splitlines()
                    if any(k in line for k in ("ERROR", "FAIL ", "Failure in", "Error in", "Compilation Error"))]
        raise DbtFailed(f"dbt {' '.join(args)} failed (exit {proc.returncode}):\n" + "\n".join(failures[-30:]))
    return output


def _run_until_first_node(cmd: list[str], env: dict, point: str) -> None:
    """Test-only (crmtier.faults): start dbt and kill the run's process group once dbt has built its
    first node, i.e. while dbt is writing the warehouse."""
    with subprocess.Popen(cmd, env=env, cwd=DBT_PROJECT_DIR, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT) as running:
        for line in running.stdout:
            if " of " in line and " OK " in line:
                fault_point(point)
