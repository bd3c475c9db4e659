"""Customer value science in dbt: RFM segments, BG/NBD + Gamma-Gamma CLV, at-risk, cohorts, conversion.

Builds small warehouses (generate -> ingest -> `dbt build`) and checks the marts against pandas
computations written from the specification, not from the model SQL. The inputs are the cleaned
staging tables (raw -> staging is covered by the end-to-end test).
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from crmtier.dbt_runner import run_dbt
from crmtier.ingest.landing import ingest_landing
from crmtier.paths import DBT_PROJECT_DIR
from crmtier.samples.generate import generate

pytestmark = pytest.mark.integration

AS_OF = "2026-11-01"
AS_OF_DAY = pd.Timestamp(AS_OF)
END = AS_OF_DAY + pd.Timedelta(days=1)
VARS = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
SEGMENTS = pd.read_csv(DBT_PROJECT_DIR / "seeds" / "rfm_segments.csv")


def _read(warehouse: Path, *queries: str) -> list[pd.DataFrame]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return [con.execute(q).df() for q in queries]
    finally:
        con.close()


def _build(tmp_path_factory, name: str, customers: int, seed: int, extra_vars: dict | None = None):
    home = tmp_path_factory.mktemp(name) / "var"
    mp = pytest.MonkeyPatch()
    mp.setenv("CRMTIER_HOME", str(home))
    for var in ("CRMTIER_LANDING", "CRMTIER_WAREHOUSE", "CRMTIER_PUBLISH", "AIRFLOW_HOME", "CRMTIER_AS_OF_DATE"):
        mp.delenv(var, raising=False)
    landing = home / "landing"
    generate(landing, customers, seed=seed, as_of=AS_OF)
    warehouse = home / "warehouse" / "crm.duckdb"
    ingest_landing(warehouse, landing)
    log = run_dbt(["build"], AS_OF, extra_vars=extra_vars)
    return mp, warehouse, log


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    mp, warehouse, log = _build(tmp_path_factory, "value3000", 3000, seed=1)
    try:
        yield {"warehouse": warehouse, "log": log, "mp": mp}
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """30 customers: too few to fit; built with tier_value_source = clv to see the fallback."""
    mp, warehouse, log = _build(tmp_path_factory, "value30", 30, seed=2, extra_vars={"tier_value_source": "clv"})
    try:
        yield {"warehouse": warehouse, "log": log}
    finally:
        mp.undo()


def _reference_summary(warehouse: Path) -> pd.DataFrame:
    """Per buyer: purchase days, BG/NBD x, t_x, T (days) and mean repeat-day value, from staging."""
    orders, customers, fx = _read(
        warehouse,
        "select customer_id, ordered_at, order_date, amount, currency, order_status from staging.stg_crm__orders",
        "select customer_id, created_at from staging.stg_crm__customers",
        "select currency, rate_to_base from config.fx_rates",
    )
    known = set(customers.loc[customers["created_at"] < END, "customer_id"])
    paid = orders[(orders["ordered_at"] < END) & (orders["order_status"] == "paid")
                  & orders["customer_id"].isin(known)].copy()
    rate = paid["currency"].map(dict(zip(fx["currency"], fx["rate_to_base"])))
    paid["value"] = paid["amount"].astype(float) * rate
    paid["order_date"] = pd.to_datetime(paid["order_date"])
    days = paid.groupby(["customer_id", "order_date"], as_index=False)["value"].sum().sort_values(
        ["customer_id", "order_date"])
    days["n"] = days.groupby("customer_id").cumcount()
    per = days.groupby("customer_id").agg(first=("order_date", "min"), last=("order_date", "max"),
                                          purchase_days=("order_date", "size"))
    per["monetary_value"] = days[days["n"] > 0].groupby("customer_id")["value"].mean()
    per["frequency"] = per["purchase_days"] - 1
    per["recency_days"] = (per["last"] - per["first"]).dt.days
    per["t_days"] = (AS_OF_DAY - per["first"]).dt.days
    per["days_since_last_purchase"] = (AS_OF_DAY - per["last"]).dt.days
    per["cohort_month"] = per["first"].dt.to_period("M").dt.to_timestamp()
    second = days[days["n"] == 1].set_index("customer_id")["order_date"]
    per["days_to_second"] = (second - per["first"]).dt.days
    return per.reset_index()


# --------------------------------------------------------------------------- #
# fitted run on ~3000 generated customers
# --------------------------------------------------------------------------- #
def test_purchase_summary_matches_pandas(generated):
    expected = _reference_summary(generated["warehouse"])
    (actual,) = _read(generated["warehouse"], "select * from intermediate.int_customer_purchase_summary")
    merged = actual.merge(expected, on="customer_id", suffixes=("", "_ref"), validate="one_to_one")
    assert len(merged) == len(expected) == len(actual) > 2000
    for col in ("frequency", "recency_days", "t_days", "purchase_days"):
        assert (merged[col] == merged[f"{col}_ref"]).all(), col
    np.testing.assert_allclose(merged["monetary_value"].astype(float), merged["monetary_value_ref"], rtol=1e-9)


def test_segments_follow_the_seed_exactly_once(generated):
    scores, segments = _read(generated["warehouse"], "select * from marts.customer_value_scores",
                             "select * from marts.customer_segments")
    assert len(segments) == len(scores) > 0
    merged = scores[["customer_id", "r_score", "f_score"]].merge(
        segments[["customer_id", "segment", "segment_zh", "segment_reason"]], on="customer_id", validate="one_to_one")
    for row in merged.itertuples():
        hits = SEGMENTS[(SEGMENTS.r_score_min <= row.r_score) & (row.r_score <= SEGMENTS.r_score_max)
                        & (SEGMENTS.f_score_min <= row.f_score) & (row.f_score <= SEGMENTS.f_score_max)]
        assert len(hits) == 1, (row.r_score, row.f_score, list(hits.segment))
        assert row.segment == hits.segment.iloc[0] and row.segment_zh == hits.segment_zh.iloc[0]
        assert row.segment_reason.startswith(f"R={row.r_score} F={row.f_score} → {row.segment} (")
    # the seed covers the whole 5 x 5 grid once, not only the cells this population happens to fill
    for r in range(1, 6):
        for f in range(1, 6):
            cover = SEGMENTS[(SEGMENTS.r_score_min <= r) & (r <= SEGMENTS.r_score_max)
                             & (SEGMENTS.f_score_min <= f) & (f <= SEGMENTS.f_score_max)]
            assert len(cover) == 1, (r, f)


def test_both_models_converge_and_customers_are_scored(generated):
    fits, clv = _read(generated["warehouse"], "select * from marts.clv_model_fits", "select * from marts.customer_clv")
    assert sorted(fits["model"]) == ["bg_nbd", "gamma_gamma"]
    assert fits["converged"].all() and (fits["model_status"] == "fitted").all()
    bg = fits.set_index("model").loc["bg_nbd"]
    gg = fits.set_index("model").loc["gamma_gamma"]
    assert bg["customers_used"] == len(clv)
    assert gg["customers_used"] == int(clv["in_gamma_gamma"].sum())
    assert "models fitted on" in generated["log"]

    assert (clv["model_status"] == "fitted").all()
    assert clv["p_alive"].between(0, 1).all() and (clv["clv"] >= 0).all()
    one_time = clv["frequency"] == 0
    assert (clv["is_one_time_buyer"] == one_time).all()
    assert (clv.loc[one_time, "p_alive"] == 1.0).all()  # BG/NBD by construction: hence the flag
    assert clv.loc[one_time, "p_alive_note"].str.startswith("one-time buyer").all()
    positive = clv["monetary_value"].fillna(0) > 0
    assert (clv["in_gamma_gamma"] == (~one_time & positive)).all()
    assert clv.loc[~clv["in_gamma_gamma"], "gamma_gamma_note"].str.startswith("left out of Gamma-Gamma").all()


def test_one_time_buyers_flagged_and_lapsed_ones_at_risk(generated):
    summary = _reference_summary(generated["warehouse"])
    (status,) = _read(generated["warehouse"], "select * from marts.customer_status")
    repeat = summary[summary["purchase_days"] > 1]
    usual_gap = (repeat["recency_days"] / repeat["frequency"]).median()
    limit = VARS["at_risk_gap_factor"] * usual_gap
    merged = status.merge(summary, on="customer_id", how="left", suffixes=("", "_ref"))

    once = merged[merged["purchase_days"] == 1]
    assert once["is_one_time_buyer"].all() and (once["at_risk_basis"] == "one_time_gap_rule").all()
    assert (once["is_at_risk"] == (once["days_since_last_purchase_ref"] > limit)).all()
    lapsed = once[once["days_since_last_purchase_ref"] > VARS["status_dormant_max_days"]]
    assert len(lapsed) > 0 and (lapsed["p_alive"] == 1.0).all() and lapsed["is_at_risk"].all()

    repeat_rows = merged[merged["purchase_days"] > 1]
    assert (repeat_rows["at_risk_basis"] == "p_alive").all()
    assert (repeat_rows["is_at_risk"] == (repeat_rows["p_alive"] < VARS["at_risk_p_alive_below"])).all()
    assert not merged.loc[merged["purchase_days"].isna(), "is_at_risk"].any()


def test_cohort_repeat_rates_match_pandas(generated):
    summary = _reference_summary(generated["warehouse"])
    (cohorts,) = _read(generated["warehouse"], "select * from marts.cohort_retention")
    expected = summary.groupby("cohort_month").agg(
        customers=("customer_id", "size"), repeat=("purchase_days", lambda s: int((s > 1).sum())),
        within_90=("days_to_second", lambda s: int((s <= 90).sum())))
    cohorts = cohorts.set_index(pd.to_datetime(cohorts["cohort_month"])).sort_index()
    expected.index = pd.to_datetime(expected.index)
    assert (cohorts["customers"] == expected["customers"]).all() and len(cohorts) == len(expected)
    np.testing.assert_allclose(cohorts["repeat_purchase_rate"], expected["repeat"] / expected["customers"], atol=1e-6)
    assert (cohorts["repeat_customers_90d"] == expected["within_90"]).all()
    complete = cohorts.index + pd.offsets.MonthEnd(0) + pd.Timedelta(days=90) <= AS_OF_DAY
    assert cohorts.loc[~complete, "repeat_rate_90d"].isna().all()
    assert cohorts.loc[complete, "repeat_rate_90d"].notna().all() and complete.any()


def test_visit_to_purchase_conversion_matches_pandas(generated):
    events, orders, conversion = _read(
        generated["warehouse"],
        "select customer_id, event_date, event_type from staging.stg_crm__events",
        "select customer_id, order_date, is_paid from staging.stg_crm__orders",
        "select * from marts.customer_conversion",
    )
    for window in (30, 365):
        since = AS_OF_DAY - pd.Timedelta(days=window - 1)
        in_window = lambda d, since=since: (pd.to_datetime(d) >= since) & (pd.to_datetime(d) <= AS_OF_DAY)  # noqa: E731
        visits = events[in_window(events["event_date"]) & events["event_type"].isin(["web_visit", "page_view"])]
        buys = orders[in_window(orders["order_date"]) & orders["is_paid"]]
        frame = conversion.set_index("customer_id")
        v = visits.groupby("customer_id").size().reindex(frame.index, fill_value=0)
        p = buys.groupby("customer_id").size().reindex(frame.index, fill_value=0)
        assert (frame[f"visits_{window}d"] == v).all() and (frame[f"purchases_{window}d"] == p).all()
        rate = (p / v.where(v > 0)).round(6)
        pd.testing.assert_series_equal(frame[f"conversion_rate_{window}d"], rate, check_names=False)


def test_tier_value_source_clv_changes_the_basis(generated):
    (before,) = _read(generated["warehouse"], "select * from marts.customer_tiers")
    assert (before["value_source"] == "rfm").all()
    run_dbt(["build", "--select", "customer_tiers"], AS_OF, extra_vars={"tier_value_source": "clv"})
    after, clv = _read(generated["warehouse"], "select * from marts.customer_tiers", "select * from marts.customer_clv")
    scored = after.merge(clv[["customer_id", "clv", "clv_score"]], on="customer_id", suffixes=("", "_model"))
    judged = scored[scored["tier"] != "new"]
    assert (judged["value_source"] == "clv").all()
    np.testing.assert_allclose(judged["value_score"], judged["clv_score"])
    assert judged["tier_reason"].str.match(r"^CLV ¥[\d,]+ \(value score ").all()
    vip = judged[judged["tier"] == "vip"]
    assert len(vip) > 0 and (vip["value_percentile"] >= 0.95).all()
    # the tier basis really changed: some customers move
    moved = before.merge(after, on="customer_id", suffixes=("_rfm", "_clv"))
    assert (moved["tier_rfm"] != moved["tier_clv"]).sum() > 0


# --------------------------------------------------------------------------- #
# a population too small to fit: rules only, everything still builds
# --------------------------------------------------------------------------- #
def test_tiny_population_falls_back_to_rules(tiny):
    fits, clv, tiers, status = _read(
        tiny["warehouse"], "select * from marts.clv_model_fits", "select * from marts.customer_clv",
        "select * from marts.customer_tiers", "select * from marts.customer_status")
    assert sorted(fits["model"]) == ["bg_nbd", "gamma_gamma"]
    assert not fits["converged"].any() and fits["message"].str.len().gt(0).all()
    assert (fits["model_status"] == "fallback_rules_only").all()
    assert "WARNING model fell back to rules only" in tiny["log"]

    assert len(clv) > 0 and (clv["model_status"] == "fallback_rules_only").all()
    assert clv[["p_alive", "clv"]].isna().all().all()
    # tier_value_source = clv asked for, the model fell back: tiers keep their rfm meaning and say so
    assert (tiers["value_source"] == "rfm").all()
    judged = tiers[tiers["r_score"].notna() & (tiers["tier"] != "new")]
    assert len(judged) > 0 and judged["tier_reason"].str.startswith("CLV model fell back").all()
    # at risk uses the rules only
    buyers = status[status["at_risk_basis"] != "not_a_buyer"]
    assert len(buyers) > 0 and set(buyers["at_risk_basis"]) <= {"one_time_gap_rule", "own_gap_rule"}
    assert buyers["at_risk_reason"].str.startswith("model fell back to rules only").all()
