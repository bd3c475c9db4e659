"""dbt project: the full build (models, data tests, unit tests) passes, and any past as-of date rebuilds the same."""
from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from crmtier.dbt_runner import DbtFailed, run_dbt
from crmtier.ingest.landing import ingest_landing
from crmtier.paths import DBT_PROJECT_DIR
from crmtier.pipeline import stage_args
from crmtier.samples.generate import generate

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


@pytest.fixture(scope="module")
def built_warehouse(warehouse):
    """The full build (models, data tests, unit tests) of the module's warehouse, once: (db, dbt output)."""
    return warehouse, run_dbt(["build"], "2026-11-01")


def marts(db) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {name: con.execute(f"select * from marts.{name} order by all").df() for name in MARTS}
    finally:
        con.close()


def test_full_build_including_unit_tests_passes(built_warehouse):
    _, output = built_warehouse
    done = re.search(r"Done\. PASS=(\d+) WARN=(\d+) ERROR=(\d+) SKIP=(\d+)", output)
    assert done and done.group(3) == "0" and done.group(4) == "0"
    unit_tests = re.search(r"(\d+) unit tests", output)
    assert unit_tests and int(unit_tests.group(1)) >= 5


def test_a_past_as_of_date_rebuilds_to_the_same_answer(warehouse, built_warehouse):
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
            return con.execute("select * exclude (load_id, load_seq, through_load_seq) from staging.stg_crm__orders "
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



DAILY_TABLES = ("int_customer_daily_orders", "int_customer_daily_events")
AGGREGATES = ("int_customer_orders_aggregated", "int_customer_events_aggregated", "int_customer_purchase_summary")


def test_incremental_daily_activity_equals_a_full_rebuild(tmp_path, monkeypatch):
    """The per-customer, per-day tables are maintained incrementally (only customers whose rows changed
    are rebuilt); after deliveries that add days, re-export orders with another status, customer or day,
    and redeliver an older export, they and the windows read from them equal a full
    rebuild, for as-of dates in any order (1997, before most of the data; the last day; one between)."""
    import os

    from tests.conftest import write_csv

    monkeypatch.setenv("CRMTIER_HOME", str(tmp_path / "var"))
    db = tmp_path / "var" / "warehouse" / "crm.duckdb"
    landing = tmp_path / "landing"
    selection = ["build", "--select", *(f"+{name}" for name in AGGREGATES), "--exclude-resource-type", "unit_test"]
    order_header, event_header = "order_id,customer_id,order_time,amount,currency,status", \
        "event_id,customer_id,event_time,event_type,channel"

    def deliver(name, orders, events, mtime, as_of):
        for entity, header, rows in (("orders", order_header, orders), ("events", event_header, events)):
            if rows:
                path = write_csv(landing / "generic" / entity / name, header, rows)
                os.utime(path, (mtime, mtime))
        ingest_landing(db, landing)
        run_dbt(selection, as_of)

    def tables(as_of):
        run_dbt(["run", "--select", *AGGREGATES], as_of)
        con = duckdb.connect(str(db), read_only=True)
        try:
            # placeholder rows (no day) only mark customers rebuilt with nothing left: not activity
            return {name: con.execute(f"select * exclude (through_load_seq) from intermediate.{name} "
                                      "where activity_date is not null order by all").df()
                    for name in DAILY_TABLES} | {
                    name: con.execute(f"select * from intermediate.{name} order by all").df() for name in AGGREGATES}
        finally:
            con.close()

    write_csv(landing / "generic/customers/c.csv", "customer_id,created_at",
              ["C1,1996-01-01", "C2,1996-01-01", "C3,1996-01-01", "C4,1996-01-01"])
    deliver("d1.csv", ["O1,C1,1997-03-01 10:00,10,CNY,paid", "O2,C2,1997-03-02 11:00,20,USD,paid",
                       "O3,C3,2011-05-01 09:00,30,CNY,paid"],
            ["E1,C1,1997-03-01 10:00,login,web", "E2,C4,2011-05-01 09:00,page_view,app"], 2_000_000_000, "2011-05-01")
    deliver("d2.csv", ["O1,C1,1997-03-01 10:00,10,CNY,refunded",     # paid -> refunded
                       "O2,C3,1997-03-05 11:00,20,USD,paid",          # another customer and day
                       "O6,C3,2011-05-02 08:00,5,CNY,cancelled", "O4,C4,2011-05-02 12:00,40,EUR,paid"],
            ["E2,C4,2011-05-02 09:00,page_view,app", "E3,C2,2011-05-02 09:30,email_open,email"],
            2_100_000_000, "2011-05-02")
    # redelivered later but exported earlier: its versions must not win, and C2's O2 stays moved
    deliver("d0_old.csv", ["O2,C2,1997-03-02 11:00,20,USD,paid", "O5,C4,2011-04-01 12:00,7,CNY,cancelled"],
            ["E3,C3,2011-05-02 09:30,email_open,email"], 1_900_000_000, "1997-03-31")
    incremental = {as_of: tables(as_of) for as_of in ("2011-05-02", "1997-03-31", "2011-04-15")}
    con = duckdb.connect(str(db), read_only=True)
    try:
        placeholders = con.execute("select count(*) from intermediate.int_customer_daily_orders "
                                   "where activity_date is null").fetchone()[0]
    finally:
        con.close()
    assert placeholders == 1  # C2's only order moved to C3: C2 keeps a placeholder row
    run_dbt(["run", "--select", *DAILY_TABLES, "--full-refresh"], "2011-05-02")
    for as_of, frames in incremental.items():
        rebuilt = tables(as_of)
        for name in (*DAILY_TABLES, *AGGREGATES):
            pd.testing.assert_frame_equal(frames[name], rebuilt[name], obj=f"{name} as of {as_of}")
    orders = incremental["2011-05-02"]["int_customer_orders_aggregated"].set_index("customer_id")
    assert orders.loc["C1", "paid_orders"] == 0 and orders.loc["C1", "refunded_orders"] == 1
    assert orders.loc["C3", "paid_orders"] == 2 and orders.loc["C3", "cancelled_orders"] == 1
    assert "C2" not in incremental["1997-03-31"]["int_customer_orders_aggregated"]["customer_id"].tolist()


WINDOW_MODELS = ("int_customer_orders_aggregated", "int_customer_events_aggregated")


def test_windows_moved_by_the_day_equal_a_full_rebuild(tmp_path, monkeypatch):
    """The window models recompute only the customers whose sums can have changed since their last build
    (moving_windows.sql) and keep the rest: after each step of a chain (one day on, a month on, a new
    delivery that re-exports an order, back to 2026-07, to 2011 before any data, forward again, a changed
    var, a changed fx rate) they equal a full rebuild of a copy of the same warehouse."""
    import os
    import shutil

    from tests.conftest import write_csv

    monkeypatch.setenv("CRMTIER_HOME", str(tmp_path / "var"))
    db = tmp_path / "var" / "warehouse" / "crm.duckdb"
    landing = tmp_path / "landing"
    generate(landing, 1500, seed=5, as_of="2026-11-01")
    ingest_landing(db, landing)
    run_dbt(["build", "--select", *(f"+{name}" for name in WINDOW_MODELS), "--exclude-resource-type", "unit_test"],
            "2026-10-01")

    def windows(warehouse):
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            return {name: con.execute(f"select * from intermediate.{name} order by customer_id").df()
                    for name in WINDOW_MODELS}
        finally:
            con.close()

    def kept_rows():  # the compiled SQL of a build that started from the last one keeps rows
        compiled = tmp_path / "var" / "dbt_target" / "run" / "crmtier" / "models" / "intermediate" / "customers"
        return all("anti join moved_customers" in (compiled / f"{name}.sql").read_text() for name in WINDOW_MODELS)

    def step(as_of, extra_vars=None, kept=True):
        run_dbt(["run", "--select", *WINDOW_MODELS], as_of, extra_vars=extra_vars)
        assert kept_rows() == kept, f"as of {as_of}: expected a build that {'keeps' if kept else 'recomputes'} rows"
        moved = windows(db)
        copy = tmp_path / "full" / "crm.duckdb"
        shutil.rmtree(copy.parent, ignore_errors=True)
        copy.parent.mkdir()
        shutil.copyfile(db, copy)
        run_dbt(["run", "--select", *WINDOW_MODELS, "--full-refresh"], as_of, warehouse=copy, extra_vars=extra_vars)
        for name, frame in windows(copy).items():
            pd.testing.assert_frame_equal(moved[name], frame, obj=f"{name} as of {as_of}")
        return moved

    def orders_file(rows):
        path = write_csv(landing / "generic/orders/redelivery.csv", "order_id,customer_id,order_time,amount,currency,status",
                         rows)
        os.utime(path, (2_100_000_000, 2_100_000_000))

    step("2026-10-02")
    step("2026-10-31")
    con = duckdb.connect(str(db), read_only=True)
    try:
        # a customer whose sums only the new delivery changes: no day entering or leaving a window on 2026-11-01
        order_id, customer_id, day = con.execute("""select order_id, customer_id, order_date::varchar
            from staging.stg_crm__orders
            where is_paid and order_date = date '2026-10-20' and customer_id not in (
                select customer_id from staging.stg_crm__orders
                where order_date in ('2026-11-01', '2026-10-02', '2026-08-03', '2025-11-01'))
            order by order_id limit 1""").fetchone()
    finally:
        con.close()
    # a new order in the windows and a paid order re-exported as refunded
    orders_file([f"NEW1,{customer_id},2026-10-30 10:00,99,CNY,paid", f"{order_id},{customer_id},{day} 09:00,10,CNY,refunded"])
    ingest_landing(db, landing)
    run_dbt(["run", "--select", "+int_customer_daily_orders"], "2026-10-31")
    after = step("2026-11-01")["int_customer_orders_aggregated"].set_index("customer_id")
    assert after.loc[customer_id, "refunded_orders"] >= 1
    step("2026-07-15")
    assert step("2011-06-30")["int_customer_orders_aggregated"].empty  # before any order
    step("2026-11-01", kept=False)  # an empty table records no last build: every customer is recomputed
    step("2026-11-01")  # the same date again: nothing moved, every row kept
    con = duckdb.connect(str(db))
    try:
        con.execute("update config.fx_rates set rate_to_base = rate_to_base * 2 where currency = 'USD'")
    finally:
        con.close()
    changed_rate = step("2026-11-02", kept=False)
    assert changed_rate["int_customer_orders_aggregated"]["windows_as_of"].astype(str).eq("2026-11-02").all()
    step("2026-11-02", extra_vars={"rfm_window_days": 60}, kept=False)


@pytest.mark.parametrize("table, only", [("intermediate.int_customer_daily_events", "where activity_date is not null"),
                                         ("staging.stg_crm__events", ""), ("staging.stg_crm__orders", "")])
def test_a_row_written_twice_fails_the_uniqueness_test_of_an_incremental_table(built_warehouse, tmp_path, table, only):
    """unique_among_rebuilt finds a repeated row (a day row of a rebuilt customer, a staged key), also when
    the older copy is a row the last build did not replace."""
    import shutil

    db, _ = built_warehouse
    model = table.split(".")[1]
    uniqueness = f"{model},test_name:unique_among_rebuilt"  # (other tests of the module change other rows)
    for label, older in (("the same build", False), ("an older build", True)):
        copy = tmp_path / label.replace(" ", "_") / "crm.duckdb"
        copy.parent.mkdir()
        shutil.copyfile(db, copy)
        con = duckdb.connect(str(copy))
        try:
            con.execute(f"""insert into {table}
                            select * replace (through_load_seq - {int(older)} as through_load_seq)
                            from {table} {only} order by all limit 1""")
        finally:
            con.close()
        with pytest.raises(DbtFailed, match=f"unique_among_rebuilt_{model}"):
            run_dbt(["test", "--select", uniqueness], "2026-11-01", warehouse=copy)
    run_dbt(["test", "--select", uniqueness], "2026-11-01", warehouse=db)  # the build's own


def test_history_tests_check_the_date_the_run_wrote(built_warehouse, tmp_path):
    """customer_history's tests that read every row are limited to the run's as-of date (config where
    __as_of_date__, macro get_where_subquery): a repeated row of that date fails the uniqueness test; the
    same row is not read by a run of another date, so a daily run does not scan all of history."""
    import shutil

    db, _ = built_warehouse
    copy = tmp_path / "crm.duckdb"
    shutil.copyfile(db, copy)
    con = duckdb.connect(str(copy))
    try:
        con.execute("""insert into history.customer_history
                       select * from history.customer_history where as_of_date = date '2026-11-01' limit 1""")
    finally:
        con.close()
    with pytest.raises(DbtFailed, match="combination_is_unique_customer_history_customer_id__as_of_date"):
        run_dbt(["test", "--select", "customer_history"], "2026-11-01", warehouse=copy)
    run_dbt(["test", "--select", "customer_history"], "2011-01-01", warehouse=copy)



def test_a_history_table_built_before_its_not_null_constraints_gets_them(built_warehouse, tmp_path):
    """A contracted incremental table keeps the DDL it was created with; the pre-hook
    not_null_constraints_on_existing_table declares what it lacks, and older nulls stop the run, named."""
    import shutil

    db, _ = built_warehouse
    copy = tmp_path / "crm.duckdb"
    shutil.copyfile(db, copy)

    def nullable(column: str) -> bool:
        con = duckdb.connect(str(copy), read_only=True)
        try:
            return con.execute("select is_nullable from duckdb_columns() where schema_name = 'history' and "
                               "table_name = 'customer_history' and column_name = ?", [column]).fetchone()[0]
        finally:
            con.close()

    def alter(*statements: str) -> None:
        con = duckdb.connect(str(copy))
        try:
            for statement in statements:
                con.execute(statement)
        finally:
            con.close()

    assert not nullable("tier_reason")
    alter("alter table history.customer_history alter column tier_reason drop not null")  # as built before
    assert nullable("tier_reason")
    run_dbt(["run", "--select", "customer_history"], "2026-11-01", warehouse=copy)
    assert not nullable("tier_reason")
    alter("alter table history.customer_history alter column tier_reason drop not null",
          """insert into history.customer_history select * replace (date '2011-01-01' as as_of_date,
             null as tier_reason) from history.customer_history limit 1""")
    with pytest.raises(DbtFailed, match=r"customer_history(.|\n)*NOT NULL constraint failed: customer_history.tier_reason"):
        run_dbt(["run", "--select", "customer_history"], "2026-11-01", warehouse=copy)


# --- project structure: what an analyst reads (models documented, contracts, selectors, sizes) ---

MODELS_DIR = DBT_PROJECT_DIR / "models"
MAX_MODEL_LINES = 120
# Longer on purpose, with why. customer_tiers: seven inputs (import CTEs), the rfm/clv value choice and an
# 18-column contract; its rule is the `placed` and `matched_rule` CTEs, its reason is macro tier_reason.
# customer_transitions: the dates a run recomputes, the pairing with the latest earlier row (read from two
# dates, macro rows_that_can_precede), the change kinds and a 22-column history table.
LONGER_MODELS = {"customer_tiers": 150, "customer_transitions": 135}


def _model_files() -> dict[str, Path]:
    return {path.stem: path for path in sorted(MODELS_DIR.rglob("*")) if path.suffix in (".sql", ".py")}


def _yml_entries(kind: str) -> dict[str, tuple[Path, dict]]:
    """Entries of `kind` (models, macros, exposures, ...) of every yml file in the project, by name."""
    entries = {}
    for path in sorted(DBT_PROJECT_DIR.rglob("*.yml")):
        if "target" in path.parts or path.name in ("dbt_project.yml", "profiles.yml", "selectors.yml"):
            continue
        for entry in (yaml.safe_load(path.read_text()) or {}).get(kind) or []:
            entries[entry["name"]] = (path, entry)
    return entries


def test_every_model_is_documented_in_its_folders_yml():
    models = _yml_entries("models")
    for name, path in _model_files().items():
        assert name in models, f"{path.relative_to(DBT_PROJECT_DIR)} has no entry in a yml file"
        yml_path, entry = models[name]
        assert yml_path.parent == path.parent, f"{name} is documented in {yml_path}, not in its own folder"
        assert entry.get("description"), f"{name} has no description"
        assert entry.get("columns"), f"{name} documents no column"
        undocumented = [c["name"] for c in entry["columns"] if not c.get("description")]
        assert not undocumented, f"{name}: columns without a description: {undocumented}"


def test_every_built_column_is_documented(built_warehouse):
    models = _yml_entries("models")
    con = duckdb.connect(str(built_warehouse[0]), read_only=True)
    try:
        columns = con.execute("select table_name, list(column_name) from information_schema.columns "
                              "where table_schema in ('staging', 'intermediate', 'marts', 'history') "
                              "group by 1").fetchall()
    finally:
        con.close()
    built = {table: names for table, names in columns if table in _model_files()}
    assert set(built) == set(_model_files()), "every model builds a table"
    for table, names in built.items():
        documented = {c["name"] for c in models[table][1]["columns"]}
        assert set(names) == documented, (
            f"{table}: built but undocumented {sorted(set(names) - documented)}, "
            f"documented but not built {sorted(documented - set(names))}")


def test_published_marts_have_enforced_contracts():
    from crmtier.delivery.publish import PUBLISHED_TABLES

    models = _yml_entries("models")
    for name in PUBLISHED_TABLES:
        entry = models[name][1]
        assert entry.get("config", {}).get("contract", {}).get("enforced") is True, f"{name}: no enforced contract"
        untyped = [c["name"] for c in entry["columns"] if not c.get("data_type")]
        assert not untyped, f"{name}: columns without data_type: {untyped}"


def _declared_not_null(entry: dict) -> set[str]:
    return {c["name"] for c in entry["columns"] if {"type": "not_null"} in (c.get("constraints") or [])}


def test_every_sql_model_enforces_its_not_null_columns_in_the_table(built_warehouse):
    """Every SQL model has an enforced contract whose not_null columns are constraints of the built table (a
    null is refused when written, and no test node per column); a Python model has no contract in dbt and
    keeps not_null tests."""
    models = _yml_entries("models")
    con = duckdb.connect(str(built_warehouse[0]), read_only=True)
    try:
        required = dict(con.execute("select table_name, list(column_name) filter (where not is_nullable) "
                                    "from duckdb_columns() where schema_name in "
                                    "('staging', 'intermediate', 'marts', 'history') "
                                    "group by 1").fetchall())
    finally:
        con.close()
    for name, path in _model_files().items():
        entry = models[name][1]
        tested = {c["name"] for c in entry["columns"] if "not_null" in (c.get("data_tests") or [])}
        if path.suffix == ".py":
            assert tested and not _declared_not_null(entry), name
            continue
        assert entry.get("config", {}).get("contract", {}).get("enforced") is True, f"{name}: no enforced contract"
        assert not tested, f"{name}: not_null data tests on a contracted model, declare constraints: {tested}"
        assert set(required[name]) == _declared_not_null(entry), name


def test_the_bi_exposure_lists_every_published_model():
    exposure = _yml_entries("exposures")["bi_snapshot"][1]
    refs = {re.fullmatch(r"ref\('(\w+)'\)", dep).group(1) for dep in exposure["depends_on"]}
    published = {name for name, path in _model_files().items()
                 if path.relative_to(MODELS_DIR).parts[0] in ("marts", "history")}
    assert refs == published


def test_pipeline_selectors_exist_in_selectors_yml():
    selectors = {s["name"] for s in yaml.safe_load((DBT_PROJECT_DIR / "selectors.yml").read_text())["selectors"]}
    for stage in ("staging", "marts"):
        args = stage_args(stage)
        assert "--select" not in args and "--selector" in args, f"stage {stage}: {args}"
        assert args[args.index("--selector") + 1] in selectors


def test_no_model_is_longer_than_its_rule_needs():
    long = {name: n for name, path in _model_files().items()
            if (n := len(path.read_text().splitlines())) > LONGER_MODELS.get(name, MAX_MODEL_LINES)}
    assert not long, f"models over {MAX_MODEL_LINES} lines (move reason-building into macros/): {long}"


def test_every_macro_and_its_arguments_are_documented():
    documented = _yml_entries("macros")
    for path in sorted((DBT_PROJECT_DIR / "macros").glob("*.sql")):
        for kind, name, args in re.findall(r"{%-?\s*(macro|test)\s+(\w+)\(([^)]*)\)", path.read_text()):
            key = f"test_{name}" if kind == "test" else name
            assert key in documented, f"macro {key} ({path.name}) is not documented in macros/_macros.yml"
            entry = documented[key][1]
            assert entry.get("description"), f"macro {key} has no description"
            names = [a.split("=")[0].strip() for a in args.split(",") if a.strip()]
            described = {a["name"]: a.get("description") for a in entry.get("arguments") or []}
            assert all(described.get(a) for a in names), f"macro {key}: arguments {names}, documented {described}"


def test_dbt_log_keeps_what_dbt_says_and_every_statement_only_when_asked(built_warehouse, monkeypatch):
    """dbt.log holds dbt's info lines by default (each statement at debug level cost ~3 s of a small run);
    DBT_LOG_LEVEL_FILE=debug, as dbt documents it, brings the statements back."""
    from crmtier.paths import get_paths

    log = get_paths().dbt_target / "logs" / "dbt.log"
    default = log.read_text()
    assert "[info ]" in default and "Found " in default
    assert "[debug]" not in default
    monkeypatch.setenv("DBT_LOG_LEVEL_FILE", "debug")
    run_dbt(["ls", "--select", "customer_status"], "2011-03-01")
    assert "[debug]" in log.read_text()[len(default):]


def test_a_new_home_starts_from_the_last_parse_instead_of_a_full_parse(tmp_path, monkeypatch):
    """dbt's partial-parse state is per home; a new home starts from the shared one (crmtier.dbt_runner):
    its profile is the same (paths relative to the home), so dbt accepts the saved state."""
    from crmtier import dbt_runner

    monkeypatch.setenv(dbt_runner.PARSE_CACHE_ENV, str(tmp_path / "cache"))
    outputs = {}
    for home in ("first", "second"):
        monkeypatch.setenv("CRMTIER_HOME", str(tmp_path / home))
        monkeypatch.setattr(dbt_runner, "_MANIFESTS", {})  # a new process: nothing parsed yet
        outputs[home] = run_dbt(["ls", "--select", "customer_status"], "2011-03-01")
    assert "Unable to do partial parsing because saved manifest not found" in outputs["first"]
    assert "Unable to do partial parsing" not in outputs["second"], outputs["second"]
    assert (tmp_path / "second" / "dbt_target" / "partial_parse.msgpack").exists()
    assert "customer_status" in outputs["second"]


def _built(kind: str) -> set[str]:
    """Names of the nodes of one resource type in the last dbt command's run_results.json."""
    import json

    from crmtier.paths import get_paths

    results = json.loads((get_paths().dbt_target / "run_results.json").read_text())["results"]
    return {r["unique_id"].split(".")[2] for r in results if r["unique_id"].startswith(f"{kind}.")}


def test_staging_reloads_the_seeds_only_when_they_or_their_table_changed(tmp_path, monkeypatch):
    """The staging stage loads and tests the seeds when the warehouse has not got them from the same files:
    the first time, after a seed table is dropped, on a full refresh; otherwise it builds the staging models
    and all their tests, those reading a seed included."""
    from crmtier.pipeline import SEEDS_BUILT, STAGING_BUILT, dbt_step

    monkeypatch.setenv("CRMTIER_HOME", str(tmp_path / "var"))
    generate(tmp_path / "landing", 60, seed=5, as_of="2011-06-30")
    db = tmp_path / "var" / "warehouse" / "crm.duckdb"
    ingest_landing(db, tmp_path / "landing")
    seeds = {path.stem for path in (DBT_PROJECT_DIR / "seeds").glob("*.csv")}

    def forget_staging() -> None:  # as a new load does: staging runs again (else it is not run at all)
        con = duckdb.connect(str(db))
        try:
            con.execute(f"delete from {STAGING_BUILT}")
        finally:
            con.close()

    dbt_step("staging", "2011-06-30")
    assert _built("seed") == seeds
    first_tests = _built("test")
    forget_staging()
    dbt_step("staging", "2011-06-30")
    assert _built("seed") == set()
    kept_tests = _built("test")
    assert _built("model") == {"stg_crm__customers", "stg_crm__orders", "stg_crm__events", "stg_crm__field_warnings"}
    seed_tests = {t for t in first_tests if "stg_crm__" not in t and not t.startswith("source_")}
    assert seed_tests and all(any(seed in t for seed in seeds) for t in seed_tests), seed_tests
    assert kept_tests == first_tests - seed_tests
    assert [t for t in kept_tests if any(seed in t for seed in seeds)], "no staging test reading a seed is kept"

    con = duckdb.connect(str(db))
    try:
        con.execute("drop table config.tier_rules")
    finally:
        con.close()
    dbt_step("staging", "2011-06-30")
    assert _built("seed") == seeds and _built("test") == first_tests
    dbt_step("staging", "2011-06-30", full_refresh=True)
    assert _built("seed") == seeds
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute(f"select count(*) from {SEEDS_BUILT}").fetchone() == (1,)
    finally:
        con.close()


def test_staging_is_not_run_again_until_a_load_or_a_project_file_changes(tmp_path, monkeypatch, caplog):
    """A date with no new file does not run dbt staging: its tables were built and tested from the same loads
    and project files. A new load, a retraction, an edited project file, a full refresh, or an earlier build
    that failed runs it; the rows it stages are the new ones."""
    import logging

    from crmtier.dbt_runner import DbtFailed
    from crmtier.ingest.landing import retract_load
    from crmtier.pipeline import STAGING_BUILT, dbt_step
    from tests.conftest import write_csv

    monkeypatch.setenv("CRMTIER_HOME", str(tmp_path / "var"))
    landing = tmp_path / "landing"
    generate(landing, 60, seed=5, as_of="2011-06-30")
    db = tmp_path / "var" / "warehouse" / "crm.duckdb"
    ingest_landing(db, landing)

    def staging_ran(as_of: str, **kw) -> bool:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="crmtier"):
            dbt_step("staging", as_of, **kw)
        skipped = [r.message for r in caplog.records if "dbt staging: not run" in r.message]
        assert len(skipped) <= 1
        return not skipped

    def staged_order_ids() -> set[str]:
        con = duckdb.connect(str(db), read_only=True)
        try:
            return {r[0] for r in con.execute("select order_id from staging.stg_crm__orders").fetchall()}
        finally:
            con.close()

    assert staging_ran("2011-06-30")
    assert not staging_ran("2011-07-01")  # a new date, no new file
    assert not staging_ran("1997-03-01")

    write_csv(landing / "generic" / "orders" / "late.csv", "order_id,customer_id,order_time,amount,currency,status",
              ["LATE-1,C0000001,2011-07-01 10:00:00,12.50,CNY,paid"])
    new_load = ingest_landing(db, landing).load_ids
    assert staging_ran("2011-07-01") and "LATE-1" in staged_order_ids()
    assert not staging_ran("2011-07-02")

    retract_load(db, new_load[0])
    assert staging_ran("2011-07-02") and "LATE-1" not in staged_order_ids()
    assert not staging_ran("2011-07-02")

    monkeypatch.setattr("crmtier.dbt_runner.project_fingerprint", lambda: "an edited model")
    assert staging_ran("2011-07-02")
    assert not staging_ran("2011-07-02")
    assert staging_ran("2011-07-02", full_refresh=True)

    def failing_dbt(*args, **kwargs):
        raise DbtFailed("a failing test")

    with monkeypatch.context() as failing, pytest.raises(Exception, match="dbt staging failed"):
        failing.setattr("crmtier.dbt_runner.run_dbt", failing_dbt)
        dbt_step("staging", "2011-07-02", full_refresh=True)
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute(f"select count(*) from {STAGING_BUILT}").fetchone() == (0,)
    finally:
        con.close()
    assert staging_ran("2011-07-02")


def test_field_warnings_add_the_new_loads_and_equal_a_full_refresh(tmp_path, monkeypatch):
    """stg_crm__field_warnings is incremental by load: a run adds the warnings of new loads once, a run
    without a customers load adds none, and a table from before it kept load_seq is replaced, not added to."""
    import shutil

    from tests.conftest import write_csv

    monkeypatch.setenv("CRMTIER_HOME", str(tmp_path / "var"))
    landing = tmp_path / "landing"
    generate(landing, 60, seed=5, as_of="2011-06-30")
    db = tmp_path / "var" / "warehouse" / "crm.duckdb"
    header = "customer_id,name,gender,birth_date,phone,email,occupation,income,province,city,created_at"
    model = ["run", "--select", "stg_crm__field_warnings"]

    def warnings(path=db) -> list[tuple]:
        con = duckdb.connect(str(path), read_only=True)
        try:
            return con.execute("""select load_id, load_seq, source_system, file_name, row_number, customer_id,
                                          field_name, raw_value, warning
                                   from staging.stg_crm__field_warnings order by all""").fetchall()
        finally:
            con.close()

    def full_refresh() -> list[tuple]:
        copy = tmp_path / "copy" / "crm.duckdb"
        copy.parent.mkdir(exist_ok=True)
        shutil.copyfile(db, copy)
        run_dbt([*model, "--full-refresh"], "2011-06-30", warehouse=copy)
        return warnings(copy)

    write_csv(landing / "generic" / "customers" / "warn1.csv", header,
              ["W1,甲,M,1980-02-30,,,,,,,2011-01-01 00:00:00"])
    ingest_landing(db, landing)
    run_dbt(model, "2011-06-30")
    first = warnings()
    assert [(w[5], w[7], w[8]) for w in first if w[5] == "W1"] == [("W1", "1980-02-30", "unreadable_date")]

    write_csv(landing / "generic" / "customers" / "warn2.csv", header, ["W2,乙,F,,,,,abc,,,2011-01-02 00:00:00"])
    ingest_landing(db, landing)
    run_dbt(model, "2011-06-30")
    second = warnings()
    assert set(first) < set(second) and len(second) == len(set(second)) == len(first) + 1
    assert second == full_refresh()
    run_dbt(model, "2011-06-30")  # no new load
    assert warnings() == second

    con = duckdb.connect(str(db))
    try:
        con.execute("alter table staging.stg_crm__field_warnings drop column load_seq")
    finally:
        con.close()
    run_dbt(model, "2011-06-30")
    assert warnings() == second


def test_the_project_fingerprint_follows_every_project_file_but_dbt_output(tmp_path):
    import shutil

    from crmtier.dbt_runner import project_fingerprint

    project = tmp_path / "project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    before = project_fingerprint(project)
    assert project_fingerprint(DBT_PROJECT_DIR) == before
    for output in ("target/run_results.json", "logs/dbt.log"):
        (project / output).parent.mkdir(parents=True, exist_ok=True)
        (project / output).write_text("{}")
    assert project_fingerprint(project) == before
    for edited in (next((project / "models" / "staging").rglob("*.sql")), next((project / "models").rglob("*.yml")),
                   project / "selectors.yml", next((project / "seeds").glob("*.csv"))):
        original = edited.read_bytes()
        edited.write_bytes(original + b"\n")
        assert project_fingerprint(project) != before, edited.name
        edited.write_bytes(original)
    assert project_fingerprint(project) == before


def test_the_seeds_fingerprint_follows_seeds_macros_and_project_not_models(tmp_path):
    import shutil

    from crmtier.dbt_runner import seeds_fingerprint

    project = tmp_path / "project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    before = seeds_fingerprint(project)
    assert seeds_fingerprint(project) == before == seeds_fingerprint(DBT_PROJECT_DIR)
    model = next((project / "models").rglob("*.sql"))
    model.write_text(model.read_text() + "\n")
    assert seeds_fingerprint(project) == before
    for edited in (next((project / "seeds").glob("*.csv")), next((project / "macros").rglob("*.sql")),
                   project / "dbt_project.yml"):
        original = edited.read_bytes()
        edited.write_bytes(original + b"\n")
        assert seeds_fingerprint(project) != before, edited.name
        edited.write_bytes(original)
    assert seeds_fingerprint(project) == before
