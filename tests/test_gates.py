"""GX gates on DuckDB-reduced frames (crmtier/quality/gates.py, expectations/gates.yml, expectations/suites/).

Small DuckDB warehouses are built in tmp_path with the columns the checks use. GX is imported
once per session (~5 s); every gate run after that takes a fraction of a second.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from crmtier.quality import gates, messages, validation
from crmtier.quality.gates import GateConfigError, GateFailed, GateResult, run_gate

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
AS_OF = "2026-11-01"
EVENT_TYPES = ["web_visit", "page_view", "login", "email_open", "email_click",
               "campaign_join", "social_interaction", "support_ticket"]


# --------------------------------------------------------------------------- warehouse builders

def build_warehouse(path: Path, n_customers: int = 50, n_orders: int = 200, n_events: int = 400) -> Path:
    """A small warehouse that passes every gate. Load L1 is this run; L0 is an older load whose
    raw rows are bad (a rejected file, bad statuses): incremental checks must not look at it."""
    con = duckdb.connect(str(path))
    for schema in ("raw", "staging", "marts"):
        con.execute(f"create schema {schema}")
    meta = """'generic' as _source, '{f}' as _file_name, md5('{f}') as _file_hash, i::bigint as _row_number,
              'L1' as _load_id, null::varchar as _extra"""
    con.execute(f"""
        create table raw.customers as
        select 'C' || lpad(i::varchar, 4, '0') as customer_id, 'name ' || i as name,
               case when i % 2 = 0 then 'F' else 'M' end as gender, '1990-01-01' as birth_date,
               null as phone, null as email, 'engineer' as occupation, '5000' as income,
               'Zhejiang' as province, 'Hangzhou' as city,
               strftime(timestamp '2025-01-01 09:00:00' + to_days(i::int), '%Y-%m-%d %H:%M:%S') as created_at,
               {meta.format(f='customers.csv')}
        from range({n_customers}) t(i)""")
    con.execute(f"""
        create table raw.orders as
        select 'O' || lpad(i::varchar, 5, '0') as order_id,
               'C' || lpad((i % {n_customers})::varchar, 4, '0') as customer_id,
               strftime(timestamp '2026-01-01 10:00:00' + to_hours(i::int * 7), '%Y-%m-%d %H:%M:%S') as order_time,
               (10 + (i * 37) % 990)::varchar || '.50' as amount, 'CNY' as currency,
               case when i % 10 = 0 then 'refunded' when i % 10 = 1 then 'cancelled' else 'paid' end as status,
               {meta.format(f='orders.csv')}
        from range({n_orders}) t(i)""")
    con.execute(f"""
        create table raw.events as
        select 'E' || lpad(i::varchar, 5, '0') as event_id,
               'C' || lpad((i % {n_customers})::varchar, 4, '0') as customer_id,
               strftime(timestamp '2026-01-01 08:00:00' + to_hours(i::int * 5), '%Y-%m-%d %H:%M:%S') as event_time,
               {EVENT_TYPES!r}[1 + i % 8] as event_type, 'web' as channel,
               {meta.format(f='events.csv')}
        from range({n_events}) t(i)""")
    # An older load with bad rows: outside this run's load_ids, so the raw gate ignores it.
    con.execute("""insert into raw.orders by name
        select 'OLD1' as order_id, 'C0001' as customer_id, 'garbage' as order_time, 'n/a' as amount,
               'CNY' as currency, 'weird' as status, 'generic' as _source, 'old.csv' as _file_name,
               'h' as _file_hash, 1 as _row_number, 'L0' as _load_id, null as _extra""")
    con.execute("""
        create table raw.load_log (load_id varchar, source varchar, entity varchar, file_name varchar,
            file_hash varchar, rows_in bigint, rows_loaded bigint, rows_quarantined bigint,
            status varchar, message varchar, exported_at timestamp)""")
    con.execute(f"""insert into raw.load_log values
        ('L1', 'generic', 'customers', 'customers.csv', 'h1', {n_customers + 2}, {n_customers}, 2, 'loaded', null, timestamp '2026-11-01 12:00:00'),
        ('L1', 'generic', 'orders', 'orders.csv', 'h2', {n_orders}, {n_orders}, 0, 'loaded', null, timestamp '2026-11-01 12:00:00'),
        ('L1', 'generic', 'events', 'events.csv', 'h3', {n_events}, {n_events}, 0, 'loaded', null, timestamp '2026-11-01 12:00:00'),
        ('L1', 'generic', 'orders', 'orders_copy.csv', 'h2', {n_orders}, 0, 0, 'duplicate_file', 'same hash as orders.csv', null),
        ('L0', 'generic', 'orders', 'old.csv', 'h0', 5, 0, 0, 'rejected', 'missing column amount', null)""")
    con.execute("""create table raw.quarantine (_load_id varchar, _source varchar, entity varchar,
        _file_name varchar, _row_number bigint, reason varchar, raw_values varchar)""")
    con.execute("""insert into raw.quarantine values
        ('L1', 'generic', 'customers', 'customers.csv', 7, 'empty customer_id', '{}'),
        ('L1', 'generic', 'customers', 'customers.csv', 9, 'empty customer_id', '{}')""")

    # staging: typed copies of this load
    con.execute("""create table staging.stg_crm__customers as
        select customer_id, gender, birth_date::date as birth_date, occupation, income::double as income,
               province, city, created_at::timestamp as created_at, 'generic' as source_system
        from raw.customers where _load_id = 'L1'""")
    con.execute("""create table staging.stg_crm__orders as
        select order_id, customer_id, order_time::timestamp as ordered_at, order_time::date as order_date,
               amount::decimal(18, 2) as amount, currency, status as order_status,
               case when status = 'paid' then amount::decimal(18, 2) else 0 end as net_amount,
               status = 'refunded' and amount::decimal(18, 2) < 0 as is_return,
               'generic' as source_system, _load_id as load_id
        from raw.orders where _load_id = 'L1'""")
    con.execute("""create table staging.stg_crm__events as
        select event_id, customer_id, event_time::timestamp as event_at, event_time::date as event_date,
               event_type, channel, 'generic' as source_system, _load_id as load_id
        from raw.events where _load_id = 'L1'""")

    # marts for as-of 2026-11-01: 10% vip, 10% new
    con.execute("create table marts.dim_customers as select customer_id, gender, province from staging.stg_crm__customers")
    con.execute("""create table marts.customer_value_scores as
        select customer_id, 1 + i % 5 as r_score, 1 + (i * 3) % 5 as f_score, 1 + (i * 7) % 5 as m_score,
               round((i % 100) / 99.0, 4) as value_score
        from (select customer_id, row_number() over (order by customer_id) - 1 as i from marts.dim_customers)""")
    con.execute(f"""create table marts.customer_tiers as
        select customer_id, date '{AS_OF}' as as_of_date,
               case when i % 10 = 0 then 'vip' when i % 10 in (1, 2) then 'high'
                    when i % 10 in (3, 4, 5) then 'medium' when i % 10 = 9 then 'new' else 'low' end as tier,
               value_score, 'value_score percentile rule v1' as tier_reason
        from (select v.*, row_number() over (order by customer_id) - 1 as i from marts.customer_value_scores v)""")
    con.execute(f"""create table marts.customer_status as
        select customer_id, date '{AS_OF}' as as_of_date,
               ['active', 'dormant', 'churned', 'new', 'prospect'][1 + i % 5] as status,
               case when i % 5 = 4 then null else (i * 13) % 400 end as days_since_last_interaction,
               'window rule v1' as status_reason
        from (select customer_id, row_number() over (order by customer_id) - 1 as i from marts.dim_customers)""")
    # an older snapshot in the history tables must not disturb the as-of checks
    con.execute("insert into marts.customer_tiers select customer_id, date '2026-10-31', 'gold', value_score, null from marts.customer_tiers")
    con.close()
    return path


def mutate(path: Path, *statements: str) -> None:
    con = duckdb.connect(str(path))
    for sql in statements:
        con.execute(sql)
    con.close()


def scalar(path: Path, sql: str):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def raw_params(*load_ids: str) -> dict:
    return {"load_ids": list(load_ids or ["L1"])}


@pytest.fixture
def good_db(tmp_path) -> Path:
    return build_warehouse(tmp_path / "warehouse.duckdb")


def failure_lines(exc: GateFailed) -> list[str]:
    return [line for line in str(exc).splitlines() if line.startswith("  FAIL ")]


def line_for(lines: list[str], table: str, expectation: str, column: str) -> str:
    hits = [ln for ln in lines if f" {table} " in ln and f"{expectation}(" in ln and f"column='{column}'" in ln]
    assert len(hits) == 1, f"expected one failure line for {table} {expectation} {column}, got {hits} in\n" + "\n".join(lines)
    return hits[0]


# --------------------------------------------------------------------------- the good warehouse passes

def test_good_warehouse_passes_every_gate(good_db):
    results = {}
    for gate, params in (("raw", raw_params("L1")), ("staging", {"as_of_date": AS_OF}),
                         ("marts", {"as_of_date": AS_OF})):
        result = results[gate] = run_gate(good_db, gate, params)
        assert isinstance(result, GateResult)
        assert result.success, result.message()
        assert result.gate == gate and result.docs_path is None and result.seconds > 0
        assert all(c["success"] for c in result.checks)
        weighted = [c for c in result.checks if c["weighted"]]
        assert weighted, "row-level checks must run on weighted frames"
        for c in weighted:  # the frame is compact, the counts are table rows
            assert c["frame_rows"] <= c["total_rows"]
    # raw totals are table rows of this load only (the old load's bad row is excluded)
    orders = [c for c in results["raw"].checks if c["check"] == "raw_orders"]
    assert {c["total_rows"] for c in orders} == {200}
    assert {c["frame_rows"] for c in orders} == {3}  # paid / refunded / cancelled


def test_raw_gate_is_incremental(good_db):
    # Load L0 has a rejected file and an order with a bad status/amount/time: only seen when asked for.
    assert run_gate(good_db, "raw", raw_params("L1")).success
    with pytest.raises(GateFailed) as err:
        run_gate(good_db, "raw", {"load_ids": "('L0', 'L1')"})  # a SQL list literal works too
    lines = failure_lines(err.value)
    assert "failing rows: 1 of 201" in line_for(lines, "raw.orders", "expect_column_values_to_be_in_set", "status")
    assert "'weird'" in line_for(lines, "raw.orders", "expect_column_values_to_be_in_set", "status")
    rejected = line_for(lines, "raw.load_log", "expect_column_values_to_be_in_set", "status")
    assert "failing rows: 1 of 5" in rejected and "old.csv" in rejected and "missing column amount" in rejected
    # a one-file load log is still a rows frame (weight_column: null), not a metric
    result = run_gate(good_db, "raw", raw_params("L0"), raise_on_failure=False)
    (status,) = [c for c in result.failures if c["check"] == "raw_load_log"]
    assert "failing rows: 1 of 1 (100.00%); samples: 'rejected'" in messages.format_check_line(status)


# --------------------------------------------------------------------------- bad variants fail

def test_raw_gate_fails_with_exact_counts_and_samples(good_db):
    mutate(good_db,
           "update raw.orders set status = 'PAID' where order_id in ('O00002', 'O00003')",
           "update raw.orders set status = 'unknown' where order_id = 'O00004'",
           "update raw.orders set amount = '¥12.50' where order_id = 'O00005'",
           "update raw.orders set amount = '-5' where order_id = 'O00006'",
           "update raw.orders set amount = null where order_id = 'O00016'",
           "update raw.orders set order_time = 'yesterday' where order_id = 'O00007'",
           "update raw.orders set currency = 'RMB1' where order_id = 'O00008'",
           "update raw.orders set order_id = '' where order_id = 'O00009'",
           "update raw.orders set order_id = null where order_id = 'O00010'",
           "update raw.events set event_type = 'tweet' where event_id in ('E00001', 'E00002', 'E00003', 'E00004')",
           "update raw.events set customer_id = null where event_id = 'E00005'",
           "update raw.customers set created_at = '2026/13/45' where customer_id = 'C0003'",
           "update raw.load_log set rows_loaded = 198 where file_name = 'orders.csv'",
           "insert into raw.load_log values ('L1', 'generic', 'events', 'events_2.csv', 'h9', 10, 0, 0, 'rejected', 'no header row', null)")
    with pytest.raises(GateFailed) as err:
        run_gate(good_db, "raw", raw_params("L1"))
    message = str(err.value)
    assert message.splitlines()[0].startswith("GX gate 'raw' failed")
    lines = failure_lines(err.value)
    in_set = "expect_column_values_to_be_in_set"
    status = line_for(lines, "raw.orders", in_set, "status")
    assert "failing rows: 3 of 200" in status and "'PAID'" in status and "'unknown'" in status
    assert "value_set=['paid', 'refunded', 'cancelled']" in status
    amount = line_for(lines, "raw.orders", in_set, "amount_ok")
    assert "failing rows: 3 of 200" in amount and "'¥12.50'" in amount and "'-5'" in amount and "'<null>'" in amount
    assert "failing rows: 1 of 200" in line_for(lines, "raw.orders", in_set, "order_time_castable")
    assert "'yesterday'" in line_for(lines, "raw.orders", in_set, "order_time_castable")
    currency = line_for(lines, "raw.orders", "expect_column_values_to_match_regex", "currency")
    assert "failing rows: 1 of 200" in currency and "'RMB1'" in currency
    order_id = line_for(lines, "raw.orders", "expect_column_values_to_not_be_null", "order_id")
    assert "failing rows: 2 of 200" in order_id and "'orders.csv#9'" in order_id and "'orders.csv#10'" in order_id
    event_type = line_for(lines, "raw.events", in_set, "event_type")
    assert "failing rows: 4 of 400" in event_type and "'tweet'" in event_type
    assert "failing rows: 1 of 400" in line_for(lines, "raw.events", "expect_column_values_to_not_be_null", "customer_id")
    created = line_for(lines, "raw.customers", in_set, "created_at_castable")
    assert "failing rows: 1 of 50" in created and "'2026/13/45'" in created
    recon = line_for(lines, "raw.load_log", "expect_column_values_to_be_between", "unreconciled_rows")
    assert "failing rows: 1 of 5" in recon and "orders.csv" in recon
    assert "no header row" in line_for(lines, "raw.load_log", in_set, "status")
    assert len(lines) == 10, message
    # the result is attached to the exception
    result = err.value.result
    assert result is not None and not result.success and len(result.failures) == 10


def test_staging_gate_fails(good_db):
    mutate(good_db,
           "update staging.stg_crm__orders set ordered_at = timestamp '2026-11-02 00:00:01' where order_id = 'O00002'",
           "update staging.stg_crm__orders set ordered_at = timestamp '2026-11-05 12:00:00' where order_id = 'O00003'",
           "update staging.stg_crm__orders set ordered_at = timestamp '2026-11-01 23:59:59' where order_id = 'O00012'",
           "update staging.stg_crm__events set event_at = timestamp '2026-11-03 08:00:00' where event_id = 'E00001'",
           "update staging.stg_crm__orders set amount = 20000000 where order_id = 'O00004'",
           "update staging.stg_crm__orders set customer_id = 'NOPE' where order_id in ('O00005', 'O00006', 'O00007')",
           "update staging.stg_crm__orders set order_status = 'refunded' where order_id >= 'O00080'")
    with pytest.raises(GateFailed) as err:
        run_gate(good_db, "staging", {"as_of_date": AS_OF})
    lines = failure_lines(err.value)
    between = "expect_column_values_to_be_between"
    # files exported on 2026-11-01: a row dated up to a day later is allowed (time zones)
    late_orders = line_for(lines, "staging.stg_crm__orders", between, "days_after_export")
    assert "failing rows: 1 of 200" in late_orders
    assert "'2026-11-05 exported 2026-11-01'" in late_orders and "2026-11-02" not in late_orders
    late_events = line_for(lines, "staging.stg_crm__events", between, "days_after_export")
    assert "failing rows: 1 of 400" in late_events and "'2026-11-03 exported 2026-11-01'" in late_events
    assert "observed max_amount=20,000,000" in line_for(lines, "staging.stg_crm__orders", between, "max_amount")
    orphan = line_for(lines, "staging.stg_crm__orders", between, "orphan_order_share")
    assert "observed orphan_order_share=0.015" in orphan and "order_count=200" in orphan
    share = scalar(good_db, "select avg(case when order_status in ('refunded', 'cancelled') then 1.0 else 0 end) "
                            "from staging.stg_crm__orders")
    assert share > 0.5
    refund = line_for(lines, "staging.stg_crm__orders", between, "refund_cancel_share")
    assert f"observed refund_cancel_share={share:.6g}" in refund and "max_value=0.5" in refund
    assert len(lines) == 5

    # an empty customer table fails too (and makes every order an orphan)
    mutate(good_db, "delete from staging.stg_crm__customers")
    result = run_gate(good_db, "staging", {"as_of_date": AS_OF}, raise_on_failure=False)
    assert not result.success
    lines = [messages.format_check_line(c) for c in result.failures]
    assert "observed customer_count=0" in line_for(
        [" " + ln for ln in lines], "staging.stg_crm__customers", between, "customer_count")


def test_marts_gate_fails(good_db):
    mutate(good_db,
           f"update marts.customer_tiers set tier = 'gold' where customer_id in ('C0001', 'C0002') and as_of_date = '{AS_OF}'",
           f"update marts.customer_tiers set tier_reason = null where customer_id = 'C0003' and as_of_date = '{AS_OF}'",
           f"insert into marts.customer_tiers select * from marts.customer_tiers where customer_id = 'C0004' and as_of_date = '{AS_OF}'",
           "delete from marts.customer_status where customer_id = 'C0005'",
           "update marts.customer_status set status = 'sleeping' where customer_id = 'C0006'",
           "update marts.customer_value_scores set r_score = 6 where customer_id = 'C0007'",
           "update marts.customer_value_scores set value_score = 1.5 where customer_id = 'C0008'",
           f"update marts.customer_tiers set tier = 'vip' where customer_id between 'C0010' and 'C0019' and as_of_date = '{AS_OF}'")
    with pytest.raises(GateFailed) as err:
        run_gate(good_db, "marts", {"as_of_date": AS_OF})
    lines = failure_lines(err.value)
    between = "expect_column_values_to_be_between"
    tier = line_for(lines, "marts.customer_tiers", "expect_column_values_to_be_in_set", "tier")
    assert "failing rows: 2 of 51" in tier and "'gold'" in tier
    reason = line_for(lines, "marts.customer_tiers", "expect_column_values_to_not_be_null", "tier_reason")
    assert "failing rows: 1 of 51" in reason and "'C0003'" in reason
    dup = line_for(lines, "marts.customer_tiers", between, "tier_rows_per_customer")
    assert "failing rows: 1 of 50" in dup and "rows: 'C0004'" in dup
    missing = line_for(lines, "marts.customer_status", between, "status_rows_per_customer")
    assert "failing rows: 1 of 50" in missing and "samples: 0; rows: 'C0005'" in missing
    status = line_for(lines, "marts.customer_status", "expect_column_values_to_be_in_set", "status")
    assert "failing rows: 1 of 49" in status and "samples: 'sleeping'; rows: 'C0006'" in status
    r_score = line_for(lines, "marts.customer_value_scores", between, "r_score")
    assert "failing rows: 1 of 50" in r_score and "samples: 6; rows: 'C0007'" in r_score
    assert "observed max_value_score=1.5" in line_for(lines, "marts.customer_value_scores", between, "max_value_score")
    vip_share = scalar(good_db, f"""select count(*) filter (where tier = 'vip') / count(*) filter (where tier <> 'new')
                                   from marts.customer_tiers where as_of_date = '{AS_OF}'""")
    vip = line_for(lines, "marts.customer_tiers", between, "vip_share")
    assert f"observed vip_share={vip_share:.6g}" in vip and "max_value=0.2" in vip
    assert len(lines) == 8, "\n".join(lines)


def test_thresholds_come_from_yaml_and_params_override_them(good_db):
    doc = gates.load_gates()
    assert doc["thresholds"]["max_vip_share"] == 0.2
    # 10% vip passes at 0.2 but fails when the run asks for at most 5%
    assert run_gate(good_db, "marts", {"as_of_date": AS_OF}).success
    result = run_gate(good_db, "marts", {"as_of_date": AS_OF, "max_vip_share": 0.05}, raise_on_failure=False)
    assert [(c["check"], c["kwargs"]["column"]) for c in result.failures] == [("marts_customer_tiers_metrics", "vip_share")]
    assert result.failures[0]["kwargs"]["max_value"] == 0.05


def test_missing_table_fails_the_gate_clearly(good_db):
    mutate(good_db, "drop table raw.events")
    with pytest.raises(GateFailed) as err:
        run_gate(good_db, "raw", raw_params("L1"))
    (line,) = [ln for ln in failure_lines(err.value) if "raw.events" in ln]
    assert "query(): ERROR CatalogException" in line and "events" in line


# --------------------------------------------------------------------------- equivalence: reduced frame == full frame

# 1,000 rows built from 60 row patterns with injected bad values (nulls, wrong case, out of range):
# every bad value occurs on several rows, so weights matter.
EQUIVALENCE_TABLE = """
create table t as
select
    case when j % 11 = 0 then null when j % 13 = 0 then 'PAID' when j % 17 = 0 then 'unknown'
         else ['paid', 'refunded', 'cancelled'][1 + j % 3] end as status,
    case when j % 19 = 0 then 'usd' when j % 23 = 0 then 'RMB1' when j % 29 = 0 then null else 'CNY' end as currency,
    case when j % 31 = 0 then -5.0 when j % 37 = 0 then 20000000.0 when j % 41 = 0 then null
         else (j % 4) * 1.5 end as amount,
    case when j % 43 = 0 then '-5' when j % 47 = 0 then '¥12.50' else (j % 3)::varchar || '.00' end as amount_raw,
    case when j % 7 = 0 then null else 'C' || (j % 4) end as customer_id,
    (j % 9) - 1 as days_after_as_of_date,
    1 + j % 5 as good_score,
    'paid' as always_paid
from (select i % 60 as j from range(1000) r(i))
"""

# (expectation type, kwargs): every expectation type the suites use on weighted frames, on columns
# with injected bad values and on clean columns, including the $PARAMETER form.
EQUIVALENCE_CASES = [  # (expectation type, kwargs, expected verdict)
    ("expect_column_values_to_not_be_null", {"column": "customer_id"}, False),
    ("expect_column_values_to_not_be_null", {"column": "good_score"}, True),
    ("expect_column_values_to_be_in_set", {"column": "status", "value_set": ["paid", "refunded", "cancelled"]}, False),
    ("expect_column_values_to_be_in_set", {"column": "always_paid", "value_set": ["paid"]}, True),
    ("expect_column_values_to_be_in_set", {"column": "amount_ok", "value_set": [True]}, False),
    ("expect_column_values_to_match_regex", {"column": "currency", "regex": "^[A-Z]{3}$"}, False),
    ("expect_column_values_to_match_regex", {"column": "always_paid", "regex": "^[a-z]+$"}, True),
    ("expect_column_values_to_be_between", {"column": "amount", "min_value": 0, "max_value": 10000000}, False),
    ("expect_column_values_to_be_between", {"column": "days_after_as_of_date", "max_value": {"$PARAMETER": "max_days"}}, False),
    ("expect_column_values_to_be_between", {"column": "days_after_as_of_date", "max_value": {"$PARAMETER": "max_late"}}, True),
    ("expect_column_values_to_be_between", {"column": "good_score", "min_value": 1, "max_value": 5}, True),
    ("expect_column_values_to_be_between", {"column": "amount", "min_value": 0}, False),
]
COMPARED_KEYS = ("element_count", "unexpected_count", "missing_count")
PERCENT_KEYS = ("unexpected_percent", "missing_percent", "unexpected_percent_total", "unexpected_percent_nonmissing")


@pytest.fixture(scope="module")
def equivalence_frames(tmp_path_factory):
    path = tmp_path_factory.mktemp("eq") / "eq.duckdb"
    con = duckdb.connect(str(path))
    con.execute(EQUIVALENCE_TABLE)
    projection = """status, currency, amount, customer_id, days_after_as_of_date, good_score, always_paid,
                    coalesce(try_cast(amount_raw as decimal(18, 2)) >= 0, false) as amount_ok"""
    full = con.execute(f"select {projection} from t").df()
    reduced = con.execute(f"select {projection}, count(*) as n from t group by all").df()
    con.close()
    return full, reduced


def _full_counts(suite_result) -> dict:
    (er,) = suite_result.results
    return dict(Counter(validation._py(v) for v in er.result.get("unexpected_list", [])))


@pytest.mark.parametrize("expectation_type,kwargs,verdict", EQUIVALENCE_CASES,
                         ids=[f"{t.removeprefix('expect_column_values_to_')}-{k['column']}-{'pass' if v else 'fail'}"
                              for t, k, v in EQUIVALENCE_CASES])
def test_reduced_frame_gives_the_full_frame_verdict(equivalence_frames, expectation_type, kwargs, verdict):
    full, reduced = equivalence_frames
    assert len(reduced) < len(full) / 5
    suite = {"name": "equivalence", "expectations": [{"type": expectation_type, "kwargs": kwargs}]}
    params = {"max_days": 5, "max_late": 7}
    full_result, (full_item,) = gates.validate_frame(full, suite, weight_column=None, suite_parameters=params)
    red_result, (red_item,) = gates.validate_frame(reduced, suite, suite_parameters=params)
    assert red_item["weighted"] and not full_item["weighted"]
    assert red_item["success"] == full_item["success"] == verdict
    full_res, red_res = full_result.results[0].result, red_result.results[0].result
    for key in COMPARED_KEYS:
        assert red_res.get(key) == full_res.get(key), key
    for key in PERCENT_KEYS:
        assert red_res.get(key) == pytest.approx(full_res.get(key)), key
    # value -> number of failing rows, from GX's complete unexpected list on the full frame
    assert {d["value"]: d["count"] for d in red_res["partial_unexpected_counts"]} == _full_counts(full_result)
    assert red_res["reduced_frame"]["rows"] == len(reduced)
    assert red_item["unexpected_rows"] == full_res["unexpected_count"]


def test_every_row_level_gate_check_is_equivalent_to_its_expanded_frame(tmp_path):
    """For every weighted check in gates.yml, on a warehouse full of bad values: the reduced frame
    and the frame expanded back to one row per table row (repeat each row n times) agree."""
    db = build_warehouse(tmp_path / "bad.duckdb")
    mutate(db,
           "update raw.orders set status = 'PAID', amount = 'x', order_id = null where order_id < 'O00010'",
           "update raw.orders set currency = 'usd', order_time = 'bad' where order_id between 'O00050' and 'O00055'",
           "update raw.events set event_type = 'tweet', customer_id = '' where event_id < 'E00020'",
           "update raw.customers set created_at = 'x', customer_id = null where customer_id < 'C0003'",
           "update staging.stg_crm__orders set ordered_at = timestamp '2027-01-01' where order_id < 'O00004'",
           "update staging.stg_crm__events set event_at = timestamp '2026-12-01' where event_id < 'E00009'",
           "update marts.customer_tiers set tier = 'gold', tier_reason = null where customer_id < 'C0005'",
           "update marts.customer_status set status = 'x', days_since_last_interaction = -1 where customer_id < 'C0004'",
           "update marts.customer_value_scores set r_score = 0, m_score = 9 where customer_id < 'C0006'",
           "delete from marts.customer_status where customer_id = 'C0010'")
    doc = gates.load_gates()
    params = {"load_ids": ["L1"], "as_of_date": AS_OF}
    con = duckdb.connect(str(db), read_only=True)
    compared = failing = 0
    for gate_name in ("raw", "staging", "marts"):
        thresholds = gates.gate_values(doc, gate_name, params)
        for check in doc["gates"][gate_name]["checks"]:
            reduced = con.execute(gates.render_sql(check["sql"], thresholds)).df()
            if check.get("weight_column", "n") != "n" or "n" not in reduced.columns:
                continue
            suite = gates.load_suite_dict(check["suite"])
            expanded = reduced.loc[reduced.index.repeat(reduced["n"])].drop(columns=["n"]).reset_index(drop=True)
            expanded = expanded[[c for c in expanded.columns if not (c.endswith("__samples") or c == "samples")]]
            _, red_items = gates.validate_frame(reduced, suite, suite_parameters=thresholds)
            _, full_items = gates.validate_frame(expanded, suite, weight_column=None, suite_parameters=thresholds)
            for red, full in zip(red_items, full_items, strict=True):
                assert (red["success"], red["unexpected_rows"], red["total_rows"]) == \
                       (full["success"], full["unexpected_rows"], full["total_rows"]), (check["name"], red, full)
                compared += 1
                failing += not red["success"]
    con.close()
    assert compared >= 20 and failing >= 12


# --------------------------------------------------------------------------- rules for weighted frames

def test_weighted_frames_reject_group_counting_expectations():
    import pandas as pd

    frame = pd.DataFrame({"status": ["paid", "x"], "n": [99, 1]})
    mostly = {"name": "m", "expectations": [{"type": "expect_column_values_to_be_in_set",
                                             "kwargs": {"column": "status", "value_set": ["paid"], "mostly": 0.9}}]}
    with pytest.raises(GateConfigError, match="mostly"):
        gates.validate_frame(frame, mostly)
    unique = {"name": "u", "expectations": [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "status"}}]}
    with pytest.raises(GateConfigError, match="metric query"):
        gates.validate_frame(frame, {"name": "r", "expectations": [
            {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}]})
    # without a weight column, anything GX offers is allowed
    _, (item,) = gates.validate_frame(frame.drop(columns=["n"]), unique, weight_column=None)
    assert item["success"]


def test_warning_severity_is_reported_but_does_not_fail():
    import pandas as pd

    suite = {"name": "w", "expectations": [
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "s", "value_set": ["a"]}, "severity": "warning"},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "s", "value_set": ["a", "b"]}}]}
    _, items = gates.validate_frame(pd.DataFrame({"s": ["a", "b"], "n": [3, 4]}), suite)
    result = GateResult(gate="g", success=True, checks=items, seconds=0.0, docs_path=None)
    assert result.failures == [] and len(result.warnings) == 1
    assert "WARN None [None] expect_column_values_to_be_in_set(column='s', value_set=['a']): failing rows: 4 of 7" \
        in result.message()


def test_config_and_parameter_errors(good_db):
    with pytest.raises(GateConfigError, match="unknown gate"):
        run_gate(good_db, "nope", {})
    with pytest.raises(GateConfigError, match="load_ids"):
        run_gate(good_db, "raw", {})
    with pytest.raises(GateConfigError, match="YYYY-MM-DD"):
        run_gate(good_db, "marts", {"as_of_date": "01/11/2026"})
    assert gates.render_sql("x in {ids} and d = date '{as_of_date}' and r ~ '^[A-Z]{3}$'",
                            {"ids": ["a", "o'k"], "as_of_date": "2026-11-01"}) == \
        "x in ('a', 'o''k') and d = date '2026-11-01' and r ~ '^[A-Z]{3}$'"
    assert gates.render_sql("x in {ids}", {"ids": []}) == "x in (NULL)"
    # placeholders fall back to the thresholds: run params > gate thresholds > global thresholds
    doc = {"thresholds": {"a": 1, "b": 1}, "gates": {"g": {"thresholds": {"b": 2, "c": 2}, "checks": []}}}
    assert gates.render_sql("{a} {b} {c}", gates.gate_values(doc, "g", {"c": 3})) == "1 2 3"


# --------------------------------------------------------------------------- files, locks, docs, logging

def test_run_gate_leaves_no_lock(good_db):
    run_gate(good_db, "marts", {"as_of_date": AS_OF})
    con = duckdb.connect(str(good_db))  # read-write right after a passing gate
    con.execute("create table marts.after_pass as select 1 as x")
    con.close()
    mutate(good_db, f"update marts.customer_tiers set tier = 'gold' where as_of_date = '{AS_OF}'")
    with pytest.raises(GateFailed):
        run_gate(good_db, "marts", {"as_of_date": AS_OF})
    con = duckdb.connect(str(good_db))  # ... and after a failing one
    con.execute("create table marts.after_fail as select 1 as x")
    con.close()


def test_results_dir_gets_weighted_results_and_data_docs(good_db, tmp_path):
    results = tmp_path / "gx_results"
    mutate(good_db, "update raw.orders set status = 'PAID' where order_id in ('O00002', 'O00003')")
    result = run_gate(good_db, "raw", raw_params("L1"), results_dir=results, raise_on_failure=False)
    assert not result.success
    assert result.docs_path is not None and result.docs_path.name == "index.html" and result.docs_path.is_file()
    stored = sorted((results / "gx" / "uncommitted" / "validations").rglob("*.json"))
    assert len(stored) == 4  # one per check
    orders = [json.loads(p.read_text()) for p in stored if "raw_orders" in str(p)]
    (status,) = [r for r in orders[0]["results"] if r["expectation_config"]["kwargs"].get("column") == "status"]
    assert status["success"] is False
    assert status["result"]["unexpected_count"] == 2 and status["result"]["element_count"] == 200
    assert status["result"]["partial_unexpected_counts"] == [{"value": "PAID", "count": 2}]
    assert "unexpected_index_list" not in status["result"]
    pages = list((result.docs_path.parent / "validations").rglob("*.html"))
    assert len(pages) == 4
    (summary_file,) = (results / "gate_results" / "raw").glob("*.json")
    summary = json.loads(summary_file.read_text())
    assert summary["gate"] == "raw" and summary["success"] is False and summary["params"] == {"load_ids": ["L1"]}
    assert summary["thresholds"]["max_vip_share"] == 0.2
    # a second run adds to the same GX project and Data Docs
    run_gate(good_db, "raw", raw_params("L1"), results_dir=results, raise_on_failure=False)
    assert len(list((results / "gx" / "uncommitted" / "validations").rglob("*.json"))) == 8



def test_the_data_docs_index_is_rebuilt_when_asked_or_when_the_gate_fails(good_db, tmp_path):
    """A passing gate renders its pages and leaves the index (all kept results: most of Data Docs' cost)
    to the run's last gate; a failing gate rebuilds it, so a stopped run's Data Docs list its failure."""
    results = tmp_path / "gx_results"
    site = results / "gx" / "uncommitted" / "data_docs" / "local_site"

    def indexed_runs() -> int:
        return (site / "index.html").read_text().count("raw-gate") if (site / "index.html").exists() else 0

    passed = run_gate(good_db, "raw", raw_params("L1"), results_dir=results, build_index=False)
    assert passed.success and len(list((site / "validations").rglob("*.html"))) == 4
    assert indexed_runs() == 0
    run_gate(good_db, "raw", raw_params("L1"), results_dir=results)  # build_index by default
    assert indexed_runs() > 0
    listed = indexed_runs()
    mutate(good_db, "update raw.orders set status = 'PAID' where order_id = 'O00002'")
    failed = run_gate(good_db, "raw", raw_params("L1"), results_dir=results, raise_on_failure=False,
                      build_index=False)
    assert not failed.success and indexed_runs() > listed


def test_suites_are_native_gx_json_and_match_the_vocabularies():
    from great_expectations import ExpectationSuite

    from crmtier import layout

    doc = gates.load_gates()
    used = {c["suite"] for g in doc["gates"].values() for c in g["checks"]}
    files = {p.name for p in (REPO / "expectations" / "suites").glob("*.json")}
    assert used <= files
    for name in used:
        data = gates.load_suite_dict(name)
        assert ExpectationSuite(**data).to_json_dict() == data, name
    raw_orders = gates.load_suite_dict("raw_orders.json")
    value_sets = {e["kwargs"]["column"]: e["kwargs"].get("value_set") for e in raw_orders["expectations"]}
    assert tuple(value_sets["status"]) == layout.ORDER_STATUSES
    raw_events = gates.load_suite_dict("raw_events.json")
    (event_types,) = [e["kwargs"]["value_set"] for e in raw_events["expectations"] if e["kwargs"]["column"] == "event_type"]
    assert tuple(event_types) == layout.EVENT_TYPES


FRESH_INTERPRETER_CODE = """
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(name)s|%(levelname)s|%(message)s")
import crmtier.quality.gates as g
heavy = sorted(m for m in ("great_expectations", "pandas", "duckdb") if m in sys.modules)
print("HEAVY", heavy)
r = g.run_gate(sys.argv[1], "staging", {"as_of_date": sys.argv[2]})
print("SUCCESS", r.success)
"""


@pytest.fixture(scope="module", autouse=True)
def fresh_interpreter_run(tmp_path_factory):
    """Started before the first test, checked by test_import_is_cheap_and_gx_is_quiet: a fresh
    interpreter runs a gate while the other tests run, so its GX import (~5 s) overlaps theirs."""
    db = build_warehouse(tmp_path_factory.mktemp("fresh") / "warehouse.duckdb")
    proc = subprocess.Popen([sys.executable, "-c", FRESH_INTERPRETER_CODE, str(db), AS_OF],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_import_is_cheap_and_gx_is_quiet(fresh_interpreter_run):
    """In a fresh interpreter: importing the module pulls neither GX nor pandas nor DuckDB, and a
    gate run with INFO logging prints no GX INFO lines (no 'Skipping registering function')."""
    stdout, stderr = fresh_interpreter_run.communicate(timeout=120)
    assert fresh_interpreter_run.returncode == 0, stderr[-3000:]
    assert "HEAVY []" in stdout and "SUCCESS True" in stdout
    gx_lines = [ln for ln in stderr.splitlines() if ln.startswith("great_expectations")]
    assert gx_lines == [], gx_lines[:5]
    assert "Calculating Metrics" not in stderr  # progress bars off
    assert re.search(r"crmtier\.quality\.gates\|INFO\|GX gate 'staging' passed", stderr)

