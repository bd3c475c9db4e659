"""What an Airflow deployment of crmtier needs besides `airflow db migrate` (run by `deploy/airflow-init.sh`
in compose's airflow-init service and by `make deploy-up`; the pool also by the embedded runner).

* the one-slot pool every warehouse-writing task runs in, so a second DagRun, a manual run or a
  backfill never meets the DuckDB file lock;
* the admin password from the env file, written to the simple auth manager's passwords file
  (mode 600), instead of the password Airflow would generate and print.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

WAREHOUSE_POOL = "crmtier_warehouse"
WAREHOUSE_POOL_DESCRIPTION = "one writer at a time on the DuckDB warehouse (crmtier)"


EMBEDDED_ENV = "CRMTIER_EMBEDDED_RUN"


def runs_in_scheduler() -> bool:
    """False in the embedded runner (`crmtier run`, `dag.test()`), which orders the dates itself and stops
    at the first failed one: `dag.test()` never gives up on a task held by `depends_on_past` (no deadlock
    is declared for it), so a date after a failed one would wait forever instead of failing."""
    return os.environ.get(EMBEDDED_ENV) != "1"


def snapshot_asset():
    """The published snapshot as an Airflow Asset: publish updates it, a downstream DAG schedules on it
    (`@dag(schedule=[snapshot_asset()])`)."""
    from airflow.sdk import Asset

    from crmtier.paths import get_paths

    # named by its URI: a home moved or copied (or another CRMTIER_PUBLISH) is a new asset; one name with
    # a second URI would be an inactive asset in Airflow's metadata DB and fail the publish task
    return Asset(uri=get_paths().publish.resolve().as_uri(), group="crmtier")


def ensure_pool() -> None:
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(WAREHOUSE_POOL, 1, WAREHOUSE_POOL_DESCRIPTION, include_deferred=False)


def write_admin_password() -> Path:
    """The simple auth manager's passwords file: {user: password} from AIRFLOW_ADMIN_USER/_PASSWORD."""
    from airflow.configuration import conf

    user = os.environ.get("AIRFLOW_ADMIN_USER") or "admin"
    password = os.environ.get("AIRFLOW_ADMIN_PASSWORD", "")
    if not password:
        raise SystemExit("AIRFLOW_ADMIN_PASSWORD is empty: set it in the env file (see .env.example)")
    path = Path(conf.get("core", "simple_auth_manager_passwords_file", fallback="")
                or Path(os.environ["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps({user: password}) + "\n")
    os.replace(tmp, path)
    return path


def main() -> int:
    path = write_admin_password()
    ensure_pool()
    print(f"[crmtier] airflow-init: admin password in {path}; pool {WAREHOUSE_POOL} (1 slot)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
