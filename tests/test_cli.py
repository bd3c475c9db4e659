"""The `crmtier` command line: help texts with choices and defaults, --version, usage errors and exit
codes, the summary in the rank order of the tier seed, and one real run (generate, run, summary) through it."""
from __future__ import annotations

import csv
import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import duckdb
import pytest
from click.testing import CliRunner

from crmtier import seeds
from crmtier.cli import cli, main
from crmtier.lock import home_lock
from crmtier.mappings import list_sources

AS_OF = "2011-06-30"
CRMTIER = str(Path(sys.executable).with_name("crmtier"))


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), prog_name="crmtier", catch_exceptions=False)


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_help_lists_every_subcommand_in_the_order_of_use():
    result = invoke("--help")
    assert result.exit_code == 0
    listed = re.findall(r"^  ([a-z-]+) {2,}", result.output.split("Commands:")[1], flags=re.M)
    assert listed == ["generate", "run", "retract", "summary", "explain", "check-model"]


@pytest.mark.parametrize("name", ["generate", "run", "retract", "summary", "explain", "check-model"])
def test_every_option_of_every_subcommand_is_described(name):
    command = cli.commands[name]
    text = one_line(invoke(name, "--help").output)
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{name} {param.opts[0]} has no help"
            assert param.opts[0] in text and one_line(param.help) in text, (name, param.opts[0])


@pytest.mark.parametrize(("name", "shown"), [
    ("generate", ["--customers INTEGER RANGE", "[default: 2000; x>=1]", "[default: 42]", "[default: 2026-11-01]",
                  "[default: 10.0; x>=0]", "[default: 20.0; x>=0]", "[default: generic]",
                  "[default: ($CRMTIER_HOME/landing)]"]),
    ("run", ["--as-of YYYY-MM-DD", "--from YYYY-MM-DD", "--to YYYY-MM-DD", "exiting with 75",
             "[default: ($CRMTIER_LANDING or $CRMTIER_HOME/landing)]"]),
    ("check-model", ["[default: 90; x>=1]", "End of the holdout window. [required]"]),
    ("explain", ["CUSTOMER_ID", "[default: ($CRMTIER_PUBLISH or $CRMTIER_HOME/publish/crm.duckdb)]"]),
])
def test_help_shows_defaults_and_types(name, shown):
    text = one_line(invoke(name, "--help").output)
    for part in shown:
        assert part in text, part


def test_source_choices_are_the_mapping_files():
    text = one_line(invoke("generate", "--help").output)
    assert f"--source [{'|'.join(list_sources())}]" in text
    assert {"generic", "fxiaoke", "zoho_crm", "salesforce", "hubspot"} <= set(list_sources())
    result = CliRunner().invoke(cli, ["generate", "--source", "sap"])
    assert result.exit_code == 2 and "'sap' is not one of" in result.output


def test_version_is_the_package_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"crmtier, version {importlib.metadata.version('crmtier')}"


def test_usage_errors_exit_2_with_the_reason(capsys):
    assert main(["run"]) == 2
    assert "run takes --as-of DATE, or --from DATE --to DATE (from <= to)" in capsys.readouterr().err
    assert main(["run", "--from", "2011-01-03", "--to", "2011-01-01"]) == 2
    assert main(["run", "--as-of", "2011-02-30"]) == 2
    assert "'2011-02-30' is not a date written YYYY-MM-DD" in capsys.readouterr().err
    assert main(["check-model"]) == 2
    assert "Missing option '--as-of'" in capsys.readouterr().err
    assert main(["--help"]) == 0


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


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """`crmtier generate` then `crmtier run` through the command line: a real DagRun in a fresh home."""
    home = tmp_path_factory.mktemp("cli") / "var"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRMTIER_HOME", str(home))
        for var in ("CRMTIER_LANDING", "CRMTIER_WAREHOUSE", "CRMTIER_PUBLISH", "AIRFLOW_HOME"):
            mp.delenv(var, raising=False)
        landing = home / "landing"
        generated = main(["generate", "--customers", "120", "--seed", "5", "--as-of", AS_OF, "--out", str(landing)])
        code = main(["run", "--as-of", AS_OF, "--landing", str(landing)])
        yield {"home": home, "generated": generated, "code": code}


def test_generate_run_summary_through_the_command_line(cli_run):
    home = cli_run["home"]
    assert cli_run["generated"] == 0
    assert cli_run["code"] == 0, (home / "logs" / f"run-{AS_OF}.log").read_text()[-4000:]
    snapshot = home / "publish" / "crm.duckdb"
    con = duckdb.connect(str(snapshot), read_only=True)
    try:
        tiers = dict(con.execute("select tier, count(*) from customer_tiers group by 1").fetchall())
        ranks = dict(con.execute("select tier, min(tier_rank) from customer_tiers group by 1").fetchall())
    finally:
        con.close()
    result = invoke("summary", "--snapshot", str(snapshot))
    assert result.exit_code == 0 and f"summary as of {AS_OF}" in result.output
    shown = printed_names(result.output, "tiers")
    assert set(shown) == set(tiers) and len(tiers) >= 3  # the run exercised several tiers
    # the order dbt published (tier_rank joined from the seed, 1 = vip); `new` (rank 0, no seed row) last
    ranked = sorted((t for t in shown if ranks[t]), key=lambda t: ranks[t])
    assert shown == [*ranked, "new"] and shown[0] == "vip"
    for tier, n in tiers.items():
        assert re.search(rf"^ {{4}}{tier} \(.*\) +{n:,d}  ", result.output, flags=re.M), tier
