"""Propensity scores and weights (ATE, ATT, overlap), their diagnostics and balance
(Rosenbaum & Rubin 1983; Austin 2011; Li, Morgan & Zaslavsky 2018)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.stats as st
from numpy.typing import NDArray

from analysis._kernels import (
    _CHUNK_MV,
    _expit,
    _fit_logistic,
    _xb,
    _xtv,
)
from analysis._results import CountedText, Result
from analysis.adjustment.balance import SMD_THRESHOLD
from analysis.adjustment.design import (
    KP,
    VP,
    CovariateDesign,
    covariate_design,
    default_covariates,
    treatment_indicator,
)
from analysis.errors import InsufficientDataError

# --------------------------------------------------------------------------------------------
# Propensity score and weights
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class PropensityResult(Result):
    """Propensity scores, weights and balance diagnostics.

    Attributes
    ----------
    scores : pandas.Series
        Estimated P(KP | covariates), indexed like the records (NaN where not modelled).
    weights : pandas.Series
        Weights, indexed like the records (NaN where not modelled, 0 where trimmed).
    balance : pandas.DataFrame
        One row per design column plus the reference level of each categorical covariate:
        ``covariate, smd_before, smd_after, balanced_after`` (|SMD after| < 0.1), and a row
        per multi-level categorical covariate (``"country (all levels)"``) with the Yang &
        Dalton SMD.
    weight_summary : pandas.DataFrame
        Per group (vertebroplasty, kyphoplasty, all): ``group, n, min, p1, median, p99, max,
        sum, ess`` (Kish effective sample size (Σw)²/Σw², over the non-trimmed records).
    positivity_warning : str or None
        Set when more than 1% of the scores are below 0.025 or above 0.975, or the largest
        weight exceeds 20.
    c_statistic : float
        Area under the ROC curve of the scores for KP vs VP.
    formula : str
        The propensity model, statsmodels notation.
    n_used : int
        Records modelled.
    n_dropped_missing : int
        KP/VP records not modelled for a missing categorical covariate.
    estimand : str
        ``"ATE"``, ``"ATT"`` or ``"overlap"``.
    stabilised : bool
        Whether the weights were stabilised.
    n_trimmed : int
        Records given weight 0 by `trim`.
    dropped_covariates : tuple of str
        Covariates or columns dropped, with the reason.
    imputed : dict
        Numeric covariate → records with a median-imputed value.
    """

    scores: pd.Series
    weights: pd.Series
    balance: pd.DataFrame
    weight_summary: pd.DataFrame
    positivity_warning: str | None
    c_statistic: float
    formula: str
    n_used: int
    n_dropped_missing: int
    estimand: str
    stabilised: bool
    n_trimmed: int
    dropped_covariates: tuple[str, ...]
    imputed: dict[str, int]


def _c_statistic(scores: NDArray, treated: NDArray) -> float:
    n1 = int((treated == 1).sum())
    n0 = int(treated.size - n1)
    if n1 == 0 or n0 == 0:
        return math.nan
    ranks = st.rankdata(scores)
    return float((ranks[treated == 1].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def _weights(e: NDArray, t: NDArray, estimand: str, stabilised: bool) -> NDArray:
    p1 = float(t.mean())
    if estimand == "ATE":
        w = np.where(t == 1, 1.0 / e, 1.0 / (1.0 - e))
        if stabilised:
            w = w * np.where(t == 1, p1, 1.0 - p1)
    elif estimand == "ATT":
        w = np.where(t == 1, 1.0, e / (1.0 - e))
        if stabilised:
            w = np.where(t == 1, 1.0, w * (1.0 - p1) / p1)
    elif estimand == "overlap":
        w = np.where(t == 1, 1.0 - e, e)
    else:
        raise ValueError(f"estimand must be 'ATE', 'ATT' or 'overlap', got {estimand!r}")
    return w


def _weight_summary(w: NDArray, t: NDArray, active: NDArray) -> pd.DataFrame:
    rows = []
    for label, sel in ((VP, t == 0), (KP, t == 1), ("all", np.ones(t.size, bool))):
        v = w[sel & active]
        if v.size == 0:
            rows.append({"group": label, "n": 0})
            continue
        q = np.quantile(v, [0.0, 0.01, 0.5, 0.99, 1.0])
        rows.append({
            "group": label, "n": int(v.size), "min": q[0], "p1": q[1], "median": q[2],
            "p99": q[3], "max": q[4], "sum": float(v.sum()),
            "ess": float(v.sum() ** 2 / (v * v).sum()),
        })
    return pd.DataFrame(rows, columns=["group", "n", "min", "p1", "median", "p99", "max",
                                       "sum", "ess"])


def _group_moments(
    x: NDArray[np.float64], t: NDArray[np.float64], w: NDArray[np.float64] | None
) -> dict[float, tuple[NDArray, NDArray]]:
    """Per group (1 = KP, 0 = VP): column means and (weighted) variances of ``x``.

    Unweighted: sample variance (ddof 1). Weighted: Austin & Stuart (2015)
    ``Σw / ((Σw)² − Σw²) · Σw (x − x̄_w)²``, which reduces to the former when w = 1.
    """
    out = {}
    for g in (1.0, 0.0):
        wg = (t == g).astype(float) if w is None else np.where(t == g, w, 0.0)
        s0 = float(wg.sum())
        sw2 = float((wg * wg).sum())
        if not s0 > 0:
            nan = np.full(x.shape[1], np.nan)
            out[g] = (nan, nan)
            continue
        mean = _xtv(x, wg) / s0
        centred_ss = np.zeros(x.shape[1])
        for start in range(0, x.shape[0], _CHUNK_MV * 16):
            block = x[start:start + _CHUNK_MV * 16] - mean
            centred_ss += (block * block).T @ wg[start:start + _CHUNK_MV * 16]
        denom = s0 * s0 - sw2
        var = s0 / denom * centred_ss if denom > 0 else np.full(x.shape[1], np.nan)
        out[g] = (mean, var)
    return out


def _smd_from_moments(
    m1: NDArray, v1: NDArray, m0: NDArray, v0: NDArray, binary: NDArray[np.bool_]
) -> NDArray[np.float64]:
    v1 = np.where(binary, m1 * (1 - m1), v1)
    v0 = np.where(binary, m0 * (1 - m0), v0)
    diff = m1 - m0
    denom = np.sqrt((v1 + v0) / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        smd = diff / denom
        return np.where(denom == 0, np.where(diff == 0, 0.0, np.sign(diff) * np.inf), smd)


def _yang_dalton(p1: NDArray, p0: NDArray) -> float:
    """Yang & Dalton SMD from the proportions of levels 2..k in each group."""
    diff = p1 - p0
    if not np.any(diff):
        return 0.0
    cov = (np.diag(p1) - np.outer(p1, p1) + np.diag(p0) - np.outer(p0, p0)) / 2.0
    if np.allclose(cov, 0):
        return math.inf
    return math.sqrt(max(float(diff @ np.linalg.pinv(cov) @ diff), 0.0))


def _balance_table(design: CovariateDesign, t: NDArray, w: NDArray) -> pd.DataFrame:
    """SMD before/after weighting of every design column, reference levels included."""
    x = design.covariate_matrix
    names = list(design.covariate_names)
    binary = np.array([not (n in design.covariates and n not in design.levels)
                       for n in names])
    # A numeric covariate with two values (e.g. coded 0/1) is binary: recode it to 0/1.
    for j in np.flatnonzero(~binary):
        col = x[:, j]
        low, high = float(col.min()), float(col.max())
        if low < high and bool(np.all((col == low) | (col == high))):
            x = x.copy() if x.base is not None else x
            x[:, j] = (col == high).astype(float)
            binary[j] = True
    before = _group_moments(x, t, None)
    after = _group_moments(x, t, w)
    smd_b = _smd_from_moments(*before[1.0], *before[0.0], binary)
    smd_a = _smd_from_moments(*after[1.0], *after[0.0], binary)
    index = {n: j for j, n in enumerate(names)}
    rows = []
    for cov in design.covariates:
        if cov in design.levels:
            ref, others = design.levels[cov]
            cols = [index[f"{cov}[{lv}]"] for lv in others if f"{cov}[{lv}]" in index]
            # Reference level: proportion 1 − Σ(other levels), same binary formula.
            ref_smd = []
            yd = []
            for moments in (before, after):
                p1 = moments[1.0][0][cols]
                p0 = moments[0.0][0][cols]
                r1, r0 = np.array([1 - p1.sum()]), np.array([1 - p0.sum()])
                ref_smd.append(float(_smd_from_moments(r1, r1, r0, r0, np.array([True]))[0]))
                yd.append(_yang_dalton(p1, p0))
            rows.append((f"{cov}[{ref}]", ref_smd[0], ref_smd[1]))
            rows += [(names[j], float(smd_b[j]), float(smd_a[j])) for j in cols]
            if len(cols) > 1:
                rows.append((f"{cov} (all levels)", yd[0], yd[1]))
        else:
            for name in (cov, f"{cov}_missing"):
                if name in index:
                    j = index[name]
                    rows.append((name, float(smd_b[j]), float(smd_a[j])))
    frame = pd.DataFrame(rows, columns=["covariate", "smd_before", "smd_after"])
    frame["balanced_after"] = frame["smd_after"].abs() < SMD_THRESHOLD
    return frame


def _propensity(
    x: NDArray[np.float64],
    t: NDArray[np.float64],
    estimand: str,
    stabilised: bool,
    trim: float | tuple[float, float] | None,
) -> tuple[NDArray, NDArray, NDArray[np.bool_], list[str]]:
    """Scores, weights, untrimmed mask and positivity warnings from a model matrix."""
    fit = _fit_logistic(x, t)
    e = np.clip(_expit(_xb(x, fit.params)), 1e-12, 1 - 1e-12)
    w = _weights(e, t, estimand, stabilised)
    active = np.ones(t.size, dtype=bool)
    if trim is not None:
        low_q, high_q = (trim, 1.0 - trim) if np.ndim(trim) == 0 else tuple(trim)
        if not 0.0 <= low_q < high_q <= 1.0:
            raise ValueError(f"trim must give quantiles 0 <= low < high <= 1, got {trim!r}")
        # Stürmer et al. (2010): below the low quantile of the treated scores, or above
        # the high quantile of the untreated scores.
        lo = float(np.quantile(e[t == 1], low_q))
        hi = float(np.quantile(e[t == 0], high_q))
        active = (e >= lo) & (e <= hi)
        w = np.where(active, w, 0.0)
    notes = []
    extreme = float(np.mean((e < 0.025) | (e > 0.975)))
    if extreme > 0.01:
        notes.append(f"{extreme:.1%} of propensity scores are below 0.025 or above 0.975 "
                     "(poor overlap)")
    if float(w.max()) > 20:
        notes.append(f"largest weight is {float(w.max()):.1f} (> 20)")
    if not fit.converged:
        notes.append("propensity model did not converge (separation?)")
    return e, w, active, notes


def propensity_weights(
    records: pd.DataFrame,
    covariates: Sequence[str] | None = None,
    estimand: str = "ATE",
    stabilised: bool = True,
    trim: float | tuple[float, float] | None = None,
) -> PropensityResult:
    """Propensity score of kyphoplasty, inverse-probability (or overlap) weights and balance.

    Parameters
    ----------
    records : pandas.DataFrame
        Procedure records (``procedure`` and the covariates).
    covariates : sequence of str, optional
        Default: age, sex, etiology, levels_treated, country, plus fracture_age_weeks and
        prior_fractures when the records have values for them. Coding: see the module notes
        (median imputation + missing indicator for numeric covariates, records with a missing
        categorical value left out, single-level covariates dropped).
    estimand : {"ATE", "ATT", "overlap"}, default "ATE"
        ATE: ``w = T/e + (1 − T)/(1 − e)``; ATT: 1 for KP, ``e/(1 − e)`` for VP; overlap:
        ``T(1 − e) + (1 − T)e`` (Li, Morgan & Zaslavsky 2018), bounded and giving exact mean
        balance of the model covariates.
    stabilised : bool, default True
        ATE: multiply by P(T) for KP and 1 − P(T) for VP (Xu et al. 2010), so that the
        weights average about 1 in each group; ATT: VP weights times (1 − P(T))/P(T). No
        effect for overlap weights (already bounded in [0, 1]).
    trim : float or (float, float), optional
        Asymmetric trimming (Stürmer et al. 2010): records whose score is below the `q`
        quantile of the KP scores or above the ``1 − q`` quantile of the VP scores (or the
        given ``(low, high)`` quantiles) get weight 0, e.g. ``trim=0.01`` for the 1st/99th
        percentiles. The scores are not refitted.

    Returns
    -------
    PropensityResult

    Raises
    ------
    InsufficientDataError
        When either procedure has fewer than 2 modelled records.

    Notes
    -----
    Logistic model fitted by maximum likelihood (Newton–Raphson; same estimates as
    ``smf.logit``). Balance: SMD before/after weighting for every design column and every
    level of categorical covariates, with weighted variances (Austin & Stuart 2015); |SMD|
    < 0.1 counts as balanced (Austin 2009). Weight summary with Kish's effective sample
    size per group. ``positivity_warning`` flags scores near 0 or 1 (more than 1% outside
    [0.025, 0.975]) or a largest weight above 20; consider ``trim`` or overlap weights.

    Examples
    --------
    >>> from data import demo_records
    >>> ps = propensity_weights(demo_records(2000, seed=3))
    >>> bool(ps.balance["balanced_after"].all())
    True
    """
    if estimand not in ("ATE", "ATT", "overlap"):
        raise ValueError(f"estimand must be 'ATE', 'ATT' or 'overlap', got {estimand!r}")
    method = "Propensity score"
    t_all = treatment_indicator(records)
    covariates = default_covariates(records) if covariates is None else tuple(covariates)
    design = covariate_design(records, covariates, ~np.isnan(t_all), intercept=True)
    t = t_all[design.rows]
    n1, n0 = int((t == 1).sum()), int((t == 0).sum())
    for label, count in ((KP, n1), (VP, n0)):
        if count < 2:
            raise InsufficientDataError(method, CountedText.of(
                "{label} has {count} modelled record(s); 2 are needed", label=label,
                count=count))
    e, w, active, warnings_text = _propensity(design.matrix, t, estimand, stabilised, trim)
    n_trimmed = int((~active).sum())
    scores = pd.Series(np.nan, index=records.index, name="propensity_score")
    scores.iloc[design.rows] = e
    weights = pd.Series(np.nan, index=records.index, name="weight")
    weights.iloc[design.rows] = w
    formula = "kp ~ " + (" + ".join(design.terms) if design.terms else "1")
    if design.imputed:
        formula += "  (missing values: median + indicator for " + ", ".join(design.imputed) + ")"
    return PropensityResult(
        scores=scores,
        weights=weights,
        balance=_balance_table(design, t, np.where(active, w, 0.0)),
        weight_summary=_weight_summary(w, t, active),
        positivity_warning="; ".join(warnings_text) if warnings_text else None,
        c_statistic=_c_statistic(e, t),
        formula=formula,
        n_used=int(t.size),
        n_dropped_missing=design.n_dropped_missing,
        estimand=estimand,
        stabilised=bool(stabilised) and estimand != "overlap",
        n_trimmed=n_trimmed,
        dropped_covariates=design.dropped,
        imputed=dict(design.imputed),
    )
