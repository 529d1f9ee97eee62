"""Numerical kernels of the estimators (internal): one home for the solvers that several
analyses share.

Small Newton–Raphson / normal-equation solvers on numpy, with cross-products accumulated over
row blocks (each BLAS call stays single-threaded; one multi-threaded product of a tall matrix
took up to 80 times longer on a loaded machine): logistic regression (Newton, with a
subsample warm start and chord steps above 200,000 rows), ordinary least squares, the gamma
GLM with log link, and the Cox model with Efron's ties. statsmodels' IRLS computes a
pseudo-inverse of the whole design every iteration and took 7–8 s per logistic fit on
1,000,000 records. They fit the same likelihoods to the same optimum as statsmodels and
:func:`analysis.survival.cox_model`; the tests check them to 1e-8
(tests/unit/analysis/test_adjustment.py, test_cluster_variance.py, test_ols_fitted_rank.py).

Used by :mod:`analysis.adjustment` (propensity scores, IPTW, g-computation),
:mod:`analysis.comparison` (adjusted effects at any size), :mod:`analysis.cluster_variance`
(sandwich variances) and :mod:`analysis.costs` (gamma GLM starting values).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp
from numpy.typing import NDArray

from analysis.errors import InsufficientDataError

# Row-block sizes for cross-products and matrix-vector products: small enough that each
# OpenBLAS call stays single-threaded (its threading threshold is about 262,144
# multiply-adds for gemm and 9,216 for gemv), which keeps run times stable on a loaded
# machine; multi-threaded calls on tall matrices were up to 80 times slower there.
_CHUNK = 512
_CHUNK_MV = 384
_DIRECT_MV = 8192  # below this many rows one call is faster than the blocks
_GROUP_BLOCK = 65536  # rows of x per sparse block in _fit_cox_efron (8 MB at 16 columns)
_WARM_START_N = 200_000


def _floats(values: Any) -> NDArray[np.float64]:
    """Float array with NaN for missing (works for nullable, boolean and object input)."""
    if isinstance(values, pd.Series):
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype(object)
        if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
            return pd.to_numeric(values.astype(object), errors="coerce").to_numpy(dtype=float)
        return values.to_numpy(dtype=float, na_value=np.nan)
    return np.asarray(pd.to_numeric(pd.Series(np.asarray(values, dtype=object)),
                                    errors="coerce"), dtype=float)

def _gram(x: NDArray[np.float64], w: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """``X' diag(w) X`` accumulated over row blocks.

    Blocks keep each BLAS call small and single-threaded, which avoids the very slow
    multi-threaded path that OpenBLAS took for one tall product on a loaded machine (3.6 s
    instead of 0.05 s for a 1,000,000 x 16 design).
    """
    n, p = x.shape
    if n <= _CHUNK:
        return x.T @ (x if w is None else x * w[:, None])
    out = np.zeros((p, p))
    for start in range(0, n, _CHUNK):
        block = x[start:start + _CHUNK]
        if w is None:
            out += block.T @ block
        else:
            out += block.T @ (block * w[start:start + _CHUNK, None])
    return out


def _xtv(x: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
    """``X' v`` accumulated over row blocks."""
    if x.shape[0] <= _DIRECT_MV:
        return x.T @ v
    out = np.zeros(x.shape[1])
    for start in range(0, x.shape[0], _CHUNK_MV):
        out += x[start:start + _CHUNK_MV].T @ v[start:start + _CHUNK_MV]
    return out


def _xb(x: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """``X b`` computed over row blocks."""
    if x.shape[0] <= _DIRECT_MV:
        return x @ b
    out = np.empty(x.shape[0])
    for start in range(0, x.shape[0], _CHUNK_MV):
        out[start:start + _CHUNK_MV] = x[start:start + _CHUNK_MV] @ b
    return out


def _solve_psd(h: NDArray[np.float64], g: NDArray[np.float64]) -> NDArray[np.float64]:
    """Solve ``h s = g`` for a symmetric positive semi-definite ``h`` (tiny ridge if needed)."""
    ridge = 1e-10 * max(float(np.mean(np.diag(h))), 1e-300)
    try:
        return sla.solve(h + ridge * np.eye(h.shape[0]), g, assume_a="pos")
    except (np.linalg.LinAlgError, sla.LinAlgError):
        return np.linalg.lstsq(h, g, rcond=None)[0]


def _inverse_psd(h: NDArray[np.float64]) -> NDArray[np.float64]:
    try:
        return sla.inv(h)
    except (np.linalg.LinAlgError, sla.LinAlgError):
        return np.linalg.pinv(h)


# --------------------------------------------------------------------------------------------
# Model fitting (numpy; checked against statsmodels in the tests)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Fit:
    params: NDArray[np.float64]
    cov: NDArray[np.float64] | None
    converged: bool
    iterations: int


def _logit_loglik(eta: NDArray, y: NDArray, w: NDArray | None) -> float:
    ll = y * eta - np.logaddexp(0.0, eta)
    return float(ll.sum() if w is None else (w * ll).sum())


def _fit_logistic(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    weights: NDArray[np.float64] | None = None,
    start: NDArray[np.float64] | None = None,
    *,
    max_iter: int = 50,
    tol: float = 1e-10,
    covariance: bool = False,
) -> _Fit:
    """Maximum-likelihood logistic regression by Newton–Raphson with step halving.

    `x` includes the intercept column. `weights` are frequency (case) weights. Convergence
    is declared when the relative change of the log-likelihood falls below `tol` or the
    largest step below 1e-8; with complete separation the likelihood flattens out and the
    fit stops there (fitted risks are then right, coefficients are not meaningful).
    """
    n, p = x.shape
    if start is None and n > _WARM_START_N:
        # Start from the fit to an evenly spaced subsample: the full-data Newton steps then
        # start close to the optimum (the estimate itself is still the full-data MLE).
        sub = slice(None, None, n // (_WARM_START_N // 4))
        start = _fit_logistic(x[sub], y[sub], None if weights is None else weights[sub],
                              max_iter=max_iter, tol=1e-8).params
        chord = _chord_logistic(x, y, weights, start)
        if chord is not None:
            beta, eta, it = chord
            return _Fit(beta, _logit_cov(x, eta, weights) if covariance else None, True, it)
    beta = np.zeros(p) if start is None else np.array(start, dtype=float)
    eta = _xb(x, beta)
    ll = _logit_loglik(eta, y, weights)
    converged = False
    it = 0
    for _ in range(max_iter):
        it += 1
        mu = 0.5 * (1.0 + np.tanh(0.5 * eta))  # expit without overflow warnings
        resid = y - mu
        v = mu * (1.0 - mu)
        if weights is not None:
            resid = resid * weights
            v = v * weights
        grad = _xtv(x, resid)
        hess = _gram(x, v)
        step = _solve_psd(hess, grad)
        t = 1.0
        while True:
            new_beta = beta + t * step
            new_eta = _xb(x, new_beta)
            new_ll = _logit_loglik(new_eta, y, weights)
            if new_ll >= ll - 1e-12 * abs(ll) or t < 1e-6:
                break
            t *= 0.5
        change = abs(new_ll - ll)
        small_step = float(np.max(np.abs(t * step))) < 1e-8
        beta, eta, ll = new_beta, new_eta, new_ll
        if change <= tol * (abs(ll) + 1.0) or small_step:
            converged = True
            break
    return _Fit(beta, _logit_cov(x, eta, weights) if covariance else None, converged, it)


def _logit_cov(x: NDArray, eta: NDArray, weights: NDArray | None) -> NDArray[np.float64]:
    """Inverse information of a logistic fit with linear predictor `eta`."""
    mu = _expit(eta)
    v = mu * (1.0 - mu)
    if weights is not None:
        v = v * weights
    return _inverse_psd(_gram(x, v))


def _chord_logistic(
    x: NDArray, y: NDArray, weights: NDArray | None, start: NDArray, max_iter: int = 30
) -> tuple[NDArray, NDArray, int] | None:
    """Logistic MLE from a close start by the chord method (information fixed at `start`).

    Each step needs one matrix-vector product instead of a cross-product, and from the
    fit to a large subsample the steps shrink by a factor of order (subsample size)^-1/2.
    Converged when the largest step is below 1e-8 (the remaining error is that times the
    contraction factor); None when the steps stop contracting (the caller then uses the
    line-search Newton iterations).
    """
    beta = np.array(start, dtype=float)
    eta = _xb(x, beta)
    mu = _expit(eta)
    v = mu * (1.0 - mu)
    if weights is not None:
        v = v * weights
    h = _gram(x, v)
    try:
        factor = sla.cho_factor(h + 1e-10 * max(float(np.mean(np.diag(h))), 1e-300)
                                * np.eye(h.shape[0]))
    except (np.linalg.LinAlgError, sla.LinAlgError):
        return None
    previous = math.inf
    for it in range(1, max_iter + 1):
        resid = y - mu if weights is None else (y - mu) * weights
        step = sla.cho_solve(factor, _xtv(x, resid))
        size = float(np.max(np.abs(step)))
        if not math.isfinite(size) or size > 0.5 * previous:
            return None
        beta = beta + step
        eta = _xb(x, beta)
        mu = _expit(eta)
        if size < 1e-8:  # the remaining error is about (contraction factor) x size
            return beta, eta, it
        previous = size
    return None


def _fit_ols(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    cov_type: str = "nonrobust",
    mask: NDArray[np.bool_] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    """OLS by the normal equations (numeric covariates are centred/scaled by the design).

    Only rows where `mask` is true are used (no copy of `x`; `y` must be finite everywhere).
    Returns the coefficients, their covariance (``"nonrobust"``: s² (X'X)⁻¹ with
    s² = RSS / (n − rank); ``"HC3"``: MacKinnon & White 1985) and the residual df n − rank.

    Rank is decided on the rows actually fitted, not on the design the rows come from: a
    column that is all zero on them (a covariate level present only among records without
    this outcome) or a linear combination of earlier columns there is not estimated
    (coefficient, variance and covariances NaN) and not counted in the df, as R's ``lm()``
    reports such a column as aliased (NA) with ``df.residual = n − rank``. Columns are
    screened in order, so the earlier column of a collinear pair is the one kept.

    HC3 weights a residual by 1 / (1 − h)², h its leverage. A record with leverage 1 (to
    within √ε, the threshold at which R's ``sandwich::vcovHC`` warns) is the only record
    informing a column, e.g. the only one in a covariate level: its residual is 0, its
    HC3 weight 0/0 and its deleted residual undefined. Its term is set to 0. This is exact
    for every coefficient that the other records identify (the KP effect among them): such
    a coefficient does not depend on that record's outcome at all, and its HC3 variance
    equals the HC3 variance of the fit without the record.
    """
    n, p = x.shape
    m = None if mask is None else mask.astype(float)
    n_used = n if m is None else int(m.sum())
    gram = _gram(x, m)
    kept = np.flatnonzero(_independent_columns(gram, 0))
    xtx_inv = np.zeros((p, p))
    xtx_inv[np.ix_(kept, kept)] = _inverse_psd(gram[np.ix_(kept, kept)])
    beta = xtx_inv @ _xtv(x, y if m is None else y * m)
    resid = y - _xb(x, beta)
    if m is not None:
        resid = resid * m
    df = n_used - kept.size
    aliased = np.ones(p, dtype=bool)
    aliased[kept] = False

    def finish(cov: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
        cov[aliased, :] = np.nan
        cov[:, aliased] = np.nan
        return np.where(aliased, np.nan, beta), cov, df

    if cov_type == "nonrobust":
        s2 = float(resid @ resid) / df if df > 0 else math.nan
        return finish(s2 * xtx_inv)
    if cov_type == "HC3":
        lev = np.empty(n)
        for start in range(0, n, _CHUNK):
            block = x[start:start + _CHUNK]
            lev[start:start + _CHUNK] = np.einsum("ij,jk,ik->i", block, xtx_inv, block)
        one_minus = 1.0 - lev
        saturated = one_minus <= math.sqrt(np.finfo(float).eps)
        omega = np.where(saturated, 0.0,
                         resid**2 / np.where(saturated, 1.0, one_minus) ** 2)
        return finish(xtx_inv @ _gram(x, omega) @ xtx_inv)
    raise ValueError(f"unknown cov_type {cov_type!r}")


def _fit_gamma_log(
    x: NDArray[np.float64], y: NDArray[np.float64], *, max_iter: int = 100, tol: float = 1e-10
) -> tuple[NDArray[np.float64], NDArray[np.float64], float, int, bool]:
    """Gamma GLM with log link by IRLS; Pearson dispersion; returns (b, cov, scale, df, ok).

    For the gamma family with log link the IRLS working weights are all 1, so each step is
    an OLS of the working response ``η + (y − μ)/μ`` on X. Dispersion φ = Pearson X² / (n − p),
    covariance φ (X'X)⁻¹: the same estimator as statsmodels ``GLM(Gamma(Log()))``, used by
    :func:`analysis.comparison.compare_procedures` above ``COST_RATIO_MAX_N`` records where
    :func:`analysis.costs.adjusted_cost_ratio` (formula interface) is too slow.
    """
    n, p = x.shape
    xtx_inv = _inverse_psd(_gram(x))
    beta = np.zeros(p)
    beta[0] = math.log(float(y.mean()))  # column 0 is the intercept
    eta = _xb(x, beta)
    dev = math.inf
    converged = False
    for _ in range(max_iter):
        mu = np.exp(eta)
        z = eta + (y - mu) / mu
        new_beta = xtx_inv @ _xtv(x, z)
        change = float(np.max(np.abs(new_beta - beta)))
        beta = new_beta
        eta = _xb(x, beta)
        mu = np.exp(eta)
        new_dev = float(2.0 * np.sum(-np.log(y / mu) + (y - mu) / mu))
        if abs(new_dev - dev) <= tol * (abs(new_dev) + 1.0) and change < 1e-9:
            converged = True
            break
        dev = new_dev
    mu = np.exp(eta)
    df = n - p
    scale = float(np.sum(((y - mu) / mu) ** 2) / df)
    return beta, scale * xtx_inv, scale, df, converged


def _fit_cox_efron(
    time: NDArray[np.float64],
    event: NDArray[np.float64],
    x: NDArray[np.float64],
    *,
    max_iter: int = 50,
    tol: float = 1e-10,
) -> _Fit:
    """Cox proportional hazards (Efron 1977 ties), vectorised Newton–Raphson.

    Used by :func:`analysis.comparison.compare_procedures` above
    ``COX_MODEL_MAX_N`` records, where :func:`analysis.survival.cox_model` (statsmodels
    ``PHReg``, whose set-up loops over records in Python) is too slow; it fits the same
    partial likelihood and the tests check it against ``cox_model``. With d tied events at a
    time, Efron's step l = 0..d−1 has denominator ``S0 − (l/d) S0_D``; the information is
    assembled from weighted cross-products (``Σ_k c_k S2_k = X' diag(r·C) X`` with C the
    cumulated ``Σ_l 1/den``), so each iteration costs O(n p²) with no loop over times.
    """
    ev = event > 0
    if not ev.any():
        raise InsufficientDataError("Cox model", "no events were observed")
    first = time[ev].min()
    keep = np.flatnonzero(time >= first)  # those censored earlier carry no information
    t, e = time[keep], ev[keep]
    u = np.unique(t[e])
    k_count = u.size
    a = np.searchsorted(u, t, side="right")  # event times <= t: risk sets 1..a
    # The design is never copied (at 1,000,000 x 16 a copy was 128 MB of the adjusted
    # comparison's peak memory): records stay in their own order, and the sums over each
    # risk-set group are sparse products over blocks of rows. Only the events' rows are
    # gathered, ordered by event time.
    ev_keep = np.flatnonzero(e)
    ev_keep = ev_keep[np.argsort(a[ev_keep], kind="stable")]
    a_ev = a[ev_keep]
    x_ev = np.ascontiguousarray(x[keep[ev_keep]])
    d = np.bincount(a_ev, minlength=k_count + 1)[1:].astype(float)
    step_k = np.repeat(np.arange(k_count), d.astype(int))
    l_step = np.arange(step_k.size) - np.repeat(np.cumsum(d) - d, d.astype(int))
    frac = l_step / d[step_k]
    n_ev = ev_keep.size
    sum_x_ev = x_ev.sum(axis=0)
    p = x.shape[1]
    n_all = x.shape[0]
    # One CSC block per _GROUP_BLOCK rows of x: column j (a record) holds its risk-set group
    # (a - 1) with the value r_j, set on each iteration; rows of x not kept are empty columns.
    kept = np.zeros(n_all, dtype=bool)
    kept[keep] = True
    blocks = []
    for start in range(0, n_all, _GROUP_BLOCK):
        stop = min(start + _GROUP_BLOCK, n_all)
        lo, hi = np.searchsorted(keep, [start, stop])
        indptr = np.concatenate([[0], np.cumsum(kept[start:stop])])
        blocks.append((start, stop, lo, hi, a[lo:hi] - 1, indptr))
    event_ptr = np.concatenate([[0], np.cumsum(d.astype(np.intp))])
    by_event = sp.csr_matrix((np.ones(n_ev), np.arange(n_ev), event_ptr),
                             shape=(k_count, n_ev))

    def group_sums(r: NDArray) -> NDArray:
        total = np.zeros((k_count, p))
        for start, stop, lo, hi, groups, indptr in blocks:
            if hi > lo:
                block = sp.csc_matrix((r[lo:hi], groups, indptr), shape=(k_count, stop - start))
                total += block @ x[start:stop]
        return total

    def pieces(beta: NDArray) -> tuple[float, NDArray, NDArray]:
        eta = _xb(x, beta)[keep]
        shift = float(eta.max())
        r = np.exp(eta - shift)
        seg0 = np.bincount(a - 1, weights=r, minlength=k_count)
        seg1 = group_sums(r)
        s0 = np.cumsum(seg0[::-1])[::-1]  # Σ over a >= k
        s1 = np.cumsum(seg1[::-1], axis=0)[::-1]
        r_ev = r[ev_keep]
        by_event.data = r_ev
        s0d = np.bincount(a_ev - 1, weights=r_ev, minlength=k_count)
        s1d = by_event @ x_ev
        den = s0[step_k] - frac * s0d[step_k]
        mean = (s1[step_k] - frac[:, None] * s1d[step_k]) / den[:, None]
        loglik = float((eta[ev_keep]).sum() - np.log(den).sum() - n_ev * shift)
        score = sum_x_ev - mean.sum(axis=0)
        c = np.bincount(step_k, weights=1.0 / den, minlength=k_count)
        g = np.bincount(step_k, weights=frac / den, minlength=k_count)
        cum_c = np.cumsum(c)
        weight = np.zeros(n_all)
        weight[keep] = r * cum_c[a - 1]
        info = _gram(x, weight) - _gram(x_ev, r_ev * g[a_ev - 1]) - _gram(mean)
        return loglik, score, info

    beta = np.zeros(p)
    ll, score, info = pieces(beta)
    converged = False
    it = 0
    for _ in range(max_iter):
        it += 1
        step = _solve_psd(info, score)
        t_step = 1.0
        while True:
            new_beta = beta + t_step * step
            new_ll, new_score, new_info = pieces(new_beta)
            if new_ll >= ll - 1e-12 * abs(ll) or t_step < 1e-6:
                break
            t_step *= 0.5
        change = abs(new_ll - ll)
        # A full Newton step below 1e-6 leaves an error of order 1e-12 (quadratic
        # convergence), so the information just computed is final.
        small = t_step == 1.0 and float(np.max(np.abs(step))) < 1e-6
        beta, ll, score, info = new_beta, new_ll, new_score, new_info
        if change <= tol * (abs(ll) + 1.0) or small:
            converged = True
            break
    return _Fit(beta, _inverse_psd(info), converged, it)


def _independent_columns(gram: NDArray[np.float64], n_lead: int) -> NDArray[np.bool_]:
    """Greedy Gram–Schmidt on a cross-product matrix: which trailing columns to keep.

    The first `n_lead` columns (e.g. the intercept) are always kept; a later column is
    dropped when it is (numerically) a linear combination of the columns kept before it.
    """
    p = gram.shape[0]
    kept: list[int] = list(range(n_lead))
    keep = np.ones(p - n_lead, dtype=bool)
    for j in range(n_lead, p):
        if kept:
            g_kk = gram[np.ix_(kept, kept)]
            g_kj = gram[kept, j]
            resid = gram[j, j] - g_kj @ np.linalg.lstsq(g_kk, g_kj, rcond=None)[0]
        else:
            resid = gram[j, j]
        if resid > 1e-9 * max(gram[j, j], 1e-300):
            kept.append(j)
        else:
            keep[j - n_lead] = False
    return keep


def _expit(v: NDArray) -> NDArray:
    return 0.5 * (1.0 + np.tanh(0.5 * v))
