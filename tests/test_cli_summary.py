"""`crmtier summary` in the rank order of the tier seed, labelled by the seeds (a snapshot file written
here, seeds copied and edited), and the exit code 75 of `crmtier run` when another run holds the home."""
from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from crmtier import seeds
from crmtier.cli import cli
from crmtier.lock import home_lock

pytestmark = pytest.mark.integration

CRMTIER = str(Path(sys.executable).with_name("crmtier"))


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), prog_name="crmtier", catch_exceptions=False)


def test_a_held_home_exits_75_from_the_installed_command(crm_home, tmp_path):
    lock = home_lock(crm_home).acquire("1997-06-30")
    try:
        proc = subprocess.run([CRMTIER, "run", "--as-of", "1997-07-01", "--landing", str(tmp_path / "landing")],
                              capture_output=True, text=True, timeout=120)
    finally:
        lock.release()
    assert proc.returncode == 75, proc.stderr
    assert "[crmtier] not started: another run" in proc.stderr and "as-of date 1997-06-30" in proc.stderr


def write_snapshot(path: Path, tiers: dict[str, int], status: dict[str, int]) -> Path:
    """A snapshot file with the tables `summarize` reads (as publish writes them)."""
    con = duckdb.connect(str(path))
    try:
        con.execute("create table _snapshot as select date '1997-06-30' as as_of_date, "
                    "cast(null as date) as history_republished_for")
        con.execute("create table customer_tiers (customer_id varchar, tier varchar)")
        con.execute("create table customer_status (customer_id varchar, status varchar)")
        for table, column, counts in (("customer_tiers", "tier", tiers), ("customer_status", "status", status)):
            rows = [(f"{value}-{i}", value) for value, n in counts.items() for i in range(n)]
            con.executemany(f"insert into {table} (customer_id, {column}) values (?, ?)", rows)
    finally:
        con.close()
    return path


def printed_names(output: str, section: str) -> list[str]:
    block = output.split(f"  {section}")[1].split(":\n", 1)[1]
    return re.findall(r"^ {4}(\S+)", re.split(r"\n  (?=\S)", block)[0], flags=re.M)


def copy_seeds(tmp_path: Path, edit) -> Path:
    """A copy of the seeds folder with tier_rules.csv rows changed by `edit`."""
    folder = tmp_path / "seeds"
    shutil.copytree(seeds.SEEDS_DIR, folder)
    path = folder / "tier_rules.csv"
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    fields = list(rows[0])
    rows = [edit(dict(row)) for row in rows]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        writer.writerows(rows)
    return folder


def test_summary_lists_tiers_in_the_seed_rank_order_with_seed_labels(tmp_path, monkeypatch):
    # alphabetical (high, low, medium, new, vip) and count order both differ from the rank order
    snapshot = write_snapshot(tmp_path / "crm.duckdb", {"high": 3, "low": 9, "medium": 5, "new": 2, "vip": 1},
                              {"churned": 4, "active": 6, "dormant": 5, "prospect": 3, "new": 2})
    ranked = [row["tier"] for row in sorted(seeds.read_seed("tier_rules"), key=lambda r: int(r["tier_rank"]))]
    assert ranked[0] == "vip"
    result = invoke("summary", "--snapshot", str(snapshot))
    assert result.exit_code == 0
    assert printed_names(result.output, "tiers") == [*ranked, "new"]
    assert printed_names(result.output, "status") == [r["status"] for r in seeds.read_seed("status_strategies")]
    labels = seeds.labels()
    assert f"vip ({labels['tier']['vip']})" in result.output
    assert f"dormant ({labels['status']['dormant']})" in result.output

    # the seed decides: reversed ranks and an edited label show in the next summary
    def reverse(row):
        row["tier_rank"] = str(len(ranked) + 1 - int(row["tier_rank"]))
        if row["tier"] == "medium":
            row["label_zh"] = "中等价值客户"
        return row

    monkeypatch.setattr(seeds, "SEEDS_DIR", copy_seeds(tmp_path, reverse))
    result = invoke("summary", "--snapshot", str(snapshot))
    assert printed_names(result.output, "tiers") == [*reversed(ranked), "new"]
    assert "medium (Medium value 中等价值客户)" in result.output


