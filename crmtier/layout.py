"""The canonical ("generic") export layout every source is normalised to, and its vocabularies.

The one definition: ingest (crmtier.ingest: row rules, the generic CSV reader, vendor mappings), the
sample generator (crmtier.samples) and the gates derive from these names; the places that cannot
import Python (dbt `accepted_values` in the staging yml, dbt_project.yml vars, the GX suites
expectations/suites/raw_*.json, the README's input table) are checked against them by
tests/test_vocabulary.py.
"""
from __future__ import annotations

ENTITIES = ("customers", "orders", "events")

COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id", "name", "gender", "birth_date", "phone", "email",
                  "occupation", "income", "province", "city", "created_at"),
    "orders": ("order_id", "customer_id", "order_time", "amount", "currency", "status"),
    "events": ("event_id", "customer_id", "event_time", "event_type", "channel"),
}

# Columns a file must have, whatever its source and format (a vendor mapping may require more,
# never less); a file missing one is rejected whole. customers.created_at is required: a customer
# without it cannot be placed in time (rows without it would all be quarantined).
REQUIRED: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id", "created_at"),
    "orders": ("order_id", "customer_id", "order_time", "amount", "status"),
    "events": ("customer_id", "event_time", "event_type"),
}

BUSINESS_KEY = {"customers": "customer_id", "orders": "order_id", "events": "event_id"}

ORDER_STATUSES = ("paid", "refunded", "cancelled")
GENDERS = ("M", "F")

# Amounts are exact decimals: at most AMOUNT_DECIMALS places (the warehouse keeps decimal(18, 4)),
# plain digits (no exponent, no "_", no thousands separator in the canonical layout).
AMOUNT_DECIMALS = 4
AMOUNT_PATTERN = r"[+-]?[0-9]{1,14}(\.[0-9]{1,4})?"
EVENT_TYPES = ("web_visit", "page_view", "login", "email_open", "email_click",
               "campaign_join", "social_interaction", "support_ticket")

# The closed vocabularies, by canonical column: a value outside is quarantined (status,
# event_type) or emptied and kept in `_extra` (gender).
VOCABULARIES: dict[str, tuple[str, ...]] = {
    "status": ORDER_STATUSES,
    "event_type": EVENT_TYPES,
    "gender": GENDERS,
}

# Metadata columns ingest adds to every raw row.
META_COLUMNS = ("_source", "_file_name", "_file_hash", "_row_number", "_load_id", "_load_seq",
                "_exported_at", "_extra")

# The earliest date the pipeline accepts: the DAG's start_date (any as-of date from here on runs;
# catchup is off, so the scheduler never backfills on its own) and the default lower bound of a
# plausible timestamp at ingest (older rows are quarantined as impossible dates).
EARLIEST_DATE = "1900-01-01"
