"""One run per home, one writer per warehouse, and what a killed run left behind.

* `RunLock`: an exclusive `flock` on `<home>/run.lock` (and on `<warehouse>.lock`), held by
  `crmtier run` for the whole run and shared with its Airflow child process (the descriptor is
  passed on), so the lock lives exactly as long as any process of the run: a run killed with
  SIGKILL releases it with its last process, there is no stale lock to remove by hand. The file
  holds who took it (pid, as-of date, start time) for the message the next run prints.
* `open_warehouse_for_write`: a warehouse held open by another process (an analyst's read-only
  DuckDB client) is retried for `CRMTIER_WAREHOUSE_WAIT` seconds (default 30), then fails with the
  process that holds it (DuckDB names its PID; /proc gives its command line and owner) and what to do.
* `clean_leftovers`: temporary files and folders (`*.tmp`, their `.wal`) a killed run left beside
  the snapshot, in the outbox and in the reports; the warehouse's own WAL is *replayed* by opening
  it (it holds committed transactions), never deleted.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from crmtier.duckdb_config import duckdb_config

WAREHOUSE_WAIT_SECONDS = 30.0
# set by `crmtier run` for its child: the run's locks are already held (by the shared descriptor)
LOCK_HELD_ENV = "CRMTIER_RUN_LOCK_HELD"


class LockBusy(RuntimeError):
    """Another run holds the lock."""


class RunLock:
    """An exclusive advisory lock on `path` whose file says who holds it."""

    def __init__(self, path: str | Path, what: str):
        self.path = Path(path)
        self.what = what  # "this home", "this warehouse"
        self.fd: int | None = None

    def holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def describe_holder(self) -> str:
        info = self.holder()
        return (f"another run (pid {info.get('pid', '?')}, as-of date {info.get('as_of', '?')}, "
                f"started at {info.get('started_at', '?')}) holds {self.what} ({self.path})")

    def acquire(self, as_of: str, wait: bool = False, on_wait=None) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or not wait:
                    raise LockBusy(self.describe_holder()) from None
                if on_wait:
                    on_wait(self.describe_holder())
                fcntl.flock(fd, fcntl.LOCK_EX)
            info = {"pid": os.getpid(), "as_of": as_of,
                    "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def home_lock(home: Path) -> RunLock:
    return RunLock(Path(home) / "run.lock", "this home")


def warehouse_lock(warehouse: Path) -> RunLock:
    warehouse = Path(warehouse)
    return RunLock(warehouse.with_name(warehouse.name + ".lock"), "this warehouse")


# --------------------------------------------------------------------------- a warehouse held open

_PID = re.compile(r"PID (\d+)")


def describe_process(pid: int) -> str:
    """`pid 123 (duckdb -readonly crm.duckdb, user ana)` from /proc, as far as it can be read."""
    parts = [f"pid {pid}"]
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        uid = Path(f"/proc/{pid}").stat().st_uid
        try:
            import pwd

            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        parts.append(f"({cmdline[:160]}, user {user})")
    except OSError:
        pass
    return " ".join(parts)


def holder_of(error: Exception) -> str:
    match = _PID.search(str(error))
    return describe_process(int(match.group(1))) if match else "another process"


def is_lock_error(error: Exception) -> bool:
    return "lock" in str(error).lower() and (
        "conflicting" in str(error).lower() or "could not set" in str(error).lower())


def wait_for_warehouse(warehouse: str | Path, wait_seconds: float | None = None, log=None) -> None:
    """Open the warehouse read-write and close it again, retrying while another process holds it.

    Opening also replays a write-ahead log a killed writer left (DuckDB does that on open)."""
    import duckdb

    if wait_seconds is None:
        wait_seconds = float(os.environ.get("CRMTIER_WAREHOUSE_WAIT", WAREHOUSE_WAIT_SECONDS))
    deadline = time.monotonic() + wait_seconds
    told = False
    while True:
        try:
            duckdb.connect(str(warehouse), config=duckdb_config()).close()
            return
        except duckdb.IOException as exc:
            if not is_lock_error(exc):
                raise
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"the warehouse {warehouse} is held open by {holder_of(exc)}, still after "
                    f"{wait_seconds:.0f}s of retries. Close that connection (an analyst's DuckDB client, a notebook, "
                    f"a BI tool pointed at the warehouse) and run again; BI and analysts should read the published "
                    f"snapshot instead, which never blocks a run.") from None
            if log and not told:
                log(f"warehouse {warehouse} is held open by {holder_of(exc)}; retrying for {wait_seconds:.0f}s")
                told = True
            time.sleep(1.0)


# --------------------------------------------------------------------------- what a killed run left

def clean_leftovers(folders: list[Path]) -> list[Path]:
    """Remove temporary files and folders a killed run left (names starting with '.' and holding
    '.tmp' or '.old-'), with their DuckDB WAL; only call while holding the run lock."""
    removed: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if not path.name.startswith(".") or not (".tmp" in path.name or ".old-" in path.name):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed
