"""Outbox: the alerts of one as-of date as files, one per action, for whoever sends them.

    write_outbox(warehouse, out_dir, as_of_date, run_id) -> {action: alerts}

writes ``<out_dir>/<as_of_date>/<action>.csv`` and ``<action>.json`` with the rows of
``history.customer_alerts`` for that date plus the contact fields the channel needs (email for
email, phone for sms and phone calls, the name for every action), read from
``staging.stg_crm__customers``. Contacts (PII) exist only in staging and here: the warehouse's
history and marts carry customer ids and a ``has_contact`` flag, never a contact.

* CSV for people (Excel): a text cell starting with ``= + - @``, a tab or a carriage return gets a
  leading ``'`` so a spreadsheet shows it instead of evaluating it (CSV/formula injection). The
  JSON file is for programs and keeps the values as they are (a phone ``+86...`` stays dialable).
* Atomic, exactly once: the date's folder (every file and ``_manifest.json``) is written whole under a
  temporary name (``.<date>.tmp-<pid>``) and swapped in by one rename, inside the warehouse
  transaction that records the deliveries (``outbox.alert_deliveries``: the first hand-over of each
  alert_id; alert ids are deterministic); the transaction commits right after the swap. A reader
  sees the old folder or the new one, never part of one; files are readable by the owner only.
* Idempotent: the file contents depend on the alerts only. A rerun whose files equal those already
  handed over and recorded leaves the folder untouched (same files, same manifest with the "new"
  counts of the hand-over), so a rerun after a kill at any point gives what an uninterrupted run
  gives; a rerun after the alerts changed writes a new folder counting only undelivered alerts as
  new. (Deliveries are not in schema ``history``: the publish step copies that schema, before this
  step runs.)

The warehouse is opened read-only to read; a short read-write connection only records deliveries.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import shutil
from datetime import date
from pathlib import Path

from crmtier.delivery.durable import fsync_dir
from crmtier.duckdb_config import duckdb_config
from crmtier.faults import fault_point

log = logging.getLogger(__name__)

# Contact fields per channel (from staging.stg_crm__customers); the name goes with every action.
CONTACT_FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("customer_name", "email"),
    "sms": ("customer_name", "phone"),
    "phone": ("customer_name", "phone"),
    "crm_task": ("customer_name",),
}
ALERT_FIELDS = ("alert_id", "as_of_date", "customer_id", "rule_id", "action", "channel", "priority",
                "status", "tier", "segment", "dimension", "from_value", "to_value", "previous_as_of_date",
                "message_en", "message_zh", "reason")
INJECTION_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
MANIFEST = "_manifest.json"
DELIVERIES_SCHEMA = "outbox"
DELIVERIES_TABLE = f"{DELIVERIES_SCHEMA}.alert_deliveries"
_ACTION_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


def outbox_dir() -> Path:
    """Where outbox folders go: $CRMTIER_OUTBOX, default <CRMTIER_HOME>/outbox."""
    from crmtier.paths import get_paths

    return Path(os.environ.get("CRMTIER_OUTBOX", get_paths().home / "outbox"))


def escape_cell(value) -> str:
    """A CSV cell a spreadsheet will not evaluate as a formula."""
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, date) else str(value)
    if isinstance(value, str) and text.startswith(INJECTION_PREFIXES):
        return "'" + text
    return text


def read_alerts(warehouse: str | Path, as_of_date: str, with_deliveries: bool = False):
    """The alerts of the date with every contact field, on a read-only connection (and, with
    `with_deliveries`, the ids of the date's alerts already handed over)."""
    import duckdb

    contact_columns = sorted({c for fields in CONTACT_FIELDS.values() for c in fields})
    con = duckdb.connect(str(warehouse), read_only=True, config=duckdb_config())
    try:
        # control groups (seed alert_rules.control_share) are recorded in history, never sent
        has_control = con.execute("select count(*) from information_schema.columns where table_schema = 'history' "
                                  "and table_name = 'customer_alerts' and column_name = 'is_control'").fetchone()[0]
        control_filter = "and not coalesce(alerts.is_control, false)" if has_control else ""
        cursor = con.execute(
            f"""select {', '.join('alerts.' + c for c in ALERT_FIELDS)},
                       {', '.join('customers.' + c for c in contact_columns)}
                from history.customer_alerts as alerts
                left join staging.stg_crm__customers as customers
                    on alerts.customer_id = customers.customer_id
                where alerts.as_of_date = cast(? as date)
                    {control_filter}
                order by alerts.action, alerts.priority, alerts.customer_id, alerts.rule_id""",
            [as_of_date])
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row)) for row in cursor.fetchall()]
        if not with_deliveries:
            return rows
        has_table = con.execute("select count(*) from information_schema.tables where table_schema = ? "
                                "and table_name = 'alert_deliveries'", [DELIVERIES_SCHEMA]).fetchone()[0]
        delivered = {r[0] for r in con.execute(
            f"select alert_id from {DELIVERIES_TABLE} where as_of_date = cast(? as date)",
            [as_of_date]).fetchall()} if has_table else set()
        return rows, delivered
    finally:
        con.close()


def _columns(channel: str) -> list[str]:
    if channel not in CONTACT_FIELDS:
        raise ValueError(f"alert channel {channel!r} has no contact fields (known: {sorted(CONTACT_FIELDS)})")
    return [*ALERT_FIELDS, *CONTACT_FIELDS[channel]]


def _csv_bytes(rows: list[dict], columns: list[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([escape_cell(row.get(c)) for c in columns])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")  # BOM: Excel reads UTF-8 (Chinese messages)


def _json_bytes(as_of_date: str, action: str, channel: str, rows: list[dict], columns: list[str]) -> bytes:
    def plain(value):
        return value.isoformat() if isinstance(value, date) else value

    payload = {"as_of_date": as_of_date, "action": action, "channel": channel,
               "alerts": [{c: plain(row.get(c)) for c in columns} for row in rows]}
    return (json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n").encode("utf-8")


def _content(as_of_date: str, by_action: dict[str, list[dict]]) -> dict[str, bytes]:
    """The outbox files of a date (not the manifest): a function of the alerts only."""
    files: dict[str, bytes] = {}
    for action, action_rows in sorted(by_action.items()):
        channels = {r["channel"] for r in action_rows}
        columns = _columns(action_rows[0]["channel"]) if len(channels) == 1 else \
            [*ALERT_FIELDS, *sorted({c for ch in channels for c in _columns(ch)[len(ALERT_FIELDS):]})]
        channel = "|".join(sorted(channels))
        files[f"{action}.csv"] = _csv_bytes(action_rows, columns)
        files[f"{action}.json"] = _json_bytes(as_of_date, action, channel, action_rows, columns)
    return files


def _digest(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name, data in sorted(files.items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def _write_folder(folder: Path, files: dict[str, bytes]) -> None:
    """A new private folder with the files, flushed to disk before it is renamed into place."""
    folder.mkdir(mode=0o700)
    for name, data in files.items():
        fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    fsync_dir(folder)



_RENAME_EXCHANGE = 2


def swap_in(new: Path, target: Path) -> None:
    """Put folder `new` at `target` in one step: rename when there is none yet, else exchange the two
    atomically (renameat2 RENAME_EXCHANGE) and remove the old one. Where the exchange is not
    available, two renames (the old folder is parked as `.<name>.old-<pid>`, removed by the next run
    if this one dies in between)."""
    if not target.exists():
        os.rename(new, target)
        fsync_dir(target.parent)
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        at_fdcwd = -100
        if libc.renameat2(at_fdcwd, bytes(new), at_fdcwd, bytes(target), _RENAME_EXCHANGE) != 0:
            raise OSError(ctypes.get_errno(), "renameat2")
        old = new  # after the exchange, `new` names the old folder
    except (OSError, AttributeError):
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, old)
        os.rename(new, target)
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def _record_and_swap(warehouse: str | Path, new_rows: list[dict], run_id: str, tmp: Path, folder: Path) -> None:
    """Record the deliveries and swap the folder in as one step: the folder is swapped in inside the
    transaction, which commits after it. Killed before the commit, nothing is recorded and the rerun
    writes the same folder with the same "new" counts; after it, the folder is complete and recorded."""
    import duckdb

    if not new_rows:
        swap_in(tmp, folder)
        return
    con = duckdb.connect(str(warehouse), config=duckdb_config())
    try:
        con.execute(f"create schema if not exists {DELIVERIES_SCHEMA}")
        con.execute(f"""create table if not exists {DELIVERIES_TABLE} (
                            alert_id varchar primary key, as_of_date date, customer_id varchar, rule_id varchar,
                            action varchar, channel varchar, run_id varchar, outbox_folder varchar)""")
        import pandas as pd

        # one set-based insert: executemany inserts row by row (tens of seconds for 10k alerts)
        frame = pd.DataFrame({
            "alert_id": [r["alert_id"] for r in new_rows], "as_of_date": [r["as_of_date"] for r in new_rows],
            "customer_id": [r["customer_id"] for r in new_rows], "rule_id": [r["rule_id"] for r in new_rows],
            "action": [r["action"] for r in new_rows], "channel": [r["channel"] for r in new_rows]})
        con.register("_new_deliveries", frame)
        con.execute("begin transaction")
        con.execute(f"""insert into {DELIVERIES_TABLE}
                        select alert_id, cast(as_of_date as date), customer_id, rule_id, action, channel,
                               ? as run_id, ? as outbox_folder
                        from _new_deliveries on conflict do nothing""", [run_id, str(folder)])
        swap_in(tmp, folder)
        fault_point("outbox_commit")
        con.execute("commit")
    finally:
        con.close()


def write_outbox(warehouse: str | Path, out_dir: str | Path, as_of_date: str, run_id: str) -> dict[str, int]:
    """Write the outbox folder of one as-of date; returns the number of alerts per action.

    The folder (files and `_manifest.json`) is written whole under a temporary name and swapped in,
    with the delivery records, as one step. A rerun whose files would be the same as those already
    handed over (and recorded) leaves the folder as it is: same files, same manifest, same "new"
    counts, whether the previous run finished or was killed."""
    as_of_date = date.fromisoformat(str(as_of_date)).isoformat()  # also keeps the path component safe
    rows, delivered = read_alerts(warehouse, as_of_date, with_deliveries=True)
    by_action: dict[str, list[dict]] = {}
    for row in rows:
        if not _ACTION_NAME.match(str(row["action"])):
            raise ValueError(f"alert action {row['action']!r} (rule {row['rule_id']}) is not a valid file name: "
                             "use lowercase letters, digits and _ in seed alert_rules")
        by_action.setdefault(row["action"], []).append(row)
    counts = {action: len(action_rows) for action, action_rows in sorted(by_action.items())}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder = out_dir / as_of_date
    files = _content(as_of_date, by_action)
    content_sha256 = _digest(files)
    existing = read_manifest(out_dir, as_of_date)
    if (existing.get("content_sha256") == content_sha256 and {r["alert_id"] for r in rows} <= delivered
            and all((folder / name).exists() for name in files)):
        log.info("outbox %s: unchanged since run %s (already handed over)", folder, existing.get("run_id"))
        return counts

    new_ids = {r["alert_id"] for r in rows} - delivered
    manifest = {
        "as_of_date": as_of_date,
        "run_id": run_id,
        "folder": as_of_date,  # relative to the outbox: the folder can move
        "content_sha256": content_sha256,
        "actions": {
            action: {
                "alerts": len(action_rows),
                "new_alerts": sum(r["alert_id"] in new_ids for r in action_rows),
                "missing_contact": sum(any(r.get(c) in (None, "") for c in CONTACT_FIELDS.get(r["channel"], ())[1:])
                                       for r in action_rows),
                "files": [f"{action}.csv", f"{action}.json"],
            }
            for action, action_rows in sorted(by_action.items())
        },
    }
    files[MANIFEST] = (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    tmp = out_dir / f".{as_of_date}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_folder(tmp, files)
        fault_point("outbox")
        _record_and_swap(warehouse, [r for r in rows if r["alert_id"] in new_ids], run_id, tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already unless something failed
    log.info("outbox %s: %s (new: %d)", folder, counts, len(new_ids))
    return counts
def read_manifest(out_dir: str | Path, as_of_date: str) -> dict:
    path = Path(out_dir) / date.fromisoformat(str(as_of_date)).isoformat() / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
