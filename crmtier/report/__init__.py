"""The run report (运行报告): one self-contained HTML file per run.

    build_report(as_of_date) -> Path

reads the published snapshot (read-only) and the run's files (crmtier.report.data), draws the
charts as inline SVG (crmtier.report.svg) and writes ``<reports>/<as-of>/report.html``, copied
atomically beside the snapshot as ``report.html`` (the latest run's report). No script, no
network: the file opens offline and can be mailed as it is.
"""
from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from crmtier.paths import get_paths


def collect(as_of_date: str, snapshot: Path | None = None) -> dict:
    from crmtier.report.data import labels, run_files, snapshot_data

    snapshot = Path(snapshot or get_paths().publish)
    return {"snapshot": snapshot_data(snapshot, as_of_date), "labels": labels(), "run": run_files(as_of_date),
            "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def build_report(as_of_date: str, snapshot: Path | None = None) -> Path:
    from crmtier.report.page import render

    paths = get_paths()
    html = render(collect(as_of_date, snapshot))
    folder = paths.reports / as_of_date
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "report.html"
    _atomic_text(target, html)
    if not _is_latest(html):  # a backfilled earlier date: the copy beside the snapshot stays the latest's
        return target
    beside = Path(snapshot or paths.publish).parent / "report.html"
    tmp = beside.with_name(f".{beside.name}.{os.getpid()}.tmp")
    shutil.copyfile(target, tmp)
    os.replace(tmp, beside)
    return target


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _is_latest(html: str) -> bool:
    return 'data-latest="false"' not in html
