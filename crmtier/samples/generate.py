"""Deterministic, fast, realistic sample CRM exports in the generic layout.

    generate_frames(customers, seed=42, as_of="2026-11-01", history_days=730,
                    orders_per_customer=10.0, events_per_customer=20.0, bad_rows=True)
        -> {"customers", "orders", "events": pandas DataFrames of strings, "_bad_rows": counts}
    write_generic(frames, out_dir, file_stem="export") -> {entity: <out_dir>/generic/<entity>/<stem>.csv}
    generate(out_dir, customers, seed=42, **kw) -> same paths (streams; byte-identical files)

Same arguments give byte-identical files (NumPy PCG64 streams per component, sorts on unique
keys, DuckDB writing with insertion order preserved). 1M customers (~10M orders, ~20M events)
take well under a minute on 2 cores.

The simulation is fully vectorised NumPy; string formatting and CSV writing run in DuckDB.

Model (per customer):
- ``created_at`` spread over the history window with mild growth and seasonality, ~3 % within the
  last 30 days before ``as_of``; customer ids are assigned in order of creation.
- segments: ~3 % "ghosts" (no orders, no events), ~7 % prospects (events, never buy), the rest buy;
  ~25 % of buyers are one-time buyers, the others get ``1 + Poisson`` orders with a gamma-distributed
  purchase rate times their exposure (heavy tail: a few customers place most orders).
- a "death" time after which the customer stops ordering; after it only rare engagement (mostly
  marketing e-mail opens) remains, so at ``as_of`` there is a real mix of active, dormant and lapsed.
- order values lognormal around a customer spend level (correlated with income); order times follow
  a seasonal intensity (11.11, 12.12, 618, the weeks before Spring Festival, weekends, time of day).
- events: engagement rate correlated with the purchase rate, plus a page view shortly before many
  orders.

Bad rows (``bad_rows=True``) are extra rows, each with exactly one defect, listed in
``BAD_ROW_KINDS``; ``generate_frames`` reports how many of each it injected under ``"_bad_rows"``.
All other rows are valid.
"""
from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crmtier.layout import COLUMNS, ENTITIES, EVENT_TYPES, ORDER_STATUSES

ORDER_STATUS_P = (0.88, 0.07, 0.05)  # in ORDER_STATUSES order
CURRENCIES = ("CNY", "USD")
CHANNELS = ("web", "app", "email", "wechat", "phone")
OCCUPATIONS = ("engineer", "teacher", "doctor", "nurse", "sales", "manager", "accountant",
               "designer", "civil servant", "business owner", "freelancer", "worker",
               "student", "retired")

# Kinds of bad rows per entity, in the order their codes are numbered (code = index + 1).
BAD_ROW_KINDS: dict[str, tuple[str, ...]] = {
    "customers": ("empty_customer_id", "duplicate_row"),
    "orders": ("non_numeric_amount", "negative_amount", "unknown_status", "empty_customer_id",
               "unparseable_order_time"),
    "events": ("unknown_event_type", "empty_customer_id"),
}
# The literal values the bad rows carry.
BAD_VALUES = {
    "non_numeric_amount": "abc",
    "unknown_status": "shipped",
    "unparseable_order_time": "not-a-date",
    "unknown_event_type": "app_push_open",
}
BAD_ROWS_PER_NORMAL_ROWS = 20_000   # one bad row of each kind per this many normal rows ...
BAD_ROWS_MAX_PER_KIND = 50          # ... capped (a handful), and at least one when the entity has rows

# --- vocabularies -------------------------------------------------------------------------------
_SURNAMES = (  # (hanzi, pinyin), roughly in order of frequency
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
    ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"), ("徐", "xu"), ("孙", "sun"),
    ("马", "ma"), ("朱", "zhu"), ("胡", "hu"), ("郭", "guo"), ("何", "he"), ("高", "gao"),
    ("林", "lin"), ("罗", "luo"), ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"),
    ("唐", "tang"), ("许", "xu"), ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"),
    ("彭", "peng"), ("曾", "zeng"), ("肖", "xiao"), ("田", "tian"), ("董", "dong"), ("袁", "yuan"),
    ("潘", "pan"), ("于", "yu"), ("蒋", "jiang"), ("蔡", "cai"), ("余", "yu"), ("杜", "du"),
    ("叶", "ye"), ("程", "cheng"), ("苏", "su"), ("魏", "wei"), ("吕", "lv"), ("丁", "ding"),
    ("任", "ren"), ("沈", "shen"), ("欧阳", "ouyang"), ("司马", "sima"),
)
_GIVEN_M = (
    ("伟", "wei"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"),
    ("杰", "jie"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("浩", "hao"), ("鹏", "peng"),
    ("宇", "yu"), ("斌", "bin"), ("俊", "jun"), ("峰", "feng"), ("辉", "hui"), ("建", "jian"),
    ("华", "hua"), ("刚", "gang"), ("志", "zhi"), ("文", "wen"), ("博", "bo"), ("晨", "chen"),
    ("凯", "kai"), ("鑫", "xin"), ("宁", "ning"), ("轩", "xuan"), ("国", "guo"), ("平", "ping"),
)
_GIVEN_F = (
    ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"), ("艳", "yan"),
    ("娟", "juan"), ("霞", "xia"), ("秀", "xiu"), ("婷", "ting"), ("雪", "xue"), ("慧", "hui"),
    ("玲", "ling"), ("倩", "qian"), ("琳", "lin"), ("颖", "ying"), ("欣", "xin"), ("悦", "yue"),
    ("佳", "jia"), ("怡", "yi"), ("梅", "mei"), ("萍", "ping"), ("红", "hong"), ("晶", "jing"),
    ("璐", "lu"), ("雯", "wen"), ("思", "si"), ("涵", "han"), ("月", "yue"), ("兰", "lan"),
)
_EMAIL_DOMAINS = ("163.com", "126.com", "sina.com", "gmail.com", "outlook.com", "foxmail.com",
                  "hotmail.com", "yeah.net")
_EMAIL_DOMAIN_P = (0.30, 0.16, 0.08, 0.14, 0.12, 0.10, 0.05, 0.05)
_MOBILE_PREFIXES = (130, 131, 132, 133, 135, 136, 137, 138, 139, 150, 151, 152, 155, 156, 157,
                    158, 159, 166, 176, 177, 180, 181, 182, 183, 185, 186, 187, 188, 189, 191,
                    198, 199)
_OCCUPATION_P = (0.14, 0.07, 0.04, 0.04, 0.10, 0.09, 0.06, 0.05, 0.06, 0.06, 0.07, 0.13,
                 0.05, 0.04)
_OCCUPATION_INCOME = (180_000, 90_000, 160_000, 80_000, 100_000, 200_000, 110_000, 120_000,
                      110_000, 250_000, 90_000, 65_000, 15_000, 50_000)
_LOCATIONS = (  # (province, city, weight)
    ("广东", "深圳", 9), ("广东", "广州", 9), ("广东", "东莞", 4), ("广东", "佛山", 4),
    ("上海", "上海", 11), ("北京", "北京", 10), ("浙江", "杭州", 7), ("浙江", "宁波", 3),
    ("浙江", "温州", 2), ("江苏", "南京", 5), ("江苏", "苏州", 6), ("江苏", "无锡", 2),
    ("四川", "成都", 7), ("湖北", "武汉", 5), ("重庆", "重庆", 5), ("天津", "天津", 4),
    ("福建", "厦门", 3), ("福建", "福州", 3), ("山东", "青岛", 3), ("山东", "济南", 3),
    ("河南", "郑州", 4), ("湖南", "长沙", 4), ("陕西", "西安", 4), ("辽宁", "沈阳", 2),
    ("辽宁", "大连", 2), ("安徽", "合肥", 3), ("云南", "昆明", 2), ("黑龙江", "哈尔滨", 2),
    ("吉林", "长春", 1), ("广西", "南宁", 2), ("江西", "南昌", 2), ("河北", "石家庄", 2),
    ("山西", "太原", 1), ("贵州", "贵阳", 1), ("海南", "海口", 1), ("内蒙古", "呼和浩特", 1),
    ("新疆", "乌鲁木齐", 1), ("甘肃", "兰州", 1), ("香港", "香港", 1),
)
# Spring Festival (Chinese New Year's Day), Gregorian dates.
_SPRING_FESTIVAL = (
    "2010-02-14", "2011-02-03", "2012-01-23", "2013-02-10", "2014-01-31", "2015-02-19",
    "2016-02-08", "2017-01-28", "2018-02-16", "2019-02-05", "2020-01-25", "2021-02-12",
    "2022-02-01", "2023-01-22", "2024-02-10", "2025-01-29", "2026-02-17", "2027-02-06",
    "2028-01-26", "2029-02-13", "2030-02-03", "2031-01-23", "2032-02-11", "2033-01-31",
    "2034-02-19", "2035-02-08",
)
# Time-of-day profiles (relative weights per hour 0..23).
_HOUR_ORDERS = (0.5, 0.3, 0.15, 0.1, 0.08, 0.1, 0.25, 0.5, 0.9, 1.2, 1.4, 1.4, 1.5, 1.3, 1.2,
                1.2, 1.2, 1.2, 1.3, 1.6, 1.9, 2.1, 1.9, 1.1)
_HOUR_EVENTS = (0.4, 0.25, 0.12, 0.08, 0.07, 0.1, 0.3, 0.7, 1.1, 1.3, 1.4, 1.3, 1.3, 1.2, 1.2,
                1.2, 1.2, 1.1, 1.2, 1.4, 1.6, 1.7, 1.4, 0.9)
# (event_type, channel, weight) while a customer is alive; after "death" only the second list.
_EVENT_MIX_ALIVE = (
    ("page_view", "web", 16), ("page_view", "app", 14), ("page_view", "wechat", 5),
    ("web_visit", "web", 14), ("web_visit", "app", 8), ("web_visit", "wechat", 4),
    ("login", "app", 7), ("login", "web", 5),
    ("email_open", "email", 10), ("email_click", "email", 4),
    ("campaign_join", "wechat", 1.5), ("campaign_join", "app", 1), ("campaign_join", "email", 0.5),
    ("social_interaction", "wechat", 5), ("social_interaction", "app", 1),
    ("support_ticket", "phone", 1.2), ("support_ticket", "web", 0.8), ("support_ticket", "wechat", 1),
)
_EVENT_MIX_LAPSED = (
    ("email_open", "email", 60), ("email_click", "email", 6), ("web_visit", "web", 14),
    ("page_view", "web", 8), ("page_view", "wechat", 4), ("social_interaction", "wechat", 4),
    ("support_ticket", "phone", 4),
)
_EVENT_MIX_PRE_ORDER = (("page_view", "web", 40), ("page_view", "app", 40), ("web_visit", "wechat", 20))

_DAY = 86_400

# --- tunables (realism) -------------------------------------------------------------------------
_SHARE_RECENT = 0.03        # created within the last 30 days before as_of
_SHARE_GHOST = 0.03         # no orders, no events
_SHARE_PROSPECT = 0.07      # events only
_SHARE_ONE_TIME = 0.25      # of buyers: exactly one order
_RATE_SHAPE = 0.7           # gamma shape of repeat buyers' purchase rates (lower = heavier tail)
_LIFE_MEAN_DAYS = 330.0     # mean of repeat buyers' lifetime scale
_LIFE_SHAPE = 1.3           # gamma shape of the lifetime scale (Pareto-ish tail of lifetimes)
_LAPSED_ENGAGEMENT = 0.02   # event rate after death relative to before
_PRE_ORDER_EVENT_P = 0.5    # share of orders preceded by a page view
_USD_CUSTOMERS = 0.02


# --- helpers ------------------------------------------------------------------------------------
def _normalised(weights) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    return w / w.sum()


def _pick(rng: np.random.Generator, p, size: int) -> np.ndarray:
    """Vectorised categorical draw (faster than Generator.choice for big sizes)."""
    cdf = np.cumsum(_normalised(p))
    cdf[-1] = 1.0
    return np.searchsorted(cdf, rng.random(size), side="right").astype(np.int16)


def _bad_count(n_normal: int) -> int:
    if n_normal <= 0:
        return 0
    return int(min(BAD_ROWS_MAX_PER_KIND, max(1, n_normal // BAD_ROWS_PER_NORMAL_ROWS)))


def _sql_list(values) -> str:
    return "[" + ", ".join("'" + str(v).replace("'", "''") + "'" for v in values) + "]"


def _day_weights(days: np.ndarray, strength: float) -> np.ndarray:
    """Seasonal weight per calendar day (`days`: datetime64[D]); `strength` scales the bumps."""
    d = days.astype("datetime64[D]")
    month = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dom = (d - d.astype("datetime64[M]")).astype(np.int64) + 1
    dow = (d.astype(np.int64) + 3) % 7          # 0 = Monday (1970-01-01 was a Thursday)
    w = np.ones(len(d))
    w += np.where(dow >= 5, 0.12, 0.0)
    w += np.where(month == 11, 0.35, 0.0) + np.where(month == 12, 0.30, 0.0)
    w += np.where((month == 11) & (dom <= 10), 0.5 + 0.1 * dom, 0.0)          # run-up to 11.11
    w += np.where((month == 11) & (dom == 11), 5.0, 0.0)                       # 双十一
    w += np.where((month == 11) & (dom >= 12) & (dom <= 15), 0.4, 0.0)
    w += np.where((month == 12) & (dom == 12), 2.0, 0.0)                       # 双十二
    w += np.where((month == 6) & (dom <= 17), 0.25, 0.0)
    w += np.where((month == 6) & (dom == 18), 2.0, 0.0)                        # 618
    sf = np.array(_SPRING_FESTIVAL, dtype="datetime64[D]")
    idx = np.clip(np.searchsorted(sf, d), 0, len(sf) - 1)                     # next festival
    to_next = (sf[idx] - d).astype(np.int64)
    from_prev = (d - sf[np.clip(idx - 1, 0, len(sf) - 1)]).astype(np.int64)
    w += np.where((to_next > 0) & (to_next <= 21), 0.6, 0.0)                   # New-Year shopping
    w -= np.where((to_next == 0) | ((from_prev >= 0) & (from_prev < 7)), 0.45, 0.0)  # holiday dip
    return 1.0 + strength * (w - 1.0)


class _Clock:
    """Piecewise-constant intensity on hourly bins; samples times by inverting its cumulative.

    The inverse uses a lookup table over the cumulative (one random memory access per sample plus
    at most a couple of correction steps) instead of a binary search, which is several times
    faster for tens of millions of samples.
    """

    def __init__(self, first_day: np.datetime64, n_days: int, strength: float, hours) -> None:
        days = first_day + np.arange(n_days)
        w = np.repeat(_day_weights(days, strength), 24) * np.tile(np.asarray(hours, float), n_days)
        self.n_bins = len(w)
        self.edges = np.arange(self.n_bins + 1, dtype=np.float64) * 3600.0
        self.cum = np.concatenate(([0.0], np.cumsum(w)))
        total = self.cum[-1]
        m = 1 << max(20, int(16 * self.n_bins).bit_length())
        grid = np.arange(m + 1, dtype=np.float64) * (total / m)
        lut = np.searchsorted(self.cum, grid, side="right") - 1
        self.lut = np.clip(lut, 0, self.n_bins - 1).astype(np.int32)
        self.lut_scale = m / total
        self.lut_size = m
        self.max_steps = int(np.max(np.diff(self.lut))) + 1

    def bounds(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative intensity at the start of second `lo` and at the end of second `hi`."""
        return (np.interp(np.asarray(lo, np.float64), self.edges, self.cum),
                np.interp(np.asarray(hi, np.float64) + 1.0, self.edges, self.cum))

    def invert(self, u: np.ndarray) -> np.ndarray:
        """Time in seconds (float) where the cumulative intensity reaches `u`."""
        j = np.minimum((u * self.lut_scale).astype(np.int64), self.lut_size - 1)
        b = self.lut[j]
        for _ in range(self.max_steps):
            step = self.cum[b + 1] <= u
            step &= b < self.n_bins - 1
            if not step.any():
                break
            b += step
        lo_c = self.cum[b]
        return self.edges[b] + (u - lo_c) / (self.cum[b + 1] - lo_c) * 3600.0

    def sample(self, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray,
               idx: np.ndarray | None = None) -> np.ndarray:
        """One time (int seconds) per sample with lo <= t <= hi.

        With `idx`, `lo`/`hi` are per customer and sample k belongs to customer idx[k].
        """
        lo = np.asarray(lo, dtype=np.int64)
        hi = np.asarray(hi, dtype=np.int64)
        c_lo, c_hi = self.bounds(lo, hi)
        if idx is not None:
            lo, hi, c_lo, c_hi = lo[idx], hi[idx], c_lo[idx], c_hi[idx]
        u = rng.random(len(lo))
        u *= c_hi - c_lo
        u += c_lo
        t = np.floor(self.invert(u)).astype(np.int64)
        np.clip(t, lo, hi, out=t)
        return t


def _time_order(t: np.ndarray) -> np.ndarray:
    """Permutation sorting `t` (int64 >= 0) by time, ties by position: deterministic everywhere.

    Sorting unique keys (time << bits | position) is much faster than a stable argsort.
    """
    n = len(t)
    bits = max(1, int(n).bit_length())
    if n == 0 or int(t.max()).bit_length() + bits > 63:
        return np.argsort(t, kind="stable")
    key = t << bits
    key |= np.arange(n, dtype=np.int64)
    key.sort()
    key &= (1 << bits) - 1
    return key


def _event_codes(mix, kind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(event_type code, channel code) for indices `kind` into a (type, channel, weight) mix."""
    etype = np.array([EVENT_TYPES.index(m[0]) for m in mix], dtype=np.int8)
    chan = np.array([CHANNELS.index(m[1]) for m in mix], dtype=np.int8)
    return etype[kind], chan[kind]


def _inject(cols: dict[str, np.ndarray], n_per_kind: int, n_kinds: int, rng: np.random.Generator,
            keep_position: bool) -> dict[str, np.ndarray]:
    """Insert `n_per_kind` copies of random rows per bad kind, with `bad` = kind code (1-based).

    `keep_position`: insert each copy right after its source row (keeps time order); otherwise at
    a random position.
    """
    n = len(cols["bad"])
    if n == 0 or n_per_kind == 0:
        return dict(cols)
    k = n_per_kind * n_kinds
    src = rng.integers(0, n, size=k)
    pos = src + 1 if keep_position else rng.integers(0, n + 1, size=k)
    codes = np.repeat(np.arange(1, n_kinds + 1, dtype=np.int8), n_per_kind)
    out = {}
    for name, arr in cols.items():
        values = codes if name == "bad" else arr[src]
        out[name] = np.insert(arr, pos, values)
    return out


# --- simulation ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Window:
    """The history window; times are whole seconds from `first_day` 00:00."""

    as_of_day: np.datetime64
    first_day: np.datetime64
    n_days: int
    end: int                                      # as_of 23:59:59


@dataclass(frozen=True)
class _Streams:
    """One independent random stream per component, so each can change without moving the others."""

    customers: np.random.Generator
    lifetimes: np.random.Generator
    orders: np.random.Generator
    amounts: np.random.Generator
    events: np.random.Generator
    pre_order: np.random.Generator
    bad_rows: np.random.Generator
    attributes: np.random.Generator


@dataclass
class _Population:
    """Per-customer latent behaviour; index k is customer id k + 1."""

    created: np.ndarray                           # seconds, sorted
    death: np.ndarray                             # seconds; no orders after it
    alive_end: np.ndarray                         # last second the customer may order
    n_orders: np.ndarray
    n_alive_events: np.ndarray
    n_lapsed_events: np.ndarray
    income_level: np.ndarray
    spend_level: np.ndarray
    usd: np.ndarray                               # bool: the customer pays in USD


def _window(as_of: str, history_days: int) -> _Window:
    as_of_day = np.datetime64(dt.date.fromisoformat(str(as_of)), "D")
    n_days = history_days + 1
    return _Window(as_of_day, as_of_day - np.int64(history_days), n_days, n_days * _DAY - 1)


def _streams(seed: int) -> _Streams:
    return _Streams(*(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(8)))


def _creation_times(n: int, window: _Window, rng: np.random.Generator) -> np.ndarray:
    """created_at: steady acquisition with seasonal bumps, a share in the last 30 days; sorted."""
    end = window.end
    signup_clock = _Clock(window.first_day, window.n_days, 0.4, _HOUR_EVENTS)
    recent_lo = end + 1 - 30 * _DAY                # first second of the last 30 days
    is_recent = rng.random(n) < _SHARE_RECENT
    if recent_lo <= 0:                             # window of 30 days or less: no split
        is_recent[:] = True
        recent_lo = 0
    created_old = signup_clock.sample(rng, np.zeros(n, dtype=np.int64),
                                      np.full(n, max(recent_lo - 1, 0)))
    created_new = signup_clock.sample(rng, np.full(n, recent_lo), np.full(n, end))
    return np.sort(np.where(is_recent, created_new, created_old))


def _order_counts(buyer: np.ndarray, repeat: np.ndarray, weight: np.ndarray, budget: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Buyers get 1 (first order) + Poisson(scale * weight) for repeaters, within `budget` orders."""
    n_buyers = int(buyer.sum())
    if budget >= n_buyers:
        w = np.where(repeat, weight, 0.0)
        scale = (budget - n_buyers) / w.sum() if w.sum() > 0 else 0.0
        return buyer.astype(np.int64) + rng.poisson(w * scale)
    return (buyer & (rng.random(len(buyer)) < budget / max(n_buyers, 1))).astype(np.int64)


def _event_counts(ghost: np.ndarray, repeat: np.ndarray, rate: np.ndarray, alive_exp: np.ndarray,
                  lapsed_exp: np.ndarray, budget: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(events while alive, events after death): engagement correlates with the purchase rate and
    is rare after "death"; `budget` events in total."""
    n = len(ghost)
    engage = np.where(ghost, 0.0, rng.gamma(2.0, 0.5, n)
                      * (np.sqrt(rate * np.where(repeat, 1.0, 0.0)) + 0.35))
    e_w = engage * (alive_exp + _LAPSED_ENGAGEMENT * lapsed_exp)
    e_scale = budget / e_w.sum() if e_w.sum() > 0 else 0.0
    n_events = rng.poisson(e_w * e_scale)
    p_alive = np.divide(alive_exp, alive_exp + _LAPSED_ENGAGEMENT * lapsed_exp,
                        out=np.ones(n), where=e_w > 0)
    n_alive_ev = rng.binomial(n_events, p_alive)
    return n_alive_ev, n_events - n_alive_ev


def _population(n: int, window: _Window, streams: _Streams, orders_per_customer: float,
                events_per_customer: float) -> _Population:
    """Segments (ghost, prospect, one-time, repeat buyer), lifetimes, order and event counts."""
    end = window.end
    created = _creation_times(n, window, streams.customers)
    r_life = streams.lifetimes
    seg_u = r_life.random(n)
    ghost = seg_u < _SHARE_GHOST
    prospect = (seg_u >= _SHARE_GHOST) & (seg_u < _SHARE_GHOST + _SHARE_PROSPECT)
    buyer = ~(ghost | prospect)
    one_time = buyer & (r_life.random(n) < _SHARE_ONE_TIME)
    repeat = buyer & ~one_time
    rate = r_life.gamma(_RATE_SHAPE, 1.0, n)
    life_scale = r_life.gamma(_LIFE_SHAPE, _LIFE_MEAN_DAYS / _LIFE_SHAPE, n)
    life_days = r_life.exponential(1.0, n) * np.where(repeat, life_scale,
                                                      np.where(one_time, 25.0, 45.0))
    death = created + np.floor(life_days * _DAY).astype(np.int64)
    alive_end = np.minimum(death, end)            # last second the customer may order
    alive_exp = (alive_end - created + 1) / _DAY  # days
    lapsed_exp = np.maximum(end - death, 0) / _DAY

    n_orders = _order_counts(buyer, repeat, rate * alive_exp, n * float(orders_per_customer),
                             streams.orders)
    income_level = streams.attributes.lognormal(0.0, 0.35, n)
    spend_level = 160.0 * income_level * streams.amounts.lognormal(0.0, 0.75, n)
    usd = streams.amounts.random(n) < _USD_CUSTOMERS

    expected_pre = _PRE_ORDER_EVENT_P * float(n_orders.sum())   # page views just before orders
    e_budget = max(n * float(events_per_customer) - expected_pre, 0.0)
    n_alive_ev, n_lapsed_ev = _event_counts(ghost, repeat, rate, alive_exp, lapsed_exp, e_budget,
                                            streams.events)
    return _Population(created, death, alive_end, n_orders, n_alive_ev, n_lapsed_ev,
                       income_level, spend_level, usd)


def _event_part(mix, cust: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> tuple:
    """(customer index, time, event_type code, channel code) with kinds drawn from `mix`."""
    return (cust, t, *_event_codes(mix, _pick(rng, [m[2] for m in mix], len(cust))))


def _pre_order_events(o_cust: np.ndarray, o_time: np.ndarray, created: np.ndarray,
                      rng: np.random.Generator) -> tuple:
    """A page view / visit 1-90 minutes before a share of orders (never before created_at)."""
    pre = rng.random(len(o_cust)) < _PRE_ORDER_EVENT_P
    pre_cust = o_cust[pre]
    pre_time = o_time[pre] - rng.integers(60, 5400, len(pre_cust))
    np.maximum(pre_time, created[pre_cust], out=pre_time)
    return _event_part(_EVENT_MIX_PRE_ORDER, pre_cust, pre_time, rng)


def _make_orders(pop: _Population, order_clock: _Clock,
                 streams: _Streams) -> tuple[dict[str, np.ndarray], tuple]:
    """(order columns in time order, the pre-order events)."""
    r_ord, r_amt = streams.orders, streams.amounts
    n_orders, created, alive_end = pop.n_orders, pop.created, pop.alive_end
    o_cust = np.repeat(np.arange(len(n_orders), dtype=np.int64), n_orders)
    o_time = order_clock.sample(r_ord, created, alive_end, o_cust)
    # many customers are created in the CRM at their first purchase
    starts = (np.cumsum(n_orders) - n_orders)[n_orders > 0]
    first = o_cust[starts]
    soon = created[first] + np.floor(r_ord.exponential(2.0 * 3600, len(first))).astype(np.int64)
    o_time[starts] = np.minimum(soon, alive_end[first])
    amount = pop.spend_level[o_cust] * r_amt.lognormal(0.0, 0.55, len(o_cust))
    o_usd = pop.usd[o_cust]
    amount[o_usd] /= 7.1
    amount *= 100.0
    o_cents = np.maximum(np.rint(amount), 1).astype(np.int64)
    del amount
    o_status = _pick(r_amt, ORDER_STATUS_P, len(o_cust)).astype(np.int8)
    pre_part = _pre_order_events(o_cust, o_time, created, streams.pre_order)
    order = _time_order(o_time)
    cols = {"cust": o_cust[order] + 1, "t": o_time[order], "cents": o_cents[order],
            "cur": o_usd[order].astype(np.int8), "status": o_status[order],
            "bad": np.zeros(len(order), dtype=np.int8)}
    return cols, pre_part


def _make_engagement(pop: _Population, event_clock: _Clock, end: int,
                     rng: np.random.Generator) -> list[tuple]:
    """Events while alive and after death, as event parts."""
    n = len(pop.created)
    out = []
    for mix, counts, lo, hi in ((_EVENT_MIX_ALIVE, pop.n_alive_events, pop.created, pop.alive_end),
                                (_EVENT_MIX_LAPSED, pop.n_lapsed_events,
                                 np.minimum(pop.death + 1, end), np.full(n, end))):
        cust = np.repeat(np.arange(n, dtype=np.int64), counts)
        t = event_clock.sample(rng, lo, hi, cust)
        out.append(_event_part(mix, cust, t, rng))
    return out


def _events_table(parts: list[tuple]) -> dict[str, np.ndarray]:
    """Event columns in time order from event parts."""
    e_cust = np.concatenate([p[0] for p in parts])
    e_time = np.concatenate([p[1] for p in parts])
    e_type = np.concatenate([p[2] for p in parts])
    e_chan = np.concatenate([p[3] for p in parts])
    del parts[:]
    order = _time_order(e_time)
    return {"cust": e_cust[order] + 1, "t": e_time[order], "etype": e_type[order],
            "chan": e_chan[order], "bad": np.zeros(len(order), dtype=np.int8)}


def _orders_and_events(pop: _Population, window: _Window,
                       streams: _Streams) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    order_clock = _Clock(window.first_day, window.n_days, 1.0, _HOUR_ORDERS)
    event_clock = _Clock(window.first_day, window.n_days, 0.35, _HOUR_EVENTS)
    with ThreadPoolExecutor(max_workers=2) as pool:   # NumPy releases the GIL: two cores
        engagement = pool.submit(_make_engagement, pop, event_clock, window.end, streams.events)
        orders, pre_part = _make_orders(pop, order_clock, streams)
        parts = [pre_part, *engagement.result()]
    del pre_part
    return orders, _events_table(parts)


def _names(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Gender and name codes (surname, one or two given names, hanzi or pinyin)."""
    sex = (rng.random(n) < 0.5).astype(np.int8)                # 0 male, 1 female
    gender = np.where(rng.random(n) < 0.06, 2, sex).astype(np.int8)
    sur = _pick(rng, 1.0 / (np.arange(len(_SURNAMES)) + 4.0), n)
    n_m, n_f = len(_GIVEN_M), len(_GIVEN_F)
    g_count = np.where(sex == 0, n_m, n_f)
    g_off = np.where(sex == 0, 0, n_m)
    g1 = (g_off + np.floor(rng.random(n) * g_count)).astype(np.int16)
    g2 = np.where(rng.random(n) < 0.6, g_off + np.floor(rng.random(n) * g_count), -1).astype(np.int16)
    name_py = rng.random(n) < 0.15
    return {"gender": gender, "sur": sur, "g1": g1, "g2": g2, "name_py": name_py}


def _age_and_work(n: int, as_of_day: np.datetime64, income_level: np.ndarray,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Birth date, occupation (consistent with age) and income (-1 = not given)."""
    age_years = np.minimum(18.0 + rng.gamma(2.2, 8.0, n), 88.0)
    birth = (as_of_day - np.floor(age_years * 365.25).astype(np.int64)).astype(np.int64)
    has_birth = rng.random(n) >= 0.10
    occ = _pick(rng, _OCCUPATION_P, n).astype(np.int8)
    occ = np.where((age_years < 24) & (rng.random(n) < 0.6), OCCUPATIONS.index("student"), occ)
    occ = np.where((age_years >= 58) & (rng.random(n) < 0.8), OCCUPATIONS.index("retired"), occ)
    occ = np.where((age_years >= 30) & (occ == OCCUPATIONS.index("student")),
                   OCCUPATIONS.index("freelancer"), occ).astype(np.int8)
    income = np.asarray(_OCCUPATION_INCOME)[occ] * income_level * rng.lognormal(0.0, 0.3, n)
    income = (np.rint(income / 100.0) * 100).astype(np.int64)
    income = np.where(rng.random(n) < 0.15, -1, np.maximum(income, 1000))
    return {"birth": birth, "has_birth": has_birth, "occ": occ, "income": income}


def _contacts(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Phone and e-mail codes."""
    has_phone = rng.random(n) >= 0.08
    phone_pre = rng.integers(0, len(_MOBILE_PREFIXES), n).astype(np.int16)
    phone_a = rng.integers(0, 10_000, n).astype(np.int16)
    phone_b = rng.integers(0, 10_000, n).astype(np.int16)
    e_kind = _pick(rng, (0.05, 0.55, 0.15, 0.25), n).astype(np.int8)  # none, pinyin, given.sur, qq
    e_num = np.where(rng.random(n) < 0.6, rng.integers(1, 10_000, n), -1)
    qq = rng.integers(10_000, 3_000_000_000, n)
    e_num = np.where(e_kind == 3, qq, e_num).astype(np.int64)
    e_dom = _pick(rng, _EMAIL_DOMAIN_P, n).astype(np.int8)
    return {"has_phone": has_phone, "phone_pre": phone_pre, "phone_a": phone_a,
            "phone_b": phone_b, "e_kind": e_kind, "e_num": e_num, "e_dom": e_dom}


def _customers_table(pop: _Population, as_of_day: np.datetime64,
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Customer columns (codes) in id order."""
    n = len(pop.created)
    names = _names(n, rng)
    age_work = _age_and_work(n, as_of_day, pop.income_level, rng)
    contacts = _contacts(n, rng)
    loc = _pick(rng, [x[2] for x in _LOCATIONS], n)
    return {"cust": np.arange(1, n + 1, dtype=np.int64), "t": pop.created, **names, **age_work,
            **contacts, "loc": loc, "bad": np.zeros(n, dtype=np.int8)}


def _inject_bad_rows(tables: dict[str, dict[str, np.ndarray]], bad_rows: bool,
                     rng: np.random.Generator) -> dict[str, dict[str, int]]:
    """Add the bad rows to `tables` in place; {entity: {kind: count}}."""
    report = {e: dict.fromkeys(BAD_ROW_KINDS[e], 0) for e in ENTITIES}
    if bad_rows:
        for entity, keep in (("customers", False), ("orders", True), ("events", True)):
            cols = tables[entity]
            k = _bad_count(len(cols["bad"]))
            kinds = BAD_ROW_KINDS[entity]
            new = _inject(cols, k, len(kinds), rng, keep)
            cols.clear()
            cols.update(new)
            report[entity] = dict.fromkeys(kinds, k)
    return report


def _simulate(customers: int, seed: int, as_of: str, history_days: int, orders_per_customer: float,
              events_per_customer: float, bad_rows: bool) -> dict[str, Any]:
    """All rows as numeric / code arrays (no strings yet)."""
    if customers < 0 or history_days < 1:
        raise ValueError("customers must be >= 0 and history_days >= 1")
    n = int(customers)
    window = _window(as_of, history_days)
    streams = _streams(seed)
    pop = _population(n, window, streams, orders_per_customer, events_per_customer)
    orders, events = _orders_and_events(pop, window, streams)
    cust = _customers_table(pop, window.as_of_day, streams.attributes)
    del pop
    report = _inject_bad_rows({"customers": cust, "orders": orders, "events": events}, bad_rows,
                              streams.bad_rows)
    # order and event ids follow the row order of the export (bad rows included)
    orders["no"] = np.arange(1, len(orders["bad"]) + 1, dtype=np.int64)
    events["no"] = np.arange(1, len(events["bad"]) + 1, dtype=np.int64)
    first_day = window.first_day
    t0_us = int((first_day - np.datetime64("1970-01-01", "D")).astype(np.int64)) * _DAY * 1_000_000
    return {"customers": cust, "orders": orders, "events": events, "t0_us": t0_us,
            "id_width": max(7, len(str(n))), "order_width": max(9, len(str(len(orders["bad"])))),
            "event_width": max(10, len(str(len(events["bad"])))), "_bad_rows": report}


# --- SQL that turns the code arrays into the CSV strings ----------------------------------------
def _queries(sim: dict[str, Any]) -> dict[str, str]:
    t0 = sim["t0_us"]
    w_c, w_o, w_e = sim["id_width"], sim["order_width"], sim["event_width"]
    ts = f"make_timestamp({t0}::BIGINT + t * 1000000)::VARCHAR"
    cid = f"'C' || lpad(cust::VARCHAR, {w_c}, '0')"
    sur_cn, sur_py = _sql_list(s for s, _ in _SURNAMES), _sql_list(p for _, p in _SURNAMES)
    sur_py_cap = _sql_list(p.capitalize() for _, p in _SURNAMES)
    given = _GIVEN_M + _GIVEN_F
    g_cn, g_py = _sql_list(c for c, _ in given), _sql_list(p for _, p in given)
    g_py_cap = _sql_list(p.capitalize() for _, p in given)
    g2_cn = f"CASE WHEN g2 >= 0 THEN {g_cn}[g2 + 1] ELSE '' END"
    g2_py = f"CASE WHEN g2 >= 0 THEN {g_py}[g2 + 1] ELSE '' END"
    num = "CASE WHEN e_num >= 0 THEN e_num::VARCHAR ELSE '' END"
    customers = f"""
SELECT
    CASE WHEN bad = 1 THEN '' ELSE {cid} END AS customer_id,
    CASE WHEN name_py THEN {sur_py_cap}[sur + 1] || ' ' || {g_py_cap}[g1 + 1] || {g2_py}
         ELSE {sur_cn}[sur + 1] || {g_cn}[g1 + 1] || {g2_cn} END AS name,
    ['M', 'F', ''][gender + 1] AS gender,
    CASE WHEN has_birth THEN (DATE '1970-01-01' + birth::INTEGER)::VARCHAR ELSE '' END AS birth_date,
    CASE WHEN has_phone THEN '+86 ' || {_sql_list(_MOBILE_PREFIXES)}[phone_pre + 1] || ' '
         || lpad(phone_a::VARCHAR, 4, '0') || ' ' || lpad(phone_b::VARCHAR, 4, '0') ELSE '' END AS phone,
    CASE e_kind
        WHEN 1 THEN {sur_py}[sur + 1] || {g_py}[g1 + 1] || {g2_py} || {num}
                    || '@' || {_sql_list(_EMAIL_DOMAINS)}[e_dom + 1]
        WHEN 2 THEN {g_py}[g1 + 1] || {g2_py} || '.' || {sur_py}[sur + 1]
                    || '@' || {_sql_list(_EMAIL_DOMAINS)}[e_dom + 1]
        WHEN 3 THEN e_num::VARCHAR || '@qq.com'
        ELSE '' END AS email,
    {_sql_list(OCCUPATIONS)}[occ + 1] AS occupation,
    CASE WHEN income >= 0 THEN income::VARCHAR ELSE '' END AS income,
    {_sql_list(x[0] for x in _LOCATIONS)}[loc + 1] AS province,
    {_sql_list(x[1] for x in _LOCATIONS)}[loc + 1] AS city,
    {ts} AS created_at
FROM c"""
    money = "(abs(cents) // 100)::VARCHAR || '.' || lpad((abs(cents) % 100)::VARCHAR, 2, '0')"
    orders = f"""
SELECT
    'O' || lpad(no::VARCHAR, {w_o}, '0') AS order_id,
    CASE WHEN bad = 4 THEN '' ELSE {cid} END AS customer_id,
    CASE WHEN bad = 5 THEN '{BAD_VALUES["unparseable_order_time"]}' ELSE {ts} END AS order_time,
    CASE bad WHEN 1 THEN '{BAD_VALUES["non_numeric_amount"]}' WHEN 2 THEN '-' || {money}
             ELSE {money} END AS amount,
    {_sql_list(CURRENCIES)}[cur + 1] AS currency,
    CASE WHEN bad = 3 THEN '{BAD_VALUES["unknown_status"]}'
         ELSE {_sql_list(ORDER_STATUSES)}[status + 1] END AS status
FROM o"""
    events = f"""
SELECT
    'E' || lpad(no::VARCHAR, {w_e}, '0') AS event_id,
    CASE WHEN bad = 2 THEN '' ELSE {cid} END AS customer_id,
    {ts} AS event_time,
    CASE WHEN bad = 1 THEN '{BAD_VALUES["unknown_event_type"]}'
         ELSE {_sql_list(EVENT_TYPES)}[etype + 1] END AS event_type,
    {_sql_list(CHANNELS)}[chan + 1] AS channel
FROM e"""
    return {"customers": customers, "orders": orders, "events": events}


def _connect():
    import duckdb

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")   # row order of the CSV = array order
    con.execute("SET enable_progress_bar = false")
    return con


def _register(con, sim: dict[str, Any], only: str | None = None) -> None:
    """Expose the code arrays to DuckDB as views c / o / e (zero-copy pandas scans)."""
    import pandas as pd

    for alias, entity in (("c", "customers"), ("o", "orders"), ("e", "events")):
        if only in (None, entity):
            con.register(alias, pd.DataFrame(sim[entity], copy=False))


def _copy(con, select_sql: str, columns, path: Path) -> None:
    """Write a query of string columns as CSV; empty strings become empty (unquoted) fields."""
    cols = ", ".join(f"nullif(\"{c}\", '') AS \"{c}\"" for c in columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    target = str(path).replace("'", "''")
    con.execute(f"COPY (SELECT {cols} FROM ({select_sql})) TO '{target}' "
                "(FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"')")


def _paths(out_dir: str | Path, file_stem: str) -> dict[str, Path]:
    return {e: Path(out_dir) / "generic" / e / f"{file_stem}.csv" for e in ENTITIES}


# --- public API ---------------------------------------------------------------------------------
def generate_frames(customers: int, seed: int = 42, as_of: str = "2026-11-01",
                    history_days: int = 730, orders_per_customer: float = 10.0,
                    events_per_customer: float = 20.0, bad_rows: bool = True) -> dict[str, Any]:
    """Sample CRM exports as pandas DataFrames of strings, exactly as they appear in the CSV.

    Keys "customers", "orders", "events" (empty fields are ""), plus "_bad_rows":
    {entity: {kind: count}} for the bad rows injected (kinds in `BAD_ROW_KINDS`).
    """
    sim = _simulate(customers, seed, as_of, history_days, orders_per_customer,
                    events_per_customer, bad_rows)
    con = _connect()
    try:
        _register(con, sim)
        frames: dict[str, Any] = {e: con.sql(q).df() for e, q in _queries(sim).items()}
    finally:
        con.close()
    frames["_bad_rows"] = sim["_bad_rows"]
    return frames


def write_generic(frames, out_dir: str | Path, file_stem: str = "export") -> dict[str, Path]:
    """Write frames (pandas DataFrames or pyarrow Tables of strings) in the generic layout:
    <out_dir>/generic/<entity>/<file_stem>.csv. Keys starting with "_" are ignored."""
    paths = _paths(out_dir, file_stem)
    con = _connect()
    try:
        for entity in ENTITIES:
            con.register("frame", frames[entity])
            _copy(con, "SELECT * FROM frame", COLUMNS[entity], paths[entity])
            con.unregister("frame")
    finally:
        con.close()
    return paths


def generate(out_dir: str | Path, customers: int, seed: int = 42, file_stem: str = "export",
             **kw) -> dict[str, Path]:
    """`generate_frames` + `write_generic`, streamed (no DataFrames of strings are materialised).

    Produces byte-identical files to `write_generic(generate_frames(...), out_dir, file_stem)`.
    """
    sim = _simulate(customers, seed, kw.pop("as_of", "2026-11-01"), kw.pop("history_days", 730),
                    kw.pop("orders_per_customer", 10.0), kw.pop("events_per_customer", 20.0),
                    kw.pop("bad_rows", True))
    if kw:
        raise TypeError(f"unexpected arguments: {', '.join(sorted(kw))}")
    paths = _paths(out_dir, file_stem)
    queries = _queries(sim)
    con = _connect()

    def write(entity: str) -> None:   # one cursor per file: the three COPYs overlap
        cur = con.cursor()
        try:
            _register(cur, sim, entity)
            _copy(cur, queries[entity], COLUMNS[entity], paths[entity])
        finally:
            cur.close()

    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            for future in [pool.submit(write, e) for e in ("events", "orders", "customers")]:
                future.result()
    finally:
        con.close()
    return paths


def bad_row_counts(customers: int, seed: int = 42, **kw) -> dict[str, dict[str, int]]:
    """How many bad rows of each kind `generate_frames` / `generate` inject for these arguments."""
    if not kw.get("bad_rows", True):
        return {e: dict.fromkeys(BAD_ROW_KINDS[e], 0) for e in ENTITIES}
    return _simulate(customers, seed, kw.get("as_of", "2026-11-01"), kw.get("history_days", 730),
                     kw.get("orders_per_customer", 10.0), kw.get("events_per_customer", 20.0),
                     True)["_bad_rows"]
