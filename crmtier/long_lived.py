"""What lives as long as the process, built with Python's cyclic garbage collector paused, then frozen.

A pipeline process holds ~1,000,000 objects that live until it exits: the modules of Airflow, dbt, GX
and pandas, the parsed DAG and dbt's parsed manifest. While they are being built, the collector runs
over and over (~1,100 collections for importing Airflow, dbt and GX, each walking every object made so
far: ~2 s of a ~6 s import), and afterwards every full collection walks them again. So each of them is
built inside `long_lived()`: collection paused, then `gc.freeze()` moves everything that exists to the
permanent generation, which later collections skip (as Airflow does before forking its LocalExecutor
workers). A full collection before the block frees what earlier work left (a task's frames, say), so
only garbage made inside the block is frozen with it, never freed: measured, 1,600-7,900 objects per
block. Hence a block per structure built once per process, never per DagRun.
"""
from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator

_collections = {"count": 0, "seconds": 0.0}
_started: list[float] = []


@contextlib.contextmanager
def long_lived() -> Iterator[None]:
    """Build, with the collector paused, what lives until the process exits; then keep it out of every
    later collection."""
    gc.collect()  # what earlier work left is freed now, not frozen with the block
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _time_collection(phase: str, info: dict) -> None:
    if phase == "start":
        _started[:] = [time.perf_counter()]
    elif _started:
        _collections["count"] += 1
        _collections["seconds"] += time.perf_counter() - _started.pop()


def count_collections() -> None:
    """Count this process's collections and their time, for `collections_line`; idempotent."""
    if _time_collection not in gc.callbacks:
        gc.callbacks.append(_time_collection)


def collections_line() -> str:
    """The collector's work in this process so far, for the run's output and `make bench`."""
    return (f"garbage collector: {_collections['count']} collections, {_collections['seconds']:.2f}s; "
            f"{gc.get_freeze_count():,} objects frozen")
