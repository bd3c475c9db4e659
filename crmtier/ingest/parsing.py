"""Value parsers shared by every source: dates, timestamps, amounts, phones, text, vocabularies.

Every scalar parser returns ``(value, reason)``:

* ``(canonical_value, None)`` on success,
* ``(None, None)`` for an empty value (empty string, ``None``, NaN or a placeholder such as
  ``-``, ``N/A``, ``null``): missing is not an error here; whether a column is required is
  decided by the caller,
* ``(None, "short explanation")`` when the value is present but cannot be parsed.

The ``*_series`` functions apply the same parser to a whole pandas Series.  They parse each
*distinct* value once (exports repeat dates, amounts and vocabulary values a lot) and, for
timestamps and dates already in canonical form, use a vectorised fast path; they return
``(values, reasons)`` Series aligned with the input (missing = ``None``).

Canonical formats (see docs in the brief / domain.md):

* date: ``YYYY-MM-DD``; timestamp: ``YYYY-MM-DD HH:MM:SS`` (naive, UTC)
* amount: plain decimal text with at least two decimals (``1234.50``; ``1234.567`` keeps its
  three decimals, nothing is rounded away), ``-`` sign for negatives
* phone: ``+`` country code and digits (``+8613812345678``)
* text: NFKC, trimmed, inner whitespace collapsed to one space
"""

from __future__ import annotations

import calendar
import datetime as _dt
import math
import re
import unicodedata
from collections.abc import Iterable
from collections.abc import Mapping as _MappingABC
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

__all__ = [
    "DATE_ORDERS",
    "Amount",
    "is_missing",
    "normalize_text",
    "normalize_text_series",
    "vocab_key",
    "build_vocab",
    "map_vocab",
    "map_vocab_series",
    "parse_date",
    "parse_timestamp",
    "parse_date_series",
    "parse_timestamp_series",
    "parse_amount",
    "parse_amount_series",
    "format_amount",
    "normalize_phone",
    "normalize_phone_series",
    "normalize_currency",
    "excel_serial_to_datetime",
]

DATE_ORDERS = ("dmy", "mdy", "ymd")

# Placeholders that exports use for "no value".  Only the typed parsers (dates, amounts,
# phones) treat them as empty; free text keeps them.
_NULL_TOKENS = frozenset({"", "-", "--", "—", "——", "n/a", "na", "null", "none", "nan", "nat", "#n/a"})

# Characters that are invisible but survive NFKC and strip().
_INVISIBLE_TABLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def is_missing(value: Any) -> bool:
    """True for None, NaN/NA and empty / whitespace-only strings."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    return False


def _is_null_token(text: str) -> bool:
    return text.casefold() in _NULL_TOKENS


# --------------------------------------------------------------------------------------
# text


def normalize_text(value: Any) -> str | None:
    """NFKC-normalise, drop zero-width characters, trim, collapse inner whitespace.

    Returns ``None`` for missing values and for strings that are empty after trimming.
    Idempotent: ``normalize_text(normalize_text(x)) == normalize_text(x)``.
    """
    if is_missing(value):
        return None
    # invisible characters go first: removing them later could leave a non-NFKC sequence
    text = " ".join(unicodedata.normalize("NFKC", str(value).translate(_INVISIBLE_TABLE)).split())
    return text or None


_NOTHING = object()


def normalize_text_series(s: pd.Series) -> pd.Series:
    """:func:`normalize_text` over a Series; empty results become ``None`` (object Series)."""
    arr = s.to_numpy(dtype=object, na_value=None) if len(s) else np.empty(0, dtype=object)
    out = np.empty(len(arr), dtype=object)
    table, nfkc = _INVISIBLE_TABLE, unicodedata.normalize
    cache: dict[str, str | None] = {}
    for i, v in enumerate(arr):
        if v.__class__ is str:
            t = cache.get(v, _NOTHING)
            if t is _NOTHING:
                if v.isascii():
                    t = " ".join(v.split()) or None
                else:
                    t = " ".join(nfkc("NFKC", v.translate(table)).split()) or None
                if len(cache) < 1_000_000:
                    cache[v] = t
            out[i] = t
        else:
            out[i] = normalize_text(v)
    return pd.Series(out, index=s.index, dtype=object)


# --------------------------------------------------------------------------------------
# vocabularies

_KEY_DROP_RE = re.compile(r"[\s_\-]+")


def vocab_key(value: Any) -> str:
    """Matching key: NFKC, case-folded, without whitespace, ``_`` or ``-``.

    ``"Closed Won"``, ``"closed_won"``, ``"ＣＬＯＳＥＤ－ＷＯＮ"`` and ``"closedwon"`` share a key.
    Also used for header names (``"Mailing City"`` == ``"MailingCity"``).
    """
    if is_missing(value):
        return ""
    text = unicodedata.normalize("NFKC", str(value).translate(_INVISIBLE_TABLE)).casefold()
    return _KEY_DROP_RE.sub("", text)


def build_vocab(spec: _MappingABC[str, Iterable[str]], *, include_canonical: bool = True) -> dict[str, str]:
    """``{canonical: [alias, ...]}`` -> ``{vocab_key(alias): canonical}``.

    Canonical values always map to themselves when ``include_canonical``.  Raises
    ``ValueError`` when one alias maps to two different canonical values.
    """
    out: dict[str, str] = {}
    for canonical, aliases in spec.items():
        names = list(aliases or [])
        if include_canonical:
            names = [canonical, *names]
        for alias in names:
            key = vocab_key(alias)
            if not key:
                continue
            prev = out.get(key)
            if prev is not None and prev != canonical:
                raise ValueError(f"alias {alias!r} maps to both {prev!r} and {canonical!r}")
            out[key] = canonical
    return out


def _as_built_vocab(vocab: _MappingABC) -> dict[str, str]:
    if not vocab:
        return {}
    first = next(iter(vocab.values()))
    if isinstance(first, str):
        return dict(vocab)  # already {key: canonical}
    return build_vocab(vocab)


def map_vocab(value: Any, vocab: _MappingABC) -> str | None:
    """Map a raw value to its canonical vocabulary value, case/width/space-insensitively.

    ``vocab`` is either ``{canonical: [aliases]}`` or the output of :func:`build_vocab`.
    Returns ``None`` for missing or unknown values.
    """
    if is_missing(value):
        return None
    return _as_built_vocab(vocab).get(vocab_key(value))


def map_vocab_series(s: pd.Series, vocab: _MappingABC) -> pd.Series:
    """Vectorised :func:`map_vocab` (object Series, unknown/missing = None)."""
    built = _as_built_vocab(vocab)
    v, _ = _series_apply(s, lambda x: (built.get(vocab_key(x)), None))
    return v


# --------------------------------------------------------------------------------------
# dates and timestamps

_MONTHS = {
    "jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3, "apr": 4, "april": 4,
    "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7, "aug": 8, "august": 8,
    "sep": 9, "sept": 9, "september": 9, "oct": 10, "october": 10, "nov": 11, "november": 11,
    "dec": 12, "december": 12,
}
_WEEKDAY = r"(?:(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)[a-z]*\.?,?\s+)?"
_CN_WEEKDAY = r"(?:\s*[(]?(?:星期|周|礼拜)[一二三四五六日天][)]?)?"

_DATE_PATTERNS = [
    # 2024-08-19, 2024/8/19, 2024.8.19
    ("ymd", r"(?P<y>\d{4})(?P<s>[-/.])(?P<m>\d{1,2})(?P=s)(?P<d>\d{1,2})" + _CN_WEEKDAY),
    # 2024年8月19日 (also 号)
    ("ymd", r"(?P<y>\d{4})\s*年\s*(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*[日号]" + _CN_WEEKDAY),
    # 20240819 (only with nothing or a basic-ISO time after it)
    ("ymd", r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})(?=$|t)"),
    # 19/08/2024 or 8/19/2024 -- resolved by the declared order only
    ("yl", r"(?P<a>\d{1,2})(?P<s>[-/.])(?P<b>\d{1,2})(?P=s)(?P<y>\d{4})"),
    # Aug 19, 2024 / August 19 2024 / Mon, Aug 19, 2024
    ("mon", _WEEKDAY + r"(?P<mon>[a-z]{3,9})\.?\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<y>\d{4})"),
    # 19 Aug 2024 / 19-Aug-2024 / 19 August, 2024
    ("mon", _WEEKDAY + r"(?P<d>\d{1,2})(?:st|nd|rd|th)?[-\s](?P<mon>[a-z]{3,9})\.?[-\s,]\s*(?P<y>\d{4})"),
]
_TIME_RE = (
    r"(?:(?P<ap1>上午|下午|中午|晚上|凌晨|早上|am|pm)\s*)?"
    r"(?P<H>\d{1,2})(?:"
    r":(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<F>\d{1,9}))?)?"
    r"|时(?P<M2>\d{1,2})分(?:(?P<S2>\d{1,2})秒)?"
    r"|(?P<M3>\d{2})(?P<S3>\d{2})(?:[.,](?P<F3>\d{1,9}))?"  # basic ISO 094105
    r")"
    r"\s*(?P<ap2>(?:am|pm)(?![a-z/])|a\.m\.|p\.m\.|上午|下午)?"
    # an offset, or an IANA zone name (Europe/Berlin); RFC 9557 may add the zone after the offset
    r"\s*(?P<tz>z|utc|gmt|(?:utc|gmt)?\s*[+-]\d{1,2}(?::?\d{2})?|[a-z_]+(?:/[a-z0-9_+-]+)+)?"
    r"(?:\[[a-z_]+(?:/[a-z0-9_+-]+)+\])?"
)
_DT_RES = [
    (kind, re.compile(r"^" + dpat + r"(?:(?:\s+|t|(?<=[日号])\s*)" + _TIME_RE + r")?$"))
    for kind, dpat in _DATE_PATTERNS
]
_FAST_YMD = re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?:[ t](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d{1,9})?)?(z)?)?")
_FAST_YL = re.compile(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{4})(?: (\d{1,2}):(\d{2})(?::(\d{2}))?(?: ?(am|pm))?)?")
_SERIAL_RE = re.compile(r"^(?P<days>\d{5,7})(?:\.(?P<frac>\d+))?$")
_EXCEL_EPOCH = _dt.datetime(1899, 12, 30)
_EXCEL_MIN_SERIAL = 10000  # 1927-05-18; smaller bare numbers are more likely years or codes
_EXCEL_MAX_SERIAL = 2958465  # 9999-12-31

_CANON_DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_CANON_TS_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"


class _Parsed(NamedTuple):
    date: _dt.date
    time: _dt.time | None  # None: the value had no time of day
    offset: _dt.timedelta | None  # None: naive


def excel_serial_to_datetime(serial: float) -> _dt.datetime:
    """Excel (1900 date system) serial number -> datetime, rounded to the second.

    Uses the 1899-12-30 epoch, which is correct for every serial from 61 (1900-03-01) on,
    i.e. for every serial this module accepts.
    """
    seconds = round(serial * 86400)
    return _EXCEL_EPOCH + _dt.timedelta(seconds=seconds)


def _prep(value: Any) -> str | None:
    """Normalise a raw value for the typed parsers; ``None`` when it is empty/a placeholder."""
    if isinstance(value, str):
        if value.isascii():
            text = " ".join(value.split())  # ASCII is NFKC-stable; collapse whitespace
        else:
            text = " ".join(unicodedata.normalize("NFKC", value.translate(_INVISIBLE_TABLE)).split())
        if len(text) <= 4 and text.casefold() in _NULL_TOKENS:
            return None
        return text
    if is_missing(value):
        return None
    if isinstance(value, _dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, _dt.date):
        return value.isoformat()
    return _prep(str(value))


def _check_date(y: int, m: int, d: int) -> str | None:
    if not 1 <= y <= 9999:
        return f"invalid year {y}"
    if not 1 <= m <= 12:
        return f"invalid month {m}"
    last = calendar.monthrange(y, m)[1]
    if not 1 <= d <= last:
        return f"invalid day {d} for {y:04d}-{m:02d}"
    return None


@lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    """IANA zone names by their case-folded form (values are matched case-folded)."""
    from zoneinfo import available_timezones

    return {name.casefold(): name for name in available_timezones()}


def _parse_offset(tz: str, local: _dt.datetime | None = None) -> _dt.timedelta | None | str:
    """UTC offset of a written zone: `z`/`utc`, `+08:00`/`-0500`, or a zone name such as
    `Europe/Berlin`, whose offset at the local time `local` (summer time included) is used."""
    if "/" in tz:
        name = _zone_names().get(tz.casefold())
        if name is None:
            return f"unknown time zone {tz!r}"
        return ZoneInfo(name).utcoffset(local or _dt.datetime(2000, 1, 1))
    tz = tz.replace(" ", "")
    if tz in ("z", "utc", "gmt"):
        return _dt.timedelta(0)
    m = re.fullmatch(r"(?:utc|gmt)?([+-])(\d{1,2})(?::?(\d{2}))?", tz)
    if not m:
        return f"invalid utc offset {tz!r}"
    hours, minutes = int(m.group(2)), int(m.group(3) or 0)
    if hours > 18 or minutes > 59:
        return f"invalid utc offset {tz!r}"
    delta = _dt.timedelta(hours=hours, minutes=minutes)
    return -delta if m.group(1) == "-" else delta


def _year_last_day_month(a: int, b: int, order: str) -> tuple[int, int] | str:
    """(day, month) of a year-last numeric date (`a/b/yyyy`): only the declared order decides."""
    if order == "dmy":
        return a, b
    if order == "mdy":
        return b, a
    return "year-last date but date_order is ymd (declare dmy or mdy)"


def _parse_parts(text: str, order: str, formats: tuple[str, ...]) -> _Parsed | str:
    """Parse normalised ``text`` into date/time/offset, or return a reason string."""
    # 1. user-declared strptime formats win
    for fmt in formats:
        try:
            parsed = _dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
        has_time = any(code in fmt for code in ("%H", "%I", "%M", "%S", "%X", "%c"))
        offset = parsed.utcoffset() if parsed.tzinfo else None
        return _Parsed(parsed.date(), parsed.time().replace(microsecond=0) if has_time else None, offset)

    # 2. Excel serial number
    m = _SERIAL_RE.match(text)
    if m:
        serial = float(text)
        if not _EXCEL_MIN_SERIAL <= serial < _EXCEL_MAX_SERIAL + 1:
            return f"excel serial {text} out of range"
        value = excel_serial_to_datetime(serial)
        has_time = m.group("frac") is not None and int(m.group("frac")) != 0
        return _Parsed(value.date(), value.time() if has_time else None, None)

    low = text.casefold()
    # fast paths for the most common shapes (same semantics as the general patterns below)
    m = _FAST_YMD.fullmatch(low)
    if m:
        return _finish(text, int(m[1]), int(m[3]), int(m[4]), m[5], m[6], m[7], None, m[8])
    m = _FAST_YL.fullmatch(low)
    if m:
        day_month = _year_last_day_month(int(m[1]), int(m[3]), order)
        if isinstance(day_month, str):
            return day_month
        return _finish(text, int(m[4]), day_month[1], day_month[0], m[5], m[6], m[7], m[8], None)
    for kind, rx in _DT_RES:
        m = rx.match(low)
        if not m:
            continue
        g = m.groupdict()
        if kind == "ymd":
            y, mo, d = int(g["y"]), int(g["m"]), int(g["d"])
        elif kind == "mon":
            mo = _MONTHS.get(g["mon"])
            if mo is None:
                continue
            y, d = int(g["y"]), int(g["d"])
        else:  # year-last numeric: only the declared order decides
            y = int(g["y"])
            day_month = _year_last_day_month(int(g["a"]), int(g["b"]), order)
            if isinstance(day_month, str):
                return day_month
            d, mo = day_month
        return _finish(
            text, y, mo, d, g.get("H"),
            g.get("M") or g.get("M2") or g.get("M3"),
            g.get("S") or g.get("S2") or g.get("S3"),
            g.get("ap1") or g.get("ap2"), g.get("tz"),
        )
    return "unrecognised date format"


def _finish(text: str, y: int, mo: int, d: int, h: str | None, mi: str | None, sec: str | None,
            ap: str | None, tz: str | None) -> _Parsed | str:
    bad = _check_date(y, mo, d)
    if bad:
        return bad
    date = _dt.date(y, mo, d)
    if h is None:
        return _Parsed(date, None, None)
    hour, minute, second = int(h), int(mi or 0), int(sec or 0)
    if ap:
        if ap in ("pm", "p.m.", "下午", "晚上", "中午"):
            if hour < 12:
                hour += 12
        else:
            if hour > 12:
                return f"invalid time {text!r} (hour {hour} with {ap})"
            if hour == 12:
                hour = 0
    if hour > 23 or minute > 59 or second > 59:
        return f"invalid time {hour}:{minute:02d}:{second:02d}"
    offset = None
    if tz:
        offset = _parse_offset(tz, _dt.datetime(y, mo, d, hour, minute, second))
        if isinstance(offset, str):
            return offset
    return _Parsed(date, _dt.time(hour, minute, second), offset)


@lru_cache(maxsize=200_000)
def _parse_date_cached(text: str, order: str, formats: tuple[str, ...]) -> tuple[str | None, str | None]:
    parsed = _parse_parts(text, order, formats)
    if isinstance(parsed, str):
        return None, parsed
    # a date column keeps the calendar day as written: time and offset are ignored
    d = parsed.date
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}", None


@lru_cache(maxsize=16)
def _zone(tz: str) -> ZoneInfo | None:
    if tz.upper() in ("UTC", "Z", "ETC/UTC", "GMT"):
        return None
    return ZoneInfo(tz)


@lru_cache(maxsize=200_000)
def _parse_ts_cached(text: str, order: str, tz: str, formats: tuple[str, ...]) -> tuple[str | None, str | None]:
    parsed = _parse_parts(text, order, formats)
    if isinstance(parsed, str):
        return None, parsed
    if parsed.time is None:
        # a bare calendar day: midnight, no time-zone shift (a day is not an instant)
        value = _dt.datetime.combine(parsed.date, _dt.time(0, 0, 0))
    else:
        value = _dt.datetime.combine(parsed.date, parsed.time)
        try:
            if parsed.offset is not None:
                value = value - parsed.offset
            else:
                zone = _zone(tz)
                if zone is not None:
                    value = value.replace(tzinfo=zone).astimezone(_dt.UTC).replace(tzinfo=None)
        except OverflowError:
            return None, "timestamp out of range"
    v = value
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d} {v.hour:02d}:{v.minute:02d}:{v.second:02d}", None


def parse_date(value: Any, order: str = "ymd", formats: Iterable[str] = ()) -> tuple[str | None, str | None]:
    """Parse a calendar date to ``YYYY-MM-DD``.

    Accepts ``2024-08-19``, ``2024/8/19``, ``2024.8.19``, ``2024年8月19日``, ``20240819``,
    full-width digits, ``Aug 19, 2024``, ``19-Aug-2024``, Excel serials (``45523``,
    10000..2958465) and year-last numeric dates (``19/08/2024``, ``8/19/2024``) which are
    read **only** in the declared ``order`` (``dmy``/``mdy``; with ``ymd`` they are
    refused, never guessed).  A time of day / UTC offset after the date is allowed and
    ignored: the calendar day as written is kept.  ``formats`` are strptime formats tried
    first.  Two-digit years are refused unless a declared format says otherwise.
    """
    if order not in DATE_ORDERS:
        raise ValueError(f"date order must be one of {DATE_ORDERS}, got {order!r}")
    text = _prep(value)
    if text is None:
        return None, None
    return _parse_date_cached(text, order, tuple(formats))


def parse_timestamp(
    value: Any, order: str = "ymd", tz: str = "UTC", formats: Iterable[str] = ()
) -> tuple[str | None, str | None]:
    """Parse a timestamp to ``YYYY-MM-DD HH:MM:SS`` (naive UTC).

    Everything :func:`parse_date` accepts, optionally followed (after a space or ``T``) by a
    time ``9:41``, ``09:41:05``, ``09:41:05.123`` (fraction truncated), ``9:41 AM``,
    ``下午3:20``, ``9时41分``, and an offset ``Z``/``UTC``/``+08:00``/``+0800``.  Values with
    an offset are converted to UTC; naive values are taken to be in ``tz`` (default UTC)
    and converted.  A date without time becomes ``00:00:00`` **without** any zone shift.
    Excel serials keep their fraction as time of day, rounded to the second.
    """
    if order not in DATE_ORDERS:
        raise ValueError(f"date order must be one of {DATE_ORDERS}, got {order!r}")
    text = _prep(value)
    if text is None:
        return None, None
    return _parse_ts_cached(text, order, tz or "UTC", tuple(formats))


def _series_apply(s: pd.Series, func) -> tuple[pd.Series, pd.Series]:
    """Apply a scalar ``(value, reason)`` parser once per distinct value."""
    obj = s.to_numpy(dtype=object, na_value=None) if len(s) else np.empty(0, dtype=object)
    vals = np.full(len(obj), None, dtype=object)
    reasons = np.full(len(obj), None, dtype=object)
    cache: dict[Any, tuple[Any, Any]] = {}
    for i, v in enumerate(obj):
        if v is None:
            continue
        hit = cache.get(v)
        if hit is None:
            hit = cache[v] = func(v)
        vals[i], reasons[i] = hit
    return pd.Series(vals, index=s.index, dtype=object), pd.Series(reasons, index=s.index, dtype=object)


def _fast_canonical(s: pd.Series, pattern: str, fmt: str) -> np.ndarray:
    """Boolean mask of values already in canonical form and valid (checked vectorised)."""
    text = s.astype(object).where(s.notna(), "").astype(str)
    looks = text.str.match(pattern).to_numpy(dtype=bool)
    if not looks.any():
        return looks
    parsed = pd.to_datetime(text.where(looks, None), format=fmt, errors="coerce")
    return looks & parsed.notna().to_numpy(dtype=bool)


def _merge_fast(s: pd.Series, fast: np.ndarray, func) -> tuple[pd.Series, pd.Series]:
    obj = s.astype(object).to_numpy()
    vals = np.full(len(obj), None, dtype=object)
    reasons = np.full(len(obj), None, dtype=object)
    vals[fast] = obj[fast]
    rest = ~fast
    if rest.any():
        v, r = _series_apply(pd.Series(obj[rest], dtype=object), func)
        vals[rest] = v.to_numpy()
        reasons[rest] = r.to_numpy()
    return pd.Series(vals, index=s.index, dtype=object), pd.Series(reasons, index=s.index, dtype=object)


def parse_date_series(s: pd.Series, order: str = "ymd", formats: Iterable[str] = ()) -> tuple[pd.Series, pd.Series]:
    """Vectorised :func:`parse_date` -> ``(values, reasons)`` (object Series, missing = None)."""
    formats = tuple(formats)
    fast = _fast_canonical(s, _CANON_DATE_RE, "%Y-%m-%d") if not formats else np.zeros(len(s), dtype=bool)
    return _merge_fast(s, fast, lambda x: parse_date(x, order, formats))


def parse_timestamp_series(
    s: pd.Series, order: str = "ymd", tz: str = "UTC", formats: Iterable[str] = ()
) -> tuple[pd.Series, pd.Series]:
    """Vectorised :func:`parse_timestamp` -> ``(values, reasons)`` (object Series, missing = None)."""
    formats = tuple(formats)
    if not formats and _zone(tz or "UTC") is None:
        fast = _fast_canonical(s, _CANON_TS_RE, "%Y-%m-%d %H:%M:%S")
    else:
        fast = np.zeros(len(s), dtype=bool)
    return _merge_fast(s, fast, lambda x: parse_timestamp(x, order, tz, formats))


# --------------------------------------------------------------------------------------
# amounts


class Amount(NamedTuple):
    """A parsed amount: canonical text (``"-1234.50"``) and a currency hint from a symbol."""

    text: str
    currency: str | None

    @property
    def decimal(self) -> Decimal:
        return Decimal(self.text)


# (token, ISO code) -- longest first so "HK$" wins over "$".  Matched case-insensitively
# at the start or end of the value (after NFKC, so "￥" is "¥").
_CURRENCY_TOKENS = sorted(
    [
        ("人民币", "CNY"), ("rmb", "CNY"), ("元", "CNY"), ("¥", "CNY"), ("cn¥", "CNY"),
        ("美元", "USD"), ("us$", "USD"), ("usd", "USD"), ("$", "USD"),
        ("港币", "HKD"), ("港元", "HKD"), ("hk$", "HKD"),
        ("欧元", "EUR"), ("€", "EUR"),
        ("英镑", "GBP"), ("£", "GBP"),
        ("日元", "JPY"), ("円", "JPY"),
        ("₩", "KRW"), ("₹", "INR"),
    ],
    key=lambda t: -len(t[0]),
)
_CURRENCY_WORDS = {token: code for token, code in _CURRENCY_TOKENS} | {"cn¥": "CNY", "rmb¥": "CNY", "us dollar": "USD"}


def normalize_currency(value: Any) -> tuple[str | None, str | None]:
    """Currency column value -> ISO 4217 code: ``cny``/``RMB``/``人民币``/``¥`` -> ``CNY``,
    ``$``/``美元`` -> ``USD``; any 3 ASCII letters are taken as a code (upper-cased)."""
    text = _prep(value)
    if text is None:
        return None, None
    low = text.casefold()
    code = _CURRENCY_WORDS.get(low)
    if code:
        return code, None
    if len(text) == 3 and text.isascii() and text.isalpha():
        return text.upper(), None
    return None, f"unknown currency {text!r}"


_ISO_CODE_PREFIX = re.compile(r"^([a-z]{3})(?=[\s\d(+\-.])")
_ISO_CODE_SUFFIX = re.compile(r"(?<=[\s\d)])([a-z]{3})$")
_MULTIPLIERS = {"万": Decimal(10_000), "亿": Decimal(100_000_000)}

_NUM_DOT = re.compile(r"^(?:\d{1,3}(?:,\d{3})+|\d{1,3}(?: \d{3})+|\d+)(?:\.\d+)?$|^\.\d+$")
_NUM_COMMA = re.compile(r"^(?:\d{1,3}(?:\.\d{3})+|\d{1,3}(?: \d{3})+|\d+)(?:,\d+)?$|^,\d+$")


def format_amount(value: Decimal | str) -> str:
    """Canonical amount text: plain decimal, at least two decimals, no exponent."""
    d = Decimal(value)
    if d.as_tuple().exponent > -2:  # type: ignore[operator]
        d = d.quantize(Decimal("0.01"))
    if d == 0:
        d = abs(d)
    return format(d, "f")


_FAST_AMOUNT = re.compile(r"(-)?([¥$€£])?([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.([0-9]+))?(元)?")
_FAST_SYMBOL = {"¥": "CNY", "$": "USD", "€": "EUR", "£": "GBP"}


def _fast_amount(text: str) -> tuple[Amount | None, str | None] | None:
    """The common shapes (``-¥1,234.5``, ``1234.50元``) without Decimal; None = not handled."""
    m = _FAST_AMOUNT.fullmatch(text)
    if m is None or (m[2] and m[5]):
        return None
    int_part = m[3].replace(",", "").lstrip("0") or "0"
    frac = m[4] or ""
    if len(frac) < 2:
        frac = frac + "0" * (2 - len(frac))
    neg = m[1] is not None and (int_part != "0" or frac.strip("0") != "")
    currency = _FAST_SYMBOL[m[2]] if m[2] else ("CNY" if m[5] else None)
    return Amount(("-" if neg else "") + int_part + "." + frac, currency), None


@dataclass
class _AmountText:
    """An amount being taken apart: what is left of the text, and what was stripped from it."""

    s: str
    negative: bool = False
    currency: str | None = None
    multiplier: Decimal = Decimal(1)


_TWO_SIGNS = "more than one negative sign"
# Each _strip_* step strips one affix from the text and returns (changed, error).


def _strip_sign(a: _AmountText) -> tuple[bool, str | None]:
    """(1,234), leading + or -, or an SAP-style trailing minus (1234-)."""
    s = a.s
    if s.startswith("(") and s.endswith(")"):
        if a.negative:
            return False, _TWO_SIGNS
        a.negative, a.s = True, s[1:-1]
        return True, None
    if s[:1] in "+-" and s:
        if s[0] == "-":
            if a.negative:
                return False, _TWO_SIGNS
            a.negative = True
        a.s = s[1:]
        return True, None
    if s.endswith("-") and len(s) > 1 and s[-2].isdigit():  # SAP-style trailing minus
        if a.negative:
            return False, _TWO_SIGNS
        a.negative, a.s = True, s[:-1]
        return True, None
    return False, None


def _strip_multiplier(a: _AmountText) -> tuple[bool, str | None]:
    """A trailing 万 or 亿 (only one)."""
    for mark, factor in _MULTIPLIERS.items():
        if a.s.endswith(mark) and a.multiplier == 1:
            a.multiplier, a.s = factor, a.s[: -len(mark)]
            return True, None
    return False, None


def _strip_currency_symbol(a: _AmountText) -> tuple[bool, str | None]:
    """A leading or trailing currency symbol or word (¥, 元, us$, ...)."""
    for token, code in _CURRENCY_TOKENS:
        hit = None
        if a.s.startswith(token):
            hit, a.s = code, a.s[len(token):]
        elif a.s.endswith(token):
            hit, a.s = code, a.s[: -len(token)]
        if hit:
            if a.currency and a.currency != hit:
                return False, f"conflicting currency symbols ({a.currency}, {hit})"
            a.currency = hit
            return True, None
    return False, None


def _strip_iso_code(a: _AmountText) -> tuple[bool, str | None]:
    """A leading or trailing 3-letter ISO code (CNY 12, 12 usd)."""
    m = _ISO_CODE_PREFIX.match(a.s) or _ISO_CODE_SUFFIX.search(a.s)
    if not m:
        return False, None
    code = m.group(1).upper()
    if a.currency and a.currency != code:
        return False, f"conflicting currency symbols ({a.currency}, {code})"
    a.currency = code
    a.s = a.s[: m.start()] + a.s[m.end():]
    return True, None


_AMOUNT_STEPS = (_strip_sign, _strip_multiplier, _strip_currency_symbol, _strip_iso_code)


def _strip_affixes(a: _AmountText) -> str | None:
    """Strip signs, multipliers and currencies until none is left (at most 12 rounds); the error, if any."""
    changed = True
    guard = 0
    while changed and guard < 12:
        guard += 1
        changed = False
        a.s = a.s.strip()
        for step in _AMOUNT_STEPS:
            changed, error = step(a)
            if error is not None:
                return error
            if changed:
                break
    return None


def _amount_number(s: str, decimal_separator: str) -> tuple[Decimal | None, str | None]:
    """The number left once the affixes are gone, with thousands separators."""
    s = s.strip()
    if not s:
        return None, "no digits"
    if decimal_separator == ",":
        if not _NUM_COMMA.match(s):
            return None, "not a number (decimal separator ',')"
        plain = s.replace(".", "").replace(" ", "").replace(",", ".")
    else:
        if not _NUM_DOT.match(s):
            return None, "not a number (decimal separator '.')"
        plain = s.replace(",", "").replace(" ", "")
    try:
        return Decimal(plain), None
    except InvalidOperation:
        return None, "not a number"


@lru_cache(maxsize=200_000)
def _parse_amount_cached(text: str, decimal_separator: str) -> tuple[Amount | None, str | None]:
    if decimal_separator == ".":
        fast = _fast_amount(text)
        if fast is not None:
            return fast
    a = _AmountText(text.casefold())
    error = _strip_affixes(a)
    if error is not None:
        return None, error
    number, error = _amount_number(a.s, decimal_separator)
    if number is None:
        return None, error
    d = number * a.multiplier
    if a.negative:
        d = -d
    return Amount(format_amount(d), a.currency), None


def parse_amount(value: Any, decimal_separator: str = ".") -> tuple[Amount | None, str | None]:
    """Parse a money amount -> ``(Amount(text, currency_hint), None)`` or ``(None, reason)``.

    Accepted: ``¥1,234.50``, ``￥1234.5``, ``1234.5元``, ``RMB 1,234.50``, ``$12.00``,
    ``USD 12``, ``12 EUR``, full-width digits, ``1.2万`` (x10,000) / ``亿``, a leading or
    trailing sign, ``(123.00)`` (accounting negative -> ``-123.00``).

    Separators are *declared*, never guessed: with ``decimal_separator="."`` (default) ``,``
    and space are thousands separators and must group by three (``1,234.50``, ``1 234.50``);
    with ``","`` it is the other way round (``1.234,50``, ``1 234,50``).  So ``1 234,50``
    parses only under ``decimal_separator=","`` and ``1234,50`` is refused under ``"."``.

    Negative results are returned (the caller decides whether they are allowed).  The
    currency hint comes from a symbol/word/ISO code; ``$`` is read as USD and ``¥`` as CNY.
    """
    if decimal_separator not in (".", ","):
        raise ValueError("decimal_separator must be '.' or ','")
    text = _prep(value)
    if text is None:
        return None, None
    return _parse_amount_cached(text, decimal_separator)


def parse_amount_series(s: pd.Series, decimal_separator: str = ".") -> tuple[pd.Series, pd.Series, pd.Series]:
    """Vectorised :func:`parse_amount` -> ``(texts, currency_hints, reasons)``."""
    text = s.astype(object).where(s.notna(), "").astype(str)
    # fast path: already canonical (plain decimal with exactly two decimals)
    if decimal_separator == ".":
        fast = (text.str.match(r"^-?(?:0|[1-9][0-9]{0,14})\.[0-9]{2}$") & (text != "-0.00")).to_numpy(dtype=bool)
    else:
        fast = np.zeros(len(s), dtype=bool)
    v, r = _merge_fast(s, fast, lambda x: parse_amount(x, decimal_separator))
    amounts = v.to_numpy()
    texts = np.array([a.text if isinstance(a, Amount) else a for a in amounts], dtype=object)
    cur = np.array([a.currency if isinstance(a, Amount) else None for a in amounts], dtype=object)
    return (
        pd.Series(texts, index=s.index, dtype=object),
        pd.Series(cur, index=s.index, dtype=object),
        r,
    )


# --------------------------------------------------------------------------------------
# phones

# When a number without "+"/"00" starts with the default country code, it already carries
# it if its total length is one of these (e.g. 86 + 11-digit mobile = 13 digits; China has
# no 12/13-digit national numbers).  For other codes the default code is always prepended.
_WITH_CC_LENGTHS = {"86": (12, 13), "1": (11,), "852": (11,), "853": (11,), "886": (11, 12)}
_NO_TRUNK_PREFIX = {"39", "378", "379"}  # Italy & co. keep the leading 0 after the code
_EXTENSION_RE = re.compile(r"\s*(?:ext\.?|extension|x|#|转|分机)\s*\d{1,6}$", re.IGNORECASE)


@lru_cache(maxsize=200_000)
def _phone_cached(text: str, cc: str) -> tuple[str | None, str | None]:
    s = _EXTENSION_RE.sub("", text)
    if re.search(r"[^0-9\s+()\-./]", s):
        return None, f"invalid phone {text!r} (unexpected characters)"
    s = s.strip()
    plus = s.startswith("+")
    if "+" in s[1:]:
        return None, f"invalid phone {text!r} ('+' inside the number)"
    s = s.replace("(0)", "")
    digits = re.sub(r"[^0-9]", "", s)
    if plus:
        number = digits
    elif digits.startswith("00"):
        number = digits[2:]
    elif cc and digits.startswith(cc) and not digits.startswith("0") and len(digits) in _WITH_CC_LENGTHS.get(cc, ()):
        number = digits
    else:
        if not cc:
            return None, f"invalid phone {text!r} (no country code and no default)"
        national = digits if cc in _NO_TRUNK_PREFIX else digits[1:] if digits.startswith("0") else digits
        number = cc + national
    if number.startswith("0"):
        return None, f"invalid phone {text!r} (country code starts with 0)"
    if not 8 <= len(number) <= 15:
        return None, f"invalid phone {text!r} ({len(number)} digits with country code)"
    return "+" + number, None


def normalize_phone(value: Any, default_country_code: str | None = "86") -> tuple[str | None, str | None]:
    """``+<country code><number>`` digits only, e.g. ``+8613812345678``.

    ``+86 138 1234 5678``, ``138-1234-5678``, ``(010) 1234 5678`` (trunk ``0`` dropped),
    ``0086 138...`` (``00`` international prefix), ``+44 (0)20 ...`` all work.  Extensions
    (``ext 12``, ``转12``) are dropped.  A number that already starts with the default
    country code is kept as is only when its length proves it (see ``_WITH_CC_LENGTHS``).
    Idempotent on its own output.  Letters, <8 or >15 digits -> reason.
    """
    text = _prep(value)
    if text is None:
        return None, None
    cc = str(default_country_code or "").lstrip("+").strip()
    return _phone_cached(text, cc)


_E164_RE = re.compile(r"\+[1-9][0-9]{7,14}")
_CN_MOBILE_RE = re.compile(r"1[0-9]{10}")


def normalize_phone_series(s: pd.Series, default_country_code: str | None = "86") -> tuple[pd.Series, pd.Series]:
    """:func:`normalize_phone` over a Series -> ``(values, reasons)``."""
    e164 = _E164_RE.fullmatch
    cn = str(default_country_code or "").lstrip("+") == "86"

    def one(x: Any) -> tuple[str | None, str | None]:
        if x.__class__ is str:
            if e164(x):
                return x, None  # already canonical (the scalar parser returns it unchanged)
            if cn and _CN_MOBILE_RE.fullmatch(x):
                return "+86" + x, None  # national CN mobile, as the scalar parser does
        return normalize_phone(x, default_country_code)

    return _series_apply(s, one)
