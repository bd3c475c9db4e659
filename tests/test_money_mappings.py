"""Mappings for real exports (constants, derived columns, per-column date formats, order lines,
credit notes, declared amount decimals): validated when the mapping loads, applied by
crmtier.ingest.vendor.normalize_file, with every row loaded or quarantined with a reason."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from crmtier.ingest.errors import FileRejected
from crmtier.ingest.mappings import MappingError, load_mapping, load_mapping_file
from crmtier.ingest.vendor import normalize_file

pytestmark = pytest.mark.unit

BASE = """
source: {name}
settings:
  date_order: mdy
entities:
  orders:
{body}
"""


def mapping(tmp_path: Path, body: str, name: str = "shop") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(BASE.format(name=name, body=textwrap.indent(textwrap.dedent(body).strip(), "    ")), encoding="utf-8")
    return path


RETAIL = """
order_lines: true
credit_notes: true
columns:
  order_id: [InvoiceNo]
  customer_id: [CustomerID]
  order_time: [InvoiceDate]
date_formats:
  order_time: ["%m/%d/%Y %H:%M"]
constants:
  currency: GBP
derived:
  amount: Quantity * UnitPrice
  status: refunded when InvoiceNo starts with C else paid
"""


def normalize(tmp_path: Path, body: str, csv_text: str):
    src = mapping(tmp_path, body)
    data = tmp_path / "orders.csv"
    data.write_text(csv_text, encoding="utf-8")
    nf = normalize_file(data, "shop", "orders", search_dirs=[str(src.parent)])
    assert nf.rows_in == len(nf.rows) + len(nf.quarantined)
    return nf


# ---------------------------------------------------------------------------------------------
# validation when the mapping loads: the error names the key


@pytest.mark.parametrize("body,key,message", [
    (RETAIL.replace("Quantity * UnitPrice", "Quantity *"), "entities.orders.derived.amount", "invalid expression"),
    (RETAIL.replace("else paid", "else shipped"), "entities.orders.derived.status", "'shipped' is not a status"),
    (RETAIL.replace("refunded when InvoiceNo starts with C else paid", "refunded when InvoiceNo starts with C"),
     "entities.orders.derived.status", "needs an 'else'"),
    (RETAIL.replace("currency: GBP", "colour: GBP"), "entities.orders.constants.colour", "not a canonical orders column"),
    (RETAIL.replace("  currency: GBP", "  status: shipped").replace("  status: refunded when InvoiceNo starts with C else paid", ""),
     "entities.orders.constants.status", "'shipped' is not a status"),
    (RETAIL.replace("  currency: GBP", "  status: paid"), "entities.orders.derived.status", "also under constants"),
    (RETAIL + "\n  order_id: InvoiceNo", "entities.orders.derived.order_id", "also read from a header"),
    (RETAIL.replace("order_lines: true", "order_lines: yes please"), "entities.orders.order_lines", "true or false"),
    (RETAIL.replace('order_time: ["%m/%d/%Y %H:%M"]', 'amount: ["%m/%d/%Y"]'), "entities.orders.date_formats.amount",
     "not a date or timestamp column"),
    (RETAIL.replace('["%m/%d/%Y %H:%M"]', '["MM/DD/YYYY"]'), "entities.orders.date_formats.order_time",
     "not a strptime format"),
    (RETAIL + "amount_round: 7\n", "entities.orders.amount_round", "number of decimals 0-4"),
])
def test_invalid_mappings_fail_at_load_naming_the_key(tmp_path, body, key, message):
    with pytest.raises(MappingError) as err:
        load_mapping_file(mapping(tmp_path, body))
    assert f"key '{key}'" in str(err.value) and message in str(err.value)


def test_derive_customers_only_for_orders(tmp_path):
    path = tmp_path / "shop.yaml"
    path.write_text("source: shop\nentities:\n  customers:\n    derive_customers: true\n"
                    "    columns: {customer_id: [id]}\n", encoding="utf-8")
    with pytest.raises(MappingError, match="entities.customers.derive_customers.*only orders"):
        load_mapping_file(path)


def test_shipped_retail_mapping_loads():
    em = load_mapping("online_retail").entity("orders")
    assert em.order_lines and em.credit_notes and em.derive_customers
    assert em.constants == {"currency": "GBP"}
    assert em.derived["amount"].columns == {"Quantity", "UnitPrice"}
    assert em.column_date_formats["order_time"][0] == "%m/%d/%Y %H:%M"


# ---------------------------------------------------------------------------------------------
# applying it

HEADER = "InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def test_lines_credit_notes_and_anonymous_rows(tmp_path):
    nf = normalize(tmp_path, RETAIL, HEADER + (
        "536365,85123A,6,12/1/2010 8:26,2.55,17850,United Kingdom\n"
        "536365,71053,6,12/1/2010 8:26,3.39,17850,United Kingdom\n"
        "C536379,D,-1,12/1/2010 9:41,27.50,14527,United Kingdom\n"
        "536544,21773,1,12/1/2010 14:32,2.51,,United Kingdom\n"
        "536380,22961,3,12/1/2010 9:41,0.335,15100,United Kingdom\n"
    ))
    rows = nf.rows.set_index("_row_number")
    assert list(rows.index) == [1, 2, 3, 5]  # both lines of 536365 load (raw keeps lines)
    assert rows.loc[1, "amount"] == "15.30" and rows.loc[2, "amount"] == "20.34"
    assert (rows.loc[3, "amount"], rows.loc[3, "status"]) == ("-27.50", "refunded")  # a credit note
    assert rows.loc[5, "amount"] == "1.005"  # exact, not 1.01
    assert set(rows["currency"]) == {"GBP"} and rows.loc[1, "order_time"] == "2010-12-01 08:26:00"
    # the columns the expressions read stay in _extra with the rest: raw keeps the line as exported
    assert json.loads(rows.loc[1, "_extra"]) == {"StockCode": "85123A", "Quantity": "6", "UnitPrice": "2.55",
                                                 "Country": "United Kingdom"}
    assert nf.quarantined[["_row_number", "reason"]].values.tolist() == [[4, "missing_id: customer_id"]]


def test_numbers_only_in_the_declared_format(tmp_path):
    nf = normalize(tmp_path, RETAIL, HEADER + (
        "1,A,1_000,12/1/2010 8:26,2.55,1,UK\n"
        "2,A,1e5,12/1/2010 8:26,2.55,1,UK\n"
        "3,A,2,12/1/2010 8:26,0.00001,1,UK\n"
        "4,A,-2,12/1/2010 8:26,1.00,1,UK\n"
        "5,A,2,12/1/2010 8:26,1.00,1,UK\n"
    ))
    reasons = dict(nf.quarantined[["_row_number", "reason"]].values.tolist())
    assert reasons[1] == "unparseable_amount: amount = Quantity * UnitPrice (Quantity='1_000' is not a number (plain decimal, separator '.'))"
    assert reasons[2].startswith("unparseable_amount: amount = Quantity * UnitPrice (Quantity='1e5'")
    assert reasons[3].startswith("unparseable_amount: amount='0.00002' (5 decimal places, more than 4")
    assert reasons[4] == "negative_amount: amount='-2.00' (only a credit note, status refunded, may be negative)"
    assert nf.rows["order_id"].tolist() == ["5"]


def test_amount_round_is_declared_and_counted(tmp_path):
    nf = normalize(tmp_path, RETAIL + "amount_round: 2\n", HEADER + (
        "1,A,3,12/1/2010 8:26,0.335,1,UK\n"
        "2,A,2,12/1/2010 8:26,1.25,1,UK\n"
    ))
    rows = nf.rows.set_index("order_id")
    assert rows.loc["1", "amount"] == "1.01" and json.loads(rows.loc["1", "_extra"])["_rounded"] == {"amount": "1.005"}
    assert rows.loc["2", "amount"] == "2.50" and "_rounded" not in (rows.loc["2", "_extra"] or "")
    assert nf.rounded == 1


def test_lines_of_one_order_must_agree(tmp_path):
    nf = normalize(tmp_path, RETAIL, HEADER + (
        "536365,A,6,12/1/2010 8:26,2.55,17850,UK\n"
        "536365,B,6,12/1/2010 8:27,3.39,99999,UK\n"
    ))
    assert nf.rows["_row_number"].tolist() == [1]
    assert nf.quarantined["reason"].tolist() == [
        "conflicting_order_line: 536365: customer_id='99999' (line order: '17850')"]


def test_without_order_lines_a_repeated_id_is_still_a_duplicate(tmp_path):
    nf = normalize(tmp_path, RETAIL.replace("order_lines: true", "order_lines: false"), HEADER + (
        "536365,A,6,12/1/2010 8:26,2.55,17850,UK\n"
        "536365,B,6,12/1/2010 8:26,3.39,17850,UK\n"
    ))
    assert nf.quarantined["reason"].tolist() == ["duplicate_id_in_file: 536365"]


def test_without_credit_notes_a_negative_amount_is_quarantined(tmp_path):
    nf = normalize(tmp_path, RETAIL.replace("credit_notes: true", "credit_notes: false"), HEADER + (
        "C1,A,-1,12/1/2010 8:26,2.55,17850,UK\n"
    ))
    assert nf.quarantined["reason"].tolist() == ["negative_amount: amount='-2.55'"]


def test_a_declared_date_format_is_the_only_one_accepted(tmp_path):
    nf = normalize(tmp_path, RETAIL, HEADER + (
        "1,A,1,12/1/2010 8:26,1,1,UK\n"
        "2,A,1,2010-12-01 08:26:00,1,1,UK\n"   # ISO: not what this export writes
        "3,A,1,13/1/2010 8:26,1,1,UK\n"        # month 13
    ))
    reasons = dict(nf.quarantined[["_row_number", "reason"]].values.tolist())
    assert reasons[2] == "unparseable_date: order_time='2010-12-01 08:26:00' (not in the declared format %m/%d/%Y %H:%M)"
    assert reasons[3].startswith("unparseable_date: order_time='13/1/2010 8:26'")
    assert nf.rows["order_time"].tolist() == ["2010-12-01 08:26:00"]


def test_a_column_the_expression_needs_is_missing(tmp_path):
    with pytest.raises(FileRejected, match=r"'UnitPrice' used by entities.orders.derived.amount = 'Quantity \* UnitPrice'"):
        normalize(tmp_path, RETAIL, "InvoiceNo,Quantity,InvoiceDate,CustomerID\n1,2,12/1/2010 8:26,5\n")


def test_credit_note_reference_to_the_original_order(tmp_path):
    body = RETAIL.replace("  order_time: [InvoiceDate]", "  order_time: [InvoiceDate]\n  original_order_id: [Original]")
    nf = normalize(tmp_path, body, "InvoiceNo,Quantity,InvoiceDate,UnitPrice,CustomerID,Original\n"
                   "C2,-1,12/2/2010 8:26,2.55,17850,536365\nC3,-1,12/2/2010 8:26,2.55,17850,\n")
    extras = [json.loads(e) for e in nf.rows["_extra"]]
    assert extras[0]["original_order_id"] == "536365" and "original_order_id" not in extras[1]


def test_constant_status_and_derived_text(tmp_path):
    body = """
    columns:
      order_id: [id]
      customer_id: [client]
      order_time: [date]
      amount: [total]
    constants:
      status: paid
    derived:
      currency: GBP when Shop ends with UK else EUR
    """
    nf = normalize(tmp_path, body, "id,client,date,total,Shop\n1,c1,12/1/2010,5.00,shop-uk\n2,c1,12/2/2010,7.00,shop-fr\n")
    assert nf.rows[["status", "currency"]].values.tolist() == [["paid", "GBP"], ["paid", "EUR"]]
