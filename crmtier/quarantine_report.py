"""A readable quarantine report per run: counts by reason and file, and sample rows."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb

SAMPLES_PER_REASON = 5


def build_report(warehouse: str | Path, load_ids: list[str], not_read: list[dict] | None = None) -> dict:
    """Counts and samples of the rows set aside by the given loads (one run's files), and the
    files of the landing folder this run did not read."""
    con = duckdb.connect(str(warehouse), read_only=True)
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
    """Contact fields masked (crmtier.masking): reports hold no personal data."""
    from crmtier.masking import mask_raw_values, mask_text

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
    lines += [f"| {_cell(n['path'])} | {n['status']} | {_cell(n['reason'], 200)} |" for n in report.get("not_read", [])] \
        or ["| (none) | | |"]
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
