"""dbt project: the full build (models, data tests, unit tests) passes, and any past as-of date rebuilds the same."""
from __future__ import annotations

import re

import duckdb
import pandas as pd
import pytest

from crmtier.dbt_runner import DbtFailed, run_dbt
from crmtier.generate import generate
from crmtier.ingest import ingest_landing

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
        con.execute("insert into raw.orders select * replace ('shipped' as status, order_id || '-x' as order_id) from raw.orders limit 1")
    finally:
        con.close()
    with pytest.raises(DbtFailed, match="accepted_values_stg_generic__orders_order_status"):
        run_dbt(["build", "--select", "path:seeds", "path:models/staging", "--exclude-resource-type", "unit_test"],
                "2026-11-01")
