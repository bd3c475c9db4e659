"""Decode vendor export files in Python (DuckDB has no GBK) and split them into records.

* :func:`detect_encoding` - BOM first (UTF-8, UTF-16 LE/BE), then strict UTF-8, then a
  UTF-16-without-BOM check (NUL byte pattern), then charset-normalizer.  GBK/GB2312
  detections are reported as ``gb18030`` (a superset); for small legacy CJK files, where
  charset-normalizer often says cp949/Shift-JIS, a strictly decodable ``gb18030`` is
  preferred (this project's CJK exports are Chinese).  A mostly-valid UTF-8 file with a few
  broken bytes is refused instead of being mis-read as a legacy code page.
* :func:`read_table` - decode, sniff the delimiter (tab, comma, semicolon), parse with the
  csv module and verify the record count; ``.xlsx`` through python-calamine.
* :func:`read_text_table` - the same, returning just ``(header, rows)``.

File-level problems raise :class:`FileRejected` with a message naming the file.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmtier.ingest.errors import FileRejected

__all__ = [
    "RawTable",
    "detect_encoding",
    "decode_bytes",
    "read_table",
    "read_text_table",
    "sniff_delimiter",
    "TEXT_SUFFIXES",
    "XLSX_SUFFIXES",
]

TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
XLSX_SUFFIXES = (".xlsx", ".xlsm")
_DELIMITERS = (",", "\t", ";")
_OTHER_DELIMITERS = (",", "\t", ";", "|")
_CN_FAMILY = {"gb2312", "gbk", "gb18030", "hz", "gb_2312", "gb_18030", "cp936", "ms936", "euc_cn", "euccn"}
_OTHER_CJK = {
    "cp949", "euc_kr", "johab", "iso2022_kr", "cp932", "shift_jis", "shift_jis_2004", "shift_jisx0213",
    "euc_jp", "euc_jis_2004", "euc_jisx0213", "iso2022_jp", "big5", "big5hkscs", "cp950",
}
_WESTERN_SINGLE = {"cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258",
                   "latin_1", "iso8859_1", "iso8859_2", "iso8859_15", "cp1006", "cp1125", "mac_latin2", "cp775",
                   "cp850", "cp437", "mac_roman", "cp858"}
_DETECT_SAMPLE = 4 * 1024 * 1024


@dataclass
class RawTable:
    """A file split into records.  ``rows[i]`` is data row ``row_numbers[i]`` (1-based,
    counted after the header, blank records included in the count but not in ``rows``)."""

    header: list[str]
    rows: list[list[str]]
    row_numbers: list[int]
    encoding: str
    delimiter: str | None  # None for xlsx
    sheet: str | None = None
    blank_rows: int = 0
    notes: list[str] = field(default_factory=list)


def _norm_codec(name: str) -> str:
    return name.lower().replace("-", "_")


def _canonical_name(name: str) -> str:
    n = _norm_codec(name)
    if n in _CN_FAMILY:
        return "gb18030"
    if n in ("utf_8", "utf8", "ascii"):
        return "utf-8"
    if n in ("utf_8_sig",):
        return "utf-8-sig"
    if n in ("utf_16_le", "utf_16le"):
        return "utf-16-le"
    if n in ("utf_16_be", "utf_16be"):
        return "utf-16-be"
    return n.replace("_", "-")


def _looks_utf16(data: bytes) -> str | None:
    """UTF-16 without BOM: in text made mostly of ASCII, every other byte is NUL."""
    sample = data[:65536]
    if len(sample) < 4:
        return None
    even = sample[0::2]
    odd = sample[1::2]
    ne, no = even.count(0), odd.count(0)
    if no >= 0.3 * len(odd) and ne <= 0.05 * len(even):
        return "utf-16-le"
    if ne >= 0.3 * len(even) and no <= 0.05 * len(odd):
        return "utf-16-be"
    return None


def _strict_ok(data: bytes, enc: str) -> bool:
    try:
        data.decode(enc)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def _broken_utf8(data: bytes) -> tuple[int, int] | None:
    """If ``data`` is UTF-8 with a few invalid bytes, return (offset of first bad byte, count)."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    ascii_chars = len(text.encode("ascii", errors="ignore"))
    good_non_ascii = len(text) - ascii_chars - bad
    if bad and good_non_ascii >= 20 * bad:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return exc.start, bad
    return None


def detect_encoding(path: str | os.PathLike[str] | None = None, *, data: bytes | None = None,
                    preferred: tuple[str, ...] | list[str] = ()) -> str:
    """Return a Python codec name for a text file.

    Results: ``utf-8-sig``, ``utf-16-le``/``utf-16-be`` (BOM or NUL pattern; decode with
    :func:`decode_bytes`, which drops the BOM), ``utf-8`` (also pure ASCII), ``gb18030`` for
    any GBK/GB2312/GB18030 detection, or whatever charset-normalizer reports otherwise.
    ``preferred`` encodings are tried (strictly) before charset-normalizer.  Raises
    :class:`FileRejected` for UTF-8 with broken bytes or when nothing decodes.
    """
    if data is None:
        if path is None:
            raise TypeError("detect_encoding needs a path or data")
        data = Path(path).read_bytes()
    name = str(path) if path is not None else "<bytes>"
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if data.startswith(b"\xff\xfe") and not data.startswith(b"\xff\xfe\x00\x00"):
        return "utf-16-le"
    if data.startswith(b"\xfe\xff"):
        return "utf-16-be"
    u16 = _looks_utf16(data)
    if u16:
        return u16
    if _strict_ok(data, "utf-8"):
        return "utf-8"
    broken = _broken_utf8(data)
    if broken:
        raise FileRejected(
            f"{name}: undecodable bytes: UTF-8 text with {broken[1]} invalid byte sequence(s), "
            f"first at byte offset {broken[0]}"
        )
    for enc in preferred:
        if _strict_ok(data, enc):
            return _canonical_name(enc)
    from charset_normalizer import from_bytes

    results = from_bytes(data[:_DETECT_SAMPLE])
    best = results.best()
    if best is None:
        if _strict_ok(data, "gb18030"):
            return "gb18030"
        raise FileRejected(f"{name}: undecodable bytes: no supported text encoding fits this file")
    enc = _norm_codec(best.encoding)
    if enc in _CN_FAMILY:
        return "gb18030"
    # Small samples are a coin toss for charset-normalizer (a few GBK characters come out as
    # cp949, big5 or even cp1252).  This project's legacy-encoded exports are Chinese: take
    # GB18030 when it is one of the candidates, decodes strictly and yields Chinese text.
    gb = next((m for m in results if _norm_codec(m.encoding) in _CN_FAMILY), None)
    if (gb is not None and gb.chaos <= best.chaos + 0.1 and _strict_ok(data, "gb18030")
            and _cjk_share(data.decode("gb18030")) >= 0.8):
        return "gb18030"
    if enc in _OTHER_CJK and _strict_ok(data, "gb18030") and _cjk_share(data.decode("gb18030")) >= 0.8:
        return "gb18030"
    if enc in _WESTERN_SINGLE and _strict_ok(data, "cp1252"):
        return "cp1252"
    return _canonical_name(enc)


def _cjk_share(text: str) -> float:
    """Share of the non-ASCII characters that are CJK ideographs / CJK or full-width punctuation."""
    non_ascii = [c for c in text if ord(c) > 127]
    if not non_ascii:
        return 0.0
    cjk = sum(
        1 for c in non_ascii
        if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf" or "\u3000" <= c <= "\u303f"
        or "\uff00" <= c <= "\uffef" or "\u2010" <= c <= "\u2027"
    )
    return cjk / len(non_ascii)


def decode_bytes(data: bytes, encoding: str, name: str = "<bytes>") -> str:
    """Strictly decode; drop a leading BOM; undecodable bytes raise :class:`FileRejected`."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise FileRejected(
            f"{name}: undecodable bytes for encoding {encoding}: byte offset {exc.start} "
            f"({data[exc.start:exc.start + 4]!r}): {exc.reason}"
        ) from None
    except LookupError:
        raise FileRejected(f"{name}: unknown encoding {encoding!r}") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def _first_record_fields(text: str, delimiter: str) -> list[str]:
    reader = csv.reader(io.StringIO(text[:200_000]), delimiter=delimiter)
    for rec in reader:
        if rec and any(f.strip() for f in rec):
            return rec
    return []


def sniff_delimiter(text: str) -> str:
    """Pick the delimiter that splits the header into the most fields (tab wins ties)."""
    best, best_n = ",", 0
    for d in ("\t", ",", ";"):
        n = len(_first_record_fields(text, d))
        if n > best_n:
            best, best_n = d, n
    return best


def _attr(mapping: Any, name: str, default: Any = None) -> Any:
    if mapping is None:
        return default
    if isinstance(mapping, dict):
        return mapping.get(name, default)
    return getattr(mapping, name, default)


def _line_offset(text: str, line: int) -> int:
    """Character offset where 1-based physical ``line`` starts (searching from the end)."""
    if line <= 1:
        return 0
    total = text.count("\n")
    from_end = total - (line - 1) + 1  # which newline, counted from the end, precedes the line
    pos = len(text)
    for _ in range(from_end):
        pos = text.rfind("\n", 0, pos)
        if pos < 0:
            return 0
    return pos + 1


def _normalized_text(text: str, name: str, encoding: str) -> str:
    """``text`` with \\n line ends; rejects NUL characters (binary or wrong encoding) and empty files."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        raise FileRejected(f"{name}: undecodable bytes: NUL characters after decoding as {encoding} "
                           "(binary file or wrong encoding)")
    if not text.strip():
        raise FileRejected(f"{name}: empty file (no header, no data rows)")
    return text


@dataclass
class _CsvRecords:
    """What the csv parser read: the header (stripped) and the non-blank data records."""

    header: list[str]
    rows: list[list[str]]
    starts: list[int]        # physical line where each kept record starts
    row_numbers: list[int]   # 1-based data record number of each kept record (blank ones counted)
    blank: int               # blank data records skipped
    data_no: int             # data records read, blank ones included
    last_start: int          # physical line where the last record starts


def _is_blank(rec: list[str]) -> bool:
    return not rec or not any(f.strip() for f in rec)


def _csv_records(text: str, name: str, delimiter: str) -> _CsvRecords:
    """Parse ``text``; rejects malformed CSV and a parser that did not consume every line."""
    n_lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[list[str]] = []
    starts: list[int] = []
    row_numbers: list[int] = []
    blank = 0
    data_no = 0
    prev_line = 0
    last_start = 0
    try:
        for rec in reader:
            start = prev_line + 1
            prev_line = reader.line_num
            last_start = start
            if header is None:
                if _is_blank(rec):
                    continue  # leading blank lines
                header = rec
                continue
            data_no += 1
            if _is_blank(rec):
                blank += 1
                continue
            rows.append(rec)
            starts.append(start)
            row_numbers.append(data_no)
    except csv.Error as exc:
        raise FileRejected(f"{name}: malformed CSV near line {reader.line_num}: {exc}") from None
    if reader.line_num != n_lines:
        raise FileRejected(
            f"{name}: record count mismatch: the csv parser consumed {reader.line_num} of {n_lines} lines"
        )
    if header is None:  # every line blank, or only delimiters: no header to read
        raise FileRejected(f"{name}: no header: every line is blank")
    return _CsvRecords([h.strip() for h in header], rows, starts, row_numbers, blank, data_no, last_start)


def _check_single_column_header(header: list[str], name: str, delimiter: str, sniffed: bool) -> None:
    """Wrong delimiter: one column whose name contains another delimiter."""
    if len(header) == 1:
        for d in _OTHER_DELIMITERS:
            if d != delimiter and d in header[0]:
                shown = "\\t" if d == "\t" else d
                raise FileRejected(
                    f"{name}: wrong delimiter: the header is a single column {header[0][:80]!r} containing "
                    f"{shown!r} ("
                    + ("no comma, tab or semicolon in the header" if sniffed else f"declared delimiter {delimiter!r}")
                    + "); set 'delimiter' in the mapping or fix the file"
                )


def _check_last_record(text: str, name: str, delimiter: str, recs: _CsvRecords) -> None:
    """A truncated last line: an unterminated quote (which the non-strict csv module accepts
    silently), or fewer fields than the header."""
    if not recs.rows:
        return
    tail = text[_line_offset(text, recs.last_start):]
    try:
        list(csv.reader(io.StringIO(tail), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise FileRejected(
                f"{name}: truncated last line: unterminated quoted field in the record "
                f"starting at line {recs.last_start}"
            ) from None
    last = recs.rows[-1]
    if len(last) < len(recs.header) and recs.row_numbers[-1] == recs.data_no:
        raise FileRejected(
            f"{name}: truncated last line: the last record (line {recs.starts[-1]}) has {len(last)} "
            f"fields, the header has {len(recs.header)}"
        )


def _check_multiline_records(name: str, recs: _CsvRecords) -> None:
    """A quoted field that swallowed line breaks and does not fit the header: rows may be lost."""
    width = len(recs.header)
    for rec, start in zip(recs.rows, recs.starts):
        if len(rec) != width and any("\n" in f for f in rec):
            raise FileRejected(
                f"{name}: malformed quoting: the record starting at line {start} spans several lines and has "
                f"{len(rec)} fields instead of {width}; rows after it cannot be counted"
            )


def _read_csv_text(text: str, name: str, encoding: str, delimiter: str, sniffed: bool = False) -> RawTable:
    text = _normalized_text(text, name, encoding)
    recs = _csv_records(text, name, delimiter)
    _check_single_column_header(recs.header, name, delimiter, sniffed)
    _check_last_record(text, name, delimiter, recs)
    _check_multiline_records(name, recs)
    if not recs.rows:
        raise FileRejected(f"{name}: empty file (header only, no data rows)")
    return RawTable(header=recs.header, rows=recs.rows, row_numbers=recs.row_numbers, encoding=encoding,
                    delimiter=delimiter, blank_rows=recs.blank)


def _cell_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, _dt.datetime):
        if v.microsecond:
            v = (v + _dt.timedelta(microseconds=500_000)).replace(microsecond=0)
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, _dt.time):
        return v.strftime("%H:%M:%S")
    if isinstance(v, _dt.timedelta):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return ""
        if v.is_integer() and abs(v) < 1e17:
            return str(int(v))
        return repr(v)
    return str(v)


def _read_xlsx(path: Path, sheet: str | int | None) -> RawTable:
    from python_calamine import CalamineWorkbook

    name = str(path)
    try:
        wb = CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own error types
        raise FileRejected(f"{name}: cannot read xlsx: {exc}") from None
    names = list(wb.sheet_names)
    if not names:
        raise FileRejected(f"{name}: empty file (workbook has no sheets)")
    if sheet is None:
        chosen = names[0]
    elif isinstance(sheet, int):
        if not 0 <= sheet < len(names):
            raise FileRejected(f"{name}: sheet index {sheet} not found; sheets: {', '.join(names)}")
        chosen = names[sheet]
    else:
        if sheet not in names:
            raise FileRejected(f"{name}: sheet {sheet!r} not found; sheets: {', '.join(names)}")
        chosen = sheet
    try:
        data = wb.get_sheet_by_name(chosen).to_python(skip_empty_area=False)
    except Exception as exc:
        raise FileRejected(f"{name}: cannot read sheet {chosen!r}: {exc}") from None
    header = None
    rows: list[list[str]] = []
    row_numbers: list[int] = []
    data_no = 0
    blank = 0
    for raw in data:
        rec = [_cell_text(v) for v in raw]
        while rec and rec[-1] == "":
            rec.pop()
        if header is None:
            if not any(f.strip() for f in rec):
                continue
            header = [h.strip() for h in rec]
            continue
        if len(rec) < len(header):  # a sheet has no "missing fields": empty cells are empty values
            rec += [""] * (len(header) - len(rec))
        data_no += 1
        if not any(f.strip() for f in rec):
            blank += 1
            continue
        rows.append(rec)
        row_numbers.append(data_no)
    if header is None:
        raise FileRejected(f"{name}: empty file (sheet {chosen!r} is empty)")
    if not rows:
        raise FileRejected(f"{name}: empty file (sheet {chosen!r}: header only, no data rows)")
    return RawTable(header=header, rows=rows, row_numbers=row_numbers, encoding="xlsx",
                    delimiter=None, sheet=chosen, blank_rows=blank)


def read_table(path: str | os.PathLike[str], mapping: Any = None, *, sheet: str | int | None = None) -> RawTable:
    """Read a csv/tsv/txt/xlsx export into a :class:`RawTable`.

    ``mapping`` (an ``EntityMapping``, a dict or None) may give ``encoding`` (``auto`` or a
    codec), ``preferred_encodings``, ``delimiter`` (``auto`` or a character) and ``sheet``.
    Blank records (all fields empty) are skipped but still counted in row numbers.
    """
    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise FileRejected(f"{name}: no such file")
    suffix = path.suffix.lower()
    if suffix in XLSX_SUFFIXES:
        return _read_xlsx(path, sheet if sheet is not None else _attr(mapping, "sheet"))
    if suffix == ".xls":
        raise FileRejected(f"{name}: legacy .xls is not supported; save as .xlsx or CSV")
    data = path.read_bytes()
    if not data.strip():
        raise FileRejected(f"{name}: empty file (0 data rows)")
    declared = _attr(mapping, "encoding", "auto") or "auto"
    if declared == "auto":
        encoding = detect_encoding(path, data=data, preferred=tuple(_attr(mapping, "preferred_encodings", ()) or ()))
    else:
        encoding = declared
    text = decode_bytes(data, encoding, name)
    delimiter = _attr(mapping, "delimiter", "auto") or "auto"
    sniffed = delimiter == "auto"
    if sniffed:
        delimiter = sniff_delimiter(text)
    return _read_csv_text(text, name, encoding, delimiter, sniffed)


def read_text_table(path: str | os.PathLike[str], mapping: Any = None, *, sheet: str | int | None = None
                    ) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of a csv/tsv/txt/xlsx export (see :func:`read_table`)."""
    table = read_table(path, mapping, sheet=sheet)
    return table.header, table.rows
