"""The docker-compose.yml topology on one machine, without Docker (`make deploy-up` / `make deploy-down`).

    python deploy/local.py up     [--env-file .env]   # PostgreSQL + airflow-init + the four Airflow services
    python deploy/local.py down                       # stops exactly the processes `up` started
    python deploy/local.py status
    python deploy/local.py airflow ARGS...            # an Airflow CLI command against the deployment

Same services, same commands, same settings as the compose file (read from it, not copied): PostgreSQL
from the Debian packages as a private cluster under `var/deploy/postgres` on loopback only; compose's
`airflow-init` command; `airflow api-server`, `scheduler`, `dag-processor`, `triggerer` as background
processes (each its own process group), pid files in `var/deploy/run/`, logs in `var/deploy/logs/`.
Only what differs between a container and this machine is overridden (paths, loopback addresses, ports).
`up` is idempotent: it starts what is not running (a crashed scheduler comes back with `up`).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from glob import glob
from pathlib import Path
from urllib.parse import quote

import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
INIT_SERVICE = "airflow-init"
COMPOSE_HOME = "/opt/crmtier"  # the image's WORKDIR: the repository root here
PG_USER_ACCOUNT = "postgres"  # PostgreSQL refuses to run as root: the cluster runs as this account
DEFAULT_API_PORT = "8080"
DEFAULT_PG_PORT = "55432"


def log(message: str) -> None:
    print(f"[crmtier] deploy: {message}", flush=True)


# ---------------------------------------------------------------- compose file and env file

def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (compose's env-file syntax: comments, blank lines, optional quotes)."""
    if not path.exists():
        raise SystemExit(f"env file {path} not found: cp .env.example .env and fill in the secrets "
                         f"(or `make deploy-env` to generate them)")
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?error}` (empty counts as unset with `:`), `$$`."""
    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2), match.group(3)
        value = variables.get(name)
        unset = value is None or (value == "" and op and op.startswith(":"))
        if op and op.endswith("?") and unset:
            raise SystemExit(f"refusing to start: {arg or name + ' is not set'}")
        if op and op.endswith("-") and unset:
            return arg
        return value or ""
    return INTERPOLATION.sub(substitute, text)


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def service_commands() -> dict[str, list[str]]:
    """Each Airflow service's command, exactly as the compose file (the image) runs it."""
    services = compose()["services"]
    return {name: list(services[name]["command"]) for name in (INIT_SERVICE, *SERVICES)}


def airflow_env(env_file: dict[str, str], home: Path) -> dict[str, str]:
    """The compose services' environment, interpolated from the env file, with what differs between a
    container and this machine overridden: paths (the repo root for /opt/crmtier), loopback addresses."""
    variables = {**os.environ, **env_file}
    common = compose()["services"]["airflow-scheduler"]["environment"]
    env = {key: interpolate(str(value), variables) for key, value in common.items()}
    api_port = env_file.get("AIRFLOW_API_PORT") or DEFAULT_API_PORT
    pg_port = env_file.get("CRMTIER_PG_PORT") or DEFAULT_PG_PORT
    airflow_home = home / "deploy" / "airflow"
    overrides = local_overrides(env_file, home, airflow_home, api_port, pg_port)
    missing = set(overrides) - set(env)
    assert not missing, f"local overrides of settings the compose file does not have: {missing}"
    venv_bin = Path(sys.executable).parent
    return {**os.environ, **env_file, **env, **overrides,
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            # deploy/preload: airflow_local_settings (task libraries loaded in the scheduler before it forks)
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), str(REPO / "deploy" / "preload"),
                                                        os.environ.get("PYTHONPATH")]))}


def local_overrides(env_file: dict[str, str], home: Path, airflow_home: Path, api_port: str,
                    pg_port: str) -> dict[str, str]:
    user = env_file.get("POSTGRES_USER") or "crmtier"
    database = env_file.get("POSTGRES_DB") or "airflow"
    password = quote(env_file.get("POSTGRES_PASSWORD", ""), safe="")
    return {
        "CRMTIER_HOME": str(home),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(airflow_home / "passwords.json"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": api_port,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN":
            f"postgresql+psycopg2://{user}:{password}@127.0.0.1:{pg_port}/{database}",
    }


# ---------------------------------------------------------------- PostgreSQL (private cluster)

def pg_bin(tool: str) -> str:
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{tool}"), key=lambda p: int(p.split("/")[4]))
    if not found:
        subprocess.run(["bash", str(REPO / "deploy" / "install-packages.sh")], check=True)
        found = sorted(glob(f"/usr/lib/postgresql/*/bin/{tool}"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise SystemExit(f"PostgreSQL's {tool} not found after installing the postgresql package")
    return found[-1]


def as_cluster_owner(cmd: list[str]) -> list[str]:
    """Run a server command as the `postgres` account when we are root (postgres refuses root)."""
    return ["runuser", "-u", PG_USER_ACCOUNT, "--", *cmd] if os.geteuid() == 0 else cmd


def pg_paths(home: Path) -> dict[str, Path]:
    root = home / "deploy" / "postgres"
    return {"root": root, "data": root / "data", "log": root / "postgres.log"}


def check_reachable(path: Path) -> None:
    """The cluster owner must be able to reach the data folder: every parent searchable by it."""
    if os.geteuid() != 0:
        return
    probe = subprocess.run(["runuser", "-u", PG_USER_ACCOUNT, "--", "test", "-w", str(path)])
    if probe.returncode != 0:
        raise SystemExit(f"the {PG_USER_ACCOUNT} account cannot reach {path}: every parent folder needs "
                         f"o+x (e.g. chmod o+x on the folder holding CRMTIER_HOME)")


def start_postgres(env_file: dict[str, str], home: Path) -> None:
    paths = pg_paths(home)
    port = env_file.get("CRMTIER_PG_PORT") or DEFAULT_PG_PORT
    user = env_file.get("POSTGRES_USER") or "crmtier"
    password = env_file["POSTGRES_PASSWORD"]
    paths["root"].mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        account = pwd.getpwnam(PG_USER_ACCOUNT)
        os.chown(paths["root"], account.pw_uid, account.pw_gid)
    os.chmod(paths["root"], 0o700)
    if os.geteuid() == 0:  # the postgres account passes through the home to its cluster (search only, no listing)
        for folder in (home, home / "deploy"):
            if not folder.stat().st_mode & 0o001:
                os.chmod(folder, folder.stat().st_mode | 0o001)
                log(f"{folder}: others may pass through (o+x) so the {PG_USER_ACCOUNT} account reaches its cluster")
    check_reachable(paths["root"])
    if not (paths["data"] / "PG_VERSION").exists():
        pwfile = paths["root"] / ".pwfile"
        pwfile.write_text(password + "\n")
        if os.geteuid() == 0:
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        os.chmod(pwfile, 0o600)
        try:
            # like the postgres image: POSTGRES_USER is the cluster's superuser, password auth only
            run(as_cluster_owner([pg_bin("initdb"), "-D", str(paths["data"]), "-U", user, f"--pwfile={pwfile}",
                                  "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"]), "initdb")
        finally:
            pwfile.unlink(missing_ok=True)
        with (paths["data"] / "postgresql.conf").open("a") as conf:
            conf.write(f"\n# crmtier deploy/local.py: loopback TCP only, no Unix socket\n"
                       f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n")
    if pg_running(home):
        log(f"postgres already running (pid {pg_pid(home)})")
    else:
        run(as_cluster_owner([pg_bin("pg_ctl"), "-D", str(paths["data"]), "-l", str(paths["log"]),
                              "-o", f"-p {port}", "-w", "-t", "60", "start"]), "pg_ctl start")
        log(f"postgres started on 127.0.0.1:{port} (pid {pg_pid(home)}, log {paths['log']})")
    ensure_database(env_file)


def ensure_database(env_file: dict[str, str]) -> None:
    import psycopg2

    database = env_file.get("POSTGRES_DB") or "airflow"
    con = psycopg2.connect(host="127.0.0.1", port=int(env_file.get("CRMTIER_PG_PORT") or DEFAULT_PG_PORT),
                           user=env_file.get("POSTGRES_USER") or "crmtier", password=env_file["POSTGRES_PASSWORD"],
                           dbname="postgres", connect_timeout=10)
    con.autocommit = True
    try:
        with con.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", [database])
            if cur.fetchone() is None:
                cur.execute(f'create database "{database}"')
                log(f"database {database} created")
    finally:
        con.close()


def pg_pid(home: Path) -> int | None:
    pidfile = pg_paths(home)["data"] / "postmaster.pid"
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pg_running(home: Path) -> bool:
    pid = pg_pid(home)
    return pid is not None and alive(pid)


def stop_postgres(home: Path, grace: float = 60) -> None:
    """Fast shutdown (SIGINT to the postmaster, what `pg_ctl stop -m fast` sends), without needing the
    cluster owner to reach the data folder (a run may have tightened the home since)."""
    pid = pg_pid(home)
    if pid is None or not alive(pid):
        return
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    if alive(pid):
        raise SystemExit(f"postgres (pid {pid}) did not stop within {grace:.0f}s; see {pg_paths(home)['log']}")
    log("postgres stopped")


# ---------------------------------------------------------------- Airflow services

def run_dir(home: Path) -> Path:
    return home / "deploy" / "run"


def pid_file(home: Path, service: str) -> Path:
    return run_dir(home) / f"{service}.pid"


def log_file(home: Path, service: str) -> Path:
    return home / "deploy" / "logs" / f"{service}.log"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not running
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot: with the pid, it names one process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def recorded(home: Path, service: str) -> tuple[int, str] | None:
    """(pid, start time) from the service's pid file."""
    try:
        pid, started = pid_file(home, service).read_text().split()
        return int(pid), started
    except (OSError, ValueError):
        return None


def service_pid(home: Path, service: str) -> int | None:
    """The service's pid if the process in its pid file is alive and still the one `up` started (pid and
    start time match; the command line is no proof: Airflow renames its processes)."""
    entry = recorded(home, service)
    if entry is None or not alive(entry[0]):
        return None
    return entry[0] if start_time(entry[0]) == entry[1] else None


def run(cmd: list[str], what: str, **kw) -> None:
    proc = subprocess.run(cmd, text=True, capture_output=True, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")


def init_airflow(env: dict[str, str], home: Path) -> None:
    command = service_commands()[INIT_SERVICE]
    log(f"{INIT_SERVICE}: {' '.join(command)}")
    out = log_file(home, INIT_SERVICE)
    with out.open("a") as sink:
        proc = subprocess.run(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"{INIT_SERVICE} failed (exit {proc.returncode}); see {out}:\n"
                         + "\n".join(out.read_text(errors="replace").splitlines()[-30:]))


def start_service(env: dict[str, str], home: Path, service: str) -> int:
    pid = service_pid(home, service)
    if pid:
        log(f"{service} already running (pid {pid})")
        return pid
    leftover = our_group(home, service)
    if leftover is not None:  # the service died but its children live on (a killed scheduler's workers):
        log(f"{service}: stopping what the dead process left running (process group {leftover})")
        stop_group(leftover, service)  # as a container restart would
    command = service_commands()[service]
    with log_file(home, service).open("a") as sink:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # its own process group
    pid_file(home, service).write_text(f"{proc.pid} {start_time(proc.pid)}\n")
    log(f"{service} started: {' '.join(command)} (pid {proc.pid}, log {log_file(home, service)})")
    return proc.pid


def wait_healthy(env: dict[str, str], home: Path, timeout: float = 600) -> dict:
    """Until the API server answers and reports the scheduler, DAG processor and triggerer healthy."""
    import json

    url = f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}/api/v2/monitor/health"
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for service in SERVICES:
            if service_pid(home, service) is None:
                raise SystemExit(f"{service} exited; see {log_file(home, service)}:\n"
                                 + "\n".join(log_file(home, service).read_text(errors="replace").splitlines()[-30:]))
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                last = json.loads(response.read())
            parts = [last.get(k, {}).get("status") for k in ("metadatabase", "scheduler", "dag_processor", "triggerer")]
            if all(p == "healthy" for p in parts):
                return last
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(2)
    raise SystemExit(f"the deployment is not healthy after {timeout:.0f}s: {last}")


def up(env_file_path: Path, home: Path) -> None:
    env_file = read_env_file(env_file_path)
    for secret in ("POSTGRES_PASSWORD", "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY",
                   "AIRFLOW_FERNET_KEY"):
        if not env_file.get(secret):
            raise SystemExit(f"refusing to start: {secret} is empty in {env_file_path} (see .env.example)")
    env = airflow_env(env_file, home)  # refuses, like compose, when a required variable is missing
    for folder in (run_dir(home), log_file(home, "x").parent, Path(env["AIRFLOW_HOME"])):
        folder.mkdir(parents=True, exist_ok=True)
    start_postgres(env_file, home)
    if not all(service_pid(home, s) for s in SERVICES):
        init_airflow(env, home)
    for service in SERVICES:
        start_service(env, home, service)
    health = wait_healthy(env, home)
    log(f"healthy: {', '.join(k for k in health)}; UI and REST API on http://127.0.0.1:{env['AIRFLOW__API__PORT']}")


def stop_group(pid: int, service: str, grace: float = 30) -> None:
    """SIGTERM the service's process group (the service and the task processes it forked), then SIGKILL."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and group_alive(pid):
        time.sleep(0.5)
    if group_alive(pid):
        log(f"{service}: still running after {grace:.0f}s, killing")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def group_members(pgid: int) -> list[int]:
    members = []
    for stat in glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.split("/")[2]))
    return members


def group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def our_group(home: Path, service: str) -> int | None:
    """The process group `up` started for the service, if any of it still runs: its leader is the
    recorded process, or the leader died (a killed scheduler) and the group lives on in its task
    processes (a group id is not reused while the group has members)."""
    entry = recorded(home, service)
    if entry is None or not group_alive(entry[0]):
        return None
    return entry[0] if not alive(entry[0]) or start_time(entry[0]) == entry[1] else None


def down(home: Path) -> None:
    for service in reversed(SERVICES):
        pgid = our_group(home, service)
        if pgid is not None:
            stop_group(pgid, service)
            log(f"{service} stopped (process group {pgid})")
        pid_file(home, service).unlink(missing_ok=True)
    stop_postgres(home)


def status(home: Path) -> int:
    code = 0
    for service in SERVICES:
        pid = service_pid(home, service)
        print(f"{service:24s} {'running, pid ' + str(pid) if pid else 'stopped'}")
        code |= pid is None
    print(f"{'postgres':24s} {'running, pid ' + str(pg_pid(home)) if pg_running(home) else 'stopped'}")
    return int(code or not pg_running(home))


def write_env(path: Path) -> None:
    """A .env from .env.example with fresh random secrets (never overwrites)."""
    import base64
    import secrets

    if path.exists():
        raise SystemExit(f"{path} exists: not overwritten")
    generated = {"POSTGRES_PASSWORD": secrets.token_urlsafe(24), "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(18),
                 "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(32), "AIRFLOW_API_SECRET_KEY": secrets.token_urlsafe(32),
                 "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode()}
    lines = []
    for line in (REPO / ".env.example").read_text().splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={generated[key]}" if key in generated and line.endswith("=") else line)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    log(f"wrote {path} with random secrets; the admin password is AIRFLOW_ADMIN_PASSWORD there")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("up", "down", "status", "env", "airflow"))
    parser.add_argument("--env-file", type=Path, default=REPO / ".env")
    argv = list(sys.argv[1:] if argv is None else argv)
    rest: list[str] = []
    if "airflow" in argv:  # everything after `airflow` is the Airflow command's
        cut = argv.index("airflow") + 1
        argv, rest = argv[:cut], argv[cut:]
    args = parser.parse_args(argv)
    home = Path(os.environ.get("CRMTIER_HOME", REPO / "var")).resolve()
    if args.action == "up":
        up(args.env_file, home)
    elif args.action == "down":
        down(home)
    elif args.action == "status":
        return status(home)
    elif args.action == "env":
        write_env(args.env_file)
    elif args.action == "airflow":  # e.g. airflow backfill create --dag-id crm_pipeline --from-date ... --to-date ...
        env = airflow_env(read_env_file(args.env_file), home)
        return subprocess.run(["airflow", *rest], cwd=REPO, env=env).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
