"""Airflow imports `airflow_local_settings` in every Airflow process it starts (this folder is on the
services' PYTHONPATH: docker-compose.yml, deploy/local.py).

In the scheduler only, it imports what the pipeline's tasks import (GX, dbt, DuckDB, pandas) before
the LocalExecutor forks its workers: every task process is forked from a worker, so it starts with
them loaded (copy-on-write) instead of importing them again; a gate task otherwise spends ~4 s importing
GX and a dbt task ~2.5 s importing dbt. They are imported with the garbage collector paused and then
frozen (`crmtier.long_lived`), so neither the scheduler's collections nor its tasks' walk them again.
Nothing of Airflow is imported here (Airflow is still starting), and no setting or policy is defined:
`__all__` is empty.
"""
from __future__ import annotations

import importlib
import logging
import sys
import time

__all__: list[str] = []

TASK_LIBRARIES = ("duckdb", "pandas", "great_expectations", "dbt.cli.main", "dbt.adapters.duckdb")


def _preload() -> None:
    from crmtier.long_lived import long_lived

    started = time.monotonic()
    with long_lived():
        for name in TASK_LIBRARIES:
            try:
                importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - a library that fails here fails in its task, with its error
                logging.getLogger("crmtier.preload").warning("not preloaded: %s (%s)", name, exc)
    logging.getLogger("crmtier.preload").info("task libraries preloaded for forked tasks in %.1fs",
                                              time.monotonic() - started)


if sys.argv[1:2] == ["scheduler"]:
    _preload()
