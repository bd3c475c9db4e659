"""One vocabulary: crmtier/layout.py defines the entities, columns, required columns, keys, order
statuses, event types and genders. Python derives from it; the places that cannot import it (dbt
staging yml and dbt_project.yml, the GX raw suites, the shipped generic mapping, the README's input
table, the generator's output) are checked here, so a disagreement fails a test."""
from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest
import yaml

from crmtier import layout
from crmtier.ingest import mappings
from crmtier.ingest.landing import IngestSettings, ingest_landing

pytestmark = pytest.mark.integration  # ingests into a DuckDB file

REPO = Path(__file__).resolve().parents[1]
SUITES = REPO / "expectations" / "suites"
ENTITY_VOCABULARIES = {"customers": ("gender",), "orders": ("status",), "events": ("event_type",)}


def _staging_models() -> dict[str, dict]:
    """Staging models by entity (`stg_<source>__customers` -> customers), whatever the source is named."""
    ymls = sorted(REPO.glob("dbt_project/models/staging/*/_*__models.yml"))
    assert ymls, "no staging models yml under dbt_project/models/staging/*/"
    models = {}
    for yml in ymls:
        for model in yaml.safe_load(yml.read_text(encoding="utf-8"))["models"]:
            entity = model["name"].rsplit("__", 1)[-1]
            if entity in layout.ENTITIES:
                models[entity] = model
    assert set(models) == set(layout.ENTITIES), f"staging models found for {sorted(models)}"
    return models


def _accepted_values(column: dict) -> list | None:
    for test in column.get("data_tests") or column.get("tests") or []:
        if isinstance(test, dict) and "accepted_values" in test:
            spec = test["accepted_values"]
            return (spec.get("arguments") or spec)["values"]
    return None


@pytest.mark.parametrize("entity", layout.ENTITIES)
def test_dbt_staging_accepted_values_are_the_layout_vocabularies(entity):
    columns = {c["name"]: c for c in _staging_models()[entity]["columns"]}
    for column in ENTITY_VOCABULARIES[entity]:
        named = [n for n in (column, f"{entity[:-1]}_{column}") if n in columns]  # staging: order_status
        assert named, f"staging {entity} has no column {column}"
        assert _accepted_values(columns[named[0]]) == list(layout.VOCABULARIES[column]), (entity, column)


def test_dbt_project_event_type_vars_are_the_layout_event_types():
    variables = yaml.safe_load((REPO / "dbt_project" / "dbt_project.yml").read_text(encoding="utf-8"))["vars"]
    assert variables["event_types"] == list(layout.EVENT_TYPES)
    assert set(variables["conversion_visit_event_types"]) <= set(layout.EVENT_TYPES)


def _expectations(entity: str) -> list[dict]:
    return json.loads((SUITES / f"raw_{entity}.json").read_text(encoding="utf-8"))["expectations"]


@pytest.mark.parametrize("entity", layout.ENTITIES)
def test_raw_suites_value_sets_and_not_null_columns_come_from_the_layout(entity):
    expectations = _expectations(entity)
    value_sets = {e["kwargs"]["column"]: e["kwargs"]["value_set"] for e in expectations
                  if e["type"] == "expect_column_values_to_be_in_set" and e["kwargs"]["column"] in layout.COLUMNS[entity]}
    for column, values in value_sets.items():
        assert column in layout.VOCABULARIES, f"raw_{entity}.json checks a vocabulary layout.py does not define: {column}"
        assert values == list(layout.VOCABULARIES[column]), (entity, column)
    # every closed vocabulary of a raw table the gate can see is checked there (gender is emptied, not quarantined)
    assert {c for c in ENTITY_VOCABULARIES[entity] if c != "gender"} <= set(value_sets)
    not_null = {e["kwargs"]["column"] for e in expectations if e["type"] == "expect_column_values_to_not_be_null"}
    assert not_null <= set(layout.REQUIRED[entity]), f"raw_{entity}.json requires {not_null - set(layout.REQUIRED[entity])}"


def test_generic_mapping_is_the_canonical_layout():
    generic = mappings.load_mapping("generic")
    for entity in layout.ENTITIES:
        em = generic.entity(entity)
        assert tuple(em.columns) == layout.COLUMNS[entity]
        assert tuple(em.required) == layout.REQUIRED[entity]
        assert em.id_column == layout.BUSINESS_KEY[entity]
        for column, spec in em.vocab_spec.items():
            assert tuple(spec) == layout.VOCABULARIES[column], (entity, column)


def _readme_input_table() -> dict[str, tuple[list[str], list[str], str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    rows = {}
    for entity, columns, values in re.findall(r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \|$", text, re.M):
        if entity in layout.ENTITIES:
            names = [c.strip().strip("*") for c in columns.split(",")]
            required = [c.strip().strip("*") for c in columns.split(",") if c.strip().startswith("**")]
            rows[entity] = (names, required, values)
    return rows


def test_readme_input_table_lists_the_layout():
    rows = _readme_input_table()
    assert set(rows) == set(layout.ENTITIES)
    for entity, (names, required, values) in rows.items():
        assert tuple(names) == layout.COLUMNS[entity], entity
        assert tuple(required) == layout.REQUIRED[entity], entity
        for column in ENTITY_VOCABULARIES[entity]:
            written = re.search(rf"\b{column} ([^;|]+)", values)
            assert written, f"README input table: {entity} does not list the {column} values"
            assert re.findall(r"`([^`]+)`", written.group(1)) == list(layout.VOCABULARIES[column]), (entity, column)


def test_generator_writes_the_layout():
    from crmtier.samples.generate import generate_frames

    frames = generate_frames(40, seed=7, as_of="2011-06-30", bad_rows=False)
    for entity in layout.ENTITIES:
        assert tuple(frames[entity].columns) == layout.COLUMNS[entity]
        for column in ENTITY_VOCABULARIES[entity]:
            written = set(frames[entity][column]) - {""}
            assert written and written <= set(layout.VOCABULARIES[column]), (entity, column, written)
    assert set(frames["orders"]["status"]) == set(layout.ORDER_STATUSES) or len(frames["orders"]) < 50


# --- the created_at rule: one outcome whatever the file format ------------------------------------

def _write_xlsx(path: Path, header: list[str], rows: list[list[str]]) -> None:
    from openpyxl import Workbook

    path.parent.mkdir(parents=True, exist_ok=True)
    book = Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    book.save(path)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_customers_without_created_at_are_rejected_whole_as_csv_and_as_xlsx(tmp_path, suffix):
    """layout.REQUIRED needs customers.created_at: a two-row file without it is rejected whole with
    the column named, never 'loaded' with every row quarantined, whether it is .csv or .xlsx."""
    header, data = ["customer_id", "name", "province"], [["C1", "张三", "广东"], ["C2", "李四", "浙江"]]
    path = tmp_path / "landing" / "generic" / "customers" / f"c{suffix}"
    if suffix == ".csv":
        path.parent.mkdir(parents=True)
        path.write_text("\n".join(",".join(r) for r in [header, *data]) + "\n", encoding="utf-8")
    else:
        _write_xlsx(path, header, data)
    db = tmp_path / "wh.duckdb"
    (outcome,) = ingest_landing(db, tmp_path / "landing", IngestSettings(settle_seconds=0)).files
    assert (outcome.status, outcome.rows_loaded, outcome.rows_quarantined) == ("rejected", 0, 0)
    assert "created_at" in outcome.message
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("select count(*) from raw.customers").fetchone()[0] == 0
        assert con.execute("select count(*) from raw.quarantine").fetchone()[0] == 0
    finally:
        con.close()


@pytest.mark.parametrize("source", mappings.list_sources())
def test_every_shipped_mapping_requires_at_least_the_layout(source):
    """A vendor mapping may require more than layout.REQUIRED, never less (created_at when it maps it):
    a vendor export without created_at is rejected whole like a generic one."""
    mapping = mappings.load_mapping(source)
    for entity in layout.ENTITIES:
        if entity not in mapping.entities:
            continue
        em = mapping.entity(entity)
        needed = [r for r in layout.REQUIRED[entity] if r != "created_at" or r in em.columns]
        assert set(needed) <= set(em.required), (source, entity, em.required)


def test_a_mapping_requiring_less_than_the_layout_is_refused(tmp_path):
    generic = (mappings.PACKAGED_SOURCES_DIR / "generic.yaml").read_text(encoding="utf-8")
    narrowed = generic.replace("  customers:\n", "  customers:\n    required: [customer_id]\n", 1)
    assert narrowed != generic
    path = tmp_path / "generic.yaml"
    path.write_text(narrowed, encoding="utf-8")
    with pytest.raises(mappings.MappingError, match=r"customers\.required.*leaves out \['created_at'\]"):
        mappings.load_mapping_file(path)


def test_a_vendor_customers_export_without_its_create_date_is_rejected_whole(tmp_path):
    """The same rule through a vendor mapping: HubSpot contacts without `Create Date` (its created_at)."""
    path = tmp_path / "landing" / "hubspot" / "customers" / "contacts.csv"
    path.parent.mkdir(parents=True)
    path.write_text("Record ID,First Name,Last Name\n101,San,Zhang\n102,Si,Li\n", encoding="utf-8")
    (outcome,) = ingest_landing(tmp_path / "wh.duckdb", tmp_path / "landing", IngestSettings(settle_seconds=0)).files
    assert (outcome.status, outcome.rows_loaded, outcome.rows_quarantined) == ("rejected", 0, 0)
    assert "created_at" in outcome.message or "Create Date" in outcome.message
