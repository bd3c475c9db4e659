"""DuckDB memory limit, threads and spill folder (crmtier.duckdb_config): one definition for the
pipeline's connections and dbt's profile."""
from __future__ import annotations

import os

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
    settings = profile["crmtier"]["outputs"]["local"]["config_options"]
    assert MEMORY_LIMIT_ENV in settings["memory_limit"]
    assert THREADS_ENV in settings["threads"]
    assert TEMP_DIRECTORY_ENV in settings["temp_directory"]


SPILLING_QUERY = "create table t as select i, md5(i::varchar) as h from range(1000000) r(i) order by h"


def test_a_fresh_home_can_spill_as_the_pipeline_and_as_dbt(crm_home, monkeypatch):
    """DuckDB creates only the last level of its spill folder: a fresh home has no tmp/, and the first
    query larger than the memory limit failed ("Failed to create directory tmp/duckdb"), in dbt too
    (which gets the folder relative to the home and runs in it). The settings make the folder."""
    for var in (MEMORY_LIMIT_ENV, THREADS_ENV, TEMP_DIRECTORY_ENV):
        monkeypatch.delenv(var, raising=False)
    assert not (crm_home / "tmp").exists()
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "30MB")
    monkeypatch.setenv(THREADS_ENV, "1")
    for config in (duckdb_config(), {**duckdb_config(), "temp_directory": "tmp/duckdb"}):
        monkeypatch.chdir(crm_home)  # where dbt runs, with the relative folder the dbt runner gives it
        con = duckdb.connect(config=config)
        try:
            con.execute(SPILLING_QUERY)
            spilled = con.execute("select sum(temporary_storage_bytes) from duckdb_memory()").fetchone()[0]
            assert spilled > 0 and con.execute("select count(*) from t").fetchone() == (1000000,)
        finally:
            con.close()


def test_dbt_opens_with_the_settings_so_a_later_cursor_does_not_reset_the_spill_folder(crm_home, monkeypatch):
    """dbt-duckdb opens the instance with the profile's `config_options` and SETs its `settings` on every
    cursor (each thread, each node); DuckDB refuses to set temp_directory again once it has spilled, so
    the W10 staging build failed on a later cursor. The profile, rendered as dbt renders it, gives every
    DuckDB setting at connect: spilling, then opening cursors as dbt does, works."""
    import jinja2
    from dbt.adapters.duckdb.environments import Environment

    monkeypatch.setenv(MEMORY_LIMIT_ENV, "30MB")
    monkeypatch.setenv(THREADS_ENV, "1")
    monkeypatch.setenv(TEMP_DIRECTORY_ENV, duckdb_config()["temp_directory"])
    text = jinja2.Template((DBT_PROJECT_DIR / "profiles.yml").read_text()).render(
        env_var=lambda name, default=None: os.environ.get(name, default))
    output = yaml.safe_load(text)["crmtier"]["outputs"]["local"]

    class Credentials:  # the fields of dbt-duckdb's credentials that initialize_cursor reads
        settings, retries = output.get("settings"), None

    con = duckdb.connect(str(crm_home / "w.duckdb"), config=output.get("config_options", {}))
    try:
        Environment.initialize_cursor(Credentials, con.cursor())
        con.execute(SPILLING_QUERY.replace("create table", "create temp table"))  # in memory: it spills
        assert con.execute("select sum(temporary_storage_bytes) from duckdb_memory()").fetchone()[0] > 0
        for _ in range(2):
            Environment.initialize_cursor(Credentials, con.cursor()).execute("select 1")
    finally:
        con.close()
