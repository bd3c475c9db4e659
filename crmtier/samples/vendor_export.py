"""Write canonical frames as a vendor CRM would export them (sample exports for demos and tests).

Headers are the first alias of each mapped column; values follow the mapping's ``export`` section
(date/timestamp formats, amount prefix/thousands, vocabulary = first alias, phone style,
``customer_ref``). Values that are not canonical are written verbatim, so reading the file back
quarantines them again. The reading half is :mod:`crmtier.ingest.vendor`.
"""
from __future__ import annotations

import csv
import datetime as _dt
import os
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from crmtier.ingest.mappings import CANONICAL_COLUMNS, COLUMN_KINDS, EntityMapping, Mapping, load_mapping
from crmtier.ingest.parsing import normalize_phone

__all__ = ["write_vendor_export"]

FILE_SUFFIXES = {"csv": ".csv", "tsv": ".tsv", "txt": ".txt", "xlsx": ".xlsx"}


def _obj(values: Any) -> np.ndarray:
    """Values as an object array, NaN and empty strings as None."""
    arr = np.asarray(values, dtype=object).copy()
    arr[pd.isna(arr) | (arr == "")] = None
    return arr


def _fmt_strftime(value: _dt.datetime | _dt.date, fmt: str) -> str:
    """strftime with portable ``%-m``/``%-d``/``%-H``/``%-I``/``%-M`` (no zero padding)."""
    if "%-" in fmt:
        repl = {
            "%-m": str(value.month),
            "%-d": str(value.day),
        }
        if isinstance(value, _dt.datetime):
            repl.update({
                "%-H": str(value.hour),
                "%-I": str(value.hour % 12 or 12),
                "%-M": str(value.minute),
            })
        for k, v in repl.items():
            fmt = fmt.replace(k, v.replace("%", "%%"))
    return value.strftime(fmt)


def _format_amount_text(text: str, em: EntityMapping) -> str:
    ex = em.export
    d = Decimal(text)
    neg = d < 0
    d = abs(d)
    plain = format(d, "f")
    int_part, _, frac = plain.partition(".")
    if ex.amount_thousands:
        groups = []
        while len(int_part) > 3:
            groups.insert(0, int_part[-3:])
            int_part = int_part[:-3]
        groups.insert(0, int_part)
        int_part = ex.amount_thousands.join(groups)
    body = int_part + ((em.decimal_separator + frac) if frac else "")
    return ("-" if neg else "") + ex.amount_prefix + body + ex.amount_suffix


@lru_cache(maxsize=16)
def _zone_or_none(tz: str) -> ZoneInfo | None:
    return None if tz.upper() in ("UTC", "GMT") else ZoneInfo(tz)


def _to_local(ts: _dt.datetime, tz: str) -> _dt.datetime:
    zone = _zone_or_none(tz)
    aware = ts.replace(tzinfo=_dt.UTC)
    return aware.astimezone(zone) if zone is not None else aware


def _canonical_date(v: Any) -> _dt.date | None:
    if not isinstance(v, str) or len(v) != 10:
        return None
    try:
        return _dt.date.fromisoformat(v)
    except ValueError:
        return None


def _canonical_timestamp(v: Any) -> _dt.datetime | None:
    if not isinstance(v, str) or len(v) != 19 or v[10] != " ":
        return None
    try:
        return _dt.datetime.fromisoformat(v)
    except ValueError:
        return None


def _canonical_amount(v: Any) -> Decimal | None:
    if not isinstance(v, str) or not v or not all(c.isdigit() or c in "-." for c in v):
        return None
    try:
        d = Decimal(v)
    except ArithmeticError:
        return None
    return d if d.is_finite() else None


def _header_for(spec) -> list[str]:
    if spec.concat:
        return [part[0] for part in spec.concat]
    return [spec.headers[0]]


def _split_concat(value: str | None, parts: int, sep: str) -> list[str | None]:
    if value is None:
        return [None] * parts
    bits = value.split(sep) if sep else [value]
    if len(bits) <= 1:
        return [None] * (parts - 1) + [value]  # a single word goes to the last part (Last Name)
    head = sep.join(bits[: len(bits) - (parts - 1)])
    return [head] + bits[len(bits) - (parts - 1):]


# ---- one writer per column kind: (value, mapping, typed xlsx?) -> cell; non-canonical values verbatim


def _export_phone(v: Any, em: EntityMapping) -> Any:
    canon = normalize_phone(v, em.phone_country_code)[0] if v is not None else None
    prefix = "+" + em.phone_country_code
    if canon is None:
        return v
    if em.export.phone == "national" and canon.startswith(prefix):
        return canon[len(prefix):]
    return canon


def _write_date(v: Any, em: EntityMapping, typed: bool) -> Any:
    d = _canonical_date(v)
    if d is None:
        return v  # empty or not canonical: written as is
    return d if typed else _fmt_strftime(d, em.export.date_format)


def _write_timestamp(v: Any, em: EntityMapping, typed: bool) -> Any:
    t = _canonical_timestamp(v)
    if t is None:
        return v
    local = _to_local(t, em.timezone)
    return local.replace(tzinfo=None) if typed else _fmt_strftime(local, em.export.timestamp_format)


def _write_amount(v: Any, em: EntityMapping, typed: bool) -> Any:
    d = _canonical_amount(v)
    if d is None:
        return v
    return float(d) if typed else _format_amount_text(str(v), em)


def _write_phone(v: Any, em: EntityMapping, typed: bool) -> Any:
    return _export_phone(v, em)


VALUE_WRITERS: dict[str, Callable[[Any, EntityMapping, bool], Any]] = {
    "date": _write_date,
    "timestamp": _write_timestamp,
    "amount": _write_amount,
    "phone": _write_phone,
}


def _export_values(cname: str, vals: np.ndarray, em: EntityMapping, typed: bool) -> list[Any]:
    """One canonical column's values as the vendor writes them."""
    writer = VALUE_WRITERS.get(COLUMN_KINDS.get(cname, "text"))
    if writer is not None:
        return [writer(v, em, typed) for v in vals]
    if cname in em.vocab_spec:
        first = {canon: (aliases[0] if aliases else canon) for canon, aliases in em.vocab_spec[cname].items()}
        return [first.get(str(v), v) if v is not None else None for v in vals]
    return list(vals)


def _customer_lookups(frames: dict[str, pd.DataFrame]) -> tuple[dict[str, str], dict[str, str]]:
    """Name and phone by customer id, for orders/events that name their customer."""
    names_by_id: dict[str, str] = {}
    phones_by_id: dict[str, str] = {}
    cust = frames.get("customers")
    if cust is None or "name" not in cust.columns:
        return names_by_id, phones_by_id
    for cid, nm in zip(_obj(cust["customer_id"]), _obj(cust["name"])):
        if cid is not None and nm is not None:
            names_by_id.setdefault(str(cid), str(nm))
    if "phone" in cust.columns:
        for cid, ph in zip(_obj(cust["customer_id"]), _obj(cust["phone"])):
            if cid is not None and ph is not None:
                phones_by_id.setdefault(str(cid), str(ph))
    return names_by_id, phones_by_id


def _entity_columns(entity: str, frame: pd.DataFrame, em: EntityMapping, typed: bool,
                    lookups: tuple[dict[str, str], dict[str, str]], source: str) -> tuple[list[str], list[list[Any]]]:
    """(headers, columns) of one entity's export file."""
    names_by_id, phones_by_id = lookups
    n = len(frame)
    col = {c: (_obj(frame[c]) if c in frame.columns else np.full(n, None, dtype=object))
           for c in CANONICAL_COLUMNS[entity]}
    ref = em.export.customer_ref
    by_name = ref in ("name", "name_phone", "both") and "customer_name" in em.columns
    by_phone = ref == "name_phone" and "customer_phone" in em.columns
    if (by_name or by_phone) and n and not names_by_id:
        raise ValueError(f"{source}.{entity}: export.customer_ref '{ref}' needs frames['customers'] with names")
    ids = col["customer_id"]
    headers: list[str] = []
    columns: list[list[Any]] = []
    for cname, spec in em.columns.items():
        if cname == "customer_phone":
            if by_phone:
                raw = [phones_by_id.get(str(c)) if c is not None else None for c in ids]
                headers += _header_for(spec)
                columns.append([_export_phone(v, em) for v in raw])
            continue
        if cname == "customer_name":
            if by_name:
                headers += _header_for(spec)
                columns.append([names_by_id.get(str(c)) if c is not None else None for c in ids])
            continue
        if cname == "customer_id" and entity != "customers" and by_name and ref != "both":
            continue
        headers += _header_for(spec)
        if spec.concat:
            split = [_split_concat(v, len(spec.concat), spec.sep) for v in col[cname]]
            columns += [[s[k] for s in split] for k in range(len(spec.concat))]
        else:
            columns.append(_export_values(cname, col[cname], em, typed))
    return headers, columns


def write_vendor_export(
    frames: dict[str, pd.DataFrame],
    out_dir: str | os.PathLike[str],
    source: str,
    file_stem: str = "export",
    *,
    file_format: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    mapping: Mapping | None = None,
    search_dirs: list[str] | None = None,
) -> dict[str, Path]:
    """Write canonical frames as ``source`` would export them.

    Files go to ``out_dir/<source>/<entity>/<file_stem>.<csv|tsv|txt|xlsx>`` (so ``out_dir`` is
    the landing folder); returns ``{entity: path}``.  Keys starting with ``_`` are ignored.
    Values that are not canonical (e.g. the deliberately bad rows of ``generate_frames``:
    ``abc`` amounts, ``not-a-date``, unknown statuses) are written verbatim, so they are
    quarantined again when the file is read back; empty strings are written as empty.  Headers are the first
    alias of each
    mapped column, values use the mapping's ``export`` section (date/timestamp formats,
    amount prefix/thousands, status/event/gender vocabulary = first alias, phone style,
    ``customer_ref``).  ``file_format``/``encoding``/``delimiter`` override the mapping, e.g.
    ``file_format="txt", encoding="utf-16-le"`` for Excel "Unicode text" (tab, with BOM).
    Orders/events with ``customer_ref: name`` need ``frames["customers"]`` for the names.
    """
    mapping = mapping or load_mapping(source, search_dirs)
    out_dir = Path(out_dir)
    lookups = _customer_lookups(frames)
    written: dict[str, Path] = {}
    for entity, frame in frames.items():
        if entity.startswith("_"):
            continue
        em = mapping.entity(entity)
        ex = em.export
        fmt = file_format or ex.format
        typed = fmt == "xlsx" and ex.xlsx_typed
        headers, columns = _entity_columns(entity, frame, em, typed, lookups, source)
        target = out_dir / source / entity / f"{file_stem}{FILE_SUFFIXES[fmt]}"
        target.parent.mkdir(parents=True, exist_ok=True)
        records = list(zip(*columns)) if columns else []
        if fmt == "xlsx":
            _write_xlsx(target, ex.sheet, headers, records)
        else:
            delim = delimiter or ("\t" if fmt in ("tsv", "txt") else ex.delimiter)
            _write_text(target, encoding or ex.encoding, delim, headers, records)
        written[entity] = target
    return written


def _write_text(target: Path, enc: str, delim: str, headers: list[str], records: list[tuple]) -> None:
    norm = enc.lower().replace("_", "-")
    bom = norm in ("utf-16-le", "utf-16-be", "utf-16le", "utf-16be")  # Excel writes a BOM
    with open(target, "w", encoding=enc, newline="") as fh:
        if bom:
            fh.write("\ufeff")
        w = csv.writer(fh, delimiter=delim, lineterminator="\r\n")
        w.writerow(headers)
        for rec in records:
            w.writerow(["" if v is None else v for v in rec])


def _write_xlsx(target: Path, sheet: str, headers: list[str], records: list[tuple]) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=sheet)

    def cell(v: Any) -> Any:
        if isinstance(v, str) and v.startswith("="):  # keep text, never a formula
            c = WriteOnlyCell(ws, value=v)
            c.data_type = "s"
            return c
        return v

    ws.append([cell(h) for h in headers])
    for rec in records:
        ws.append([cell(v) for v in rec])
    wb.save(target)
