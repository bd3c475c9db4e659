"""Outbox: the alerts of one as-of date as files, one per action, for whoever sends them.

    write_outbox(warehouse, out_dir, as_of_date, run_id) -> {action: alerts}

writes ``<out_dir>/<as_of_date>/<action>.csv`` and ``<action>.json`` with the rows of
``history.customer_alerts`` for that date plus the contact fields the channel needs (email for
email, phone for sms and phone calls, the name for every action), read from
``staging.stg_generic__customers``. Contacts (PII) exist only in staging and here: the warehouse's
history and marts carry customer ids and a ``has_contact`` flag, never a contact.

* CSV for people (Excel): a text cell starting with ``= + - @``, a tab or a carriage return gets a
  leading ``'`` so a spreadsheet shows it instead of evaluating it (CSV/formula injection). The
  JSON file is for programs and keeps the values as they are (a phone ``+86...`` stays dialable).
* Atomic: every file is written to a temporary file in the same folder and renamed over the target
  (``os.replace``), so a reader never sees half a file; files are readable by the owner only.
* Idempotent: the file contents depend on the alerts only, so re-running a date rewrites the same
  files (files of actions without alerts any more are removed). ``outbox.alert_deliveries`` in the
  warehouse records the first hand-over of each alert_id (alert ids are deterministic), so a re-run
  does not count its alerts as new sends; ``_manifest.json`` in the date folder says how many are
  new. (Not in schema ``history``: the publish step copies that schema, before this step runs.)

The warehouse is opened read-only to read; a short read-write connection only records deliveries.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
from datetime import date
from pathlib import Path

log = logging.getLogger(__name__)

# Contact fields per channel (from staging.stg_generic__customers); the name goes with every action.
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


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and os.replace."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_alerts(warehouse: str | Path, as_of_date: str) -> list[dict]:
    """The alerts of the date with every contact field, on a read-only connection."""
    import duckdb

    contact_columns = sorted({c for fields in CONTACT_FIELDS.values() for c in fields})
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        cursor = con.execute(
            f"""select {', '.join('alerts.' + c for c in ALERT_FIELDS)},
                       {', '.join('customers.' + c for c in contact_columns)}
                from history.customer_alerts as alerts
                left join staging.stg_generic__customers as customers
                    on alerts.customer_id = customers.customer_id
                where alerts.as_of_date = cast(? as date)
                order by alerts.action, alerts.priority, alerts.customer_id, alerts.rule_id""",
            [as_of_date])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]
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


def record_deliveries(warehouse: str | Path, rows: list[dict], run_id: str, folder: Path) -> set[str]:
    """Record alert ids handed over for the first time; returns those new ids."""
    import duckdb

    if not rows:
        return set()
    con = duckdb.connect(str(warehouse))
    try:
        con.execute(f"create schema if not exists {DELIVERIES_SCHEMA}")
        con.execute(f"""create table if not exists {DELIVERIES_TABLE} (
                            alert_id varchar primary key, as_of_date date, customer_id varchar, rule_id varchar,
                            action varchar, channel varchar, run_id varchar, outbox_folder varchar)""")
        before = {r[0] for r in con.execute(
            f"select alert_id from {DELIVERIES_TABLE} where as_of_date = cast(? as date)",
            [str(rows[0]["as_of_date"])]).fetchall()}
        new = [r for r in rows if r["alert_id"] not in before]
        if new:
            import pandas as pd

            # one set-based insert: executemany inserts row by row (tens of seconds for 10k alerts)
            frame = pd.DataFrame({
                "alert_id": [r["alert_id"] for r in new], "as_of_date": [r["as_of_date"] for r in new],
                "customer_id": [r["customer_id"] for r in new], "rule_id": [r["rule_id"] for r in new],
                "action": [r["action"] for r in new], "channel": [r["channel"] for r in new]})
            con.register("_new_deliveries", frame)
            con.execute(f"""insert into {DELIVERIES_TABLE}
                            select alert_id, cast(as_of_date as date), customer_id, rule_id, action, channel,
                                   ? as run_id, ? as outbox_folder
                            from _new_deliveries on conflict do nothing""", [run_id, str(folder)])
            con.unregister("_new_deliveries")
        return {r["alert_id"] for r in new}
    finally:
        con.close()


def write_outbox(warehouse: str | Path, out_dir: str | Path, as_of_date: str, run_id: str) -> dict[str, int]:
    """Write the outbox files of one as-of date; returns the number of alerts per action."""
    as_of_date = date.fromisoformat(str(as_of_date)).isoformat()  # also keeps the path component safe
    rows = read_alerts(warehouse, as_of_date)
    by_action: dict[str, list[dict]] = {}
    for row in rows:
        if not _ACTION_NAME.match(str(row["action"])):
            raise ValueError(f"alert action {row['action']!r} (rule {row['rule_id']}) is not a valid file name: "
                             "use lowercase letters, digits and _ in seed alert_rules")
        by_action.setdefault(row["action"], []).append(row)

    folder = Path(out_dir) / as_of_date
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    written: set[str] = {MANIFEST}
    for action, action_rows in sorted(by_action.items()):
        channels = {r["channel"] for r in action_rows}
        columns = _columns(action_rows[0]["channel"]) if len(channels) == 1 else \
            [*ALERT_FIELDS, *sorted({c for ch in channels for c in _columns(ch)[len(ALERT_FIELDS):]})]
        channel = "|".join(sorted(channels))
        atomic_write(folder / f"{action}.csv", _csv_bytes(action_rows, columns))
        atomic_write(folder / f"{action}.json", _json_bytes(as_of_date, action, channel, action_rows, columns))
        written |= {f"{action}.csv", f"{action}.json"}
    for stale in folder.iterdir():  # an action without alerts any more on a re-run
        if stale.is_file() and stale.suffix in (".csv", ".json") and stale.name not in written:
            stale.unlink()

    new_ids = record_deliveries(warehouse, rows, run_id, folder)
    counts = {action: len(action_rows) for action, action_rows in sorted(by_action.items())}
    manifest = {
        "as_of_date": as_of_date,
        "run_id": run_id,
        "folder": str(folder),
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
    atomic_write(folder / MANIFEST, (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
    log.info("outbox %s: %s (new: %d)", folder, counts, len(new_ids))
    return counts


def read_manifest(out_dir: str | Path, as_of_date: str) -> dict:
    path = Path(out_dir) / date.fromisoformat(str(as_of_date)).isoformat() / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
