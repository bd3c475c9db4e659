"""The dbt seeds (dbt_project/seeds/*.csv) as Python reads them: labels and tier ranks are defined
there once, so a label or rank edited in a seed shows in dbt, the run report and the command line."""
from __future__ import annotations

import csv
from pathlib import Path

from crmtier.paths import DBT_PROJECT_DIR

SEEDS_DIR = DBT_PROJECT_DIR / "seeds"


def read_seed(name: str, seeds_dir: Path | None = None) -> list[dict]:
    with ((seeds_dir or SEEDS_DIR) / f"{name}.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def labels(seeds_dir: Path | None = None) -> dict[str, dict[str, str]]:
    """Bilingual labels per tier, status and segment ("High value 高价值"), in seed order."""
    status = {r["status"]: f"{r['label_en']} {r['label_zh']}" for r in read_seed("status_strategies", seeds_dir)}
    tiers = {r["tier"]: f"{r['label_en']} {r['label_zh']}" for r in tier_rules(seeds_dir)}
    tiers.setdefault("new", status.get("new", "new"))  # `new` customers are too young for a tier rule
    segments = {r["segment"]: f"{r['segment']} {r['segment_zh']}" for r in read_seed("rfm_segments", seeds_dir)}
    return {"tier": tiers, "status": status, "segment": segments}


def tier_rules(seeds_dir: Path | None = None) -> list[dict]:
    """Rows of seed tier_rules, best tier first (tier_rank 1 = VIP)."""
    return sorted(read_seed("tier_rules", seeds_dir), key=lambda row: int(row["tier_rank"]))


def tier_order(tiers, seeds_dir: Path | None = None) -> list[str]:
    """`tiers` sorted by the seed's tier_rank; tiers without a rank (`new`) last, by name."""
    rank = {row["tier"]: int(row["tier_rank"]) for row in tier_rules(seeds_dir)}
    return sorted(tiers, key=lambda tier: (tier not in rank, rank.get(tier, 0), tier))


def status_order(statuses, seeds_dir: Path | None = None) -> list[str]:
    """`statuses` in the order of seed status_strategies (active, dormant, churned, ...); others last."""
    order = [row["status"] for row in read_seed("status_strategies", seeds_dir)]
    return sorted(statuses, key=lambda status: (status not in order, order.index(status) if status in order else 0,
                                                status))
