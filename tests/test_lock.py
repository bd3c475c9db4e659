"""Run locks, a warehouse held by another process, leftovers of killed runs, masking, permissions:
the pieces, with real processes and files (the DAG runs are in test_faults.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import duckdb
import pytest

from crmtier.delivery.masking import mask_raw_values, mask_text
from crmtier.lock import LockBusy, clean_leftovers, home_lock, wait_for_warehouse
from crmtier.permissions import secure_home

pytestmark = pytest.mark.integration

HOLD = ("import sys, time; from crmtier.lock import home_lock; from pathlib import Path; "
        "home_lock(Path(sys.argv[1])).acquire('1997-06-30'); print('held', flush=True); time.sleep(600)")


def test_a_second_lock_says_who_holds_it_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockBusy) as busy:
            home_lock(tmp_path).acquire("1997-07-01")
        message = str(busy.value)
        assert f"another run (pid {holder.pid}, as-of date 1997-06-30, started at " in message
        assert "holds this home" in message
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock = home_lock(tmp_path).acquire("1997-07-01")  # kill -9 released it
    assert json.loads((tmp_path / "run.lock").read_text())["pid"] == os.getpid()
    lock.release()


def test_a_warehouse_held_open_is_retried_then_named(tmp_path):
    db = tmp_path / "crm.duckdb"
    duckdb.connect(str(db)).close()
    analyst = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], "
                                "read_only=True); print('open', flush=True); time.sleep(600)", str(db)],
                               stdout=subprocess.PIPE, text=True)
    told = []
    try:
        assert analyst.stdout.readline().strip() == "open"
        with pytest.raises(RuntimeError) as held:
            wait_for_warehouse(db, wait_seconds=2, log=told.append)
    finally:
        analyst.kill()
        analyst.wait()
    assert f"held open by pid {analyst.pid} (" in str(held.value) and "Close that connection" in str(held.value)
    assert told and "retrying" in told[0]
    wait_for_warehouse(db, wait_seconds=0)  # free again


def test_leftovers_of_a_killed_run_are_removed_and_nothing_else(tmp_path):
    keep = [tmp_path / "crm.duckdb", tmp_path / "2026-01-01", tmp_path / ".keep"]
    keep[0].write_text("x")
    keep[1].mkdir()
    keep[2].write_text("x")
    junk = [tmp_path / ".crm.duckdb.123.tmp", tmp_path / ".crm.duckdb.123.tmp.wal", tmp_path / ".2026-01-01.tmp-9",
            tmp_path / ".2026-01-01.old-9"]
    for path in junk:
        path.mkdir() if path.name.startswith(".2026") else path.write_text("x")
    assert sorted(clean_leftovers([tmp_path])) == sorted(junk)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in junk)


def test_masking_of_quarantine_samples():
    raw = json.dumps({"customer_id": None, "客户名称": "王小明", "手机": "+86 139 1234 5678",
                      "email": "ming@example.com", "notes": "call 13912345678", "amount": "1234567.50",
                      "created_at": "2026-01-14 13:27:07"}, ensure_ascii=False)
    masked, found = mask_raw_values(raw)
    values = json.loads(masked)
    assert values["客户名称"] == "王**" and values["手机"].endswith("78") and "1234 56" not in values["手机"]
    assert values["email"] == "m***@example.com"
    assert values["amount"] == "1234567.50" and values["created_at"] == "2026-01-14 13:27:07"
    assert "13912345678" not in values["notes"]
    assert set(found) >= {"王小明", "+86 139 1234 5678", "ming@example.com"}
    assert mask_text("no customer named 王小明", found) == "no customer named 王**"


def test_secure_home_tightens_what_an_older_version_left_readable(tmp_path, monkeypatch):
    monkeypatch.delenv("CRMTIER_UMASK", raising=False)
    monkeypatch.delenv("CRMTIER_SHARE_GROUP", raising=False)
    home = tmp_path / "var"
    (home / "reports").mkdir(parents=True)
    (home / "landing").mkdir()
    report = home / "reports" / "q.md"
    report.write_text("x")
    os.chmod(report, 0o644)
    os.chmod(home, 0o755)
    os.chmod(home / "landing", 0o755)
    assert secure_home(home) >= 2
    assert report.stat().st_mode & 0o777 == 0o600 and home.stat().st_mode & 0o777 == 0o700
    assert (home / "landing").stat().st_mode & 0o777 == 0o755  # the input is not ours
