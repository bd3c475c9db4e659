"""Outbox files: CSV injection, atomic writes, contacts per action, idempotent re-runs, no PII elsewhere."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
import pytest

from crmtier.delivery import outbox
from crmtier.delivery.outbox import CONTACT_FIELDS, escape_cell, read_manifest, write_outbox

pytestmark = pytest.mark.integration

AS_OF = "2026-11-01"

CUSTOMERS = [
    # customer_id, name, email, phone
    ("C1", "=HYPERLINK(\"http://evil.example\",\"click\")", "c1@example.com", "+8613800000001"),
    ("C2", "王芳", "-2+3@example.com", "13800000002"),
    ("C3", "@SUM(A1:A9)", None, "+8613800000003"),
    ("C4", "\tTabbed", "c4@example.com", None),
    ("C5", "\rCarriage", "c5@example.com", "13800000005"),
]
ALERTS = [
    # customer_id, rule_id, action, channel, priority
    ("C1", "status_active_to_dormant", "wake_up_email", "email", 2),
    ("C2", "status_active_to_dormant", "wake_up_email", "email", 2),
    ("C3", "status_active_to_dormant_high_value", "sms_offer", "sms", 2),
    ("C5", "status_active_to_dormant_high_value", "sms_offer", "sms", 2),
    ("C1", "tier_vip_to_lower", "account_manager_follow_up", "phone", 1),
    ("C4", "status_churned_to_active", "win_back_success", "crm_task", 3),
]


def _warehouse(path: Path, alerts=ALERTS, as_of: str = AS_OF) -> Path:
    con = duckdb.connect(str(path))
    try:
        con.execute("create schema if not exists history")
        con.execute("create schema if not exists staging")
        con.execute("""create or replace table staging.stg_crm__customers (
                           customer_id varchar, customer_name varchar, email varchar, phone varchar)""")
        con.executemany("insert into staging.stg_crm__customers values (?, ?, ?, ?)", CUSTOMERS)
        con.execute("""create table if not exists history.customer_alerts (
                           alert_id varchar, customer_id varchar, rule_id varchar, as_of_date date,
                           previous_as_of_date date, dimension varchar, from_value varchar, to_value varchar,
                           action varchar, channel varchar, priority integer, status varchar, tier varchar,
                           segment varchar, value_score double, has_contact boolean, cooldown_days integer,
                           previous_alert_date date, message_en varchar, message_zh varchar, reason varchar,
                           config_version varchar)""")
        con.execute("delete from history.customer_alerts where as_of_date = ?", [as_of])
        for customer, rule, action, channel, priority in alerts:
            con.execute(
                """insert into history.customer_alerts values
                   (md5(? || '|' || ? || '|' || ?), ?, ?, ?::date, ?::date - 1, 'status', 'active', 'dormant',
                    ?, ?, ?, 'dormant', 'vip', 'At risk', 0.9, true, 30, null,
                    '-Wake-up email', '发送唤醒邮件、提供优惠', 'rule ' || ?, 'abc123')""",
                [customer, rule, as_of, customer, rule, as_of, as_of, action, channel, priority, rule])
    finally:
        con.close()
    return path


def _read_csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8-sig", newline="") as handle:  # newline="": keep a \r inside a cell
        return list(csv.DictReader(handle))


@pytest.fixture
def warehouse(tmp_path) -> Path:
    return _warehouse(tmp_path / "crm.duckdb")


def test_escape_cell():
    for dangerous in ("=1+1", "+1", "-1", "@A1", "\tx", "\rx"):
        assert escape_cell(dangerous) == "'" + dangerous
    assert escape_cell("王芳") == "王芳"
    assert escape_cell(None) == ""
    assert escape_cell(-1) == "-1"  # numbers we computed are not formulas


def test_csv_cells_are_escaped_and_json_keeps_values(warehouse, tmp_path):
    out = tmp_path / "outbox"
    counts = write_outbox(warehouse, out, AS_OF, "run-1")
    assert counts == {"account_manager_follow_up": 1, "sms_offer": 2, "wake_up_email": 2, "win_back_success": 1}
    emails = {r["customer_id"]: r for r in _read_csv(out / AS_OF / "wake_up_email.csv")}
    assert emails["C1"]["customer_name"] == "'=HYPERLINK(\"http://evil.example\",\"click\")"
    assert emails["C2"]["email"] == "'-2+3@example.com"
    assert emails["C2"]["customer_name"] == "王芳"
    assert emails["C1"]["message_en"] == "'-Wake-up email"
    assert emails["C1"]["message_zh"] == "发送唤醒邮件、提供优惠"
    sms = {r["customer_id"]: r for r in _read_csv(out / AS_OF / "sms_offer.csv")}
    assert sms["C3"]["customer_name"] == "'@SUM(A1:A9)" and sms["C3"]["phone"] == "'+8613800000003"
    assert sms["C5"]["customer_name"] == "'\rCarriage"
    tasks = _read_csv(out / AS_OF / "win_back_success.csv")
    assert tasks[0]["customer_name"] == "'\tTabbed"
    # every cell of every CSV: nothing a spreadsheet would evaluate
    for path in (out / AS_OF).glob("*.csv"):
        for row in _read_csv(path):
            assert not any(v.startswith(outbox.INJECTION_PREFIXES) for v in row.values()), (path, row)
    # JSON is for programs: values as they are (the phone stays dialable)
    data = json.loads((out / AS_OF / "sms_offer.json").read_text(encoding="utf-8"))
    by_id = {a["customer_id"]: a for a in data["alerts"]}
    assert by_id["C3"]["phone"] == "+8613800000003" and by_id["C3"]["customer_name"] == "@SUM(A1:A9)"
    assert data["action"] == "sms_offer" and data["as_of_date"] == AS_OF


def test_contact_fields_follow_the_channel(warehouse, tmp_path):
    out = tmp_path / "outbox"
    write_outbox(warehouse, out, AS_OF, "run-1")
    expected = {"wake_up_email": "email", "sms_offer": "sms", "account_manager_follow_up": "phone",
                "win_back_success": "crm_task"}
    contacts = {c: set(fields) for c, fields in CONTACT_FIELDS.items()}
    every_contact = set().union(*contacts.values())
    for action, channel in expected.items():
        header = next(csv.reader(io.StringIO((out / AS_OF / f"{action}.csv").read_text(encoding="utf-8-sig"))))
        assert every_contact & set(header) == contacts[channel], action
        alerts = json.loads((out / AS_OF / f"{action}.json").read_text(encoding="utf-8"))["alerts"]
        assert every_contact & set(alerts[0]) == contacts[channel], action
    manager = json.loads((out / AS_OF / "account_manager_follow_up.json").read_text(encoding="utf-8"))["alerts"]
    assert manager[0]["phone"] == "+8613800000001" and manager[0]["customer_name"].startswith("=HYPERLINK")
    manifest = read_manifest(out, AS_OF)
    assert manifest["actions"]["sms_offer"]["missing_contact"] == 0
    assert manifest["actions"]["wake_up_email"]["alerts"] == 2


def _folder(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (out / AS_OF).iterdir()}


def test_rerun_leaves_a_handed_over_folder_as_it_is(warehouse, tmp_path):
    out = tmp_path / "outbox"
    first = write_outbox(warehouse, out, AS_OF, "run-1")
    files = _folder(out)
    manifest = read_manifest(out, AS_OF)
    assert {a: i["new_alerts"] for a, i in manifest["actions"].items()} == first
    inode = (out / AS_OF).stat().st_ino
    again = write_outbox(warehouse, out, AS_OF, "run-2")
    assert again == first
    assert _folder(out) == files  # same files and the same manifest: what was handed over, by run-1
    assert (out / AS_OF).stat().st_ino == inode  # not even rewritten
    assert read_manifest(out, AS_OF)["run_id"] == "run-1"
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        recorded = con.execute("select run_id, count(*) from outbox.alert_deliveries group by 1").fetchall()
    finally:
        con.close()
    assert recorded == [("run-1", len(ALERTS))]  # handed over once, by the first run
    # a re-run after the alerts changed: a new folder, without the action that has no alerts any more,
    # where only undelivered alerts count as new
    _warehouse(warehouse, alerts=[a for a in ALERTS if a[2] != "win_back_success"] + [
        ("C2", "tier_vip_to_lower", "account_manager_follow_up", "phone", 1)])
    write_outbox(warehouse, out, AS_OF, "run-3")
    assert not (out / AS_OF / "win_back_success.csv").exists()
    assert not (out / AS_OF / "win_back_success.json").exists()
    assert (out / AS_OF / "wake_up_email.csv").read_bytes() == files["wake_up_email.csv"]
    manifest = read_manifest(out, AS_OF)
    assert manifest["run_id"] == "run-3"
    assert {a: i["new_alerts"] for a, i in manifest["actions"].items()} == {
        "account_manager_follow_up": 1, "sms_offer": 0, "wake_up_email": 0}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_a_failed_write_leaves_the_previous_folder_whole_and_no_temp_files(warehouse, tmp_path, monkeypatch):
    out = tmp_path / "outbox"
    write_outbox(warehouse, out, AS_OF, "run-1")
    before = _folder(out)
    _warehouse(warehouse, alerts=[*ALERTS, ("C2", "tier_vip_to_lower", "account_manager_follow_up", "phone", 1)])
    real_fdopen = outbox.os.fdopen
    calls = {"n": 0}

    def flaky_fdopen(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real_fdopen(*args, **kw)

    monkeypatch.setattr(outbox.os, "fdopen", flaky_fdopen)
    with pytest.raises(OSError, match="disk full"):
        write_outbox(warehouse, out, AS_OF, "run-2")
    monkeypatch.setattr(outbox.os, "fdopen", real_fdopen)
    assert _folder(out) == before  # the old folder, whole
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    con = duckdb.connect(str(warehouse), read_only=True)
    try:  # nothing recorded for the failed hand-over
        assert con.execute("select count(*) from outbox.alert_deliveries").fetchone()[0] == len(ALERTS)
    finally:
        con.close()
    # the retry completes it, counting the one undelivered alert as new
    write_outbox(warehouse, out, AS_OF, "run-3")
    assert len(_read_csv(out / AS_OF / "account_manager_follow_up.csv")) == 2
    assert read_manifest(out, AS_OF)["actions"]["account_manager_follow_up"]["new_alerts"] == 1


def test_swap_in_exchanges_folders(tmp_path):
    target, new = tmp_path / "d", tmp_path / ".d.tmp"
    target.mkdir()
    (target / "a").write_text("old")
    new.mkdir()
    (new / "a").write_text("new")
    outbox.swap_in(new, target)
    assert (target / "a").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_files_are_private_and_action_names_cannot_escape_the_folder(warehouse, tmp_path):
    out = tmp_path / "outbox"
    write_outbox(warehouse, out, AS_OF, "run-1")
    assert (out / AS_OF).stat().st_mode & 0o077 == 0
    for path in (out / AS_OF).iterdir():
        assert path.stat().st_mode & 0o077 == 0, path
    bad = tmp_path / "bad.duckdb"
    _warehouse(bad, alerts=[("C1", "r1", "../../escaped", "email", 1)])
    with pytest.raises(ValueError, match="not a valid file name"):
        write_outbox(bad, out, AS_OF, "run-1")
    assert not list(tmp_path.glob("**/escaped*"))
    with pytest.raises(ValueError):
        write_outbox(warehouse, out, "../2026-11-01", "run-1")


def test_the_warehouse_is_opened_read_only_except_to_record_deliveries(warehouse, tmp_path, monkeypatch):
    opened = []
    real_connect = duckdb.connect

    def spy(database, read_only=False, **kw):
        opened.append(read_only)
        return real_connect(database, read_only=read_only, **kw)

    monkeypatch.setattr(duckdb, "connect", spy)
    write_outbox(warehouse, tmp_path / "outbox", AS_OF, "run-1")
    assert opened == [True, False]
    opened.clear()
    write_outbox(warehouse, tmp_path / "outbox", "2026-10-01", "run-1")  # a date without alerts
    assert opened == [True]
