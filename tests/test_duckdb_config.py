"""DuckDB memory limit, threads and spill folder (crmtier.duckdb_config): one definition for the
pipeline's connections and dbt's profile."""
from __future__ import annotations

import duckdb
import pytest
import yaml

from crmtier.duckdb_config import (
    DEFAULT_MEMORY_LIMIT,
    MEMORY_LIMIT_ENV,
    TEMP_DIRECTORY_ENV,
    THREADS_ENV,
    duckdb_config,
    duckdb_env,
)
from crmtier.paths import DBT_PROJECT_DIR

pytestmark = pytest.mark.unit


def settings_of(con) -> dict:
    return dict(con.execute("select name, value from duckdb_settings() "
                            "where name in ('memory_limit', 'threads', 'temp_directory')").fetchall())


def test_defaults_under_the_home(crm_home, monkeypatch):
    for var in (MEMORY_LIMIT_ENV, THREADS_ENV, TEMP_DIRECTORY_ENV):
        monkeypatch.delenv(var, raising=False)
    config = duckdb_config()
    assert config["memory_limit"] == DEFAULT_MEMORY_LIMIT
    assert config["temp_directory"] == str(crm_home.resolve() / "tmp" / "duckdb")
    assert int(config["threads"]) >= 1


def test_environment_reaches_a_connection_of_a_warehouse_file(crm_home, monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "700MB")
    monkeypatch.setenv(THREADS_ENV, "1")
    monkeypatch.setenv(TEMP_DIRECTORY_ENV, str(crm_home / "spill"))
    con = duckdb.connect(str(crm_home / "w.duckdb"), config=duckdb_config())
    try:
        settings = settings_of(con)
    finally:
        con.close()
    assert settings["threads"] == "1"
    assert settings["memory_limit"].startswith("667") or settings["memory_limit"].startswith("700"), settings
    assert settings["temp_directory"] == str(crm_home / "spill")


def test_dbt_profile_reads_the_same_variables(crm_home, monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "1")
    env = duckdb_env()
    assert env[THREADS_ENV] == "1" and set(env) == {MEMORY_LIMIT_ENV, THREADS_ENV, TEMP_DIRECTORY_ENV}
    profile = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text())
    settings = profile["crmtier"]["outputs"]["local"]["settings"]
    assert MEMORY_LIMIT_ENV in settings["memory_limit"]
    assert THREADS_ENV in settings["threads"]
    assert TEMP_DIRECTORY_ENV in settings["temp_directory"]
