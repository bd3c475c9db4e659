"""The deployment (issue 11).

* docker-compose.yml: checked as data (services, healthchecks, volumes, no secret with a default, the
  image's commands are the ones `deploy/local.py` runs) and by `docker-compose config` (no Docker
  engine needed) when docker-compose is installed (`.ci/run` installs it).
* The same topology running here: `deploy/local.py up` (PostgreSQL from the Debian packages, Airflow
  api-server, scheduler, dag-processor, triggerer on it, LocalExecutor), a run triggered through the REST
  API v2 with token auth, `airflow backfill create` through the scheduler, the scheduler killed in the
  middle of a run, and `down` leaving no process behind. Compared with embedded `crmtier run`s of the
  same dates on a copy of the same files.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from crmtier.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "deploy"))
import local  # noqa: E402  (deploy/local.py)

pytestmark = pytest.mark.e2e

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SECRETS = ("POSTGRES_PASSWORD", "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY",
           "AIRFLOW_FERNET_KEY")
AIRFLOW_SERVICES = ("airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer")
DAG_ID = "crm_pipeline"
# 2011 dates: the scheduler runs historical dates (the DAG's start_date is layout.EARLIEST_DATE)
FIRST = "2011-03-01"
BACKFILL = ["2011-03-02", "2011-03-03", "2011-03-04"]  # the three dates, in order
KILLED = "2011-03-05"


# ---------------------------------------------------------------- docker-compose.yml, statically

def test_compose_has_the_services_healthchecks_and_volumes():
    services = COMPOSE["services"]
    assert set(services) == {"postgres", *AIRFLOW_SERVICES}
    assert services["postgres"]["healthcheck"]["test"]
    assert "postgres-db:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    for name in AIRFLOW_SERVICES:
        service = services[name]
        assert service["build"] == "." and service["image"].startswith("crmtier:"), name
        assert service["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
        assert "crmtier-var:/opt/crmtier/var" in service["volumes"], name
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy", name
        if name != "airflow-init":
            assert service["healthcheck"]["test"], name
            assert service["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", name
    assert set(COMPOSE["volumes"]) == {"postgres-db", "crmtier-var"}


def test_no_secret_has_a_default():
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    for secret in SECRETS:
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
        assert uses and all(use.startswith(":?") for use in uses), (secret, uses)
    example = local.read_env_file(REPO_ROOT / ".env.example")
    for secret in SECRETS:
        assert example[secret] == "", f"{secret} has a value in .env.example"
    # and the refusal is real: an env file without them does not start anything
    with pytest.raises(SystemExit, match="refusing to start: set .* in .env"):
        local.airflow_env({}, Path("/nonexistent"))


def test_image_is_built_from_the_lock_with_the_project_baked_in():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "uv sync --frozen" in dockerfile
    installs = re.findall(r"pip install ([^\n\\&]+)", dockerfile)
    assert all(re.fullmatch(r"(--no-cache-dir )?uv==[\d.]+ ?", i) for i in installs), installs  # only pinned uv
    for folder in ("dags/", "dbt_project/", "expectations/", "crmtier/"):
        assert f"COPY {folder}" in dockerfile, folder
    assert 'VOLUME ["/opt/crmtier/var"]' in dockerfile


def test_local_deployment_runs_the_compose_commands_and_settings():
    commands = local.service_commands()
    for name in AIRFLOW_SERVICES:
        assert commands[name] == COMPOSE["services"][name]["command"]
    assert commands["airflow-scheduler"] == ["airflow", "scheduler"]
    env = {key: "x" for key in SECRETS}
    local_env = local.airflow_env(env, Path("/srv/crm"))
    compose_env = COMPOSE["services"]["airflow-scheduler"]["environment"]
    assert set(compose_env) <= set(local_env)
    assert local_env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert local_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://crmtier:x@127.0.0.1:")
    assert local_env["AIRFLOW__API__HOST"] == "127.0.0.1"  # loopback only here


PRELOAD_PROBE = """
import gc, sys
sys.argv = sys.argv[1:]
import airflow_local_settings
print(sorted(m for m in ("great_expectations", "dbt.cli.main", "duckdb", "pandas") if m in sys.modules),
      gc.get_freeze_count(), gc.isenabled())
"""


@pytest.mark.parametrize("service", ["scheduler", "api-server"])
def test_only_the_scheduler_preloads_the_task_libraries_and_freezes_them(service):
    """deploy/preload/airflow_local_settings.py: what LocalExecutor's forked tasks inherit, kept out of the
    garbage collector (crmtier.long_lived); the other services import nothing more."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "deploy" / "preload"), str(REPO_ROOT)])}
    proc = subprocess.run([sys.executable, "-c", PRELOAD_PROBE, "airflow", service], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded, frozen, enabled = proc.stdout.strip().rsplit(" ", 2)
    assert enabled == "True"
    if service == "scheduler":
        assert loaded == "['dbt.cli.main', 'duckdb', 'great_expectations', 'pandas']"
        assert int(frozen) > 300_000  # GX, dbt, pandas: ~400,000 objects
    else:
        assert (loaded, frozen) == ("[]", "0")


def test_docker_compose_config_accepts_the_file_and_refuses_without_secrets(tmp_path):
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose not installed (bash deploy/install-packages.sh --with-compose)")
    shutil.copy(REPO_ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(REPO_ROOT / ".env.example", tmp_path / ".env")
    refused = subprocess.run([exe, "config"], cwd=tmp_path, capture_output=True, text=True)
    assert refused.returncode != 0 and "set POSTGRES_PASSWORD in .env" in refused.stderr + refused.stdout
    filled = (tmp_path / ".env").read_text()
    for secret in SECRETS:
        filled = filled.replace(f"{secret}=\n", f"{secret}=s3cret-{secret.lower()}\n")
    (tmp_path / ".env").write_text(filled)
    accepted = subprocess.run([exe, "config"], cwd=tmp_path, capture_output=True, text=True)
    assert accepted.returncode == 0, accepted.stderr
    config = yaml.safe_load(accepted.stdout)
    assert set(config["services"]) == {"postgres", *AIRFLOW_SERVICES}
    scheduler_env = config["services"]["airflow-scheduler"]["environment"]
    assert scheduler_env["AIRFLOW__API_AUTH__JWT_SECRET"] == "s3cret-airflow_jwt_secret"
    assert "s3cret-postgres_password@postgres:5432" in scheduler_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


# ---------------------------------------------------------------- the deployment, running here

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Api:
    """Airflow's REST API v2 with its token auth (POST /auth/token, then a Bearer token)."""

    def __init__(self, port: int, user: str, password: str):
        self.base = f"http://127.0.0.1:{port}"
        body = json.dumps({"username": user, "password": password}).encode()
        request = urllib.request.Request(f"{self.base}/auth/token", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 201
            self.token = json.loads(response.read())["access_token"]

    def call(self, method: str, path: str, payload: dict | None = None) -> dict:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(f"{self.base}/api/v2{path}", data=data, method=method,
                                         headers={"Authorization": f"Bearer {self.token}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:2000]!r}") from None

    def runs(self) -> list[dict]:
        return self.call("GET", f"/dags/{DAG_ID}/dagRuns?order_by=logical_date&limit=100")["dag_runs"]

    def task_instances(self, run_id: str) -> list[dict]:
        return self.call("GET", f"/dags/{DAG_ID}/dagRuns/{urllib.request.quote(run_id)}/taskInstances")[
            "task_instances"]

    def wait(self, run_id: str, timeout: float = 1800) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.call("GET", f"/dags/{DAG_ID}/dagRuns/{urllib.request.quote(run_id)}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(1)  # a run's end is seen within a second: this test is one of the suite's longest
        raise AssertionError(f"run {run_id} did not end in {timeout:.0f}s: {self.task_instances(run_id)}")


def published(path: Path) -> dict[str, pd.DataFrame]:
    """Every table and view of a snapshot as sorted rows (`_snapshot` names the run: left out)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()]
        return {name: con.execute(f"select * from {name} order by all").df().reset_index(drop=True)
                for name in names if name != "_snapshot"}
    finally:
        con.close()


def snapshot_date(path: Path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return str(con.execute("select as_of_date from _snapshot").fetchone()[0])
    finally:
        con.close()


def assert_same_snapshot(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(actual[name], frame, obj=name)


def history_dates(warehouse: Path) -> list[str]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return [str(r[0]) for r in con.execute(
            "select distinct as_of_date from history.customer_history order by 1").fetchall()]
    finally:
        con.close()


def embedded(home: Path, landing: Path, *args: str) -> None:
    """`crmtier run` (the embedded DAG, SQLite metadata) in its own home."""
    env = {**os.environ, "CRMTIER_HOME": str(home)}
    for var in ("CRMTIER_LANDING", "CRMTIER_WAREHOUSE", "CRMTIER_PUBLISH", "AIRFLOW_HOME"):
        env.pop(var, None)
    proc = subprocess.run([str(Path(sys.executable).with_name("crmtier")), "run", "--landing", str(landing), *args],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def group_members(pgid: int) -> list[int]:
    return local.group_members(pgid)


@pytest.fixture(scope="module")
def deployment():
    # PostgreSQL runs as the `postgres` account: its folder must be reachable, which pytest's 0700
    # temp root is not; a private folder with o+x only
    root = Path(tempfile.mkdtemp(prefix="crmtier-deploy-"))
    os.chmod(root, 0o711)
    home = root / "var"
    env_file = root / "env"
    script = [sys.executable, str(REPO_ROOT / "deploy" / "local.py")]
    env = {**os.environ, "CRMTIER_HOME": str(home)}
    for var in ("CRMTIER_LANDING", "CRMTIER_WAREHOUSE", "CRMTIER_PUBLISH", "AIRFLOW_HOME"):
        env.pop(var, None)
    subprocess.run([*script, "env", "--env-file", str(env_file)], env=env, check=True)
    api_port, pg_port = free_port(), free_port()
    text = env_file.read_text()
    text = re.sub(r"(?m)^AIRFLOW_API_PORT=.*$", f"AIRFLOW_API_PORT={api_port}", text)
    text = re.sub(r"(?m)^CRMTIER_PG_PORT=.*$", f"CRMTIER_PG_PORT={pg_port}", text)
    # no run of "today" created by the scheduler on unpause: history holds only the dates the test asks for
    env_file.write_text(text + "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE=False\nAIRFLOW_API_WORKERS=1\n")
    secrets = local.read_env_file(env_file)

    from crmtier.samples.generate import generate

    landing = home / "landing"
    generate(landing, 200, seed=11, as_of=KILLED)
    reference_landing = root / "reference-landing"
    shutil.copytree(landing, reference_landing)

    def up():
        proc = subprocess.run([*script, "up", "--env-file", str(env_file)], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    def down():
        return subprocess.run([*script, "down", "--env-file", str(env_file)], env=env, capture_output=True,
                              text=True)

    started = time.monotonic()
    cleanup: list = []
    try:
        up()
        yield {"cleanup": cleanup, "root": root, "home": home, "env": env, "env_file": env_file, "script": script, "up": up,
               "down": down, "landing": reference_landing, "started": started,
               "api": Api(api_port, secrets["AIRFLOW_ADMIN_USER"], secrets["AIRFLOW_ADMIN_PASSWORD"])}
    finally:
        for step in cleanup:  # processes the test started besides the deployment
            step()
        down()
        print(f"\n[crmtier] deployment test: {time.monotonic() - started:.0f}s")
        shutil.rmtree(root, ignore_errors=True)


def test_deployment_end_to_end(deployment):
    api, home = deployment["api"], deployment["home"]
    publish, warehouse = home / "publish" / "crm.duckdb", home / "warehouse" / "crm.duckdb"
    reference = deployment["root"] / "reference"

    # 1. unpause, trigger a run for an as-of date through the REST API, compare with an embedded run
    assert api.call("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})["is_paused"] is False
    run = api.call("POST", f"/dags/{DAG_ID}/dagRuns", {"logical_date": f"{FIRST}T00:00:00Z", "conf": {}})
    embedded(reference, deployment["landing"], "--as-of", FIRST)
    expected_first = published(reference / "publish" / "crm.duckdb")
    later = subprocess.Popen(  # the embedded reference of the later dates runs meanwhile
        [str(Path(sys.executable).with_name("crmtier")), "run", "--landing", str(deployment["landing"]),
         "--from", BACKFILL[0], "--to", KILLED], env={**deployment["env"], "CRMTIER_HOME": str(reference)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deployment["cleanup"].append(lambda: later.poll() is None and os.killpg(later.pid, signal.SIGKILL))
    ended = api.wait(run["dag_run_id"])
    assert ended["state"] == "success", api.task_instances(run["dag_run_id"])
    tis = api.task_instances(run["dag_run_id"])
    assert {ti["task_id"]: ti["state"] for ti in tis} == {ti["task_id"]: "success" for ti in tis}
    assert {ti["pool"] for ti in tis} == {"crmtier_warehouse"}
    assert snapshot_date(publish) == FIRST
    assert_same_snapshot(published(publish), expected_first)

    # 2. `airflow backfill create` through the scheduler: three dates, in order
    backfill = subprocess.run([*deployment["script"], "--env-file", str(deployment["env_file"]), "airflow",
                               "backfill", "create", "--dag-id", DAG_ID, "--from-date", BACKFILL[0],
                               "--to-date", KILLED, "--reprocess-behavior", "failed", "--max-active-runs", "1"],
                              env=deployment["env"], capture_output=True, text=True)
    assert backfill.returncode == 0, backfill.stdout[-3000:] + backfill.stderr[-3000:]
    backfill_runs = [r for r in api.runs() if r["run_type"] == "backfill"]
    assert [r["logical_date"][:10] for r in backfill_runs] == BACKFILL
    finished = [api.wait(r["dag_run_id"]) for r in backfill_runs]
    assert [r["state"] for r in finished] == ["success"] * len(BACKFILL)
    for before, after in zip(finished, finished[1:]):  # one date after the other, never overlapping
        assert after["start_date"] >= before["end_date"], (before, after)
    assert history_dates(warehouse) == [FIRST, *BACKFILL]

    # 3. the scheduler killed in the middle of a run: the run ends, nothing is half-published
    run = api.call("POST", f"/dags/{DAG_ID}/dagRuns", {"logical_date": f"{KILLED}T00:00:00Z", "conf": {}})
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        states = {ti["task_id"]: ti["state"] for ti in api.task_instances(run["dag_run_id"])}
        if states.get("dbt_staging") in ("running", "success"):
            break
        time.sleep(2)
    assert states.get("dbt_staging") in ("running", "success"), states
    scheduler_pid = local.service_pid(home, "airflow-scheduler")
    assert scheduler_pid
    os.kill(scheduler_pid, signal.SIGKILL)
    deployment["up"]()  # brings back what is not running: the scheduler
    assert local.service_pid(home, "airflow-scheduler") not in (None, scheduler_pid)
    ended = api.wait(run["dag_run_id"])
    assert ended["state"] in ("success", "failed")
    if ended["state"] == "failed":  # a clear failure: a task says it failed
        assert any(ti["state"] in ("failed", "upstream_failed") for ti in api.task_instances(run["dag_run_id"]))
    # the killed scheduler's workers were stopped with it, as a container restart does
    assert [pid for pid in group_members(scheduler_pid)] == []
    assert snapshot_date(publish) in (BACKFILL[-1], KILLED)  # the old snapshot or the new one, whole
    published(publish)  # opens and reads completely
    assert not list((home / "publish").rglob("*.tmp")), "half-published files left behind"

    # ... and a rerun of the date gives the same snapshot as a clean run of the same dates
    api.call("POST", f"/dags/{DAG_ID}/dagRuns/{urllib.request.quote(run['dag_run_id'])}/clear",
             {"dry_run": False, "only_failed": False})
    rerun = api.wait(run["dag_run_id"])
    assert rerun["state"] == "success", api.task_instances(run["dag_run_id"])
    output, _ = later.communicate(timeout=1800)
    assert later.returncode == 0, output[-3000:]
    assert snapshot_date(publish) == KILLED
    assert_same_snapshot(published(publish), published(reference / "publish" / "crm.duckdb"))
    assert history_dates(warehouse) == [FIRST, *BACKFILL, KILLED]

    # 4. down stops everything it started, leaving no process behind
    groups = [local.recorded(home, service)[0] for service in local.SERVICES]
    postgres_pid = local.pg_pid(home)
    stopped = deployment["down"]()
    assert stopped.returncode == 0, stopped.stderr
    assert [pid for pgid in groups for pid in group_members(pgid)] == []
    assert postgres_pid and not local.alive(postgres_pid)
    print(f"\n[crmtier] deployment test body: {time.monotonic() - deployment['started']:.0f}s")
