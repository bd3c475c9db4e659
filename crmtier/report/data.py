"""What the run report shows, read from the published snapshot (read-only) and the run's files.

Sources: the snapshot (marts and history views), the seeds (bilingual labels), the run's report
folder (ingest, quarantine, stage timings), the gate summaries under ``gx/gate_results`` and the
outbox manifest. The warehouse is never opened: the report can be rebuilt while a run writes.
"""
from __future__ import annotations

import json
import math
from datetime import date, timedelta
from pathlib import Path

from crmtier.duckdb_config import duckdb_config
from crmtier.paths import get_paths
from crmtier.seeds import labels, tier_order  # noqa: F401  (labels: part of this module's interface)

GATES = ("raw", "staging", "marts", "drift")
FLOW_WINDOWS = (30, 90)


def _rows(con, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _has(con, table: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where table_name = ?",
                            [table]).fetchone()[0])


def _quantiles(con, sql: str) -> list[dict]:
    return _rows(con, f"""
        with data as ({sql})
        select grp, count(*) as n, avg(v) as mean,
               quantile_cont(v, 0.05) as p05, quantile_cont(v, 0.25) as p25, quantile_cont(v, 0.5) as p50,
               quantile_cont(v, 0.75) as p75, quantile_cont(v, 0.95) as p95
        from data where v is not null group by grp""")


def snapshot_data(snapshot: Path, as_of_date: str | None = None) -> dict:
    """Figures of the run's as-of date. The snapshot's current tables are its latest date; a run that
    re-computed an earlier date (a backfill) reads that date's rows of customer_history instead, and
    says which tables (model fits and checks, control outcomes) are the latest date's."""
    import duckdb

    con = duckdb.connect(str(snapshot), read_only=True, config=duckdb_config())
    try:
        snap = _rows(con, "select * from _snapshot")[0]
        latest = snap["as_of_date"]
        as_of = date.fromisoformat(as_of_date) if as_of_date else latest
        if as_of > latest:
            raise RuntimeError(f"published snapshot {snapshot} is as of {latest}, before {as_of}: nothing was "
                               "published for this run")
        current = as_of == latest
        day = f"where as_of_date = '{as_of.isoformat()}'"
        tiers = "customer_tiers" if current else f"(select * from customer_history {day})"
        status = "customer_status" if current else f"(select * from customer_history {day})"
        segments = "customer_segments" if current else f"(select * from customer_history {day})"
        clv = "customer_clv" if current else f"(select customer_id, clv from customer_history {day})"
        out: dict = {"as_of_date": as_of.isoformat(), "run_id": snap.get("run_id"),
                     "latest_date": latest.isoformat(), "is_latest": current}
        tier_rows = _rows(con, f"select tier, min(tier_rank) as tier_rank, count(*) as n from {tiers} as t "
                               "group by tier")
        order = tier_order([row["tier"] for row in tier_rows])  # as `crmtier summary`: seed rank, `new` last
        out["tiers"] = sorted(tier_rows, key=lambda row: order.index(row["tier"]))
        out["status"] = _rows(con, f"select status, count(*) as n from {status} as s group by status order by n desc")
        out["at_risk"] = con.execute(f"select count(*) filter (where is_at_risk), count(*) from {status} as s"
                                     ).fetchone()
        out["segment_grid"] = _rows(con, f"select r_score, f_score, any_value(segment) as segment, count(*) as n "
                                         f"from {segments} as g where segment is not null group by all")
        out["segments"] = _rows(con, f"select segment, count(*) as n from {segments} as g where segment is not null "
                                     "group by 1 order by 2 desc")
        out["value_by_tier"] = _quantiles(con, f"select tier as grp, value_score as v from {tiers} as t")
        out["clv_by_tier"] = _quantiles(con, f"""select tiers.tier as grp, clv.clv as v from {tiers} as tiers
                                                inner join {clv} as clv using (customer_id)""")
        out["clv_fits"] = _rows(con, "select * from clv_model_fits order by model")
        out["model_check"] = (_rows(con, "select * from clv_holdout_check order by bucket_order")
                              if _has(con, "clv_holdout_check") else None)
        out["control_outcomes"] = (_rows(con, "select * from alert_rule_outcomes order by rule_id")
                                   if _has(con, "alert_rule_outcomes") else None)
        out.update(_history(con, as_of))
    finally:
        con.close()
    return out


def _history(con, as_of: date) -> dict:
    out: dict = {"history_dates": [], "status_trend": [], "tier_trend": [], "flows": {}, "alerts": [],
                 "cooldown": [], "previous_date": None}
    if not _has(con, "customer_history"):
        return out
    out["history_dates"] = [r[0].isoformat() for r in con.execute(
        "select distinct as_of_date from customer_history where as_of_date <= ? order by 1", [as_of]).fetchall()]
    out["status_trend"] = _rows(con, "select as_of_date, status, count(*) as n from customer_history "
                                     "where as_of_date <= ? group by all order by all", [as_of])
    out["tier_trend"] = _rows(con, "select as_of_date, tier, count(*) as n from customer_history "
                                   "where as_of_date <= ? group by all order by all", [as_of])
    if _has(con, "customer_transitions"):
        previous = con.execute("select max(previous_as_of_date) from customer_transitions where effective_date = ?",
                               [as_of]).fetchone()[0]
        earlier = [d for d in out["history_dates"] if d < as_of.isoformat()]
        out["previous_date"] = previous.isoformat() if previous else (earlier[-1] if earlier else None)
        windows = {"previous": as_of, **{f"{w}d": as_of - timedelta(days=w - 1) for w in FLOW_WINDOWS}}
        for key, since in windows.items():
            out["flows"][key] = {
                dim: [(r[0], r[1], r[2]) for r in con.execute(
                    f"""select from_{dim}, to_{dim}, count(*) from customer_transitions
                        where is_{dim}_changed and effective_date between ? and ? group by 1, 2 order by 3 desc""",
                    [since, as_of]).fetchall()]
                for dim in ("status", "tier")}
    if _has(con, "customer_alerts"):
        control = "is_control" if "is_control" in [r[0] for r in con.execute(
            "select column_name from information_schema.columns where table_name = 'customer_alerts'").fetchall()] \
            else "false"
        out["alerts"] = _rows(con, f"""select rule_id, action, channel, count(*) as alerts,
                                          count(*) filter (where {control}) as control,
                                          count(*) filter (where not has_contact) as missing_contact
                                      from customer_alerts where as_of_date = ?
                                      group by all order by action, rule_id""",
                              [as_of])
        out["cooldown"] = _cooldown_held(con, as_of)
    return out


def _cooldown_held(con, as_of: date) -> list[dict]:
    """Per rule: matches of the date the cooldown held back, as dbt decided them (history.customer_alert_holds:
    the same matching and cooldown as customer_alerts, so a re-run older date counts what dbt held)."""
    if not _has(con, "customer_alert_holds"):
        return []
    return _rows(con, """select rule_id, action, channel, count(*) as held_by_cooldown
                         from customer_alert_holds where as_of_date = ?
                         group by all order by rule_id""", [as_of])


def latest_gate_summary(gate: str, as_of: str, load_ids: list[str], ingest_started: str | None) -> dict | None:
    """The summary of the gate for this run: the newest with params.as_of_date = the date. The raw gate has
    no date parameter: the first summary after this run's ingest started (else: with this run's load ids)."""
    folder = get_paths().gx_results / "gate_results" / gate
    if gate == "raw":
        for path in sorted(folder.glob("*.json")):
            summary = json.loads(path.read_text(encoding="utf-8"))
            same_loads = sorted((summary.get("params") or {}).get("load_ids") or []) == sorted(load_ids)
            if str(summary.get("run_time", "")) >= ingest_started if ingest_started else same_loads:
                return summary  # runs of the DAG do not overlap (max_active_runs=1): the next raw gate is ours
        return None
    for path in sorted(folder.glob("*.json"), reverse=True):
        summary = json.loads(path.read_text(encoding="utf-8"))
        if (summary.get("params") or {}).get("as_of_date") == as_of:
            return summary
    return None


def run_files(as_of: str) -> dict:
    """The run's own files: ingest outcome, quarantine summary, stage timings, gates, outbox."""
    from crmtier.delivery.outbox import outbox_dir, read_manifest

    folder = get_paths().reports / as_of

    def load(name: str, default):
        path = folder / name
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else default

    ingest = load("ingest.json", [])
    load_ids = sorted({f.get("load_id") for f in ingest if f.get("load_id")})
    manifest = read_manifest(outbox_dir(), as_of)
    out_folder = Path(manifest["folder"]) if manifest.get("folder") else outbox_dir() / as_of
    files = sorted(p.name for p in out_folder.glob("*") if p.is_file()) if out_folder.exists() else []
    timings = load("timings.json", {})
    ingest_started = (timings.get("ingest") or {}).get("started")
    return {
        "ingest": ingest,
        "quarantine": load("quarantine.json", None),
        "timings": timings,
        "gates": {gate: latest_gate_summary(gate, as_of, load_ids, ingest_started) for gate in GATES},
        "outbox": {"manifest": manifest, "folder": str(out_folder), "files": files},
    }


def clean(value):
    """JSON-safe values (NaN -> None, dates -> ISO) for the embedded data block."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (date,)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value
