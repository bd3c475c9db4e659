"""`crmtier explain` on a real DagRun's published snapshot (the shared `report_run` backfill): the real
command line, its JSON against the snapshot's own rows, no contact data, earlier dates from history,
a clear error for an unknown customer, and no lock taken on the warehouse."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import pandas as pd
import pytest

pytestmark = pytest.mark.e2e  # shares the session fixture report_run: conftest.SHARED


def _cli(report_run, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CRMTIER_HOME": str(report_run.home)}
    return subprocess.run([sys.executable, "-m", "crmtier.cli", "explain", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def _query(report_run, sql: str, params=()) -> pd.DataFrame:
    con = duckdb.connect(str(report_run.snapshot), read_only=True)
    try:
        return con.execute(sql, list(params)).df()
    finally:
        con.close()


@pytest.fixture(scope="module")
def picked(report_run) -> dict[str, str]:
    """Customers worth explaining: one with an alert and a status change, one dormant, one prospect."""
    assert report_run.exit_code == 0, report_run.output
    alerted = _query(report_run, """select alerts.customer_id from customer_alerts as alerts
                                    inner join customer_transitions as t on t.customer_id = alerts.customer_id
                                        and t.effective_date = alerts.as_of_date and t.is_status_changed
                                    order by alerts.as_of_date desc, alerts.customer_id limit 1""")
    dormant = _query(report_run, "select customer_id from customer_status where status = 'dormant' order by 1 limit 1")
    prospect = _query(report_run, "select customer_id from customer_status where status = 'prospect' order by 1 limit 1")
    assert len(alerted) and len(dormant) and len(prospect)
    return {"alerted": alerted.iloc[0, 0], "dormant": dormant.iloc[0, 0], "prospect": prospect.iloc[0, 0]}


def test_json_matches_the_snapshot(report_run, picked):
    for customer in picked.values():
        proc = _cli(report_run, customer, "--json")
        assert proc.returncode == 0, proc.stderr
        got = json.loads(proc.stdout)
        tier = _query(report_run, "select * from customer_tiers where customer_id = ?", [customer]).iloc[0]
        status = _query(report_run, "select * from customer_status where customer_id = ?", [customer]).iloc[0]
        behaviour = _query(report_run, "select * from fct_customer_behaviour where customer_id = ?", [customer]).iloc[0]
        segment = _query(report_run, "select * from customer_segments where customer_id = ?", [customer])
        assert got["as_of_date"] == report_run.as_of
        assert got["tier"]["tier"] == tier["tier"] and got["tier"]["tier_reason"] == tier["tier_reason"]
        assert got["status"]["status"] == status["status"]
        assert got["status"]["status_reason"] == status["status_reason"]
        assert got["at_risk"]["is_at_risk"] == (None if pd.isna(status["is_at_risk"]) else bool(status["is_at_risk"]))
        if pd.notna(behaviour["last_interaction_date"]):
            assert str(behaviour["last_interaction_date"].date()) in got["status"]["interaction_that_set_it"]
        if len(segment):
            assert got["rfm"]["segment"] == segment.iloc[0]["segment"]
        for key in ("p_alive", "expected_purchases_90d", "clv"):
            assert key in got["value_model"]


def test_timeline_lists_every_change_and_alert(report_run, picked):
    customer = picked["alerted"]
    got = json.loads(_cli(report_run, customer, "--json").stdout)
    transitions = _query(report_run, "select effective_date, reason from customer_transitions where customer_id = ?",
                         [customer])
    alerts = _query(report_run, "select as_of_date, action, is_control from customer_alerts where customer_id = ?",
                    [customer])
    changes = [e for e in got["timeline"] if e["kind"] == "change"]
    sent = [e for e in got["timeline"] if e["kind"] == "alert"]
    assert len(changes) == len(transitions) >= 1
    assert sorted(e["reason"] for e in changes) == sorted(transitions["reason"])
    assert len(sent) == len(alerts) >= 1
    for alert in alerts.itertuples():
        assert any(e["date"] == str(alert.as_of_date.date()) and e["what"].startswith(alert.action) for e in sent)
    text = _cli(report_run, customer).stdout
    assert "timeline" in text and "why:" in text and alerts.iloc[0]["action"] in text


def test_no_contact_data_in_the_output(report_run, picked):
    customers = pd.read_csv(report_run.landing / "generic" / "customers" / "export.csv", dtype=str)
    for customer in picked.values():
        row = customers[customers["customer_id"] == customer].iloc[0]
        for output in (_cli(report_run, customer).stdout, _cli(report_run, customer, "--json").stdout):
            for field in ("name", "phone", "email"):
                if isinstance(row[field], str) and len(row[field]) > 2:
                    assert row[field] not in output, f"{field} of {customer} in explain output"


def test_earlier_date_from_history(report_run, picked):
    customer, day = picked["dormant"], report_run.dates[0]
    proc = _cli(report_run, customer, "--as-of", day, "--json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    row = _query(report_run, "select * from customer_history where customer_id = ? and as_of_date = ?",
                 [customer, day]).iloc[0]
    assert got["as_of_date"] == day
    assert got["status"]["status"] == row["status"] and got["status"]["status_reason"] == row["status_reason"]
    assert got["tier"]["tier"] == row["tier"]
    assert all(e["date"] <= day for e in got["timeline"])


def test_unknown_customer_is_a_clear_error(report_run):
    proc = _cli(report_run, "NO-SUCH-CUSTOMER")
    assert proc.returncode == 1
    assert "NO-SUCH-CUSTOMER" in proc.stderr and "not in the snapshot" in proc.stderr


def test_explain_never_touches_the_warehouse(report_run, picked):
    # a writer holds the warehouse (as a run does): explain still answers from the snapshot
    con = duckdb.connect(str(report_run.home / "warehouse" / "crm.duckdb"))
    try:
        proc = _cli(report_run, picked["alerted"])
    finally:
        con.close()
    assert proc.returncode == 0, proc.stderr
