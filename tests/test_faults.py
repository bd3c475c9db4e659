"""Fault suite: kill -9 at every stage, two runs on one home, readers during runs, personal data and
permissions of every file written. Real `crmtier run` processes (real Airflow DagRuns, dbt, GX, DuckDB).

Kills are deterministic: `CRMTIER_FAULT_AT=<point>` (crmtier/faults.py, a test-only hook) makes the
pipeline SIGKILL its own process group (the `crmtier run` this test started in a new session) at that
point: after ingest committed its loads, after each gate validated, while each dbt stage writes (after
its first node), with the snapshot written but not swapped in, with the outbox folder written but not
swapped in, and with it swapped in but its deliveries not committed.

Two dates (D1, then D2 with a second delivery of exports) on 300 generated customers. Shared runs:
- home A: D1 clean, then D2 clean while a second `crmtier run` tries the same home and a BI reader
  holds the D1 snapshot open; then D1 again (an older date) and the relocated snapshot;
- home B (a copy of A after D1): D2 killed at each fault point in turn, each run being the rerun of
  the previous kill (`chain`, the default: every run goes past the previous kill point), then one run
  to the end; the result must equal home A's D2 (hashes of sorted rows of every published table and
  history, outbox files, delivery counts), and after every kill the published snapshot and outbox
  are whole (one date, a complete folder). CRMTIER_FAULT_MODE=each instead kills a fresh copy at
  each point and reruns it to the end (2.5x slower).
A reader process polls the snapshot through every run and must never see two dates at once.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from crmtier.faults import wait_for_session_end
from crmtier.samples.generate import generate_frames

pytestmark = pytest.mark.e2e

D1, D2 = "2011-03-21", "2011-03-31"  # outside the current year
CUSTOMERS = 300
SEED = 11
POINTS = ["ingest", "gate_raw", "dbt_staging", "gate_staging", "dbt_marts", "gate_marts", "gate_drift",
          "publish", "outbox", "outbox_commit"]
CRMTIER = str(Path(sys.executable).with_name("crmtier"))
TIME_COLUMNS = {"customers": "created_at", "orders": "order_time", "events": "event_time"}
# a bad customer row of the second delivery: quarantined with its contact fields (which must not leak)
LEAK = {"name": "钱多多测试", "phone": "13912345678", "email": "leak.test@example.org"}
ENV_CLEARED = ("CRMTIER_LANDING", "CRMTIER_WAREHOUSE", "CRMTIER_PUBLISH", "CRMTIER_OUTBOX", "AIRFLOW_HOME",
               "CRMTIER_NOTIFY_WEBHOOK", "CRMTIER_NOTIFY_EMAIL_TO", "CRMTIER_FAULT_AT", "CRMTIER_UMASK",
               "CRMTIER_SHARE_GROUP", "CRMTIER_RUN_LOCK_HELD")

READER = r"""
import json, os, sys, time, duckdb
snapshot, stop, out = sys.argv[1:4]
hold = len(sys.argv) > 4
seen, bad, errors, queries = set(), [], 0, 0
held = None
def dates(con):
    row = con.execute('''select (select as_of_date from _snapshot)::varchar,
                                (select min(as_of_date) from customer_tiers)::varchar,
                                (select max(as_of_date) from customer_tiers)::varchar,
                                (select max(as_of_date) from customer_history)::varchar,
                                (select max(as_of_date) from customer_status)::varchar''').fetchone()
    return list(row)
while not os.path.exists(stop):
    try:
        if hold:
            held = held or duckdb.connect(snapshot, read_only=True)
            row = dates(held)
        else:
            con = duckdb.connect(snapshot, read_only=True)
            try:
                row = dates(con)
            finally:
                con.close()
        queries += 1
        seen.add(row[0])
        if len(set(row)) != 1:
            bad.append(row)
    except duckdb.Error as exc:
        if os.path.exists(snapshot):
            errors += 1
            last = str(exc)
    time.sleep(0.05)
json.dump({"queries": queries, "seen": sorted(seen), "mixed": bad[:20], "errors": errors}, open(out, "w"))
"""


# --------------------------------------------------------------------------- helpers

def _env(home: Path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_CLEARED}
    env["CRMTIER_HOME"] = str(home)
    env.update(extra)
    return env


def _start(home: Path, as_of: str, **extra) -> subprocess.Popen:
    return subprocess.Popen([CRMTIER, "run", "--landing", str(home / "landing"), "--as-of", as_of],
                            env=_env(home, **extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own process group: the fault hook kills only it


def _run(home: Path, as_of: str, **extra) -> tuple[int, str]:
    proc = _start(home, as_of, **extra)
    try:
        out, _ = proc.communicate(timeout=3600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    # the run's session: nothing of it may outlive the run. A killed process can take a while to
    # finish exiting on a loaded machine (its threads leave I/O first); it must end, not be quick.
    alive = wait_for_session_end(proc.pid, timeout_s=300)
    assert not alive, f"processes of the run still alive 300 s after it ended: {alive}"
    return proc.returncode, out


def _open_read_only(db: Path | str) -> duckdb.DuckDBPyConnection:
    """A read-only connection; a lock still held by a process outside the run (there should be none)
    fails after 120 s with DuckDB's message, which names the holder's pid."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return duckdb.connect(str(db), read_only=True)
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or time.monotonic() > deadline:
                raise
            time.sleep(1)


READERS: list[Reader] = []


class Reader:
    """A separate process querying the snapshot in a loop (`hold`: one connection kept open)."""

    def __init__(self, home: Path, tmp: Path, hold: bool = False):
        self.stop, self.out = tmp / f"stop-{time.monotonic_ns()}", tmp / f"reader-{time.monotonic_ns()}.json"
        args = [sys.executable, "-c", READER, str(home / "publish" / "crm.duckdb"), str(self.stop), str(self.out)]
        self.proc = subprocess.Popen(args + (["hold"] if hold else []))
        READERS.append(self)

    def stop_if_running(self) -> None:
        """Teardown: a fixture that failed half-way leaves no reader polling."""
        if self.proc.poll() is None:
            self.stop.touch()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def result(self) -> dict:
        self.stop.touch()
        self.proc.wait(timeout=120)
        return json.loads(self.out.read_text())


def _land(frames: dict, landing: Path, delivery: int) -> None:
    cut = (D1 if delivery == 1 else D2) + " 23:59:59"
    previous = D1 + " 23:59:59" if delivery == 2 else ""
    for entity, column in TIME_COLUMNS.items():
        frame = frames[entity]
        rows = frame[(frame[column] > previous) & (frame[column] <= cut)]
        path = landing / "generic" / entity / f"delivery_{delivery}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(path, index=False)
    if delivery == 2:
        bad = landing / "generic" / "customers" / "fixes_2.csv"
        bad.write_text("customer_id,name,phone,email,created_at\n"
                       f",{LEAK['name']},{LEAK['phone']},{LEAK['email']},2011-03-25 10:00:00\n", encoding="utf-8")


def _copy_home(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    for lock in dst.rglob("*.lock"):
        lock.write_text("")
    return dst


def table_hashes(db: Path, skip=("_snapshot",)) -> dict[str, tuple[int, str]]:
    """{table: (rows, md5 of its sorted rows)} of every table of a DuckDB file (all schemas)."""
    con = _open_read_only(str(db))
    try:
        tables = con.execute("select table_schema, table_name from information_schema.tables "
                             "where table_type = 'BASE TABLE' order by 1, 2").fetchall()
        out = {}
        for schema, table in tables:
            if table in skip:
                continue
            out[f"{schema}.{table}"] = con.execute(
                f"select count(*), md5(coalesce(string_agg(t::varchar, chr(10) order by t::varchar), '')) "
                f"from {schema}.{table} as t").fetchone()
        return out
    finally:
        con.close()


def snapshot_date(home: Path) -> str | None:
    path = home / "publish" / "crm.duckdb"
    if not path.exists():
        return None
    con = _open_read_only(str(path))
    try:
        return str(con.execute("select as_of_date from _snapshot").fetchone()[0])
    finally:
        con.close()


def outbox_state(home: Path) -> dict:
    """Outbox files (manifest without its run id) and delivery counts per action."""
    files = {}
    for path in sorted((home / "outbox").rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == "_manifest.json":
                manifest = json.loads(data)
                manifest.pop("run_id")
                data = json.dumps(manifest, sort_keys=True).encode()
            files[str(path.relative_to(home / "outbox"))] = hashlib.sha256(data).hexdigest()
    con = _open_read_only(str(home / "warehouse" / "crm.duckdb"))
    try:
        has = con.execute("select count(*) from information_schema.tables where table_schema = 'outbox'").fetchone()[0]
        deliveries = dict(con.execute("select as_of_date::varchar || '/' || action, count(*) from "
                                      "outbox.alert_deliveries group by 1 order by 1").fetchall()) if has else {}
    finally:
        con.close()
    return {"files": files, "deliveries": deliveries}


def _assert_whole(home: Path, point: str) -> None:
    """After a kill: one snapshot of one date (D1 or D2), the outbox folder complete or absent."""
    assert snapshot_date(home) in (D1, D2), point
    folder = home / "outbox" / D2
    if folder.exists():
        manifest = json.loads((folder / "_manifest.json").read_text())
        for info in manifest["actions"].values():
            for name in info["files"]:
                assert (folder / name).exists(), (point, name)


# --------------------------------------------------------------------------- shared runs

@pytest.fixture(scope="module")
def runs(tmp_path_factory, request):
    request.addfinalizer(lambda: [reader.stop_if_running() for reader in READERS])
    root = tmp_path_factory.mktemp("faults")
    started = time.monotonic()
    frames = generate_frames(CUSTOMERS, seed=SEED, as_of=D2)
    home_a = root / "a"
    _land(frames, home_a / "landing", 1)
    code, out = _run(home_a, D1)
    assert code == 0, out[-5000:]
    after_d1 = _copy_home(home_a, root / "after_d1")
    d1_tables = table_hashes(home_a / "publish" / "crm.duckdb")
    _land(frames, home_a / "landing", 2)
    _land(frames, after_d1 / "landing", 2)

    # D2 on home A: a BI reader holds the D1 snapshot open, another reader polls, a second run tries
    holder, poller = Reader(home_a, root, hold=True), Reader(home_a, root)
    first = _start(home_a, D2)
    lock = home_a / "run.lock"
    deadline = time.monotonic() + 600
    while not lock.exists() or not lock.read_text():
        assert first.poll() is None and time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.2)
    second_code, second_out = _run(home_a, D2)
    out_first, _ = first.communicate(timeout=3600)
    clean = {"code": first.returncode, "out": out_first, "second": (second_code, second_out),
             "holder": holder.result(), "poller": poller.result(),
             "tables": table_hashes(home_a / "publish" / "crm.duckdb"), "outbox": outbox_state(home_a),
             "d1_tables": d1_tables}
    assert clean["code"] == 0, out_first[-5000:]
    clean_seconds = time.monotonic() - started

    # home B: D2 killed at each point, rerun
    mode = os.environ.get("CRMTIER_FAULT_MODE", "chain")
    reader = Reader(after_d1, root)
    kills = []
    if mode == "each":
        for point in POINTS:
            home = _copy_home(after_d1, root / f"each-{point}")
            code, out = _run(home, D2, CRMTIER_FAULT_AT=point)
            _assert_whole(home, point)
            rerun = _run(home, D2)
            kills.append({"point": point, "code": code, "out": out, "rerun": rerun, "home": home,
                          "tables": table_hashes(home / "publish" / "crm.duckdb"), "outbox": outbox_state(home)})
    else:
        for point in POINTS:
            code, out = _run(after_d1, D2, CRMTIER_FAULT_AT=point)
            _assert_whole(after_d1, point)
            kills.append({"point": point, "code": code, "out": out, "home": after_d1,
                          "outbox_after": outbox_state(after_d1), "snapshot_after": snapshot_date(after_d1)})
        rerun = _run(after_d1, D2)
        kills[-1].update(rerun=rerun, tables=table_hashes(after_d1 / "publish" / "crm.duckdb"),
                         outbox=outbox_state(after_d1))
    faults = {"mode": mode, "kills": kills, "reader": reader.result(), "home": after_d1}
    seconds = time.monotonic() - started
    print(f"\n[faults] clean runs (D1, D2) {clean_seconds:.0f}s; with the {mode} kill runs {seconds:.0f}s",
          file=sys.__stderr__, flush=True)
    yield {"root": root, "home_a": home_a, "clean": clean, "faults": faults, "frames": frames,
           "clean_seconds": clean_seconds, "seconds": time.monotonic() - started}


# --------------------------------------------------------------------------- kill -9

def test_every_kill_is_a_kill(runs):
    for kill in runs["faults"]["kills"]:
        assert kill["code"] == -signal.SIGKILL, (kill["point"], kill["out"][-3000:])
        # the killed run got to its fault point
        stage = kill["point"].removeprefix("dbt_").removeprefix("gate_").split("_")[0]
        assert stage in kill["out"], (kill["point"], kill["out"][-3000:])


def test_rerun_after_kills_gives_what_a_clean_run_gives(runs):
    clean = runs["clean"]
    finished = [k for k in runs["faults"]["kills"] if "rerun" in k]
    assert finished
    for kill in finished:
        code, out = kill["rerun"]
        assert code == 0, (kill["point"], out[-5000:])
        assert kill["tables"] == clean["tables"], kill["point"]
        assert kill["outbox"] == clean["outbox"], kill["point"]
    assert clean["outbox"]["deliveries"], "the test data must raise alerts on D2"
    assert any(k.startswith("main.customer_history") for k in clean["tables"])


def test_kills_leave_nothing_half_done(runs):
    kills = {k["point"]: k for k in runs["faults"]["kills"]}
    if runs["faults"]["mode"] != "chain":
        return
    # until publish swapped in, the snapshot is D1's; from then on, D2's
    for point in POINTS:
        expected = D2 if POINTS.index(point) > POINTS.index("publish") else D1
        assert kills[point]["snapshot_after"] == expected, point
    # killed before the outbox swap: no folder, nothing recorded for D2
    assert not [f for f in kills["outbox"]["outbox_after"]["files"] if f.startswith(D2)]
    assert not [d for d in kills["outbox"]["outbox_after"]["deliveries"] if d.startswith(D2)]
    # killed between the swap and the commit: a whole folder, nothing recorded; the rerun counts all new
    assert [f for f in kills["outbox_commit"]["outbox_after"]["files"] if f.startswith(D2)]
    assert not [d for d in kills["outbox_commit"]["outbox_after"]["deliveries"] if d.startswith(D2)]


def test_next_run_cleans_and_gates_what_a_killed_run_left(runs):
    kills = {k["point"]: k for k in runs["faults"]["kills"]}
    if runs["faults"]["mode"] != "chain":
        return
    # the run after the ingest kill gates the loads that run committed but never gated
    assert "never gated" in kills["gate_raw"]["out"], kills["gate_raw"]["out"][-3000:]
    # the run after the publish kill removes the temporary snapshot; after the outbox kill its folder
    assert "left by a killed run" in kills["outbox"]["out"] and ".crm.duckdb." in kills["outbox"]["out"]
    assert "left by a killed run" in kills["outbox_commit"]["out"] and f".{D2}.tmp-" in kills["outbox_commit"]["out"]
    home = runs["faults"]["home"]
    assert not [p for p in home.rglob("*") if ".tmp" in p.name], list(home.rglob("*.tmp*"))
    assert not list((home / "warehouse").glob("*.wal"))


def test_no_reader_ever_sees_two_dates(runs):
    for name, result in (("poller during the fault runs", runs["faults"]["reader"]),
                         ("poller during the clean run", runs["clean"]["poller"]),
                         ("holder during the clean run", runs["clean"]["holder"])):
        assert result["queries"] > 0, name
        assert result["mixed"] == [], (name, result["mixed"])
        assert result["errors"] == 0, (name, result)
        assert set(result["seen"]) <= {D1, D2}, name
    if runs["faults"]["mode"] == "chain":
        assert set(runs["faults"]["reader"]["seen"]) == {D1, D2}


def test_a_reader_holding_the_snapshot_neither_blocks_nor_sees_the_new_date(runs):
    holder = runs["clean"]["holder"]
    assert runs["clean"]["code"] == 0  # the run published while the reader held the file
    assert holder["seen"] == [D1]      # the held file stays the D1 snapshot, whole
    assert snapshot_date(runs["home_a"]) == D2


# --------------------------------------------------------------------------- one run per home

def test_a_second_run_on_the_same_home_exits_at_once_saying_who_holds_it(runs):
    code, out = runs["clean"]["second"]
    assert code == 75, out
    assert "another run (pid " in out and f"as-of date {D2}" in out and "started at " in out, out
    assert "holds this home" in out


def test_a_warehouse_held_open_by_another_process_fails_ingest_naming_it(runs, tmp_path):
    home = _copy_home(runs["faults"]["home"], tmp_path / "held")
    analyst = subprocess.Popen([sys.executable, "-c",
                                "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
                                "print('open', flush=True); time.sleep(600)", str(home / "warehouse" / "crm.duckdb")],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert analyst.stdout.readline().strip() == "open"
        code, out = _run(home, D2, CRMTIER_WAREHOUSE_WAIT="3")
    finally:
        analyst.kill()
        analyst.wait()
    log = (home / "logs" / f"run-{D2}.log").read_text(errors="replace")
    assert code != 0
    assert f"held open by pid {analyst.pid}" in log, log[-4000:]
    assert "Close that connection" in log and "after 3s of retries" in log


# --------------------------------------------------------------------------- one snapshot, whole

def test_an_older_date_updates_history_but_not_the_current_snapshot(runs):
    home = runs["home_a"]
    before = table_hashes(home / "publish" / "crm.duckdb")
    code, out = _run(home, D1)
    assert code == 0, out[-5000:]
    assert f"{D1} is older than the published snapshot (as of {D2})" in out, out
    assert snapshot_date(home) == D2
    after = table_hashes(home / "publish" / "crm.duckdb")
    # the current tables stay D2's; history is republished (the same rows: D1 rebuilt the same)
    assert after == before
    con = _open_read_only(str(home / "publish" / "crm.duckdb"))
    try:
        row = con.execute("select history_republished_for::varchar, history_through::varchar from _snapshot").fetchone()
    finally:
        con.close()
    assert row == (D1, D2)


def test_the_snapshot_is_one_relocatable_file(runs, tmp_path):
    home = runs["home_a"]
    # the snapshot is crm.duckdb alone (no WAL, no temporary or sidecar file); the latest run report,
    # report.html, is published beside it (crmtier/report) and is not part of the database
    assert sorted(p.name for p in (home / "publish").iterdir()) == ["crm.duckdb", "report.html"]
    copy = tmp_path / "elsewhere.duckdb"
    shutil.copy(home / "publish" / "crm.duckdb", copy)
    moved = home / "publish-moved"
    (home / "publish").rename(moved)
    try:
        con = duckdb.connect(str(copy), read_only=True)
        try:
            assert con.execute("select count(*) from customer_history").fetchone()[0] >= 2 * CUSTOMERS - 10
            assert con.execute("select count(distinct as_of_date) from customer_history").fetchone()[0] == 2
            views = con.execute("select count(*) from information_schema.tables where table_type = 'VIEW'").fetchone()
            assert views[0] == 0  # no view reading files by path
        finally:
            con.close()
    finally:
        moved.rename(home / "publish")


# --------------------------------------------------------------------------- personal data

def _contact_values(frames) -> set[str]:
    customers = frames["customers"]
    values = set()
    for column in ("name", "phone", "email"):
        for value in customers[column]:
            if isinstance(value, str) and len(value.strip()) >= 2:
                values.add(value.strip())
                if column == "phone":
                    values.add("".join(ch for ch in value if ch.isdigit())[-11:])
    values |= set(LEAK.values())
    return {v for v in values if v}


def _needles(values: set[str]) -> list[bytes]:
    out = []
    for value in values:
        out.append(value.encode("utf-8"))
        escaped = json.dumps(value)[1:-1].encode()
        if escaped != out[-1]:
            out.append(escaped)
    return out


def test_contact_values_only_in_landing_warehouse_raw_staging_and_outbox(runs):
    home = runs["home_a"]
    values = _contact_values(runs["frames"])
    needles = _needles(values)
    allowed = [home / "landing", home / "outbox", home / "warehouse" / "crm.duckdb"]
    leaks = []
    scanned = 0
    for path in home.rglob("*"):
        if not path.is_file() or any(path == a or a in path.parents for a in allowed):
            continue
        data = path.read_bytes()
        scanned += 1
        found = [n.decode(errors="replace") for n in needles if n in data]
        if found:
            leaks.append((str(path.relative_to(home)), found[:3]))
    assert scanned > 20
    assert not leaks, leaks
    # the quarantined row with contacts is in the report, masked
    report = (home / "reports" / D2 / "quarantine.md").read_text(encoding="utf-8")
    assert "fixes_2.csv" in report and "missing_id" in report
    # inside the warehouse: only raw and staging (and the outbox's delivery records, no contacts)
    for db, allowed_schemas in ((home / "warehouse" / "crm.duckdb", {"raw", "staging"}),
                                (home / "publish" / "crm.duckdb", set())):
        con = _open_read_only(str(db))
        try:
            columns = con.execute("select table_schema, table_name, column_name from information_schema.columns "
                                  "where data_type = 'VARCHAR'").fetchall()
            con.execute("create temp table needles (v varchar)")
            con.executemany("insert into needles values (?)", [[v] for v in values])
            for schema, table, column in columns:
                if schema in allowed_schemas or schema == "temp":
                    continue
                hits = con.execute(f'select count(*) from "{schema}"."{table}" semi join needles '
                                   f'on "{column}" = needles.v').fetchone()[0]
                assert hits == 0, (db.name, schema, table, column)
        finally:
            con.close()


def test_every_file_written_is_owner_only(runs):
    home = runs["home_a"]
    loose = []
    for path in [home, *home.rglob("*")]:
        if path.is_symlink() or (home / "landing") in [path, *path.parents]:
            continue
        if path.stat().st_mode & 0o077:
            loose.append((str(path.relative_to(home)), oct(path.stat().st_mode & 0o777)))
    assert not loose, loose
    assert (home / "airflow" / "airflow.db").exists() and (home / "publish" / "crm.duckdb").exists()
