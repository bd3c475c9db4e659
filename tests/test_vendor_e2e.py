"""Real CRM exports through the real DAG: 纷享销客 (GB18030, Chinese headers, orders naming the customer),
Zoho CRM (.xlsx), Salesforce and HubSpot CSVs, each to tiers and status with every row accounted for."""
from __future__ import annotations

import duckdb
import pytest

from crmtier.cli import run_dag
from crmtier.paths import get_paths
from crmtier.samples.generate import generate_frames
from crmtier.samples.vendor_export import write_vendor_export

pytestmark = pytest.mark.e2e

AS_OF = "2026-11-01"


@pytest.fixture(scope="module")
def frames():
    frames = generate_frames(250, seed=21, as_of=AS_OF)
    frames.pop("_bad_rows")
    return frames


@pytest.mark.parametrize("source", ["fxiaoke", "zoho_crm", "salesforce", "hubspot"])
def test_vendor_export_runs_to_tiers_and_status(source, frames, crm_home):
    landing = crm_home / "landing"
    written = write_vendor_export(frames, landing, source)
    if source == "fxiaoke":
        raw = written["customers"].read_bytes()
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
        assert "客户编号" in raw.decode("gb18030")
    if source == "zoho_crm":
        assert written["customers"].suffix == ".xlsx"

    assert run_dag(AS_OF, landing, quiet=True) == 0, (crm_home / "logs" / f"run-{AS_OF}.log").read_text()[-4000:]

    con = duckdb.connect(str(get_paths().warehouse), read_only=True)
    try:
        log = con.execute("select entity, rows_in, rows_loaded, rows_quarantined, status from raw.load_log").fetchall()
        loaded_customers = con.execute("select count(distinct customer_id) from raw.customers").fetchone()[0]
        sources = {r[0] for r in con.execute("select distinct _source from raw.orders").fetchall()}
    finally:
        con.close()
    assert {entity for entity, *_ in log} == {"customers", "orders", "events"}
    for entity, rows_in, loaded, quarantined, status in log:
        assert status == "loaded" and rows_in == loaded + quarantined and loaded > 0, entity
        assert rows_in >= len(frames[entity])  # every exported row was read
    assert sources == {source}

    snap = duckdb.connect(str(get_paths().publish), read_only=True)
    try:
        tiers = dict(snap.execute("select tier, count(*) from customer_tiers group by 1").fetchall())
        status = dict(snap.execute("select status, count(*) from customer_status group by 1").fetchall())
    finally:
        snap.close()
    assert sum(tiers.values()) == sum(status.values()) == loaded_customers
    assert {"active", "dormant", "churned"} <= set(status)
