"""Attributes-only data through the real DAG (issue 8): a subscription CRM's contact export, customers
with contract value and plan but no orders. The run says so on the console and in the run report, and
tiers come from the attribute rules of seed tier_attribute_rules instead of everyone `low`."""
from __future__ import annotations

import contextlib
import io
import os
from datetime import UTC, datetime

import duckdb
import pytest

from crmtier.cli import run_dag
from tests.conftest import write_csv

pytestmark = pytest.mark.e2e

AS_OF = "2011-03-15"  # outside the current year


@pytest.fixture(scope="module")
def contacts_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("contacts")
    home, landing = root / "var", root / "landing"
    rows = [f"S{i:03d},Contact {i},2010-0{1 + i % 9}-10 09:00:00,{1000 * i},basic" for i in range(1, 17)]
    rows += ["S100,Big Co,2010-02-01 09:00:00,150000,basic",      # contract_value >= 100000: vip
             "S101,Mid Co,2010-02-01 09:00:00,20000,Enterprise",  # plan in enterprise|premium: high
             "S102,Pro Co,2010-02-01 09:00:00,,premium",
             "S103,Odd Co,2010-02-01 09:00:00,lots,enterprise"]   # not a number: the plan rule still applies
    write_csv(landing / "generic/customers/contacts.csv", "customer_id,name,created_at,contract_value,plan", rows)
    exported = datetime(2011, 3, 15, 12, 0, tzinfo=UTC).timestamp()
    os.utime(landing / "generic/customers/contacts.csv", (exported, exported))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRMTIER_HOME", str(home))
        for var in ("CRMTIER_LANDING", "CRMTIER_WAREHOUSE", "CRMTIER_PUBLISH", "AIRFLOW_HOME", "CRMTIER_SOURCES_DIR"):
            mp.delenv(var, raising=False)
        console = io.StringIO()
        with contextlib.redirect_stdout(console):
            code = run_dag(AS_OF, landing)
        yield {"home": home, "code": code, "console": console.getvalue(),
               "log": (home / "logs" / f"run-{AS_OF}.log").read_text(), "reports": home / "reports" / AS_OF}


def test_run_succeeds(contacts_run):
    assert contacts_run["code"] == 0, contacts_run["log"][-5000:]


def test_tiers_come_from_attribute_rules(contacts_run):
    con = duckdb.connect(str(contacts_run["home"] / "publish" / "crm.duckdb"), read_only=True)
    try:
        tiers = dict(con.execute("select customer_id, tier from customer_tiers").fetchall())
        reasons = dict(con.execute("select customer_id, tier_reason from customer_tiers").fetchall())
        status = {s for (s,) in con.execute("select distinct status from customer_status").fetchall()}
    finally:
        con.close()
    assert tiers.pop("S100") == "vip" and "contract_value_vip" in reasons["S100"]
    assert tiers.pop("S101") == tiers.pop("S102") == tiers.pop("S103") == "high"
    assert "plan_high: plan Enterprise in enterprise|premium -> high" in reasons["S101"]
    assert set(tiers.values()) == {"low"} and len(tiers) == 16
    assert status == {"prospect"}


def test_thin_data_is_said_on_the_console_and_in_the_run_report(contacts_run):
    console = contacts_run["console"]
    assert "WARNING no customer has a net purchase" in console and "4 placed by seed tier_attribute_rules" in console
    assert "WARNING CLV models fell back to rules only" in console
    report = (contacts_run["reports"] / "warnings.md").read_text()
    assert "Thin data" in report and "CLV models fell back" in report
