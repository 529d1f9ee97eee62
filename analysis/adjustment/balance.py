"""Standardised mean differences before and after weighting (Austin 2009; Austin & Stuart
2015; Yang & Dalton 2012 for multi-level categorical variables)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

#: Balance threshold for |SMD| (Austin 2009).
SMD_THRESHOLD = 0.1


# --------------------------------------------------------------------------------------------
# Standardised differences
# --------------------------------------------------------------------------------------------


def _weighted_mean_var(
    x: NDArray[np.float64], w: NDArray[np.float64] | None
) -> tuple[float, float]:
    """Mean and variance; weighted variance Σw/((Σw)²−Σw²)·Σw(x−x̄_w)² (Austin & Stuart)."""
    if w is None:
        if x.size == 0:
            return math.nan, math.nan
        return float(x.mean()), float(x.var(ddof=1)) if x.size > 1 else math.nan
    sw = float(w.sum())
    if not sw > 0:
        return math.nan, math.nan
    mean = float((w * x).sum() / sw)
    sw2 = float((w * w).sum())
    denom = sw * sw - sw2
    var = float(sw / denom * (w * (x - mean) ** 2).sum()) if denom > 0 else math.nan
    return mean, var


def standardised_difference(
    x: ArrayLike,
    treated: ArrayLike,
    weights: ArrayLike | None = None,
    binary: bool | None = None,
) -> float:
    """Standardised mean difference of one covariate, KP (treated = 1) minus VP (treated = 0).

    Parameters
    ----------
    x : array_like
        Covariate values (NaN are ignored).
    treated : array_like
        1 for kyphoplasty, 0 for vertebroplasty.
    weights : array_like, optional
        Weights (e.g. IPTW); None for the unweighted SMD.
    binary : bool, optional
        Use the binary formula; default: detected (values only 0 and 1).

    Returns
    -------
    float
        Continuous: ``(x̄1 − x̄0) / sqrt((s1² + s0²) / 2)``. Binary:
        ``(p1 − p0) / sqrt((p1(1 − p1) + p0(1 − p0)) / 2)`` (Austin 2009). 0 when both
        groups are constant and equal; ±inf when they are constant and differ.

    Notes
    -----
    Weighted version (Austin & Stuart 2015): weighted means/proportions, and for continuous
    covariates the weighted variance ``s_w² = Σw / ((Σw)² − Σw²) · Σw (x − x̄_w)²`` in
    each group, so the denominator is recomputed in the weighted sample. R ``cobalt`` keeps
    the unweighted denominator instead; the two agree when weighting barely changes the
    spread.

    Examples
    --------
    >>> treated = [1] * 6 + [0] * 7
    >>> age = [72, 78, 81, 69, 85, 77, 70, 66, 74, 68, 71, 73, 65]
    >>> round(standardised_difference(age, treated), 4)
    1.5554
    """
    xv = np.asarray(x, dtype=float)
    tv = np.asarray(treated, dtype=float)
    wv = None if weights is None else np.asarray(weights, dtype=float)
    ok = ~np.isnan(xv) & ~np.isnan(tv)
    if wv is not None:
        ok &= ~np.isnan(wv)
    xv, tv = xv[ok], tv[ok]
    wv = None if wv is None else wv[ok]
    if binary is None:
        binary = bool(np.isin(xv, (0.0, 1.0)).all())
    g1, g0 = tv == 1, tv == 0
    m1, v1 = _weighted_mean_var(xv[g1], None if wv is None else wv[g1])
    m0, v0 = _weighted_mean_var(xv[g0], None if wv is None else wv[g0])
    if binary:
        v1, v0 = m1 * (1 - m1), m0 * (1 - m0)
    diff = m1 - m0
    denom = math.sqrt((v1 + v0) / 2.0) if not (math.isnan(v1) or math.isnan(v0)) else math.nan
    if math.isnan(diff) or math.isnan(denom):
        return math.nan
    if denom == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / denom


def smd_categorical(
    codes: ArrayLike, treated: ArrayLike, weights: ArrayLike | None = None
) -> float:
    """Multi-level SMD of a categorical variable (Yang & Dalton 2012), unsigned.

    ``sqrt((T − C)' S⁻¹ (T − C))`` with T, C the proportions of levels 2..k in each group and
    ``S = (Σ_T + Σ_C) / 2``, Σ the multinomial covariance ``diag(p) − p p'``. For two levels
    it equals the absolute binary SMD.

    Parameters
    ----------
    codes : array_like
        Level of each record (any hashable labels; NaN/None are ignored).
    treated : array_like
        1 for kyphoplasty, 0 for vertebroplasty.
    weights : array_like, optional
        Weights for the weighted version (weighted proportions).

    Returns
    -------
    float

    Examples
    --------
    >>> round(smd_categorical(["a", "b", "b", "a", "a", "b"], [1, 1, 1, 0, 0, 0]), 4)
    0.7071
    """
    array = np.asarray(codes)
    # Numbers (e.g. integer level codes with NaN for missing) need no object conversion.
    labels = pd.Series(array if array.dtype.kind in "fiu" else np.asarray(codes, dtype=object))
    tv = np.asarray(treated, dtype=float)
    wv = np.ones(tv.size) if weights is None else np.asarray(weights, dtype=float)
    ok = labels.notna().to_numpy() & ~np.isnan(tv) & ~np.isnan(wv)
    cat, uniques = pd.factorize(labels[ok], sort=True)
    tv, wv = tv[ok], wv[ok]
    k = len(uniques)
    if k < 2:
        return 0.0 if k == 1 else math.nan
    props = []
    for g in (1.0, 0.0):
        sel = tv == g
        total = wv[sel].sum()
        if not total > 0:
            return math.nan
        props.append(np.bincount(cat[sel], weights=wv[sel], minlength=k) / total)
    p1, p0 = props[0][1:], props[1][1:]
    cov = (np.diag(p1) - np.outer(p1, p1) + np.diag(p0) - np.outer(p0, p0)) / 2.0
    diff = p1 - p0
    if not np.any(diff):
        return 0.0
    value = float(diff @ np.linalg.pinv(cov) @ diff)
    if not np.isfinite(value) or np.allclose(cov, 0):
        return math.inf
    return math.sqrt(max(value, 0.0))
