"""Landing folder -> raw tables in the DuckDB warehouse.

Every file is one transaction: its valid rows go to `raw.<entity>`, its bad rows to
`raw.quarantine` with a reason, and one row to `raw.load_log` with the counts, so that
`rows_in = rows_loaded + rows_quarantined` can be checked by the raw gate.  A file is
identified by the hash of its bytes: the same file delivered twice (even renamed) loads once.
A file with a file-level problem is rejected whole and stays rejected on every run until it
is removed or fixed, so the run keeps stopping at the raw gate with the reason.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from crmtier import load_settings
from crmtier.layout import AMOUNT_DECIMALS, AMOUNT_PATTERN, COLUMNS, ENTITIES, EVENT_TYPES, ORDER_STATUSES, REQUIRED

log = logging.getLogger(__name__)

DATA_SUFFIXES = {".csv", ".tsv", ".txt", ".xlsx"}
META_DDL = """
    _source varchar, _file_name varchar, _file_hash varchar, _row_number bigint,
    _load_id varchar, _load_seq bigint, _exported_at timestamp, _extra varchar
"""


class FileRejected(Exception):
    """A file-level problem: nothing of the file is loaded."""


@dataclass
class FileOutcome:
    source: str
    entity: str
    file_name: str
    file_hash: str
    load_id: str
    status: str  # loaded | duplicate_file | rejected
    rows_in: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    message: str = ""
    file_size: int | None = None


@dataclass
class IngestReport:
    files: list[FileOutcome] = field(default_factory=list)

    @property
    def load_ids(self) -> list[str]:
        return [f.load_id for f in self.files if f.status in ("loaded", "rejected")]

    def summary(self) -> str:
        if not self.files:
            return "no new files in the landing folder"
        lines = [f"{f.status:14s} {f.source}/{f.entity}/{f.file_name}: in={f.rows_in} "
                 f"loaded={f.rows_loaded} quarantined={f.rows_quarantined} {f.message}".rstrip()
                 for f in self.files]
        return "\n".join(lines)


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists raw")
    for entity, cols in COLUMNS.items():
        col_ddl = ", ".join(f"{c} varchar" for c in cols)
        con.execute(f"create table if not exists raw.{entity} ({col_ddl}, {META_DDL})")
    con.execute("""
        create table if not exists raw.quarantine (
            _load_id varchar, _source varchar, entity varchar, _file_name varchar,
            _row_number bigint, reason varchar, raw_values varchar)""")
    con.execute("""
        create table if not exists raw.load_log (
            load_id varchar primary key, load_seq bigint, source varchar, entity varchar,
            file_name varchar, file_hash varchar, exported_at timestamp, rows_in bigint,
            rows_loaded bigint, rows_quarantined bigint, status varchar, message varchar,
            extra_columns varchar)""")
    con.execute("alter table raw.load_log add column if not exists file_size bigint")
    load_settings.ensure_table(con)


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def discover(landing: Path) -> list[tuple[str, str, Path]]:
    """(source, entity, path) for every data file, entities in dependency order."""
    found = []
    for entity in ENTITIES:
        for path in sorted(landing.glob(f"*/{entity}/*")):
            if path.is_file() and path.suffix.lower() in DATA_SUFFIXES and not path.name.startswith("."):
                found.append((path.parent.parent.name, entity, path))
    return found


def ingest_landing(db_path: str | Path, landing: str | Path) -> IngestReport:
    landing = Path(landing)
    if not landing.is_dir():
        raise FileNotFoundError(f"landing folder {landing} does not exist")
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    report = IngestReport()
    con = duckdb.connect(str(db_path))
    try:
        con.execute("set enable_progress_bar = false")  # no bar spam in task logs
        ensure_raw_schema(con)
        loaded = {row[0]: row[1] for row in con.execute(
            "select file_hash, file_name from raw.load_log where status = 'loaded'").fetchall()}
        unchanged = {tuple(row) for row in con.execute(
            "select source, entity, file_name, file_size, exported_at from raw.load_log where status = 'loaded'"
        ).fetchall()}
        seen_this_run: set[str] = set()
        for source, entity, path in discover(landing):
            if (source, entity, path.name, path.stat().st_size, _mtime(path)) in unchanged:
                continue  # loaded before and untouched since: no need to hash it again
            digest = file_hash(path)
            load_id = f"{source}-{entity}-{digest[:16]}"
            if digest in loaded or digest in seen_this_run:
                original = loaded.get(digest)
                if original is not None and original == path.name:
                    continue  # an old file still in the landing folder: nothing new
                outcome = FileOutcome(source, entity, path.name, digest, load_id, "duplicate_file",
                                      message=f"same bytes as already loaded {original or 'file'}; skipped")
                _log_duplicate(con, outcome)
                report.files.append(outcome)
                continue
            seen_this_run.add(digest)
            outcome = _load_file(con, source, entity, path, digest, load_id)
            report.files.append(outcome)
            if outcome.status == "loaded" and entity == "orders" and source != "generic":
                from crmtier.derived_customers import derive_customers  # orders-only exports
                report.files.extend(derive_customers(con, source, outcome))
            log.info("%s %s/%s/%s in=%d loaded=%d quarantined=%d %s", outcome.status, source, entity,
                     path.name, outcome.rows_in, outcome.rows_loaded, outcome.rows_quarantined, outcome.message)
    finally:
        con.close()
    return report


def _log_duplicate(con, outcome: FileOutcome) -> None:
    dup_id = f"{outcome.load_id}-dup-{hashlib.sha1(outcome.file_name.encode()).hexdigest()[:8]}"
    outcome.load_id = dup_id
    con.execute("delete from raw.load_log where load_id = ?", [dup_id])
    _insert_log(con, outcome, None, [])


def _load_file(con, source: str, entity: str, path: Path, digest: str, load_id: str) -> FileOutcome:
    outcome = FileOutcome(source, entity, path.name, digest, load_id, "loaded")
    exported_at = _mtime(path)
    outcome.file_size = path.stat().st_size
    con.execute("begin transaction")
    try:
        # A rejected file is retried on every run (it may have been fixed in place).
        con.execute("delete from raw.load_log where load_id = ?", [load_id])
        con.execute("drop view if exists _incoming")
        con.execute("drop table if exists _vendor_quarantine")
        money = {}  # order lines and credit notes: declared by a vendor mapping only
        generic_csv = source == "generic" and path.suffix.lower() == ".csv"
        if generic_csv:
            extra = _stage_generic_csv(con, entity, path)
        else:
            extra = _stage_vendor_file(con, source, entity, path)
            from crmtier.vendor import money_rules
            money = money_rules(source, entity)
        rows_in, loaded, quarantined = _split_valid(con, entity, source, path.name, digest, load_id,
                                                    exported_at, **money)
        outcome.rows_in, outcome.rows_loaded, outcome.rows_quarantined = rows_in, loaded, quarantined
        if extra:
            outcome.message = f"extra columns kept in _extra: {', '.join(extra)}"
        _insert_log(con, outcome, exported_at, extra)
        # time zone and id matching staging applies to this load (vendor files are already UTC)
        load_settings.record(con, load_id, source, entity, converted_to_utc=not generic_csv)
        con.execute("commit")
    except FileRejected as exc:
        con.execute("rollback")
        outcome.status, outcome.message = "rejected", str(exc)
        outcome.rows_in = outcome.rows_loaded = outcome.rows_quarantined = 0
        con.execute("begin transaction")
        con.execute("delete from raw.load_log where load_id = ?", [load_id])
        _insert_log(con, outcome, exported_at, [])
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return outcome


def _mtime(path: Path) -> datetime:
    """The file's modified time (UTC, naive): when the export was made, as far as we can tell."""
    return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc).replace(tzinfo=None)


def _insert_log(con, outcome: FileOutcome, exported_at, extra: list[str]) -> None:
    con.execute("""insert into raw.load_log by name
                   select ? as load_id, (select coalesce(max(load_seq), 0) + 1 from raw.load_log) as load_seq,
                          ? as source, ? as entity, ? as file_name, ? as file_hash, ? as exported_at,
                          ? as rows_in, ? as rows_loaded, ? as rows_quarantined, ? as status, ? as message,
                          ? as extra_columns, ? as file_size""",
                [outcome.load_id, outcome.source, outcome.entity, outcome.file_name, outcome.file_hash,
                 exported_at, outcome.rows_in, outcome.rows_loaded, outcome.rows_quarantined,
                 outcome.status, outcome.message, json.dumps(extra) if extra else None, outcome.file_size])


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _read_header(path: Path) -> list[str]:
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # The 64 KiB cut may split a character: only the last 3 bytes may fail.
        if exc.start < len(head) - 3:
            raise FileRejected(f"{path.name}: the generic layout must be UTF-8 (byte {exc.start} is not); "
                               "put the file under a vendor source folder to have its encoding detected") from exc
        text = head[:exc.start].decode("utf-8-sig")
    first = text.splitlines()[0] if text.strip() else ""
    return [h.strip().strip('"').strip() for h in first.split(",")] if first else []


def _check_truncated(path: Path) -> None:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - (1 << 16)))
        tail = fh.read()
    last = tail.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
    if last.count(b'"') % 2 == 1:
        raise FileRejected(f"{path.name}: the last line has an unterminated quote (truncated file?): "
                           f"{last[:80].decode('utf-8', 'replace')!r}")


def _stage_generic_csv(con, entity: str, path: Path) -> list[str]:
    """Read a generic-layout CSV with DuckDB into temp table `_incoming` (all text)."""
    header = _read_header(path)
    if not header or header == [""]:
        raise FileRejected(f"{path.name}: empty file (no header) for generic/{entity}")
    if len(header) == 1 and any(sep in header[0] for sep in (";", "\t", "|")):
        raise FileRejected(f"{path.name}: one column only ({header[0][:60]!r}); the generic layout is "
                           "comma-separated")
    missing = [c for c in REQUIRED[entity] if c not in header]
    if missing:
        raise FileRejected(f"{path.name}: required column(s) {', '.join(missing)} missing for generic/{entity}; "
                           f"expected header: {', '.join(COLUMNS[entity])}")
    if len(set(header)) != len(header):
        raise FileRejected(f"{path.name}: duplicate column names in header")
    _check_truncated(path)
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
    rejects = con.execute("select line, error_type, csv_line from _rejects order by line").fetchall()
    con.execute("create temp table _vendor_quarantine (_row_number bigint, reason varchar, raw_values varchar)")
    if rejects:
        # Malformed lines were set aside by DuckDB: renumber the good rows by their real position.
        reject_rows = sorted({int(line) - 1 for line, _, _ in rejects})
        con.executemany("insert into _vendor_quarantine values (?, ?, ?)",
                        [[int(line) - 1, f"malformed_line: {etype.lower()}", json.dumps({"line": csv_line})]
                         for line, etype, csv_line in rejects])
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
    return extra


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _stage_vendor_file(con, source: str, entity: str, path: Path) -> list[str]:
    """Normalise a vendor export in Python (mapping YAML), then stage it like a generic file."""
    from crmtier import vendor  # heavy (pandas, calamine): only when a vendor file arrives

    lookup = None
    if entity in ("orders", "events"):  # exports may name the customer instead of giving its id
        lookup = con.execute("""select customer_id, name, phone from raw.customers
                                where _source = ?""", [source]).df()
    try:
        normalized = vendor.normalize_file(path, source, entity, customers_lookup=lookup)
    except vendor.FileRejected as exc:
        raise FileRejected(str(exc)) from exc
    frame = normalized.rows
    for col in COLUMNS[entity]:
        if col not in frame.columns:
            frame[col] = None
    frame = frame[["_row_number", *COLUMNS[entity], "_extra"]]
    con.register("_vendor_rows", frame)
    casts = ", ".join(f"cast({c} as varchar) as {c}" for c in COLUMNS[entity])
    con.execute(f"""create temp table _renumbered as
                    select cast(_row_number as bigint) as _row_number, {casts}, cast(_extra as varchar) as _extra
                    from _vendor_rows""")
    con.execute("create temp view _incoming as select * from _renumbered")
    con.unregister("_vendor_rows")
    quarantined = normalized.quarantined[["_row_number", "reason", "raw_values"]]
    con.register("_vq", quarantined)
    con.execute("""create temp table _vendor_quarantine as
                   select cast(_row_number as bigint) as _row_number, cast(reason as varchar) as reason,
                          cast(raw_values as varchar) as raw_values from _vq""")
    con.unregister("_vq")
    return list(normalized.extra_columns)


def _unreadable_timestamp(col: str) -> str:
    """SQL: true when staging could not read the timestamp: not a timestamp, or written with an
    offset or zone DuckDB does not know (staging's `utc_timestamp` macro,
    dbt_project/macros/staging_values.sql, reads written zones as timestamptz, e.g. Europe/Berlin)."""
    has_zone_name = rf"regexp_matches({col}, '(?i)\d:\d\d.*[a-z]{{2}}')"
    as_written = rf"regexp_replace(regexp_replace(trim({col}), '\[[^\]]*\]$', ''), '\s+([+-]\d)', '\1')"
    # (the raw gate checks the same try_cast: a value it refuses is quarantined here first)
    return (f"(try_cast({col} as timestamp) is null "
            f"or ({has_zone_name} and try_cast({as_written} as timestamptz) is null))")


def _reason_sql(entity: str, order_lines: bool = False, credit_notes: bool = False) -> str:
    """First failing rule of a row as `code: detail`, or null for a valid row."""
    def blank(col: str) -> str:
        return f"nullif(trim({col}), '') is null"

    statuses = ", ".join(_sql_str(s) for s in ORDER_STATUSES)
    event_types = ", ".join(_sql_str(s) for s in EVENT_TYPES)
    key = {"customers": "customer_id", "orders": "order_id", "events": "event_id"}[entity]
    rules = []
    if entity == "events":
        rules.append((f"{blank('customer_id')}", "'missing_id: customer_id'"))
    else:
        rules.append((blank(key), f"'missing_id: {key}'"))
    if entity == "customers":
        rules += [(_unreadable_timestamp("created_at"),
                   "'unparseable_timestamp: created_at=' || coalesce(created_at, '')")]
    if entity == "orders":
        rules += [(blank("customer_id"), "'missing_id: customer_id'"),
                  (_unreadable_timestamp("order_time"),
                   "'unparseable_timestamp: order_time=' || coalesce(order_time, '')"),
                  # plain decimals only, at most AMOUNT_DECIMALS places: never 1_000, 1e5, or 1.005 -> 1.01
                  (f"not regexp_full_match(trim(coalesce(amount, '')), '{AMOUNT_PATTERN}')",
                   f"'non_numeric_amount: amount=' || coalesce(amount, '') || ' (a plain decimal with at most "
                   f"{AMOUNT_DECIMALS} decimal places)'"),
                  ("try_cast(trim(amount) as decimal(18, 4)) < 0"
                   + (" and lower(trim(status)) <> 'refunded'" if credit_notes else ""),
                   "'negative_amount: amount=' || amount"),
                  (f"coalesce(lower(trim(status)), '') not in ({statuses})",
                   "'unknown_status: ' || coalesce(status, '')"),
                  ("currency is not null and trim(currency) <> '' and not regexp_full_match(trim(currency), '[A-Za-z]{3}')",
                   "'unknown_currency: ' || currency")]
    if entity == "events":
        rules += [(_unreadable_timestamp("event_time"),
                   "'unparseable_timestamp: event_time=' || coalesce(event_time, '')"),
                  (f"coalesce(lower(trim(event_type)), '') not in ({event_types})",
                   "'unknown_event_type: ' || coalesce(event_type, '')")]
    dup_key = key
    if not order_lines:  # line-level orders repeat the order id by design
        rules.append(("_repeated._first_row is not null and _row_number > _repeated._first_row",
                      f"'duplicate_id_in_file: ' || {dup_key}"))
    whens = "\n".join(f"when {cond} then {reason}" for cond, reason in rules)
    return f"case {whens} else null end"


def _split_valid(con, entity: str, source: str, file_name: str, digest: str, load_id: str,
                 exported_at, order_lines: bool = False, credit_notes: bool = False) -> tuple[int, int, int]:
    key = {"customers": "customer_id", "orders": "order_id", "events": "event_id"}[entity]
    cols = ", ".join(f"_incoming.{c}" for c in COLUMNS[entity])
    # An id repeated within a file: the first row loads, later ones are quarantined. A hash
    # aggregate finds the (few) repeated ids; ranking all rows would sort the whole file.
    # Grouping 64-bit hashes is much cheaper than grouping the id strings; the few candidate
    # hashes are then checked on the ids themselves (a hash collision is not a duplicate).
    con.execute(f"""
        create or replace temp table _repeated as
        with candidate_hashes as (
            select hash(trim({key})) as h from _incoming
            where nullif(trim({key}), '') is not null group by 1 having count(*) > 1
        )
        select trim({key}) as _key, min(_row_number) as _first_row
        from _incoming semi join candidate_hashes on hash(trim(_incoming.{key})) = candidate_hashes.h
        group by 1 having count(*) > 1""")
    reason = _reason_sql(entity, order_lines, credit_notes)
    source_rows = f"""from _incoming left join _repeated on trim(_incoming.{key}) = _repeated._key"""
    meta = [source, file_name, digest, load_id, exported_at]
    loaded = con.execute(f"""
        insert into raw.{entity}
        select {cols}, ?, ?, ?, _row_number, ?,
               (select coalesce(max(load_seq), 0) + 1 from raw.load_log), ?, _extra
        {source_rows} where {reason} is null""", meta).fetchone()[0]
    bad = con.execute(f"""
        insert into raw.quarantine
        select ?, ?, ?, ?, _row_number, {reason},
               to_json(struct_pack({', '.join(f'{c} := _incoming.{c}' for c in COLUMNS[entity])}))
        {source_rows} where {reason} is not null""", [load_id, source, entity, file_name]).fetchone()[0]
    vendor_bad = con.execute("""
        insert into raw.quarantine select ?, ?, ?, ?, _row_number, reason, raw_values from _vendor_quarantine""",
                             [load_id, source, entity, file_name]).fetchone()[0]
    con.execute("drop view if exists _incoming")
    for table in ("_read", "_renumbered", "_vendor_quarantine", "_repeated"):
        con.execute(f"drop table if exists {table}")
    if loaded + bad + vendor_bad == 0:
        raise FileRejected(f"{file_name}: empty file (header only, no data rows) for {source}/{entity}")
    return loaded + bad + vendor_bad, loaded, bad + vendor_bad
