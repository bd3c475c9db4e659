"""Personal data of a real DagRun's warehouse (the shared `report_run` backfill): names, phones and
e-mails stay in staging and the outbox."""
from __future__ import annotations

import duckdb
import pytest

pytestmark = pytest.mark.e2e  # shares the session fixture report_run: conftest.SHARED


def test_pii_is_only_in_staging_and_the_outbox(report_run):
    """A real DAG run (the shared backfill): no PII column and no PII value in any history or marts table,
    nor in the snapshot."""
    assert report_run.exit_code == 0, report_run.output[-4000:]
    home = report_run.home
    assert (home / "outbox" / report_run.as_of / "_manifest.json").exists()
    con = duckdb.connect(str(home / "warehouse" / "crm.duckdb"), read_only=True)
    try:
        pii = con.execute("""select customer_name as v from staging.stg_crm__customers where customer_name is not null
                             union select email from staging.stg_crm__customers where email is not null
                             union select phone from staging.stg_crm__customers where phone is not null""").fetchall()
        pii_values = {r[0] for r in pii}
        assert len(pii_values) > 100
        tables = con.execute("""select table_schema, table_name from information_schema.tables
                                where table_schema in ('marts', 'history')""").fetchall()
        assert {t for s, t in tables if s == "history"} >= {"customer_history", "customer_transitions",
                                                             "customer_alerts", "transition_daily_counts"}
        for schema, table in tables:
            columns = [r[0] for r in con.execute(
                "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
                [schema, table]).fetchall()]
            assert not {"customer_name", "name", "email", "phone"} & set(columns), (schema, table)
            values = {str(v) for row in con.execute(f"select * from {schema}.{table}").fetchall() for v in row}
            assert not values & pii_values, (schema, table)
    finally:
        con.close()
    snapshot = duckdb.connect(str(home / "publish" / "crm.duckdb"), read_only=True)
    try:
        for (table,) in snapshot.execute("select table_name from information_schema.tables").fetchall():
            values = {str(v) for row in snapshot.execute(f"select * from {table}").fetchall() for v in row}
            assert not values & pii_values, table
    finally:
        snapshot.close()
