"""Tests for crmtier.value.clv against published CDNOW figures and model properties.

The CDNOW files ship inside the (dev-only) ``lifetimes`` wheel; we only locate
them on disk (``find_spec`` does not execute lifetimes' ``__init__``) and read
them with pandas.  No lifetimes fitter is called.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmtier.value import clv

pytestmark = pytest.mark.unit

REL = 5e-3  # "3 significant figures"


# --------------------------------------------------------------------------- #
# data
# --------------------------------------------------------------------------- #
def _cdnow_path(name: str) -> Path:
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("lifetimes (dev dependency, used for its CDNOW data files) is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / name
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    df = pd.read_csv(_cdnow_path("cdnow_customers_summary.csv"))
    assert len(df) == 2357
    return df


@pytest.fixture(scope="module")
def cdnow_spend() -> pd.DataFrame:
    # columns: ID, x (frequency), t_x (recency), T, zbar (mean repeat spend)
    df = pd.read_csv(_cdnow_path("cdnow_customers_summary_with_transactions.csv"))
    df = df.rename(columns={"x": "frequency", "t_x": "recency", "zbar": "monetary_value"})
    assert len(df) == 2357
    return df


@pytest.fixture(scope="module")
def cdnow_fit(cdnow) -> clv.BgNbdFit:
    return clv.fit_bgnbd(cdnow["frequency"], cdnow["recency"], cdnow["T"])


@pytest.fixture(scope="module")
def cdnow_gg(cdnow_spend) -> clv.GammaGammaFit:
    rep = cdnow_spend[cdnow_spend["frequency"] > 0]
    return clv.fit_gamma_gamma(rep["frequency"], rep["monetary_value"])


def _summary_days(df: pd.DataFrame) -> pd.DataFrame:
    """CDNOW (weeks) as the pipeline's day-based summary (exact: weeks * 7)."""
    return pd.DataFrame({
        "customer_id": df["ID"].astype(str),
        "frequency": df["frequency"],
        "recency_days": df["recency"] * 7.0,
        "T_days": df["T"] * 7.0,
        "monetary_value": df["monetary_value"].where(df["frequency"] > 0, np.nan),
    })


# --------------------------------------------------------------------------- #
# published values
# --------------------------------------------------------------------------- #
def test_bgnbd_cdnow_parameters(cdnow_fit):
    f = cdnow_fit
    assert f.converged, f.message
    assert f.n_customers == 2357
    assert f.r == pytest.approx(0.2426, rel=REL)
    assert f.alpha == pytest.approx(4.4136, rel=REL)
    assert f.a == pytest.approx(0.7929, rel=REL)
    assert f.b == pytest.approx(2.4259, rel=REL)
    assert f.log_likelihood == pytest.approx(-9582.43, rel=1e-5)  # sum, not mean


def test_bgnbd_log_likelihood_at_published_params(cdnow, cdnow_fit):
    ll = clv.bgnbd_log_likelihood((0.2426, 4.4136, 0.7929, 2.4259), cdnow["frequency"],
                                  cdnow["recency"], cdnow["T"])
    assert ll.shape == (2357,)
    assert ll.sum() == pytest.approx(-9582.43, abs=0.05)
    own = clv.bgnbd_log_likelihood(cdnow_fit, cdnow["frequency"], cdnow["recency"], cdnow["T"])
    assert own.sum() == pytest.approx(cdnow_fit.log_likelihood, rel=1e-10)


def test_bgnbd_conditional_expectation_published(cdnow_fit):
    e = clv.bgnbd_expected_purchases(cdnow_fit, 39, 2, 30.43, 38.86)
    assert float(e[0]) == pytest.approx(1.226, rel=REL)
    e_pub = clv.bgnbd_expected_purchases((0.2426, 4.4136, 0.7929, 2.4259), 39, 2, 30.43, 38.86)
    assert round(float(e_pub[0]), 3) == 1.226


def test_gamma_gamma_cdnow(cdnow_gg):
    g = cdnow_gg
    assert g.converged, g.message
    assert g.n_customers == 946
    assert g.p == pytest.approx(6.25, rel=REL)
    assert g.q == pytest.approx(3.74, rel=REL)
    assert g.v == pytest.approx(15.44, rel=REL)
    assert g.log_likelihood == pytest.approx(-4055.92, rel=1e-5)  # sum over the 946


# --------------------------------------------------------------------------- #
# properties and edge cases
# --------------------------------------------------------------------------- #
def test_expected_purchases_properties(cdnow_fit):
    ts = np.array([0.0, 1.0, 10.0, 39.0, 200.0])
    e = np.array([clv.bgnbd_expected_purchases(cdnow_fit, t, [0, 2, 10], [0, 30.43, 5.0], [38.86] * 3)
                  for t in ts])
    assert np.all(e[0] == 0)
    assert np.all(np.diff(e, axis=0) > 0)  # increasing in t
    # the long-ago frequent buyer is likely dead: fewer purchases than the recent one
    assert e[-1, 2] < e[-1, 1]


def test_p_alive_one_time_buyers_is_one_and_flagged(cdnow, cdnow_fit, cdnow_spend):
    pa = clv.bgnbd_p_alive(cdnow_fit, [0, 0, 3, 3], [0, 0, 37.0, 2.0], [5.0, 5000.0, 38.0, 38.0])
    assert pa[0] == 1.0 and pa[1] == 1.0  # model property, however old the purchase
    assert 0 < pa[3] < pa[2] < 1

    scores, _ = clv.score_customers(_summary_days(cdnow_spend))
    one = scores["is_one_time_buyer"]
    assert one.sum() == (cdnow["frequency"] == 0).sum() == 1411
    assert (scores.loc[one, "p_alive"] == 1.0).all()
    assert (scores.loc[~one, "p_alive"] < 1.0).all()


def test_score_customers_fitted(cdnow_spend, cdnow_fit, cdnow_gg):
    summary = _summary_days(cdnow_spend)
    scores, fits = clv.score_customers(summary)
    assert list(scores.columns) == [
        "customer_id", "p_alive", "expected_purchases_90d", "expected_order_value", "clv",
        "is_one_time_buyer", "in_gamma_gamma", "model_status",
    ]
    assert list(fits.columns) == ["model", "params", "log_likelihood", "n_customers", "converged",
                                  "message"]
    assert len(scores) == len(summary)
    assert (scores["model_status"] == "fitted").all()
    assert scores["customer_id"].tolist() == summary["customer_id"].tolist()
    assert fits["model"].tolist() == ["bg_nbd", "gamma_gamma"]
    assert fits["converged"].all()

    bg = json.loads(fits.loc[0, "params"])
    assert bg["time_unit"] == "week"
    assert bg["alpha"] == pytest.approx(cdnow_fit.alpha, rel=1e-6)  # days / 7 == CDNOW weeks
    assert fits.loc[0, "log_likelihood"] == pytest.approx(-9582.43, rel=1e-5)
    gg = json.loads(fits.loc[1, "params"])
    assert gg["v"] == pytest.approx(15.44, rel=REL)
    assert fits.loc[1, "n_customers"] == 946

    # the 90-day expectation equals the weekly model at t = 90/7 weeks
    e = clv.bgnbd_expected_purchases(cdnow_fit, 90 / 7, cdnow_spend["frequency"],
                                     cdnow_spend["recency"], cdnow_spend["T"])
    np.testing.assert_allclose(scores["expected_purchases_90d"], e, rtol=1e-6)

    # customers outside Gamma-Gamma get the population mean and say so
    pop = cdnow_gg.p * cdnow_gg.v / (cdnow_gg.q - 1)
    out = ~scores["in_gamma_gamma"]
    assert out.sum() == 1411
    np.testing.assert_allclose(scores.loc[out, "expected_order_value"], pop, rtol=1e-6)
    assert np.isfinite(scores["clv"]).all() and (scores["clv"] >= 0).all()


def test_score_customers_nonpositive_spend_uses_population_mean(cdnow_spend):
    summary = _summary_days(cdnow_spend)
    rep = summary.index[summary["frequency"] > 0]
    summary.loc[rep[:5], "monetary_value"] = [-10.0, 0.0, np.nan, -0.01, 0.0]
    scores, fits = clv.score_customers(summary)
    assert fits.loc[1, "n_customers"] == 941
    assert not scores.loc[rep[:5], "in_gamma_gamma"].any()
    assert not scores.loc[rep[:5], "is_one_time_buyer"].any()
    g = json.loads(fits.loc[1, "params"])
    pop = g["p"] * g["v"] / (g["q"] - 1)
    np.testing.assert_allclose(scores.loc[rep[:5], "expected_order_value"], pop, rtol=1e-9)


def test_fallback_too_few_customers():
    summary = pd.DataFrame({
        "customer_id": range(10),
        "frequency": [0, 1, 2, 0, 3, 1, 0, 0, 5, 1],
        "recency_days": [0, 10, 40, 0, 90, 5, 0, 0, 100, 20],
        "T_days": [50, 60, 90, 10, 120, 30, 200, 5, 110, 40],
        "monetary_value": [np.nan, 20, 35, np.nan, 10, -5, np.nan, np.nan, 50, 0],
    })
    scores, fits = clv.score_customers(summary)
    assert len(scores) == 10
    assert (scores["model_status"] == "fallback_rules_only").all()
    for col in ("p_alive", "expected_purchases_90d", "expected_order_value", "clv"):
        assert scores[col].isna().all()
    assert scores["is_one_time_buyer"].sum() == 4
    assert scores["in_gamma_gamma"].tolist() == [False, True, True, False, True, False, False,
                                                 False, True, False]
    assert not fits["converged"].any()
    assert "too few customers: 10 < 200" in fits.loc[0, "message"]
    assert "too few customers" in fits.loc[1, "message"]
    assert json.loads(fits.loc[0, "params"])["r"] is None  # valid JSON, no NaN


def test_fallback_too_few_repeat_buyers():
    rng = np.random.default_rng(1)
    n = 300
    freq = np.zeros(n)
    freq[:20] = rng.integers(1, 5, 20)
    T = rng.integers(30, 400, n).astype(float)
    rec = np.where(freq > 0, np.floor(T * 0.5), 0.0)
    summary = pd.DataFrame({"customer_id": np.arange(n), "frequency": freq, "recency_days": rec,
                            "T_days": T, "monetary_value": np.where(freq > 0, 25.0, np.nan)})
    scores, fits = clv.score_customers(summary)
    assert (scores["model_status"] == "fallback_rules_only").all()
    assert scores["clv"].isna().all()
    assert fits.loc[0, "converged"]  # BG/NBD itself is fine ...
    assert not fits.loc[1, "converged"]  # ... but the spend model is not
    assert "too few repeat buyers with positive spend: 20 < 50" in fits.loc[1, "message"]


def test_empty_summary_falls_back():
    empty = pd.DataFrame({c: pd.Series(dtype=float) for c in
                          ("customer_id", "frequency", "recency_days", "T_days", "monetary_value")})
    scores, fits = clv.score_customers(empty)
    assert len(scores) == 0 and len(fits) == 2
    assert "too few customers: 0 < 200" in fits.loc[0, "message"]


def test_score_customers_accepts_nullable_and_decimal_columns(cdnow_spend):
    from decimal import Decimal

    summary = _summary_days(cdnow_spend)
    ref, _ = clv.score_customers(summary)
    alt = summary.copy()
    alt["frequency"] = alt["frequency"].astype("Int64")
    alt["monetary_value"] = [None if pd.isna(v) else Decimal(str(v)) for v in alt["monetary_value"]]
    got, _ = clv.score_customers(alt)
    np.testing.assert_allclose(got["clv"], ref["clv"], rtol=1e-9)
    assert got["in_gamma_gamma"].tolist() == ref["in_gamma_gamma"].tolist()


def test_score_customers_rejects_malformed_input():
    bad = pd.DataFrame({"customer_id": [1], "frequency": [1], "recency_days": [50],
                        "T_days": [10], "monetary_value": [3.0]})
    with pytest.raises(ValueError, match="recency > T"):
        clv.score_customers(bad)
    with pytest.raises(ValueError, match="missing columns"):
        clv.score_customers(bad.drop(columns="T_days"))


def test_gamma_gamma_rejects_nonpositive_spend():
    with pytest.raises(ValueError, match="monetary_value <= 0"):
        clv.fit_gamma_gamma([1, 2, 3], [10.0, 0.0, 5.0])
    with pytest.raises(ValueError, match="monetary_value <= 0"):
        clv.fit_gamma_gamma([1, 2, 3], [10.0, -3.0, 5.0])
    with pytest.raises(ValueError, match="monetary_value <= 0"):
        clv.fit_gamma_gamma([1, 2], [10.0, np.nan])
    with pytest.raises(ValueError, match="frequency <= 0"):
        clv.fit_gamma_gamma([0, 2, 3], [10.0, 4.0, 5.0])


def test_gamma_gamma_expected_value(cdnow_gg):
    g = cdnow_gg
    pop = g.p * g.v / (g.q - 1)
    ev = clv.gamma_gamma_expected_value(g, [0, 0, 1, 10, 1000], [np.nan, 50.0, 20.0, 20.0, 20.0])
    assert ev[0] == pytest.approx(pop) and ev[1] == pytest.approx(pop)
    # shrinkage: more repeat purchases -> closer to the customer's own mean
    assert abs(ev[4] - 20.0) < abs(ev[3] - 20.0) < abs(ev[2] - 20.0)
    assert ev[2] == pytest.approx(g.p * (g.v + 20.0) / (g.p + g.q - 1))


def test_clv_monotone_in_horizon_and_discount(cdnow_spend, cdnow_fit, cdnow_gg):
    d = cdnow_spend.iloc[:200]
    args = (cdnow_fit, cdnow_gg, d["frequency"], d["recency"], d["T"], d["monetary_value"])
    horizons = [0, 4, 13, 26.5, 52, 104]
    vals = np.array([clv.customer_lifetime_value(*args, horizon=h, discount_rate=0.01, step=4.345)
                     for h in horizons])
    assert np.all(vals[0] == 0)
    assert np.all(np.diff(vals, axis=0) >= -1e-12)
    assert np.all(vals[-1] > vals[1])
    rates = [0.0, 0.005, 0.02, 0.1]
    by_rate = np.array([clv.customer_lifetime_value(*args, horizon=52, discount_rate=d_, step=4.345)
                        for d_ in rates])
    assert np.all(np.diff(by_rate, axis=0) < 0)
    # undiscounted CLV = expected purchases over the horizon * expected order value
    e = clv.bgnbd_expected_purchases(cdnow_fit, 52, d["frequency"], d["recency"], d["T"])
    ev = clv.gamma_gamma_expected_value(cdnow_gg, d["frequency"], d["monetary_value"])
    np.testing.assert_allclose(by_rate[0], e * ev, rtol=1e-9)


def test_clv_matches_period_sum(cdnow_fit, cdnow_gg):
    # lifetimes-style: sum_k (E[N(k*step)] - E[N((k-1)*step)]) * value / (1 + d) ** k
    x, tx, T, m = 4.0, 26.57, 27.0, 33.32
    step, d = 4.345, 0.01
    cum = [clv.bgnbd_expected_purchases(cdnow_fit, k * step, x, tx, T)[0] for k in range(0, 13)]
    value = clv.gamma_gamma_expected_value(cdnow_gg, x, m)[0]
    expected = sum((cum[k] - cum[k - 1]) * value / (1 + d) ** k for k in range(1, 13))
    got = clv.customer_lifetime_value(cdnow_fit, cdnow_gg, x, tx, T, m, horizon=12 * step,
                                      discount_rate=d, step=step)
    assert got[0] == pytest.approx(expected, rel=1e-10)


def test_recovery_from_simulation():
    true = dict(r=0.5, alpha=8.0, a=0.8, b=2.5)
    T = np.random.default_rng(7).uniform(20, 80, 20_000)
    sim = clv.simulate_bgnbd(20_000, **true, T=T, seed=11, gamma_gamma=(6.0, 4.0, 15.0))
    f = clv.fit_bgnbd(sim["frequency"], sim["recency"], sim["T"])
    assert f.converged, f.message
    assert f.r == pytest.approx(true["r"], rel=0.15)
    assert f.alpha == pytest.approx(true["alpha"], rel=0.15)
    assert f.a == pytest.approx(true["a"], rel=0.3)
    assert f.b == pytest.approx(true["b"], rel=0.3)
    rep = sim[sim["frequency"] > 0]
    g = clv.fit_gamma_gamma(rep["frequency"], rep["monetary_value"])
    assert g.converged, g.message
    # the population mean spend is well identified even when (p, q, v) trade off
    assert g.p * g.v / (g.q - 1) == pytest.approx(6.0 * 15.0 / 3.0, rel=0.1)
    assert g.p == pytest.approx(6.0, rel=0.3)


def test_weights_equal_expanded_rows(cdnow):
    d = cdnow.iloc[:600]
    rows = pd.concat([d, d.iloc[:300]])
    expanded = clv.fit_bgnbd(rows["frequency"], rows["recency"], rows["T"])
    w = np.r_[np.full(300, 2.0), np.ones(300)]
    weighted = clv.fit_bgnbd(d["frequency"], d["recency"], d["T"], weights=w)
    assert weighted.n_customers == expanded.n_customers == 900
    for k in ("r", "alpha", "a", "b", "log_likelihood"):
        assert getattr(weighted, k) == pytest.approx(getattr(expanded, k), rel=1e-5)


def test_penalizer_shrinks(cdnow, cdnow_spend):
    f0 = clv.fit_bgnbd(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    f1 = clv.fit_bgnbd(cdnow["frequency"], cdnow["recency"], cdnow["T"], penalizer=0.01)
    assert f1.converged and f1.penalizer == 0.01
    assert f1.r**2 + f1.alpha**2 + f1.a**2 + f1.b**2 < f0.r**2 + f0.alpha**2 + f0.a**2 + f0.b**2
    assert f1.log_likelihood < f0.log_likelihood  # reported LL is the unpenalized one
    rep = cdnow_spend[cdnow_spend["frequency"] > 0]
    g0 = clv.fit_gamma_gamma(rep["frequency"], rep["monetary_value"])
    g1 = clv.fit_gamma_gamma(rep["frequency"], rep["monetary_value"], penalizer=0.01)
    assert g1.converged and g1.penalizer == 0.01
    scale = rep["monetary_value"].mean()  # GG penalty is on (p, q, v / mean spend)
    assert g1.p**2 + g1.q**2 + (g1.v / scale) ** 2 < g0.p**2 + g0.q**2 + (g0.v / scale) ** 2
    assert g1.log_likelihood < g0.log_likelihood
    # currency-free: the same penalizer gives the same shape parameters in cents
    g1c = clv.fit_gamma_gamma(rep["frequency"], rep["monetary_value"] * 100, penalizer=0.01)
    assert g1c.p == pytest.approx(g1.p, rel=1e-4) and g1c.v == pytest.approx(100 * g1.v, rel=1e-4)


def test_gamma_gamma_q_below_one_not_converged():
    # heavy-tailed spend across customers: nu ~ Gamma(q=0.6) has no finite mean of 1/nu
    rng = np.random.default_rng(0)
    x = rng.integers(1, 6, 3000).astype(float)
    nu = rng.gamma(0.6, 1 / 15.0, 3000)
    m = rng.gamma(3 * x, 1 / (x * nu))
    g = clv.fit_gamma_gamma(x, m)
    assert g.q < 1 and not g.converged
    assert "q = " in g.message and "undefined" in g.message
    assert np.isnan(clv.gamma_gamma_expected_value(g, [0], [np.nan])[0])


def test_numerical_stability_huge_values():
    params = (0.2426, 4.4136, 0.7929, 2.4259)
    x = np.array([0, 1, 150, 999, 5000, 300])
    tx = np.array([0, 4000, 2999, 4999, 9999, 1.0])
    T = np.array([9999, 5000, 3000, 5000, 10000, 9000])
    ll = clv.bgnbd_log_likelihood(params, x, tx, T)
    pa = clv.bgnbd_p_alive(params, x, tx, T)
    e = clv.bgnbd_expected_purchases(params, 52, x, tx, T)
    for arr in (ll, pa, e):
        assert np.all(np.isfinite(arr)), arr
    assert np.all((pa >= 0) & (pa <= 1))
    assert np.all(e >= 0)
    assert pa[5] < 1e-6  # 300 purchases in the first week, then silence for 9000
    ev = clv.gamma_gamma_expected_value((6.25, 3.74, 15.44), x, np.full(6, 1e7))
    assert np.all(np.isfinite(ev))
    ll_gg = clv.gamma_gamma_log_likelihood((6.25, 3.74, 15.44), x[1:], np.full(5, 1e7))
    assert np.all(np.isfinite(ll_gg))
    # a fit on extreme customers still returns finite numbers
    f = clv.fit_bgnbd(np.r_[x, 0, 1, 2], np.r_[tx, 0, 10, 20], np.r_[T, 30, 40, 50])
    assert all(math.isfinite(v) for v in (f.r, f.alpha, f.a, f.b, f.log_likelihood))


def test_invalid_inputs_raise():
    with pytest.raises(ValueError, match="recency > T"):
        clv.fit_bgnbd([1, 2], [5.0, 50.0], [10.0, 20.0])
    with pytest.raises(ValueError, match="negative frequency"):
        clv.bgnbd_p_alive((1, 1, 1, 1), [-1], [0], [5])
    with pytest.raises(ValueError, match="non-finite"):
        clv.fit_bgnbd([1, np.nan], [5.0, 5.0], [10.0, 20.0])


def test_no_repeat_buyers_not_converged():
    f = clv.fit_bgnbd(np.zeros(500), np.zeros(500), np.linspace(1, 50, 500))
    assert not f.converged
    assert "no repeat buyers" in f.message


def test_small_benchmark_runs():
    out = clv.benchmark_fit(n=20_000, seed=3)
    assert out["bgnbd"]["converged"] and out["gamma_gamma"]["converged"]
    assert out["fit_total_s"] > 0  # the time itself is a bench figure (make bench), never a test
    assert out["bgnbd"]["r"] == pytest.approx(0.24, rel=0.25)
