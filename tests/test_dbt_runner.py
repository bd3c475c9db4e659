"""crmtier.dbt_runner's process-wide settings of dbt that need no dbt command."""
from __future__ import annotations

import pytest

from crmtier.dbt_runner import name_behavior_flags_without_reading_files

pytestmark = pytest.mark.unit

FLAG = {"name": "some_behavior_change", "default": False, "description": "what it changes"}


def _declared_here_deep_in_a_stack(depth: int) -> str:
    """The source a flag declared in this module records, under `depth` more frames (as inside a task)."""
    from dbt_common.behavior_flags import BehaviorFlagRendered

    if depth:
        return _declared_here_deep_in_a_stack(depth - 1)
    return BehaviorFlagRendered(FLAG, {})._behavior_change_event.flag_source


def test_behavior_flags_name_the_same_module_without_inspect_stack(monkeypatch):
    from dbt_common.behavior_flags import BehaviorFlagRendered

    name_behavior_flags_without_reading_files()
    name_behavior_flags_without_reading_files()  # once per process: the second call changes nothing
    installed = BehaviorFlagRendered.__dict__["_default_source"].__func__
    dbts_own = installed.__wrapped__
    assert not hasattr(dbts_own, "__wrapped__")

    def stack_not_read(*args, **kwargs):
        raise AssertionError("inspect.stack() read the frames' source files")

    ours = _declared_here_deep_in_a_stack(60)
    with monkeypatch.context() as mp:
        mp.setattr(BehaviorFlagRendered, "_default_source", staticmethod(dbts_own))
        theirs = _declared_here_deep_in_a_stack(60)
    assert ours == theirs == __name__
    monkeypatch.setattr("inspect.stack", stack_not_read)
    assert _declared_here_deep_in_a_stack(3) == __name__
