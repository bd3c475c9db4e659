"""`crmtier explain CUSTOMER_ID [--as-of DATE] [--json]`: why a customer has its tier and status.

Reads the published snapshot only, read-only (never the warehouse, so it neither waits for nor
blocks a run). The snapshot's own date comes from its marts (with the rule inputs of every
figure); an earlier date comes from history.customer_history. The timeline lists the customer's
tier, status and at-risk changes (history.customer_transitions) and alerts (history.customer_alerts,
sent or held out as control) up to the date. The snapshot holds no contact data (names, phones,
e-mails live in staging and the outbox only); any contact-like attribute is masked anyway.
"""
from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

from crmtier.duckdb_config import duckdb_config
from crmtier.paths import get_paths

CONTACT_COLUMNS = ("name", "customer_name", "phone", "email", "mobile", "wechat")


class ExplainError(Exception):
    """The customer or the date is not in the snapshot."""


def mask(value) -> str | None:
    """Keep the shape, hide the content: 'Li Lei' -> 'L*****', '13812345678' -> '138*****678'."""
    if value is None:
        return None
    text = str(value)
    if "@" in text:
        user, _, domain = text.partition("@")
        return f"{user[:1]}***@{domain.split('.')[-1] if '.' in domain else '***'}"
    digits = re.sub(r"\D", "", text)
    if len(digits) >= 7:
        return f"{digits[:3]}*****{digits[-3:]}"
    return text[:1] + "*" * max(len(text) - 1, 1)


def _one(con, sql: str, params: list) -> dict | None:
    cursor = con.execute(sql, params)
    row = cursor.fetchone()
    return dict(zip([d[0] for d in cursor.description], row)) if row else None


def _all(con, sql: str, params: list) -> list[dict]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _tables(con) -> set[str]:
    return {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}


def explain(customer_id: str, as_of: str | None = None, snapshot: Path | None = None) -> dict:
    import duckdb

    snapshot = Path(snapshot or get_paths().publish)
    if not snapshot.exists():
        raise ExplainError(f"no published snapshot at {snapshot}: run the pipeline first (crmtier run)")
    con = duckdb.connect(str(snapshot), read_only=True, config=duckdb_config())
    try:
        snap_date = con.execute("select as_of_date from _snapshot").fetchone()[0]
        day = date.fromisoformat(as_of) if as_of else snap_date
        tables = _tables(con)
        if day == snap_date:
            out = _from_marts(con, customer_id, day, tables)
        elif "customer_history" in tables:
            out = _from_history(con, customer_id, day)
        else:
            raise ExplainError(f"the snapshot is as of {snap_date} and has no history for {day}")
        out["timeline"] = _timeline(con, customer_id, day, tables)
    finally:
        con.close()
    out.update({"customer_id": customer_id, "as_of_date": day.isoformat(), "snapshot": str(snapshot),
                "snapshot_as_of_date": snap_date.isoformat()})
    return _jsonable(out)


def _from_marts(con, customer_id: str, day: date, tables: set[str]) -> dict:
    attributes = _one(con, "select * from dim_customers where customer_id = ?", [customer_id])
    if attributes is None:
        raise ExplainError(f"customer {customer_id!r} is not in the snapshot as of {day}")
    for column in list(attributes):
        if column in CONTACT_COLUMNS:
            attributes[column] = mask(attributes[column])
    tier = _one(con, "select * from customer_tiers where customer_id = ?", [customer_id]) or {}
    status = _one(con, "select * from customer_status where customer_id = ?", [customer_id]) or {}
    behaviour = _one(con, "select * from fct_customer_behaviour where customer_id = ?", [customer_id]) or {}
    scores = _one(con, "select * from customer_value_scores where customer_id = ?", [customer_id]) or {}
    segment = (_one(con, "select * from customer_segments where customer_id = ?", [customer_id]) or {}) \
        if "customer_segments" in tables else {}
    clv = (_one(con, "select * from customer_clv where customer_id = ?", [customer_id]) or {}) \
        if "customer_clv" in tables else {}
    last = behaviour.get("last_interaction_date")
    if last is None:
        interaction = "no interaction recorded"
    elif last == behaviour.get("last_purchase_date"):
        interaction = f"purchase on {last}"
    else:
        interaction = f"engagement event on {last} (last purchase {behaviour.get('last_purchase_date') or 'never'})"
    drop = ("as_of_date", "config_version", "customer_id")
    return {
        "source": "marts (published snapshot)",
        "attributes": {k: v for k, v in attributes.items() if k not in drop},
        "tier": {k: tier.get(k) for k in ("tier", "tier_label_zh", "tier_rank", "tier_method", "value_source",
                                           "value_score", "value_percentile", "tier_cut", "r_score", "f_score",
                                           "m_score", "clv", "tier_reason", "service_en", "service_zh")},
        "status": {**{k: status.get(k) for k in ("status", "status_label_en", "status_label_zh",
                                                 "last_interaction_date",
                                                 "days_since_last_interaction", "status_reason", "strategy_en",
                                                 "strategy_zh")},
                   "interaction_that_set_it": interaction},
        "rfm": {**{k: scores.get(k) for k in ("recency_days", "frequency", "monetary", "r_score", "f_score", "m_score",
                                              "value_score", "value_percentile")},
                **{k: segment.get(k) for k in ("segment", "segment_zh", "segment_reason", "action_en", "action_zh")}},
        "value_model": {k: clv.get(k) for k in ("p_alive", "expected_purchases_90d", "expected_order_value", "clv",
                                                "is_one_time_buyer", "model_status", "p_alive_note",
                                                "gamma_gamma_note")},
        "at_risk": {k: status.get(k) for k in ("is_at_risk", "at_risk_basis", "at_risk_reason")},
    }


def _from_history(con, customer_id: str, day: date) -> dict:
    row = _one(con, "select * from customer_history where customer_id = ? and as_of_date = ?", [customer_id, day])
    if row is None:
        dates = [r[0] for r in con.execute("select distinct as_of_date from customer_history order by 1").fetchall()]
        raise ExplainError(f"customer {customer_id!r} has no history row as of {day} "
                           f"(history dates: {', '.join(map(str, dates[-10:])) or 'none'})")
    return {
        "source": "history.customer_history (an earlier as-of date)",
        "attributes": {},
        "tier": {k: row.get(k) for k in ("tier", "tier_rank", "value_score", "value_percentile", "r_score", "f_score",
                                         "m_score", "tier_reason")},
        "status": {k: row.get(k) for k in ("status", "days_since_last_interaction", "days_since_last_purchase",
                                           "status_reason")},
        "rfm": {k: row.get(k) for k in ("r_score", "f_score", "m_score", "segment", "paid_orders", "net_spend")},
        "value_model": {k: row.get(k) for k in ("p_alive", "expected_purchases_90d", "clv")},
        "at_risk": {k: row.get(k) for k in ("is_at_risk", "at_risk_reason")},
    }


def _timeline(con, customer_id: str, day: date, tables: set[str]) -> list[dict]:
    events: list[dict] = []
    if "customer_transitions" in tables:
        for t in _all(con, """select effective_date, previous_as_of_date, change_kind, from_status, to_status,
                                     from_tier, to_tier, is_status_changed, is_tier_changed, is_at_risk_changed,
                                     to_is_at_risk, reason
                              from customer_transitions where customer_id = ? and effective_date <= ?
                              order by effective_date""", [customer_id, day]):
            changes = []
            if t["is_status_changed"]:
                changes.append(f"status {t['from_status']} → {t['to_status']}")
            if t["is_tier_changed"]:
                changes.append(f"tier {t['from_tier']} → {t['to_tier']}")
            if t["is_at_risk_changed"]:
                changes.append("at risk" if t["to_is_at_risk"] else "no longer at risk")
            events.append({"date": t["effective_date"], "kind": "change", "what": ", ".join(changes),
                           "since": t["previous_as_of_date"], "reason": t["reason"]})
    if "customer_alerts" in tables:
        columns = {r[0] for r in con.execute("select column_name from information_schema.columns "
                                             "where table_name = 'customer_alerts'").fetchall()}
        control = "is_control" if "is_control" in columns else "false"
        for a in _all(con, f"""select as_of_date, rule_id, action, channel, {control} as is_control, reason
                               from customer_alerts where customer_id = ? and as_of_date <= ?
                               order by as_of_date, rule_id""", [customer_id, day]):
            handed = "control group: recorded, not sent" if a["is_control"] else f"sent to the outbox ({a['channel']})"
            events.append({"date": a["as_of_date"], "kind": "alert", "what": f"{a['action']} ({handed})",
                           "rule_id": a["rule_id"], "reason": a["reason"]})
    return sorted(events, key=lambda e: (e["date"], e["kind"]))


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        return value.item()
    if type(value).__name__ == "Decimal":
        return float(value)
    return value


def format_text(e: dict) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.2f}"
        return "–" if v is None else str(v)

    t, s, r, m, k = e["tier"], e["status"], e["rfm"], e["value_model"], e["at_risk"]
    lines = [f"customer {e['customer_id']} as of {e['as_of_date']}  ({e['source']}; snapshot {e['snapshot']})"]
    if e["attributes"]:
        lines.append("  attributes: " + ", ".join(f"{key}={fmt(v)}" for key, v in e["attributes"].items()
                                                  if v is not None) + "  (no contact data in the snapshot)")
    label = " ".join(x for x in (t.get("tier"), t.get("tier_label_zh")) if x)
    lines.append(f"  tier 用户分级: {label or '–'}")
    lines.append(f"    why: {fmt(t.get('tier_reason'))}")
    if t.get("service_en"):
        lines.append(f"    service: {t['service_en']} / {t.get('service_zh') or ''}")
    status_label = " ".join(x for x in (s.get("status"), s.get("status_label_zh")) if x)
    lines.append(f"  status 用户状态: {status_label or '–'}")
    lines.append(f"    why: {fmt(s.get('status_reason'))}")
    if s.get("interaction_that_set_it"):
        lines.append(f"    set by: {s['interaction_that_set_it']}")
    if s.get("strategy_en"):
        lines.append(f"    strategy: {s['strategy_en']} / {s.get('strategy_zh') or ''}")
    lines.append(f"  RFM: R={fmt(r.get('r_score'))} F={fmt(r.get('f_score'))} M={fmt(r.get('m_score'))}"
                 + (f" (recency {fmt(r.get('recency_days'))} days, {fmt(r.get('frequency'))} purchases, "
                    f"monetary {fmt(r.get('monetary'))})" if "recency_days" in r else "")
                 + f"; segment {fmt(r.get('segment'))} {r.get('segment_zh') or ''}")
    if r.get("segment_reason"):
        lines.append(f"    segment: {r['segment_reason']}")
    lines.append(f"  value model: P(alive)={fmt(m.get('p_alive'))}, expected purchases (90 days)="
                 f"{fmt(m.get('expected_purchases_90d'))}, expected order value={fmt(m.get('expected_order_value'))}, "
                 f"CLV={fmt(m.get('clv'))}" + (f" [{m['model_status']}]" if m.get("model_status") else ""))
    if m.get("p_alive_note"):
        lines.append(f"    note: {m['p_alive_note']}")
    lines.append(f"  at risk: {'yes' if k.get('is_at_risk') else 'no'}" +
                 (f" — {k['at_risk_reason']}" if k.get("at_risk_reason") else ""))
    lines.append(f"  timeline ({len(e['timeline'])} events):")
    for ev in e["timeline"]:
        lines.append(f"    {ev['date']}  {ev['kind']:6s} {ev['what']}")
        if ev.get("reason"):
            lines.append(f"                       {ev['reason']}")
    if not e["timeline"]:
        lines.append("    (no tier or status change and no alert recorded)")
    return "\n".join(lines)


def main(customer_id: str, as_of: str | None, as_json: bool, snapshot: Path | None = None) -> int:
    import sys

    try:
        result = explain(customer_id, as_of, snapshot)
    except ExplainError as exc:
        print(f"crmtier explain: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False, indent=2, default=str) if as_json else format_text(result))
    return 0
