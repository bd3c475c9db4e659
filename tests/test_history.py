"""History, transitions, alerts and the drift gate, end to end (real Airflow DagRuns, dbt, GX, DuckDB).

One backfill over 60 days of generated data (module fixture) is checked against:
- fresh single-date runs (history rows of a date do not depend on what ran before),
- one run per date (`run_dag(date)` each) of a stretch of the same dates: same history,
  transitions and alerts as the backfill,
- an independent pandas computation of the transitions and of the alerts (rules + cooldown),
- re-runs (same date, older date) and a poisoned export that must trip the drift gate.

Exports are landed in deliveries, as a CRM delivers them (every CHUNK_DAYS days, each covering the
days since the last one): each stretch of the backfill sees only the data delivered by then, and
customers come back to life when a delivery lands (re-activations, win-backs).

Speed: every DagRun costs ~23 s on 2 cores whatever the population (two dbt start-ups and ~250
nodes), so by default the backfill runs the 8 as-of dates of OFFSETS (the fewest that give every
test below what it checks, see there; 14 DagRuns for the whole file instead of 61 + 6);
transitions then compare with the as-of date 5 to 20 days before, which the models handle like any
gap. CRMTIER_HISTORY_TEST_STEP=N runs every N-th day of the 60 instead (N=1: all 61 daily dates,
measured: backfill 20 min, whole file 23.5 min).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from crmtier.cli import run_dag
from crmtier.dbt_runner import run_dbt
from crmtier.paths import DBT_PROJECT_DIR
from crmtier.report.data import snapshot_data
from crmtier.samples.generate import generate_frames

pytestmark = pytest.mark.e2e

FIRST = date(2011, 9, 1)
SPAN_DAYS = int(os.environ.get("CRMTIER_HISTORY_TEST_DAYS", "60"))
STEP_DAYS = os.environ.get("CRMTIER_HISTORY_TEST_STEP")
CHUNK_DAYS = 16             # a delivery of exports every 16 days: days 0-15, 16-31, 32-47, 48-63
CUSTOMERS = 250
SEED = 21
# Days after FIRST of the default backfill, per delivery. 0: the first date (no transitions yet);
# 20, 30: a 20-day gap across a delivery (re-activations), then the date the fresh single-date run
# rebuilds (CHUNKS[1][-1]); 35, 45: the stretch re-run date by date (DAILY_CHUNK, history before
# it); 50, 55, 60: the older date, the spoiled next date and the last date of the re-run test
# (CHUNKS[-1][-3:]); 61 (not in the backfill): the poisoned export. 5- to 10-day steps within 30
# days keep alerts of one customer and rule inside their cooldown (suppressions are checked).
OFFSETS = (0, 20, 30, 35, 45, 50, 55, 60)
DAYS = range(0, SPAN_DAYS + 1, int(STEP_DAYS)) if STEP_DAYS else OFFSETS
DATES = [(FIRST + timedelta(days=d)).isoformat() for d in DAYS]
CHUNKS: list[list[str]] = []
for _d in DATES:
    _k = (date.fromisoformat(_d) - FIRST).days // CHUNK_DAYS
    while len(CHUNKS) <= _k:
        CHUNKS.append([])
    CHUNKS[_k].append(_d)
CHUNKS = [c for c in CHUNKS if c]
DAILY_CHUNK = 2             # the stretch re-run date by date (needs history before it)
TIME_COLUMNS = {"customers": "created_at", "orders": "order_time", "events": "event_time"}
ENV_CLEARED = ("CRMTIER_LANDING", "CRMTIER_WAREHOUSE", "CRMTIER_PUBLISH", "CRMTIER_OUTBOX", "AIRFLOW_HOME",
               "CRMTIER_NOTIFY_WEBHOOK", "CRMTIER_NOTIFY_EMAIL_TO")


def _land(frames: dict, landing: Path, chunk: int) -> None:
    """Deliver the rows of one delivery: times after the previous delivery's cut, up to this one's."""
    cut = CHUNKS[chunk][0] + " 23:59:59"
    previous = CHUNKS[chunk - 1][0] + " 23:59:59" if chunk else ""
    for entity, column in TIME_COLUMNS.items():
        frame = frames[entity]
        rows = frame[(frame[column] > previous) & (frame[column] <= cut)]
        if len(rows):  # an empty file is rejected by ingest
            path = landing / "generic" / entity / f"delivery_{chunk:02d}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            rows.to_csv(path, index=False)


def _home(mp: pytest.MonkeyPatch, home: Path) -> None:
    mp.setenv("CRMTIER_HOME", str(home))
    for var in ENV_CLEARED:
        mp.delenv(var, raising=False)


def _tables(home: Path) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(home / "warehouse" / "crm.duckdb"), read_only=True)
    try:
        return {
            "history": con.execute("select * from history.customer_history order by as_of_date, customer_id").df(),
            "transitions": con.execute(
                "select * from history.customer_transitions order by effective_date, customer_id").df(),
            "alerts": con.execute("select * from history.customer_alerts order by as_of_date, customer_id, rule_id").df(),
            "daily_counts": con.execute("select * from history.transition_daily_counts order by all").df(),
            "holds": con.execute(
                "select * from history.customer_alert_holds order by as_of_date, customer_id, rule_id").df(),
        }
    finally:
        con.close()


def _log(home: Path, dates: list[str]) -> str:
    name = dates[0] if len(dates) == 1 else f"{dates[0]}_{dates[-1]}"
    path = home / "logs" / f"run-{name}.log"
    return path.read_text(errors="replace")[-6000:] if path.exists() else "(no log)"


@pytest.fixture(scope="module")
def backfill(tmp_path_factory):
    root = tmp_path_factory.mktemp("history")
    home = root / "var"
    frames = generate_frames(CUSTOMERS, seed=SEED, as_of=DATES[-1], bad_rows=False)
    with pytest.MonkeyPatch.context() as mp:
        _home(mp, home)
        landing = home / "landing"
        started, codes = time.monotonic(), []
        for k, chunk_dates in enumerate(CHUNKS):
            if k == DAILY_CHUNK:  # the state the date-by-date runs start from
                shutil.copytree(home, root / "daily" / "var")
            _land(frames, landing, k)
            codes.append(run_dag(chunk_dates, landing, quiet=True))
            if codes[-1] != 0:
                break
        seconds = time.monotonic() - started
        print(f"\nbackfill of {len(DATES)} as-of dates ({DATES[0]} .. {DATES[-1]}, days {list(DAYS)}) "
              f"in {len(CHUNKS)} deliveries: {seconds:.0f}s")
        tables = _tables(home) if all(c == 0 for c in codes) and len(codes) == len(CHUNKS) else {}
        yield {"root": root, "home": home, "landing": landing, "frames": frames, "codes": codes,
               "tables": tables, "seconds": seconds}


def _require(backfill) -> dict[str, pd.DataFrame]:
    if not backfill["tables"]:
        failed = len(backfill["codes"]) - 1
        pytest.fail(f"backfill failed in delivery {failed}:\n{_log(backfill['home'], CHUNKS[failed])}")
    return backfill["tables"]


def _copy_home(backfill, name: str) -> Path:
    target = backfill["root"] / name / "var"
    shutil.copytree(backfill["home"], target)
    return target


# ----------------------------------------------------------------------------------------------- backfill

def test_the_dates_give_every_test_what_it_needs():
    """Fewer dates must not quietly thin what the tests below check (see OFFSETS)."""
    days = [(date.fromisoformat(d) - FIRST).days for d in DATES]
    assert days == sorted(set(days)) and len(CHUNKS) >= 3
    assert 0 < DAILY_CHUNK < len(CHUNKS) and len(CHUNKS[DAILY_CHUNK]) >= 2  # history before the stretch
    assert len(CHUNKS[1]) >= 2 and len(CHUNKS[-1]) >= 3  # a sample into the history; older, next, last
    steps = {b - a for a, b in zip(days, days[1:])}
    assert STEP_DAYS or (len(steps) > 1 and max(steps) < 30)  # uneven gaps, each inside a 30-day cooldown


def test_backfill_builds_one_history_row_per_customer_and_date(backfill):
    tables = _require(backfill)
    history = tables["history"]
    assert sorted(history["as_of_date"].astype(str).unique()) == DATES
    assert not history.duplicated(["customer_id", "as_of_date"]).any()
    # every customer delivered by then (created on or before the date's delivery) has a row for it
    created = backfill["frames"]["customers"]["created_at"]
    for chunk in CHUNKS:
        delivered = (created <= chunk[0] + " 23:59:59").sum()
        for as_of in (chunk[0], chunk[-1]):
            assert (history["as_of_date"].astype(str) == as_of).sum() == delivered, as_of
    # the data move: statuses and tiers change over the range
    assert len(tables["transitions"]) > 0
    assert set(tables["transitions"]["change_kind"]) >= {"status", "tier"}


def test_history_of_a_date_equals_a_fresh_single_date_run(backfill, tmp_path):
    tables = _require(backfill)
    sample = CHUNKS[1][-1]  # after one delivery of new data, several dates into the history
    home = tmp_path / "var"
    with pytest.MonkeyPatch.context() as mp:
        _home(mp, home)
        landing = home / "landing"
        for k in range(2):
            _land(backfill["frames"], landing, k)
        code = run_dag(sample, landing, quiet=True)
        assert code == 0, _log(home, [sample])
        fresh = _tables(home)
    assert sorted(fresh["history"]["as_of_date"].astype(str).unique()) == [sample]
    expected = tables["history"][tables["history"]["as_of_date"].astype(str) == sample].reset_index(drop=True)
    pd.testing.assert_frame_equal(fresh["history"].reset_index(drop=True), expected, check_exact=False, rtol=1e-9)
    assert fresh["transitions"].empty and fresh["alerts"].empty  # nothing earlier to compare with


def test_date_by_date_runs_give_the_backfill_history_transitions_and_alerts(backfill):
    tables = _require(backfill)
    home = backfill["root"] / "daily" / "var"
    dates = CHUNKS[DAILY_CHUNK][:2]
    with pytest.MonkeyPatch.context() as mp:
        _home(mp, home)
        landing = home / "landing"
        _land(backfill["frames"], landing, DAILY_CHUNK)
        for as_of in dates:
            code = run_dag(as_of, landing, quiet=True)
            assert code == 0, _log(home, [as_of])
        daily = _tables(home)
    for name, column in (("history", "as_of_date"), ("transitions", "effective_date"), ("alerts", "as_of_date")):
        upto = dates[-1]
        got = daily[name][daily[name][column].astype(str) <= upto].reset_index(drop=True)
        want = tables[name][tables[name][column].astype(str) <= upto].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9, obj=name)
    # the compared stretch really has changes to compare
    assert (tables["transitions"]["effective_date"].astype(str).isin(dates)).any()


WINDOW_MODELS = ("int_customer_orders_aggregated", "int_customer_events_aggregated")


def _day_tables(warehouse: Path) -> dict[str, pd.DataFrame]:
    """The day tables (without placeholders) and the window models read from them."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:  # placeholder rows (no day) only mark customers rebuilt with nothing left
        return {name: con.execute(f"select * exclude (through_load_seq) from intermediate.{name} "
                                  "where activity_date is not null order by all").df()
                for name in ("int_customer_daily_orders", "int_customer_daily_events")} | {
                name: con.execute(f"select * exclude (windows_key) from intermediate.{name} order by customer_id").df()
                for name in WINDOW_MODELS}
    finally:
        con.close()


def test_day_tables_kept_run_by_run_equal_a_full_rebuild(backfill):
    """The per-customer, per-day tables and the windows moved from them were maintained incrementally by
    every DagRun of the backfill (four deliveries, dates backfilled after each): rebuilt from scratch for
    the last run's date they hold the same rows."""
    _require(backfill)
    home = _copy_home(backfill, "day-tables")
    warehouse = home / "warehouse" / "crm.duckdb"
    kept = _day_tables(warehouse)
    assert all(len(frame) for frame in kept.values())
    last_as_of = kept[WINDOW_MODELS[0]]["windows_as_of"].iloc[0].strftime("%Y-%m-%d")
    with pytest.MonkeyPatch.context() as mp:
        _home(mp, home)
        run_dbt(["run", "--select", "int_customer_daily_orders", "int_customer_daily_events", *WINDOW_MODELS,
                 "--full-refresh"], last_as_of)
    rebuilt = _day_tables(warehouse)
    for name, frame in kept.items():
        pd.testing.assert_frame_equal(frame, rebuilt[name], obj=name)


# ------------------------------------------------------------------------------ independent computations

def reference_transitions(history: pd.DataFrame) -> pd.DataFrame:
    """Each customer's row against its previous row in history (pandas, not the SQL)."""
    cur = history.sort_values(["customer_id", "as_of_date"]).reset_index(drop=True)
    prev = cur.groupby("customer_id")[["as_of_date", "status", "tier", "is_at_risk"]].shift(1)
    out = pd.DataFrame({
        "customer_id": cur["customer_id"],
        "effective_date": cur["as_of_date"],
        "previous_as_of_date": prev["as_of_date"],
        "from_status": prev["status"], "to_status": cur["status"],
        "from_tier": prev["tier"], "to_tier": cur["tier"],
        "from_is_at_risk": prev["is_at_risk"].fillna(False).astype(bool),
        "to_is_at_risk": cur["is_at_risk"].fillna(False).astype(bool),
    })
    out = out[out["previous_as_of_date"].notna()].copy()
    status = out["from_status"] != out["to_status"]
    tier = out["from_tier"] != out["to_tier"]
    risk = out["from_is_at_risk"] != out["to_is_at_risk"]
    out["change_kind"] = "at_risk"
    out.loc[tier, "change_kind"] = "tier"
    out.loc[status, "change_kind"] = "status"
    out.loc[status & tier, "change_kind"] = "both"
    return out[status | tier | risk].sort_values(["effective_date", "customer_id"]).reset_index(drop=True)


TRANSITION_COLUMNS = ["customer_id", "effective_date", "previous_as_of_date", "from_status", "to_status",
                      "from_tier", "to_tier", "from_is_at_risk", "to_is_at_risk", "change_kind"]


def _normalised(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    frame = frame[columns].copy()
    for column in columns:
        if column.endswith("_date"):
            frame[column] = pd.to_datetime(frame[column]).dt.strftime("%Y-%m-%d")
        elif column.startswith(("from_is", "to_is")):
            frame[column] = frame[column].fillna(False).astype(bool)
    return frame.sort_values(columns[:2]).reset_index(drop=True)


def test_transitions_match_an_independent_computation(backfill):
    tables = _require(backfill)
    expected = _normalised(reference_transitions(tables["history"]), TRANSITION_COLUMNS)
    got = _normalised(tables["transitions"], TRANSITION_COLUMNS)
    pd.testing.assert_frame_equal(got, expected)
    # and the BI counts are the transitions counted
    counts = []
    for dimension, source in (("status", "status"), ("tier", "tier"), ("at_risk", "is_at_risk")):
        frm, to = (f"from_{source}", f"to_{source}")
        changed = expected[expected[frm] != expected[to]]
        grouped = changed.groupby(["effective_date", frm, to]).size().reset_index(name="customers")
        grouped.columns = ["effective_date", "from_value", "to_value", "customers"]
        grouped["dimension"] = dimension
        counts.append(grouped.astype({"from_value": str, "to_value": str}))
    want = pd.concat(counts)[["effective_date", "dimension", "from_value", "to_value", "customers"]]
    want["from_value"] = want["from_value"].str.lower()
    want["to_value"] = want["to_value"].str.lower()
    got = tables["daily_counts"].copy()
    got["effective_date"] = pd.to_datetime(got["effective_date"]).dt.strftime("%Y-%m-%d")
    key = ["effective_date", "dimension", "from_value", "to_value"]
    pd.testing.assert_frame_equal(got.sort_values(key).reset_index(drop=True)[want.columns],
                                  want.sort_values(key).reset_index(drop=True), check_dtype=False)


def _matches(cell: str, value) -> bool:
    return cell == "*" or str(value) in cell.split("|")


def reference_alerts(transitions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rules of seeds/alert_rules.csv applied to the transitions in date order, with the cooldown
    counted from the previous alert kept for the same customer and rule. Returns (alerts, held): held
    are the matches the cooldown suppressed, with the date of the alert that held them."""
    rules = pd.read_csv(DBT_PROJECT_DIR / "seeds" / "alert_rules.csv", dtype=str, keep_default_na=False)
    rules = rules[rules["is_enabled"].str.lower() == "true"]
    tier_rank = pd.read_csv(DBT_PROJECT_DIR / "seeds" / "tier_rules.csv").set_index("tier")["tier_rank"].to_dict()
    rows, last, held = [], {}, []
    for t in transitions.sort_values(["effective_date", "customer_id"]).itertuples():
        for r in rules.itertuples():
            if r.dimension == "status":
                hit = t.from_status != t.to_status and _matches(r.from_value, t.from_status) \
                    and _matches(r.to_value, t.to_status)
            elif r.dimension == "tier":
                ranks = (tier_rank.get(t.from_tier), tier_rank.get(t.to_tier))
                if r.to_value in ("lower", "higher"):
                    to_ok = None not in ranks and (ranks[1] > ranks[0] if r.to_value == "lower" else ranks[1] < ranks[0])
                else:
                    to_ok = _matches(r.to_value, t.to_tier)
                hit = t.from_tier != t.to_tier and _matches(r.from_value, t.from_tier) and to_ok
            else:
                frm, to = str(bool(t.from_is_at_risk)).lower(), str(bool(t.to_is_at_risk)).lower()
                hit = frm != to and _matches(r.from_value, frm) and _matches(r.to_value, to)
            if not (hit and _matches(r.tier_scope, t.to_tier)):
                continue
            day = pd.Timestamp(t.effective_date)
            previous = last.get((t.customer_id, r.rule_id))
            if previous is not None and (day - previous).days < int(r.cooldown_days):
                held.append({"customer_id": t.customer_id, "rule_id": r.rule_id,
                             "as_of_date": day.strftime("%Y-%m-%d"), "holding_alert_date": previous.strftime("%Y-%m-%d")})
                continue
            last[(t.customer_id, r.rule_id)] = day
            rows.append({"customer_id": t.customer_id, "rule_id": r.rule_id, "as_of_date": day.strftime("%Y-%m-%d"),
                         "action": r.action, "channel": r.channel})
    return (pd.DataFrame(rows, columns=["customer_id", "rule_id", "as_of_date", "action", "channel"]),
            pd.DataFrame(held, columns=["customer_id", "rule_id", "as_of_date", "holding_alert_date"]))


def test_alerts_match_the_rules_and_the_cooldown(backfill):
    tables = _require(backfill)
    expected, held = reference_alerts(reference_transitions(tables["history"]))
    suppressed = len(held)
    alerts = tables["alerts"].copy()
    alerts["as_of_date"] = pd.to_datetime(alerts["as_of_date"]).dt.strftime("%Y-%m-%d")
    columns = ["customer_id", "rule_id", "as_of_date", "action", "channel"]
    key = columns[:3]
    pd.testing.assert_frame_equal(alerts[columns].sort_values(key).reset_index(drop=True),
                                  expected.sort_values(key).reset_index(drop=True))
    print(f"\nalerts: {len(alerts)} ({alerts['action'].value_counts().to_dict()}); suppressed by cooldown: {suppressed}")
    assert len(alerts) > 0 and suppressed > 0  # the data exercise the cooldown (else this test proves little)
    # deterministic ids: md5(customer|rule|date)
    ids = [hashlib.md5(f"{c}|{r}|{d}".encode()).hexdigest() for c, r, d in alerts[key].itertuples(index=False)]
    assert alerts["alert_id"].tolist() == ids
    assert not alerts.duplicated(key).any()
    # cooldown: no customer+rule pair alerted twice within the rule's cooldown_days
    rules = pd.read_csv(DBT_PROJECT_DIR / "seeds" / "alert_rules.csv").set_index("rule_id")["cooldown_days"]
    ordered = alerts.assign(day=pd.to_datetime(alerts["as_of_date"])).sort_values("day")
    gaps = ordered.groupby(["customer_id", "rule_id"])["day"].diff().dt.days
    within = gaps.notna() & (gaps < ordered["rule_id"].map(rules))
    assert not within.any(), ordered[within]


def _dated(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = frame[columns].copy()
    for column in columns:
        if column.endswith("_date"):
            out[column] = pd.to_datetime(out[column]).dt.strftime("%Y-%m-%d")
    return out.sort_values(columns).reset_index(drop=True)


def _report_held(home: Path, day: str) -> dict[str, int]:
    """Held-by-cooldown counts per rule as the run report shows them for `day` (from the published snapshot)."""
    return {r["rule_id"]: r["held_by_cooldown"] for r in snapshot_data(home / "publish" / "crm.duckdb", day)["cooldown"]}


def _dbt_held(holds: pd.DataFrame, day: str) -> dict[str, int]:
    return holds[holds["as_of_date"].astype(str) == day].groupby("rule_id").size().to_dict()


def test_holds_are_the_matches_the_cooldown_suppressed_and_the_report_counts_them(backfill):
    tables = _require(backfill)
    _, expected = reference_alerts(reference_transitions(tables["history"]))
    holds = tables["holds"]
    columns = ["customer_id", "rule_id", "as_of_date", "holding_alert_date"]
    pd.testing.assert_frame_equal(_dated(holds, columns), _dated(expected, columns))
    assert len(holds) > 0  # the data exercise the cooldown
    # a hold is never an alert, and its holding alert is one
    alerts = tables["alerts"]
    key = ["customer_id", "rule_id", "as_of_date"]
    assert holds.merge(alerts, on=key).empty
    assert set(holds["holding_alert_id"]) <= set(alerts["alert_id"])
    # the run report's held-by-cooldown counts are dbt's, date by date
    for day in DATES:
        assert _report_held(backfill["home"], day) == _dbt_held(holds, day), day


def test_history_models_unit_tests(backfill):
    _require(backfill)
    with pytest.MonkeyPatch.context() as mp:
        _home(mp, backfill["home"])
        output = run_dbt(["test", "--select", "customer_transitions,test_type:unit", "customer_alerts,test_type:unit",
                          "customer_alert_holds,test_type:unit"], DATES[-1])
    assert "PASS=4" in output


# ------------------------------------------------------------------------------------- re-runs and drift

def test_rerunning_dates_neither_duplicates_nor_changes_anything(backfill):
    tables = _require(backfill)
    home = _copy_home(backfill, "rerun")
    last_chunk = CHUNKS[-1]
    older, next_date, last = last_chunk[-3], last_chunk[-2], last_chunk[-1]
    outbox = home / "outbox"
    before_files = {p.relative_to(outbox): p.read_bytes() for p in outbox.glob("*/*")}
    con = duckdb.connect(str(home / "warehouse" / "crm.duckdb"))
    try:
        deliveries = con.execute("select count(*) from outbox.alert_deliveries").fetchone()[0]
        # spoil the next date's transitions: re-running the older date must rebuild them
        con.execute("delete from history.customer_transitions where effective_date = ?", [next_date])
    finally:
        con.close()
    with pytest.MonkeyPatch.context() as mp:
        _home(mp, home)
        code = run_dag([older, last], home / "landing", quiet=True)  # an older date, then the last one again
        assert code == 0, _log(home, [older, last])
        again = _tables(home)
    for name, frame in tables.items():
        pd.testing.assert_frame_equal(again[name].reset_index(drop=True), frame.reset_index(drop=True),
                                      check_exact=False, rtol=1e-9, obj=name)
    # the report of the re-run older date counts the holds dbt decided on it (the cooldown looks both ways)
    assert _report_held(home, older) == _dbt_held(again["holds"], older)
    after_files = {p.relative_to(outbox): p.read_bytes() for p in outbox.glob("*/*")}
    # the same files byte for byte, manifests included: a handed-over folder is left as it is
    assert after_files == before_files
    con = duckdb.connect(str(home / "warehouse" / "crm.duckdb"), read_only=True)
    try:
        assert con.execute("select count(*) from outbox.alert_deliveries").fetchone()[0] == deliveries
    finally:
        con.close()


def _poison(landing: Path, customers: int) -> float:
    """A re-export of every order of the least active 40% of customers as `refunded` (a broken CRM
    export job). Returns the refund/cancel share of the orders after it."""
    orders = pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False)
                        for p in sorted((landing / "generic" / "orders").glob("*.csv"))])
    per_customer = orders.groupby("customer_id").size().sort_values(kind="stable")
    chosen = per_customer.index[: int(0.4 * customers)]
    poison = orders[orders["customer_id"].isin(chosen)].assign(status="refunded")
    poison.to_csv(landing / "generic" / "orders" / "zz_reexport.csv", index=False)
    final = orders.set_index("order_id")["status"].copy()
    final.loc[poison["order_id"].to_numpy()] = "refunded"
    return float(final.isin(["refunded", "cancelled"]).mean())


def test_poisoned_export_trips_the_drift_gate(backfill):
    _require(backfill)
    home = _copy_home(backfill, "poisoned")
    previous = DATES[-1]
    as_of = (date.fromisoformat(previous) + timedelta(days=1)).isoformat()
    share = _poison(home / "landing", CUSTOMERS)
    assert share < 0.5, "the poison must pass the staging gate's refund share bound to reach the drift gate"
    with pytest.MonkeyPatch.context() as mp:
        _home(mp, home)
        code = run_dag(as_of, home / "landing", quiet=True)
    log = (home / "logs" / f"run-{as_of}.log").read_text(errors="replace")
    assert code != 0
    assert "gate drift failed" in log, log[-4000:]
    assert "[drift_change_shares]" in log
    assert "max_status_change_share=0.25" in log or "max_tier_change_share=0.25" in log
    assert f"previous_as_of_date='{previous}'" in log
    for earlier_gate in ("raw", "staging", "marts"):
        assert f"gate {earlier_gate}: passed" in log
    # nothing published for the date, no alert handed over
    con = duckdb.connect(str(home / "publish" / "crm.duckdb"), read_only=True)
    try:
        assert str(con.execute("select as_of_date from _snapshot").fetchone()[0]) == previous
    finally:
        con.close()
    assert not (home / "outbox" / as_of).exists()
    assert (home / "outbox" / previous).exists()
