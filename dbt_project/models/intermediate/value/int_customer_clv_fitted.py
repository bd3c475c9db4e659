"""BG/NBD + Gamma-Gamma fitted once per as-of date (crmtier.value.clv.score_customers).

A Python model materialises one table, and the fits and the per-customer scores must come from
the same fit, so this model returns a long table: one `fit` row per model (bg_nbd, gamma_gamma)
and one `customer` row per buyer. The SQL marts `clv_model_fits` and `customer_clv` split it.

Inputs come from `int_customer_purchase_summary` (all purchase history up to the as-of date);
this model only fits. Settings are dbt vars, passed through the model config in
`_value__models.yml` (a Python model cannot call `var()`).

When the data are too thin (too few buyers or repeat buyers, history too short, no convergence)
every customer row gets model_status `fallback_rules_only`, the fit rows say why
(converged = false + message), and a line in the run log says so. Nothing fails.
"""
import os
import time

import pandas as pd

FIT_COLUMNS = ["model", "params", "log_likelihood", "n_customers", "converged", "message"]
SCORE_COLUMNS = [
    "customer_id", "p_alive", "expected_purchases_90d", "expected_order_value", "clv",
    "is_one_time_buyer", "in_gamma_gamma", "model_status",
]
DTYPES = {
    "record_type": "string",
    "customer_id": "string",
    "p_alive": "Float64",
    "expected_purchases_90d": "Float64",
    "expected_order_value": "Float64",
    "clv": "Float64",
    "is_one_time_buyer": "boolean",
    "in_gamma_gamma": "boolean",
    "model_status": "string",
    "model": "string",
    "params": "string",
    "log_likelihood": "Float64",
    "n_customers": "Int64",
    "converged": "boolean",
    "message": "string",
}


def _short_history(summary: pd.DataFrame, min_history_days: int) -> str | None:
    """A reason to skip the fit when the observed history is shorter than the configured minimum."""
    if summary.empty:
        return None  # score_customers reports "too few customers"
    history_days = int(summary["T_days"].max())
    if history_days < min_history_days:
        return (f"history too short: first purchase {history_days} days before the as-of date "
                f"< clv_min_history_days {min_history_days}")
    return None


def model(dbt, session):
    dbt.config(materialized="table")
    from crmtier.value.clv import MODEL_STATUS_FALLBACK, score_customers

    horizon_days = float(dbt.config.get("clv_horizon_days"))
    discount_rate_annual = float(dbt.config.get("clv_discount_rate_annual"))
    min_customers = int(dbt.config.get("clv_min_customers"))
    min_repeat_buyers = int(dbt.config.get("clv_min_repeat_buyers"))
    min_history_days = int(dbt.config.get("clv_min_history_days"))
    penalizer = float(dbt.config.get("clv_penalizer"))

    # dbt finds refs by parsing the code: keep the call on its own
    purchase_summary = dbt.ref("int_customer_purchase_summary").df()
    summary = (
        purchase_summary[["customer_id", "frequency", "recency_days", "t_days", "monetary_value"]]
        .rename(columns={"t_days": "T_days"})
        .sort_values("customer_id", kind="stable")  # same input order, same fit: rebuilds agree
        .reset_index(drop=True)
    )

    # for the log line only (the as-of date is in the environment, see macros/as_of.sql)
    as_of_date = (pd.Timestamp(purchase_summary["as_of_date"].iloc[0]).date().isoformat() if len(purchase_summary)
                  else os.environ.get("CRMTIER_AS_OF_DATE", "as-of date unknown"))

    too_short = _short_history(summary, min_history_days)
    started = time.perf_counter()
    scores, fits = score_customers(
        summary,
        horizon_days=horizon_days,
        discount_rate_annual=discount_rate_annual,
        expected_purchases_days=90,  # the output column is expected_purchases_90d
        # a history too short to fit: ask for more customers than there are, so nothing is fitted
        min_customers=len(summary) + 1 if too_short else min_customers,
        min_repeat_buyers=min_repeat_buyers,
        penalizer=penalizer,
    )
    fit_seconds = time.perf_counter() - started
    if too_short:
        fits["message"] = too_short

    fitted = bool(len(scores)) and bool((scores["model_status"] != MODEL_STATUS_FALLBACK).all())
    fitted = fitted and bool(fits["converged"].all())
    summary_line = "; ".join(
        f"{row.model}: converged={row.converged} customers={row.n_customers} ({row.message})"
        for row in fits.itertuples()
    )
    if fitted:
        print(f"crmtier clv [{as_of_date}]: models fitted on {len(summary)} buyers in "
              f"{fit_seconds:.2f} s; {summary_line}", flush=True)
    else:
        print(f"crmtier clv [{as_of_date}]: WARNING model fell back to rules only "
              f"(model_status={MODEL_STATUS_FALLBACK}); {summary_line}", flush=True)

    fit_rows = fits[FIT_COLUMNS].assign(record_type="fit")
    customer_rows = scores[SCORE_COLUMNS].assign(record_type="customer")
    long = pd.concat([fit_rows, customer_rows], ignore_index=True, sort=False)
    long = long.reindex(columns=list(DTYPES))
    return long.astype(DTYPES)
