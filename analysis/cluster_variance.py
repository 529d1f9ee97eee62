"""Cluster-robust (facility-clustered) variances of the KP vs VP effect estimates.

Records from the same facility share operators, equipment, case mix and follow-up routines,
so they are not independent: model-based standard errors are too small when the outcome is
correlated within facilities. These helpers give the cluster-robust ("sandwich") variance
from scores summed within clusters (``np.bincount`` / one sparse product, O(n p), no copy of
the design), so the same code serves the statsmodels path and the vectorised path used
above 200,000 records.

* :func:`cluster_codes` — integer cluster codes; a record without a cluster is its own one.
* :func:`cluster_sums` — Σ_{i in g} u_i x_i for every cluster g.
* :func:`cr1_sandwich` — ``c · B⁻¹ (Σ_g s_g s_g') B⁻¹`` with the CR1 factor
  ``c = G/(G−1) · (n−1)/(n−k)`` (R ``sandwich::vcovCL(type = "HC1", cadjust = TRUE)``,
  Stata's default).
* :func:`ols_cluster_cov`, :func:`gamma_log_cluster_cov` — CR1 covariance of an (optionally
  weighted) least-squares fit and of a gamma GLM with log link.
* :func:`gcomp_cluster_se` — standard errors of the standardised (g-computation) risk
  difference and log risk ratio from the stacked estimating equations of the logistic model
  and the two mean risks, summed by cluster (CR1).
* :func:`cox_cluster_cov` — Lin–Wei robust covariance of a Cox model with Efron ties
  (R ``coxph(..., cluster = facility_id)``; no small-sample factor, as R).
* :func:`cluster_bootstrap_mean_difference` — percentile cluster bootstrap of a difference in
  means (resampling whole clusters), from per-cluster sums: O(B·G) after one pass.
* :func:`cluster_quantile` — the t(G − 1) quantile used for the clustered Wald intervals.

References
----------
.. [1] Liang KY, Zeger SL. Longitudinal data analysis using generalized linear models.
   Biometrika 1986;73:13-22.
.. [2] Cameron AC, Miller DL. A practitioner's guide to cluster-robust inference. J Hum
   Resour 2015;50:317-372 (CR1 factor, t(G − 1) reference distribution).
.. [3] Lin DY, Wei LJ. The robust inference for the Cox proportional hazards model. J Am Stat
   Assoc 1989;84:1074-1078.
.. [4] Zeileis A, Köll S, Graham N. Various versatile variances: an object-oriented
   implementation of clustered covariances in R. J Stat Softw 2020;95(1):1-36.
.. [5] Field CA, Welsh AH. Bootstrapping clustered data. J R Stat Soc B 2007;69:369-390.
.. [6] Stefanski LA, Boos DD. The calculus of M-estimation. Am Stat 2002;56:29-38.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.stats as st
from numpy.typing import ArrayLike, NDArray

# Row-blocked X'WX, X'v and Xb: one tall BLAS call is very slow on a loaded machine.
from analysis._kernels import _gram, _xb, _xtv

__all__ = [
    "cluster_bootstrap_mean_difference",
    "cluster_codes",
    "cluster_quantile",
    "cluster_sums",
    "cox_cluster_cov",
    "cr1_factor",
    "cr1_sandwich",
    "gamma_log_cluster_cov",
    "gcomp_cluster_se",
    "ols_cluster_cov",
]


def cluster_codes(values: ArrayLike) -> tuple[NDArray[np.intp], int]:
    """Integer codes 0..G−1 of cluster labels and the number of clusters G.

    A missing label makes the record a cluster of its own (it is then treated as
    independent of every other record).

    Examples
    --------
    >>> codes, g = cluster_codes(["F1", "F2", None, "F1"])
    >>> codes.tolist(), g
    ([0, 1, 2, 0], 3)
    """
    codes, uniques = pd.factorize(pd.Series(np.asarray(values, dtype=object)), sort=False)
    codes = np.asarray(codes, dtype=np.intp)
    missing = codes < 0
    n_named = len(uniques)
    if missing.any():
        codes[missing] = n_named + np.arange(int(missing.sum()))
    return codes, n_named + int(missing.sum())


def cluster_sums(
    x: NDArray[np.float64], u: NDArray[np.float64], codes: NDArray[np.intp], n_clusters: int
) -> NDArray[np.float64]:
    """``S[g] = Σ_{i: codes_i = g} u_i x_i`` (shape G × p) by one sparse product (no copy of x).

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [1.0, 3.0], [1.0, 5.0]])
    >>> cluster_sums(x, np.array([1.0, -1.0, 2.0]), np.array([0, 0, 1]), 2).tolist()
    [[0.0, -1.0], [2.0, 10.0]]
    """
    n = x.shape[0]
    indicator = sp.csc_matrix((np.asarray(u, dtype=float), np.asarray(codes), np.arange(n + 1)),
                              shape=(n_clusters, n))
    return np.asarray(indicator @ x)


def cr1_factor(n_clusters: int, n: int, k: int) -> float:
    """CR1 small-sample factor ``G/(G−1) · (n−1)/(n−k)`` (R ``vcovCL(type = "HC1")``)."""
    if n_clusters < 2:
        raise ValueError("a cluster-robust variance needs at least 2 clusters")
    return n_clusters / (n_clusters - 1) * (n - 1) / (n - k)


def cr1_sandwich(
    bread_inverse: NDArray[np.float64], score_sums: NDArray[np.float64], factor: float
) -> NDArray[np.float64]:
    """``factor · B⁻¹ (Σ_g s_g s_g') B⁻¹`` from the per-cluster score sums ``s_g`` (G × p)."""
    meat = score_sums.T @ score_sums
    return factor * (bread_inverse @ meat @ bread_inverse)


def cluster_quantile(level: float, n_clusters: int) -> float:
    """Two-sided quantile of t with G − 1 degrees of freedom (Cameron & Miller 2015).

    Examples
    --------
    >>> round(cluster_quantile(0.95, 40), 4)
    2.0227
    """
    return float(st.t.isf((1.0 - level) / 2.0, n_clusters - 1))


def _used_codes(codes: NDArray[np.intp], used: NDArray[np.bool_] | None) -> int:
    """Clusters with at least one used record."""
    return int(np.count_nonzero(np.bincount(codes if used is None else codes[used])))


def ols_cluster_cov(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    beta: NDArray[np.float64],
    codes: NDArray[np.intp],
    mask: NDArray[np.bool_] | None = None,
    weights: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], int]:
    """CR1 covariance of (weighted) least squares and the number of clusters used.

    ``(X'WX)⁻¹ [Σ_g (Σ_{i∈g} w_i x_i e_i)(…)'] (X'WX)⁻¹ · G/(G−1)·(n−1)/(n−k)``: R
    ``vcovCL(lm(y ~ x, weights = w), cluster = ~g, type = "HC1")``. Rows outside `mask` (and
    with weight 0) are not used; `y` must be finite on every row; ``k`` is the rank of X on
    the used rows.
    """
    w = np.ones(x.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    if mask is not None:
        w = w * mask
    used = w > 0
    n = int(used.sum())
    gram = _gram(x, w)
    bread_inv = np.linalg.pinv(gram)
    resid = np.where(used, y - _xb(x, beta), 0.0)
    n_clusters = _used_codes(codes, used)
    sums = cluster_sums(x, w * resid, codes, int(codes.max()) + 1)
    k = int(np.linalg.matrix_rank(gram))
    return cr1_sandwich(bread_inv, sums, cr1_factor(n_clusters, n, k)), n_clusters


def gamma_log_cluster_cov(
    x: NDArray[np.float64], y: NDArray[np.float64], beta: NDArray[np.float64],
    codes: NDArray[np.intp],
) -> tuple[NDArray[np.float64], int]:
    """CR1 covariance of a gamma GLM with log link (``vcovCL(glm(…, Gamma("log")), type =
    "HC1")``).

    Scores ``x_i (y_i − μ_i)/μ_i``, bread ``X'X`` (the IRLS weights of the gamma family with
    log link are 1); the dispersion cancels.
    """
    mu = np.exp(_xb(x, beta))
    n, k = x.shape
    n_clusters = _used_codes(codes, None)
    sums = cluster_sums(x, (y - mu) / mu, codes, int(codes.max()) + 1)
    bread_inv = np.linalg.inv(_gram(x))
    return cr1_sandwich(bread_inv, sums, cr1_factor(n_clusters, n, k)), n_clusters


def gcomp_cluster_se(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    beta: NDArray[np.float64],
    codes: NDArray[np.intp],
    kp: int,
    obs: NDArray[np.bool_] | None = None,
) -> tuple[float, float, int]:
    """Cluster-robust SEs of the g-computation risk difference and log risk ratio.

    The standardised risks ``μ_a = mean_i expit(x_i(a) β)`` (kp set to a) and β solve the
    stacked estimating equations ``Σ x_i (y_i − p_i) = 0``, ``Σ (expit(x_i(a)β) − μ_a) = 0``
    (Stefanski & Boos 2002). Their influence on ``μ_a`` is
    ``φ_ai = (p_ai − μ_a)/n + h_a' A⁻¹ x_i (y_i − p_i)`` with A the logistic information and
    ``h_a = mean_i p_ai (1 − p_ai) x_i(a)``; the variance of ``μ_1 − μ_0`` (and of
    ``log μ_1 − log μ_0``) is the CR1-scaled sum over clusters of the squared cluster sums of
    φ. Unlike the delta method of :func:`analysis.adjustment.standardised_risks` (n_boot =
    0) it includes the sampling variability of the covariate distribution.

    `obs` marks the modelled rows (the others get weight 0; no copy of `x`). Returns the SE
    of the RD, the SE of log RR (NaN if a risk is 0) and the clusters used.
    """
    w = np.ones(x.shape[0]) if obs is None else obs.astype(float)
    n, k = int(w.sum()), x.shape[1]
    eta = _xb(x, beta)
    p = _expit(eta)
    base = eta - x[:, kp] * beta[kp]
    p1, p0 = _expit(base + beta[kp]), _expit(base)
    mu1, mu0 = float(p1 @ w) / n, float(p0 @ w) / n
    v1, v0 = p1 * (1 - p1) * w, p0 * (1 - p0) * w
    h1, h0 = _xtv(x, v1) / n, _xtv(x, v0) / n
    h1[kp], h0[kp] = float(v1.sum()) / n, 0.0
    a_inv = np.linalg.inv(_gram(x, p * (1 - p) * w))
    used = w > 0
    n_clusters = _used_codes(codes, used)
    size = int(codes.max()) + 1
    # Cluster sums of the β-scores x_i e_i, projected on A⁻¹ h (no per-record matrix).
    beta_sums = cluster_sums(x, (y - p) * w, codes, size)
    phi1 = np.bincount(codes, weights=(p1 - mu1) * w / n, minlength=size) + beta_sums @ (
        a_inv @ h1)
    phi0 = np.bincount(codes, weights=(p0 - mu0) * w / n, minlength=size) + beta_sums @ (
        a_inv @ h0)
    factor = cr1_factor(n_clusters, n, k)
    se_rd = math.sqrt(factor * float(((phi1 - phi0) ** 2).sum()))
    se_log = math.nan
    if mu1 > 0 and mu0 > 0:
        se_log = math.sqrt(factor * float(((phi1 / mu1 - phi0 / mu0) ** 2).sum()))
    return se_rd, se_log, n_clusters


def _expit(v: NDArray) -> NDArray:
    return 0.5 * (1.0 + np.tanh(0.5 * v))


def cox_cluster_cov(
    time: NDArray[np.float64],
    event: NDArray[np.float64],
    x: NDArray[np.float64],
    beta: NDArray[np.float64],
    naive_cov: NDArray[np.float64],
    codes: NDArray[np.intp],
) -> tuple[NDArray[np.float64], int]:
    """Lin–Wei robust covariance ``V (Σ_g U_g U_g') V`` of a Cox model with Efron ties.

    ``U_g`` sums the Efron score residuals of cluster g (R ``residuals(fit, "score")``) and
    V is the model-based covariance (inverse information), as R ``coxph(..., cluster =)``
    computes it — without a small-sample factor. Records with a NaN time or a time before
    the first event contribute 0. Vectorised: the per-record residuals are never formed;
    their cluster sums come from sparse products over the risk-set groups (O(n p)).

    For a record i at risk at the event times u_1..u_{a_i} (a_i = number of event times
    ≤ t_i) the residual is ``δ_i (x_i − m̄_{a_i}) − r_i (x_i C_i − B_i)`` with, over the
    Efron steps l = 0..d_k−1 of each event time k (denominator ``den_kl = S0_k − (l/d_k)
    S0D_k``, mean ``m_kl``), ``C_i = Σ_{k≤a_i} Σ_l w_ikl/den_kl`` and ``B_i = Σ_{k≤a_i} Σ_l
    w_ikl m_kl/den_kl``, ``w_ikl = 1 − l/d_k`` if i dies at k, else 1, and m̄_k the average
    of the d_k means.
    """
    ok = ~np.isnan(time)
    ev = ok & (event > 0)
    n_clusters = _used_codes(codes, ok)
    size = int(codes.max()) + 1
    u = np.unique(time[ev])
    k_count = u.size
    a = np.where(ok, np.searchsorted(u, np.where(ok, time, -np.inf), side="right"), 0)
    eta = _xb(x, beta)
    shift = float(eta[a > 0].max()) if (a > 0).any() else 0.0
    r = np.where(a > 0, np.exp(np.minimum(eta - shift, 700.0)), 0.0)
    n = x.shape[0]
    # Group (by a) sums: S0/S1 over a >= k are reverse cumulative sums.
    by_group = sp.csc_matrix((r, np.maximum(a - 1, 0), np.arange(n + 1)), shape=(k_count, n))
    seg1 = np.asarray(by_group @ x)
    seg0 = np.bincount(np.maximum(a - 1, 0), weights=r, minlength=k_count)
    s0 = np.cumsum(seg0[::-1])[::-1]
    s1 = np.cumsum(seg1[::-1], axis=0)[::-1]
    evi = np.flatnonzero(ev)
    a_ev = a[evi] - 1
    d = np.bincount(a_ev, minlength=k_count).astype(float)
    s0d = np.bincount(a_ev, weights=r[evi], minlength=k_count)
    by_event = sp.csc_matrix((r[evi], a_ev, np.arange(evi.size + 1)), shape=(k_count, evi.size))
    s1d = np.asarray(by_event @ x[evi])
    step_k = np.repeat(np.arange(k_count), d.astype(int))
    l_step = np.arange(step_k.size) - np.repeat(np.cumsum(d) - d, d.astype(int))
    frac = l_step / d[step_k]
    den = s0[step_k] - frac * s0d[step_k]
    mean = (s1[step_k] - frac[:, None] * s1d[step_k]) / den[:, None]

    def per_time(values: NDArray) -> NDArray:
        if values.ndim == 1:
            return np.bincount(step_k, weights=values, minlength=k_count)
        return np.column_stack([np.bincount(step_k, weights=values[:, j], minlength=k_count)
                                for j in range(values.shape[1])])

    cum_c = np.cumsum(per_time(1.0 / den))
    cum_m = np.cumsum(per_time(mean / den[:, None]), axis=0)
    g = per_time(frac / den)
    g_m = per_time(frac[:, None] * mean / den[:, None])
    m_bar = per_time(mean) / d[:, None]
    at = a > 0
    last = np.maximum(a - 1, 0)
    delta = ev.astype(float)
    # Coefficient of x_i in the residual, and the risk-set terms by (cluster, time) tables.
    coef = delta - np.where(at, r * (cum_c[last] - delta * g[last]), 0.0)
    sums = cluster_sums(x, coef, codes, size)

    def table(weights: NDArray) -> sp.csr_matrix:
        keep = at & (weights != 0)
        return sp.csr_matrix((weights[keep], (codes[keep], last[keep])), shape=(size, k_count))

    sums += table(r) @ cum_m
    sums -= table(r * delta) @ g_m
    sums -= table(delta) @ m_bar
    robust = naive_cov @ (sums.T @ sums) @ naive_cov
    return robust, n_clusters


def cluster_bootstrap_mean_difference(
    values: NDArray[np.float64],
    treated: NDArray[np.bool_],
    codes: NDArray[np.intp],
    n_resamples: int,
    level: float,
    seed: int,
) -> tuple[float, float, float, int]:
    """Percentile cluster bootstrap of mean(values | treated) − mean(values | not treated).

    Each replicate draws G clusters with replacement (Field & Welsh 2007; Davison & Hinkley
    1997 §3.8) and recomputes the difference from the per-cluster sums and counts, so a
    replicate costs O(G) whatever the number of records. Returns the lower and upper
    limits, the bootstrap SE and G.
    """
    size = int(codes.max()) + 1
    sum1 = np.bincount(codes, weights=np.where(treated, values, 0.0), minlength=size)
    sum0 = np.bincount(codes, weights=np.where(treated, 0.0, values), minlength=size)
    n1 = np.bincount(codes, weights=treated.astype(float), minlength=size)
    n0 = np.bincount(codes, weights=(~treated).astype(float), minlength=size)
    present = (n1 + n0) > 0
    sum1, sum0, n1, n0 = sum1[present], sum0[present], n1[present], n0[present]
    n_clusters = int(present.sum())
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples)
    for start in range(0, n_resamples, 500):
        stop = min(n_resamples, start + 500)
        draws = rng.integers(0, n_clusters, size=(stop - start, n_clusters))
        counts = np.zeros((stop - start, n_clusters))
        np.add.at(counts, (np.repeat(np.arange(stop - start), n_clusters), draws.ravel()), 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            diffs[start:stop] = counts @ sum1 / (counts @ n1) - counts @ sum0 / (counts @ n0)
    diffs = diffs[np.isfinite(diffs)]
    alpha = 1.0 - level
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high), float(np.std(diffs, ddof=1)), n_clusters
