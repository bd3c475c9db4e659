"""Control groups of alert rules, end to end (real DagRuns): did the action work?

Generated population (dates a week-plus apart, status rules of the default seeds):
- S: 5,000 steady customers buying every week (active on every date; keeps the drift gate calm);
- A: 500 customers active on D0 and dormant on D1 -> rule status_active_to_dormant (wake-up e-mail,
  control_share 0.1). The e-mail WORKS here: after D1, treated customers buy within 30 days with
  probability 0.6, control customers with 0.15.
- B: 500 customers dormant on D0 and churned on D1 -> rule status_dormant_to_churned (win-back
  campaign, control_share 0.1). NO effect: 3 in 10 customers of each group (treated, control) buy again,
  taken in turn (a random draw would exclude 0 from a 95% interval one time in twenty).
Runs D0, D1 and D2 = D1 + 32 days (the 30-day windows of D1's alerts have ended).

The test decides control membership itself (md5 of customer and rule, the documented formula) and
counts outcomes from the purchases it generated, then compares marts.alert_rule_outcomes (counts,
rates, Wilson / Newcombe intervals, verdicts), history.customer_alerts and the outbox with that.
"""
from __future__ import annotations

import hashlib
import json
import math
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest

from crmtier.cli import run_dag

pytestmark = pytest.mark.e2e

D0, D1 = date(2026, 3, 1), date(2026, 3, 11)
D2 = D1 + timedelta(days=32)
WINDOW = 30
Z = 1.96
RULE_A, RULE_B = "status_active_to_dormant", "status_dormant_to_churned"
N_S, N_A, N_B = 5000, 500, 500
SHARE = 0.1


def control_bucket(customer_id: str, rule_id: str) -> float:
    return int(hashlib.md5(f"{customer_id}|{rule_id}".encode()).hexdigest()[:8], 16) / 2**32


def _ts(day: date, hour: int = 10) -> str:
    return f"{day.isoformat()} {hour:02d}:00:00"


def _population(seed: int = 5):
    rng = np.random.default_rng(seed)
    customers, orders, events = [], [], []

    def order(cid: str, day: date, amount: float) -> None:
        orders.append((f"O{len(orders) + 1:07d}", cid, _ts(day), f"{amount:.2f}", "CNY", "paid"))

    for i in range(N_S):
        cid = f"S{i:05d}"
        customers.append(cid)
        day = date(2025, 9, 7)
        while day <= D2:
            order(cid, day, 50 + 10 * (i % 40))
            day += timedelta(days=7)
    bought_after: dict[str, date | None] = {}
    seen = {True: 0, False: 0}
    for group, n, last_days, p_treated, p_control, rule in (("A", N_A, 25, 0.6, 0.15, RULE_A),
                                                             ("B", N_B, 175, 0.3, 0.3, RULE_B)):
        for i in range(n):
            cid = f"{group}{i:05d}"
            customers.append(cid)
            last = D0 - timedelta(days=last_days)
            for back in (90, 45, 0):
                order(cid, last - timedelta(days=back), 80 + i % 50)
            is_control = control_bucket(cid, rule) < SHARE
            bought_after[cid] = None
            if group == "B":  # no effect, without sampling noise: 3 in 10 of each group, in turn
                seen[is_control] += 1
                buys = seen[is_control] % 10 < 3
            else:  # a random draw with a real effect
                buys = rng.random() < (p_control if is_control else p_treated)
            if buys:
                day = D1 + timedelta(days=int(rng.integers(1, WINDOW + 1)))
                order(cid, day, 120)
                bought_after[cid] = day
    for cid in customers:
        events.append((f"E{len(events) + 1:07d}", cid, _ts(date(2025, 1, 2)), "login", "app"))
    frames = {
        "customers": pd.DataFrame({"customer_id": customers, "created_at": _ts(date(2025, 1, 1)),
                                   "name": [f"Name {c}" for c in customers],
                                   "email": [f"{c.lower()}@example.com" for c in customers]}),
        "orders": pd.DataFrame(orders, columns=["order_id", "customer_id", "order_time", "amount", "currency",
                                                "status"]),
        "events": pd.DataFrame(events, columns=["event_id", "customer_id", "event_time", "event_type", "channel"]),
    }
    return frames, bought_after


@pytest.fixture(scope="module")
def control_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("control") / "var"
    landing = home / "landing"
    frames, bought_after = _population()
    for entity, frame in frames.items():
        path = landing / "generic" / entity / "export.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
    mp = pytest.MonkeyPatch()
    mp.setenv("CRMTIER_HOME", str(home))
    for var in ("CRMTIER_LANDING", "CRMTIER_WAREHOUSE", "CRMTIER_PUBLISH", "CRMTIER_OUTBOX", "AIRFLOW_HOME",
                "CRMTIER_NOTIFY_WEBHOOK", "CRMTIER_NOTIFY_EMAIL_TO"):
        mp.delenv(var, raising=False)
    code = run_dag([D0.isoformat(), D1.isoformat(), D2.isoformat()], landing, quiet=True)
    yield home, bought_after, code
    mp.undo()


def _published(home, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(home / "publish" / "crm.duckdb"), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return centre - half, centre + half


def expected_outcome(bought_after: dict, group: str, rule: str) -> dict:
    ids = [c for c in bought_after if c.startswith(group)]
    control = [c for c in ids if control_bucket(c, rule) < SHARE]
    treated = [c for c in ids if c not in set(control)]
    kt = sum(bought_after[c] is not None for c in treated)
    kc = sum(bought_after[c] is not None for c in control)
    (lt, ut), (lc, uc) = wilson(kt, len(treated)), wilson(kc, len(control))
    pt, pc = kt / len(treated), kc / len(control)
    d = pt - pc
    return {"treated_alerts": len(treated), "treated_reactivated": kt, "control_alerts": len(control),
            "control_reactivated": kc, "rate_difference": d,
            "difference_low": d - math.sqrt((pt - lt) ** 2 + (uc - pc) ** 2),
            "difference_high": d + math.sqrt((ut - pt) ** 2 + (pc - lc) ** 2),
            "control_ids": set(control)}


def test_run_succeeds(control_run):
    _, _, code = control_run
    assert code == 0


def test_control_membership_is_the_documented_hash(control_run):
    home, bought_after, _ = control_run
    alerts = _published(home, f"select customer_id, rule_id, is_control from customer_alerts "
                              f"where as_of_date = '{D1}' and rule_id in ('{RULE_A}', '{RULE_B}')")
    for rule, group, n in ((RULE_A, "A", N_A), (RULE_B, "B", N_B)):
        fired = alerts[alerts["rule_id"] == rule]
        assert sorted(fired["customer_id"]) == sorted(c for c in bought_after if c.startswith(group))
        got = set(fired.loc[fired["is_control"], "customer_id"])
        assert got == expected_outcome(bought_after, group, rule)["control_ids"]
        assert 0.05 * n < len(got) < 0.15 * n


def test_control_customers_are_left_out_of_the_outbox(control_run):
    home, bought_after, _ = control_run
    payload = json.loads((home / "outbox" / D1.isoformat() / "wake_up_email.json").read_text(encoding="utf-8"))
    sent = {a["customer_id"] for a in payload["alerts"] if a["rule_id"] == RULE_A}
    control = expected_outcome(bought_after, "A", RULE_A)["control_ids"]
    assert sent and not sent & control
    assert sent | control == {c for c in bought_after if c.startswith("A")}


@pytest.mark.parametrize("group, rule, effect", [("A", RULE_A, True), ("B", RULE_B, False)])
def test_outcomes_match_an_independent_count(control_run, group, rule, effect):
    home, bought_after, _ = control_run
    row = _published(home, f"select * from alert_rule_outcomes where rule_id = '{rule}'").iloc[0]
    want = expected_outcome(bought_after, group, rule)
    for key in ("treated_alerts", "treated_reactivated", "control_alerts", "control_reactivated"):
        assert row[key] == want[key], key
    for key in ("rate_difference", "difference_low", "difference_high"):
        assert row[key] == pytest.approx(want[key], abs=1e-9), key
    assert row["window_days"] == WINDOW and row["pending_alerts"] == 0
    if effect:  # the wake-up e-mail works: the interval of the difference is above 0
        assert row["difference_low"] > 0
        assert row["verdict"].startswith("the action works")
    else:  # no effect: the interval covers 0 and the verdict says so
        assert row["difference_low"] < 0 < row["difference_high"]
        assert row["verdict"].startswith("no clear difference")
    if group == "B":  # dormant -> churned: every reactivation is a win-back
        assert row["win_backs"] == want["treated_reactivated"] + want["control_reactivated"]


def test_small_or_uncontrolled_groups_are_said_plainly(control_run):
    home, _, _ = control_run
    rows = _published(home, "select rule_id, control_share, treated_alerts, control_alerts, pending_alerts, verdict "
                            "from alert_rule_outcomes").set_index("rule_id")
    # D2's alerts (reactivated customers) have windows still open: nothing judged yet
    pending = rows[rows["pending_alerts"] > 0]
    assert len(pending)
    for rule_id, row in pending.iterrows():
        if row["control_share"] > 0:
            assert row["verdict"].startswith("too few alerts to tell"), (rule_id, row["verdict"])
        else:
            assert row["verdict"].startswith("no control group"), (rule_id, row["verdict"])
