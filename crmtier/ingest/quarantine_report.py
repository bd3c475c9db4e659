"""A readable quarantine report per run: counts by reason and file, and sample rows."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb

from crmtier.duckdb_config import duckdb_config

SAMPLES_PER_REASON = 5


def build_report(warehouse: str | Path, load_ids: list[str], not_read: list[dict] | None = None) -> dict:
    """Counts and samples of the rows set aside by the given loads (one run's files), and the
    files of the landing folder this run did not read."""
    con = duckdb.connect(str(warehouse), read_only=True, config=duckdb_config())
    try:
        con.execute("create temp table _loads (load_id varchar)")
        if load_ids:  # a run may have only files it did not read (executemany refuses an empty list)
            con.executemany("insert into _loads values (?)", [[i] for i in load_ids])
        files = con.execute("""
            select log.source, log.entity, log.file_name, log.status, log.rows_in, log.rows_loaded,
                   log.rows_quarantined, coalesce(log.message, '')
            from raw.load_log as log semi join _loads on log.load_id = _loads.load_id
            order by log.source, log.entity, log.file_name""").fetchall()
        by_reason = con.execute("""
            select reason, _source, entity, _file_name, count(*) as n
            from raw.quarantine as q semi join _loads on q._load_id = _loads.load_id
            group by all order by n desc, reason, _file_name""").fetchall()
        samples = con.execute(f"""
            select reason, _file_name, _row_number, detail, raw_values
            from raw.quarantine as q semi join _loads on q._load_id = _loads.load_id
            qualify row_number() over (partition by reason order by _file_name, _row_number) <= {SAMPLES_PER_REASON}
            order by reason, _file_name, _row_number""").fetchall()
    finally:
        con.close()
    return {
        "files": [dict(zip(("source", "entity", "file", "status", "rows_in", "rows_loaded", "rows_quarantined",
                            "message"), row)) for row in files],
        "by_reason": [dict(zip(("reason", "source", "entity", "file", "rows"), row)) for row in by_reason],
        "samples": [_masked(dict(zip(("reason", "file", "row", "detail", "raw_values"), row))) for row in samples],
        "not_read": list(not_read or []),
    }


def _masked(sample: dict) -> dict:
    """Contact fields masked (crmtier.delivery.masking): reports hold no personal data."""
    from crmtier.delivery.masking import mask_raw_values, mask_text

    sample["raw_values"], contacts = mask_raw_values(sample["raw_values"])
    sample["detail"] = mask_text(sample["detail"], contacts)
    return sample


def render_markdown(report: dict, as_of_date: str) -> str:
    total = sum(f["rows_quarantined"] or 0 for f in report["files"])
    lines = [f"# Quarantine report, run as of {as_of_date}", "",
             f"{len(report['files'])} file(s) this run; {total:,} row(s) quarantined. "
             "Every file: rows in = rows loaded + rows quarantined.", "",
             "## Files", "", "| source | entity | file | status | in | loaded | quarantined | message |",
             "|---|---|---|---|---:|---:|---:|---|"]
    for f in report["files"]:
        lines.append(f"| {f['source']} | {f['entity']} | {f['file']} | {f['status']} | {f['rows_in']:,} | "
                     f"{f['rows_loaded']:,} | {f['rows_quarantined']:,} | {_cell(f['message'])} |")
    lines += ["", "## Quarantined rows by reason", "", "| reason | source | entity | file | rows |",
              "|---|---|---|---|---:|"]
    lines += [f"| {r['reason']} | {r['source']} | {r['entity']} | {r['file']} | {r['rows']:,} |"
              for r in report["by_reason"]] or ["| (none) | | | | 0 |"]
    lines += ["", "## Files in the landing folder not read this run", "", "| file | status | why |", "|---|---|---|"]
    lines += [f"| {_cell(n['path'])} | {n['status']} | {_cell(n['reason'], 200)} |"
              for n in report.get("not_read", [])] or ["| (none) | | |"]
    lines += ["", f"## Sample rows (up to {SAMPLES_PER_REASON} per reason)", "",
              "| reason | file | row | detail | raw values |", "|---|---|---:|---|---|"]
    lines += [f"| {s['reason']} | {s['file']} | {s['row']} | {_cell(s['detail'])} | {_cell(s['raw_values'], 160)} |"
              for s in report["samples"]]
    return "\n".join(lines) + "\n"


def write_report(warehouse: str | Path, load_ids: list[str], folder: Path, as_of_date: str,
                 not_read: list[dict] | None = None) -> Path:
    report = build_report(warehouse, load_ids, not_read)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "quarantine.json").write_text(json.dumps(report, indent=2, default=str, ensure_ascii=False))
    path = folder / "quarantine.md"
    path.write_text(render_markdown(report, as_of_date), encoding="utf-8")
    return path


def _cell(text, limit: int = 120) -> str:
    text = str(text or "").replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- Warnings: rows that load but do not reach the marts as written ---------------------------
# Written to <reports>/<as-of>/warnings.json and warnings.md, and appended to quarantine.md as a
# "## Warnings" section; each pipeline step fills its own section (ingest resets the file).

WARNINGS_JSON = "warnings.json"
WARNINGS_HEADING = "## Warnings"


def unknown_customers(warehouse: str | Path) -> dict:
    """Orders and events in staging whose customer id matches no customer: they reach no mart.
    Counts per entity and file, and samples; a sample whose id matches a known customer once case
    is ignored says so (the mapping's `settings.id_normalize` fixes that)."""
    con = duckdb.connect(str(warehouse), read_only=True, config=duckdb_config())
    try:
        con.execute("""
            create temp table _unknown as
            with customers as (select customer_id from staging.stg_crm__customers),
            rows as (
                select 'orders' as entity, load_id, order_id as row_id, customer_id
                from staging.stg_crm__orders
                union all
                select 'events', load_id, event_id, customer_id from staging.stg_crm__events
            )
            select rows.entity, rows.load_id, rows.row_id, rows.customer_id,
                   coalesce(log.source || '/' || log.entity || '/' || log.file_name, rows.load_id) as file
            from rows
            anti join customers on rows.customer_id = customers.customer_id
            left join raw.load_log as log on rows.load_id = log.load_id""")
        by_file = con.execute("""
            select entity, file, count(*) as n, count(distinct customer_id) as customers
            from _unknown group by all order by entity, file""").fetchall()
        samples = con.execute(f"""
            with sampled as (
                select * from _unknown
                qualify row_number() over (partition by entity order by file, row_id) <= {SAMPLES_PER_REASON}
            )
            select sampled.entity, sampled.file, sampled.row_id, sampled.customer_id,
                   min(customers.customer_id) as same_but_case
            from sampled
            left join staging.stg_crm__customers as customers
                on lower(sampled.customer_id) = lower(customers.customer_id)
            group by all
            order by all""").fetchall()
        case_only = con.execute("""
            select count(*) from _unknown semi join staging.stg_crm__customers as customers
                on lower(_unknown.customer_id) = lower(customers.customer_id)""").fetchone()[0]
    finally:
        con.close()
    return {
        "rows": sum(r[2] for r in by_file),
        "differ_only_by_case": case_only,
        "by_file": [dict(zip(("entity", "file", "rows", "customers"), r)) for r in by_file],
        "samples": [dict(zip(("entity", "file", "row_id", "customer_id", "known_customer_differing_by_case"), r))
                    for r in samples],
    }


def unknown_customers_lines(section: dict) -> list[str]:
    """Console lines for the unknown-customer section (empty when there is nothing to say)."""
    if not section["rows"]:
        return []
    lines = [f"WARNING {section['rows']:,} order/event row(s) name a customer id that is not in the customers "
             "data: they are missing from every mart (reason unknown_customer)"]
    lines += [f"  {f['entity']} {f['file']}: {f['rows']:,} row(s), {f['customers']:,} unknown customer id(s)"
              for f in section["by_file"]]
    lines += [f"  e.g. {s['entity']} {s['row_id']} customer_id={s['customer_id']!r}"
              + (f" (known customer {s['known_customer_differing_by_case']!r} differs only by case)"
                 if s["known_customer_differing_by_case"] else "")
              for s in section["samples"][:3]]
    if section["differ_only_by_case"]:
        lines.append(f"  {section['differ_only_by_case']:,} of them differ from a known id only by case: set "
                     "settings.id_normalize: trim_upper (or trim_lower) in the source's mapping")
    return lines


def field_warnings(warehouse: str | Path, load_ids: list[str]) -> dict:
    """Optional fields of this run's loads that could not be read (staging.stg_crm__field_warnings):
    counts per field and warning, and samples with the value."""
    con = duckdb.connect(str(warehouse), read_only=True, config=duckdb_config())
    try:
        con.execute("create temp table _loads (load_id varchar)")
        if load_ids:
            con.executemany("insert into _loads values (?)", [[i] for i in load_ids])
        con.execute("""create temp table _warnings as
                       select * from staging.stg_crm__field_warnings as w semi join _loads using (load_id)""")
        by_field = con.execute("""
            select field_name, warning, source_system, file_name, count(*) from _warnings
            group by all order by field_name, file_name""").fetchall()
        samples = con.execute(f"""
            select field_name, warning, file_name, row_number, customer_id, raw_value from _warnings
            qualify row_number() over (partition by field_name order by file_name, row_number) <= {SAMPLES_PER_REASON}
            order by field_name, file_name, row_number""").fetchall()
    finally:
        con.close()
    return {
        "rows": sum(r[4] for r in by_field),
        "by_field": [dict(zip(("field", "warning", "source", "file", "rows"), r)) for r in by_field],
        "samples": [_masked_field(dict(zip(("field", "warning", "file", "row", "customer_id", "value"), r)))
                    for r in samples],
    }


def _masked_field(sample: dict) -> dict:
    """A contact field's value (a vendor file's unreadable phone) is masked like quarantine samples."""
    from crmtier.delivery.masking import CONTACT_COLUMNS, mask_value

    if sample["field"] in CONTACT_COLUMNS and sample["value"] is not None:
        sample["value"] = mask_value(sample["value"])
    return sample


def field_warnings_lines(section: dict) -> list[str]:
    if not section["rows"]:
        return []
    lines = [f"WARNING {section['rows']:,} optional field value(s) could not be read and are null in the marts "
             "(field-level warnings; the rows loaded)"]
    lines += [f"  {f['field']} ({f['warning']}) {f['source']}/{f['file']}: {f['rows']:,}" for f in section["by_field"]]
    lines += [f"  e.g. {s['file']} row {s['row']} customer {s['customer_id']}: {s['field']}={s['value']!r}"
              for s in section["samples"][:3]]
    return lines


def thin_data(warehouse: str | Path, as_of_date: str) -> dict:
    """What the marts of the date could not judge from purchases: customers without a net purchase
    (prospect / low unless an attribute rule placed them), and the CLV models' fallback."""
    con = duckdb.connect(str(warehouse), read_only=True, config=duckdb_config())
    try:
        customers, buyers, by_attributes = con.execute("""
            select count(*), count(value_score), count(*) filter (where value_score is null and tier <> 'new'
                                                                   and tier_reason like '%attribute rule%')
            from marts.customer_tiers where as_of_date = ?""", [as_of_date]).fetchone()
        orders = con.execute("select count(*) from staging.stg_crm__orders").fetchone()[0]
        fits = con.execute("""select model, model_status, message from marts.clv_model_fits
                              where as_of_date = ? order by model""", [as_of_date]).fetchall()
    finally:
        con.close()
    fallback = [f"{model}: {message}" for model, status, message in fits if status != "fitted"]
    return {"customers": customers, "customers_with_net_purchase": buyers, "orders_in_staging": orders,
            "placed_by_attribute_rules": by_attributes, "clv_fallback": fallback}


def thin_data_lines(section: dict) -> list[str]:
    lines = []
    if section["customers"] and not section["customers_with_net_purchase"]:
        lines.append(f"WARNING no customer has a net purchase as of this date ({section['orders_in_staging']:,} "
                     f"orders in staging): all {section['customers']:,} customers are prospect, and their tier is "
                     f"low unless an attribute rule places them ({section['placed_by_attribute_rules']:,} placed by "
                     "seed tier_attribute_rules)")
    elif section["placed_by_attribute_rules"]:
        lines.append(f"{section['placed_by_attribute_rules']:,} customer(s) without a net purchase placed by "
                     "attribute rules (seed tier_attribute_rules)")
    if section["clv_fallback"]:
        lines.append("WARNING CLV models fell back to rules only (no P(alive), CLV): "
                     + "; ".join(section["clv_fallback"]))
    return lines


def reset_warnings(folder: Path) -> None:
    for name in (WARNINGS_JSON, "warnings.md"):
        (folder / name).unlink(missing_ok=True)


def add_warnings(folder: Path, as_of_date: str, section: str, payload: dict) -> Path:
    """Set one section of this run's warnings (json + markdown, and quarantine.md's Warnings part)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / WARNINGS_JSON
    warnings = json.loads(path.read_text()) if path.exists() else {}
    warnings[section] = payload
    path.write_text(json.dumps(warnings, indent=2, default=str, ensure_ascii=False))
    markdown = render_warnings_markdown(warnings)
    (folder / "warnings.md").write_text(f"# Warnings, run as of {as_of_date}\n\n{markdown}", encoding="utf-8")
    quarantine_md = folder / "quarantine.md"
    if quarantine_md.exists():  # the quarantine report carries the warnings too (replaced, never repeated)
        head = quarantine_md.read_text(encoding="utf-8").split(f"\n{WARNINGS_HEADING}\n")[0].rstrip("\n")
        quarantine_md.write_text(f"{head}\n\n{WARNINGS_HEADING}\n\n{markdown}", encoding="utf-8")
    return path


def _table_section(title: str, intro: str, summary_head: tuple[str, str], summary_rows: list[str],
                   sample_head: tuple[str, str], sample_rows: list[str]) -> list[str]:
    """A warnings section: heading, one sentence, a summary table, then a table of sample rows."""
    return [f"### {title}", "", intro, "", *summary_head, *summary_rows, "", *sample_head, *sample_rows, ""]


def render_warnings_markdown(warnings: dict) -> str:
    lines: list[str] = []
    unknown = warnings.get("unknown_customers")
    if unknown is not None:
        lines += _table_section(
            "Unknown customers (unknown_customer)",
            f"{unknown['rows']:,} order/event row(s) in staging name a customer id that is not in the "
            f"customers data; they are in no mart. {unknown['differ_only_by_case']:,} differ from a known "
            "id only by case (set `settings.id_normalize` in the source's mapping).",
            ("| entity | file | rows | unknown ids |", "|---|---|---:|---:|"),
            [f"| {f['entity']} | {_cell(f['file'])} | {f['rows']:,} | {f['customers']:,} |"
             for f in unknown["by_file"]] or ["| (none) | | 0 | 0 |"],
            ("| entity | file | row id | customer_id | known id differing by case |", "|---|---|---|---|---|"),
            [f"| {s['entity']} | {_cell(s['file'])} | {_cell(s['row_id'])} | {_cell(repr(s['customer_id']))} | "
             f"{_cell(s['known_customer_differing_by_case'])} |" for s in unknown["samples"]])
    fields = warnings.get("field_warnings")
    if fields is not None:
        lines += _table_section(
            "Field-level warnings (optional fields that could not be read)",
            f"{fields['rows']:,} value(s) in this run's files; the rows loaded with the field null "
            "(all of them: `staging.stg_crm__field_warnings`).",
            ("| field | warning | source | file | rows |", "|---|---|---|---|---:|"),
            [f"| {f['field']} | {f['warning']} | {f['source']} | {_cell(f['file'])} | {f['rows']:,} |"
             for f in fields["by_field"]] or ["| (none) | | | | 0 |"],
            ("| field | file | row | customer_id | value |", "|---|---|---:|---|---|"),
            [f"| {s['field']} | {_cell(s['file'])} | {s['row']} | {_cell(s['customer_id'])} "
             f"| {_cell(repr(s['value']))} |"
             for s in fields["samples"]])
    thin = warnings.get("thin_data")
    if thin is not None:
        lines += ["### Thin data (purchases, CLV models)", "",
                  f"- customers: {thin['customers']:,}; with a net purchase: {thin['customers_with_net_purchase']:,}; "
                  f"orders in staging: {thin['orders_in_staging']:,}",
                  f"- placed by attribute rules (seed tier_attribute_rules): {thin['placed_by_attribute_rules']:,}",
                  "- CLV models: " + ("; ".join(thin["clv_fallback"]) if thin["clv_fallback"]
                                      else "fitted"), ""]
        lines += [f"**{line}**" for line in thin_data_lines(thin) if line.startswith("WARNING")]
        lines.append("")
    return "\n".join(lines) + "\n"
