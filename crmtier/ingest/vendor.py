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


def _check_order_lines(values: dict[str, np.ndarray], bad: np.ndarray, reasons: "_Reasons") -> None:
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


def _normalize_table(table: RawTable, em: EntityMapping, path: Path, lookup: pd.DataFrame | None) -> NormalizedFile:
    entity = em.entity
    name = str(path)
    header = table.header
    width = len(header)
    display = _display_headers(header)
    keys = [vocab_key(h) for h in header]
    found = _find_columns(em, keys)

    # ---- required columns -------------------------------------------------------------
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

    used: set[int] = set()
    column_map: dict[str, list[str]] = {}
    for col, f in found.items():
        idxs = f.positions()
        used.update(idxs)
        column_map[col] = [display[i] for i in idxs]

    rows = table.rows
    n = len(rows)

    # ---- field counts -------------------------------------------------------------------
    reasons = _Reasons(n)
    lens = np.fromiter((len(r) for r in rows), dtype=np.int64, count=n)
    fixed: list[list[str]] = rows
    odd = np.flatnonzero(lens != width)
    bad_count = np.zeros(n, dtype=bool)
    if len(odd):
        fixed = list(rows)
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
    frame = pd.DataFrame(fixed, columns=range(width), dtype=object) if n else pd.DataFrame(columns=range(width))

    norm_cache: dict[int, np.ndarray] = {}

    def norm(i: int) -> np.ndarray:
        if i not in norm_cache:
            norm_cache[i] = normalize_text_series(frame[i]).to_numpy()
        return norm_cache[i]

    key_pos: dict[str, int] = {}
    for i, k in enumerate(keys):
        key_pos.setdefault(k, i)
    derived_errors: dict[str, np.ndarray] = {}

    def derived_text(col: str) -> np.ndarray:
        """Evaluate the mapping's expression row by row (once per distinct input)."""
        expr = em.derived[col]
        pos = {}
        for name in sorted(expr.columns):
            if vocab_key(name) not in key_pos:
                raise FileRejected(
                    f"{name}: column {name!r} used by {em.key('derived.' + col)} = {expr.text!r} "
                    f"(mapping {em.path}) is not in the file. Headers in the file: "
                    f"{', '.join(repr(h) for h in header)}"
                )
            pos[name] = norm(key_pos[vocab_key(name)])
        names = sorted(pos)
        out = np.full(n, None, dtype=object)
        errors = np.zeros(n, dtype=bool)
        cache: dict[tuple, tuple[str | None, str | None]] = {}
        kind = "amount" if COLUMN_KINDS.get(col) == "amount" else "derived"
        for i in range(n):
            args = tuple(pos[name][i] for name in names)
            hit = cache.get(args)
            if hit is None:
                row = dict(zip(names, args))
                try:
                    hit = (expr.evaluate(row.get, em.decimal_separator), None)
                except EvalError as exc:
                    label = "unparseable_amount" if kind == "amount" else "derived_value_error"
                    hit = (None, f"{label}: {col} = {expr.text} ({exc})")
                cache[args] = hit
            out[i], why = hit
            if why is not None:
                errors[i] = True
                reasons._push(i, why)
        derived_errors[col] = errors
        return out

    def column_text(col: str) -> np.ndarray:
        if col in em.constants:
            return np.full(n, em.constants[col], dtype=object)
        if col in em.derived:
            return derived_text(col)
        f = found.get(col)
        if f is None:
            return np.full(n, None, dtype=object)
        candidates = [norm(i) for i in f.single]
        if f.parts:
            parts = [(_coalesce([norm(i) for i in idxs]) if idxs else np.full(n, None, dtype=object)) for idxs in f.parts]
            sep = em.columns[col].sep
            joined = [sep.join(p for p in vals if p) or None for vals in zip(*parts)]
            candidates.append(np.array(joined, dtype=object) if n else np.full(0, None, dtype=object))
        # a single full-value column wins, row by row; the joined parts fill its gaps
        return _coalesce(candidates)

    values: dict[str, np.ndarray] = {}
    invalid_notes: list[dict[str, str] | None] = [None] * n

    def note(mask: np.ndarray, col: str, raw: np.ndarray) -> None:
        for i in np.flatnonzero(mask):
            d = invalid_notes[i]
            if d is None:
                d = invalid_notes[i] = {}
            d[col] = raw[i]

    currency_hint = np.full(n, None, dtype=object)
    negatives: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    rounded_notes: dict[int, dict[str, str]] = {}  # row -> {column: value as written}
    raw_present: dict[str, np.ndarray] = {}
    present_cols = [c for c in list(CANONICAL_COLUMNS[entity]) + ["customer_name", "customer_phone", "original_order_id"]
                    if em.provides(c)]
    for col in present_cols:
        text = column_text(col)
        kind = COLUMN_KINDS.get(col, "text")
        has = np.array([v is not None for v in text], dtype=bool)
        # a row whose expression failed has its reason already: no missing_required either
        raw_present[col] = has | derived_errors[col] if col in derived_errors else has
        if kind == "date":
            vals, why = parse_date_series(pd.Series(text, dtype=object), em.date_order,
                                          em.column_date_formats.get(col, em.date_formats))
            vals, why = _obj(vals), why.to_numpy()
            vals, why = _only_declared(text, vals, why, em.column_date_formats.get(col))
            bad = has & (vals == None)  # noqa: E711
            reasons.add(bad, lambda i, text=text, why=why, col=col: f"unparseable_date: {col}={_q(text[i])} ({why[i]})")
        elif kind == "timestamp":
            vals, why = parse_timestamp_series(pd.Series(text, dtype=object), em.date_order, em.timezone,
                                               em.column_date_formats.get(col, em.date_formats))
            vals, why = _obj(vals), why.to_numpy()
            vals, why = _only_declared(text, vals, why, em.column_date_formats.get(col))
            bad = has & (vals == None)  # noqa: E711
            reasons.add(bad, lambda i, text=text, why=why, col=col: f"unparseable_date: {col}={_q(text[i])} ({why[i]})")
        elif kind == "amount":
            amounts, hints, why = parse_amount_series(pd.Series(text, dtype=object), em.decimal_separator)
            vals, why = _obj(amounts), why.to_numpy()
            vals, why, rounded = _declared_decimals(vals, why, em.amount_round)
            for i in np.flatnonzero(rounded):
                rounded_notes.setdefault(int(i), {})[col] = text[i]
            currency_hint = _obj(hints)
            bad = has & (vals == None)  # noqa: E711
            reasons.add(bad, lambda i, text=text, why=why, col=col: f"unparseable_amount: {col}={_q(text[i])} ({why[i]})")
            neg = np.array([v is not None and v.startswith("-") for v in vals], dtype=bool)
            if em.credit_notes:
                negatives[col] = (neg, text)  # allowed on credit notes: decided once status is known
            else:
                reasons.add(neg, lambda i, text=text, col=col: f"negative_amount: {col}={_q(text[i])}")
        elif kind == "phone":
            vals, _why = normalize_phone_series(pd.Series(text, dtype=object), em.phone_country_code)
            vals = _obj(vals)
            bad = has & (vals == None)  # noqa: E711
            if col == "phone":
                note(bad, col, text)
        elif kind == "gender":
            vocab = em.vocab.get(col, {})
            vals = _per_unique(text, lambda t, vocab=vocab: vocab.get(vocab_key(t)))
            bad = has & (vals == None)  # noqa: E711
            note(bad, col, text)
        elif kind in ("status", "event_type"):
            vocab = em.vocab.get(col, {})
            excl = em.exclude.get(col, frozenset())
            ks = _per_unique(text, vocab_key)
            vals = _per_unique(ks, vocab.get)
            excluded = _per_unique(ks, lambda k, excl=excl: k in excl).astype(bool) & has
            unknown = has & (vals == None) & ~excluded  # noqa: E711
            reasons.add(excluded, lambda i, text=text, kind=kind: f"excluded_{kind}: {_q(text[i])}")
            reasons.add(unknown, lambda i, text=text, kind=kind: f"unknown_{kind}: {_q(text[i])}")
        else:
            vals = text
            if col in em.vocab:
                vocab = em.vocab[col]
                vals = _per_unique(text, lambda t, vocab=vocab: vocab.get(vocab_key(t), t))
            if col in em.exclude:
                excl = em.exclude[col]
                excluded = _per_unique(text, lambda t, excl=excl: vocab_key(t) in excl).astype(bool)
                reasons.add(excluded, lambda i, text=text, col=col: f"excluded_{col}: {_q(text[i])}")
        values[col] = np.asarray(vals, dtype=object) if n else np.full(0, None, dtype=object)

    # ---- credit notes: a negative amount is a return only with status refunded -----------------
    for col, (neg, text) in negatives.items():
        status = values.get("status", np.full(n, None, dtype=object))
        not_return = neg & np.array([v != "refunded" for v in status], dtype=bool)
        reasons.add(not_return, lambda i, text=text, col=col: f"negative_amount: {col}={_q(text[i])} "
                    "(only a credit note, status refunded, may be negative)")

    # ---- currency ------------------------------------------------------------------------
    if "currency" in CANONICAL_COLUMNS[entity]:
        raw_cur = values.get("currency", np.full(n, None, dtype=object))
        codes = _per_unique(raw_cur, lambda c: normalize_currency(c)[0])
        badcur = np.array([r is not None and c is None for r, c in zip(raw_cur, codes)], dtype=bool)
        reasons.add(badcur, lambda i, raw_cur=raw_cur: f"unknown_currency: {_q(raw_cur[i])}")
        # the currency column wins, then a symbol on the amount, then the mapping's default
        out = [c if c is not None else (r if r is not None else (h if h is not None else em.currency))
               for c, r, h in zip(codes, raw_cur, currency_hint)]
        values["currency"] = np.array(out, dtype=object) if n else np.full(0, None, dtype=object)

    # ---- customer reference ----------------------------------------------------------------
    if entity in ("orders", "events"):
        cid = values.get("customer_id", np.full(n, None, dtype=object))
        ref_cols = [c for c in match_cols if c in values]
        need_match = np.array([c is None for c in cid], dtype=bool)
        ref_vals = {c: values[c] for c in ref_cols}
        has_ref = np.zeros(n, dtype=bool)
        for c in ref_cols:
            has_ref |= np.array([v is not None for v in ref_vals[c]], dtype=bool)
        to_match = need_match & has_ref
        if to_match.any():
            if lookup is None:
                raise FileRejected(
                    f"{name}: {int(to_match.sum())} row(s) name the customer by "
                    f"{'/'.join(c.replace('customer_', '') for c in ref_cols)} instead of customer_id, "
                    "but no customers_lookup was given to match them"
                )
            by_name, by_phone = _lookup_index(lookup, em.phone_country_code)
            cid = cid.copy()
            cache: dict[tuple, tuple[str | None, str | None]] = {}
            for i in np.flatnonzero(to_match):
                nm = ref_vals["customer_name"][i] if "customer_name" in ref_vals else None
                ph = ref_vals["customer_phone"][i] if "customer_phone" in ref_vals else None
                key = (nm, ph)
                res = cache.get(key)
                if res is None:
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
                        res = (next(iter(cands)), None)
                    elif not cands:
                        res = (None, "unmatched_customer: " + ", ".join(desc))
                    else:
                        res = (None, "ambiguous_customer: " + ", ".join(desc) + f" matches {len(cands)} customers")
                    cache[key] = res
                cid[i] = res[0]
                if res[1]:
                    reasons._push(i, res[1])
        values["customer_id"] = cid
        unresolved_no_ref = need_match & ~has_ref
        if "customer_id" in em.required:
            reasons.add(unresolved_no_ref, "missing_id: customer_id")

    # ---- ids and required values -------------------------------------------------------------
    id_col = em.id_column
    ids = values.get(id_col, np.full(n, None, dtype=object))
    if em.generate_missing_id:
        gen_mask = np.array([v is None for v in ids], dtype=bool)
        if gen_mask.any():
            ids = ids.copy()
            other = [c for c in CANONICAL_COLUMNS[entity] if c != id_col]
            for i in np.flatnonzero(gen_mask):
                basis = "\x1f".join(str(values[c][i]) if c in values and values[c][i] is not None else "" for c in other)
                ids[i] = "gen-" + hashlib.sha1(f"{em.source}\x1e{basis}".encode()).hexdigest()[:16]
        values[id_col] = ids
    else:
        reasons.add(np.array([v is None for v in ids], dtype=bool), f"missing_id: {id_col}")
    for col in em.required:
        if col == id_col or (col == "customer_id" and entity != "customers"):
            continue  # handled above
        vals = values.get(col)
        if vals is None:
            continue
        # a present-but-unparseable value already has its own reason
        miss = np.array([v is None for v in vals], dtype=bool) & ~raw_present.get(col, np.zeros(n, dtype=bool))
        reasons.add(miss, f"missing_required: {col}")

    # ---- duplicates among otherwise valid rows ----------------------------------------------
    bad = reasons.bad()
    ids = values[id_col]
    if em.order_lines:
        _check_order_lines(values, bad, reasons)
    else:
        seen: set[str] = set()
        for i in range(n):
            if bad[i]:
                continue
            v = ids[i]
            if v in seen:
                reasons._push(i, f"duplicate_id_in_file: {v}")
            else:
                seen.add(v)
    bad = reasons.bad()

    # ---- output frames ------------------------------------------------------------------------
    extra_idx = [i for i in range(width) if i not in used]
    # ignore unnamed columns that are empty everywhere (trailing delimiters)
    extra_idx = [
        i for i in extra_idx
        if header[i].strip() or any((r[i].strip() if i < len(r) else "") for r in fixed)
    ]
    extra_columns = [display[i] for i in extra_idx]
    good = np.flatnonzero(~bad)
    rn = np.asarray(table.row_numbers, dtype=np.int64)

    extras: list[str | None] = []
    if n:
        raw_cols = {i: frame[i].to_numpy() for i in extra_idx}
        for i in good:
            d: dict[str, Any] = {}
            for j in extra_idx:
                v = raw_cols[j][i]
                if v is not None and str(v).strip():
                    d[display[j]] = v
            if invalid_notes[i]:
                d["_invalid"] = invalid_notes[i]
            if i in rounded_notes:
                d["_rounded"] = rounded_notes[i]
            if "original_order_id" in values and values["original_order_id"][i] is not None:
                d["original_order_id"] = values["original_order_id"][i]  # a credit note's reference
            extras.append(_json(d) if d else None)

    out: dict[str, Any] = {}
    for col in CANONICAL_COLUMNS[entity]:
        arr = values.get(col, np.full(n, None, dtype=object))
        out[col] = pd.Series(arr[good] if n else [], dtype="str")
    out["_row_number"] = pd.Series(rn[good] if n else [], dtype="int64")
    out["_extra"] = pd.Series(extras, dtype="str")
    rows_df = pd.DataFrame(out) if n else _empty_rows_frame(entity)
    rows_df = rows_df.reset_index(drop=True)

    qidx = np.flatnonzero(bad)
    q_rows = []
    for i in qidx:
        rec = rows[i]
        raw = {display[j]: (rec[j] if j < len(rec) else None) for j in range(width)}
        if len(rec) > width:
            raw["_overflow"] = rec[width:]
        items = reasons.items[i] or []
        if items and items[0].startswith("field_count"):
            items = items[:1]  # other checks ran on misaligned fields: not meaningful
        q_rows.append((int(rn[i]), "; ".join(items), _json(raw)))
    quarantined = pd.DataFrame(q_rows, columns=QUARANTINE_COLUMNS)
    quarantined = quarantined.astype({"_row_number": "int64", "reason": "str", "raw_values": "str"})

    result = NormalizedFile(
        rows=rows_df,
        quarantined=quarantined,
        extra_columns=extra_columns,
        encoding=table.encoding,
        rows_in=n,
        source=em.source,
        entity=entity,
        path=path,
        delimiter=table.delimiter,
        sheet=table.sheet,
        header=list(header),
        column_map=column_map,
        rounded=sum(1 for i in rounded_notes if not bad[i]),
    )
    assert result.rows_in == len(result.rows) + len(result.quarantined)
    return result
