"""The `crmtier` command line without running anything: help texts with choices and defaults, --version,
usage errors and their exit code (the summary order: test_cli_summary.py; a real run: test_cli_e2e.py)."""
from __future__ import annotations

import importlib.metadata
import re

import click
import pytest
from click.testing import CliRunner

from crmtier.cli import cli, main
from crmtier.ingest.mappings import list_sources

pytestmark = pytest.mark.unit


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


