"""Test-only fault injection: `CRMTIER_FAULT_AT=<point>` makes the pipeline SIGKILL its own process
group when it reaches that point, as `kill -9` of a run would, so the fault suite
(tests/test_faults.py) can kill a run at a chosen stage deterministically. Never set it in production.

Points: ingest, gate_raw, gate_staging, gate_marts, gate_drift (after the gate validated, before
it is recorded), dbt_staging, dbt_marts (while dbt runs, after its first model), publish (snapshot
written, before the swap), outbox (files written, before the swap), outbox_commit (folder swapped
in, deliveries not yet committed).
"""
from __future__ import annotations

import os
import signal

FAULT_ENV = "CRMTIER_FAULT_AT"


def fault_requested(point: str) -> bool:
    return os.environ.get(FAULT_ENV, "") == point


def fault_point(point: str) -> None:
    """SIGKILL the whole process group (the `crmtier run` started by the test) at `point`."""
    if fault_requested(point):
        os.killpg(os.getpgrp(), signal.SIGKILL)
