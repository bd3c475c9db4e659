"""make bench's table logic (crmtier.bench): its figures are printed, never asserted; these check how it
judges them."""
from __future__ import annotations

import pytest

from crmtier.bench import DAILY_CUSTOMERS, Measured, collector_phase, daily_buyers, row
from crmtier.long_lived import collections_line

pytestmark = pytest.mark.unit


def test_a_figure_from_a_failed_run_is_not_met():
    ok = Measured("W1 daily", 30.0, "0.1", "0.2")
    failed = Measured("W0.1 daily", 27.3, "0.1", "0.2", ok=False)
    assert row("W1 daily / W0.1 daily", "1.10", "≤ 1.5", True, "", (ok,))[3] == "yes"
    judged = row("W1 daily / W0.1 daily", "1.10", "≤ 1.5", True, "", (ok, failed))
    assert judged[3] == "NO" and "FAILED run (W0.1 daily)" in judged[1]


@pytest.mark.parametrize("small", [500, 10_000, 100_000, 1_000_000])
def test_the_daily_day_touches_at_most_a_tenth_of_the_smaller_workload(small):
    buyers = daily_buyers(small)
    assert 1 <= buyers <= small // 10 and buyers <= DAILY_CUSTOMERS
    assert daily_buyers(100_000) == DAILY_CUSTOMERS  # W10's pair (1M and 100k customers): as measured before


def test_the_fixed_cost_shows_the_collector_time_the_runner_printed_last():
    lines = ["[crmtier] === as of 2011-01-01: DagRun success, every task ran, snapshot published "
             "(20.1s; garbage collector: 900 collections, 0.41s; 1,000,000 objects frozen)",
             f"[crmtier] === as of 2011-01-02: DagRun success, every task ran, snapshot published (19.0s; "
             f"{collections_line()})"]
    (name, seconds), = collector_phase(lines)
    count, printed = collections_line().split(": ")[1].split(" collections, ")
    assert name == f"Python garbage collection, {count} collections (whole process)"
    assert seconds == float(printed.split("s;")[0])
    assert collector_phase(lines[:1]) == [("Python garbage collection, 900 collections (whole process)", 0.41)]
    assert collector_phase(["no collector line"]) == []
