"""Reading a landing file the way the readers take it, and staging a generic-layout CSV with DuckDB.

`.gz` files are decompressed and mixed line endings made `\\n` (`_readable_copy`); the header is parsed
as CSV and checked against the canonical layout (`crmtier.layout`); records are counted apart from
DuckDB's reader, so a row DuckDB drops is a counted, quarantined row and never silently lost.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from crmtier.ingest.errors import FileRejected
from crmtier.layout import COLUMNS, REQUIRED

MAX_HEADER_BYTES = 16 << 20  # a header longer than this is not a header


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@contextmanager
def _readable_copy(path: Path):
    """The file as the readers take it: `.gz` decompressed, and mixed line endings (`\\n`,
    `\\r\\n` and a lone `\\r` in one file, which DuckDB's CSV reader refuses) made `\\n`; in a
    temporary folder, under the original name (without `.gz`). Unchanged files are read in place."""
    gz = path.name.lower().endswith(".gz")
    mixed = _has_mixed_line_endings(path) if path.suffix.lower() != ".xlsx" else False
    if not gz and not mixed:
        yield path
        return
    folder = Path(tempfile.mkdtemp(prefix="crmtier-ingest-"))
    try:
        target = folder / (path.name[:-3] if gz else path.name)
        with _open_bytes(path) as src, target.open("wb") as dst:
            if mixed:
                dst.write(_normalise_line_endings(src.read()))
            else:
                shutil.copyfileobj(src, dst, 1 << 22)
        yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _has_mixed_line_endings(path: Path) -> bool:
    """True when the file has a lone `\\r`, or both `\\n` and `\\r\\n` line ends (UTF-16 files,
    whose line ends are two bytes, are left to the vendor reader)."""
    lf = crlf = cr = 0
    previous = b""
    with _open_bytes(path) as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            if not previous and chunk[:2] in (b"\xff\xfe", b"\xfe\xff"):
                return False
            lf += chunk.count(b"\n")
            if previous == b"\r" or b"\r" in chunk:
                cr += chunk.count(b"\r")
                crlf += chunk.count(b"\r\n") + (previous == b"\r" and chunk[:1] == b"\n")
            previous = chunk[-1:]
    return cr != crlf or (crlf > 0 and lf != crlf)


def _normalise_line_endings(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def count_records(path: Path) -> int:
    """Data records of a CSV file (the header excluded), counted apart from the loading reader:
    line ends outside quotes, less blank lines (DuckDB skips them), plus a last record without a
    line end. The quote state is carried across chunks (`""` inside quotes toggles it twice)."""
    import numpy as np

    lines = blank = 0
    inside = 0
    before = b"\n"  # what precedes the chunk outside quotes: a blank first line is blank
    last_byte = b""
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            data = np.frombuffer(before + chunk, dtype=np.uint8)  # `before` holds no quote
            quotes = np.flatnonzero(data == 34)
            ends = np.flatnonzero(data == 10)
            ends = ends[(np.searchsorted(quotes, ends) + inside) % 2 == 0]  # line ends outside quotes
            new = ends[ends >= len(before)]
            lines += len(new)
            gap = np.diff(ends)
            blank_end = (gap == 1) | ((gap == 2) & (data[ends[1:] - 1] == 13))
            blank += int(blank_end.sum())  # gaps end at new line ends only: `before` has one at most
            inside = (inside + len(quotes)) % 2
            tail = chunk[-2:]
            before = b"x" if inside else (b"\n" if tail.endswith(b"\n") else b"\n\r" if tail == b"\n\r" else b"x")
            last_byte = chunk[-1:]
    records = lines - blank + (1 if last_byte not in (b"\n", b"") else 0)
    return max(records - 1, 0)


def read_header(path: Path, display_name: str) -> list[str]:
    """The header record parsed as CSV (quotes, commas inside quotes), any length."""
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
        while b"\n" not in head and len(head) < MAX_HEADER_BYTES:
            more = fh.read(1 << 20)
            if not more:
                break
            head += more
    if not head.strip():
        return []
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # the cut may split a character: only the last 3 bytes may fail
        if exc.start < len(head) - 3:
            raise FileRejected(f"{display_name}: the generic layout must be UTF-8 (byte {exc.start} is not); "
                               "put the file under a vendor source folder to have its encoding detected") from exc
        text = head[:exc.start].decode("utf-8-sig")
    if "\n" not in text and len(head) >= MAX_HEADER_BYTES:
        raise FileRejected(f"{display_name}: no line end in the first {MAX_HEADER_BYTES >> 20} MiB: not a CSV header")
    try:
        record = next(csv.reader(io.StringIO(text, newline="")))
    except (csv.Error, StopIteration) as exc:
        raise FileRejected(f"{display_name}: the header line is not valid CSV ({exc})") from exc
    return [h.strip() for h in record]


def _check_truncated(path: Path, display_name: str) -> None:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - (1 << 16)))
        tail = fh.read()
    last = tail.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
    if last.count(b'"') % 2 == 1:
        raise FileRejected(f"{display_name}: the last line has an unterminated quote (truncated file?): "
                           f"{last[:80].decode('utf-8', 'replace')!r}")


def _check_header(header: list[str], entity: str, display_name: str) -> None:
    if not header or header == [""]:
        raise FileRejected(f"{display_name}: empty file (no header) for generic/{entity}")
    if len(header) == 1 and any(sep in header[0] for sep in (";", "\t", "|")):
        raise FileRejected(f"{display_name}: one column only ({header[0][:60]!r}); the generic layout is "
                           "comma-separated")
    duplicates = sorted({h for h in header if header.count(h) > 1}) if len(header) < 2000 else \
        sorted({h for h, n in _counts(header).items() if n > 1})
    if duplicates:
        shown = ", ".join(repr(h) for h in duplicates[:10]) + (" ..." if len(duplicates) > 10 else "")
        raise FileRejected(f"{display_name}: the header ({len(header)} columns) repeats column name(s) {shown}")
    missing = [c for c in REQUIRED[entity] if c not in header]
    if missing:
        found = ", ".join(header[:8]) + (f", ... ({len(header)} columns)" if len(header) > 8 else "")
        raise FileRejected(f"{display_name}: required column(s) {', '.join(missing)} missing for generic/{entity} "
                           f"(header: {found}); expected header: {', '.join(COLUMNS[entity])}")


def _counts(items: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def _stage_generic_csv(con, entity: str, path: Path, display_name: str) -> tuple[list[str], int]:
    """Read a generic-layout CSV with DuckDB into temp view `_incoming` (all text); return the extra
    columns and the file's record count (counted apart from DuckDB)."""
    header = read_header(path, display_name)
    _check_header(header, entity, display_name)
    _check_truncated(path, display_name)
    records = count_records(path)
    columns = "{" + ", ".join(f"{_sql_str(h)}: 'VARCHAR'" for h in header) + "}"
    present = [c for c in COLUMNS[entity] if c in header]
    extra = [h for h in header if h not in COLUMNS[entity]]
    select_cols = ", ".join(
        [_quote_ident(c) if c in present else f"null::varchar as {c}" for c in COLUMNS[entity]])
    extra_expr = (f"to_json(struct_pack({', '.join(f'{_quote_ident(h)} := {_quote_ident(h)}' for h in extra)}))"
                  if extra else "null::varchar")
    # One pass, one copy. Rows are numbered by the temp table's rowid: DuckDB keeps insertion
    # (file) order, and a row_number() window over all rows would cost a second pass.
    con.execute(f"""
        create temp table _read as
        select {select_cols}, {extra_expr} as _extra
        from read_csv({_sql_str(str(path))}, header = true, auto_detect = false, delim = ',',
                      quote = '"', escape = '"', columns = {columns}, store_rejects = true,
                      rejects_table = '_rejects', rejects_scan = '_rejects_scan')""")
    # (inside a transaction rowids start at an offset: number relative to the first)
    con.execute("""create temp view _incoming as
                   select rowid - (select min(rowid) from _read) + 1 as _row_number, * from _read""")
    # DuckDB may report several errors for one line (a cut line: missing columns, found 3, 4, 5):
    # one quarantine row per line, its errors in the detail.
    rejects = con.execute("""select line, string_agg(distinct lower(error_type), ', ' order by lower(error_type)),
                                    first(csv_line), first(error_message)
                             from _rejects group by line order by line""").fetchall()
    con.execute("create temp table _vendor_quarantine (_row_number bigint, reason varchar, raw_values varchar)")
    if rejects:
        # Malformed lines were set aside by DuckDB: renumber the good rows by their real position.
        reject_rows = [int(line) - 1 for line, *_ in rejects]
        con.executemany("insert into _vendor_quarantine values (?, ?, ?)",
                        [[int(line) - 1, f"malformed_line: {etypes} ({message})", json.dumps({"line": csv_line})]
                         for line, etypes, csv_line, message in rejects])
        total = con.execute("select count(*) from _incoming").fetchone()[0] + len(reject_rows)
        con.execute("create temp table _rejected_rows (n bigint)")
        con.executemany("insert into _rejected_rows values (?)", [[r] for r in reject_rows])
        con.execute(f"""
            create temp table _good_positions as
            select row_number() over (order by n) as _seq, n as _row_number
            from range(1, {total + 1}) t(n) anti join _rejected_rows using (n)""")
        con.execute("""create temp table _renumbered as
                       select positions._row_number, incoming.* exclude (_row_number)
                       from _incoming as incoming join _good_positions as positions
                           on incoming._row_number = positions._seq""")
        con.execute("drop view _incoming")
        con.execute("create temp view _incoming as select * from _renumbered")
    for table in ("_rejects", "_rejects_scan", "_rejected_rows", "_good_positions"):
        con.execute(f"drop table if exists {table}")
    return extra, records


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
