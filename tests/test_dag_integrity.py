"""The DAG imports cleanly, is a short declaration and is wired as the pipeline says."""
from __future__ import annotations

import os

import pytest

from crmtier.paths import DAGS_DIR

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow")
    # restored after the module: a later module's runs (subprocesses) in this worker must not inherit them
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_HOME", str(home))
        mp.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        mp.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}")
        from airflow.dag_processing.dagbag import DagBag

        yield DagBag(dag_folder=str(DAGS_DIR))


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "crm_pipeline" in dagbag.dag_ids


def test_pipeline_order(dagbag):
    dag = dagbag.dags["crm_pipeline"]
    order = ["ingest", "gate_raw", "dbt_staging", "gate_staging", "dbt_marts", "gate_marts", "gate_drift", "publish",
             "outbox", "notify"]
    assert set(dag.task_ids) >= set(order)
    for upstream, downstream in zip(order, order[1:]):
        assert downstream in dag.get_task(upstream).downstream_task_ids, f"{upstream} -> {downstream}"
    # nothing is published unless every gate passed
    assert dag.get_task("publish").upstream_task_ids == {"gate_drift"}
    assert dag.get_task("gate_drift").upstream_task_ids == {"gate_marts"}
    # no alert is handed over before the snapshot of the same date is published
    assert dag.get_task("outbox").upstream_task_ids == {"publish"}


def test_the_runs_last_gate_rebuilds_the_data_docs_index(dagbag):
    from crmtier.pipeline import DATA_DOCS_INDEX_GATE

    dag = dagbag.dags["crm_pipeline"]
    gates = [t for t in dag.task_ids if t.startswith("gate_")]
    last = [t for t in gates if not dag.get_task(t).get_flat_relative_ids(upstream=False) & set(gates)]
    assert last == [f"gate_{DATA_DOCS_INDEX_GATE}"]


def test_dag_settings(dagbag):
    dag = dagbag.dags["crm_pipeline"]
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert dag.tags and dag.doc_md
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
        assert task.on_failure_callback, task.task_id


def test_dag_file_is_thin():
    source = (DAGS_DIR / "crm_pipeline.py").read_text()
    assert "duckdb" not in source and "import pandas" not in source
    assert len(source.splitlines()) < 100


def test_airflow_conventions(dagbag):
    """One-slot pool for the warehouse, dates in order, a full_refresh param, the snapshot Asset, notifiers."""
    from crmtier.airflow_setup import WAREHOUSE_POOL
    from crmtier.delivery.notifiers import ConnectionsNotifier

    dag = dagbag.dags["crm_pipeline"]
    for task in dag.tasks:
        assert task.pool == WAREHOUSE_POOL, task.task_id
        assert task.depends_on_past, task.task_id
        assert any(isinstance(cb, ConnectionsNotifier) for cb in task.on_failure_callback), task.task_id
    assert dag.params["full_refresh"] is False
    assert dag.params.get_param("full_refresh").schema["type"] == "boolean"
    outlets = dag.get_task("publish").outlets
    assert len(outlets) == 1 and outlets[0].uri.endswith("/publish/crm.duckdb") and outlets[0].name == outlets[0].uri
    assert any(isinstance(cb, ConnectionsNotifier) for cb in dag.on_success_callback)


def test_dag_file_imports_only_the_sdk():
    source = (DAGS_DIR / "crm_pipeline.py").read_text()
    airflow_imports = [line for line in source.splitlines() if line.startswith(("from airflow", "import airflow"))]
    assert airflow_imports and all(line.startswith("from airflow.sdk import") for line in airflow_imports)


# the embedded runner's trim of the in-process execution API (crmtier.airflow_runner), checked in a child
# process: the trim rebinds Cadwyn's version changes, which must not leak into this test process
SDK_VERSION_OPENAPI = r'''
import json, sys
from airflow.api_fastapi.execution_api import versions
from airflow.api_fastapi.execution_api.routes import execution_api_router
from airflow.sdk.api.client import API_VERSION
from cadwyn.route_generation import generate_versioned_routers
from fastapi.openapi.utils import get_openapi

from crmtier.airflow_runner import serve_only_the_sdk_api_version

def served(bundle):
    routers = generate_versioned_routers(execution_api_router, versions=bundle,
                                         api_version_parameter_name="Airflow-API-Version")
    return sorted(routers.endpoints), get_openapi(title="x", version=API_VERSION,
                                                  routes=routers.endpoints[API_VERSION].routes)

full_versions, full = served(versions.bundle)
said = serve_only_the_sdk_api_version()
trimmed_versions, trimmed = served(versions.bundle)
json.dump({"said": said, "sdk": API_VERSION, "full_versions": full_versions,
           "trimmed_versions": trimmed_versions, "same": full == trimmed,
           "paths": len(full["paths"])}, open(sys.argv[1], "w"))
'''


def test_the_in_process_api_serves_the_sdk_version_as_airflow_does(tmp_path):
    """The runner serves only the task SDK's version of the execution API in process: that version's
    routes and schemas (its whole OpenAPI document) are the ones the full nine-version API serves."""
    import json
    import subprocess
    import sys

    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}"}
    out = tmp_path / "served.json"
    subprocess.run([sys.executable, "-c", SDK_VERSION_OPENAPI, str(out)], env=env, capture_output=True, check=True)
    result = json.loads(out.read_text())
    assert result["said"] == f"execution API: version {result['sdk']} served in process (of 9)"
    assert result["sdk"] in result["trimmed_versions"]
    assert len(result["trimmed_versions"]) == 3 < len(result["full_versions"])
    assert result["paths"] > 20
    assert result["same"]
