"""DuckDB's memory limit, threads and spill folder: one definition for every connection the pipeline
opens (`duckdb.connect(..., config=duckdb_config())`) and for dbt's profile (the dbt runner puts the
same values in the environment: `dbt_project/profiles.yml` reads them).

Without a limit DuckDB takes up to 80% of the machine's memory (a 6.3 GiB process at W10); with one
it spills to `temp_directory` instead. The default keeps the largest process of a W10 run under
4 GiB (`make bench`); raise it on a bigger machine, lower it beside other work.

* CRMTIER_DUCKDB_MEMORY_LIMIT   default 3GB (DuckDB units: 3GB, 2500MB, 4GiB ...)
* CRMTIER_DUCKDB_THREADS        default the machine's cores
* CRMTIER_DUCKDB_TEMP_DIRECTORY default <CRMTIER_HOME>/tmp/duckdb (spilled blocks, removed by DuckDB)
"""
from __future__ import annotations

import os
from pathlib import Path

from crmtier.paths import get_paths

MEMORY_LIMIT_ENV = "CRMTIER_DUCKDB_MEMORY_LIMIT"
THREADS_ENV = "CRMTIER_DUCKDB_THREADS"
TEMP_DIRECTORY_ENV = "CRMTIER_DUCKDB_TEMP_DIRECTORY"
DEFAULT_MEMORY_LIMIT = "3GB"


def duckdb_config() -> dict[str, str]:
    """`config` of duckdb.connect: memory limit, threads and spill folder from the environment."""
    return {"memory_limit": os.environ.get(MEMORY_LIMIT_ENV) or DEFAULT_MEMORY_LIMIT,
            "threads": os.environ.get(THREADS_ENV) or str(os.cpu_count() or 1),
            "temp_directory": _spill_folder()}


def _spill_folder() -> str:
    """The spill folder, made here: DuckDB creates only its last level, and only when it first spills,
    so a missing parent (a fresh home's tmp/) fails the first query too large for memory."""
    folder = os.environ.get(TEMP_DIRECTORY_ENV) or str(get_paths().home / "tmp" / "duckdb")
    Path(folder).mkdir(parents=True, exist_ok=True)
    return folder


def duckdb_env() -> dict[str, str]:
    """The same settings as environment variables, for dbt's profile (profiles.yml `config_options`)."""
    config = duckdb_config()
    return {MEMORY_LIMIT_ENV: config["memory_limit"], THREADS_ENV: config["threads"],
            TEMP_DIRECTORY_ENV: config["temp_directory"]}
