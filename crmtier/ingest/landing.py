"""Landing folder -> raw tables in the DuckDB warehouse.

Every file is one transaction: its valid rows go to `raw.<entity>`, its bad rows to
`raw.quarantine` with a reason code and a detail, and one row to `raw.load_log` with the
counts. `rows_in` is the file's record count taken independently of the loading reader, so
`rows_in = rows_loaded + rows_quarantined` is a real check (a file that does not reconcile is
rejected, never loaded half-read).

A file is identified by (source, entity, hash of its bytes), hashed on every run (never
skipped on name, size or time alone): the same file delivered twice, even renamed, loads once.
A file with a file-level problem, or in a place no source/entity reads, is rejected whole and
stays rejected on every run until it is removed or fixed, so the run keeps stopping at the raw
gate with the reason.

Landing protocol (README "Landing files"): a file is read once it is complete, i.e. when a
`<file>.done` marker exists next to it, or (unless markers are required) once its size and
modification time have not changed for `CRMTIER_LANDING_SETTLE_SECONDS`. A file still being
written is reported as waiting and read on a later run. A later, longer version of a file
(same name, the old bytes are its beginning) replaces the partial load.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from crmtier.duckdb_config import duckdb_config
from crmtier.ingest import load_settings
from crmtier.ingest.errors import FileChanged, FileRejected
from crmtier.ingest.generic_csv import _open_bytes, _quote_ident, _readable_copy, _stage_generic_csv
from crmtier.ingest.row_rules import _split_valid
from crmtier.layout import COLUMNS, EARLIEST_DATE, ENTITIES

log = logging.getLogger(__name__)

DATA_SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx", ".csv.gz", ".tsv.gz", ".txt.gz")
DONE_SUFFIX = ".done"  # landing protocol: `<file>.done` says `<file>` is complete
META_DDL = """
    _source varchar, _file_name varchar, _file_hash varchar, _row_number bigint,
    _load_id varchar, _load_seq bigint, _exported_at timestamp, _extra varchar
"""


@dataclass(frozen=True)
class IngestSettings:
    settle_seconds: float = 2.0  # a file unchanged this long is complete (landing protocol)
    require_done: bool = False  # read a file only when its `.done` marker exists
    earliest_date: str = EARLIEST_DATE  # timestamps before this are impossible dates
    max_days_after_export: int = 1  # ...and so are timestamps after the export date + this

    @classmethod
    def from_env(cls) -> IngestSettings:
        from crmtier.quality.gates import load_gates  # the staging gate's bound: one definition

        thresholds = load_gates().get("thresholds") or {}
        return cls(settle_seconds=float(os.environ.get("CRMTIER_LANDING_SETTLE_SECONDS", cls.settle_seconds)),
                   require_done=os.environ.get("CRMTIER_LANDING_REQUIRE_DONE", "").lower() in ("1", "true", "yes"),
                   earliest_date=os.environ.get("CRMTIER_EARLIEST_DATE", EARLIEST_DATE),
                   max_days_after_export=int(thresholds.get("max_days_after_export", cls.max_days_after_export)))


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
class NotRead:
    """A file in the landing folder this run did not read, and why."""
    path: str
    status: str  # waiting | retracted
    reason: str


@dataclass
class IngestReport:
    files: list[FileOutcome] = field(default_factory=list)
    not_read: list[NotRead] = field(default_factory=list)
    unchanged: int = 0  # files loaded by an earlier run, still in the landing folder

    @property
    def load_ids(self) -> list[str]:
        return [f.load_id for f in self.files]

    def summary(self) -> str:
        lines = [f"{f.status:14s} {f.source}/{f.entity}/{f.file_name}: in={f.rows_in} "
                 f"loaded={f.rows_loaded} quarantined={f.rows_quarantined} {f.message}".rstrip()
                 for f in self.files]
        lines += [f"not read ({n.status}) {n.path}: {n.reason}" for n in self.not_read]
        if not self.files:
            lines.insert(0, "no new files in the landing folder")
        if self.unchanged:
            lines.append(f"{self.unchanged} file(s) loaded by earlier runs, unchanged")
        return "\n".join(lines)


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists raw")
    for entity, cols in COLUMNS.items():
        col_ddl = ", ".join(f"{c} varchar" for c in cols)
        con.execute(f"create table if not exists raw.{entity} ({col_ddl}, {META_DDL})")
    con.execute("""
        create table if not exists raw.quarantine (
            _load_id varchar, _source varchar, entity varchar, _file_name varchar,
            _row_number bigint, reason varchar, raw_values varchar, detail varchar)""")
    if "detail" not in {r[0] for r in con.execute(
            "select column_name from information_schema.columns where table_schema = 'raw' "
            "and table_name = 'quarantine'").fetchall()}:
        # warehouses from before the split kept `code: detail` in reason
        con.execute("alter table raw.quarantine add column detail varchar")
        con.execute("""update raw.quarantine set detail = trim(substr(reason, strpos(reason, ':') + 1)),
                              reason = split_part(reason, ':', 1) where strpos(reason, ':') > 0""")
    con.execute("""
        create table if not exists raw.load_log (
            load_id varchar primary key, load_seq bigint, source varchar, entity varchar,
            file_name varchar, file_hash varchar, exported_at timestamp, rows_in bigint,
            rows_loaded bigint, rows_quarantined bigint, status varchar, message varchar,
            extra_columns varchar)""")
    con.execute("alter table raw.load_log add column if not exists file_size bigint")
    load_settings.ensure_table(con)
    con.execute("alter table raw.load_log add column if not exists retracted_at timestamp")


def file_hash(path: Path) -> str:
    """SHA-256 of the file's content (decompressed for `.gz`)."""
    digest = hashlib.sha256()
    with _open_bytes(path) as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _prefix_hash(path: Path, size: int) -> str:
    """SHA-256 of the first `size` bytes of the content: is an older, shorter load this file's beginning?"""
    digest = hashlib.sha256()
    left = size
    with _open_bytes(path) as fh:
        while left > 0:
            chunk = fh.read(min(left, 1 << 22))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest() if left == 0 else ""


def _content_size(path: Path) -> int:
    if not path.name.lower().endswith(".gz"):
        return path.stat().st_size
    with gzip.open(path, "rb") as fh:
        return sum(len(chunk) for chunk in iter(lambda: fh.read(1 << 22), b""))


def known_sources() -> list[str]:
    from crmtier.ingest.mappings import list_sources

    return sorted({"generic", *list_sources()})


def discover(landing: Path) -> tuple[list[tuple[str, str, Path]], list[tuple[str, str, Path, str]]]:
    """Every file of the landing folder: (source, entity, path) to read, entities in dependency
    order, and (source, entity, path, why) for files in a place or of a type no source reads.
    Hidden files and `.done` markers are the landing protocol's own and are not data."""
    sources = known_sources()
    readable, misplaced = [], []
    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        rel = path.relative_to(landing)
        if any(part.startswith(".") for part in rel.parts) or path.name.endswith(DONE_SUFFIX):
            continue
        source = rel.parts[0] if len(rel.parts) > 1 else "(landing)"
        entity = rel.parts[1] if len(rel.parts) > 2 else "(none)"
        if len(rel.parts) != 3:
            misplaced.append((source, entity, path,
                              f"{rel} is not in <source>/<entity>/: files are read from "
                              f"<landing>/<source>/<entity>/<file>, e.g. generic/orders/export.csv"))
        elif source not in sources:
            misplaced.append((source, entity, path, f"unknown source folder {source!r}: known sources are "
                                                    f"{', '.join(sources)} (a mapping file <source>.yaml adds one)"))
        elif entity not in ENTITIES:
            misplaced.append((source, entity, path, f"unknown entity folder {source}/{entity}/: entities are "
                                                    f"{', '.join(ENTITIES)}"))
        elif not path.name.lower().endswith(DATA_SUFFIXES):
            misplaced.append((source, entity, path, f"{path.name}: not a data file type that is read "
                                                    f"({', '.join(DATA_SUFFIXES)})"))
        else:
            readable.append((source, entity, path))
    readable.sort(key=lambda item: ENTITIES.index(item[1]))  # customers before orders/events (name lookups)
    return readable, misplaced


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def complete_files(candidates: list[tuple[str, str, Path]], settings: IngestSettings,
                   report: IngestReport, landing: Path) -> list[tuple[str, str, Path, tuple[int, int]]]:
    """The landing protocol: files with a `.done` marker, else files whose size and time stayed the
    same for `settle_seconds` (waiting once for the youngest). Others are reported as waiting."""
    ready, young = [], []
    now = time.time()
    for source, entity, path in candidates:
        stat = _stat(path)
        if path.with_name(path.name + DONE_SUFFIX).exists():
            ready.append((source, entity, path, stat))
        elif settings.require_done:
            report.not_read.append(NotRead(str(path.relative_to(landing)), "waiting",
                                           f"no {path.name}{DONE_SUFFIX} marker yet (markers are required)"))
        elif now - stat[1] / 1e9 >= settings.settle_seconds:
            ready.append((source, entity, path, stat))
        else:
            young.append((source, entity, path, stat))
    if young:
        newest = max(stat[1] for *_, stat in young) / 1e9
        time.sleep(max(0.0, min(settings.settle_seconds, newest + settings.settle_seconds - time.time())))
        for source, entity, path, stat in young:
            if path.exists() and _stat(path) == stat:
                ready.append((source, entity, path, stat))
            else:
                report.not_read.append(NotRead(str(path.relative_to(landing)), "waiting",
                                               f"still being written (changed within {settings.settle_seconds:g}s)"))
    ready.sort(key=lambda item: (ENTITIES.index(item[1]), str(item[2])))
    return ready


def ingest_landing(db_path: str | Path, landing: str | Path, settings: IngestSettings | None = None) -> IngestReport:
    landing = Path(landing)
    if not landing.is_dir():
        raise FileNotFoundError(f"landing folder {landing} does not exist")
    settings = settings or IngestSettings.from_env()
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    report = IngestReport()
    candidates, misplaced = discover(landing)
    con = duckdb.connect(str(db_path), config=duckdb_config())
    try:
        con.execute("set enable_progress_bar = false")  # no bar spam in task logs
        ensure_raw_schema(con)
        for source, entity, path, why in misplaced:
            digest = file_hash(path)
            outcome = FileOutcome(source, entity, str(path.relative_to(landing)), digest,
                                  f"{source}-{entity}-{digest[:16]}", "rejected", message=why)
            _log_rejection(con, outcome, _mtime(path))
            report.files.append(outcome)
        known = {}
        for row in con.execute("""select source, entity, file_hash, status, file_name, load_id from raw.load_log
                                  where status in ('loaded', 'retracted', 'superseded')
                                  order by load_seq""").fetchall():
            known[row[:3]] = row[3:]
        seen_this_run: set[tuple[str, str, str]] = set()
        for source, entity, path, stat in complete_files(candidates, settings, report, landing):
            digest = file_hash(path)
            key = (source, entity, digest)
            load_id = f"{source}-{entity}-{digest[:16]}"
            status, original, earlier_id = known.get(key, (None, None, None))
            if status in ("retracted", "superseded"):
                report.not_read.append(NotRead(str(path.relative_to(landing)), status,
                                               f"same content as {status} load {earlier_id}; not read again"))
                continue
            if status == "loaded" and original == path.name:
                report.unchanged += 1  # an old file still in the landing folder: nothing new
                continue
            if status == "loaded" or key in seen_this_run:
                outcome = FileOutcome(source, entity, path.name, digest, load_id, "duplicate_file",
                                      message=f"same content as already loaded {original or 'file'} "
                                              f"({source}/{entity}); skipped")
                _log_duplicate(con, outcome)
                report.files.append(outcome)
                continue
            seen_this_run.add(key)
            try:
                outcome = _load_file(con, source, entity, path, digest, load_id, stat, settings)
            except FileChanged as exc:
                report.not_read.append(NotRead(str(path.relative_to(landing)), "waiting", str(exc)))
                continue
            report.files.append(outcome)
            if outcome.status == "loaded" and entity == "orders" and source != "generic":
                from crmtier.ingest.derived_customers import derive_customers  # orders-only exports
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


def _log_rejection(con, outcome: FileOutcome, exported_at) -> None:
    con.execute("begin transaction")
    con.execute("delete from raw.load_log where load_id = ?", [outcome.load_id])
    _insert_log(con, outcome, exported_at, [])
    con.execute("commit")


def _load_file(con, source: str, entity: str, path: Path, digest: str, load_id: str, stat: tuple[int, int],
               settings: IngestSettings) -> FileOutcome:
    outcome = FileOutcome(source, entity, path.name, digest, load_id, "loaded")
    exported_at = _mtime(path)
    outcome.file_size = _content_size(path)
    con.execute("begin transaction")
    try:
        # A rejected file is retried on every run (it may have been fixed in place).
        con.execute("delete from raw.load_log where load_id = ?", [load_id])
        con.execute("drop view if exists _incoming")
        con.execute("drop table if exists _vendor_quarantine")
        money = {}  # order lines and credit notes: declared by a vendor mapping only
        with _readable_copy(path) as readable:
            generic_csv = source == "generic" and readable.suffix.lower() == ".csv"
            if generic_csv:
                extra, rows_in = _stage_generic_csv(con, entity, readable, path.name)
            else:
                extra, rows_in = _stage_vendor_file(con, source, entity, readable)
                from crmtier.ingest.vendor import money_rules
                money = money_rules(source, entity)
        loaded, quarantined = _split_valid(con, entity, source, path.name, digest, load_id, exported_at, settings,
                                           **money)
        if loaded + quarantined != rows_in:
            raise FileRejected(f"{path.name}: {rows_in} records in the file but {loaded + quarantined} rows read "
                               f"({loaded} loaded + {quarantined} quarantined); not loaded")
        outcome.rows_in, outcome.rows_loaded, outcome.rows_quarantined = rows_in, loaded, quarantined
        if extra:
            outcome.message = f"extra columns kept in _extra: {', '.join(extra)}"
        if _stat(path) != stat:
            raise FileChanged("changed while it was read (still being written); read on a later run")
        _insert_log(con, outcome, exported_at, extra)
        # time zone and id matching staging applies to this load (vendor files are already UTC)
        load_settings.record(con, load_id, source, entity, converted_to_utc=not generic_csv)
        replaced = _supersede_partial_loads(con, source, entity, path, load_id)
        if replaced:
            outcome.message = "; ".join(filter(None, [outcome.message,
                                                       f"replaces partial load(s) {', '.join(replaced)}"]))
            con.execute("update raw.load_log set message = ? where load_id = ?", [outcome.message, load_id])
        con.execute("commit")
    except FileRejected as exc:
        con.execute("rollback")
        outcome.status, outcome.message = "rejected", str(exc)
        outcome.rows_in = outcome.rows_loaded = outcome.rows_quarantined = 0
        _log_rejection(con, outcome, exported_at)
    except Exception:
        con.execute("rollback")
        raise
    return outcome


def _supersede_partial_loads(con, source: str, entity: str, path: Path, new_load_id: str) -> list[str]:
    """Earlier loads of the same file name whose content is this file's beginning were partial
    (read while being written): their rows leave raw, the load is marked `superseded`."""
    earlier = con.execute("""select load_id, file_hash, file_size from raw.load_log
                             where source = ? and entity = ? and file_name = ? and status = 'loaded'
                               and load_id <> ? and file_size is not null""",
                          [source, entity, path.name, new_load_id]).fetchall()
    replaced = []
    for load_id, old_hash, old_size in earlier:
        if old_size < _content_size(path) and _prefix_hash(path, old_size) == old_hash:
            _remove_load(con, load_id, entity, "superseded", f"partial: replaced by the longer version {new_load_id}")
            replaced.append(load_id)
    return replaced


def _remove_load(con, load_id: str, entity: str, status: str, message: str) -> tuple[int, int]:
    """Take a load's rows out of raw (rows and quarantine) and mark it in the load log; staging and
    intermediate tables are dropped so the next run rebuilds them from raw without the rows (the day
    tables and the windows moved from them are incremental: kept, they would still count the rows)."""
    rows = con.execute(f"delete from raw.{entity} where _load_id = ?", [load_id]).fetchone()[0]
    bad = con.execute("delete from raw.quarantine where _load_id = ?", [load_id]).fetchone()[0]
    con.execute("""update raw.load_log set status = ?, message = ?, retracted_at = now()::timestamp
                   where load_id = ?""", [status, message, load_id])
    for schema, name, kind in con.execute(
            "select table_schema, table_name, table_type from information_schema.tables "
            "where table_schema in ('staging', 'intermediate')").fetchall():
        con.execute(f"drop {'view' if kind == 'VIEW' else 'table'} if exists {schema}.{_quote_ident(name)}")
    return rows, bad


def retract_load(db_path: str | Path, load_id: str, note: str = "") -> dict:
    """`crmtier retract LOAD_ID`: remove a loaded file's rows from raw, record it in raw.load_log
    (status `retracted`), and make the next run rebuild staging without them. The same content is
    not read again, even if the file stays in the landing folder."""
    con = duckdb.connect(str(db_path), config=duckdb_config())
    try:
        ensure_raw_schema(con)
        row = con.execute("select entity, status, file_name from raw.load_log where load_id = ?", [load_id]).fetchone()
        if row is None:
            raise ValueError(f"no load {load_id!r} in raw.load_log (see the run's ingest report for load ids)")
        entity, status, file_name = row
        if status != "loaded":
            raise ValueError(f"load {load_id} ({file_name}) has status {status!r}: only a loaded file can be retracted")
        con.execute("begin transaction")
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        rows, bad = _remove_load(con, load_id, entity, "retracted",
                                 f"retracted {stamp}" + (f": {note}" if note else ""))
        con.execute("commit")
    finally:
        con.close()
    return {"load_id": load_id, "file_name": file_name, "entity": entity, "rows_removed": rows,
            "quarantine_rows_removed": bad}


def _mtime(path: Path) -> datetime:
    """The file's modified time (UTC, naive): when the export was made, as far as we can tell."""
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).replace(tzinfo=None)


def _insert_log(con, outcome: FileOutcome, exported_at, extra: list[str]) -> None:
    con.execute("""insert into raw.load_log by name
                   select ? as load_id, (select coalesce(max(load_seq), 0) + 1 from raw.load_log) as load_seq,
                          ? as source, ? as entity, ? as file_name, ? as file_hash, ? as exported_at,
                          ? as rows_in, ? as rows_loaded, ? as rows_quarantined, ? as status, ? as message,
                          ? as extra_columns, ? as file_size""",
                [outcome.load_id, outcome.source, outcome.entity, outcome.file_name, outcome.file_hash,
                 exported_at, outcome.rows_in, outcome.rows_loaded, outcome.rows_quarantined,
                 outcome.status, outcome.message, json.dumps(extra) if extra else None, outcome.file_size])


def _stage_vendor_file(con, source: str, entity: str, path: Path) -> tuple[list[str], int]:
    """Normalise a vendor export in Python (mapping YAML), then stage it like a generic file;
    the record count is the vendor reader's (checked against the decoded text there)."""
    from crmtier.ingest import vendor  # heavy (pandas, calamine): only when a vendor file arrives
    from crmtier.ingest.mappings import MappingError

    lookup = None
    if entity in ("orders", "events"):  # exports may name the customer instead of giving its id
        lookup = con.execute("""select customer_id, name, phone from raw.customers
                                where _source = ?""", [source]).df()
    try:
        normalized = vendor.normalize_file(path, source, entity, customers_lookup=lookup)
    except (FileRejected, MappingError) as exc:
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
    return list(normalized.extra_columns), int(normalized.rows_in)


