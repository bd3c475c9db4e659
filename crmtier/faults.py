"""Test-only fault injection: `CRMTIER_FAULT_AT=<point>` makes the pipeline SIGKILL its own process
group when it reaches that point, as `kill -9` of a run would, so the fault suite
(tests/test_faults.py) can kill a run at a chosen stage deterministically. Never set it in production.

Points: ingest, gate_raw, gate_staging, gate_marts, gate_drift (after the gate validated, before
it is recorded), dbt_staging, dbt_marts (while dbt runs, after its first model), publish (snapshot
written, before the swap), outbox (files written, before the swap), outbox_commit (folder swapped
in, deliveries not yet committed).
"""
from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

FAULT_ENV = "CRMTIER_FAULT_AT"


def fault_requested(point: str) -> bool:
    return os.environ.get(FAULT_ENV, "") == point


def _session_of(stat: str) -> int:
    # /proc/<pid>/stat: "pid (comm) state ppid pgrp session ..."; comm may hold spaces and parentheses
    return int(stat[stat.rindex(")") + 2:].split()[3])


def _state_of(stat: str) -> str:
    return stat[stat.rindex(")") + 2:].split()[0]


def _exited(pid: str) -> bool:
    """Every thread has exited. A killed process whose main thread is already a zombie still holds its
    files (and DuckDB's lock) while another thread finishes leaving I/O: /proc/<pid>/stat says Z then."""
    try:
        return all(_state_of(Path(f"/proc/{pid}/task/{tid}/stat").read_text()) in ("Z", "X")
                   for tid in os.listdir(f"/proc/{pid}/task"))
    except (OSError, ValueError, IndexError):
        return True  # the process ended while we looked


def live_pids_in_session(session: int) -> list[int]:
    """Processes of `session` other than this one that have not exited (all threads zombies: locks freed)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
                if _session_of(stat) == session and not _exited(entry.name):
                    pids.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue  # the process ended while we looked
    return pids


def wait_for_session_end(session: int, timeout_s: float = 60) -> list[str]:
    """Wait until every other process of `session` has exited; returns the ones still alive at the
    timeout, each as "pid command line"."""
    deadline = time.monotonic() + timeout_s
    while (alive := live_pids_in_session(session)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [f"{pid} {_command_line(pid)}" for pid in alive]


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "(ended)"


def fault_point(point: str) -> None:
    """SIGKILL every process of the session (the `crmtier run` the test started with its own session) at
    `point`. Airflow's task supervisor puts task processes in process groups of their own, so killing
    only our group would leave a task running (and holding the warehouse), which a kill -9 of the run
    by an operator, or a container stop, does not."""
    if not fault_requested(point):
        return
    session = os.getsid(0)
    # SIGKILL is delivered asynchronously: a process still unmapping a large DuckDB cache holds the
    # warehouse lock for a moment. Kill until the others are gone (a thread may start a process
    # meanwhile), so the run's parent sees a dead run.
    deadline = time.monotonic() + 30
    while (alive := live_pids_in_session(session)) and time.monotonic() < deadline:
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    os.killpg(os.getpgrp(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
