"""Tests of the sample-data generator (crmtier/samples/generate.py).

Every rule is checked on the CSV files as written, parsed independently with pandas.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmtier.samples import generate as gen

pytestmark = pytest.mark.unit

AS_OF = "2026-11-01"
AS_OF_END = pd.Timestamp(AS_OF) + pd.Timedelta(hours=23, minutes=59, seconds=59)
N = 2_000

EXPECTED_COLUMNS = {
    "customers": ["customer_id", "name", "gender", "birth_date", "phone", "email",
                  "occupation", "income", "province", "city", "created_at"],
    "orders": ["order_id", "customer_id", "order_time", "amount", "currency", "status"],
    "events": ["event_id", "customer_id", "event_time", "event_type", "channel"],
}
STATUSES = {"paid", "refunded", "cancelled"}
EVENT_TYPES = {"web_visit", "page_view", "login", "email_open", "email_click", "campaign_join",
               "social_interaction", "support_ticket"}
CHANNELS = {"web", "app", "email", "wechat", "phone"}
TS_FORMAT = "%Y-%m-%d %H:%M:%S"
TS_RE = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"
AMOUNT_RE = r"^\d+\.\d{2}$"


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")


def _digest(paths: dict[str, Path]) -> dict[str, str]:
    return {e: hashlib.sha256(p.read_bytes()).hexdigest() for e, p in paths.items()}


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """One 2,000-customer export, written with `generate`, plus the reported bad-row counts."""
    out = tmp_path_factory.mktemp("gen")
    paths = gen.generate(out, customers=N, seed=7, as_of=AS_OF)
    frames = {e: _read(p) for e, p in paths.items()}
    bad = gen.bad_row_counts(N, seed=7, as_of=AS_OF)
    return {"dir": out, "paths": paths, "frames": frames, "bad": bad}


def _ts(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, format=TS_FORMAT, errors="coerce")


def _defects_orders(orders: pd.DataFrame) -> pd.DataFrame:
    """One boolean column per bad-row kind for orders."""
    amount = orders["amount"]
    return pd.DataFrame({
        "non_numeric_amount": pd.to_numeric(amount, errors="coerce").isna(),
        "negative_amount": amount.str.match(r"^-\d+\.\d{2}$"),
        "unknown_status": ~orders["status"].isin(STATUSES),
        "empty_customer_id": orders["customer_id"] == "",
        "unparseable_order_time": _ts(orders["order_time"]).isna(),
    })


def _defects_events(events: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "unknown_event_type": ~events["event_type"].isin(EVENT_TYPES),
        "empty_customer_id": events["customer_id"] == "",
    })


def _defects_customers(customers: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "empty_customer_id": customers["customer_id"] == "",
        "duplicate_row": customers.duplicated(keep="first"),
    })


DEFECTS = {"customers": _defects_customers, "orders": _defects_orders, "events": _defects_events}


def _valid_rows(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {e: frames[e][~DEFECTS[e](frames[e]).any(axis=1)] for e in gen.ENTITIES}


# --- determinism --------------------------------------------------------------------------------
def test_same_arguments_give_identical_bytes(tmp_path):
    a = gen.generate(tmp_path / "a", customers=300, seed=11)
    b = gen.generate(tmp_path / "b", customers=300, seed=11)
    assert _digest(a) == _digest(b)
    c = gen.generate(tmp_path / "c", customers=300, seed=12)
    assert all(_digest(a)[e] != _digest(c)[e] for e in gen.ENTITIES)


def test_generate_equals_frames_written(tmp_path):
    streamed = gen.generate(tmp_path / "s", customers=300, seed=5, history_days=400,
                            orders_per_customer=4, events_per_customer=9)
    frames = gen.generate_frames(300, seed=5, history_days=400, orders_per_customer=4,
                                 events_per_customer=9)
    written = gen.write_generic(frames, tmp_path / "w", file_stem="export")
    assert _digest(streamed) == _digest(written)
    for entity in gen.ENTITIES:   # the frames hold exactly the strings of the file
        pd.testing.assert_frame_equal(_read(written[entity]), frames[entity],
                                      check_dtype=False)


def test_layout_and_file_stem(tmp_path):
    paths = gen.write_generic(gen.generate_frames(120, seed=1), tmp_path, file_stem="crm_2026")
    for entity in gen.ENTITIES:
        assert paths[entity] == tmp_path / "generic" / entity / "crm_2026.csv"
        assert paths[entity].is_file()


# --- format -------------------------------------------------------------------------------------
def test_headers_exact(export):
    for entity, path in export["paths"].items():
        raw = path.read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf"), "no BOM"
        raw.decode("utf-8")
        header = raw.split(b"\n", 1)[0].decode()
        assert header.split(",") == EXPECTED_COLUMNS[entity]
        assert list(export["frames"][entity].columns) == EXPECTED_COLUMNS[entity]
        assert b"\r" not in raw


def test_columns_match_the_canonical_layout():
    layout = pytest.importorskip("crmtier.layout")
    for entity in gen.ENTITIES:
        assert list(layout.COLUMNS[entity]) == EXPECTED_COLUMNS[entity]


def test_empty_export_has_headers_only(tmp_path):
    paths = gen.generate(tmp_path, customers=0)
    for entity, path in paths.items():
        assert path.read_text(encoding="utf-8").splitlines() == [",".join(EXPECTED_COLUMNS[entity])]


# --- validity of the normal rows ---------------------------------------------------------------
def test_customers_valid(export):
    c = _valid_rows(export["frames"])["customers"]
    assert len(c) >= N
    assert c["customer_id"].str.match(r"^C\d{7}$").all()
    assert c["customer_id"].is_unique
    assert (c["name"].str.len() >= 2).all()
    assert set(c["gender"]) <= {"M", "F", ""}
    birth = c["birth_date"]
    assert birth.str.match(r"^(\d{4}-\d{2}-\d{2})?$").all()
    age = (pd.Timestamp(AS_OF) - pd.to_datetime(birth[birth != ""], format="%Y-%m-%d")).dt.days / 365.25
    assert age.between(17.9, 100).all()
    assert c["phone"].str.match(r"^(\+86 1\d{2} \d{4} \d{4})?$").all()
    assert c["email"].str.match(r"^([a-z0-9.]+@[a-z0-9.]+\.[a-z]+)?$").all()
    assert (c["occupation"] != "").all() and c["occupation"].nunique() <= 20
    assert c["occupation"].str.match(r"^[a-z ]+$").all()
    assert c["income"].str.match(r"^(\d+)?$").all()
    assert (pd.to_numeric(c["income"][c["income"] != ""]) > 0).all()
    cjk = r"^[\u4e00-\u9fff]+$"
    assert c["province"].str.match(cjk).all() and c["city"].str.match(cjk).all()
    created = _ts(c["created_at"])
    assert c["created_at"].str.match(TS_RE).all() and created.notna().all()
    assert (created <= AS_OF_END).all()
    assert (created >= pd.Timestamp(AS_OF) - pd.Timedelta(days=730)).all()
    # every field that may be empty is sometimes empty, sometimes not (a real mix)
    for col in ("gender", "birth_date", "phone", "income"):
        share = (c[col] == "").mean()
        assert 0.0 < share < 0.5, col


def test_orders_valid(export):
    valid = _valid_rows(export["frames"])
    o, c = valid["orders"], valid["customers"]
    assert o["order_id"].is_unique and export["frames"]["orders"]["order_id"].is_unique
    assert o["amount"].str.match(AMOUNT_RE).all()
    assert (pd.to_numeric(o["amount"]) > 0).all()
    assert set(o["currency"]) <= {"CNY", "USD"}
    assert set(o["status"]) <= STATUSES
    assert o["order_time"].str.match(TS_RE).all()
    t = _ts(o["order_time"])
    assert (t <= AS_OF_END).all()
    assert o["customer_id"].isin(c["customer_id"]).all()
    created = o["customer_id"].map(c.set_index("customer_id")["created_at"]).pipe(_ts)
    assert (t >= created).all()


def test_events_valid(export):
    valid = _valid_rows(export["frames"])
    e, c = valid["events"], valid["customers"]
    assert export["frames"]["events"]["event_id"].is_unique
    assert set(e["event_type"]) == EVENT_TYPES
    assert set(e["channel"]) <= CHANNELS
    assert e["event_time"].str.match(TS_RE).all()
    t = _ts(e["event_time"])
    assert t.notna().all() and (t <= AS_OF_END).all()
    assert e["customer_id"].isin(c["customer_id"]).all()
    created = e["customer_id"].map(c.set_index("customer_id")["created_at"]).pipe(_ts)
    assert (t >= created).all()


def test_other_as_of_and_window(tmp_path):
    paths = gen.generate(tmp_path, customers=200, seed=3, as_of="2025-03-15", history_days=90)
    f = {e: _read(p) for e, p in paths.items()}
    valid = _valid_rows(f)
    end = pd.Timestamp("2025-03-15 23:59:59")
    start = pd.Timestamp("2025-03-15") - pd.Timedelta(days=90)
    for entity, col in (("customers", "created_at"), ("orders", "order_time"), ("events", "event_time")):
        t = _ts(valid[entity][col])
        assert t.notna().all() and (t <= end).all() and (t >= start).all(), entity
        assert (t.dt.date == end.date()).any() or entity == "customers" or len(t) < 50


# --- bad rows -----------------------------------------------------------------------------------
def test_bad_row_counts_match_files(export):
    frames, bad = export["frames"], export["bad"]
    assert {e: set(k) for e, k in bad.items()} == {e: set(gen.BAD_ROW_KINDS[e]) for e in gen.ENTITIES}
    for entity in gen.ENTITIES:
        defects = DEFECTS[entity](frames[entity])
        assert (defects.sum(axis=1) <= 1).all(), f"{entity}: a bad row has more than one defect"
        found = defects.sum().astype(int).to_dict()
        assert found == bad[entity], entity
        assert all(count >= 1 for count in bad[entity].values()), entity
    for entity in ("orders", "events"):
        share = sum(bad[entity].values()) / len(frames[entity])
        assert share < 0.001, entity


def test_duplicate_customer_row_is_exact(export):
    c = export["frames"]["customers"]
    ids = c["customer_id"][c["customer_id"] != ""]
    repeated = ids[ids.duplicated()]
    assert len(repeated) == export["bad"]["customers"]["duplicate_row"]
    for cid in repeated:
        rows = c[c["customer_id"] == cid]
        assert len(rows.drop_duplicates()) == 1


def test_bad_values_literal(export):
    o, e = export["frames"]["orders"], export["frames"]["events"]
    assert (o["amount"] == "abc").sum() == export["bad"]["orders"]["non_numeric_amount"]
    assert (o["status"] == "shipped").sum() == export["bad"]["orders"]["unknown_status"]
    assert (o["order_time"] == "not-a-date").sum() == export["bad"]["orders"]["unparseable_order_time"]
    assert (~e["event_type"].isin(EVENT_TYPES)).sum() == export["bad"]["events"]["unknown_event_type"]


def test_frames_report_bad_rows_and_no_bad_rows_when_off():
    frames = gen.generate_frames(150, seed=9)
    assert frames["_bad_rows"] == gen.bad_row_counts(150, seed=9)
    clean = gen.generate_frames(150, seed=9, bad_rows=False)
    assert all(v == 0 for kinds in clean["_bad_rows"].values() for v in kinds.values())
    for entity in gen.ENTITIES:
        assert not DEFECTS[entity](clean[entity]).any().any(), entity
        expected = len(frames[entity]) - sum(frames["_bad_rows"][entity].values())
        assert len(clean[entity]) == expected, entity


# --- realism ------------------------------------------------------------------------------------
def _last_interaction_days(valid: dict[str, pd.DataFrame]) -> pd.Series:
    o, e, c = valid["orders"], valid["events"], valid["customers"]
    times = pd.concat([
        pd.DataFrame({"customer_id": o["customer_id"], "t": _ts(o["order_time"])}),
        pd.DataFrame({"customer_id": e["customer_id"], "t": _ts(e["event_time"])}),
    ])
    last = times.groupby("customer_id")["t"].max().reindex(c["customer_id"])
    return (pd.Timestamp(AS_OF) - last.dt.normalize()).dt.days


def test_status_mix_has_all_three_bands(export):
    days = _last_interaction_days(_valid_rows(export["frames"]))
    n = len(days)
    active = (days <= 30).sum() / n
    dormant = ((days > 30) & (days <= 180)).sum() / n
    churned = (days > 180).sum() / n
    assert active >= 0.10 and dormant >= 0.10 and churned >= 0.10, (active, dormant, churned)
    assert 0.2 <= active <= 0.45, active
    never = days.isna().mean()
    assert 0.0 < never < 0.1, never   # a few customers never interact at all


def test_volumes_follow_the_arguments(export):
    valid = _valid_rows(export["frames"])
    assert len(valid["orders"]) / N == pytest.approx(10.0, rel=0.15)
    assert len(valid["events"]) / N == pytest.approx(20.0, rel=0.15)
    small = gen.generate_frames(500, seed=2, orders_per_customer=3, events_per_customer=5,
                                bad_rows=False)
    assert len(small["orders"]) / 500 == pytest.approx(3.0, rel=0.2)
    assert len(small["events"]) / 500 == pytest.approx(5.0, rel=0.2)


def test_skewed_spend_and_order_counts(export):
    valid = _valid_rows(export["frames"])
    o, c = valid["orders"], valid["customers"]
    counts = o.groupby("customer_id").size().reindex(c["customer_id"], fill_value=0)
    no_orders = (counts == 0).mean()
    assert 0.05 <= no_orders <= 0.2, no_orders
    assert (counts == 1).mean() >= 0.15
    assert counts.max() >= 10 * counts.mean()
    spend = pd.to_numeric(o["amount"]).groupby(o["customer_id"]).sum()
    spend = spend.reindex(c["customer_id"], fill_value=0).sort_values(ascending=False)
    top = spend.head(len(spend) // 10).sum() / spend.sum()
    assert top >= 0.4, top    # the top 10 % of customers hold a big share of spend
    amount = pd.to_numeric(o["amount"])
    assert amount.quantile(0.99) > 5 * amount.median()     # long right tail of order values


def test_order_mix_and_seasonality(export):
    o = _valid_rows(export["frames"])["orders"]
    share = o["status"].value_counts(normalize=True)
    assert 0.82 <= share["paid"] <= 0.93
    assert 0.04 <= share["refunded"] <= 0.10
    assert 0.025 <= share["cancelled"] <= 0.08
    cur = o["currency"].value_counts(normalize=True)
    assert cur["CNY"] > 0.9 and cur.get("USD", 0) > 0
    t = _ts(o["order_time"])
    per_day = t.dt.normalize().value_counts()
    singles_day = per_day[per_day.index.strftime("%m-%d") == "11-11"].mean()
    assert singles_day > 2 * per_day.mean()
    by_month = t.dt.strftime("%Y-%m").value_counts()
    assert by_month["2025-11"] > 1.2 * by_month["2025-10"]
    assert by_month["2025-12"] > by_month["2025-10"]


def test_events_skewed_and_correlated(export):
    valid = _valid_rows(export["frames"])
    e, o, c = valid["events"], valid["orders"], valid["customers"]
    top2 = set(e["event_type"].value_counts().index[:2])
    assert top2 == {"page_view", "web_visit"}
    ev = e.groupby("customer_id").size().reindex(c["customer_id"], fill_value=0)
    orders = o.groupby("customer_id").size().reindex(c["customer_id"], fill_value=0)
    corr = np.corrcoef(np.log1p(ev), np.log1p(orders))[0, 1]
    assert corr > 0.3, corr


def test_recent_signups(export):
    c = _valid_rows(export["frames"])["customers"]
    created = _ts(c["created_at"])
    recent = (created > pd.Timestamp(AS_OF) - pd.Timedelta(days=30)).mean()
    assert 0.01 <= recent <= 0.06, recent
    span_days = (created.max() - created.min()).days
    assert span_days > 700


def test_a_20k_customer_simulation_runs():
    """A 20k-customer run (~600k rows); its speed is a bench figure (make bench), not a test."""
    sim = gen._simulate(20_000, 1, AS_OF, 730, 10.0, 20.0, True)
    assert len(sim["customers"]["bad"]) > 20_000 and len(sim["orders"]["bad"]) > 100_000
