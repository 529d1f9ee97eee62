"""The IPTW effect of KP versus VP on an outcome: weighted difference in risks or means with a
sandwich standard error (Austin & Stuart 2015)."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
import scipy.stats as st
import statsmodels.api as sm
from numpy.typing import ArrayLike, NDArray
from statsmodels.tools.sm_exceptions import DomainWarning

from analysis._checks import check_level
from analysis._kernels import (
    _floats,
)
from analysis._results import CountedText, Result
from analysis.adjustment.design import KP, VP, treatment_indicator
from analysis.adjustment.propensity import PropensityResult
from analysis.errors import InsufficientDataError

# --------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------


def _outcome_values(records: pd.DataFrame, outcome: str | pd.Series | ArrayLike) -> tuple[
        NDArray[np.float64], str]:
    """Outcome as floats (NaN missing) and its name; booleans become 0/1."""
    if isinstance(outcome, str):
        if outcome not in records.columns:
            raise ValueError(f"records have no column {outcome!r}")
        return _floats(records[outcome]), outcome
    if isinstance(outcome, pd.Series):
        if outcome.index.equals(records.index):
            return _floats(outcome), str(outcome.name or "outcome")
        if len(outcome) != len(records):
            raise ValueError("the outcome series must have one value per record")
        return _floats(outcome.reset_index(drop=True)), str(outcome.name or "outcome")
    arr = np.asarray(outcome)
    if arr.shape[0] != len(records):
        raise ValueError("the outcome must have one value per record")
    return _floats(arr), "outcome"


def _is_binary(y: NDArray[np.float64]) -> bool:
    v = y[~np.isnan(y)]
    return bool(v.size) and bool(np.isin(v, (0.0, 1.0)).all())


# --------------------------------------------------------------------------------------------
# IPTW effect
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class IPTWEffect(Result):
    """IPTW estimate of the KP − VP difference (risks or means).

    Attributes
    ----------
    outcome : str
        Outcome name.
    kind : str
        ``"binary"`` (risk difference) or ``"continuous"`` (mean difference).
    estimate_vp, estimate_kp : float
        Weighted risk (or mean) in each group.
    difference, low, high : float
        KP − VP with the sandwich (HC0) Wald interval.
    se : float
        Robust standard error of the difference.
    p_value : float
        Two-sided Wald p-value.
    risk_ratio, rr_low, rr_high : float
        Binary outcomes: weighted risk ratio KP/VP with a delta-method log interval (NaN for
        continuous outcomes or a zero risk).
    n_vp, n_kp : int
        Records used per group.
    level : float
        Confidence level.
    method : str
        Description of the estimator.
    """

    outcome: str
    kind: str
    estimate_vp: float
    estimate_kp: float
    difference: float
    low: float
    high: float
    se: float
    p_value: float
    risk_ratio: float
    rr_low: float
    rr_high: float
    n_vp: int
    n_kp: int
    level: float
    method: str
    n_clusters: int = 0


def iptw_effect(
    records: pd.DataFrame,
    outcome: str | pd.Series | ArrayLike,
    weights: pd.Series | ArrayLike | PropensityResult,
    level: float = 0.95,
    cluster: str | ArrayLike | None = None,
) -> IPTWEffect:
    """Inverse-probability-weighted difference KP − VP with a sandwich standard error.

    Parameters
    ----------
    records : pandas.DataFrame
        Records with ``procedure``.
    outcome : str, Series or array
        Column name, or values per record. Boolean / 0–1 outcomes give a risk difference,
        others a mean difference.
    weights : Series, array or PropensityResult
        One weight per record (e.g. ``propensity_weights(records).weights``). Records with a
        missing or non-positive weight (trimmed) are left out.
    level : float, default 0.95
        Confidence level.
    cluster : str or array, optional
        Column name or one label per record (e.g. ``"facility_id"``): the SE is then the
        cluster-robust CR1 sandwich (R ``vcovCL(glm(y ~ kp, weights = w), cluster = ~g,
        type = "HC1")``) and the interval and p-value use t with G − 1 df
        (``n_clusters`` = G); a record without a label is a cluster of its own.

    Returns
    -------
    IPTWEffect

    Raises
    ------
    InsufficientDataError
        When a group has fewer than 2 usable records.

    Notes
    -----
    ``smf.glm('y ~ kp', family=Binomial(link=Identity()), var_weights=w).fit(cov_type='HC0')``
    (Gaussian family for continuous outcomes, and for a binary outcome whose weighted risk
    is 0 or 1 in a group, where the binomial IRLS weights are undefined; the model is
    saturated, so both families give the same estimate and the same HC0 sandwich). The
    sandwich treats the weights as known and ignores the estimation of the propensity
    score, which is conservative for the ATE (Austin & Stuart 2015); bootstrap the PS and
    outcome steps together for an exact variance. Use ``var_weights``: robust covariances
    with ``freq_weights`` have open issues (statsmodels #2829).

    Examples
    --------
    >>> cells = [(0, 1, 6, 30), (0, 0, 7, 70), (1, 1, 28, 70), (1, 0, 9, 30)]
    >>> rows = [(x, t, int(i < ev)) for x, t, ev, n in cells for i in range(n)]
    >>> d = pd.DataFrame(rows, columns=["x", "kp", "y"])
    >>> d["procedure"] = np.where(d.kp == 1, "kyphoplasty", "vertebroplasty")
    >>> e = d.groupby("x").kp.transform("mean")
    >>> w = np.where(d.kp == 1, 1 / e, 1 / (1 - e))
    >>> r = iptw_effect(d, "y", w)
    >>> round(r.difference, 4), round(r.se, 4)
    (0.1, 0.0671)
    """
    level = check_level(level)
    method_name = "IPTW effect"
    y_all, name = _outcome_values(records, outcome)
    if isinstance(weights, PropensityResult):
        weights = weights.weights
    if isinstance(weights, pd.Series):
        w_all = _floats(weights.reindex(records.index)) if not weights.index.equals(
            records.index) else _floats(weights)
    else:
        w_all = np.asarray(weights, dtype=float)
        if w_all.shape[0] != len(records):
            raise ValueError("weights must have one value per record")
    t_all = treatment_indicator(records)
    ok = ~np.isnan(y_all) & ~np.isnan(t_all) & ~np.isnan(w_all) & (w_all > 0)
    y, t, w = y_all[ok], t_all[ok], w_all[ok]
    n1, n0 = int((t == 1).sum()), int((t == 0).sum())
    for label, count in ((KP, n1), (VP, n0)):
        if count < 2:
            raise InsufficientDataError(method_name, CountedText.of(
                "{label} has {count} record(s) with an outcome and a positive weight; 2 are "
                "needed", label=label, count=count))
    binary = _is_binary(y)
    m1 = float(np.average(y[t == 1], weights=w[t == 1]))
    m0 = float(np.average(y[t == 0], weights=w[t == 0]))
    x = np.column_stack([np.ones(t.size), t])
    boundary = binary and any(v in (0.0, 1.0) for v in (m0, m1))
    if binary and not boundary:
        family = sm.families.Binomial(link=sm.families.links.Identity())
        family_text = "binomial GLM, identity link"
    else:
        family = sm.families.Gaussian()
        family_text = "Gaussian GLM, identity link" + (
            " (a weighted risk is 0 or 1; same estimate and sandwich as the binomial model)"
            if boundary else "")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DomainWarning)
        fit = sm.GLM(y, x, family=family, var_weights=w, hasconst=True).fit(
            cov_type="HC0", start_params=np.array([m0, m1 - m0]))
    b = np.asarray(fit.params)
    cov = np.asarray(fit.cov_params())
    n_clusters = 0
    se_text = "HC0 sandwich SE"
    if cluster is not None:
        # Imported here: analysis.cluster_variance uses this module's blocked products.
        from analysis.cluster_variance import cluster_codes, cluster_quantile, ols_cluster_cov

        labels = records[cluster] if isinstance(cluster, str) else np.asarray(cluster)
        if len(labels) != len(records):
            raise ValueError("cluster must have one label per record")
        codes, _ = cluster_codes(np.asarray(labels, dtype=object)[ok])
        cov, n_clusters = ols_cluster_cov(x, y, b, codes, weights=w)
        se_text = (f"cluster-robust CR1 sandwich SE ({n_clusters} clusters, t with "
                   f"{n_clusters - 1} df)")
    se = float(math.sqrt(cov[1, 1]))
    z = st.norm.isf((1 - level) / 2)
    if n_clusters:
        z = cluster_quantile(level, n_clusters)
    diff = float(b[1])
    if se > 0:
        p = float(2 * (st.t.sf(abs(diff / se), n_clusters - 1) if n_clusters
                       else st.norm.sf(abs(diff / se))))
    else:
        p = math.nan
    rr = rr_low = rr_high = math.nan
    if binary and b[0] > 0 and b[0] + b[1] > 0:
        rr = float((b[0] + b[1]) / b[0])
        grad = np.array([1 / (b[0] + b[1]) - 1 / b[0], 1 / (b[0] + b[1])])
        se_log = float(math.sqrt(grad @ cov @ grad))
        rr_low, rr_high = rr * math.exp(-z * se_log), rr * math.exp(z * se_log)
    return IPTWEffect(
        outcome=name,
        kind="binary" if binary else "continuous",
        estimate_vp=m0,
        estimate_kp=m1,
        difference=diff,
        low=diff - z * se,
        high=diff + z * se,
        se=se,
        p_value=p,
        risk_ratio=rr,
        rr_low=rr_low,
        rr_high=rr_high,
        n_vp=n0,
        n_kp=n1,
        level=level,
        method=(f"IPTW {'risk' if binary else 'mean'} difference: {family_text}, var_weights, "
                f"{se_text} (propensity score treated as known; Austin & Stuart 2015)"),
        n_clusters=n_clusters,
    )
