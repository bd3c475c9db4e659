"""The calibration/holdout check of the CLV model (crmtier.value.clv.holdout_check) on the public CDNOW sample.

CDNOW_sample.txt (2,357 customers, purchases 1997-01-01 .. 1998-06-30) ships inside the `lifetimes`
wheel. The split is the classic one: 39 calibration weeks (to 1997-09-30), 39 holdout weeks (to
1998-06-30). The reference is lifetimes' own BetaGeoFitter, fitted on the same split; the actual
holdout purchases are counted here with plain pandas.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmtier.value import clv

pytestmark = pytest.mark.e2e  # shares the session fixture report_run: conftest.SHARED

CAL_END, OBS_END = "1997-09-30", "1998-06-30"
HOLDOUT_DAYS = 273  # 39 weeks


def _cdnow_transactions() -> pd.DataFrame:
    spec = importlib.util.find_spec("lifetimes")
    assert spec is not None, "lifetimes (dev dependency) holds the CDNOW data"
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "CDNOW_sample.txt"
    frame = pd.read_csv(path, sep=r"\s+", header=None, names=["customer_id", "index", "date", "cds", "amount"],
                        dtype={"customer_id": str, "date": str})
    return pd.DataFrame({"customer_id": frame["customer_id"],
                         "purchase_date": pd.to_datetime(frame["date"], format="%Y%m%d"),
                         "purchase_value": frame["amount"]})


@pytest.fixture(scope="module")
def cdnow_check():
    transactions = _cdnow_transactions()
    summary = clv.calibration_holdout_summary(transactions, CAL_END, OBS_END)
    customers, table, fit = clv.holdout_check(summary, HOLDOUT_DAYS)
    return transactions, customers, table, fit


def test_actual_holdout_purchases_match_a_direct_count(cdnow_check):
    transactions, customers, table, _ = cdnow_check
    days = transactions[["customer_id", "purchase_date"]].drop_duplicates()
    first = days.groupby("customer_id")["purchase_date"].min()
    cohort = first[first <= CAL_END].index
    holdout = days[(days["purchase_date"] > CAL_END) & (days["purchase_date"] <= OBS_END)
                   & days["customer_id"].isin(cohort)]
    expected = holdout.groupby("customer_id").size().reindex(cohort, fill_value=0)
    got = customers.set_index("customer_id")["holdout_purchases"]
    assert len(customers) == len(cohort) == 2357  # CDNOW's cohort bought first in Q1 1997
    pd.testing.assert_series_equal(got.sort_index().astype(int), expected.sort_index().astype(int),
                                   check_names=False)
    total = table.set_index("bucket").loc["all"]
    assert total["actual_purchases"] == expected.sum()
    assert total["customers"] == 2357
    # the calibration table's rows add up to the whole
    buckets = table[table["bucket"] != "all"]
    assert buckets["customers"].sum() == 2357
    assert buckets["actual_purchases"].sum() == pytest.approx(expected.sum())
    assert buckets["predicted_purchases"].sum() == pytest.approx(total["predicted_purchases"])


def _reference_summary(transactions: pd.DataFrame) -> pd.DataFrame:
    """Calibration summary counted here (lifetimes' own calibration_and_holdout_data does not run on
    pandas 3): purchase days, first and last purchase day up to the calibration end."""
    days = transactions[["customer_id", "purchase_date"]].drop_duplicates()
    cal = days[days["purchase_date"] <= CAL_END].groupby("customer_id")["purchase_date"].agg(["min", "max", "size"])
    end = pd.Timestamp(CAL_END)
    return pd.DataFrame({"frequency": cal["size"] - 1, "recency": (cal["max"] - cal["min"]).dt.days / 7,
                         "T": (end - cal["min"]).dt.days / 7}, index=cal.index)


def test_predictions_equal_lifetimes_on_the_same_split(cdnow_check):
    from lifetimes import BetaGeoFitter

    transactions, customers, _, fit = cdnow_check
    ref = _reference_summary(transactions)
    bgf = BetaGeoFitter(penalizer_coef=0.0)
    bgf.fit(ref["frequency"], ref["recency"], ref["T"])
    reference = bgf.conditional_expected_number_of_purchases_up_to_time(
        HOLDOUT_DAYS / 7, ref["frequency"], ref["recency"], ref["T"])
    ours = customers.set_index("customer_id").loc[ref.index]
    np.testing.assert_array_equal(ours["frequency"].to_numpy(), ref["frequency"].to_numpy())
    np.testing.assert_allclose(ours["T_days"].to_numpy() / 7, ref["T"].to_numpy())
    np.testing.assert_allclose(ours["predicted_purchases"].to_numpy(), np.asarray(reference), rtol=1e-3)
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fit, name) == pytest.approx(bgf.params_[name], rel=1e-3)
    # not a degenerate comparison: predictions spread over customers, and the model is close in total
    assert np.std(np.asarray(reference)) > 0.1
    assert ours["predicted_purchases"].sum() == pytest.approx(ours["holdout_purchases"].sum(), rel=0.25)


def test_model_check_refuses_a_split_without_holdout():
    transactions = _cdnow_transactions()
    with pytest.raises(ValueError, match="must be after"):
        clv.calibration_holdout_summary(transactions, OBS_END, CAL_END)


def test_check_model_command_matches_the_published_table(report_run):
    """`crmtier check-model` on a real DagRun's warehouse gives the table the run published."""
    import json
    import os
    import subprocess
    import sys

    import duckdb

    assert report_run.exit_code == 0, report_run.output
    env = {**os.environ, "CRMTIER_HOME": str(report_run.home)}
    proc = subprocess.run([sys.executable, "-m", "crmtier.cli", "check-model", "--as-of", report_run.as_of,
                           "--holdout-days", "90", "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = {r["bucket"]: r for r in json.loads(proc.stdout)["table"]}
    con = duckdb.connect(str(report_run.snapshot), read_only=True)
    try:
        published = con.execute("select * from clv_holdout_check").df().set_index("bucket")
    finally:
        con.close()
    assert (published["model_status"] == "fitted").all()
    assert set(got) == set(published.index)
    for bucket, row in published.iterrows():
        assert got[bucket]["customers"] == row["customers"]
        assert got[bucket]["actual_purchases"] == row["actual_purchases"]
        assert got[bucket]["predicted_purchases"] == pytest.approx(row["predicted_purchases"], rel=1e-9)
    later = subprocess.run([sys.executable, "-m", "crmtier.cli", "check-model", "--as-of", "2026-12-31"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert later.returncode == 1 and "not over yet" in later.stderr


def test_the_duckdb_summary_the_dbt_model_uses_equals_the_pandas_one():
    """clv_holdout_check reduces the purchase days in DuckDB (millions of rows at 1M customers); it must
    give the rows the pandas reference gives, the CDNOW days split at the same dates."""
    import duckdb

    transactions = _cdnow_transactions()
    expected = clv.calibration_holdout_summary(transactions, CAL_END, OBS_END)
    con = duckdb.connect()
    try:
        got = clv.calibration_holdout_summary_in_duckdb(con.from_df(transactions), CAL_END, OBS_END)
    finally:
        con.close()
    assert len(expected) > 1000
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12)
    with pytest.raises(ValueError, match="must be after"):
        clv.calibration_holdout_summary_in_duckdb(None, OBS_END, CAL_END)
