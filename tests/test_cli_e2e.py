"""`crmtier generate`, `crmtier run` and `crmtier summary` through the command line: a real DagRun in a
fresh home, the summary in the order dbt published (tier_rank from the seed)."""
from __future__ import annotations

import re

import duckdb
import pytest
from click.testing import CliRunner

from crmtier.cli import cli, main
from tests.test_cli_summary import printed_names

pytestmark = pytest.mark.e2e

AS_OF = "2011-06-30"


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
    result = CliRunner().invoke(cli, ["summary", "--snapshot", str(snapshot)], catch_exceptions=False)
    assert result.exit_code == 0 and f"summary as of {AS_OF}" in result.output
    shown = printed_names(result.output, "tiers")
    assert set(shown) == set(tiers) and len(tiers) >= 3  # the run exercised several tiers
    # the order dbt published (tier_rank joined from the seed, 1 = vip); `new` (rank 0, no seed row) last
    ranked = sorted((t for t in shown if ranks[t]), key=lambda t: ranks[t])
    assert shown == [*ranked, "new"] and shown[0] == "vip"
    for tier, n in tiers.items():
        assert re.search(rf"^ {{4}}{tier} \(.*\) +{n:,d}  ", result.output, flags=re.M), tier


def test_the_run_keeps_what_lives_as_long_as_it_out_of_the_garbage_collector(cli_run):
    """Airflow's, dbt's and GX's modules, the parsed DAG and dbt's manifest are frozen (crmtier.long_lived):
    without it, collections walking them took ~15% of a small run's CPU."""
    log = (cli_run["home"] / "logs" / f"run-{AS_OF}.log").read_text()
    line = re.search(r"DagRun success.*garbage collector: (\d+) collections, [\d.]+s; ([\d,]+) objects frozen", log)
    assert line, log[-3000:]
    assert int(line.group(2).replace(",", "")) > 500_000  # ~750,000: the three frameworks and the manifest
