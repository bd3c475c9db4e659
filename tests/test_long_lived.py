"""crmtier.long_lived: what lives as long as the process is built with the collector paused, then frozen."""
from __future__ import annotations

import gc
import weakref

import pytest

from crmtier.long_lived import collections_line, count_collections, long_lived

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _collector_restored():
    enabled = gc.isenabled()
    yield
    gc.unfreeze()  # the frozen objects go back to the oldest generation: other tests see a normal collector
    (gc.enable if enabled else gc.disable)()


def test_the_block_pauses_collection_and_freezes_what_it_built():
    before = gc.get_freeze_count()
    with long_lived():
        assert not gc.isenabled()
        built = [[i] for i in range(10_000)]  # container objects: tracked by the collector
    assert gc.isenabled()
    assert gc.get_freeze_count() - before >= len(built)
    tracked = {id(o) for o in gc.get_objects()}  # the generations a collection walks
    assert not any(id(o) in tracked for o in built)


class _Node:
    pass


def test_garbage_left_before_the_block_is_freed_not_frozen():
    gc.disable()  # the cycle stays uncollected until the block
    left = _Node()
    left.itself = left
    alive = weakref.ref(left)
    del left
    gc.enable()
    with long_lived():
        pass
    assert alive() is None


def test_a_paused_collector_stays_paused_and_a_failed_block_still_freezes():
    gc.disable()
    with long_lived():
        pass
    assert not gc.isenabled()
    gc.enable()
    before = gc.get_freeze_count()
    with pytest.raises(ValueError), long_lived():
        kept = [[i] for i in range(1_000)]
        raise ValueError("an import failed")
    assert gc.isenabled() and gc.get_freeze_count() - before >= len(kept)


def test_collections_are_counted_and_timed():
    count_collections()
    count_collections()  # idempotent: one callback
    gc.disable()  # no automatic collection in between: only the explicit one
    before = int(collections_line().split(":")[1].split()[0])
    gc.collect()
    line = collections_line()
    assert int(line.split(":")[1].split()[0]) == before + 1, line
    assert line.endswith("objects frozen")
