"""The derived-column expression language (crmtier.ingest.expressions): grammar, exact arithmetic,
strict numbers, errors at mapping load, and property tests against Decimal."""
from __future__ import annotations

import contextlib
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmtier.ingest.expressions import EvalError, ExpressionError, compile_expression, parse_number

pytestmark = pytest.mark.unit


def row(**values):
    return values.get


@pytest.mark.parametrize("text,values,expected", [
    ("Quantity * UnitPrice", {"Quantity": "6", "UnitPrice": "2.55"}, "15.30"),
    ("Quantity * UnitPrice", {"Quantity": "-1", "UnitPrice": "27.50"}, "-27.50"),
    ("3 * 0.335", {}, "1.005"),  # exact: never 1.01
    ("Quantity * UnitPrice", {"Quantity": "3", "UnitPrice": "0.335"}, "1.005"),
    ("(a + b) * 2 - c / 4", {"a": "1", "b": "2.5", "c": "10"}, "4.5"),
    ("-a", {"a": "3"}, "-3"),
    ("[Unit Price] * [Qty]", {"Unit Price": "1,234.50", "Qty": "2"}, "2469.00"),
    ("a when kind equals refund else 0", {"a": "5", "kind": "REFUND"}, "5"),
    ("-Amount when Type equals Return else Amount", {"Amount": "12.50", "Type": "Return"}, "-12.50"),
    ("1 when a < 0 else 2", {"a": "-1"}, "1"),
    ("1 when a >= 0 else 2", {"a": "-1"}, "2"),
])
def test_numeric_expressions(text, values, expected):
    assert compile_expression(text, numeric=True).evaluate(row(**values)) == expected


@pytest.mark.parametrize("text,values,expected", [
    ("refunded when InvoiceNo starts with C else paid", {"InvoiceNo": "C536379"}, "refunded"),
    ("refunded when InvoiceNo starts with C else paid", {"InvoiceNo": "536365"}, "paid"),
    ("refunded when InvoiceNo starts with 'c' else paid", {"InvoiceNo": "C1"}, "refunded"),  # case-insensitive
    ("cancelled when Note contains storno else refunded when Qty < 0 else paid", {"Note": "", "Qty": "-2"}, "refunded"),
    ("cancelled when Note contains storno else refunded when Qty < 0 else paid", {"Note": "x STORNO", "Qty": "1"}, "cancelled"),
    ("unknown when Country is empty else [Country]", {"Country": "France"}, "France"),
    ("unknown when Country is empty else [Country]", {"Country": None}, "unknown"),
    ("GBP when Shop ends with UK else EUR", {"Shop": "shop-uk"}, "GBP"),
    ("'web' when Channel is not empty else 'store'", {"Channel": "x"}, "web"),
])
def test_text_expressions(text, values, expected):
    assert compile_expression(text, numeric=False).evaluate(row(**values)) == expected


def test_columns_and_results_are_known_at_load():
    expr = compile_expression("refunded when InvoiceNo starts with C else paid", numeric=False)
    assert expr.columns == {"InvoiceNo"}
    assert expr.results() == ["refunded", "paid"]
    assert compile_expression("Quantity * [Unit Price]", numeric=True).columns == {"Quantity", "Unit Price"}


@pytest.mark.parametrize("text,numeric,message", [
    ("", True, "expected an expression"),
    ("Quantity *", True, "unexpected end"),
    ("1e5 * Quantity", True, "not a plain decimal"),
    ("1_000", True, "not a plain decimal"),
    ("refunded when InvoiceNo starts with C", False, "needs an 'else'"),
    ("paid when InvoiceNo frobnicates C else refunded", False, "expected a test"),
    ("'text' when a equals b else 1", True, "cannot take the text"),
    ("Quantity * UnitPrice)", True, "unexpected ')'"),
    ("__import__('os')", True, "unexpected"),
    ("a ; b", True, "unexpected"),
])
def test_invalid_expressions_fail_at_compile(text, numeric, message):
    with pytest.raises(ExpressionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_expression(text, numeric=numeric)


@pytest.mark.parametrize("values,message", [
    ({"Quantity": "1_000", "UnitPrice": "1"}, "Quantity='1_000' is not a number"),
    ({"Quantity": "1e5", "UnitPrice": "1"}, "Quantity='1e5' is not a number"),
    ({"Quantity": "inf", "UnitPrice": "1"}, "is not a number"),
    ({"Quantity": None, "UnitPrice": "1"}, "Quantity is empty"),
    ({"Quantity": "1", "UnitPrice": "1.234,5"}, "UnitPrice='1.234,5' is not a number"),
])
def test_row_values_that_are_not_numbers_fail_with_a_reason(values, message):
    with pytest.raises(EvalError, match=message):
        compile_expression("Quantity * UnitPrice", numeric=True).evaluate(row(**values))


def test_decimal_comma_is_declared_not_guessed():
    expr = compile_expression("a * 2", numeric=True)
    assert expr.evaluate(row(a="1.234,50"), ",") == "2469.00"
    with pytest.raises(EvalError):
        expr.evaluate(row(a="1.234,50"), ".")


@pytest.mark.parametrize("text,expected", [
    ("12", Decimal("12")), ("-3", Decimal("-3")), ("2.55", Decimal("2.55")), ("1,234.50", Decimal("1234.50")),
    ("1.005", Decimal("1.005")), ("1_000", None), ("1e5", None), ("inf", None), ("nan", None), ("0x10", None),
    ("", None), ("1,23", None), ("£5", None),
])
def test_parse_number_accepts_only_plain_decimals(text, expected):
    assert parse_number(text) == expected


decimals = st.decimals(min_value=-10**9, max_value=10**9, places=4, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(a=decimals, b=decimals, c=decimals)
def test_arithmetic_is_exact_decimal_arithmetic(a, b, c):
    values = {"a": format(a, "f"), "b": format(b, "f"), "c": format(c, "f")}
    got = compile_expression("a * b + c - (a - b)", numeric=True).evaluate(row(**values))
    assert Decimal(got) == a * b + c - (a - b)


@settings(max_examples=200, deadline=None)
@given(invoice=st.text(alphabet="C0123456789x ", min_size=0, max_size=8))
def test_starts_with_matches_python(invoice):
    expr = compile_expression("refunded when InvoiceNo starts with C else paid", numeric=False)
    expected = "refunded" if invoice.strip().casefold().startswith("c") else "paid"
    assert expr.evaluate(row(InvoiceNo=invoice)) == expected


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=30))
def test_any_text_either_compiles_or_raises_expression_error(text):
    with contextlib.suppress(ExpressionError):
        compile_expression(text, numeric=True)
