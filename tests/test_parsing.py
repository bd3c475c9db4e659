"""Value parsers: example tables and hypothesis properties."""

from __future__ import annotations

import datetime as dt
import unicodedata
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from crmtier.ingest.parsing import (
    build_vocab,
    excel_serial_to_datetime,
    map_vocab,
    map_vocab_series,
    normalize_currency,
    normalize_phone,
    normalize_phone_series,
    normalize_text,
    normalize_text_series,
    parse_amount,
    parse_amount_series,
    parse_date,
    parse_date_series,
    parse_timestamp,
    parse_timestamp_series,
    vocab_key,
)

pytestmark = pytest.mark.unit

FAST = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def fullwidth(text: str) -> str:
    """ASCII digits and punctuation -> their full-width forms (NFKC maps them back)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# ---------------------------------------------------------------------------------------
# dates: examples


@pytest.mark.parametrize(
    "raw, order, expected",
    [
        ("2024-08-19", "ymd", "2024-08-19"),
        ("2024/8/19", "ymd", "2024-08-19"),
        ("2024.8.9", "dmy", "2024-08-09"),
        ("2024年8月19日", "ymd", "2024-08-19"),
        ("2024 年 8 月 19 日", "ymd", "2024-08-19"),
        ("2024年8月19日（周一）", "ymd", "2024-08-19"),
        ("２０２４－０８－１９", "ymd", "2024-08-19"),
        ("20240819", "ymd", "2024-08-19"),
        ("19/08/2024", "dmy", "2024-08-19"),
        ("8/19/2024", "mdy", "2024-08-19"),
        ("3/4/2024", "dmy", "2024-04-03"),
        ("3/4/2024", "mdy", "2024-03-04"),
        ("19.08.2024", "dmy", "2024-08-19"),
        ("Aug 19, 2024", "ymd", "2024-08-19"),
        ("Monday, August 19, 2024", "dmy", "2024-08-19"),
        ("19-Aug-2024", "mdy", "2024-08-19"),
        ("45523", "ymd", "2024-08-19"),
        ("45523.40347", "ymd", "2024-08-19"),
        ("2024-08-19T23:30:00-05:00", "ymd", "2024-08-19"),  # a date keeps the day as written
        ("2024-02-29", "ymd", "2024-02-29"),
        ("", "ymd", None),
        ("  ", "ymd", None),
        ("N/A", "ymd", None),
        (None, "ymd", None),
    ],
)
def test_parse_date_examples(raw, order, expected):
    assert parse_date(raw, order) == (expected, None)


@pytest.mark.parametrize(
    "raw, order, reason_part",
    [
        ("2024-13-45", "ymd", "invalid month 13"),
        ("2023-02-29", "ymd", "invalid day 29"),
        ("2024-04-31", "ymd", "invalid day 31"),
        ("3/4/2024", "ymd", "year-last date but date_order is ymd"),
        ("19/08/2024", "mdy", "invalid month 19"),  # declared order is never second-guessed
        ("8/19/2024", "dmy", "invalid month 19"),
        ("8/19/24", "mdy", "unrecognised"),  # two-digit years are refused
        ("2024", "ymd", "unrecognised"),  # a bare year is not an Excel serial
        ("9999999", "ymd", "out of range"),
        ("tomorrow", "ymd", "unrecognised"),
        ("2024-08-19 25:00", "ymd", None),  # date column ignores the time? no: invalid time
    ],
)
def test_parse_date_rejects(raw, order, reason_part):
    value, reason = parse_date(raw, order)
    if reason_part is None:
        assert value is None and "invalid time" in reason
    else:
        assert value is None
        assert reason_part in reason


@pytest.mark.parametrize(
    "raw, order, tz, expected",
    [
        ("2024-08-19", "ymd", "UTC", "2024-08-19 00:00:00"),
        ("2024年8月19日 9:41", "ymd", "UTC", "2024-08-19 09:41:00"),
        ("2024年8月19日下午3:20", "ymd", "UTC", "2024-08-19 15:20:00"),
        ("2024年8月19日 9时41分5秒", "ymd", "UTC", "2024-08-19 09:41:05"),
        ("8/19/2024 9:41", "mdy", "UTC", "2024-08-19 09:41:00"),
        ("8/19/2024 9:41 PM", "mdy", "UTC", "2024-08-19 21:41:00"),
        ("8/19/2024 12:05 AM", "mdy", "UTC", "2024-08-19 00:05:00"),
        ("8/19/2024 12:05 PM", "mdy", "UTC", "2024-08-19 12:05:00"),
        ("19/08/2024 09:41:05", "dmy", "UTC", "2024-08-19 09:41:05"),
        ("2024-08-19T09:41:05Z", "ymd", "UTC", "2024-08-19 09:41:05"),
        ("2024-08-19T09:41:05.999Z", "ymd", "UTC", "2024-08-19 09:41:05"),  # fraction truncated
        ("2024-08-19T09:41:05+08:00", "ymd", "UTC", "2024-08-19 01:41:05"),
        ("2024-08-19T01:00:00+0800", "ymd", "UTC", "2024-08-18 17:00:00"),
        ("2024-08-19 22:00:00 -05:00", "ymd", "UTC", "2024-08-20 03:00:00"),
        ("20240819T094105Z", "ymd", "UTC", "2024-08-19 09:41:05"),
        ("2024-08-19 09:41:05", "ymd", "Asia/Shanghai", "2024-08-19 01:41:05"),
        ("2024-08-19", "ymd", "Asia/Shanghai", "2024-08-19 00:00:00"),  # a day is not shifted
        ("2024-08-19T09:41:05Z", "ymd", "Asia/Shanghai", "2024-08-19 09:41:05"),  # explicit offset wins
        ("45523.40347", "ymd", "UTC", "2024-08-19 09:41:00"),
        ("45523", "ymd", "UTC", "2024-08-19 00:00:00"),
        ("２０２４－０８－１９　０９：４１", "ymd", "UTC", "2024-08-19 09:41:00"),
        ("Aug 19, 2024 9:41 PM", "ymd", "UTC", "2024-08-19 21:41:00"),
    ],
)
def test_parse_timestamp_examples(raw, order, tz, expected):
    assert parse_timestamp(raw, order, tz) == (expected, None)


@pytest.mark.parametrize(
    "raw, reason_part",
    [
        ("2024-08-19 24:00:00", "invalid time"),
        ("2024-08-19 13:00 AM", "hour 13 with am"),
        ("2024-08-19 09:60", "invalid time"),
        ("2024-08-19T09:41:05+25:00", "invalid utc offset"),
        ("2024-08-19 9", "unrecognised"),
    ],
)
def test_parse_timestamp_rejects(raw, reason_part):
    value, reason = parse_timestamp(raw, "ymd")
    assert value is None and reason_part in reason


def test_custom_formats_are_tried_first():
    assert parse_date("19.08.24", "dmy", formats=["%d.%m.%y"]) == ("2024-08-19", None)
    assert parse_timestamp("19.08.24 09h41", "dmy", formats=["%d.%m.%y %Hh%M"]) == ("2024-08-19 09:41:00", None)
    assert parse_timestamp("2024-08-19 09:41 +0200", formats=["%Y-%m-%d %H:%M %z"]) == ("2024-08-19 07:41:00", None)


def test_bad_order_is_an_error():
    with pytest.raises(ValueError):
        parse_date("2024-01-01", "myd")


def test_excel_serial_epoch():
    assert excel_serial_to_datetime(45523) == dt.datetime(2024, 8, 19)
    assert excel_serial_to_datetime(61) == dt.datetime(1900, 3, 1)


# ---------------------------------------------------------------------------------------
# dates: properties

DATES = st.dates(min_value=dt.date(1000, 1, 1), max_value=dt.date(9999, 12, 31))


def _fmt(d: dt.date | dt.datetime, style: str) -> str:
    y, m, day = d.year, d.month, d.day
    mon = dt.date(2000, m, 1).strftime("%b")
    return {
        "iso": f"{y:04d}-{m:02d}-{day:02d}",
        "slash": f"{y}/{m}/{day}",
        "dot": f"{y}.{m:02d}.{day:02d}",
        "cn": f"{y}年{m}月{day}日",
        "compact": f"{y:04d}{m:02d}{day:02d}",
        "dmy": f"{day:02d}/{m:02d}/{y}",
        "dmy_dash": f"{day}-{m}-{y}",
        "mdy": f"{m}/{day}/{y}",
        "mon_first": f"{mon} {day}, {y}",
        "day_mon": f"{day}-{mon}-{y}",
    }[style]


STYLES_BY_ORDER = {
    "ymd": ["iso", "slash", "dot", "cn", "compact", "mon_first", "day_mon"],
    "dmy": ["iso", "slash", "cn", "dmy", "dmy_dash", "day_mon"],
    "mdy": ["iso", "slash", "cn", "mdy", "mon_first"],
}


@FAST
@given(d=DATES, data=st.data(), width=st.booleans())
@example(d=dt.date(2024, 3, 4), data=None, width=False)
def test_any_supported_date_format_round_trips(d, data, width):
    if data is None:  # the explicit example: ambiguous 3/4/2024 in both orders
        assert parse_date(_fmt(d, "dmy"), "dmy") == ("2024-03-04", None)
        assert parse_date(_fmt(d, "mdy"), "mdy") == ("2024-03-04", None)
        return
    order = data.draw(st.sampled_from(["ymd", "dmy", "mdy"]))
    style = data.draw(st.sampled_from(STYLES_BY_ORDER[order]))
    text = _fmt(d, style)
    if width:
        text = fullwidth(text)
    assert parse_date(text, order) == (d.isoformat(), None)


@FAST
@given(d=st.dates(min_value=dt.date(1927, 5, 18), max_value=dt.date(9999, 12, 31)))
def test_excel_serial_dates_round_trip(d):
    serial = (d - dt.date(1899, 12, 30)).days
    assert parse_date(str(serial)) == (d.isoformat(), None)


TIMES = st.datetimes(min_value=dt.datetime(1900, 1, 2), max_value=dt.datetime(9998, 12, 30)).map(
    lambda x: x.replace(microsecond=0)
)


@FAST
@given(ts=TIMES, data=st.data())
def test_any_supported_timestamp_format_round_trips(ts, data):
    expected = ts.strftime("%Y-%m-%d %H:%M:%S")
    style = data.draw(st.sampled_from(["iso_t", "iso_z", "space", "slash", "cn", "cn_pm", "mdy_ampm", "dmy", "offset", "serial"]))
    h12 = ts.hour % 12 or 12
    ampm = "AM" if ts.hour < 12 else "PM"
    order = "ymd"
    if style == "iso_t":
        text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    elif style == "iso_z":
        text = ts.strftime("%Y-%m-%dT%H:%M:%S.123Z")
    elif style == "space":
        text = ts.strftime("%Y-%m-%d %H:%M:%S")
    elif style == "slash":
        text = f"{ts.year}/{ts.month}/{ts.day} {ts.hour}:{ts.minute:02d}:{ts.second:02d}"
    elif style == "cn":
        text = f"{ts.year}年{ts.month}月{ts.day}日 {ts.hour}:{ts.minute:02d}:{ts.second:02d}"
    elif style == "cn_pm":
        text = f"{ts.year}年{ts.month}月{ts.day}日{'上午' if ts.hour < 12 else '下午'}{h12}:{ts.minute:02d}:{ts.second:02d}"
    elif style == "mdy_ampm":
        order = "mdy"
        text = f"{ts.month}/{ts.day}/{ts.year} {h12}:{ts.minute:02d}:{ts.second:02d} {ampm}"
    elif style == "dmy":
        order = "dmy"
        text = f"{ts.day:02d}/{ts.month:02d}/{ts.year} {ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}"
    elif style == "offset":
        minutes = data.draw(st.integers(min_value=-12 * 60, max_value=14 * 60).map(lambda x: x - x % 15))
        local = ts + dt.timedelta(minutes=minutes)
        sign = "+" if minutes >= 0 else "-"
        hh, mm = divmod(abs(minutes), 60)
        text = local.strftime("%Y-%m-%dT%H:%M:%S") + f"{sign}{hh:02d}:{mm:02d}"
    else:  # Excel serial with a time fraction
        assume(ts >= dt.datetime(1927, 5, 19))
        delta = ts - dt.datetime(1899, 12, 30)
        text = f"{delta.days + delta.seconds / 86400:.10f}"
    assert parse_timestamp(text, order) == (expected, None), text


@FAST
@given(st.lists(st.one_of(
    st.sampled_from(["2024-08-19", "2024-08-19 09:41:05", "19/08/2024", "bad", "", None, "2024-02-30",
                     "45523.5", "2024年8月19日", "2024-08-19T09:41:05+08:00", "8/19/2024 9:41 PM"]),
    st.text(max_size=12),
), max_size=30), st.sampled_from(["ymd", "dmy", "mdy"]), st.sampled_from(["UTC", "Asia/Shanghai"]))
def test_series_parsers_agree_with_scalar(values, order, tz):
    s = pd.Series(values, dtype=object)
    v, r = parse_timestamp_series(s, order, tz)
    assert list(zip(v, r)) == [parse_timestamp(x, order, tz) for x in values]
    v, r = parse_date_series(s, order)
    assert list(zip(v, r)) == [parse_date(x, order) for x in values]


# ---------------------------------------------------------------------------------------
# amounts


@pytest.mark.parametrize(
    "raw, sep, text, currency",
    [
        ("¥1,234.50", ".", "1234.50", "CNY"),
        ("￥1234.5", ".", "1234.50", "CNY"),
        ("1234.5元", ".", "1234.50", "CNY"),
        ("1,234.50 元", ".", "1234.50", "CNY"),
        ("RMB 1,234.50", ".", "1234.50", "CNY"),
        ("人民币1234", ".", "1234.00", "CNY"),
        ("$12.00", ".", "12.00", "USD"),
        ("US$12", ".", "12.00", "USD"),
        ("HK$12", ".", "12.00", "HKD"),
        ("USD 12", ".", "12.00", "USD"),
        ("12 EUR", ".", "12.00", "EUR"),
        ("€12,50", ",", "12.50", "EUR"),
        ("1 234.50", ".", "1234.50", None),
        ("1 234,50", ",", "1234.50", None),
        ("1.234,50", ",", "1234.50", None),
        ("1.234", ",", "1234.00", None),
        ("１２３４．５", ".", "1234.50", None),
        ("(123.00)", ".", "-123.00", None),
        ("(¥123.00)", ".", "-123.00", "CNY"),
        ("-¥5", ".", "-5.00", "CNY"),
        ("¥-5", ".", "-5.00", "CNY"),
        ("5-", ".", "-5.00", None),
        ("+5", ".", "5.00", None),
        ("1.2万", ".", "12000.00", None),
        ("1.2万元", ".", "12000.00", "CNY"),
        ("3亿", ".", "300000000.00", None),
        ("0", ".", "0.00", None),
        ("-0.00", ".", "0.00", None),
        ("007.5", ".", "7.50", None),
        (".5", ".", "0.50", None),
        ("1234.567", ".", "1234.567", None),  # extra decimals are kept, never rounded away
        ("1234.5000", ".", "1234.5000", None),
    ],
)
def test_parse_amount_examples(raw, sep, text, currency):
    amount, reason = parse_amount(raw, sep)
    assert reason is None
    assert (amount.text, amount.currency) == (text, currency)
    assert amount.decimal == Decimal(text)


@pytest.mark.parametrize(
    "raw, sep, reason_part",
    [
        ("abc", ".", "not a number"),
        ("1 234,50", ".", "not a number"),  # decimal comma needs decimal_separator ','
        ("1234,50", ".", "not a number"),
        ("1,23,456", ".", "not a number"),  # bad grouping
        ("1,234.50", ",", "not a number"),
        ("$12 CNY", ".", "conflicting currency"),
        ("--5", ".", "more than one negative sign"),
        ("(-5)", ".", "more than one negative sign"),
        ("¥", ".", "no digits"),
        ("1e5", ".", "not a number"),
    ],
)
def test_parse_amount_rejects(raw, sep, reason_part):
    amount, reason = parse_amount(raw, sep)
    assert amount is None and reason_part in reason


def test_parse_amount_missing():
    for raw in (None, "", "  ", "-", "N/A", float("nan")):
        assert parse_amount(raw) == (None, None)


def _group(int_text: str, sep: str) -> str:
    out = []
    while len(int_text) > 3:
        out.insert(0, int_text[-3:])
        int_text = int_text[:-3]
    out.insert(0, int_text)
    return sep.join(out)


@FAST
@given(
    cents=st.integers(min_value=0, max_value=10**14),
    prefix=st.sampled_from(["", "¥", "￥", "$", "RMB ", "USD ", "€"]),
    suffix=st.sampled_from(["", "元", " CNY"]),
    thousands=st.sampled_from(["", ",", " "]),
    width=st.booleans(),
    negative=st.sampled_from(["", "-", "()"]),
)
def test_amount_formats_round_trip(cents, prefix, suffix, thousands, width, negative):
    assume(not (prefix and suffix))
    value = Decimal(cents) / 100
    int_part, frac = f"{value:.2f}".split(".")
    body = _group(int_part, thousands) + "." + frac
    text = prefix + body + suffix
    if negative == "-":
        text = "-" + text
    elif negative == "()":
        text = "(" + text + ")"
    if width:
        text = fullwidth(text)
    amount, reason = parse_amount(text)
    assert reason is None, (text, reason)
    expected = -value if negative and cents else value
    assert amount.decimal == expected
    assert amount.text == f"{expected:.2f}"


@FAST
@given(cents=st.integers(min_value=0, max_value=10**12), thousands=st.sampled_from(["", ".", " "]))
def test_decimal_comma_round_trips(cents, thousands):
    value = Decimal(cents) / 100
    int_part, frac = f"{value:.2f}".split(".")
    text = _group(int_part, thousands) + "," + frac
    amount, reason = parse_amount(text, decimal_separator=",")
    assert reason is None and amount.decimal == value


@FAST
@given(st.lists(st.one_of(
    st.sampled_from(["¥1,234.50", "1234.5元", "(12.00)", "-0", "abc", "", None, "1.00", "-0.00", "$1", "007",
                     "1,234", "1 234,50", "¥5元"]),
    st.text(alphabet="0123456789,.-()¥$元 ", max_size=10),
), max_size=30), st.sampled_from([".", ","]))
def test_amount_series_agrees_with_scalar(values, sep):
    texts, currencies, reasons = parse_amount_series(pd.Series(values, dtype=object), sep)
    for raw, t, c, r in zip(values, texts, currencies, reasons):
        amount, reason = parse_amount(raw, sep)
        assert (t, c, r) == ((amount.text, amount.currency, None) if amount else (None, None, reason)), raw


# ---------------------------------------------------------------------------------------
# phones


@pytest.mark.parametrize(
    "raw, cc, expected",
    [
        ("+86 138 1234 5678", "86", "+8613812345678"),
        ("138-1234-5678", "86", "+8613812345678"),
        ("13812345678", "86", "+8613812345678"),
        ("8613812345678", "86", "+8613812345678"),
        ("0086 138 1234 5678", "86", "+8613812345678"),
        ("(010) 1234 5678", "86", "+861012345678"),
        ("010-12345678", "86", "+861012345678"),
        ("+86 (0)10 1234 5678", "86", "+861012345678"),
        ("＋８６　１３８１２３４５６７８", "86", "+8613812345678"),
        ("13812345678 转 123", "86", "+8613812345678"),
        ("(415) 555-0123", "1", "+14155550123"),
        ("1-415-555-0123", "1", "+14155550123"),
        ("+44 20 7946 0958", "1", "+442079460958"),
        ("+39 06 1234 5678", "86", "+390612345678"),
        ("06 1234 5678", "39", "+390612345678"),
    ],
)
def test_normalize_phone_examples(raw, cc, expected):
    assert normalize_phone(raw, cc) == (expected, None)


@pytest.mark.parametrize("raw", ["123", "abc", "+86 138 1234 5678 9999 9999", "12+34", "call me"])
def test_normalize_phone_rejects(raw):
    value, reason = normalize_phone(raw, "86")
    assert value is None and reason.startswith("invalid phone")


def test_phone_without_default_country_code():
    assert normalize_phone("13812345678", None)[0] is None
    assert normalize_phone("+8613812345678", None) == ("+8613812345678", None)


PHONE_DIGITS = st.text(alphabet="0123456789", min_size=6, max_size=14)


@FAST
@given(digits=PHONE_DIGITS, style=st.sampled_from(["plain", "plus", "00", "spaced", "dashed", "paren"]),
       cc=st.sampled_from(["86", "1", "44", "852"]))
def test_phone_normalisation_is_idempotent(digits, style, cc):
    raw = {
        "plain": digits,
        "plus": "+" + digits,
        "00": "00" + digits,
        "spaced": " ".join(digits[i:i + 3] for i in range(0, len(digits), 3)),
        "dashed": digits[:3] + "-" + digits[3:],
        "paren": f"({digits[:3]}) {digits[3:]}",
    }[style]
    once, reason = normalize_phone(raw, cc)
    if once is None:
        assert reason
        return
    assert once.startswith("+") and once[1:].isdigit() and 8 <= len(once) - 1 <= 15
    assert normalize_phone(once, cc) == (once, None)
    assert normalize_phone(once, "999") == (once, None)  # a +number ignores the default code


@FAST
@given(mobile=st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_cn_mobile_spellings_agree(mobile):
    want = "+86" + mobile
    spellings = [mobile, "+86" + mobile, "+86 " + mobile[:3] + " " + mobile[3:7] + " " + mobile[7:],
                 "0086" + mobile, "86" + mobile, mobile[:3] + "-" + mobile[3:7] + "-" + mobile[7:], fullwidth(mobile)]
    for raw in spellings:
        assert normalize_phone(raw, "86") == (want, None), raw
    v, r = normalize_phone_series(pd.Series(spellings, dtype=object), "86")
    assert list(v) == [want] * len(spellings)


# ---------------------------------------------------------------------------------------
# text and vocabularies


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("  张三  ", "张三"),
        ("Alice\u3000 Smith", "Alice Smith"),
        ("ＡＢＣ１２３", "ABC123"),
        ("a\tb\nc", "a b c"),
        ("\u200bzero\u200bwidth\ufeff", "zerowidth"),
        ("e\u200b\u0301", "\u00e9"),  # removing the zero-width space lets NFKC compose é
        ("", None),
        ("   ", None),
        (None, None),
        ("N/A", "N/A"),  # free text keeps placeholders
    ],
)
def test_normalize_text_examples(raw, expected):
    assert normalize_text(raw) == expected


@FAST
@given(st.text(alphabet=st.sampled_from("e\u0301\u200b\u00a0 \t\u3000ＡaＢ１2\ufeff\u1100\u1161\u11a8") | st.characters()))
@example("e\u200b\u0301")
def test_normalize_text_is_idempotent_and_nfkc(text):
    once = normalize_text(text)
    assert normalize_text(once) == once
    if once is not None:
        assert unicodedata.normalize("NFKC", once) == once
        assert once == once.strip() and "  " not in once


@FAST
@given(st.lists(st.one_of(st.none(), st.text(max_size=8)), max_size=20))
def test_normalize_text_series_agrees_with_scalar(values):
    out = normalize_text_series(pd.Series(values, dtype=object))
    assert list(out) == [normalize_text(v) for v in values]


STATUS = {"paid": ["已付款", "Closed Won", "closedwon"], "refunded": ["已退款"], "cancelled": ["已作废", "Closed Lost"]}


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("已付款", "paid"),
        (" Closed Won ", "paid"),
        ("CLOSED_WON", "paid"),
        ("closed-won", "paid"),
        ("ＣＬＯＳＥＤ　ＷＯＮ", "paid"),
        ("closedlost", "cancelled"),
        ("paid", "paid"),  # canonical values map to themselves
        ("shipped", None),
        ("", None),
        (None, None),
    ],
)
def test_map_vocab(raw, expected):
    assert map_vocab(raw, STATUS) == expected
    assert map_vocab(raw, build_vocab(STATUS)) == expected


def test_map_vocab_series_and_conflicts():
    s = pd.Series(["已付款", None, "x", "Closed Lost"], dtype=object)
    assert list(map_vocab_series(s, STATUS)) == ["paid", None, None, "cancelled"]
    with pytest.raises(ValueError, match="maps to both"):
        build_vocab({"paid": ["done"], "cancelled": ["DONE"]})


@FAST
@given(alias=st.sampled_from([a for v in STATUS.values() for a in v]), data=st.data())
def test_map_vocab_case_and_width_insensitive(alias, data):
    variant = "".join(data.draw(st.sampled_from([c.upper(), c.lower()])) for c in alias)
    if data.draw(st.booleans()):
        variant = fullwidth(variant)
    assert map_vocab(variant, STATUS) == map_vocab(alias, STATUS)
    assert vocab_key(variant) == vocab_key(alias)


@pytest.mark.parametrize(
    "raw, expected",
    [("CNY", ("CNY", None)), ("cny", ("CNY", None)), ("人民币", ("CNY", None)), ("RMB", ("CNY", None)), ("￥", ("CNY", None)),
     ("$", ("USD", None)), ("美元", ("USD", None)), ("港币", ("HKD", None)), ("", (None, None)), (None, (None, None))],
)
def test_normalize_currency(raw, expected):
    assert normalize_currency(raw) == expected


def test_normalize_currency_rejects():
    value, reason = normalize_currency("Euro")
    assert value is None and "unknown currency" in reason
