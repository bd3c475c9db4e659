"""Amounts in the generic layout: exact plain decimals only (ingest's own DuckDB path)."""
from __future__ import annotations

import duckdb
import pytest

from crmtier.ingest.landing import ingest_landing
from tests.conftest import write_csv

pytestmark = pytest.mark.integration

ORDERS = "order_id,customer_id,order_time,amount,currency,status"


def test_generic_amounts_are_plain_exact_decimals(crm_home):
    landing, db = crm_home / "landing", crm_home / "warehouse" / "crm.duckdb"
    write_csv(landing / "generic/orders/a.csv", ORDERS, [
        "O1,C1,2011-01-01 10:00:00,1_000,GBP,paid",
        "O2,C1,2011-01-01 10:00:00,1e5,GBP,paid",
        "O3,C1,2011-01-01 10:00:00,1.005,GBP,paid",
        "O4,C1,2011-01-01 10:00:00,1.00005,GBP,paid",
        "O5,C1,2011-01-01 10:00:00,0x10,GBP,paid",
        "O6,C1,2011-01-01 10:00:00,-5.00,GBP,refunded",  # generic files carry no credit notes
        "O7,C1,2011-01-01 10:00:00,12,GBP,paid",
    ])
    (outcome,) = ingest_landing(db, landing).files
    assert (outcome.rows_in, outcome.rows_loaded, outcome.rows_quarantined) == (7, 2, 5)
    con = duckdb.connect(str(db), read_only=True)
    try:
        reasons = dict(con.execute("select _row_number, split_part(reason, ':', 1) from raw.quarantine").fetchall())
        loaded = con.execute("select order_id, amount, cast(amount as decimal(18, 4))::varchar from raw.orders order by 1").fetchall()
    finally:
        con.close()
    assert reasons == {1: "non_numeric_amount", 2: "non_numeric_amount", 4: "non_numeric_amount",
                       5: "non_numeric_amount", 6: "negative_amount"}
    assert loaded == [("O3", "1.005", "1.0050"), ("O7", "12", "12.0000")]  # 1.005 stays 1.005


def test_raw_gate_checks_amounts_with_the_layout_pattern():
    from pathlib import Path

    from crmtier.layout import AMOUNT_PATTERN

    gates = (Path(__file__).resolve().parents[1] / "expectations" / "gates.yml").read_text(encoding="utf-8")
    assert f"regexp_full_match(trim(amount), '{AMOUNT_PATTERN}')" in gates  # one definition, checked
