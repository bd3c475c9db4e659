"""Probabilistic customer-value models: BG/NBD, Gamma-Gamma and discounted CLV.

Implemented from scratch with NumPy/SciPy (``lifetimes`` is unmaintained and is
not used here).  References:

* Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An
  Alternative to the Pareto/NBD Model", Marketing Science 24(2)  (BG/NBD).
* Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value" (note).

Conventions
-----------
* ``frequency`` (x) is the number of *repeat* purchases (distinct purchase
  periods minus one), ``recency`` (t_x) the time between the first and the last
  purchase, ``T`` the time between the first purchase and the as-of date.
  ``recency`` and ``T`` must be in the same time unit; the BG/NBD ``alpha`` and
  every time argument (``t``, ``horizon``, ``step``) are in that unit too.
  :func:`score_customers` takes days, fits in weeks (days / 7) for numerical
  conditioning and reports in natural units (counts over 90 days, currency).
* ``monetary_value`` is the mean value of the *repeat* purchases (CDNOW
  convention, as in the papers); it must be > 0 for the Gamma-Gamma model.
* ``log_likelihood`` is always the **sum** over customers (the papers'
  convention: -9582.43 for BG/NBD on CDNOW, -4055.92 for Gamma-Gamma), not the
  per-customer mean that ``lifetimes`` prints.
* ``penalizer`` works like lifetimes' ``penalizer_coef``: the optimiser
  minimises ``-mean(log-likelihood) + penalizer * sum(params ** 2)``.  BG/NBD
  penalises (r, alpha, a, b) with alpha in the caller's time unit (as lifetimes
  does).  Gamma-Gamma penalises (p, q, v / mean(monetary_value)): lifetimes
  penalises v in currency units, which makes the same penalizer mean different
  things in RMB and USD (on CDNOW, 0.01 already drives q below 1).  The default
  0 is plain maximum likelihood.

Honest edge case: one-time buyers
---------------------------------
BG/NBD lets a customer drop out only *after a repeat purchase*, so a customer
with ``frequency == 0`` always gets ``P(alive) == 1``, however long ago the single
purchase was.  That is a property of the model, not evidence that the customer
is safe.  :func:`score_customers` flags these rows with ``is_one_time_buyer``;
callers (status, tiers) must not read ``p_alive == 1`` on such rows as "active".
Their expected purchases still decay with ``T`` (through the purchase-rate
posterior), so use ``expected_purchases_90d`` rather than ``p_alive`` for them.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

__all__ = [
    "BgNbdFit",
    "GammaGammaFit",
    "fit_bgnbd",
    "bgnbd_log_likelihood",
    "bgnbd_expected_purchases",
    "bgnbd_p_alive",
    "fit_gamma_gamma",
    "gamma_gamma_log_likelihood",
    "gamma_gamma_expected_value",
    "customer_lifetime_value",
    "score_customers",
    "simulate_bgnbd",
    "calibration_holdout_summary",
    "calibration_holdout_summary_in_duckdb",
    "holdout_check",
    "benchmark_fit",
    "MODEL_STATUS_FITTED",
    "MODEL_STATUS_FALLBACK",
]

MODEL_STATUS_FITTED = "fitted"
MODEL_STATUS_FALLBACK = "fallback_rules_only"

DAYS_PER_WEEK = 7.0
DAYS_PER_YEAR = 365.25
MONTHS_PER_YEAR = 12

# Bounds of the (relative) parameters, applied in log space by L-BFGS-B.
_SHAPE_BOUNDS = (1e-4, 1e4)  # r, a, b, p, q
_SCALE_BOUNDS = (1e-6, 1e6)  # alpha / mean(T), v / mean(monetary_value)
_GTOL_ACCEPT = 1e-4  # projected-gradient norm accepted after a line-search stop


@dataclass(frozen=True)
class BgNbdFit:
    """BG/NBD parameters; ``alpha`` is in the time unit of the data it was fitted on."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n_customers: int
    converged: bool
    message: str
    penalizer: float


@dataclass(frozen=True)
class GammaGammaFit:
    """Gamma-Gamma parameters; ``v`` is the papers' gamma, in currency units."""

    p: float
    q: float
    v: float
    log_likelihood: float
    n_customers: int
    converged: bool
    message: str
    penalizer: float


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def _as_float(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _check_rfm(frequency, recency, T) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = _as_float(frequency, "frequency")
    tx = _as_float(recency, "recency")
    T = _as_float(T, "T")
    x, tx, T = np.broadcast_arrays(x, tx, T)
    problems = []
    for name, arr in (("frequency", x), ("recency", tx), ("T", T)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            problems.append(f"{bad} non-finite {name}")
        neg = int(np.count_nonzero(arr < 0))
        if neg:
            problems.append(f"{neg} negative {name}")
    over = int(np.count_nonzero(tx > T))
    if over:
        problems.append(f"{over} rows with recency > T")
    if problems:
        raise ValueError("invalid BG/NBD inputs: " + "; ".join(problems))
    return x, tx, T


def _bgnbd_params(params) -> tuple[float, float, float, float]:
    if isinstance(params, BgNbdFit):
        return params.r, params.alpha, params.a, params.b
    if isinstance(params, dict):
        return (float(params["r"]), float(params["alpha"]), float(params["a"]), float(params["b"]))
    r, alpha, a, b = (float(v) for v in params)
    return r, alpha, a, b


def _gg_params(params) -> tuple[float, float, float]:
    if isinstance(params, GammaGammaFit):
        return params.p, params.q, params.v
    if isinstance(params, dict):
        return float(params["p"]), float(params["q"]), float(params["v"])
    p, q, v = (float(x) for x in params)
    return p, q, v


def _fit_from_starts(obj, starts, bounds, names, clip: bool = False):
    """L-BFGS-B from each start in turn until one converges; else the best (lowest objective) fit.
    Returns (u, converged, message)."""
    best = None
    for start in starts:
        u0 = np.log(start)
        if clip:
            u0 = np.clip(u0, [b[0] for b in bounds], [b[1] for b in bounds])
        u, ok, msg, res = _run_lbfgsb(obj, u0, bounds, names)
        f = float(res.fun)
        if best is None or (ok and not best[1]) or (ok == best[1] and f < best[3]):
            best = (u, ok, msg, f)
        if ok:
            break
    return best[0], best[1], best[2]


def _run_lbfgsb(fun, u0: np.ndarray, bounds, names: tuple[str, ...]):
    """L-BFGS-B with a tolerant acceptance rule; returns (u, converged, message)."""
    res = minimize(
        fun,
        u0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9, "maxls": 50},
    )
    u = np.asarray(res.x, dtype=float)
    f, g = fun(u)
    # projected gradient: ignore components pushing against an active bound
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    pg = np.where((u <= lo + 1e-12) & (g > 0), 0.0, g)
    pg = np.where((u >= hi - 1e-12) & (pg < 0), 0.0, pg)
    pg_norm = float(np.max(np.abs(pg))) if pg.size else 0.0
    finite = bool(np.isfinite(f) and np.all(np.isfinite(u)))
    converged = finite and (bool(res.success) or pg_norm < _GTOL_ACCEPT)
    msg = str(res.message)
    if converged and not res.success:
        msg = f"accepted (projected gradient {pg_norm:.1e}) after: {msg}"
    elif not converged:
        msg = f"optimiser did not converge: {msg} (projected gradient {pg_norm:.1e})"
    else:
        msg = f"converged in {res.nit} iterations"
    at_bound = [n for n, ui, low, high in zip(names, u, lo, hi) if ui <= low + 1e-9 or ui >= high - 1e-9]
    if at_bound:
        msg += "; parameter(s) at bound: " + ", ".join(at_bound)
    return u, converged, msg, res


# --------------------------------------------------------------------------- #
# BG/NBD
# --------------------------------------------------------------------------- #
def bgnbd_log_likelihood(params, frequency, recency, T) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (FHL 2005, eq. 6), computed in logs.

    ``params`` is a :class:`BgNbdFit`, a dict or a sequence ``(r, alpha, a, b)``.
    Uses gammaln/betaln and logaddexp, so frequencies in the hundreds or
    thousands and T in the thousands give finite values.
    """
    r, alpha, a, b = _bgnbd_params(params)
    x, tx, T = _check_rfm(frequency, recency, T)
    pos = x > 0
    xs = np.where(pos, x, 1.0)  # keep betaln's arguments valid where masked
    A1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    A2 = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + T)
    A3 = np.where(
        pos,
        betaln(a + 1.0, b + xs - 1.0) - betaln(a, b) - (r + x) * np.log(alpha + tx),
        -np.inf,
    )
    return A1 + np.logaddexp(A2, A3)


class _BgNbdObjective:
    """Vectorised negative mean log-likelihood and analytic gradient in log-parameters.

    Rows are pre-aggregated (identical (x, t_x, T) carry a weight) and split
    into one-time buyers (whose likelihood only depends on r and alpha) and
    repeat buyers; functions of x alone are evaluated on the unique x values.
    """

    def __init__(self, x, tx, T, w, penalizer: float, t_scale: float):
        self.penalizer = float(penalizer)
        self.t_scale = float(t_scale)
        self.W = float(w.sum())
        zero = x == 0
        # one-time buyers: aggregate by T
        self.T0 = T[zero]
        self.w0 = w[zero]
        # repeat buyers
        pos = ~zero
        self.x = x[pos]
        self.tx = tx[pos]
        self.T = T[pos]
        self.w = w[pos]
        self.ux, self.ix = np.unique(self.x, return_inverse=True)
        self.Wx = np.bincount(self.ix, weights=self.w, minlength=self.ux.size)
        self.Wxx = float(np.dot(self.w, self.x))

    def params(self, u: np.ndarray) -> tuple[float, float, float, float]:
        r, alpha_rel, a, b = np.exp(u)
        return float(r), float(alpha_rel * self.t_scale), float(a), float(b)

    def __call__(self, u: np.ndarray):
        r, alpha, a, b = self.params(u)
        W = self.W
        # --- one-time buyers: ll = r log(alpha) - r log(alpha + T)
        l0 = np.log(alpha + self.T0)
        ll0 = r * (math.log(alpha) * self.w0.sum() - np.dot(self.w0, l0))
        g0_r = math.log(alpha) * self.w0.sum() - np.dot(self.w0, l0)
        g0_alpha = r * (self.w0.sum() / alpha - np.dot(self.w0, 1.0 / (alpha + self.T0)))
        # --- repeat buyers
        ux, ix, w, x = self.ux, self.ix, self.w, self.x
        lT = np.log(alpha + self.T)
        ltx = np.log(alpha + self.tx)
        blab = betaln(a, b)
        c2 = betaln(a, b + ux) - blab  # per unique x
        c3 = betaln(a + 1.0, b + ux - 1.0) - blab
        rx = r + x
        A2 = c2[ix] - rx * lT
        A3 = c3[ix] - rx * ltx
        lse = np.logaddexp(A2, A3)
        s = np.exp(A3 - lse)  # weight of the "dropped out after t_x" branch
        lg = gammaln(r + ux) - gammaln(r)
        ll1 = np.dot(self.Wx, lg) + r * math.log(alpha) * self.w.sum() + np.dot(w, lse)
        ws = w * s
        wns = w - ws
        g1_r = (
            np.dot(self.Wx, digamma(r + ux) - digamma(r))
            + math.log(alpha) * self.w.sum()
            - np.dot(wns, lT)
            - np.dot(ws, ltx)
        )
        g1_alpha = r * self.w.sum() / alpha - np.dot(wns * rx, 1.0 / (alpha + self.T)) - np.dot(
            ws * rx, 1.0 / (alpha + self.tx)
        )
        Ws = np.bincount(ix, weights=ws, minlength=ux.size)
        dab = digamma(a + b)
        g1_a = np.dot(self.Wx, dab - digamma(a + b + ux)) + Ws.sum() / a
        g1_b = np.dot(self.Wx, dab - digamma(b) - digamma(a + b + ux) + digamma(b + ux)) - np.dot(
            Ws, 1.0 / (b + ux - 1.0)
        )
        ll = ll0 + ll1
        theta = np.array([r, alpha, a, b])
        grad_theta = np.array([g0_r + g1_r, g0_alpha + g1_alpha, g1_a, g1_b])
        pen = self.penalizer * float(np.sum(theta**2))
        f = -ll / W + pen
        g = -grad_theta * theta / W + 2.0 * self.penalizer * theta**2
        if not np.isfinite(f):
            return 1e300, np.zeros(4)
        return float(f), g

    def log_likelihood(self, u: np.ndarray) -> float:
        f, _ = self.__call__(u)
        r, alpha, a, b = self.params(u)
        theta = np.array([r, alpha, a, b])
        return float(-(f - self.penalizer * np.sum(theta**2)) * self.W)


def _aggregate(cols: list[np.ndarray], w: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Collapse identical rows, summing their weights."""
    df = pd.DataFrame({f"c{i}": c for i, c in enumerate(cols)})
    df["w"] = w
    g = df.groupby([f"c{i}" for i in range(len(cols))], sort=False, observed=True)["w"].sum()
    out = [np.asarray(g.index.get_level_values(i), dtype=float) for i in range(len(cols))]
    return out, np.asarray(g.to_numpy(), dtype=float)


def fit_bgnbd(frequency, recency, T, penalizer: float = 0.0, weights=None) -> BgNbdFit:
    """Maximum-likelihood BG/NBD fit (L-BFGS-B on log-parameters, analytic gradient).

    ``weights`` (optional) counts how many customers each row stands for.
    Identical (frequency, recency, T) rows are aggregated before fitting.
    Starting values: r = 1, alpha = mean(T) / mean(frequency), a = b = 1.
    Bounds: r, a, b in [1e-4, 1e4]; alpha in [1e-6, 1e6] * mean(T).
    Does not raise on non-convergence: check ``converged`` and ``message``.
    Raises ``ValueError`` on invalid inputs (NaN, negative, recency > T, empty).
    """
    x, tx, T = _check_rfm(frequency, recency, T)
    if weights is None:
        w = np.ones_like(x)
    else:
        w = np.broadcast_to(_as_float(weights, "weights"), x.shape).astype(float)
        if np.any(~np.isfinite(w)) or np.any(w < 0):
            raise ValueError("weights must be finite and non-negative")
    keep = w > 0
    x, tx, T, w = x[keep], tx[keep], T[keep], w[keep]
    if x.size == 0:
        raise ValueError("fit_bgnbd needs at least one customer")
    tx = np.where(x == 0, 0.0, tx)  # recency is meaningless without a repeat purchase
    (x, tx, T), w = _aggregate([x, tx, T], w)
    W = float(w.sum())
    n_customers = int(round(W))
    if not np.any(x > 0):
        return BgNbdFit(
            math.nan, math.nan, math.nan, math.nan, math.nan, n_customers, False,
            "no repeat buyers: BG/NBD is not identifiable", float(penalizer),
        )
    t_scale = float(np.dot(w, T) / W)
    if not t_scale > 0:
        return BgNbdFit(
            math.nan, math.nan, math.nan, math.nan, math.nan, n_customers, False,
            "all T are 0: no observation time", float(penalizer),
        )
    obj = _BgNbdObjective(x, tx, T, w, penalizer, t_scale)
    mean_x = float(np.dot(w, x) / W)
    alpha0_rel = 1.0 / max(mean_x, 1e-3)  # r/alpha ~ mean purchase rate, with r = 1
    lo_s, hi_s = (math.log(v) for v in _SHAPE_BOUNDS)
    lo_a, hi_a = (math.log(v) for v in _SCALE_BOUNDS)
    bounds = [(lo_s, hi_s), (lo_a, hi_a), (lo_s, hi_s), (lo_s, hi_s)]
    names = ("r", "alpha", "a", "b")
    starts = ([1.0, alpha0_rel, 1.0, 1.0], [0.25, 0.1 * alpha0_rel, 0.8, 2.5])
    u, ok, msg = _fit_from_starts(obj, starts, bounds, names, clip=True)
    r, alpha, a, b = obj.params(u)
    return BgNbdFit(
        r=r, alpha=alpha, a=a, b=b, log_likelihood=obj.log_likelihood(u), n_customers=n_customers,
        converged=bool(ok), message=msg, penalizer=float(penalizer),
    )


def _hyp_term(r, alpha, a, b, x, T, t):
    """(1 - ((alpha+T)/(alpha+T+t))^(r+x) * 2F1(r+x, b+x; a+b+x-1; z)) * (a+b+x-1)/(a-1).

    Uses Euler's transformation 2F1(A,B;C;z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z),
    so the power and the (possibly divergent) series combine into the bounded
    (1-z)^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z): no overflow for large x.
    """
    if abs(a - 1.0) < 1e-7:  # removable singularity at a == 1
        a = 1.0 + math.copysign(1e-7, a - 1.0 if a != 1.0 else 1.0)
    c = a + b + x - 1.0
    log1mz = np.log(alpha + T) - np.log(alpha + T + t)  # log(1 - z)
    z = -np.expm1(log1mz)
    hyp = hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
    one_minus = 1.0 - np.exp((a - 1.0) * log1mz) * hyp
    return c / (a - 1.0) * one_minus


def bgnbd_expected_purchases(fit, t, frequency, recency, T) -> np.ndarray:
    """Conditional expected number of purchases in (T, T + t] (FHL 2005, eq. 10).

    ``t``, ``recency``, ``T`` and the fit's ``alpha`` share one time unit.
    ``t`` may be a scalar or an array broadcastable to the customers.
    """
    r, alpha, a, b = _bgnbd_params(fit)
    x, tx, T = _check_rfm(frequency, recency, T)
    t = np.broadcast_to(np.asarray(t, dtype=float), x.shape)
    if np.any(t < 0) or np.any(~np.isfinite(t)):
        raise ValueError("t must be finite and >= 0")
    num = _hyp_term(r, alpha, a, b, x, T, t)
    num = np.where(t == 0, 0.0, num)
    return num * bgnbd_p_alive((r, alpha, a, b), x, tx, T)


def bgnbd_p_alive(fit, frequency, recency, T) -> np.ndarray:
    """P(customer still alive at T | x, t_x, T) (FHL 2008 note, eq. 1).

    Equals exactly 1 for ``frequency == 0``: the model only allows drop-out after a
    repeat purchase.  Flag such customers instead of treating them as safe.
    """
    r, alpha, a, b = _bgnbd_params(fit)
    x, tx, T = _check_rfm(frequency, recency, T)
    pos = x > 0
    xs = np.where(pos, x, 1.0)
    with np.errstate(divide="ignore"):
        logodds = (
            math.log(a)
            - np.log(b + xs - 1.0)
            + (r + xs) * (np.log(alpha + T) - np.log(alpha + tx))
        )
    return np.where(pos, expit(-logodds), 1.0)


# --------------------------------------------------------------------------- #
# Gamma-Gamma
# --------------------------------------------------------------------------- #
def gamma_gamma_log_likelihood(params, frequency, monetary_value) -> np.ndarray:
    """Per-customer Gamma-Gamma log-likelihood of the mean spend (Fader & Hardie 2013)."""
    p, q, v = _gg_params(params)
    x = _as_float(frequency, "frequency")
    m = _as_float(monetary_value, "monetary_value")
    px = p * x
    return (
        gammaln(px + q) - gammaln(px) - gammaln(q) + q * math.log(v)
        + (px - 1.0) * np.log(m) + px * np.log(x) - (px + q) * np.log(v + x * m)
    )


class _GammaGammaObjective:
    def __init__(self, x, m, penalizer: float, m_scale: float):
        self.penalizer = float(penalizer)
        self.m_scale = float(m_scale)
        self.n = float(x.size)
        self.xm = x * (m / m_scale)  # scaled total repeat spend
        self.ux, self.ix = np.unique(x, return_inverse=True)
        self.cx = np.bincount(self.ix, minlength=self.ux.size).astype(float)
        logm = np.log(m / m_scale)
        self.sum_x_logm = float(np.dot(x, logm))
        self.sum_logm = float(logm.sum())
        self.sum_x_logx = float(np.dot(self.cx, self.ux * np.log(self.ux)))
        self.x = x

    def params(self, u):
        p, q, v_rel = np.exp(u)
        return float(p), float(q), float(v_rel * self.m_scale)

    def ll_scaled(self, p, q, vr):
        ux, cx = self.ux, self.cx
        lvm = np.log(vr + self.xm)
        ll = (
            np.dot(cx, gammaln(p * ux + q) - gammaln(p * ux))
            + self.n * (-gammaln(q) + q * math.log(vr))
            + p * self.sum_x_logm - self.sum_logm + p * self.sum_x_logx
            - p * np.dot(self.x, lvm) - q * lvm.sum()
        )
        return ll, lvm

    def __call__(self, u):
        p, q, vr = np.exp(u)
        ux, cx = self.ux, self.cx
        ll, lvm = self.ll_scaled(p, q, vr)
        psi_pq = digamma(p * ux + q)
        g_p = (
            np.dot(cx * ux, psi_pq - digamma(p * ux))
            + self.sum_x_logm + self.sum_x_logx - np.dot(self.x, lvm)
        )
        g_q = np.dot(cx, psi_pq) - self.n * digamma(q) + self.n * math.log(vr) - lvm.sum()
        inv = 1.0 / (vr + self.xm)
        g_v = self.n * q / vr - p * np.dot(self.x, inv) - q * inv.sum()
        theta_rel = np.array([p, q, vr])  # v relative to mean spend: currency-free penalty
        pen = self.penalizer * float(np.sum(theta_rel**2))
        f = -ll / self.n + pen
        g = -np.array([g_p, g_q, g_v]) * theta_rel / self.n + 2.0 * self.penalizer * theta_rel**2
        if not np.isfinite(f):
            return 1e300, np.zeros(3)
        return float(f), g


def _check_gg(frequency, monetary_value) -> tuple[np.ndarray, np.ndarray]:
    x = _as_float(frequency, "frequency")
    m = _as_float(monetary_value, "monetary_value")
    x, m = np.broadcast_arrays(x, m)
    bad_x = int(np.count_nonzero(~(np.isfinite(x) & (x > 0))))
    bad_m = int(np.count_nonzero(~(np.isfinite(m) & (m > 0))))
    if bad_x or bad_m:
        raise ValueError(
            "Gamma-Gamma needs repeat buyers with positive spend only: "
            f"{bad_x} rows have frequency <= 0 (or NaN) and {bad_m} rows have "
            "monetary_value <= 0 (or NaN); select frequency > 0 and monetary_value > 0 first"
        )
    if x.size == 0:
        raise ValueError("fit_gamma_gamma needs at least one repeat buyer")
    return x, m


def fit_gamma_gamma(frequency, monetary_value, penalizer: float = 0.0) -> GammaGammaFit:
    """Maximum-likelihood Gamma-Gamma fit on repeat buyers (frequency > 0, spend > 0).

    Spend is rescaled by its mean while optimising (so ``v`` is well conditioned
    in any currency, and the L2 ``penalizer`` applies to p, q and v / mean spend);
    the reported parameters and log-likelihood are in the caller's units.  Bounds: p, q in [1e-4, 1e4],
    v in [1e-6, 1e6] * mean spend.
    A fit with ``q <= 1`` has no finite population mean and is reported as
    not converged.  Raises ``ValueError`` if a row has frequency <= 0 or
    monetary_value <= 0 / NaN.
    """
    x, m = _check_gg(frequency, monetary_value)
    m_scale = float(np.mean(m))
    obj = _GammaGammaObjective(x, m, penalizer, m_scale)
    lo_s, hi_s = (math.log(v) for v in _SHAPE_BOUNDS)
    lo_v, hi_v = (math.log(v) for v in _SCALE_BOUNDS)
    bounds = [(lo_s, hi_s), (lo_s, hi_s), (lo_v, hi_v)]
    u, ok, msg = _fit_from_starts(obj, ([1.0, 2.0, 1.0], [5.0, 4.0, 3.0], [0.5, 1.5, 0.5]), bounds, ("p", "q", "v"))
    p, q, v = obj.params(u)
    ll = float(np.sum(gamma_gamma_log_likelihood((p, q, v), x, m)))
    if ok and q <= 1.0:
        ok = False
        msg = f"q = {q:.4g} <= 1: population mean spend p*v/(q-1) is undefined ({msg})"
    return GammaGammaFit(
        p=p, q=q, v=v, log_likelihood=ll, n_customers=int(x.size), converged=bool(ok),
        message=msg, penalizer=float(penalizer),
    )


def gamma_gamma_expected_value(fit, frequency, monetary_value) -> np.ndarray:
    """Conditional expected average order value E[M | x, m_x] = p (v + x m_x) / (p x + q - 1).

    For ``frequency == 0`` (and, the same way, for rows whose ``monetary_value``
    is NaN or <= 0, which the model was not fitted on) this returns the
    population mean ``p * v / (q - 1)``.
    """
    p, q, v = _gg_params(fit)
    x = _as_float(frequency, "frequency")
    m = _as_float(monetary_value, "monetary_value")
    x, m = np.broadcast_arrays(x, m)
    pop = p * v / (q - 1.0) if q > 1.0 else math.nan
    ok = np.isfinite(x) & (x > 0) & np.isfinite(m) & (m > 0)
    xs = np.where(ok, x, 1.0)
    ms = np.where(ok, m, 1.0)
    cond = p * (v + xs * ms) / (p * xs + q - 1.0)
    return np.where(ok, cond, pop)


# --------------------------------------------------------------------------- #
# CLV
# --------------------------------------------------------------------------- #
def customer_lifetime_value(
    bg: BgNbdFit,
    gg: GammaGammaFit,
    frequency,
    recency,
    T,
    monetary_value,
    horizon: float,
    discount_rate: float,
    step: float = 1.0,
) -> np.ndarray:
    """Discounted CLV over ``horizon``, as lifetimes' ``customer_lifetime_value``.

    Units: ``recency``, ``T``, ``horizon`` and ``step`` are in the time unit the
    BG/NBD model was fitted in (``bg.alpha``'s unit).  The horizon is cut into
    periods of length ``step``: period k = 1..ceil(horizon/step) covers
    ((k-1)*step, min(k*step, horizon)] after T, and ``discount_rate`` is the rate
    **per period of length step**:

        CLV = sum_k E[purchases in period k] * E[order value] / (1 + discount_rate) ** k

    E[order value] is :func:`gamma_gamma_expected_value` (population mean for
    one-time buyers and for rows with non-positive/NaN spend).  Example:
    lifetimes' default (months, ``freq='D'``) is ``step=30`` days with a monthly
    rate; :func:`score_customers` uses weeks with step = 1 month (365.25/12/7
    weeks) and the monthly rate equivalent to the annual one.
    """
    x, tx, T = _check_rfm(frequency, recency, T)
    if not (horizon >= 0 and step > 0 and discount_rate > -1):
        raise ValueError("need horizon >= 0, step > 0 and discount_rate > -1")
    value = gamma_gamma_expected_value(gg, x, np.broadcast_to(_as_float(monetary_value, "monetary_value"), x.shape))
    n_periods = int(math.ceil(horizon / step - 1e-12)) if horizon > 0 else 0
    clv = np.zeros_like(x)
    prev = np.zeros_like(x)
    for k in range(1, n_periods + 1):
        cum = bgnbd_expected_purchases(bg, min(k * step, horizon), x, tx, T)
        clv += np.maximum(cum - prev, 0.0) * value / (1.0 + discount_rate) ** k
        prev = cum
    return clv


# --------------------------------------------------------------------------- #
# pipeline entry point
# --------------------------------------------------------------------------- #
_SUMMARY_COLUMNS = ("customer_id", "frequency", "recency_days", "T_days", "monetary_value")
_OUTPUT_COLUMNS = [
    "customer_id", "p_alive", "expected_purchases_90d", "expected_order_value", "clv",
    "is_one_time_buyer", "in_gamma_gamma", "model_status",
]
_FIT_COLUMNS = ["model", "params", "log_likelihood", "n_customers", "converged", "message"]


def _json_params(d: dict) -> str:
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
    return json.dumps(clean, sort_keys=False, allow_nan=False)


def _fit_row(model: str, params: dict, ll: float, n: int, converged: bool, message: str) -> dict:
    return {
        "model": model,
        "params": _json_params(params),
        "log_likelihood": float(ll),
        "n_customers": int(n),
        "converged": bool(converged),
        "message": message,
    }


def _summary_arrays(summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(frequency, recency in weeks, T in weeks, monetary value) checked; recency 0 for one-time buyers."""
    missing = [c for c in _SUMMARY_COLUMNS if c not in summary.columns]
    if missing:
        raise ValueError(f"summary is missing columns: {missing}")

    def num(col: str, errors: str = "raise") -> np.ndarray:
        # accepts nullable Int64 / Float64 and Decimal (DuckDB DECIMAL) columns
        return pd.to_numeric(summary[col], errors=errors).to_numpy(dtype=float, na_value=np.nan)

    freq = num("frequency")
    rec_w = num("recency_days") / DAYS_PER_WEEK
    T_w = num("T_days") / DAYS_PER_WEEK
    money = num("monetary_value", errors="coerce")
    freq, rec_w, T_w = _check_rfm(freq, rec_w, T_w)
    rec_w = np.where(freq == 0, 0.0, rec_w)
    return freq, rec_w, T_w, money


def _fit_bgnbd_or_explain(freq: np.ndarray, rec_w: np.ndarray, T_w: np.ndarray, min_customers: int,
                          penalizer: float) -> tuple[BgNbdFit | None, dict]:
    """(the BG/NBD fit or None, its fit row saying why not)."""
    n = len(freq)
    bg_params = {"r": math.nan, "alpha": math.nan, "a": math.nan, "b": math.nan}
    if n < min_customers:
        return None, _fit_row("bg_nbd", {**bg_params, "time_unit": "week"}, math.nan, n, False,
                              f"too few customers: {n} < {min_customers}")
    try:
        bg = fit_bgnbd(freq, rec_w, T_w, penalizer=penalizer)
        bg_params = {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b}
        return bg, _fit_row("bg_nbd", {**bg_params, "time_unit": "week", "penalizer": penalizer},
                            bg.log_likelihood, bg.n_customers, bg.converged, bg.message)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:  # pragma: no cover
        return None, _fit_row("bg_nbd", {**bg_params, "time_unit": "week"}, math.nan, n, False,
                              f"fit failed: {exc}")


def _fit_gamma_gamma_or_explain(freq: np.ndarray, money: np.ndarray, in_gg: np.ndarray, min_customers: int,
                                min_repeat_buyers: int, penalizer: float) -> tuple[GammaGammaFit | None, dict]:
    """(the Gamma-Gamma fit on the `in_gg` customers or None, its fit row saying why not)."""
    n = len(freq)
    n_gg = int(np.count_nonzero(in_gg))
    gg_params = {"p": math.nan, "q": math.nan, "v": math.nan}
    if n < min_customers:
        return None, _fit_row("gamma_gamma", gg_params, math.nan, n_gg, False,
                              f"too few customers: {n} < {min_customers}")
    if n_gg < min_repeat_buyers:
        return None, _fit_row("gamma_gamma", gg_params, math.nan, n_gg, False,
                              f"too few repeat buyers with positive spend: {n_gg} < {min_repeat_buyers}")
    try:
        gg = fit_gamma_gamma(freq[in_gg], money[in_gg], penalizer=penalizer)
        gg_params = {"p": gg.p, "q": gg.q, "v": gg.v}
        corr = float(np.corrcoef(freq[in_gg], money[in_gg])[0, 1]) if n_gg > 2 else math.nan
        gg_msg = gg.message + (
            f"; corr(frequency, monetary_value) = {corr:.3f} (model assumes independence)"
            if math.isfinite(corr) else ""
        )
        return gg, _fit_row("gamma_gamma", {**gg_params, "penalizer": penalizer},
                            gg.log_likelihood, gg.n_customers, gg.converged, gg_msg)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:  # pragma: no cover
        return None, _fit_row("gamma_gamma", gg_params, math.nan, n_gg, False, f"fit failed: {exc}")


def _discounted_purchases(bg: BgNbdFit, x: np.ndarray, tx: np.ndarray, T: np.ndarray, horizon_days: float,
                          discount_rate_annual: float) -> np.ndarray:
    """Expected purchases over ``horizon_days``, discounted in monthly steps at the monthly rate
    equivalent to ``discount_rate_annual`` (times the order value, this is the CLV)."""
    step_w = DAYS_PER_YEAR / MONTHS_PER_YEAR / DAYS_PER_WEEK
    rate_m = (1.0 + discount_rate_annual) ** (1.0 / MONTHS_PER_YEAR) - 1.0
    horizon_w = horizon_days / DAYS_PER_WEEK
    n_periods = int(math.ceil(horizon_w / step_w - 1e-12)) if horizon_w > 0 else 0
    disc_purch = np.zeros(x.size)
    prev = np.zeros(x.size)
    for k in range(1, n_periods + 1):
        cum = bgnbd_expected_purchases(bg, min(k * step_w, horizon_w), x, tx, T)
        disc_purch += np.maximum(cum - prev, 0.0) / (1.0 + rate_m) ** k
        prev = cum
    return disc_purch


def _fill_model_scores(scores: pd.DataFrame, bg: BgNbdFit, gg: GammaGammaFit, freq: np.ndarray,
                       rec_w: np.ndarray, T_w: np.ndarray, money: np.ndarray, in_gg: np.ndarray,
                       expected_purchases_days: float, horizon_days: float, discount_rate_annual: float) -> None:
    """Set p_alive, expected_purchases_90d, expected_order_value and clv from the fitted models."""
    # Score on unique (x, t_x, T) rows: day-granular data repeat a lot.
    key = pd.DataFrame({"x": freq, "tx": rec_w, "T": T_w})
    codes, uniq = pd.MultiIndex.from_frame(key).factorize()
    ux = uniq.get_level_values(0).to_numpy(dtype=float)
    utx = uniq.get_level_values(1).to_numpy(dtype=float)
    uT = uniq.get_level_values(2).to_numpy(dtype=float)
    p_alive = bgnbd_p_alive(bg, ux, utx, uT)[codes]
    e_purch = bgnbd_expected_purchases(bg, expected_purchases_days / DAYS_PER_WEEK, ux, utx, uT)[codes]
    value = gamma_gamma_expected_value(gg, freq, np.where(in_gg, money, np.nan))
    # discounted expected purchases per unique row (value factors out of the sum)
    disc_purch = _discounted_purchases(bg, ux, utx, uT, horizon_days, discount_rate_annual)
    scores["p_alive"] = p_alive
    scores["expected_purchases_90d"] = e_purch
    scores["expected_order_value"] = value
    scores["clv"] = disc_purch[codes] * value


def score_customers(
    summary: pd.DataFrame,
    horizon_days: float = 365,
    discount_rate_annual: float = 0.1,
    expected_purchases_days: float = 90,
    min_customers: int = 200,
    min_repeat_buyers: int = 50,
    penalizer: float = 0.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit BG/NBD + Gamma-Gamma on a customer summary and score every customer.

    ``summary`` columns: customer_id, frequency (repeat purchase days),
    recency_days, T_days, monetary_value (mean net value of repeat purchases;
    may be <= 0 or NaN).  Models are fitted in weeks (days / 7).

    Returns ``(scores, fits)``:

    * scores: customer_id, p_alive, expected_purchases_90d (count in the next
      ``expected_purchases_days`` days; column name kept for the default),
      expected_order_value (currency), clv (currency, discounted over
      ``horizon_days`` in monthly steps at the monthly rate equivalent to
      ``discount_rate_annual``), is_one_time_buyer, in_gamma_gamma, model_status.
    * fits: one row per model (bg_nbd, gamma_gamma): model, params (JSON; BG/NBD
      alpha is in weeks), log_likelihood (sum), n_customers, converged, message.

    Never raises for small or ill-behaved data: if there are fewer than
    ``min_customers`` customers, fewer than ``min_repeat_buyers`` repeat buyers
    with positive spend, or either optimiser fails, the fit row says why
    (converged=False) and every customer gets model_status
    ``fallback_rules_only`` with NaN model outputs.  (Both models must fit for
    ``fitted``: a BG/NBD fit without a spend model is not used on its own.)
    Raises ``ValueError`` only for malformed input (missing columns, negative or
    NaN frequency/recency/T, recency > T).

    One-time buyers (frequency 0) get P(alive) = 1 from BG/NBD by construction;
    ``is_one_time_buyer`` flags them so that nobody reads it as "safe".
    Customers outside the Gamma-Gamma fit (one-time buyers, spend <= 0 or NaN)
    get the population mean order value and ``in_gamma_gamma = False``.
    """
    freq, rec_w, T_w, money = _summary_arrays(summary)
    n = len(summary)
    one_time = freq == 0
    in_gg = (freq > 0) & np.isfinite(money) & (money > 0)
    bg, bg_row = _fit_bgnbd_or_explain(freq, rec_w, T_w, min_customers, penalizer)
    gg, gg_row = _fit_gamma_gamma_or_explain(freq, money, in_gg, min_customers, min_repeat_buyers, penalizer)
    fits = pd.DataFrame([bg_row, gg_row], columns=_FIT_COLUMNS)
    fitted = bg is not None and bg.converged and gg is not None and gg.converged

    scores = pd.DataFrame({
        "customer_id": summary["customer_id"].to_numpy(),
        "p_alive": np.full(n, np.nan),
        "expected_purchases_90d": np.full(n, np.nan),
        "expected_order_value": np.full(n, np.nan),
        "clv": np.full(n, np.nan),
        "is_one_time_buyer": one_time,
        "in_gamma_gamma": in_gg,
        "model_status": MODEL_STATUS_FITTED if fitted else MODEL_STATUS_FALLBACK,
    })
    if fitted and n > 0:
        _fill_model_scores(scores, bg, gg, freq, rec_w, T_w, money, in_gg, expected_purchases_days,
                           horizon_days, discount_rate_annual)
    return scores[_OUTPUT_COLUMNS], fits


# --------------------------------------------------------------------------- #
# calibration / holdout check (does the model predict?)
# --------------------------------------------------------------------------- #
HOLDOUT_BUCKET_CAP = 7  # calibration table rows: 0, 1, ..., 6 and "7+" repeat purchases
_CHECK_COLUMNS = [
    "bucket", "bucket_order", "customers", "predicted_purchases", "actual_purchases", "predicted_mean",
    "actual_mean", "mean_absolute_error",
]


def calibration_holdout_summary(purchases: pd.DataFrame, calibration_end, observation_end) -> pd.DataFrame:
    """Split purchase history at ``calibration_end`` (the classic calibration/holdout check).

    ``purchases``: customer_id, purchase_date (one row per purchase; several rows of a customer on one
    day count as one purchase day, like the pipeline), purchase_value (optional).  Customers whose first
    purchase is on or before ``calibration_end`` are kept.  Returns one row per customer: frequency,
    recency_days, T_days, monetary_value (mean repeat purchase-day value) of the calibration period, and
    ``holdout_purchases``: purchase days in (calibration_end, observation_end].
    """
    cal_end, obs_end = pd.Timestamp(calibration_end), pd.Timestamp(observation_end)
    if not obs_end > cal_end:
        raise ValueError(f"observation end {obs_end.date()} must be after the calibration end {cal_end.date()}")
    frame = purchases.assign(purchase_date=pd.to_datetime(purchases["purchase_date"]).dt.normalize())
    if "purchase_value" not in frame:
        frame = frame.assign(purchase_value=np.nan)
    days = (frame[frame["purchase_date"] <= obs_end]
            .groupby(["customer_id", "purchase_date"], as_index=False)["purchase_value"].sum(min_count=1))
    cal = days[days["purchase_date"] <= cal_end].sort_values(["customer_id", "purchase_date"])
    first = cal.groupby("customer_id")["purchase_date"].transform("min")
    repeat = cal[cal["purchase_date"] > first]
    summary = cal.groupby("customer_id").agg(first=("purchase_date", "min"), last=("purchase_date", "max"),
                                             purchase_days=("purchase_date", "size"))
    summary["monetary_value"] = repeat.groupby("customer_id")["purchase_value"].mean()
    holdout = days[days["purchase_date"] > cal_end].groupby("customer_id").size()
    return pd.DataFrame({
        "customer_id": summary.index,
        "frequency": (summary["purchase_days"] - 1).to_numpy(dtype=float),
        "recency_days": (summary["last"] - summary["first"]).dt.days.to_numpy(dtype=float),
        "T_days": (cal_end - summary["first"]).dt.days.to_numpy(dtype=float),
        "monetary_value": summary["monetary_value"].to_numpy(dtype=float),
        "holdout_purchases": holdout.reindex(summary.index, fill_value=0).to_numpy(dtype=float),
    }).reset_index(drop=True)


CALIBRATION_HOLDOUT_SQL = """
with days as (
    select customer_id, cast(purchase_date as date) as purchase_date, sum(purchase_value) as purchase_value
    from purchases
    where cast(purchase_date as date) <= date '{observation_end}'
    group by all
),
calibration as (
    select *, min(purchase_date) over (partition by customer_id) as first_day
    from days
    where purchase_date <= date '{calibration_end}'
),
summary as (
    select
        customer_id,
        min(purchase_date) as first_day,
        max(purchase_date) as last_day,
        count(*) as purchase_days,
        avg(purchase_value) filter (where purchase_date > first_day) as monetary_value
    from calibration
    group by customer_id
),
holdout as (
    select customer_id, count(*) as holdout_purchases
    from days
    where purchase_date > date '{calibration_end}'
    group by customer_id
)
select
    summary.customer_id,
    cast(purchase_days - 1 as double) as frequency,
    cast(date_diff('day', first_day, last_day) as double) as recency_days,
    cast(date_diff('day', first_day, date '{calibration_end}') as double) as T_days,
    cast(monetary_value as double) as monetary_value,
    cast(coalesce(holdout.holdout_purchases, 0) as double) as holdout_purchases
from summary
left join holdout on summary.customer_id = holdout.customer_id
order by summary.customer_id
"""


def calibration_holdout_summary_in_duckdb(purchases, calibration_end, observation_end) -> pd.DataFrame:
    """``calibration_holdout_summary`` computed by DuckDB on a relation (``purchases``: a DuckDB
    relation with the same columns), so that millions of purchase days never become a pandas frame:
    only the one-row-per-customer summary does (the dbt model clv_holdout_check at 1M customers).
    Same rows, columns and order as the pandas version (tests/test_model_check.py compares them)."""
    cal_end, obs_end = pd.Timestamp(calibration_end), pd.Timestamp(observation_end)
    if not obs_end > cal_end:
        raise ValueError(f"observation end {obs_end.date()} must be after the calibration end {cal_end.date()}")
    sql = CALIBRATION_HOLDOUT_SQL.format(calibration_end=cal_end.date().isoformat(),
                                         observation_end=obs_end.date().isoformat())
    return purchases.query("purchases", sql).df()


def holdout_check(summary: pd.DataFrame, holdout_days: float, penalizer: float = 0.0
                  ) -> tuple[pd.DataFrame, pd.DataFrame, BgNbdFit]:
    """Fit BG/NBD on the calibration summary (weeks), predict each customer's purchases over the
    holdout and compare with ``holdout_purchases``.

    Returns ``(customers, table, fit)``: customers adds ``predicted_purchases``; table is the
    calibration table, one row per number of repeat purchases in the calibration period (0..6, "7+")
    and an ``all`` row, with customers, predicted and actual totals and means, and the mean absolute
    error of the per-customer predictions.  Raises ``ValueError`` when the fit does not converge.
    """
    x = summary["frequency"].to_numpy(dtype=float)
    tx = summary["recency_days"].to_numpy(dtype=float) / DAYS_PER_WEEK
    T = summary["T_days"].to_numpy(dtype=float) / DAYS_PER_WEEK
    fit = fit_bgnbd(x, tx, T, penalizer=penalizer)
    if not fit.converged:
        raise ValueError(f"BG/NBD did not fit on the calibration period: {fit.message}")
    customers = summary.assign(
        predicted_purchases=bgnbd_expected_purchases(fit, holdout_days / DAYS_PER_WEEK, x, tx, T))
    capped = np.minimum(x, HOLDOUT_BUCKET_CAP).astype(int)
    rows = []
    for order, part in [(k, customers[capped == k]) for k in range(HOLDOUT_BUCKET_CAP + 1)] + [(99, customers)]:
        if part.empty:
            continue
        label = "all" if order == 99 else (f"{order}+" if order == HOLDOUT_BUCKET_CAP else str(order))
        rows.append({
            "bucket": label, "bucket_order": order, "customers": len(part),
            "predicted_purchases": float(part["predicted_purchases"].sum()),
            "actual_purchases": float(part["holdout_purchases"].sum()),
            "predicted_mean": float(part["predicted_purchases"].mean()),
            "actual_mean": float(part["holdout_purchases"].mean()),
            "mean_absolute_error": float((part["predicted_purchases"] - part["holdout_purchases"]).abs().mean()),
        })
    return customers, pd.DataFrame(rows, columns=_CHECK_COLUMNS), fit


# --------------------------------------------------------------------------- #
# simulation and benchmark
# --------------------------------------------------------------------------- #
def simulate_bgnbd(
    n: int,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T,
    seed: int | None = None,
    gamma_gamma: tuple[float, float, float] | None = None,
) -> pd.DataFrame:
    """Vectorised draw of BG/NBD customers (time unit of ``alpha`` and ``T``).

    lambda ~ Gamma(r, rate alpha); p ~ Beta(a, b); the customer drops out after
    each repeat purchase with probability p.  Given N ~ Poisson(lambda T)
    purchases in (0, T], x = min(N, K) with K ~ Geometric(p) the number of repeat
    purchases before drop-out, and t_x is the x-th of N uniform order
    statistics: T * Beta(x, N - x + 1).  With ``gamma_gamma=(p, q, v)`` a
    ``monetary_value`` column (mean of x spends) is added (NaN for x = 0).
    """
    rng = np.random.default_rng(seed)
    T = np.broadcast_to(np.asarray(T, dtype=float), (n,)).copy()
    lam = rng.gamma(r, 1.0 / alpha, size=n)
    pdrop = rng.beta(a, b, size=n)
    N = rng.poisson(lam * T)
    K = rng.geometric(np.clip(pdrop, 1e-300, 1.0))
    x = np.minimum(N, K)
    pos = x > 0
    tx = np.zeros(n)
    tx[pos] = T[pos] * rng.beta(x[pos], N[pos] - x[pos] + 1)
    df = pd.DataFrame({"frequency": x.astype(float), "recency": tx, "T": T})
    if gamma_gamma is not None:
        gp, gq, gv = gamma_gamma
        nu = rng.gamma(gq, 1.0 / gv, size=n)
        m = np.full(n, np.nan)
        m[pos] = rng.gamma(gp * x[pos], 1.0 / (x[pos] * nu[pos]))
        df["monetary_value"] = m
    return df


def benchmark_fit(n: int = 1_000_000, seed: int = 0, score: bool = False) -> dict:
    """Simulate ``n`` customers (day-granular, like the pipeline) and time the fits.

    True parameters are CDNOW-like (weeks): r=0.24, alpha=4.4, a=0.79, b=2.43;
    spend p=6.25, q=3.74, v=15.44; T uniform over 1..730 days.  Returns timings
    in seconds plus the recovered parameters.  ``score=True`` also times
    :func:`score_customers` end to end.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    T_days = rng.integers(1, 731, size=n).astype(float)
    sim = simulate_bgnbd(n, 0.24, 4.4, 0.79, 2.43, T_days / DAYS_PER_WEEK, seed=seed + 1,
                         gamma_gamma=(6.25, 3.74, 15.44))
    rec_days = np.where(sim["frequency"] > 0, np.ceil(sim["recency"] * DAYS_PER_WEEK), 0.0)
    rec_days = np.minimum(rec_days, T_days)
    t_sim = time.perf_counter() - t0

    freq = sim["frequency"].to_numpy()
    t1 = time.perf_counter()
    bg = fit_bgnbd(freq, rec_days / DAYS_PER_WEEK, T_days / DAYS_PER_WEEK)
    t_bg = time.perf_counter() - t1
    sel = freq > 0
    t2 = time.perf_counter()
    gg = fit_gamma_gamma(freq[sel], sim["monetary_value"].to_numpy()[sel])
    t_gg = time.perf_counter() - t2
    out = {
        "n": n,
        "n_repeat_buyers": int(sel.sum()),
        "simulate_s": round(t_sim, 3),
        "fit_bgnbd_s": round(t_bg, 3),
        "fit_gamma_gamma_s": round(t_gg, 3),
        "fit_total_s": round(t_bg + t_gg, 3),
        "bgnbd": {k: v for k, v in asdict(bg).items() if k in ("r", "alpha", "a", "b", "converged")},
        "gamma_gamma": {k: v for k, v in asdict(gg).items() if k in ("p", "q", "v", "converged")},
    }
    if score:
        summary = pd.DataFrame({
            "customer_id": np.arange(n), "frequency": freq, "recency_days": rec_days,
            "T_days": T_days, "monetary_value": sim["monetary_value"].to_numpy(),
        })
        t3 = time.perf_counter()
        score_customers(summary)
        out["score_customers_s"] = round(time.perf_counter() - t3, 3)
    return out


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(benchmark_fit(), indent=2))
