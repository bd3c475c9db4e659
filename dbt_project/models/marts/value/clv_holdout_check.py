"""Does the CLV model predict? The classic calibration/holdout check, on every run.

BG/NBD is fitted on the purchase days up to the as-of date minus `clv_check_holdout_days` (the
calibration period) and predicts each customer's purchase days in the holdout window up to the
as-of date; the table compares that with what happened (crmtier.value.clv.holdout_check): one row per
number of repeat purchases in the calibration period (0..6, 7+) and an `all` row with the totals
and the mean absolute error. When the calibration period is too thin to fit (fewer than
clv_min_customers buyers or clv_min_repeat_buyers repeat buyers, or no convergence), one `all` row
says why (model_status fallback_rules_only) and the run goes on.
"""
import json
import os

import pandas as pd

COLUMNS = ["as_of_date", "calibration_end_date", "holdout_days", "bucket", "bucket_order", "customers",
           "predicted_purchases", "actual_purchases", "predicted_mean", "actual_mean", "mean_absolute_error",
           "model_status", "params", "message"]


def model(dbt, session):
    dbt.config(materialized="table")
    from crmtier.value.clv import (
        MODEL_STATUS_FALLBACK,
        MODEL_STATUS_FITTED,
        calibration_holdout_summary_in_duckdb,
        holdout_check,
    )

    holdout_days = int(dbt.config.get("clv_check_holdout_days"))
    min_customers = int(dbt.config.get("clv_min_customers"))
    min_repeat_buyers = int(dbt.config.get("clv_min_repeat_buyers"))
    penalizer = float(dbt.config.get("clv_penalizer"))

    # dbt finds refs by parsing the code: keep the call on its own
    purchase_days = dbt.ref("int_customer_purchase_days")
    as_of = pd.Timestamp(os.environ.get("CRMTIER_AS_OF_DATE") or purchase_days.max("as_of_date").fetchone()[0])
    calibration_end = as_of - pd.Timedelta(days=holdout_days)
    base = {"as_of_date": as_of.date(), "calibration_end_date": calibration_end.date(), "holdout_days": holdout_days}

    # reduced to one row per customer by DuckDB: millions of purchase days never become a pandas frame
    summary = calibration_holdout_summary_in_duckdb(purchase_days, calibration_end, as_of)
    repeat_buyers = int((summary["frequency"] > 0).sum())
    problem = None
    if len(summary) < min_customers:
        problem = f"too few buyers in the calibration period: {len(summary)} < clv_min_customers {min_customers}"
    elif repeat_buyers < min_repeat_buyers:
        problem = (f"too few repeat buyers in the calibration period: {repeat_buyers} < clv_min_repeat_buyers "
                   f"{min_repeat_buyers}")
    if problem is None:
        try:
            _, table, fit = holdout_check(summary, holdout_days, penalizer=penalizer)
        except ValueError as exc:
            problem = str(exc)
    if problem is not None:
        print(f"crmtier clv check [{as_of.date()}]: not checked: {problem}", flush=True)
        row = {**base, "bucket": "all", "bucket_order": 99, "customers": len(summary),
               "model_status": MODEL_STATUS_FALLBACK, "params": None, "message": problem}
        return pd.DataFrame([row]).reindex(columns=COLUMNS).astype({"customers": "Int64", "bucket_order": "Int64"})
    params = json.dumps({"r": fit.r, "alpha": fit.alpha, "a": fit.a, "b": fit.b, "time_unit": "week"})
    total = table[table["bucket"] == "all"].iloc[0]
    print(f"crmtier clv check [{as_of.date()}]: calibration to {calibration_end.date()}, holdout {holdout_days} days: "
          f"predicted {total['predicted_purchases']:.1f} vs actual {total['actual_purchases']:.0f} purchase days, "
          f"MAE {total['mean_absolute_error']:.3f}", flush=True)
    out = table.assign(**base, model_status=MODEL_STATUS_FITTED, params=params, message=fit.message)
    return out.reindex(columns=COLUMNS)
