"""make bench's table logic (crmtier.bench): its figures are printed, never asserted; these check how it
judges them."""
from __future__ import annotations

import pytest

from crmtier.bench import DAILY_CUSTOMERS, Measured, daily_buyers, row

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
