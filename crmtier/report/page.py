"""The run report as one self-contained HTML page (inline CSS and SVG, no script, no network)."""
from __future__ import annotations

import json
import math
from html import escape

from crmtier.report import svg

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC",sans-serif;margin:0;\
color:#222;background:#f6f7f9}
header{background:#1f3b5c;color:#fff;padding:16px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.85}
nav{padding:8px 28px;background:#e8edf3;font-size:13px}nav a{margin-right:14px;color:#1f3b5c}
main{padding:8px 28px 40px;max-width:1360px}
section{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:12px 18px;margin:14px 0}
section h2{font-size:18px;margin:4px 0 10px;color:#1f3b5c}
.grid{display:flex;flex-wrap:wrap;gap:18px}
figure.chart{margin:0;padding:6px 8px;border:1px solid #eef1f4;border-radius:4px;background:#fff}
details{margin:2px 0 10px}summary{cursor:pointer;color:#1f3b5c;font-size:13px}
figure.chart h4{margin:2px 0 6px;font-size:14px}figcaption{font-size:12px;color:#555;max-width:620px}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}
th,td{border-bottom:1px solid #e3e7ec;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f3f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1d7a3e;font-weight:600}.fail{color:#b3261e;font-weight:600}.warn{color:#a15c00;font-weight:600}
.note{color:#555;font-size:13px}.kpi{display:inline-block;margin:4px 18px 4px 0}
.kpi b{display:block;font-size:20px}
"""


def _table(headers: list[str], rows: list[list], numeric: set[int] | None = None, cls: str = "") -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f'<td{" class=num" if i in numeric else ""}>{c if isinstance(c, _Raw) else escape(_cell(c))}</td>'
        for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class _Raw(str):
    """HTML already escaped."""


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "–" if math.isnan(value) else svg.fmt(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _label(labels: dict, kind: str, code) -> str:
    return labels[kind].get(code, str(code))


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def section_overview(d: dict) -> str:
    s, lab = d["snapshot"], d["labels"]
    tiers = [(_label(lab, "tier", r["tier"]), r["n"]) for r in s["tiers"]]
    status = [(_label(lab, "status", r["status"]), r["n"]) for r in s["status"]]
    segments = [(_label(lab, "segment", r["segment"]), r["n"]) for r in s["segments"]]
    at_risk, total = s["at_risk"]
    grid_cells = {(f"R={r['r_score']}", f"F={r['f_score']}"): (r["n"], r["segment"] or "") for r in s["segment_grid"]}
    charts = [
        svg.figure("tiers", "Tiers 用户分级", svg.bar_chart(tiers, "customers per tier")),
        svg.figure("status", "Status 用户状态", svg.bar_chart(status, "customers per status"),
                   f"At risk (P(alive) or gap rule): {at_risk:,} of {total:,} customers."),
        svg.figure("segments", "RFM segments 客户细分", svg.bar_chart(segments, "customers per segment")),
        svg.figure("segment-grid", "Segment grid: recency score × frequency score",
                   svg.heatmap([f"R={r}" for r in range(5, 0, -1)], [f"F={f}" for f in range(1, 6)], grid_cells,
                               "customers per R and F score", "recency", "frequency score"),
                   "Each cell: customers with that R and F score, and the segment the seed rfm_segments gives it."),
    ]
    return _section("distribution", "Tiers, status and segments 分级、状态与细分",
                    '<div class="grid">' + "".join(charts) + "</div>")


def section_value(d: dict) -> str:
    s, lab = d["snapshot"], d["labels"]
    order = {r["tier"]: i for i, r in enumerate(s["tiers"])}

    def groups(rows):
        return [(_label(lab, "tier", r["grp"]), r) for r in sorted(rows, key=lambda r: order.get(r["grp"], 99))]

    charts = [svg.figure("value-by-tier", "Value score by tier",
                         svg.box_plot(groups(s["value_by_tier"]), "value score"),
                         "Box: 25th–75th percentile; bar: median; dot: mean; whiskers: 5th–95th percentile.")]
    if s["clv_by_tier"]:
        charts.append(svg.figure("clv-by-tier", "CLV by tier (base currency)",
                                 svg.box_plot(groups(s["clv_by_tier"]), "CLV")))
    else:
        charts.append(_note("No CLV: the models fell back to rules only (see the CLV model below)."))
    return _section("value", "Value and CLV by tier 价值分布", '<div class="grid">' + "".join(charts) + "</div>")


def _flow_block(flows: dict, key: str, dim: str, lab: dict, title: str) -> str:
    rows = flows.get(key, {}).get(dim, [])
    if not rows:
        return _note(f"{title}: no {dim} changes.")
    named = [(_label(lab, dim, f), _label(lab, dim, t), n) for f, t, n in rows]
    return svg.figure(f"flow-{dim}-{key}", title, svg.flow_chart(named, f"{dim} flows {key}"),
                      f"{sum(n for _, _, n in rows):,} {dim} changes; left: from, right: to "
                      "(history.customer_transitions).")


def section_flows(d: dict) -> str:
    s, lab = d["snapshot"], d["labels"]
    if not s["history_dates"]:
        return _section("flows", "Status flows 状态流转", _note("No history yet."))
    prev = s["previous_date"]
    blocks = []
    if prev:
        blocks.append(_flow_block(s["flows"], "previous", "status", lab, f"Status since {prev} (previous date)"))
        blocks.append(_flow_block(s["flows"], "previous", "tier", lab, f"Tier since {prev} (previous date)"))
    else:
        blocks.append(_note("First as-of date in history: no previous date to compare with."))
    for w in (30, 90):
        blocks.append(_flow_block(s["flows"], f"{w}d", "status", lab, f"Status changes over the last {w} days"))
    dates = s["history_dates"]
    trends = []
    for dim, rows in (("status", s["status_trend"]), ("tier", s["tier_trend"])):
        series: dict[str, list] = {}
        for r in rows:
            series.setdefault(_label(lab, dim, r[dim]), [None] * len(dates))[dates.index(r["as_of_date"].isoformat()
                if hasattr(r["as_of_date"], "isoformat") else r["as_of_date"])] = r["n"]
        trends.append(svg.figure(f"trend-{dim}", f"{dim.title()} over the history ({len(dates)} as-of dates)",
                                 svg.line_chart(dates, series, f"{dim} trend")))
    return _section("flows", "Status flows and trends 状态流转与趋势",
                    '<div class="grid">' + "".join(blocks) + "</div>"
                    + '<div class="grid">' + "".join(trends) + "</div>")


def section_alerts(d: dict) -> str:
    s, run = d["snapshot"], d["run"]
    manifest = run["outbox"]["manifest"]
    actions = manifest.get("actions", {})
    held = {r["rule_id"]: r for r in s["cooldown"]}  # rules with a hold on the date (customer_alert_holds)
    rows, bars = [], []
    by_rule = {r["rule_id"]: r for r in s["alerts"]}
    for rule_id in sorted(set(by_rule) | set(held)):
        r, h = by_rule.get(rule_id, {}), held.get(rule_id, {})
        rows.append([rule_id, r.get("action") or h.get("action", ""), r.get("channel") or h.get("channel", ""),
                     r.get("alerts", 0), r.get("control", 0), h.get("held_by_cooldown", 0),
                     r.get("missing_contact", 0)])
    per_action: dict[str, list[float]] = {}
    for row in rows:
        acc = per_action.setdefault(row[1], [0, 0])
        acc[0] += row[3]
        acc[1] += row[5]
    if per_action:
        bars.append(svg.figure("alerts", "Alerts per action: fired vs held back by cooldown",
                               svg.grouped_bars(list(per_action),
                                                {"alerts fired": [v[0] for v in per_action.values()],
                                                 "held by cooldown": [v[1] for v in per_action.values()]},
                                                "alerts per action")))
    table = _table(["rule", "action", "channel", "alerts", "of which control (not sent)", "held by cooldown",
                    "no contact"], rows, {3, 4, 5, 6}) if rows else _note("No alerts on this date.")
    files = run["outbox"]["files"]
    out_rows = [[a, v.get("alerts"), v.get("new_alerts"), v.get("missing_contact")] for a, v in actions.items()]
    outbox = (f"<p>Outbox folder: <code>{escape(run['outbox']['folder'])}</code>; files: "
              f"{escape(', '.join(files) or 'none')}</p>"
              + (_table(["action", "alerts handed over", "new (first hand-over)", "missing contact"], out_rows,
                        {1, 2, 3}) if out_rows else ""))
    return _section("alerts", "Alerts and outbox 预警与外发", "".join(bars) + table + outbox)


def section_control(d: dict) -> str:
    rows = d["snapshot"]["control_outcomes"]
    if rows is None:
        return ""
    if not rows:
        return _section("control", "Did the actions work? 策略效果 (control groups)",
                        _note("No alert rule has a control share, or no alert has been followed long enough."))
    table_rows, cats, treated, control, t_err, c_err = [], [], [], [], [], []
    for r in rows:
        table_rows.append([r["rule_id"], r["action"], f"{100 * r['control_share']:.0f}%", r["window_days"],
                           f"{r['treated_reactivated']}/{r['treated_alerts']}", _pct(r["treated_rate"]),
                           f"{r['control_reactivated']}/{r['control_alerts']}", _pct(r["control_rate"]),
                           _Raw(_diff(r)), r["pending_alerts"], r["verdict"]])
        if r["treated_alerts"] or r["control_alerts"]:
            cats.append(r["action"])
            treated.append(r["treated_rate"] if r["treated_rate"] is not None else math.nan)
            control.append(r["control_rate"] if r["control_rate"] is not None else math.nan)
            t_err.append((r.get("treated_rate_low"), r.get("treated_rate_high")))
            c_err.append((r.get("control_rate_low"), r.get("control_rate_high")))
    chart = svg.figure("control-groups", "Reactivation rate after the alert: treated vs control",
                       svg.grouped_bars(cats, {"treated (sent)": treated, "control (held out)": control},
                                        "reactivation rate", percent=True,
                                        errors={"treated (sent)": t_err, "control (held out)": c_err}),
                       "Bars: share reactivated (any purchase, or status back to active) within the window after "
                       "the alert; lines: 95% Wilson intervals.") if cats else ""
    table = _table(["rule", "action", "control share", "window (days)", "treated reactivated", "rate",
                    "control reactivated", "rate", "difference (95% CI)", "not yet followed for the window",
                    "verdict"], table_rows, {3, 9})
    return _section("control", "Did the actions work? 策略效果 (control groups)", chart + table)


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _diff(r: dict) -> str:
    if r.get("rate_difference") is None:
        return "–"
    return (f"{100 * r['rate_difference']:+.1f} pp ({100 * r['difference_low']:+.1f} to "
            f"{100 * r['difference_high']:+.1f})")


def section_model(d: dict) -> str:
    s = d["snapshot"]
    fit_rows = []
    for f in s["clv_fits"]:
        params = json.loads(f["params"]) if f.get("params") else {}
        fit_rows.append([f["model"], ", ".join(f"{k}={svg.fmt(v) if isinstance(v, float) else v}"
                                               for k, v in params.items()),
                         f["log_likelihood"], f["customers_used"], "yes" if f["converged"] else "no",
                         f.get("model_status"), f["message"]])
    parts = [_table(["model", "parameters", "log-likelihood", "customers", "converged", "status", "message"],
                    fit_rows, {2, 3})]
    check = s["model_check"]
    if check is None:
        parts.append(_note("No model check table in this snapshot."))
    elif not check or check[0].get("model_status") != "fitted":
        reason = check[0].get("message") if check else "no rows"
        parts.append(_note(f"Model check not available: {reason}"))
    else:
        total = next(r for r in check if r["bucket"] == "all")
        buckets = [r for r in check if r["bucket"] != "all"]
        parts.append(
            f'<p><span class="kpi">calibration until <b>{escape(str(total["calibration_end_date"]))}</b></span>'
            f'<span class="kpi">holdout <b>{total["holdout_days"]} days</b></span>'
            f'<span class="kpi">customers <b>{total["customers"]:,}</b></span>'
            f'<span class="kpi">predicted purchases <b>{svg.fmt(total["predicted_purchases"])}</b></span>'
            f'<span class="kpi">actual purchases <b>{svg.fmt(total["actual_purchases"])}</b></span>'
            f'<span class="kpi">mean absolute error <b>{svg.fmt(total["mean_absolute_error"])}</b></span></p>')
        parts.append(svg.figure(
            "model-check", "Calibration/holdout check: mean purchases in the holdout by repeat purchases before it",
            svg.grouped_bars([r["bucket"] for r in buckets],
                             {"predicted (BG/NBD)": [r["predicted_mean"] for r in buckets],
                              "actual": [r["actual_mean"] for r in buckets]}, "model check"),
            "Models fitted on the data before the calibration end only; the holdout shows what happened."))
        parts.append(_table(["repeat purchases in calibration", "customers", "predicted (mean)", "actual (mean)",
                             "predicted (total)", "actual (total)", "mean absolute error"],
                            [[r["bucket"], r["customers"], r["predicted_mean"], r["actual_mean"],
                              r["predicted_purchases"], r["actual_purchases"], r["mean_absolute_error"]]
                             for r in check], {1, 2, 3, 4, 5, 6}))
    return _section("model", "CLV model: fit and check 模型检验", "".join(parts))


def section_quality(d: dict) -> str:
    run = d["run"]
    parts = []
    q = run["quarantine"]
    if q is not None and q["files"]:  # a run with nothing new still writes an empty summary
        by_reason: dict[str, int] = {}
        for r in q["by_reason"]:
            by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + r["rows"]
        if by_reason:
            parts.append(svg.figure("quarantine", "Quarantined rows by reason",
                                    svg.bar_chart(sorted(by_reason.items(), key=lambda kv: -kv[1]), "quarantine")))
        parts.append(_table(["source", "entity", "file", "status", "rows in", "loaded", "quarantined", "message"],
                            [[f["source"], f["entity"], f["file"], f["status"], f["rows_in"], f["rows_loaded"],
                              f["rows_quarantined"], f["message"]] for f in q["files"]], {4, 5, 6}))
        parts.append(_table(["reason", "source", "entity", "file", "rows"],
                            [[r["reason"], r["source"], r["entity"], r["file"], r["rows"]] for r in q["by_reason"]],
                            {4}) if q["by_reason"] else _note("No row quarantined this run."))
    else:
        parts.append(_note("No file was loaded by this run (nothing new in the landing folder)."))
    for gate, summary in run["gates"].items():
        if summary is None:
            parts.append(f'<h3>gate {escape(gate)}: <span class="warn">no result found for this run</span></h3>')
            continue
        seconds = (run["timings"].get(f"gate {gate}") or {}).get("seconds") or _gate_seconds(summary)
        ok = summary.get("success")
        docs = summary.get("data_docs") or {}
        link = "".join(f' <a href="{escape(url)}">Data Docs ({escape(site)})</a>' for site, url in docs.items())
        parts.append(f'<h3>gate {escape(gate)}: <span class="{"ok" if ok else "fail"}">'
                     f'{"passed" if ok else "FAILED"}</span> ({len(summary.get("checks", []))} checks, '
                     f'{seconds:.1f} s){link}</h3>')
        parts.append("<details><summary>checks</summary>" + _table(["table", "check", "expectation", "result",
                                                                      "failing rows", "of rows", "observed"],
                            [[c.get("table"), c.get("check"), c.get("expectation"),
                              _Raw('<span class="ok">pass</span>' if c.get("success")
                                   else f'<span class="fail">{escape(c.get("severity", "fail"))}</span>'),
                              c.get("unexpected_rows"), c.get("total_rows"),
                              json.dumps(c.get("observed"), ensure_ascii=False, default=str) if c.get("observed")
                              else (c.get("error") or "")]
                             for c in summary.get("checks", [])], {4, 5}) + "</details>")
    return _section("quality", "Data quality: quarantine and gates 数据质量", "".join(parts))


def _gate_seconds(summary: dict) -> float:
    """A gate's time from its summary: the queries (run together) plus each check's validation."""
    checks = {c.get("check"): c for c in summary.get("checks", [])}.values()
    return max((c.get("query_seconds") or 0 for c in checks), default=0) + sum(
        c.get("validate_seconds") or 0 for c in checks)


def section_timings(d: dict) -> str:
    run = d["run"]
    stages = dict(run["timings"])
    for gate, summary in run["gates"].items():
        if summary is not None and f"gate {gate}" not in stages:  # the raw gate has no as-of parameter
            stages[f"gate {gate}"] = {"seconds": _gate_seconds(summary), "started": summary.get("run_time")}
    items = sorted(stages.items(), key=lambda kv: str(kv[1].get("started") or ""))
    if not items:
        return _section("timings", "Run timings", _note("No stage timings recorded."))
    chart = svg.figure("timings", "Seconds per stage", svg.bar_chart(
        [(f"{name} (not run)" if v.get("not_run") else name, float(v.get("seconds") or 0)) for name, v in items],
        "stage timings", unit=" s"))
    not_run = "".join(_note(f"{name} not run: {v['not_run']}.") for name, v in items if v.get("not_run"))
    return _section("timings", "Run timings 运行耗时", chart + not_run + _note(
        "Seconds per step of this run; the report step itself is not included."))


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


SECTIONS = (("distribution", "Tiers & status"), ("value", "Value & CLV"), ("flows", "Flows & trends"),
            ("alerts", "Alerts"), ("control", "Did it work?"), ("model", "CLV model"), ("quality", "Data quality"),
            ("timings", "Timings"))


def render(d: dict) -> str:
    s = d["snapshot"]
    body = "".join([section_overview(d), section_value(d), section_flows(d), section_alerts(d), section_control(d),
                    section_model(d), section_quality(d), section_timings(d)])
    nav = "".join(f'<a href="#{a}">{escape(t)}</a>' for a, t in SECTIONS if f'id="{a}"' in body)
    total = sum(r["n"] for r in s["tiers"])
    if not s.get("is_latest", True):
        body = _section("earlier", "An earlier date 较早日期", _note(
            f"This run re-computed {s['as_of_date']}, before the published snapshot's {s['latest_date']}: tiers, "
            f"status, segments, value, flows and alerts are those of {s['as_of_date']} (from the history); the "
            f"CLV model, its check and the control-group outcomes are the snapshot's ({s['latest_date']}).")) + body
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="crmtier-report" data-latest="{"true" if s.get("is_latest", True) else "false"}">'
            f"<title>crmtier run report {escape(s['as_of_date'])}</title><style>{CSS}</style></head><body>"
            f"<header><h1>crmtier run report — as of {escape(s['as_of_date'])}</h1>"
            f"<p>{total:,} customers · run {escape(str(s.get('run_id') or ''))} · generated {escape(d['generated_at'])}"
            f"</p></header><nav>{nav}</nav><main>{body}</main></body></html>")
