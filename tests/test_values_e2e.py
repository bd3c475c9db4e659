"""Values of real exports through the real DAG (issue 8): unknown customers and id normalisation,
time zones, events without ids delivered twice, optional fields that cannot be read.

One DagRun (module fixture) on a landing folder written here: a generated background (so the
staging gate's orphan-share bound holds) plus hand-written files of the shapes users send.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest

from crmtier.cli import run_dag
from crmtier.generate import generate
from tests.conftest import write_csv

AS_OF = "2027-03-15"  # outside the current year; the DAG's start_date bounds earlier dates on this branch
EXPORTED = datetime(2027, 3, 15, 12, 0, tzinfo=timezone.utc).timestamp()

# A source of our own (CRMTIER_SOURCES_DIR): the generic layout read through the mapping path,
# with customer ids matched case-insensitively.
MYCRM_YAML = """\
source: mycrm
description: generic columns, ids matched case-insensitively
settings:
  timezone: UTC
  id_normalize: trim_upper
entities:
  orders:
    columns:
      order_id: [order_id]
      customer_id: [customer_id]
      order_time: [order_time]
      amount: [amount]
      currency: [currency]
      status: [status]
    vocab:
      status: {paid: [], refunded: [], cancelled: []}
"""


def _write_landing(landing: Path, sources: Path) -> None:
    generate(landing, 300, seed=5, as_of=AS_OF)
    write_csv(landing / "generic/customers/people.csv", "customer_id,name,gender,birth_date,income,created_at", [
        "VC1,Ann,F,1980-02-30,abc,2026-01-05 09:00:00",     # impossible birth date, income not a number
        "VC2,Bob,M,1975-06-01,50000,2026-01-05 09:00:00",
        "VC3,Cy,X,1990-01-01,60000,2026-01-05 09:00:00",     # gender neither M nor F
        "VC4,Di,F,1985-03-03,70000,2026-01-05 09:00:00",
        "VC5,Ed,M,1985-03-03,70000,2026-01-05 09:00:00",
    ])
    write_csv(landing / "generic/orders/special.csv", "order_id,customer_id,order_time,amount,currency,status", [
        "VO1,VC1,2027-03-01 10:00:00,100.00,CNY,paid",
        'VO2," VC2 ",2027-03-01 10:00:00,100.00,CNY,paid',   # surrounding spaces: trimmed by default
        "VO3,vc1,2027-03-02 10:00:00,100.00,CNY,paid",       # differs only by case: unknown under trim
        "VO4,NOBODY1,2027-03-02 10:00:00,100.00,CNY,paid",   # no such customer
    ])
    write_csv(landing / "mycrm/orders/mine.csv", "order_id,customer_id,order_time,amount,currency,status", [
        "VM1,vc3,2027-03-03 10:00:00,80.00,CNY,paid",        # trim_upper: customer VC3
    ])
    write_csv(landing / "generic/events/unknown.csv", "event_id,customer_id,event_time,event_type,channel", [
        "VE1,NOBODY2,2027-03-02 10:00:00,login,app",
    ])
    (sources / "mycrm.yaml").write_text(MYCRM_YAML, encoding="utf-8")
    for path in landing.rglob("*.csv"):  # exported on the as-of date
        os.utime(path, (EXPORTED, EXPORTED))


@pytest.fixture(scope="module")
def values_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("values")
    home, landing, sources = root / "var", root / "landing", root / "sources"
    sources.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRMTIER_HOME", str(home))
        mp.setenv("CRMTIER_SOURCES_DIR", str(sources))
        for var in ("CRMTIER_LANDING", "CRMTIER_WAREHOUSE", "CRMTIER_PUBLISH", "AIRFLOW_HOME"):
            mp.delenv(var, raising=False)
        _write_landing(landing, sources)
        code = run_dag(AS_OF, landing, quiet=True)
        log = (home / "logs" / f"run-{AS_OF}.log").read_text()
        yield {"home": home, "code": code, "log": log, "reports": home / "reports" / AS_OF,
               "warehouse": home / "warehouse" / "crm.duckdb", "publish": home / "publish" / "crm.duckdb"}


def _query(db: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def test_run_succeeds(values_run):
    assert values_run["code"] == 0, values_run["log"][-5000:]


def test_unknown_customers_are_reported_with_a_case_hint(values_run):
    unknown = json.loads((values_run["reports"] / "warnings.json").read_text())["unknown_customers"]
    ids = {(s["entity"], s["row_id"]): s for s in unknown["samples"]}
    assert ("orders", "VO3") in ids and ("orders", "VO4") in ids and ("events", "VE1") in ids
    assert ids[("orders", "VO3")]["known_customer_differing_by_case"] == "VC1"
    assert ids[("orders", "VO4")]["known_customer_differing_by_case"] is None
    assert unknown["differ_only_by_case"] >= 1
    # the counts are the true counts of staging rows without a customer
    orphans = _query(values_run["warehouse"], """
        select count(*) from (select customer_id from staging.stg_generic__orders
                              union all select customer_id from staging.stg_generic__events)
        where customer_id not in (select customer_id from staging.stg_generic__customers)""")[0][0]
    assert unknown["rows"] == orphans == sum(f["rows"] for f in unknown["by_file"])
    # on the console (progress lines) and in the quarantine report
    assert "unknown customer id(s)" in values_run["log"] and "id_normalize" in values_run["log"]
    assert "Unknown customers (unknown_customer)" in (values_run["reports"] / "quarantine.md").read_text()


def test_ids_are_trimmed_by_default_and_matched_by_case_when_the_mapping_says_so(values_run):
    orders = dict(_query(values_run["warehouse"], """
        select order_id, customer_id from staging.stg_generic__orders where order_id like 'VM%' or order_id like 'VO%'"""))
    assert orders["VO2"] == "VC2"        # " VC2 " trimmed (default)
    assert orders["VO3"] == "vc1"        # default trim keeps case: unknown, reported above
    assert orders["VM1"] == "VC3"        # mycrm: id_normalize trim_upper
    settings = dict(_query(values_run["warehouse"], "select source, id_normalize from raw.load_settings"))
    assert settings == {"generic": "trim", "mycrm": "trim_upper"}
    frequency = dict(_query(values_run["publish"], """
        select customer_id, paid_orders from fct_customer_behaviour where customer_id in ('VC1', 'VC2', 'VC3')"""))
    assert frequency == {"VC1": 1, "VC2": 1, "VC3": 1}
