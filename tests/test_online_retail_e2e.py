"""The README walkthrough: an invoice-level retail export landed unchanged with the shipped mapping
(`crmtier/sources/online_retail.yaml`), no customers file, through the real DAG as of 2011-12-09.

The file has the public "Online Retail" shape: InvoiceNo, StockCode, Description, Quantity,
InvoiceDate (US style `12/1/2010 8:26`), UnitPrice, CustomerID, Country; invoices repeated over
several lines (one over two timestamps), credit notes `C...` with negative quantities, rows
without a CustomerID, a customer whose returns exceed purchases, and numbers that must not load
(`1_000`, `1e5`). Per-customer net spend, recency, frequency and status are compared with an
independent pandas computation written here from the README's rules (not from the SQL).
"""
from __future__ import annotations

import csv
import re
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from crmtier.cli import run_dag
from crmtier.paths import get_paths

pytestmark = pytest.mark.e2e

AS_OF = "2011-12-09"
HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
ROWS = [
    # 17850: two invoices on the first day (the first one over two lines), more in 2011: active
    ["536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "6", "12/1/2010 8:26", "2.55", "17850", "United Kingdom"],
    ["536365", "71053", "WHITE METAL LANTERN", "6", "12/1/2010 8:26", "3.39", "17850", "United Kingdom"],
    ["536366", "22633", "HAND WARMER UNION JACK", "6", "12/1/2010 8:28", "1.85", "17850", "United Kingdom"],
    ["541200", "22752", "SET 7 BABUSHKA NESTING BOXES", "2", "1/14/2011 10:05", "7.65", "17850", "United Kingdom"],
    ["580001", "21730", "GLASS STAR FROSTED T-LIGHT HOLDER", "3", "12/2/2011 9:10", "4.25", "17850", "United Kingdom"],
    # 14527: purchases and a credit note (the real C536379: discount, quantity -1)
    ["536370", "22728", "ALARM CLOCK BAKELIKE PINK", "24", "12/1/2010 8:45", "3.75", "14527", "United Kingdom"],
    ["C536379", "D", "Discount", "-1", "12/1/2010 9:41", "27.50", "14527", "United Kingdom"],
    ["560123", "22727", "ALARM CLOCK BAKELIKE RED", "4", "7/20/2011 14:02", "3.75", "14527", "United Kingdom"],
    ["C560500", "22727", "ALARM CLOCK BAKELIKE RED", "-2", "12/5/2011 11:00", "3.75", "14527", "United Kingdom"],
    # 13047: one invoice repeated over two timestamps (order time = the earliest line)
    ["536367", "84879", "ASSORTED COLOUR BIRD ORNAMENT", "32", "12/1/2010 8:34", "1.69", "13047", "United Kingdom"],
    ["536367", "22745", "POPPY'S PLAYHOUSE BEDROOM", "6", "12/1/2010 8:35", "2.10", "13047", "United Kingdom"],
    ["552000", "22748", "POPPY'S PLAYHOUSE KITCHEN", "6", "5/6/2011 12:00", "2.10", "13047", "United Kingdom"],
    # 12583: returns exceed purchases (a return of something bought before the export began)
    ["562000", "22326", "ROUND SNACK BOXES SET OF4 WOODLAND", "2", "8/1/2011 10:00", "2.95", "12583", "France"],
    ["C570000", "22326", "ROUND SNACK BOXES SET OF4 WOODLAND", "-12", "10/7/2011 10:00", "2.95", "12583", "France"],
    # 15100: three invoices in Dec 2010 and one in March: churned; an exact 1.005 line (3 x 0.335)
    ["536374", "21258", "VICTORIAN SEWING BOX LARGE", "32", "12/1/2010 9:09", "10.95", "15100", "United Kingdom"],
    ["536380", "22961", "JAM MAKING SET PRINTED", "3", "12/1/2010 9:41", "0.335", "15100", "United Kingdom"],
    ["536390", "22960", "JAM MAKING SET WITH JARS", "1", "12/1/2010 10:19", "4.25", "15100", "United Kingdom"],
    ["546000", "22960", "JAM MAKING SET WITH JARS", "2", "3/8/2011 10:19", "4.25", "15100", "United Kingdom"],
    # 12431: first purchase late November 2011: new
    ["579000", "22423", "REGENCY CAKESTAND 3 TIER", "1", "11/25/2011 15:30", "12.75", "12431", "Australia"],
    # 16029: only a credit note: no purchase, a prospect
    ["C565000", "22423", "REGENCY CAKESTAND 3 TIER", "-1", "9/1/2011 11:11", "12.75", "16029", "United Kingdom"],
    # 12748: dormant (last purchase in August), a line with 1_000 and one with 1e5: not numbers
    ["563000", "23084", "RABBIT NIGHT LIGHT", "12", "8/15/2011 9:00", "1.79", "12748", "United Kingdom"],
    ["563000", "23085", "ANTIQUE SILVER BAUBLE LAMP", "1_000", "8/15/2011 9:00", "1.79", "12748", "United Kingdom"],
    ["563001", "23086", "ZINC STAR T-LIGHT HOLDER", "1e5", "8/16/2011 9:00", "0.85", "12748", "United Kingdom"],
    # a purchase line with a negative quantity that is no credit note: quarantined
    ["563002", "23087", "DAMAGED", "-4", "8/16/2011 9:05", "0.85", "12748", "United Kingdom"],
    # an invoice after the as-of date: not counted
    ["581000", "22423", "REGENCY CAKESTAND 3 TIER", "2", "12/9/2011 12:50", "12.75", "12748", "United Kingdom"],
    # anonymous sales (no CustomerID): quarantined, never one pseudo-customer
    ["536544", "21773", "DECORATIVE ROSE BATHROOM BOTTLE", "1", "12/1/2010 14:32", "2.51", "", "United Kingdom"],
    ["536544", "21774", "DECORATIVE CATS BATHROOM BOTTLE", "2", "12/1/2010 14:32", "2.51", "", "United Kingdom"],
    ["C537000", "M", "Manual", "-1", "12/3/2010 10:00", "5.00", "", "United Kingdom"],
    ["575000", "23240", "SET OF 4 KNICK KNACK TINS DOILEY", "6", "11/8/2011 12:00", "4.15", "", "United Kingdom"],
]


def write_export(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(HEADER)
        writer.writerows(ROWS)
    return path


def fx_rate(currency: str) -> Decimal:
    seed = Path(__file__).resolve().parents[1] / "dbt_project" / "seeds" / "fx_rates.csv"
    rates = pd.read_csv(seed, dtype=str).set_index("currency")["rate_to_base"]
    return Decimal(rates[currency])


# ------------------------------------------------------------------------------------------
# the independent computation (README rules; pandas on the raw CSV)

PLAIN = re.compile(r"-?\d+(\.\d+)?")


def reference(path: Path, as_of: str, active_days=30, dormant_days=180, new_days=30) -> tuple[pd.DataFrame, dict]:
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    day = pd.Timestamp(as_of)
    numbers_ok = raw["Quantity"].str.fullmatch(PLAIN.pattern) & raw["UnitPrice"].str.fullmatch(PLAIN.pattern)
    has_customer = raw["CustomerID"].str.strip().ne("")
    lines = raw[numbers_ok & has_customer].copy()
    lines["amount"] = [Decimal(q) * Decimal(p) for q, p in zip(lines["Quantity"], lines["UnitPrice"])]
    lines["is_credit_note"] = lines["InvoiceNo"].str.startswith("C")
    lines = lines[lines["is_credit_note"] | (lines["amount"] >= 0)]  # a purchase cannot be negative
    counts = {"rows_in": len(raw), "loaded": len(lines), "quarantined": len(raw) - len(lines)}
    lines["when"] = pd.to_datetime(lines["InvoiceDate"], format="%m/%d/%Y %H:%M")

    invoices = lines.groupby("InvoiceNo").agg(
        customer=("CustomerID", "first"), when=("when", "min"), amount=("amount", "sum"),
        is_credit_note=("is_credit_note", "first"))
    # a customer exists from its first invoice (no customers file)
    created = invoices.groupby("customer")["when"].min()
    known = invoices[invoices["when"] < day + pd.Timedelta(days=1)]
    out = []
    for customer, first in created.items():
        if first >= day + pd.Timedelta(days=1):
            continue
        mine = known[known["customer"] == customer]
        purchases = mine[~mine["is_credit_note"]]
        returns = mine[mine["is_credit_note"]]
        net = sum(purchases["amount"], Decimal(0)) + sum(returns["amount"], Decimal(0))
        last_purchase = purchases["when"].max().normalize() if len(purchases) else None
        tenure = (day - first.normalize()).days
        if tenure < new_days:
            status = "new"
        elif len(purchases) == 0:
            status = "prospect"
        else:
            # returns are not interactions (default); there are no events
            since = (day - last_purchase).days
            status = "active" if since <= active_days else "dormant" if since <= dormant_days else "churned"
        out.append({
            "customer_id": customer,
            "net_spend_gbp": net,
            "frequency": len(purchases),
            "recency_days": (day - last_purchase).days if last_purchase is not None else None,
            "status": status,
            "returns_exceed": len(returns) > 0 and net <= 0,
        })
    return pd.DataFrame(out).set_index("customer_id").sort_index(), counts


# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def retail_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("retail") / "var"
    home.mkdir()
    mp = pytest.MonkeyPatch()
    mp.setenv("CRMTIER_HOME", str(home))
    for var in ("CRMTIER_LANDING", "CRMTIER_WAREHOUSE", "CRMTIER_PUBLISH", "AIRFLOW_HOME", "CRMTIER_SOURCES_DIR"):
        mp.delenv(var, raising=False)
    landing = home / "landing"
    export = write_export(landing / "online_retail" / "orders" / "Online Retail.csv")
    code = run_dag(AS_OF, landing, quiet=True)
    log = (home / "logs" / f"run-{AS_OF}.log").read_text()
    paths = get_paths()
    yield {"code": code, "log": log, "export": export, "warehouse": paths.warehouse, "publish": paths.publish}
    mp.undo()


def query(db: Path, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def test_dag_run_succeeds(retail_run):
    assert retail_run["code"] == 0, retail_run["log"][-4000:]


def test_every_line_reconciled_and_customers_derived(retail_run):
    assert retail_run["code"] == 0
    expected, counts = reference(retail_run["export"], AS_OF)
    log = query(retail_run["warehouse"], "select entity, status, rows_in, rows_loaded, rows_quarantined from raw.load_log")
    orders = log[log["entity"] == "orders"].iloc[0]
    assert (orders["status"], orders["rows_in"], orders["rows_loaded"], orders["rows_quarantined"]) == (
        "loaded", counts["rows_in"], counts["loaded"], counts["quarantined"])
    assert (log["rows_in"] == log["rows_loaded"] + log["rows_quarantined"]).all()
    customers = log[log["entity"] == "customers"].iloc[0]  # derived from the orders: one per CustomerID
    assert customers["rows_loaded"] == len(expected) == 8

    reasons = query(retail_run["warehouse"], "select _row_number, reason from raw.quarantine order by 1")
    by_row = dict(zip(reasons["_row_number"], reasons["reason"].str.split(":").str[0]))
    assert by_row == {22: "unparseable_amount", 23: "unparseable_amount", 24: "negative_amount",
                      26: "missing_id", 27: "missing_id", 28: "missing_id", 29: "missing_id"}
    # no pseudo-customer for the anonymous rows
    assert query(retail_run["warehouse"], "select count(*) as n from raw.orders where coalesce(customer_id, '') = ''")["n"][0] == 0


def test_lines_are_one_order_and_amounts_exact(retail_run):
    assert retail_run["code"] == 0
    staged = query(retail_run["warehouse"], """select order_id, amount::varchar as amount, ordered_at, line_count, is_return
                                               from staging.stg_crm__orders order by order_id""").set_index("order_id")
    assert staged.loc["536365", "amount"] == "35.6400" and staged.loc["536365", "line_count"] == 2
    assert str(staged.loc["536367", "ordered_at"]) == "2010-12-01 08:34:00"  # the earliest line
    assert staged.loc["536380", "amount"] == "1.0050"  # 3 x 0.335 exactly, not 1.01
    assert staged.loc["C536379", "amount"] == "-27.5000" and bool(staged.loc["C536379", "is_return"])
    assert "563000" in staged.index and staged.loc["563000", "line_count"] == 1  # the 1_000 line is out


def test_net_spend_recency_frequency_status_match_reference(retail_run):
    assert retail_run["code"] == 0
    expected, _ = reference(retail_run["export"], AS_OF)
    got = query(retail_run["warehouse"], f"""
        select behaviour.customer_id, behaviour.net_spend::varchar as net_spend, behaviour.paid_orders,
               behaviour.days_since_last_purchase, behaviour.has_returns_exceeding_purchases, status.status
        from marts.fct_customer_behaviour as behaviour
        join marts.customer_status as status using (customer_id)
        where behaviour.as_of_date = date '{AS_OF}'
        order by 1""").set_index("customer_id")
    assert sorted(got.index) == sorted(expected.index)
    rate = fx_rate("GBP")
    for customer, row in expected.iterrows():
        mine = got.loc[customer]
        assert Decimal(mine["net_spend"]) == row["net_spend_gbp"] * rate, customer
        assert mine["paid_orders"] == row["frequency"], customer
        if row["recency_days"] is None or pd.isna(row["recency_days"]):
            assert pd.isna(mine["days_since_last_purchase"]), customer
        else:
            assert mine["days_since_last_purchase"] == row["recency_days"], customer
        assert mine["status"] == row["status"], customer
        assert bool(mine["has_returns_exceeding_purchases"]) == row["returns_exceed"], customer
    # the cases this file was written to contain
    assert expected.loc["12583", "returns_exceed"] and expected.loc["12583", "net_spend_gbp"] < 0
    assert set(expected["status"]) == {"active", "dormant", "churned", "new", "prospect"}


def test_returns_exceeding_purchases_are_lowest_tier_with_reason(retail_run):
    assert retail_run["code"] == 0
    tiers = query(retail_run["publish"], "select customer_id, tier, tier_reason from customer_tiers").set_index("customer_id")
    scores = query(retail_run["warehouse"], "select customer_id from marts.customer_value_scores")
    assert tiers.loc["12583", "tier"] == "low"
    assert tiers.loc["12583", "tier_reason"].startswith("returns ")
    assert "12583" not in set(scores["customer_id"])  # not ranked: no net purchase
