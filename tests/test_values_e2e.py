"""Values of real exports through the real DAG (issue 8): unknown customers and id normalisation,
time zones, events without ids delivered twice, optional fields that cannot be read.

One DagRun (module fixture) on a landing folder written here: a generated background (so the
staging gate's orphan-share bound holds) plus hand-written files of the shapes users send.
"""
from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from crmtier.cli import run_dag
from crmtier.samples.generate import generate
from tests.conftest import write_csv

pytestmark = pytest.mark.e2e

AS_OF = "2011-03-15"  # outside the current year; US summer time from 2011-03-13, Europe/Berlin still CET
EXPORTED = datetime(2011, 3, 15, 12, 0, tzinfo=UTC).timestamp()

# A source of our own (CRMTIER_SOURCES_DIR): the generic layout read through the mapping path,
# with customer ids matched case-insensitively.
MYCRM_YAML = """\
source: mycrm
description: generic columns, ids matched case-insensitively
settings:
  timezone: America/New_York       # naive times in this export are New York time
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
        "VC1,Ann,F,1980-02-30,abc,2010-01-05 09:00:00",     # impossible birth date, income not a number
        "VC2,Bob,M,1975-06-01,50000,2010-01-05 09:00:00",
        "VC3,Cy,X,1990-01-01,60000,2010-01-05 09:00:00",     # gender neither M nor F
        "VC4,Di,F,1985-03-03,70000,2010-01-05 09:00:00",
        "VC5,Ed,M,1985-03-03,70000,2010-01-05 09:00:00",
    ])
    write_csv(landing / "generic/orders/special.csv", "order_id,customer_id,order_time,amount,currency,status", [
        "VO1,VC1,2011-03-01 10:00:00,100.00,CNY,paid",
        'VO2," VC2 ",2011-03-01 10:00:00,100.00,CNY,paid',   # surrounding spaces: trimmed by default
        "VO3,vc1,2011-03-02 10:00:00,100.00,CNY,paid",       # differs only by case: unknown under trim
        "VO4,NOBODY1,2011-03-02 10:00:00,100.00,CNY,paid",   # no such customer
    ])
    write_csv(landing / "mycrm/orders/mine.csv", "order_id,customer_id,order_time,amount,currency,status", [
        "VM1,vc3,2011-03-03 10:00:00,80.00,CNY,paid",        # trim_upper: customer VC3
        "VM2,VC4,2011-03-16 07:00:00+08:00,10.00,CNY,paid",  # 2011-03-15 23:00 UTC: on the as-of day
        "VM3,VC5,2011-03-15 20:00:00 America/Chicago,10.00,CNY,paid",  # 2011-03-16 01:00 UTC: after it
        "VM4,VC5,2011-03-15 18:00:00,10.00,CNY,paid",        # naive: New York (mapping) -> 22:00 UTC
    ])
    # time zones, generic path: an offset or zone in the value wins, else the mapping's zone
    # (generic.yaml overridden below: Asia/Shanghai)
    write_csv(landing / "generic/events/tz.csv", "event_id,customer_id,event_time,event_type,channel", [
        "VT1,VC4,2011-03-14 23:30:00-05:00,login,app",          # 2011-03-15 04:30 UTC
        "VT2,VC4,2011-03-16 00:30:00+08:00,login,app",          # 2011-03-15 16:30 UTC
        "VT3,VC5,2011-03-15T00:30:00 Europe/Berlin,login,app",  # 2011-03-14 23:30 UTC
        "VT4,VC4,2011-03-15 23:30:00-05:00,login,app",          # 2011-03-16 04:30 UTC: after the as-of day
        "VT5,VC5,2011-03-15 07:30:00,login,app",                # naive Shanghai: 2011-03-14 23:30 UTC
        "VT6,VC5,2011-03-15 10:00:00 Mars/Phobos,login,app",    # no such zone: quarantined
    ])
    # events without ids, delivered twice: LF, then the same rows with CRLF (other bytes, other hash)
    noid = ["event_id,customer_id,event_time,event_type,channel",
            ",VC2,2011-03-10 10:00:00,email_open,email", ",VC2,2011-03-11 10:00:00,web_visit,web",
            ",VC2,2011-03-11 10:00:00,web_visit,app"]  # another channel: another event
    (landing / "generic/events/noid.csv").write_bytes(("\n".join(noid) + "\n").encode())
    (landing / "generic/events/noid_again.csv").write_bytes(("\r\n".join(noid) + "\r\n").encode())
    generic_yaml = (Path(__file__).parents[1] / "crmtier/sources/generic.yaml").read_text(encoding="utf-8")
    assert "  timezone: UTC\n" in generic_yaml
    (sources / "generic.yaml").write_text(generic_yaml.replace("  timezone: UTC\n", "  timezone: Asia/Shanghai\n"),
                                          encoding="utf-8")
    write_csv(landing / "generic/events/unknown.csv", "event_id,customer_id,event_time,event_type,channel", [
        "VE1,NOBODY2,2011-03-02 10:00:00,login,app",
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
        select count(*) from (select customer_id from staging.stg_crm__orders
                              union all select customer_id from staging.stg_crm__events)
        where customer_id not in (select customer_id from staging.stg_crm__customers)""")[0][0]
    assert unknown["rows"] == orphans == sum(f["rows"] for f in unknown["by_file"])
    # on the console (progress lines) and in the quarantine report
    assert "unknown customer id(s)" in values_run["log"] and "id_normalize" in values_run["log"]
    assert "Unknown customers (unknown_customer)" in (values_run["reports"] / "quarantine.md").read_text()


def test_ids_are_trimmed_by_default_and_matched_by_case_when_the_mapping_says_so(values_run):
    orders = dict(_query(values_run["warehouse"], """
        select order_id, customer_id from staging.stg_crm__orders where order_id like 'VM%' or order_id like 'VO%'"""))
    assert orders["VO2"] == "VC2"        # " VC2 " trimmed (default)
    assert orders["VO3"] == "vc1"        # default trim keeps case: unknown, reported above
    assert orders["VM1"] == "VC3"        # mycrm: id_normalize trim_upper
    settings = dict(_query(values_run["warehouse"], "select source, id_normalize from raw.load_settings"))
    assert settings == {"generic": "trim", "mycrm": "trim_upper"}
    frequency = dict(_query(values_run["publish"], """
        select customer_id, paid_orders from fct_customer_behaviour where customer_id in ('VC1', 'VC2', 'VC3')"""))
    assert frequency == {"VC1": 1, "VC2": 1, "VC3": 1}


def test_time_zones_are_converted_to_utc(values_run):
    events = {r[0]: (str(r[1]), str(r[2])) for r in _query(values_run["warehouse"], """
        select event_id, event_at, event_date from staging.stg_crm__events where event_id like 'VT%'""")}
    assert events == {
        "VT1": ("2011-03-15 04:30:00", "2011-03-15"),   # -05:00
        "VT2": ("2011-03-15 16:30:00", "2011-03-15"),   # +08:00 after midnight: the previous day in UTC
        "VT3": ("2011-03-14 23:30:00", "2011-03-14"),   # Europe/Berlin (CET)
        "VT4": ("2011-03-16 04:30:00", "2011-03-16"),   # -05:00 before midnight: the next day in UTC
        "VT5": ("2011-03-14 23:30:00", "2011-03-14"),   # naive: the generic mapping's Asia/Shanghai
    }
    quarantined = _query(values_run["warehouse"], "select reason, detail from raw.quarantine where _file_name = 'tz.csv'")
    assert quarantined == [("unparseable_timestamp", "event_time=2011-03-15 10:00:00 Mars/Phobos")]  # code, detail
    orders = {r[0]: str(r[1]) for r in _query(values_run["warehouse"], """
        select order_id, ordered_at from staging.stg_crm__orders where order_id in ('VM2', 'VM3', 'VM4')""")}
    assert orders == {"VM2": "2011-03-15 23:00:00",     # vendor path (crmtier.parsing): +08:00
                      "VM3": "2011-03-16 01:00:00",     # America/Chicago, summer time from 2011-03-13
                      "VM4": "2011-03-15 22:00:00"}     # naive: the mycrm mapping's America/New_York
    zones = dict(_query(values_run["warehouse"], "select source, timezone from raw.load_settings"))
    assert zones == {"generic": "Asia/Shanghai", "mycrm": "UTC"}  # vendor files are UTC once read


def test_the_as_of_day_is_the_utc_day_by_default(values_run):
    behaviour = {r[0]: (r[1], str(r[2]), r[3]) for r in _query(values_run["publish"], """
        select customer_id, events_total, last_event_date, paid_orders from fct_customer_behaviour
        where customer_id in ('VC4', 'VC5')""")}
    # VC4: VT1 and VT2 fall on 2011-03-15 UTC, VT4 after it; VM2 (23:00 UTC) is on the day
    assert behaviour["VC4"] == (2, "2011-03-15", 1)
    # VC5: VT3 and VT5 on 2011-03-14; VM4 on the day, VM3 (01:00 UTC on the 16th) after it
    assert behaviour["VC5"] == (2, "2011-03-14", 1)


def test_a_business_time_zone_moves_the_as_of_day(values_run, tmp_path):
    """var business_timezone: the as-of date is a day in Bogota (UTC-5 all year), and so is every event's date."""
    from crmtier.dbt_runner import run_dbt

    copy = tmp_path / "crm.duckdb"
    copy.write_bytes(values_run["warehouse"].read_bytes())
    run_dbt(["run", "--select", "stg_crm__events", "int_customer_daily_events", "int_customer_events_aggregated",
             "--full-refresh"], AS_OF,
            warehouse=copy, extra_vars={"business_timezone": "America/Bogota"})
    dates = {r[0]: str(r[1]) for r in _query(copy, """
        select event_id, event_date from staging.stg_crm__events where event_id in ('VT1', 'VT2', 'VT4')""")}
    assert dates == {"VT1": "2011-03-14", "VT2": "2011-03-15", "VT4": "2011-03-15"}  # 23:30, 11:30, 23:30 local
    last = _query(copy, """select events_total, last_event_date from intermediate.int_customer_events_aggregated
                           where customer_id = 'VC4'""")
    assert [(n, str(d)) for n, d in last] == [(3, "2011-03-15")]  # VT4 is now on the as-of day


def test_events_without_ids_delivered_twice_count_once(values_run):
    loads = _query(values_run["warehouse"], """
        select file_name, rows_loaded from raw.load_log where file_name like 'noid%' order by 1""")
    assert loads == [("noid.csv", 3), ("noid_again.csv", 3)]  # both files were read in full ...
    keys = _query(values_run["warehouse"], """
        select event_id, channel from staging.stg_crm__events where customer_id = 'VC2' order by 1""")
    assert len(keys) == 3 and all(k.startswith("nk-") for k, _ in keys)  # ... and each event is there once
    events = _query(values_run["publish"], "select events_total from fct_customer_behaviour where customer_id = 'VC2'")
    assert events == [(3,)]


def test_unreadable_optional_fields_are_field_level_warnings(values_run):
    fields = json.loads((values_run["reports"] / "warnings.json").read_text())["field_warnings"]
    ours = {(s["customer_id"], s["field"]): (s["warning"], s["value"]) for s in fields["samples"]}
    assert ours[("VC1", "birth_date")] == ("unreadable_date", "1980-02-30")
    assert ours[("VC1", "income")] == ("not_a_number", "abc")
    assert ours[("VC3", "gender")] == ("unknown_gender", "X")
    # the customers loaded, with the field null, and the count is the count of such values
    staged = _query(values_run["warehouse"], """
        select birth_date, income, gender from staging.stg_crm__customers where customer_id in ('VC1', 'VC3')
        order by customer_id""")
    assert staged[0][:2] == (None, None) and staged[1][2] is None
    raw_bad = _query(values_run["warehouse"], """
        select count(*) filter (where birth_date <> '' and try_cast(birth_date as date) is null)
             + count(*) filter (where income <> '' and try_cast(income as double) is null)
             + count(*) filter (where gender <> '' and upper(gender) not in ('M', 'F'))
        from raw.customers""")[0][0]
    assert fields["rows"] == raw_bad == sum(f["rows"] for f in fields["by_field"])
    report = (values_run["reports"] / "quarantine.md").read_text()
    assert "Field-level warnings" in report and "'1980-02-30'" in report
    assert "optional field value(s) could not be read" in values_run["log"]
