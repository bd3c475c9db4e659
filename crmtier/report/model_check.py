"""`crmtier check-model --as-of DATE [--holdout-days N]`: the CLV model's calibration/holdout check
on demand (every run also publishes it as marts.clv_holdout_check, with var clv_check_holdout_days).

Reads the purchase days from the warehouse, read-only (intermediate.int_customer_purchase_days:
only purchases known by the last run; a run in progress holds the write lock, so try again after it).
"""
from __future__ import annotations

import json
import sys

from crmtier.duckdb_config import duckdb_config
from crmtier.paths import get_paths


def purchase_days(warehouse=None):
    import duckdb

    con = duckdb.connect(str(warehouse or get_paths().warehouse), read_only=True, config=duckdb_config())
    try:
        return con.execute("select customer_id, purchase_date, cast(purchase_value as double) as purchase_value, "
                           "as_of_date from intermediate.int_customer_purchase_days").df()
    finally:
        con.close()


def check(as_of: str, holdout_days: int, warehouse=None) -> dict:
    import pandas as pd

    from crmtier.value.clv import calibration_holdout_summary, holdout_check

    days = purchase_days(warehouse)
    end = pd.Timestamp(as_of)
    if days.empty:
        raise ValueError("the warehouse has no purchases: run the pipeline first")
    known = pd.Timestamp(days["as_of_date"].iloc[0])  # the last run's as-of date: purchases known up to it
    if end > known:
        raise ValueError(f"the warehouse knows purchases up to the last run's as-of date {known.date()}: "
                         f"the holdout ending {as_of} is not over yet")
    calibration_end = end - pd.Timedelta(days=holdout_days)
    summary = calibration_holdout_summary(days, calibration_end, end)
    _, table, fit = holdout_check(summary, holdout_days)
    return {"as_of_date": as_of, "calibration_end_date": calibration_end.date().isoformat(),
            "holdout_days": holdout_days, "latest_purchase_known": str(pd.Timestamp(known).date()),
            "bg_nbd": {"r": fit.r, "alpha_weeks": fit.alpha, "a": fit.a, "b": fit.b,
                       "log_likelihood": fit.log_likelihood, "message": fit.message},
            "table": table.to_dict(orient="records")}


def main(as_of: str, holdout_days: int, as_json: bool) -> int:
    try:
        result = check(as_of, holdout_days)
    except (ValueError, OSError) as exc:
        print(f"crmtier check-model: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # duckdb: no warehouse yet, or a run holds the lock
        print(f"crmtier check-model: cannot read the warehouse: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(result, indent=2))
        return 0
    fit = result["bg_nbd"]
    print(f"CLV model check: BG/NBD fitted on purchases up to {result['calibration_end_date']}, "
          f"predicting the {holdout_days} days to {as_of}")
    print(f"  r={fit['r']:.4g} alpha={fit['alpha_weeks']:.4g} (weeks) a={fit['a']:.4g} b={fit['b']:.4g}; "
          f"{fit['message']}")
    print(f"  {'repeat purchases':>16s} {'customers':>9s} {'predicted':>10s} {'actual':>10s} {'pred/cust':>9s} "
          f"{'act/cust':>9s} {'MAE':>7s}")
    for r in result["table"]:
        print(f"  {r['bucket']:>16s} {r['customers']:>9,d} {r['predicted_purchases']:>10.1f} "
              f"{r['actual_purchases']:>10.0f} {r['predicted_mean']:>9.3f} {r['actual_mean']:>9.3f} "
              f"{r['mean_absolute_error']:>7.3f}")
    return 0
