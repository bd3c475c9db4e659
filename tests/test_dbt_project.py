"""dbt project: the full build (models, data tests, unit tests) passes, and any past as-of date rebuilds the same."""
from __future__ import annotations

import re

import duckdb
import pandas as pd
import pytest

from crmtier.dbt_runner import DbtFailed, run_dbt
from crmtier.samples.generate import generate
from crmtier.ingest.landing import ingest_landing
from crmtier.pipeline import stage_args

pytestmark = pytest.mark.integration

MARTS = ("dim_customers", "fct_customer_behaviour", "customer_value_scores", "customer_tiers", "customer_status")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("dbt")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRMTIER_HOME", str(root / "var"))
        mp.delenv("CRMTIER_AS_OF_DATE", raising=False)
        generate(root / "landing", 400, seed=11, as_of="2026-11-01")
        db = root / "var" / "warehouse" / "crm.duckdb"
        ingest_landing(db, root / "landing")
        yield db


def marts(db) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {name: con.execute(f"select * from marts.{name} order by all").df() for name in MARTS}
    finally:
        con.close()


def test_full_build_including_unit_tests_passes(warehouse):
    output = run_dbt(["build"], "2026-11-01")
    done = re.search(r"Done\. PASS=(\d+) WARN=(\d+) ERROR=(\d+) SKIP=(\d+)", output)
    assert done and done.group(3) == "0" and done.group(4) == "0"
    unit_tests = re.search(r"(\d+) unit tests", output)
    assert unit_tests and int(unit_tests.group(1)) >= 5


def test_a_past_as_of_date_rebuilds_to_the_same_answer(warehouse):
    run_dbt(["build", "--exclude-resource-type", "unit_test"], "2026-06-30")
    first = marts(warehouse)
    run_dbt(["build", "--exclude-resource-type", "unit_test"], "2026-11-01")
    later = marts(warehouse)
    assert not first["customer_status"]["status"].equals(later["customer_status"]["status"])
    run_dbt(["build", "--exclude-resource-type", "unit_test"], "2026-06-30")
    again = marts(warehouse)
    for name in MARTS:
        pd.testing.assert_frame_equal(first[name], again[name], obj=name)
    # only what existed on the as-of date counts
    assert (first["dim_customers"]["created_date"] <= pd.Timestamp("2026-06-30")).all()


def test_a_failing_data_test_fails_the_build(warehouse):
    con = duckdb.connect(str(warehouse))
    try:
        # a new load (higher load sequence) brings an order with an unknown status past ingest
        con.execute("""insert into raw.orders
                       select * replace ('shipped' as status, order_id || '-x' as order_id,
                                         (select max(_load_seq) + 1 from raw.orders) as _load_seq)
                       from raw.orders limit 1""")
    finally:
        con.close()
    with pytest.raises(DbtFailed, match="accepted_values_stg_crm__orders_order_status"):
        run_dbt(stage_args("staging"), "2026-11-01")


def test_incremental_staging_equals_full_refresh(tmp_path, monkeypatch):
    import os

    from tests.conftest import write_csv

    monkeypatch.setenv("CRMTIER_HOME", str(tmp_path / "var"))
    db = tmp_path / "var" / "warehouse" / "crm.duckdb"
    landing = tmp_path / "landing"
    header = "order_id,customer_id,order_time,amount,currency,status"
    staging = stage_args("staging")

    def deliver(name, rows, mtime):
        path = write_csv(landing / "generic/orders" / name, header, rows)
        os.utime(path, (mtime, mtime))
        ingest_landing(db, landing)
        run_dbt(staging, "2026-11-01")

    def orders():
        con = duckdb.connect(str(db), read_only=True)
        try:
            return con.execute("select * exclude (load_id, load_seq) from staging.stg_crm__orders "
                               "order by order_id").df()
        finally:
            con.close()

    write_csv(landing / "generic/customers/c.csv", "customer_id,created_at", ["C1,2024-01-01"])
    deliver("export_a.csv", ["O1,C1,2026-10-01,10,CNY,paid", "O2,C1,2026-10-02,20,CNY,paid"], 2_000_000_000)
    # delivered later, but exported earlier (older modified time): it must not win
    deliver("export_old.csv", ["O1,C1,2026-10-01,10,CNY,refunded", "O3,C1,2026-10-03,30,CNY,paid"], 1_900_000_000)
    deliver("export_b.csv", ["O2,C1,2026-10-02,20,CNY,cancelled"], 2_100_000_000)
    incremental = orders()
    assert dict(zip(incremental["order_id"], incremental["order_status"])) == {
        "O1": "paid", "O2": "cancelled", "O3": "paid"}
    run_dbt([*staging, "--full-refresh"], "2026-11-01")
    pd.testing.assert_frame_equal(incremental, orders())
