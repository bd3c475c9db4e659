"""Normalise one vendor export file to the canonical layout (writing vendor-style sample exports:
:mod:`crmtier.samples.vendor_export`).

``normalize_file(path, source, entity)`` reads a csv/tsv/txt/xlsx export with the source's
mapping (:mod:`crmtier.ingest.mappings`), maps headers to canonical columns, parses every value
(:mod:`crmtier.ingest.parsing`) and splits the data rows into loaded ``rows`` and ``quarantined``
rows, each quarantined row with a reason.  ``rows_in == len(rows) + len(quarantined)``.

Quarantine reasons (stable code, then ``": "`` and detail; several problems in one row are
joined with ``"; "`` in column order):

=========================  ==========================================================
``field_count``            record has more (non-empty) or fewer fields than the header
``missing_id``             id column empty (``order_id``; ``customer_id`` of an order with
                           neither id nor name/phone)
``missing_required``       another required column empty (e.g. ``amount``)
``unparseable_date``       date or timestamp present but not parseable / impossible
``unparseable_amount``     amount present but not a number in the declared format, more
                           than 4 decimals (without ``amount_round``), or a ``derived``
                           amount whose inputs are not plain numbers (``1_000``, ``1e5``)
``derived_value_error``    another ``derived`` column could not be computed for the row
``negative_amount``        amount below zero (refunds are a *status*, not a sign), except a
                           credit note (``credit_notes: true`` and status refunded)
``unknown_status``         status not in the mapping's vocabulary
``excluded_status``        status listed under ``exclude`` (e.g. open deal stages)
``unknown_event_type``     (and ``excluded_event_type``) same for events
``unknown_currency``       currency is not a 3-letter code after the vocabulary
``unmatched_customer``     order names a customer (name/phone) that is not in the lookup
``ambiguous_customer``     ... that matches several customers
``duplicate_id_in_file``   id already seen in an earlier *valid* row of the file (not with
                           ``order_lines: true``: repeated ids are lines of one order)
``conflicting_order_line`` a line of an order naming another customer, status or currency
                           than the order's first valid line
=========================  ==========================================================

Not quarantined (soft problems): an unknown gender or an invalid phone become empty and
the raw value is kept in ``_extra`` under ``"_invalid"``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crmtier.ingest.encodings import RawTable, read_table
from crmtier.ingest.errors import FileRejected
from crmtier.ingest.expressions import EvalError
from crmtier.ingest.mappings import (
    AMOUNT_DECIMALS,
    CANONICAL_COLUMNS,
    COLUMN_KINDS,
    MATCH_KEYS,
    EntityMapping,
    Mapping,
    MappingError,
    load_mapping,
)
from crmtier.ingest.parsing import (
    format_amount,
    normalize_currency,
    normalize_phone_series,
    normalize_text_series,
    parse_amount_series,
    parse_date_series,
    parse_timestamp_series,
    vocab_key,
)

__all__ = ["NormalizedFile", "MappingError", "normalize_file", "QUARANTINE_COLUMNS"]

QUARANTINE_COLUMNS = ["_row_number", "reason", "raw_values"]


@dataclass
class NormalizedFile:
    rows: pd.DataFrame  # canonical columns (text) + _row_number + _extra
    quarantined: pd.DataFrame  # _row_number, reason, raw_values
    extra_columns: list[str]
    encoding: str
    rows_in: int
    source: str = ""
    entity: str = ""
    path: Path | None = None
    delimiter: str | None = None
    sheet: str | None = None
    header: list[str] = field(default_factory=list)
    column_map: dict[str, list[str]] = field(default_factory=dict)  # canonical -> file headers used
    rounded: int = 0  # loaded rows with an amount rounded as the mapping declares (amount_round)


# ----------------------------------------------------------------------------------------
# helpers


def _obj(values: Any, n: int | None = None) -> np.ndarray:
    if values is None:
        return np.full(n or 0, None, dtype=object)
    arr = np.asarray(values, dtype=object).copy()
    mask = pd.isna(arr) | (arr == "")
    arr[mask] = None
    return arr


def _q(value: Any, limit: int = 80) -> str:
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return "'" + text.replace("'", "\\'") + "'"


def _display_headers(header: list[str]) -> list[str]:
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, h in enumerate(header):
        name = h if h else f"column_{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        else:
            seen[name] = 0
        out.append(name)
    return out


def _resolve_entity(source: str, entity: str, mapping: Mapping | EntityMapping | None,
                    search_dirs: list[str] | None) -> EntityMapping:
    if isinstance(mapping, EntityMapping):
        return mapping
    if mapping is None:
        mapping = load_mapping(source, search_dirs)
    return mapping.entity(entity)


@dataclass
class _Found:
    single: list[int]  # positions of single-column aliases present, by priority
    parts: list[list[int]]  # concat: positions per part ([] when the spec has no concat)

    def positions(self) -> list[int]:
        return self.single + [i for part in self.parts for i in part]


def _find_columns(em: EntityMapping, keys: list[str]) -> dict[str, _Found]:
    positions: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        positions.setdefault(k, []).append(i)
    found: dict[str, _Found] = {}
    for name, spec in em.columns.items():
        single = list(dict.fromkeys(i for alias in spec.headers for i in positions.get(vocab_key(alias), [])))
        parts = [
            list(dict.fromkeys(i for alias in part for i in positions.get(vocab_key(alias), [])))
            for part in spec.concat
        ]
        if not any(parts):
            parts = []
        if single or parts:
            found[name] = _Found(single, parts)
    return found


def _per_unique(values: np.ndarray, func: Any) -> np.ndarray:
    """``func`` applied once per distinct non-None value; None stays None (False for bools)."""
    out = np.empty(len(values), dtype=object)
    cache: dict[Any, Any] = {}
    for i, v in enumerate(values):
        if v is None:
            out[i] = None
            continue
        try:
            out[i] = cache[v]
        except KeyError:
            out[i] = cache[v] = func(v)
    return out


def _coalesce(arrays: list[np.ndarray]) -> np.ndarray:
    out = arrays[0].copy()
    for arr in arrays[1:]:
        empty = np.array([v is None for v in out], dtype=bool)
        if not empty.any():
            break
        out[empty] = arr[empty]
    return out


class _Reasons:
    def __init__(self, n: int):
        self.items: list[list[str] | None] = [None] * n

    def add(self, mask: np.ndarray, text: Any) -> None:
        """Add a reason to every row in ``mask``; ``text`` is a string or ``f(row_index)``."""
        idx = np.flatnonzero(mask)
        if isinstance(text, str):
            for i in idx:
                self._push(i, text)
        else:
            for i in idx:
                self._push(i, text(i))

    def _push(self, i: int, text: str) -> None:
        cur = self.items[i]
        if cur is None:
            self.items[i] = [text]
        else:
            cur.append(text)

    def bad(self) -> np.ndarray:
        return np.array([x is not None for x in self.items], dtype=bool)


def money_rules(source: str, entity: str) -> dict[str, bool]:
    """What a source's mapping declares about order lines and credit notes (for ingest)."""
    if entity != "orders":
        return {}
    em = load_mapping(source).entity("orders")
    return {"order_lines": em.order_lines, "credit_notes": em.credit_notes}


def _only_declared(text: np.ndarray, vals: np.ndarray, why: np.ndarray, formats: tuple[str, ...] | None):
    """A column with its own declared formats accepts those formats only (nothing guessed)."""
    if not formats:
        return vals, why
    vals, why = vals.copy(), why.copy()
    for i, raw in enumerate(text):
        if raw is None or vals[i] is None:
            continue
        if not _matches_any(raw, formats):
            vals[i] = None
            why[i] = f"not in the declared format {' or '.join(formats)}"
    return vals, why


@lru_cache(maxsize=100_000)
def _matches_any(raw: str, formats: tuple[str, ...]) -> bool:
    for fmt in formats:
        try:
            _dt.datetime.strptime(raw, fmt)
            return True
        except ValueError:
            continue
    return False


def _declared_decimals(vals: np.ndarray, why: np.ndarray, round_to: int | None):
    """Amounts keep their exact decimals up to AMOUNT_DECIMALS; more is quarantined, or
    rounded (half up) to ``round_to`` when the mapping declares it, and flagged as rounded."""
    vals, why = vals.copy(), why.copy()
    rounded = np.zeros(len(vals), dtype=bool)
    for i, v in enumerate(vals):
        if v is None:
            continue
        places = len(v.partition(".")[2])
        limit = AMOUNT_DECIMALS if round_to is None else round_to
        if places <= limit:
            continue
        if round_to is None:
            vals[i], why[i] = None, (f"{places} decimal places, more than {AMOUNT_DECIMALS}: "
                                     "declare amount_round in the mapping to round")
        else:
            exact = Decimal(v)
            vals[i] = format_amount(exact.quantize(Decimal(1).scaleb(-round_to), rounding=ROUND_HALF_UP))
            rounded[i] = vals[i] != format_amount(exact)
    return vals, why, rounded


def _check_order_lines(values: dict[str, np.ndarray], bad: np.ndarray, reasons: _Reasons) -> None:
    """Lines of one order (same order id) must agree on customer, status and currency: a line
    that does not is quarantined (the first valid line of the order sets them)."""
    first: dict[str, tuple] = {}
    ids = values["order_id"]
    cols = [c for c in ("customer_id", "status", "currency") if c in values]
    for i in range(len(ids)):
        if bad[i]:
            continue
        key = tuple(values[c][i] for c in cols)
        seen = first.setdefault(ids[i], key)
        if seen != key:
            diff = [f"{c}={values[c][i]!r} (line order: {v!r})" for c, v, now in zip(cols, seen, key) if v != now]
            reasons._push(i, f"conflicting_order_line: {ids[i]}: " + ", ".join(diff))


def _json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _empty_rows_frame(entity: str) -> pd.DataFrame:
    cols = {c: pd.Series([], dtype="str") for c in CANONICAL_COLUMNS[entity]}
    cols["_row_number"] = pd.Series([], dtype="int64")
    cols["_extra"] = pd.Series([], dtype="str")
    return pd.DataFrame(cols)


# ----------------------------------------------------------------------------------------
# customer matching


def _lookup_index(lookup: pd.DataFrame, cc: str) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    missing = [c for c in ("customer_id", "name", "phone") if c not in lookup.columns]
    if "customer_id" in missing:
        raise ValueError("customers_lookup needs a customer_id column (and name / phone to match on)")
    ids = normalize_text_series(lookup["customer_id"]).to_numpy()
    by_name: dict[str, set[str]] = {}
    by_phone: dict[str, set[str]] = {}
    if "name" in lookup.columns:
        names = normalize_text_series(lookup["name"]).to_numpy()
        for cid, nm in zip(ids, names):
            if cid is not None and nm is not None:
                by_name.setdefault(nm.casefold(), set()).add(cid)
    if "phone" in lookup.columns:
        phones, _ = normalize_phone_series(lookup["phone"], cc)
        for cid, ph in zip(ids, phones.to_numpy()):
            if cid is not None and ph is not None:
                by_phone.setdefault(ph, set()).add(cid)
    return by_name, by_phone


# ----------------------------------------------------------------------------------------
# normalize_file


def normalize_file(
    path: str | os.PathLike[str],
    source: str,
    entity: str,
    customers_lookup: pd.DataFrame | None = None,
    *,
    mapping: Mapping | EntityMapping | None = None,
    search_dirs: list[str] | None = None,
) -> NormalizedFile:
    """Read one export file of ``source``/``entity`` and normalise it (see module doc).

    Raises :class:`FileRejected` for file-level problems and
    :class:`~crmtier.ingest.mappings.MappingError` when the source has no (valid) mapping.
    """
    path = Path(path)
    em = _resolve_entity(source, entity, mapping, search_dirs)
    table = read_table(path, em)
    return _normalize_table(table, em, path, customers_lookup)


@dataclass
class _Columns:
    """The columns of one file being normalised: raw cells by position, normalised text per
    canonical column, parsed values, and what the per-kind parsers noted along the way."""

    em: EntityMapping
    name: str
    header: list[str]
    keys: list[str]
    found: dict[str, _Found]
    frame: pd.DataFrame
    n: int
    reasons: _Reasons
    values: dict[str, np.ndarray] = field(default_factory=dict)
    invalid_notes: list[dict[str, str] | None] = field(default_factory=list)
    rounded_notes: dict[int, dict[str, str]] = field(default_factory=dict)  # row -> {column: value as written}
    currency_hint: np.ndarray | None = None
    negatives: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    raw_present: dict[str, np.ndarray] = field(default_factory=dict)
    derived_errors: dict[str, np.ndarray] = field(default_factory=dict)
    _norm_cache: dict[int, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.invalid_notes = [None] * self.n
        self.currency_hint = np.full(self.n, None, dtype=object)
        self.key_pos: dict[str, int] = {}
        for i, k in enumerate(self.keys):
            self.key_pos.setdefault(k, i)

    def none(self) -> np.ndarray:
        return np.full(self.n, None, dtype=object)

    def norm(self, i: int) -> np.ndarray:
        if i not in self._norm_cache:
            self._norm_cache[i] = normalize_text_series(self.frame[i]).to_numpy()
        return self._norm_cache[i]

    def note(self, mask: np.ndarray, col: str, raw: np.ndarray) -> None:
        """Soft problem: the value is emptied and kept in `_extra` under `_invalid`."""
        for i in np.flatnonzero(mask):
            d = self.invalid_notes[i]
            if d is None:
                d = self.invalid_notes[i] = {}
            d[col] = raw[i]

    def derived_text(self, col: str) -> np.ndarray:
        """Evaluate the mapping's expression row by row (once per distinct input)."""
        em = self.em
        expr = em.derived[col]
        pos = {}
        for name in sorted(expr.columns):
            if vocab_key(name) not in self.key_pos:
                raise FileRejected(
                    f"{name}: column {name!r} used by {em.key('derived.' + col)} = {expr.text!r} "
                    f"(mapping {em.path}) is not in the file. Headers in the file: "
                    f"{', '.join(repr(h) for h in self.header)}"
                )
            pos[name] = self.norm(self.key_pos[vocab_key(name)])
        names = sorted(pos)
        out = self.none()
        errors = np.zeros(self.n, dtype=bool)
        cache: dict[tuple, tuple[str | None, str | None]] = {}
        label = "unparseable_amount" if COLUMN_KINDS.get(col) == "amount" else "derived_value_error"
        for i in range(self.n):
            args = tuple(pos[name][i] for name in names)
            hit = cache.get(args)
            if hit is None:
                try:
                    hit = (expr.evaluate(dict(zip(names, args)).get, em.decimal_separator), None)
                except EvalError as exc:
                    hit = (None, f"{label}: {col} = {expr.text} ({exc})")
                cache[args] = hit
            out[i], why = hit
            if why is not None:
                errors[i] = True
                self.reasons._push(i, why)
        self.derived_errors[col] = errors
        return out

    def column_text(self, col: str) -> np.ndarray:
        em, n = self.em, self.n
        if col in em.constants:
            return np.full(n, em.constants[col], dtype=object)
        if col in em.derived:
            return self.derived_text(col)
        f = self.found.get(col)
        if f is None:
            return self.none()
        candidates = [self.norm(i) for i in f.single]
        if f.parts:
            parts = [(_coalesce([self.norm(i) for i in idxs]) if idxs else self.none()) for idxs in f.parts]
            sep = em.columns[col].sep
            joined = [sep.join(p for p in vals if p) or None for vals in zip(*parts)]
            candidates.append(np.array(joined, dtype=object) if n else np.full(0, None, dtype=object))
        # a single full-value column wins, row by row; the joined parts fill its gaps
        return _coalesce(candidates)


# ---- one parser per column kind: (columns, col, text, has) -> parsed values; problems become
# reasons (quarantine) or notes (soft: emptied, kept in _extra)


def _parse_date_kind(cols: _Columns, col: str, text: np.ndarray, has: np.ndarray, timestamp: bool) -> np.ndarray:
    em = cols.em
    formats = em.column_date_formats.get(col, em.date_formats)
    if timestamp:
        vals, why = parse_timestamp_series(pd.Series(text, dtype=object), em.date_order, em.timezone, formats)
    else:
        vals, why = parse_date_series(pd.Series(text, dtype=object), em.date_order, formats)
    vals, why = _obj(vals), why.to_numpy()
    vals, why = _only_declared(text, vals, why, em.column_date_formats.get(col))
    bad = has & (vals == None)  # noqa: E711
    cols.reasons.add(bad, lambda i: f"unparseable_date: {col}={_q(text[i])} ({why[i]})")
    return vals


def _parse_date(cols: _Columns, col: str, text: np.ndarray, has: np.ndarray) -> np.ndarray:
    return _parse_date_kind(cols, col, text, has, timestamp=False)


def _parse_timestamp(cols: _Columns, col: str, text: np.ndarray, has: np.ndarray) -> np.ndarray:
    return _parse_date_kind(cols, col, text, has, timestamp=True)


def _parse_amount(cols: _Columns, col: str, text: np.ndarray, has: np.ndarray) -> np.ndarray:
    em = cols.em
    amounts, hints, why = parse_amount_series(pd.Series(text, dtype=object), em.decimal_separator)
    vals, why = _obj(amounts), why.to_numpy()
    vals, why, rounded = _declared_decimals(vals, why, em.amount_round)
    for i in np.flatnonzero(rounded):
        cols.rounded_notes.setdefault(int(i), {})[col] = text[i]
    cols.currency_hint = _obj(hints)
    bad = has & (vals == None)  # noqa: E711
    cols.reasons.add(bad, lambda i: f"unparseable_amount: {col}={_q(text[i])} ({why[i]})")
    neg = np.array([v is not None and v.startswith("-") for v in vals], dtype=bool)
    if em.credit_notes:
        cols.negatives[col] = (neg, text)  # allowed on credit notes: decided once status is known
    else:
        cols.reasons.add(neg, lambda i: f"negative_amount: {col}={_q(text[i])}")
    return vals


def _parse_phone(cols: _Columns, col: str, text: np.ndarray, has: np.ndarray) -> np.ndarray:
    vals, _why = normalize_phone_series(pd.Series(text, dtype=object), cols.em.phone_country_code)
    vals = _obj(vals)
    if col == "phone":
        cols.note(has & (vals == None), col, text)  # noqa: E711
    return vals


def _parse_gender(cols: _Columns, col: str, text: np.ndarray, has: np.ndarray) -> np.ndarray:
    vocab = cols.em.vocab.get(col, {})
    vals = _per_unique(text, lambda t: vocab.get(vocab_key(t)))
    cols.note(has & (vals == None), col, text)  # noqa: E711
    return vals


def _parse_closed_vocabulary(cols: _Columns, col: str, text: np.ndarray, has: np.ndarray) -> np.ndarray:
    """status, event_type: a value outside the mapping's vocabulary is quarantined (unknown_ or
    excluded_<kind>)."""
    kind = COLUMN_KINDS[col]
    vocab = cols.em.vocab.get(col, {})
    excl = cols.em.exclude.get(col, frozenset())
    ks = _per_unique(text, vocab_key)
    vals = _per_unique(ks, vocab.get)
    excluded = _per_unique(ks, lambda k: k in excl).astype(bool) & has
    unknown = has & (vals == None) & ~excluded  # noqa: E711
    cols.reasons.add(excluded, lambda i: f"excluded_{kind}: {_q(text[i])}")
    cols.reasons.add(unknown, lambda i: f"unknown_{kind}: {_q(text[i])}")
    return vals


def _parse_text(cols: _Columns, col: str, text: np.ndarray, has: np.ndarray) -> np.ndarray:
    em = cols.em
    vals = text
    if col in em.vocab:
        vocab = em.vocab[col]
        vals = _per_unique(text, lambda t: vocab.get(vocab_key(t), t))
    if col in em.exclude:
        excl = em.exclude[col]
        excluded = _per_unique(text, lambda t: vocab_key(t) in excl).astype(bool)
        cols.reasons.add(excluded, lambda i: f"excluded_{col}: {_q(text[i])}")
    return vals


PARSERS: dict[str, Any] = {
    "date": _parse_date,
    "timestamp": _parse_timestamp,
    "amount": _parse_amount,
    "phone": _parse_phone,
    "gender": _parse_gender,
    "status": _parse_closed_vocabulary,
    "event_type": _parse_closed_vocabulary,
}


def _check_required_columns(em: EntityMapping, found: dict[str, _Found], name: str, header: list[str]) -> None:
    """A required column the file does not have rejects the whole file."""
    match_cols = [MATCH_KEYS[m] for m in em.customer_match if m != "customer_id"]
    need = list(em.required)
    if em.id_column not in need and not em.generate_missing_id:
        need.insert(0, em.id_column)
    for col in need:
        if col in found or col in em.constants or col in em.derived:
            continue
        if col == "customer_id" and any(c in found for c in match_cols):
            continue
        spec = em.columns.get(col)
        accepts = spec.describe() if spec else "(none)"
        extra = ""
        if col == "customer_id" and match_cols:
            alts = "; ".join(f"{c}: {em.columns[c].describe()}" for c in match_cols)
            extra = f", or a customer reference ({alts})"
        raise FileRejected(
            f"{name}: required column '{col}' not found; mapping {em.path} "
            f"(key {em.key('columns.' + col)}) accepts headers: {accepts}{extra}. "
            f"Headers in the file: {', '.join(repr(h) for h in header)}"
        )


def _fit_field_counts(rows: list[list[str]], width: int, reasons: _Reasons) -> list[list[str]]:
    """Records cut or padded to the header's width; a record with fewer fields, or more non-empty
    ones, is quarantined (field_count)."""
    n = len(rows)
    lens = np.fromiter((len(r) for r in rows), dtype=np.int64, count=n)
    odd = np.flatnonzero(lens != width)
    if not len(odd):
        return rows
    fixed = list(rows)
    bad_count = np.zeros(n, dtype=bool)
    for i in odd:
        r = rows[i]
        if len(r) > width:
            if any(f.strip() for f in r[width:]):
                bad_count[i] = True
            fixed[i] = r[:width]
        else:
            bad_count[i] = True
            fixed[i] = r + [""] * (width - len(r))
    reasons.add(bad_count, lambda i: f"field_count: expected {width} fields, got {len(rows[i])}")
    return fixed


def _parse_columns(cols: _Columns) -> None:
    """Every canonical (and customer-reference) column the mapping provides, parsed by its kind."""
    em, n = cols.em, cols.n
    present = [c for c in list(CANONICAL_COLUMNS[em.entity]) + ["customer_name", "customer_phone", "original_order_id"]
               if em.provides(c)]
    for col in present:
        text = cols.column_text(col)
        has = np.array([v is not None for v in text], dtype=bool)
        # a row whose expression failed has its reason already: no missing_required either
        cols.raw_present[col] = has | cols.derived_errors[col] if col in cols.derived_errors else has
        vals = PARSERS.get(COLUMN_KINDS.get(col, "text"), _parse_text)(cols, col, text, has)
        cols.values[col] = np.asarray(vals, dtype=object) if n else np.full(0, None, dtype=object)


def _check_credit_notes(cols: _Columns) -> None:
    """A negative amount is a return only with status refunded."""
    for col, (neg, text) in cols.negatives.items():
        status = cols.values.get("status", cols.none())
        not_return = neg & np.array([v != "refunded" for v in status], dtype=bool)
        cols.reasons.add(not_return, lambda i, text=text, col=col: f"negative_amount: {col}={_q(text[i])} "
                         "(only a credit note, status refunded, may be negative)")


def _resolve_currency(cols: _Columns) -> None:
    """The currency column wins, then a symbol on the amount, then the mapping's default."""
    if "currency" not in CANONICAL_COLUMNS[cols.em.entity]:
        return
    raw_cur = cols.values.get("currency", cols.none())
    codes = _per_unique(raw_cur, lambda c: normalize_currency(c)[0])
    badcur = np.array([r is not None and c is None for r, c in zip(raw_cur, codes)], dtype=bool)
    cols.reasons.add(badcur, lambda i: f"unknown_currency: {_q(raw_cur[i])}")
    out = [c if c is not None else (r if r is not None else (h if h is not None else cols.em.currency))
           for c, r, h in zip(codes, raw_cur, cols.currency_hint)]
    cols.values["currency"] = np.array(out, dtype=object) if cols.n else np.full(0, None, dtype=object)


def _match_customer(nm: str | None, ph: str | None, by_name: dict, by_phone: dict) -> tuple[str | None, str | None]:
    """(customer id, None) for the one customer with this name and/or phone, else (None, reason)."""
    cands: set[str] | None = None
    desc = []
    if nm is not None:
        cands = set(by_name.get(nm.casefold(), set()))
        desc.append(f"name={_q(nm)}")
    if ph is not None:
        got = by_phone.get(ph, set())
        cands = set(got) if cands is None else cands & got
        desc.append(f"phone={_q(ph)}")
    cands = cands or set()
    if len(cands) == 1:
        return next(iter(cands)), None
    if not cands:
        return None, "unmatched_customer: " + ", ".join(desc)
    return None, "ambiguous_customer: " + ", ".join(desc) + f" matches {len(cands)} customers"


def _resolve_customers(cols: _Columns, lookup: pd.DataFrame | None) -> None:
    """Orders/events naming their customer (name, phone) instead of its id: matched in `lookup`."""
    em, n = cols.em, cols.n
    if em.entity not in ("orders", "events"):
        return
    match_cols = [MATCH_KEYS[m] for m in em.customer_match if m != "customer_id"]
    cid = cols.values.get("customer_id", cols.none())
    ref_vals = {c: cols.values[c] for c in match_cols if c in cols.values}
    need_match = np.array([c is None for c in cid], dtype=bool)
    has_ref = np.zeros(n, dtype=bool)
    for vals in ref_vals.values():
        has_ref |= np.array([v is not None for v in vals], dtype=bool)
    to_match = need_match & has_ref
    if to_match.any():
        if lookup is None:
            raise FileRejected(
                f"{cols.name}: {int(to_match.sum())} row(s) name the customer by "
                f"{'/'.join(c.replace('customer_', '') for c in ref_vals)} instead of customer_id, "
                "but no customers_lookup was given to match them"
            )
        by_name, by_phone = _lookup_index(lookup, em.phone_country_code)
        cid = cid.copy()
        cache: dict[tuple, tuple[str | None, str | None]] = {}
        for i in np.flatnonzero(to_match):
            key = (ref_vals["customer_name"][i] if "customer_name" in ref_vals else None,
                   ref_vals["customer_phone"][i] if "customer_phone" in ref_vals else None)
            if key not in cache:
                cache[key] = _match_customer(*key, by_name, by_phone)
            cid[i], why = cache[key]
            if why:
                cols.reasons._push(i, why)
    cols.values["customer_id"] = cid
    if "customer_id" in em.required:
        cols.reasons.add(need_match & ~has_ref, "missing_id: customer_id")


def _check_ids_and_required(cols: _Columns) -> None:
    """The id (or one generated from the row), then every other required value."""
    em, n, values = cols.em, cols.n, cols.values
    id_col = em.id_column
    ids = values.get(id_col, cols.none())
    if em.generate_missing_id:
        gen_mask = np.array([v is None for v in ids], dtype=bool)
        if gen_mask.any():
            ids = ids.copy()
            other = [c for c in CANONICAL_COLUMNS[em.entity] if c != id_col]
            for i in np.flatnonzero(gen_mask):
                basis = "\x1f".join(str(values[c][i]) if c in values and values[c][i] is not None else ""
                                    for c in other)
                ids[i] = "gen-" + hashlib.sha1(f"{em.source}\x1e{basis}".encode()).hexdigest()[:16]
        values[id_col] = ids
    else:
        cols.reasons.add(np.array([v is None for v in ids], dtype=bool), f"missing_id: {id_col}")
    for col in em.required:
        if col == id_col or (col == "customer_id" and em.entity != "customers"):
            continue  # handled above
        vals = values.get(col)
        if vals is None:
            continue
        # a present-but-unparseable value already has its own reason
        miss = np.array([v is None for v in vals], dtype=bool) & ~cols.raw_present.get(col, np.zeros(n, dtype=bool))
        cols.reasons.add(miss, f"missing_required: {col}")


def _check_duplicates(cols: _Columns) -> None:
    """An id repeated among otherwise valid rows (order lines: lines of one order must agree)."""
    bad = cols.reasons.bad()
    if cols.em.order_lines:
        _check_order_lines(cols.values, bad, cols.reasons)
        return
    ids = cols.values[cols.em.id_column]
    seen: set[str] = set()
    for i in range(cols.n):
        if bad[i]:
            continue
        v = ids[i]
        if v in seen:
            cols.reasons._push(i, f"duplicate_id_in_file: {v}")
        else:
            seen.add(v)


def _extra_json(cols: _Columns, i: int, extra_idx: list[int], raw_cols: dict[int, np.ndarray],
                display: list[str]) -> str | None:
    """`_extra` of a loaded row: unmapped columns, soft problems, rounded amounts, a credit note's reference."""
    d: dict[str, Any] = {}
    for j in extra_idx:
        v = raw_cols[j][i]
        if v is not None and str(v).strip():
            d[display[j]] = v
    if cols.invalid_notes[i]:
        d["_invalid"] = cols.invalid_notes[i]
    if i in cols.rounded_notes:
        d["_rounded"] = cols.rounded_notes[i]
    if "original_order_id" in cols.values and cols.values["original_order_id"][i] is not None:
        d["original_order_id"] = cols.values["original_order_id"][i]  # a credit note's reference
    return _json(d) if d else None


def _loaded_rows(cols: _Columns, good: np.ndarray, rn: np.ndarray, extra_idx: list[int],
                 display: list[str]) -> pd.DataFrame:
    n, entity = cols.n, cols.em.entity
    if not n:
        return _empty_rows_frame(entity).reset_index(drop=True)
    raw_cols = {i: cols.frame[i].to_numpy() for i in extra_idx}
    extras = [_extra_json(cols, i, extra_idx, raw_cols, display) for i in good]
    out: dict[str, Any] = {}
    for col in CANONICAL_COLUMNS[entity]:
        out[col] = pd.Series(cols.values.get(col, cols.none())[good], dtype="str")
    out["_row_number"] = pd.Series(rn[good], dtype="int64")
    out["_extra"] = pd.Series(extras, dtype="str")
    return pd.DataFrame(out).reset_index(drop=True)


def _quarantined_rows(rows: list[list[str]], bad: np.ndarray, rn: np.ndarray, reasons: _Reasons,
                      display: list[str], width: int) -> pd.DataFrame:
    q_rows = []
    for i in np.flatnonzero(bad):
        rec = rows[i]
        raw = {display[j]: (rec[j] if j < len(rec) else None) for j in range(width)}
        if len(rec) > width:
            raw["_overflow"] = rec[width:]
        items = reasons.items[i] or []
        if items and items[0].startswith("field_count"):
            items = items[:1]  # other checks ran on misaligned fields: not meaningful
        q_rows.append((int(rn[i]), "; ".join(items), _json(raw)))
    quarantined = pd.DataFrame(q_rows, columns=QUARANTINE_COLUMNS)
    return quarantined.astype({"_row_number": "int64", "reason": "str", "raw_values": "str"})


def _normalize_table(table: RawTable, em: EntityMapping, path: Path, lookup: pd.DataFrame | None) -> NormalizedFile:
    """Header -> canonical columns, each parsed by its kind (PARSERS); then the rules across
    columns (credit notes, currency, customer reference, ids, duplicates); every row is loaded
    or quarantined with its reasons."""
    header = table.header
    width = len(header)
    display = _display_headers(header)
    keys = [vocab_key(h) for h in header]
    found = _find_columns(em, keys)
    _check_required_columns(em, found, str(path), header)
    used = {i for f in found.values() for i in f.positions()}
    column_map = {col: [display[i] for i in f.positions()] for col, f in found.items()}

    rows = table.rows
    n = len(rows)
    reasons = _Reasons(n)
    fixed = _fit_field_counts(rows, width, reasons)
    frame = pd.DataFrame(fixed, columns=range(width), dtype=object) if n else pd.DataFrame(columns=range(width))
    cols = _Columns(em, str(path), header, keys, found, frame, n, reasons)
    _parse_columns(cols)
    _check_credit_notes(cols)
    _resolve_currency(cols)
    _resolve_customers(cols, lookup)
    _check_ids_and_required(cols)
    _check_duplicates(cols)
    bad = reasons.bad()

    # ignore unnamed columns that are empty everywhere (trailing delimiters)
    extra_idx = [i for i in range(width) if i not in used
                 and (header[i].strip() or any((r[i].strip() if i < len(r) else "") for r in fixed))]
    rn = np.asarray(table.row_numbers, dtype=np.int64)
    result = NormalizedFile(
        rows=_loaded_rows(cols, np.flatnonzero(~bad), rn, extra_idx, display),
        quarantined=_quarantined_rows(rows, bad, rn, reasons, display, width),
        extra_columns=[display[i] for i in extra_idx],
        encoding=table.encoding,
        rows_in=n,
        source=em.source,
        entity=em.entity,
        path=path,
        delimiter=table.delimiter,
        sheet=table.sheet,
        header=list(header),
        column_map=column_map,
        rounded=sum(1 for i in cols.rounded_notes if not bad[i]),
    )
    assert result.rows_in == len(result.rows) + len(result.quarantined)
    return result
