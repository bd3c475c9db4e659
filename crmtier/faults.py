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
from pathlib import Path

FAULT_ENV = "CRMTIER_FAULT_AT"


def fault_requested(point: str) -> bool:
    return os.environ.get(FAULT_ENV, "") == point


def _session_of(stat: str) -> int:
    # /proc/<pid>/stat: "pid (comm) state ppid pgrp session ..."; comm may hold spaces and parentheses
    return int(stat[stat.rindex(")") + 2:].split()[3])


def _other_pids_in_session(session: int) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if _session_of(Path(f"/proc/{entry.name}/stat").read_text()) == session:
                    pids.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue  # the process ended while we looked
    return pids


def fault_point(point: str) -> None:
    """SIGKILL every process of the session (the `crmtier run` the test started with its own session) at
    `point`. Airflow's task supervisor puts task processes in process groups of their own, so killing
    only our group would leave a task running (and holding the warehouse), which a kill -9 of the run
    by an operator, or a container stop, does not."""
    if not fault_requested(point):
        return
    session = os.getsid(0)
    for pid in _other_pids_in_session(session):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    os.killpg(os.getpgrp(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
