"""Per-load reading settings that dbt staging applies: `raw.load_settings`.

Ingest keeps raw values as text; staging parses them. Two settings of the source's mapping
(`crmtier/sources/<source>.yaml`, or `$CRMTIER_SOURCES_DIR`) decide how, and they are recorded
per load, when the file is read, so a later edit of the mapping never reinterprets old loads:

- `timezone`: the zone of timestamps written without an offset or zone name. Vendor files are
  converted to UTC in Python at ingest (crmtier.ingest.parsing), so their loads record `UTC`; generic
  CSV files keep their text and record the mapping's `settings.timezone`.
- `id_normalize`: how customer ids are matched: `trim` (default), `trim_upper`, `trim_lower`.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

DEFAULTS = {"timezone": "UTC", "id_normalize": "trim"}


def ensure_table(con) -> None:
    con.execute("""create table if not exists raw.load_settings (
                       load_id varchar primary key, source varchar, entity varchar,
                       timezone varchar, id_normalize varchar)""")


def settings_for(source: str, entity: str, converted_to_utc: bool) -> dict[str, str]:
    """The mapping's reading settings for one entity of a source (defaults if it has none)."""
    from crmtier.ingest.mappings import MappingError, load_mapping

    try:
        mapping = load_mapping(source).entity(entity)
    except MappingError as exc:  # the generic fast path reads files without a mapping entry
        log.info("no mapping settings for %s/%s (%s): defaults used", source, entity, exc)
        return dict(DEFAULTS)
    return {"timezone": "UTC" if converted_to_utc else mapping.timezone, "id_normalize": mapping.id_normalize}


def record(con, load_id: str, source: str, entity: str, converted_to_utc: bool) -> None:
    ensure_table(con)
    settings = settings_for(source, entity, converted_to_utc)
    con.execute("delete from raw.load_settings where load_id = ?", [load_id])
    con.execute("insert into raw.load_settings values (?, ?, ?, ?, ?)",
                [load_id, source, entity, settings["timezone"], settings["id_normalize"]])
