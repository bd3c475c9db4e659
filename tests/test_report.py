"""The run report: written by the real DAG (task `report`), linked in the run output, published beside the
snapshot, and opened in real headless Chromium: no console error, no network request, every chart drawn
and non-empty, figures equal to the snapshot's. The screenshot is kept for a person to look at."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.browser import chromium_path, inspect_page

pytestmark = pytest.mark.e2e  # shares the session fixture report_run: conftest.SHARED

CHART_PROBE = """(() => {
  const charts = [...document.querySelectorAll('figure.chart')].map(f => {
    const svg = f.querySelector('svg');
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    return {id: f.dataset.chart, width: box.width, height: box.height,
            marks: svg ? svg.querySelectorAll('rect, path, circle, line').length : 0,
            titles: svg ? [...svg.querySelectorAll('title')].map(t => t.textContent) : []};
  });
  return {charts, sections: [...document.querySelectorAll('section h2')].map(h => h.textContent),
          gates: [...document.querySelectorAll('section#quality h3')].map(h => h.textContent),
          docs: [...document.querySelectorAll('section#quality h3 a')].map(a => a.getAttribute('href')),
          scripts: document.scripts.length, width: document.documentElement.scrollWidth};
})()"""

# Charts the last date's report must show (3 dates, generated data with transitions and alerts). Its run
# loaded no new file, so its quarantine section says so; the first date's report has the quarantine chart.
EXPECTED_CHARTS = {"tiers", "status", "segments", "segment-grid", "value-by-tier", "clv-by-tier",
                   "flow-status-previous", "flow-status-30d", "flow-status-90d", "trend-status", "trend-tier",
                   "alerts", "model-check", "timings"}


def _snapshot_counts(snapshot: Path, sql: str) -> dict:
    con = duckdb.connect(str(snapshot), read_only=True)
    try:
        return dict(con.execute(sql).fetchall())
    finally:
        con.close()


@pytest.fixture(scope="module")
def page(report_run, tmp_path_factory):
    assert report_run.exit_code == 0, report_run.output
    if chromium_path() is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run installs it)")
    report = report_run.home / "reports" / report_run.as_of / "report.html"
    shot = tmp_path_factory.mktemp("report_screenshot") / "report.png"
    result = inspect_page(report, shot, CHART_PROBE)
    artifacts = os.environ.get("CRMTIER_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "report.png")
        shutil.copy(report, Path(artifacts) / "report.html")
    print(f"report screenshot: {shot}")
    return report, shot, result


def test_report_written_linked_and_published(report_run):
    assert report_run.exit_code == 0, report_run.output
    for day in report_run.dates:  # one report per run
        assert (report_run.home / "reports" / day / "report.html").stat().st_size > 10_000
    latest = report_run.home / "reports" / report_run.as_of / "report.html"
    beside = report_run.snapshot.parent / "report.html"
    assert beside.read_bytes() == latest.read_bytes()
    assert f"report: {latest}" in report_run.output  # the run's progress line links it
    html = latest.read_text(encoding="utf-8")
    assert f"as of {report_run.as_of}" in html
    # self-contained: no script, no stylesheet or image fetched from anywhere
    assert "<script" not in html
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html)
    assert "<link" not in html


def test_page_loads_in_chromium_without_errors(page):
    _, shot, result = page
    assert result["console"] == [], result["console"]
    assert result["exceptions"] == [], result["exceptions"]
    assert result["failed_requests"] == [], result["failed_requests"]
    assert shot.stat().st_size > 50_000  # a real full-page PNG
    assert result["result"]["scripts"] == 0


def test_every_chart_renders_non_empty(page):
    _, _, result = page
    charts = {c["id"]: c for c in result["result"]["charts"]}
    missing = EXPECTED_CHARTS - set(charts)
    assert not missing, f"charts missing: {missing}; present: {sorted(charts)}"
    for chart in charts.values():
        assert chart["width"] > 200 and chart["height"] > 40, chart
        assert chart["marks"] >= 2, chart


def test_charts_show_the_snapshot_figures(page, report_run):
    from crmtier.report.data import labels

    _, _, result = page
    charts = {c["id"]: c for c in result["result"]["charts"]}
    names = labels()
    tiers = _snapshot_counts(report_run.snapshot, "select tier, count(*) from customer_tiers group by 1")
    status = _snapshot_counts(report_run.snapshot, "select status, count(*) from customer_status group by 1")
    for chart, counts, kind in (("tiers", tiers, "tier"), ("status", status, "status")):
        titles = charts[chart]["titles"]
        assert len(titles) == len(counts)
        for code, n in counts.items():  # bilingual label from the seeds, and the count
            assert f"{names[kind][code]}: {n:,}" in titles, (code, titles)
    grid = _snapshot_counts(report_run.snapshot,
                            "select 'R=' || r_score || ', F=' || f_score, count(*) from customer_segments group by 1")
    grid_titles = charts["segment-grid"]["titles"]
    for cell, n in grid.items():
        assert any(t.startswith(f"{cell}: {n:,} ") for t in grid_titles), (cell, n)
    flows = _snapshot_counts(report_run.snapshot, f"""
        select from_status || '|' || to_status, count(*) from customer_transitions
        where is_status_changed and effective_date = '{report_run.as_of}' group by 1""")
    flow_titles = charts["flow-status-previous"]["titles"]
    assert len(flow_titles) == len(flows)
    for pair, n in flows.items():
        a, b = pair.split("|")
        assert f"{names['status'][a]} → {names['status'][b]}: {n:,}" in flow_titles


def test_tiers_are_in_the_order_of_crmtier_summary(page, report_run):
    """The report's tier chart and `crmtier summary` share one order (seed tier_rank, `new` last)."""
    from crmtier.report.data import labels
    from crmtier.seeds import tier_order

    _, _, result = page
    names = labels()["tier"]
    titles = {c["id"]: c for c in result["result"]["charts"]}["tiers"]["titles"]
    tiers = _snapshot_counts(report_run.snapshot, "select tier, count(*) from customer_tiers group by 1")
    assert "new" in tiers and len(tiers) > 2  # the data have a tier without a rank to place
    assert [t.rsplit(": ", 1)[0] for t in titles] == [names[t] for t in tier_order(tiers)]
    assert tier_order(tiers)[-1] == "new"


def test_gates_and_data_docs_are_listed(page):
    _, _, result = page
    gates = result["result"]["gates"]
    for gate in ("raw", "staging", "marts", "drift"):
        assert any(g.startswith(f"gate {gate}: passed") for g in gates), gates
    assert result["result"]["docs"], "no Data Docs link"
    for href in result["result"]["docs"]:
        assert href.startswith("file://") and Path(href[len("file://"):]).exists(), href


def test_model_check_and_sections_present(page, report_run):
    report, _, result = page
    sections = " | ".join(result["result"]["sections"])
    for title in ("Tiers, status and segments", "Value and CLV by tier", "Status flows and trends",
                  "Alerts and outbox", "CLV model", "Data quality", "Run timings"):
        assert title in sections
    html = report.read_text(encoding="utf-8")
    con = duckdb.connect(str(report_run.snapshot), read_only=True)
    try:
        total = con.execute("select customers, actual_purchases from clv_holdout_check where bucket = 'all'").fetchone()
    finally:
        con.close()
    assert f"customers <b>{total[0]:,}</b>" in html
    assert f"actual purchases <b>{total[1]:,.0f}</b>" in html


def test_quarantine_summary_of_the_run_that_loaded_the_files(report_run):
    import json

    first = report_run.home / "reports" / report_run.dates[0]
    html = (first / "report.html").read_text(encoding="utf-8")
    quarantine = json.loads((first / "quarantine.json").read_text(encoding="utf-8"))
    assert quarantine["by_reason"], "the generated exports include bad rows"
    assert 'data-chart="quarantine"' in html
    totals: dict[str, int] = {}
    for row in quarantine["by_reason"]:
        totals[row["reason"]] = totals.get(row["reason"], 0) + row["rows"]
        assert row["file"] in html
    for reason, rows in totals.items():
        assert f"<title>{reason}: {rows:,}</title>" in html
    last = (report_run.home / "reports" / report_run.as_of / "report.html").read_text(encoding="utf-8")
    assert "No file was loaded by this run" in last


def test_a_stage_that_was_not_run_says_so_and_why(report_run):
    """The last date loaded no new file: its report shows dbt staging as not run, with the reason, beside the
    timings; the first date, which loaded the files, ran it."""
    import json

    last = report_run.home / "reports" / report_run.as_of
    first = report_run.home / "reports" / report_run.dates[0]
    assert "not_run" in json.loads((last / "timings.json").read_text())["dbt staging"]
    html = (last / "report.html").read_text(encoding="utf-8")
    assert "dbt staging (not run)" in html
    assert "dbt staging not run: the staging tables were built and tested at" in html
    assert "not run" not in (first / "report.html").read_text(encoding="utf-8")
