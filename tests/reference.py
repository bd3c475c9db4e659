"""An independent pandas computation of status and tiers from the landing CSVs.

Written from the rules in the README (not from the dbt SQL), so the end-to-end test
compares two implementations of the same specification.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

STATUSES = {"paid", "refunded", "cancelled"}
EVENT_TYPES = {"web_visit", "page_view", "login", "email_open", "email_click", "campaign_join",
               "social_interaction", "support_ticket"}
FX = {"CNY": 1.0, "USD": 7.10, "EUR": 7.70, "HKD": 0.91, "GBP": 9.00, "JPY": 0.047}


def _read(landing: Path, entity: str) -> pd.DataFrame:
    frames = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in sorted((landing / "generic" / entity).glob("*.csv"))]
    return pd.concat(frames, ignore_index=True)


def _valid(frame: pd.DataFrame, key: str, checks: pd.Series) -> pd.DataFrame:
    frame = frame[checks & frame[key].str.strip().ne("")]
    return frame[~frame[key].duplicated(keep="first")]


def reference_outputs(landing: Path, as_of: str, active_days=30, dormant_days=180, new_days=30,
                      cuts=(("vip", 0.95), ("high", 0.80), ("medium", 0.50), ("low", 0.0))) -> pd.DataFrame:
    as_of_day = pd.Timestamp(as_of)
    end = as_of_day + pd.Timedelta(days=1)

    customers = _read(landing, "customers")
    created = pd.to_datetime(customers["created_at"], errors="coerce", format="mixed")
    customers = _valid(customers.assign(created=created), "customer_id", created.notna())
    customers = customers[customers["created"] < end]

    orders = _read(landing, "orders")
    amount = pd.to_numeric(orders["amount"], errors="coerce")
    when = pd.to_datetime(orders["order_time"], errors="coerce", format="mixed")
    ok = amount.notna() & (amount >= 0) & when.notna() & orders["status"].str.lower().isin(STATUSES) \
        & orders["customer_id"].str.strip().ne("")
    orders = _valid(orders.assign(amount_n=amount, when=when), "order_id", ok)
    orders = orders[orders["when"] < end].copy()
    orders["day"] = orders["when"].dt.normalize()
    orders["paid"] = orders["status"].str.lower().eq("paid")
    currency = orders["currency"].replace("", "CNY").str.upper()
    orders["net"] = np.where(orders["paid"], orders["amount_n"] * currency.map(FX), 0.0)

    events = _read(landing, "events")
    when = pd.to_datetime(events["event_time"], errors="coerce", format="mixed")
    ok = when.notna() & events["event_type"].str.lower().isin(EVENT_TYPES) & events["customer_id"].str.strip().ne("")
    events = events.assign(when=when)[ok]
    events = pd.concat([events[events["event_id"].str.strip().eq("")],
                        events[events["event_id"].str.strip().ne("")].drop_duplicates("event_id")])
    events = events[events["when"] < end]

    per = pd.DataFrame({"customer_id": customers["customer_id"].str.strip(),
                        "tenure": (as_of_day - customers["created"].dt.normalize()).dt.days})
    paid = orders[orders["paid"]].groupby("customer_id").agg(
        frequency=("order_id", "size"), monetary=("net", "sum"), last_paid=("day", "max"))
    last_order = orders.groupby("customer_id")["day"].max().rename("last_order")
    last_event = events.assign(day=events["when"].dt.normalize()).groupby("customer_id")["day"].max().rename("last_event")
    per = per.join(paid, on="customer_id").join(last_order, on="customer_id").join(last_event, on="customer_id")
    per["last_interaction"] = per[["last_order", "last_event"]].max(axis=1)
    per["days_since"] = (as_of_day - per["last_interaction"]).dt.days

    def status(row):
        if row.tenure < new_days:
            return "new"
        if not row.frequency > 0:
            return "prospect"
        if row.days_since <= active_days:
            return "active"
        if row.days_since <= dormant_days:
            return "dormant"
        return "churned"

    per["status"] = per.apply(status, axis=1)

    buyers = per[per["frequency"] > 0].copy()
    buyers["recency"] = (as_of_day - buyers["last_paid"]).dt.days
    n = len(buyers)

    def percentile(values: pd.Series, higher_is_better: bool) -> pd.Series:
        key = values if higher_is_better else -values
        below = key.rank(method="min") - 1
        ties = key.map(key.value_counts())
        return (below + 0.5 * ties) / n

    if n:
        r = percentile(buyers["recency"], False)
        f = percentile(buyers["frequency"], True)
        m = percentile(buyers["monetary"].round(6), True)
        buyers["value_score"] = ((r + f + m) / 3).round(6)
        buyers["percentile"] = (buyers["value_score"].rank(method="min") - 1) / n

        def tier(p):
            for name, cut in cuts:
                if p >= cut - 1e-12:
                    return name
            return "low"

        buyers["tier"] = buyers["percentile"].map(tier)
    per = per.join(buyers[["tier"]] if n else pd.DataFrame(columns=["tier"]), how="left")
    per["tier"] = np.where(per["tenure"] < new_days, "new", per["tier"].fillna("low"))
    return per[["customer_id", "status", "tier"]].reset_index(drop=True)


def counts(frame: pd.DataFrame, column: str) -> dict[str, int]:
    return {k: int(v) for k, v in frame[column].value_counts().sort_index().items()}

