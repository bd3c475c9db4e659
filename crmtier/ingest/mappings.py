"""Source mapping files: how one CRM's export maps onto the canonical layout.

A source is described by ``<source>.yaml``, searched in (first hit wins):

1. the ``search_dirs`` passed by the caller,
2. ``$CRMTIER_SOURCES_DIR`` (one directory or several joined with ``os.pathsep``),
3. the packaged ``crmtier/sources/``.

So a user adds or overrides a source by dropping a YAML file in ``$CRMTIER_SOURCES_DIR``;
no Python is needed.  Schema (every key except ``entities`` is optional)::

    source: fxiaoke                 # must equal the file name stem when given
    description: free text
    settings:                       # defaults for every entity; an entity may override any key
      encoding: auto                # auto | utf-8 | utf-8-sig | gb18030 | utf-16-le | utf-16-be | ...
      preferred_encodings: [gb18030]  # tie-break when auto-detection is unsure (legacy CJK bytes)
      delimiter: auto               # auto | "," | "\\t" | ";" | "|"
      date_order: ymd               # dmy | mdy | ymd: how 03/04/2024 is read (never guessed)
      date_formats: []              # extra strptime formats, tried before the built-in ones
      timezone: UTC                 # zone of naive timestamps in the file (converted to UTC)
      currency: CNY                 # currency when neither a column nor a symbol says one
      phone_country_code: "86"      # prepended to national phone numbers
      decimal_separator: "."        # "." (1,234.50) or "," (1.234,50)
      id_normalize: trim            # customer ids: trim | trim_upper | trim_lower (applied in
                                    #   staging, so " c1" in orders finds customer "C1" with trim_upper)
    entities:
      customers | orders | events:
        sheet: Contacts             # xlsx only: sheet name or 0-based index (default: first)
        required: [customer_id, created_at, email]  # canonical columns that must exist (and be
                                    #   non-empty); default and minimum: crmtier/layout.py REQUIRED
        customer_match: [customer_id, name, phone]   # orders/events: how the customer is named
        generate_missing_id: false  # derive a stable id from the row when the id is absent
        columns:                    # canonical column -> accepted header names, by priority
          customer_id: [客户编号, 客户ID]
          phone: [手机, 电话]          # several present -> first non-empty value per row
          name:                     # or a mapping:
            headers: [Full Name]    #   single-column alternatives (preferred when present)
            concat: [[First Name], [Last Name]]   # else join these parts (each: aliases)
            sep: " "
        vocab:                      # canonical value -> raw values (case/width/space-insensitive)
          status: {paid: [已付款], refunded: [已退款], cancelled: [已取消]}
        exclude:                    # raw values that mark rows which are not data (quarantined
          status: [草稿]            #   as "excluded_status"), e.g. open deal stages
        constants:                  # a canonical column with one value for every row
          currency: GBP             #   (checked like a file value: GBP must be a currency)
        derived:                    # a canonical column computed from the file's own columns
          amount: Quantity * UnitPrice            # (crmtier/ingest/expressions.py: the grammar; no eval)
          status: refunded when InvoiceNo starts with C else paid
        date_formats:               # a list (every date column) or per column; a column's own
          order_time: ["%m/%d/%Y %H:%M"]   #   formats are the only ones accepted for it
        order_lines: false          # orders: rows sharing an order id are lines of one order
                                    #   (raw keeps every line; staging sums them: see README)
        credit_notes: false         # orders: a negative amount with status refunded is a
                                    #   credit note (a return), subtracted from net spend
        derive_customers: false     # orders: no customers file; one customer per distinct
                                    #   customer id, created_at = its first order time
        amount_round: null          # decimals to round amounts to (counted in _extra._rounded);
                                    #   null: more than 4 decimals is quarantined, never rounded
        <any settings key>: ...     # entity-level override
    export:                         # how `crmtier.samples.vendor_export` writes this vendor's files
      format: csv                   # csv | tsv | txt | xlsx
      encoding: utf-8               # utf-8 | utf-8-sig | gb18030 | utf-16 | utf-16-le | utf-16-be
      delimiter: ","
      date_format: "%Y-%m-%d"
      timestamp_format: "%Y-%m-%d %H:%M:%S"
      amount: {prefix: "", suffix: "", thousands: ""}
      phone: e164                   # e164 | national
      customer_ref: id              # id | name | name_phone | both (id and name): how
                                    #   orders/events name the customer
      xlsx_typed: true              # xlsx: dates/amounts as typed cells
      sheet: Sheet1
      entities: {customers: {format: xlsx, sheet: Contacts}}   # per-entity overrides

Pseudo-column ``original_order_id`` (orders): a credit note's reference to the order it returns,
when the export has one; kept in ``_extra.original_order_id`` (a generic file's extra column of that
name lands in the same place) and shown by staging.  Pseudo-columns ``customer_name`` and
``customer_phone`` (orders/events only) carry the
customer's name / phone when the export names the customer instead of giving its id;
``customer_match`` lists which of ``customer_id``, ``name``, ``phone`` may be used.
"""

from __future__ import annotations

import codecs
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from crmtier import layout
from crmtier.ingest.expressions import Expression, ExpressionError, compile_expression
from crmtier.ingest.parsing import DATE_ORDERS, build_vocab, vocab_key
from crmtier.layout import AMOUNT_DECIMALS  # more decimals are quarantined unless `amount_round` says

__all__ = [
    "CANONICAL_COLUMNS",
    "ENTITIES",
    "ID_COLUMN",
    "COLUMN_KINDS",
    "VOCAB_VALUES",
    "PACKAGED_SOURCES_DIR",
    "MappingError",
    "ColumnSpec",
    "ExportSpec",
    "EntityMapping",
    "Mapping",
    "load_mapping",
    "load_mapping_file",
    "list_sources",
    "source_search_dirs",
]

ENTITIES = layout.ENTITIES
CANONICAL_COLUMNS: dict[str, tuple[str, ...]] = layout.COLUMNS
# not output columns: used to find the customer when the export names it instead of its id
PSEUDO_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": (),
    "orders": ("customer_name", "customer_phone", "original_order_id"),
    "events": ("customer_name", "customer_phone"),
}
MATCH_KEYS = {"customer_id": "customer_id", "name": "customer_name", "phone": "customer_phone"}
ID_COLUMN = layout.BUSINESS_KEY
COLUMN_KINDS: dict[str, str] = {
    "birth_date": "date",
    "created_at": "timestamp",
    "order_time": "timestamp",
    "event_time": "timestamp",
    "amount": "amount",
    "phone": "phone",
    "customer_phone": "phone",
    "gender": "gender",
    "status": "status",
    "event_type": "event_type",
    "currency": "currency",
}
VOCAB_VALUES: dict[str, tuple[str, ...]] = layout.VOCABULARIES
# A mapping without `required` (the generic one) requires layout.REQUIRED (created_at when it maps
# it): the generic .csv reader and the generic mapping (.xlsx, .tsv, ...) reject the same files.
DEFAULT_REQUIRED = layout.REQUIRED

PACKAGED_SOURCES_DIR = Path(__file__).resolve().parents[1] / "sources"  # crmtier/sources
_SOURCE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

_SETTINGS_DEFAULTS: dict[str, Any] = {
    "encoding": "auto",
    "preferred_encodings": [],
    "delimiter": "auto",
    "date_order": "ymd",
    "date_formats": [],
    "timezone": "UTC",
    "currency": None,
    "phone_country_code": "86",
    "decimal_separator": ".",
    "id_normalize": "trim",
}
ID_NORMALIZE_MODES = ("trim", "trim_upper", "trim_lower")
_ENTITY_KEYS = {"sheet", "required", "customer_match", "generate_missing_id", "columns", "vocab", "exclude",
                "constants", "derived", "order_lines", "credit_notes", "derive_customers", "amount_round"}
_ORDERS_ONLY_KEYS = ("order_lines", "credit_notes", "derive_customers")

_EXPORT_DEFAULTS: dict[str, Any] = {
    "format": "csv",
    "encoding": "utf-8",
    "delimiter": ",",
    "date_format": "%Y-%m-%d",
    "timestamp_format": "%Y-%m-%d %H:%M:%S",
    "amount": {"prefix": "", "suffix": "", "thousands": ""},
    "phone": "e164",
    "customer_ref": "id",
    "xlsx_typed": True,
    "sheet": "Sheet1",
}
_TOP_KEYS = {"source", "description", "settings", "entities", "export"}


class MappingError(ValueError):
    """A mapping file is missing or malformed; the message names the file and the key."""


@dataclass(frozen=True)
class ColumnSpec:
    """How one canonical column is found in a file."""

    name: str
    headers: tuple[str, ...] = ()  # single-column aliases, by priority
    concat: tuple[tuple[str, ...], ...] = ()  # parts, each a tuple of aliases
    sep: str = " "

    def all_headers(self) -> tuple[str, ...]:
        out = list(self.headers)
        for part in self.concat:
            out.extend(part)
        return tuple(out)

    def describe(self) -> str:
        bits = [repr(h) for h in self.headers]
        if self.concat:
            bits.append(" + ".join("/".join(repr(a) for a in part) for part in self.concat))
        return ", ".join(bits)


@dataclass(frozen=True)
class ExportSpec:
    format: str
    encoding: str
    delimiter: str
    date_format: str
    timestamp_format: str
    amount_prefix: str
    amount_suffix: str
    amount_thousands: str
    phone: str
    customer_ref: str
    xlsx_typed: bool
    sheet: str


@dataclass(frozen=True)
class EntityMapping:
    source: str
    entity: str
    path: Path  # the mapping file, for error messages
    columns: dict[str, ColumnSpec]
    required: tuple[str, ...]
    customer_match: tuple[str, ...]
    generate_missing_id: bool
    sheet: str | int | None
    vocab: dict[str, dict[str, str]]  # column -> {vocab_key: canonical}
    vocab_spec: dict[str, dict[str, tuple[str, ...]]]  # column -> {canonical: aliases}
    exclude: dict[str, frozenset[str]]  # column -> {vocab_key}
    encoding: str
    preferred_encodings: tuple[str, ...]
    delimiter: str
    date_order: str
    date_formats: tuple[str, ...]
    timezone: str
    currency: str | None
    phone_country_code: str
    decimal_separator: str
    export: ExportSpec
    constants: dict[str, str] = field(default_factory=dict)  # column -> value for every row
    derived: dict[str, Expression] = field(default_factory=dict)  # column -> expression
    column_date_formats: dict[str, tuple[str, ...]] = field(default_factory=dict)  # strict, per column
    order_lines: bool = False
    credit_notes: bool = False
    derive_customers: bool = False
    amount_round: int | None = None
    id_normalize: str = "trim"

    def provides(self, column: str) -> bool:
        """The column comes from a header, a constant or an expression."""
        return column in self.columns or column in self.constants or column in self.derived

    @property
    def canonical_columns(self) -> tuple[str, ...]:
        return CANONICAL_COLUMNS[self.entity]

    @property
    def id_column(self) -> str:
        return ID_COLUMN[self.entity]

    def key(self, dotted: str) -> str:
        return f"entities.{self.entity}.{dotted}"


@dataclass(frozen=True)
class Mapping:
    source: str
    path: Path
    description: str
    entities: dict[str, EntityMapping] = field(default_factory=dict)

    def entity(self, entity: str) -> EntityMapping:
        try:
            return self.entities[entity]
        except KeyError:
            raise MappingError(
                f"{self.path}: no mapping for entity {entity!r} (key 'entities.{entity}'); "
                f"this source maps: {', '.join(self.entities) or 'nothing'}"
            ) from None


# ----------------------------------------------------------------------------------------
# validation helpers


def _err(path: Path, key: str, msg: str) -> MappingError:
    return MappingError(f"{path}: key '{key}': {msg}")


def _str_list(path: Path, key: str, value: Any, *, allow_empty: bool = True) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if value is None:
        value = []
    if not isinstance(value, list):
        raise _err(path, key, f"expected a list of strings, got {type(value).__name__}")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise _err(path, f"{key}[{i}]", f"expected a string, got {type(item).__name__}")
        text = str(item)
        if not text.strip():
            raise _err(path, f"{key}[{i}]", "empty string")
        out.append(text)
    if not out and not allow_empty:
        raise _err(path, key, "must not be empty")
    return tuple(out)


def _check_encoding(path: Path, key: str, v: Any) -> str:
    if not isinstance(v, str):
        raise _err(path, key, "expected a string")
    if v != "auto":
        try:
            codecs.lookup(v)
        except LookupError:
            raise _err(path, key, f"unknown encoding {v!r}") from None
    return v


def _check_preferred_encodings(path: Path, key: str, v: Any) -> tuple[str, ...]:
    encs = _str_list(path, key, v)
    for e in encs:
        try:
            codecs.lookup(e)
        except LookupError:
            raise _err(path, key, f"unknown encoding {e!r}") from None
    return encs


def _one_of(choices: tuple[str, ...], expected: str | None = None):
    """A setting check accepting only `choices` (`expected`: how the message lists them)."""
    listing = expected or f"one of {', '.join(choices)}"

    def check(path: Path, key: str, v: Any) -> Any:
        if v not in choices:
            raise _err(path, key, f"expected {listing}, got {v!r}")
        return v
    return check


_check_delimiter = _one_of(("auto", ",", "\t", ";", "|"), "auto, ',', '\\t', ';' or '|'")
_check_date_order = _one_of(DATE_ORDERS)
_check_decimal_separator = _one_of((".", ","), "'.' or ','")
_check_id_normalize = _one_of(ID_NORMALIZE_MODES)


def _check_date_formats(path: Path, key: str, v: Any) -> Any:
    if isinstance(v, dict):
        return {str(col): _str_list(path, f"{key}.{col}", fmts, allow_empty=False) for col, fmts in v.items()}
    return _str_list(path, key, v)


def _check_timezone(path: Path, key: str, v: Any) -> str:
    if not isinstance(v, str):
        raise _err(path, key, "expected a time-zone name such as UTC or Asia/Shanghai")
    if v.upper() not in ("UTC", "GMT"):
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise _err(path, key, f"unknown time zone {v!r}") from None
    return v


def _check_currency(path: Path, key: str, v: Any) -> Any:
    if v is not None and not (isinstance(v, str) and re.fullmatch(r"[A-Z]{3}", v)):
        raise _err(path, key, f"expected a 3-letter ISO 4217 code such as CNY, got {v!r}")
    return v


def _check_phone_country_code(path: Path, key: str, v: Any) -> str:
    text = str(v).lstrip("+") if v is not None else ""
    if v is not None and not re.fullmatch(r"\d{1,3}", text):
        raise _err(path, key, f"expected 1-3 digits such as \"86\", got {v!r}")
    return text


# setting -> its check, which returns the value to keep (or raises MappingError)
_SETTING_CHECKS = {
    "encoding": _check_encoding,
    "preferred_encodings": _check_preferred_encodings,
    "delimiter": _check_delimiter,
    "date_order": _check_date_order,
    "date_formats": _check_date_formats,
    "timezone": _check_timezone,
    "currency": _check_currency,
    "phone_country_code": _check_phone_country_code,
    "decimal_separator": _check_decimal_separator,
    "id_normalize": _check_id_normalize,
}


def _check_settings(path: Path, prefix: str, raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in raw.items():
        key = f"{prefix}{k}"
        check = _SETTING_CHECKS.get(k)
        if check is None:
            raise _err(path, key, f"unknown setting; known: {', '.join(sorted(_SETTINGS_DEFAULTS))}")
        out[k] = check(path, key, v)
    return out


def _parse_column(path: Path, key: str, name: str, raw: Any) -> ColumnSpec:
    if isinstance(raw, (str, list)):
        headers = _str_list(path, key, raw, allow_empty=False)
        return ColumnSpec(name=name, headers=headers)
    if isinstance(raw, dict):
        unknown = set(raw) - {"headers", "concat", "sep"}
        if unknown:
            raise _err(path, f"{key}.{sorted(unknown)[0]}", "unknown key; expected headers, concat, sep")
        headers = _str_list(path, f"{key}.headers", raw.get("headers"))
        concat_raw = raw.get("concat") or []
        if not isinstance(concat_raw, list):
            raise _err(path, f"{key}.concat", "expected a list of parts (each a list of header names)")
        concat = tuple(_str_list(path, f"{key}.concat[{i}]", p, allow_empty=False) for i, p in enumerate(concat_raw))
        if concat and len(concat) < 2:
            raise _err(path, f"{key}.concat", "needs at least two parts")
        sep = raw.get("sep", " ")
        if not isinstance(sep, str):
            raise _err(path, f"{key}.sep", "expected a string")
        if not headers and not concat:
            raise _err(path, key, "needs 'headers' or 'concat'")
        return ColumnSpec(name=name, headers=headers, concat=concat, sep=sep)
    raise _err(path, key, f"expected a list of header names or a mapping with headers/concat, got {type(raw).__name__}")


def _parse_export(path: Path, key: str, raw: Any, base: dict[str, Any]) -> dict[str, Any]:
    if raw is None:
        return dict(base)
    if not isinstance(raw, dict):
        raise _err(path, key, "expected a mapping")
    out = dict(base)
    for k, v in raw.items():
        kk = f"{key}.{k}"
        if k == "entities":
            continue
        if k not in _EXPORT_DEFAULTS:
            raise _err(path, kk, f"unknown key; known: {', '.join(sorted(_EXPORT_DEFAULTS))}, entities")
        if k == "format" and v not in ("csv", "tsv", "txt", "xlsx"):
            raise _err(path, kk, f"expected csv, tsv, txt or xlsx, got {v!r}")
        if k == "encoding":
            try:
                codecs.lookup(str(v))
            except LookupError:
                raise _err(path, kk, f"unknown encoding {v!r}") from None
        if k == "delimiter" and v not in (",", "\t", ";", "|"):
            raise _err(path, kk, f"expected ',', '\\t', ';' or '|', got {v!r}")
        if k in ("date_format", "timestamp_format", "sheet") and not isinstance(v, str):
            raise _err(path, kk, "expected a string")
        if k == "phone" and v not in ("e164", "national"):
            raise _err(path, kk, f"expected e164 or national, got {v!r}")
        if k == "customer_ref" and v not in ("id", "name", "name_phone", "both"):
            raise _err(path, kk, f"expected id, name, name_phone or both, got {v!r}")
        if k == "xlsx_typed" and not isinstance(v, bool):
            raise _err(path, kk, "expected true or false")
        if k == "amount":
            if not isinstance(v, dict):
                raise _err(path, kk, "expected a mapping with prefix, suffix, thousands")
            bad = set(v) - {"prefix", "suffix", "thousands"}
            if bad:
                raise _err(path, f"{kk}.{sorted(bad)[0]}", "unknown key; expected prefix, suffix, thousands")
            if v.get("thousands", "") not in ("", ",", ".", " "):
                raise _err(path, f"{kk}.thousands", "expected '', ',', '.' or ' '")
            v = {**base["amount"], **{a: str(b) for a, b in v.items() if b is not None}}
        out[k] = v
    return out


def _export_spec(d: dict[str, Any]) -> ExportSpec:
    amount = d["amount"]
    return ExportSpec(
        format=d["format"],
        encoding=d["encoding"],
        delimiter=d["delimiter"],
        date_format=d["date_format"],
        timestamp_format=d["timestamp_format"],
        amount_prefix=amount.get("prefix", ""),
        amount_suffix=amount.get("suffix", ""),
        amount_thousands=amount.get("thousands", ""),
        phone=d["phone"],
        customer_ref=d["customer_ref"],
        xlsx_typed=bool(d["xlsx_typed"]),
        sheet=d["sheet"],
    )


def _by_column(path: Path, ek: str, entity: str, raw: dict, key: str, shape: str) -> list[tuple[str, str, Any]]:
    """(column, its key for messages, value) of a per-column section (`vocab`, `exclude`), each a canonical column."""
    table = raw.get(key) or {}
    if not isinstance(table, dict):
        raise _err(path, f"{ek}.{key}", f"expected a mapping column -> {shape}")
    out = []
    for col, value in table.items():
        ck = f"{ek}.{key}.{col}"
        if col not in CANONICAL_COLUMNS[entity]:
            raise _err(path, ck, f"not a canonical {entity} column")
        out.append((col, ck, value))
    return out


def _parse_vocab(path: Path, ek: str, entity: str, raw: dict) -> tuple[dict[str, dict[str, str]],
                                                                 dict[str, dict[str, tuple[str, ...]]]]:
    """`vocab`: raw value -> canonical value per column (lookup, and the spec as written)."""
    vocab: dict[str, dict[str, str]] = {}
    vocab_spec: dict[str, dict[str, tuple[str, ...]]] = {}
    for col, vk, table in _by_column(path, ek, entity, raw, "vocab", "{canonical: [raw values]}"):
        if not isinstance(table, dict):
            raise _err(path, vk, "expected a mapping canonical value -> list of raw values")
        spec: dict[str, tuple[str, ...]] = {}
        for canon, aliases in table.items():
            canon = str(canon)
            if col in VOCAB_VALUES and canon not in VOCAB_VALUES[col]:
                raise _err(path, f"{vk}.{canon}",
                           f"not a canonical {col}; expected one of {', '.join(VOCAB_VALUES[col])}")
            spec[canon] = _str_list(path, f"{vk}.{canon}", aliases)
        try:
            vocab[col] = build_vocab(spec)
        except ValueError as exc:
            raise _err(path, vk, str(exc)) from None
        vocab_spec[col] = spec
    for col in VOCAB_VALUES:  # the layout's closed vocabularies, when the mapping names none
        if col in CANONICAL_COLUMNS[entity] and col not in vocab:
            spec = {v: () for v in VOCAB_VALUES[col]}
            vocab[col], vocab_spec[col] = build_vocab(spec), spec
    return vocab, vocab_spec


def _parse_exclude(path: Path, ek: str, entity: str, raw: dict,
                   vocab: dict[str, dict[str, str]]) -> dict[str, frozenset[str]]:
    """`exclude`: raw values whose rows are quarantined as excluded (e.g. open deal stages)."""
    exclude: dict[str, frozenset[str]] = {}
    for col, xk, values in _by_column(path, ek, entity, raw, "exclude", "list of raw values"):
        keys = frozenset(vocab_key(v) for v in _str_list(path, xk, values))
        clash = keys & set(vocab.get(col, {}))
        if clash:
            raise _err(path, xk, f"value {sorted(clash)[0]!r} is both excluded and in vocab.{col}")
        exclude[col] = keys
    return exclude


def _entity_settings(path: Path, ek: str, raw: Any, settings: dict[str, Any]) -> dict[str, Any]:
    """The entity's effective settings: the source's, overridden by the entity's own keys."""
    if not isinstance(raw, dict):
        raise _err(path, ek, "expected a mapping with 'columns'")
    setting_over = {k: v for k, v in raw.items() if k in _SETTINGS_DEFAULTS}
    unknown = set(raw) - _ENTITY_KEYS - set(_SETTINGS_DEFAULTS)
    if unknown:
        raise _err(
            path, f"{ek}.{sorted(unknown)[0]}",
            f"unknown key; known: {', '.join(sorted(_ENTITY_KEYS | set(_SETTINGS_DEFAULTS)))}",
        )
    return {**settings, **_check_settings(path, f"{ek}.", setting_over)}


def _parse_columns(path: Path, ek: str, entity: str, cols_raw: Any) -> dict[str, ColumnSpec]:
    """`columns`: canonical (or pseudo) column -> its headers; no header mapped to two columns."""
    if not isinstance(cols_raw, dict) or not cols_raw:
        raise _err(path, f"{ek}.columns", "expected a non-empty mapping canonical column -> header names")
    allowed = set(CANONICAL_COLUMNS[entity]) | set(PSEUDO_COLUMNS[entity])
    columns: dict[str, ColumnSpec] = {}
    seen_headers: dict[str, str] = {}
    for name, spec_raw in cols_raw.items():
        ck = f"{ek}.columns.{name}"
        if name not in allowed:
            expected = ", ".join(CANONICAL_COLUMNS[entity] + PSEUDO_COLUMNS[entity])
            raise _err(path, ck, f"not a canonical {entity} column; expected one of {expected}")
        spec = _parse_column(path, ck, name, spec_raw)
        for h in spec.all_headers():
            hk = vocab_key(h)
            other = seen_headers.get(hk)
            if other is not None and other != name:
                raise _err(path, ck, f"header {h!r} is also mapped to {other!r}")
            seen_headers[hk] = name
        columns[name] = spec
    return columns


def _parse_customer_match(path: Path, ek: str, entity: str, raw: dict[str, Any],
                          columns: dict[str, ColumnSpec]) -> tuple[str, ...]:
    """`customer_match` (orders/events): which of customer_id, name, phone may name the customer."""
    match = _str_list(path, f"{ek}.customer_match", raw.get("customer_match"))
    if match and entity == "customers":
        raise _err(path, f"{ek}.customer_match", "only orders and events can match customers")
    for m in match:
        if m not in MATCH_KEYS:
            raise _err(path, f"{ek}.customer_match", f"unknown key {m!r}; expected customer_id, name, phone")
        if MATCH_KEYS[m] not in columns:
            raise _err(path, f"{ek}.customer_match", f"{m!r} needs a column '{MATCH_KEYS[m]}' in columns")
    return match


def _parse_required(path: Path, ek: str, entity: str, raw: dict[str, Any], columns: dict[str, ColumnSpec],
                    constants: dict[str, str], derived: dict[str, Expression],
                    match: tuple[str, ...]) -> tuple[str, ...]:
    """`required` (default: the layout's), each one canonical and provided by the mapping."""
    # the layout's required columns; created_at only when mapped (a CRM may export no sign-up time)
    layout_required = [r for r in DEFAULT_REQUIRED[entity]
                       if r != "created_at" or r in columns or r in constants or r in derived]
    required = _str_list(path, f"{ek}.required", raw["required"]) if "required" in raw else layout_required
    missing = [r for r in layout_required if r not in required]
    if missing:  # a mapping may require more than the layout, never less: .csv and .xlsx files must agree
        raise _err(path, f"{ek}.required", f"leaves out {missing}, which crmtier/layout.py REQUIRED needs "
                   "(a file without them is rejected whole); list them too, or drop `required`")
    for r in required:
        if r not in CANONICAL_COLUMNS[entity]:
            raise _err(path, f"{ek}.required", f"{r!r} is not a canonical {entity} column")
        if r not in columns and r not in constants and r not in derived and not (r == "customer_id" and match):
            raise _err(path, f"{ek}.required", f"{r!r} is required but has no entry in columns, constants or derived")
    return tuple(required)


def _parse_generate_missing_id(path: Path, ek: str, entity: str, raw: dict[str, Any],
                               columns: dict[str, ColumnSpec], derived: dict[str, Expression]) -> bool:
    """`generate_missing_id`; without it the id column must be mapped or derived."""
    id_col = ID_COLUMN[entity]
    gen = raw.get("generate_missing_id", False)
    if not isinstance(gen, bool):
        raise _err(path, f"{ek}.generate_missing_id", "expected true or false")
    if id_col not in columns and id_col not in derived and not gen:
        raise _err(path, f"{ek}.columns", f"needs an entry for the id column {id_col!r} (or generate_missing_id: true)")
    return gen


def _parse_sheet(path: Path, ek: str, raw: dict[str, Any]) -> str | int | None:
    sheet = raw.get("sheet")
    if sheet is not None and (isinstance(sheet, bool) or not isinstance(sheet, (str, int))):
        raise _err(path, f"{ek}.sheet", "expected a sheet name or a 0-based index")
    return sheet


def _check_computed_in_vocab(path: Path, ek: str, constants: dict[str, str], derived: dict[str, Expression],
                             vocab: dict[str, dict[str, str]],
                             vocab_spec: dict[str, dict[str, tuple[str, ...]]]) -> None:
    """Every value a derived expression can give, and every constant, is in its column's vocabulary."""
    for col, expr in derived.items():
        if col in vocab:
            for value in expr.results():
                if vocab_key(value) not in vocab[col]:
                    raise _err(path, f"{ek}.derived.{col}",
                               f"result {value!r} is not a {col} of the vocabulary ({', '.join(vocab_spec[col])})")
    for col, value in constants.items():
        if col in vocab and vocab_key(value) not in vocab[col]:
            raise _err(path, f"{ek}.constants.{col}",
                       f"{value!r} is not a {col} of the vocabulary ({', '.join(vocab_spec[col])})")


def _parse_order_flags(path: Path, ek: str, entity: str, raw: dict[str, Any], columns: dict[str, ColumnSpec],
                       derived: dict[str, Expression]) -> dict[str, bool]:
    """`order_lines`, `credit_notes`, `derive_customers`: booleans only orders may set."""
    flags = {}
    for k in (*_ORDERS_ONLY_KEYS,):
        v = raw.get(k, False)
        if not isinstance(v, bool):
            raise _err(path, f"{ek}.{k}", "expected true or false")
        if v and entity != "orders":
            raise _err(path, f"{ek}.{k}", "only orders can set it")
        flags[k] = v
    if flags["derive_customers"] and not (set(columns) | set(derived)) & {"customer_id"}:
        raise _err(path, f"{ek}.derive_customers", "needs a customer_id column")
    return flags


def _parse_amount_round(path: Path, ek: str, raw: dict[str, Any]) -> int | None:
    amount_round = raw.get("amount_round")
    if amount_round is not None and (isinstance(amount_round, bool) or not isinstance(amount_round, int)
                                     or not 0 <= amount_round <= AMOUNT_DECIMALS):
        raise _err(path, f"{ek}.amount_round", f"expected null or a number of decimals 0-{AMOUNT_DECIMALS}")
    return amount_round


def _split_date_formats(path: Path, ek: str, entity: str,
                        formats: Any) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """(formats for every date column, formats per column): `date_formats` is one or the other."""
    column_formats: dict[str, tuple[str, ...]] = {}
    if isinstance(formats, dict):
        for col, fmts in formats.items():
            if COLUMN_KINDS.get(col) not in ("date", "timestamp") or col not in CANONICAL_COLUMNS[entity]:
                raise _err(path, f"{ek}.date_formats.{col}", f"not a date or timestamp column of {entity}")
            for f in fmts:
                if "%" not in f:
                    raise _err(path, f"{ek}.date_formats.{col}",
                               f"{f!r} is not a strptime format such as %m/%d/%Y %H:%M")
            column_formats[col] = tuple(fmts)
        formats = ()
    return tuple(formats), column_formats


def _entity_export(path: Path, entity: str, export_raw: Any, export_base: dict[str, Any]) -> ExportSpec:
    """How `crmtier.samples.vendor_export` writes this entity: `export`, then `export.entities.<entity>`."""
    ex_ent = {}
    if isinstance(export_raw, dict):
        ents = export_raw.get("entities") or {}
        if not isinstance(ents, dict):
            raise _err(path, "export.entities", "expected a mapping entity -> export settings")
        ex_ent = ents.get(entity)
    return _export_spec(_parse_export(path, f"export.entities.{entity}", ex_ent, export_base))


def _parse_entity(
    path: Path, source: str, entity: str, raw: Any, settings: dict[str, Any], export_base: dict[str, Any],
    export_raw: Any,
) -> EntityMapping:
    ek = f"entities.{entity}"
    eff = _entity_settings(path, ek, raw, settings)
    columns = _parse_columns(path, ek, entity, raw.get("columns"))
    constants, derived = _parse_computed(path, ek, entity, raw, columns)
    match = _parse_customer_match(path, ek, entity, raw, columns)
    required = _parse_required(path, ek, entity, raw, columns, constants, derived, match)
    gen = _parse_generate_missing_id(path, ek, entity, raw, columns, derived)
    sheet = _parse_sheet(path, ek, raw)
    vocab, vocab_spec = _parse_vocab(path, ek, entity, raw)
    exclude = _parse_exclude(path, ek, entity, raw, vocab)
    _check_computed_in_vocab(path, ek, constants, derived, vocab, vocab_spec)
    flags = _parse_order_flags(path, ek, entity, raw, columns, derived)
    amount_round = _parse_amount_round(path, ek, raw)
    formats, column_formats = _split_date_formats(path, ek, entity, eff["date_formats"])
    export = _entity_export(path, entity, export_raw, export_base)

    return EntityMapping(
        source=source,
        entity=entity,
        path=path,
        columns=columns,
        required=required,
        customer_match=match,
        generate_missing_id=gen,
        sheet=sheet,
        vocab=vocab,
        vocab_spec=vocab_spec,
        exclude=exclude,
        encoding=eff["encoding"],
        preferred_encodings=tuple(eff["preferred_encodings"]),
        delimiter=eff["delimiter"],
        date_order=eff["date_order"],
        date_formats=formats,
        timezone=eff["timezone"],
        currency=eff["currency"],
        phone_country_code=eff["phone_country_code"],
        decimal_separator=eff["decimal_separator"],
        export=export,
        constants=constants,
        derived=derived,
        column_date_formats=column_formats,
        order_lines=flags["order_lines"],
        credit_notes=flags["credit_notes"],
        derive_customers=flags["derive_customers"],
        amount_round=amount_round,
        id_normalize=eff["id_normalize"],
    )


def _parse_computed(
    path: Path, ek: str, entity: str, raw: dict[str, Any], columns: dict[str, ColumnSpec]
) -> tuple[dict[str, str], dict[str, Expression]]:
    """``constants`` and ``derived``: canonical columns not read from one header."""
    out: list[dict[str, Any]] = []
    for section in ("constants", "derived"):
        table = raw.get(section) or {}
        if not isinstance(table, dict):
            raise _err(path, f"{ek}.{section}", "expected a mapping canonical column -> "
                       + ("value" if section == "constants" else "expression"))
        parsed: dict[str, Any] = {}
        for col, value in table.items():
            key = f"{ek}.{section}.{col}"
            if col not in CANONICAL_COLUMNS[entity]:
                raise _err(path, key,
                           f"not a canonical {entity} column; expected one of {', '.join(CANONICAL_COLUMNS[entity])}")
            if col in columns:
                raise _err(path, key, f"{col!r} is also read from a header under columns: keep one")
            if section == "constants":
                if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
                    raise _err(path, key, "expected a non-empty text or number")
                parsed[col] = str(value)
            else:
                try:
                    parsed[col] = compile_expression(value, numeric=COLUMN_KINDS.get(col) == "amount")
                except ExpressionError as exc:
                    raise _err(path, key, f"invalid expression {value!r}: {exc}") from None
        out.append(parsed)
    constants, derived = out
    both = set(constants) & set(derived)
    if both:
        raise _err(path, f"{ek}.derived.{sorted(both)[0]}", "also under constants: keep one")
    return constants, derived


def load_mapping_file(path: str | os.PathLike[str]) -> Mapping:
    """Load and validate one mapping YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise MappingError(f"{path}: cannot read mapping file: {exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise MappingError(f"{path}: expected a mapping at the top level with key 'entities'")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise _err(path, sorted(unknown)[0], f"unknown top-level key; known: {', '.join(sorted(_TOP_KEYS))}")
    source = doc.get("source", path.stem)
    if not isinstance(source, str) or source != path.stem:
        raise _err(path, "source", f"must equal the file name stem {path.stem!r}, got {source!r}")
    settings_raw = doc.get("settings") or {}
    if not isinstance(settings_raw, dict):
        raise _err(path, "settings", "expected a mapping")
    settings = {**_SETTINGS_DEFAULTS, **_check_settings(path, "settings.", settings_raw)}
    ents = doc.get("entities")
    if not isinstance(ents, dict) or not ents:
        raise _err(path, "entities", "expected a non-empty mapping with customers / orders / events")
    export_raw = doc.get("export")
    export_base = _parse_export(path, "export", export_raw, _EXPORT_DEFAULTS)
    entities: dict[str, EntityMapping] = {}
    for entity, raw in ents.items():
        if entity not in ENTITIES:
            raise _err(path, f"entities.{entity}", f"unknown entity; expected one of {', '.join(ENTITIES)}")
        entities[entity] = _parse_entity(path, source, entity, raw, settings, export_base, export_raw)
    description = doc.get("description") or ""
    return Mapping(source=source, path=path, description=str(description), entities=entities)


def source_search_dirs(search_dirs: list[str | os.PathLike[str]] | None = None) -> list[Path]:
    dirs = [Path(d) for d in (search_dirs or [])]
    env = os.environ.get("CRMTIER_SOURCES_DIR", "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p.strip()]
    dirs.append(PACKAGED_SOURCES_DIR)
    return dirs


def load_mapping(source: str, search_dirs: list[str | os.PathLike[str]] | None = None) -> Mapping:
    """Find ``<source>.yaml`` (caller dirs, ``$CRMTIER_SOURCES_DIR``, packaged) and load it.

    ``source`` may also be a path to a ``.yaml``/``.yml`` file.
    """
    if source.endswith((".yaml", ".yml")) or os.sep in source:
        return load_mapping_file(source)
    if not _SOURCE_NAME_RE.match(source):
        raise MappingError(f"invalid source name {source!r}")
    dirs = source_search_dirs(search_dirs)
    for d in dirs:
        for ext in (".yaml", ".yml"):
            p = d / f"{source}{ext}"
            if p.is_file():
                return load_mapping_file(p)
    raise MappingError(
        f"no mapping file for source {source!r}: looked for {source}.yaml in "
        + ", ".join(str(d) for d in dirs)
        + f"; known sources: {', '.join(list_sources(search_dirs)) or 'none'}"
    )


def list_sources(search_dirs: list[str | os.PathLike[str]] | None = None) -> list[str]:
    """Names of every source with a mapping file in the search path (sorted, unique)."""
    names: set[str] = set()
    for d in source_search_dirs(search_dirs):
        if d.is_dir():
            for p in list(d.glob("*.yaml")) + list(d.glob("*.yml")):
                if _SOURCE_NAME_RE.match(p.stem):
                    names.add(p.stem)
    return sorted(names)


def with_settings(em: EntityMapping, **overrides: Any) -> EntityMapping:
    """Copy of an entity mapping with some settings replaced (e.g. ``encoding='gb18030'``)."""
    return replace(em, **overrides)
