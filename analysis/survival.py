"""Time-to-event analysis: Kaplan–Meier, log-rank, Cox regression, cumulative incidence.

Used for time to a new adjacent vertebral fracture. Death is a competing risk in this elderly
population, so :func:`cumulative_incidence` (Aalen–Johansen) is the estimate of fracture
risk to show; ``1 - KM`` with deaths censored overstates it.

Conventions
-----------
``event`` is 1 for the event and 0 for censoring. For Cox models, make vertebroplasty the
reference by giving the procedure column a categorical dtype whose first category is
``"VP"``: the hazard ratio is then KP compared with VP.

References
----------
.. [1] Kaplan EL, Meier P. Nonparametric estimation from incomplete observations. J Am Stat
   Assoc 1958;53:457-481.
.. [2] Greenwood M. The natural duration of cancer. Reports on Public Health and Medical
   Subjects 33. London: HMSO, 1926.
.. [3] Kalbfleisch JD, Prentice RL. The Statistical Analysis of Failure Time Data, 2nd ed.
   Wiley 2002 (log(-log) confidence intervals).
.. [4] Mantel N. Evaluation of survival data and two new rank order statistics arising in its
   consideration. Cancer Chemother Rep 1966;50:163-170.
.. [5] Cox DR. Regression models and life-tables. J R Stat Soc B 1972;34:187-220.
.. [6] Efron B. The efficiency of Cox's likelihood function for censored data. J Am Stat
   Assoc 1977;72:557-565.
.. [7] Lin DY, Wei LJ. The robust inference for the Cox proportional hazards model. J Am
   Stat Assoc 1989;84:1074-1078.
.. [8] Aalen OO, Johansen S. An empirical transition matrix for non-homogeneous Markov chains
   based on censored observations. Scand J Stat 1978;5:141-150.
.. [9] Collett D. Modelling Survival Data in Medical Research, 3rd ed. CRC 2015, §12.2
   (variance of the cumulative incidence; Marubini & Valsecchi 1995).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.stats as st
from numpy.typing import ArrayLike, NDArray
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.duration.survfunc import survdiff

from analysis._checks import check_level
from analysis._results import Result
from analysis.errors import InsufficientDataError

__all__ = [
    "LogrankResult",
    "cox_model",
    "cumulative_incidence",
    "kaplan_meier",
    "logrank_test",
]


def _time_event(
    time: ArrayLike, event: ArrayLike, method: str, *extra: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], list[NDArray]]:
    """Align inputs, drop rows with a missing value, validate times and event codes."""
    t = np.asarray(time, dtype=float).ravel()
    e = np.asarray(event, dtype=float).ravel()
    others = [np.asarray(x).ravel() for x in extra]
    if any(arr.size != t.size for arr in (e, *others)):
        raise ValueError("time, event and the other inputs must have the same length")
    keep = ~(np.isnan(t) | np.isnan(e))
    for arr in others:
        keep &= ~pd.isna(arr)
    if keep.all():  # copies as from a mask, without its cost (slow on random masks)
        t, e, others = t.copy(), e.copy(), [arr.copy() for arr in others]
    else:
        t, e, others = t[keep], e[keep], [arr[keep] for arr in others]
    if t.size == 0:
        raise InsufficientDataError(method, "no patients with a recorded follow-up time")
    if np.any(t < 0) or np.any(np.isinf(t)):
        raise ValueError("times must be finite and non-negative")
    if np.any((e != np.round(e)) | (e < 0)):
        raise ValueError("event codes must be non-negative integers")
    return t, e, others


#: Whole-number times (days) up to this bound are counted with one ``np.bincount`` per column
#: instead of sorting every record with ``np.unique``; the bound keeps the count arrays small.
_DAY_COUNT_MAX = 1 << 22


def _tied_counts(
    t: NDArray[np.float64], *weights: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], list[NDArray[np.float64]]]:
    """The distinct times in increasing order, the records at each and the sum of each of
    `weights` at each (exact: the weights are event indicators).

    Follow-up in whole days (every time an integer, at most :data:`_DAY_COUNT_MAX`) is counted
    with ``np.bincount`` over the day numbers, O(n) rather than the O(n log n) sort of
    ``np.unique``; any other times are sorted. Both give the same arrays.
    """
    if t.size and t.max() <= _DAY_COUNT_MAX:
        days = t.astype(np.intp)
        if np.array_equal(days, t):
            total = np.bincount(days)
            present = np.flatnonzero(total)
            sums = [np.bincount(days, weights=w, minlength=total.size)[present] for w in weights]
            return present.astype(float), total[present].astype(float), sums
    times, inverse = np.unique(t, return_inverse=True)
    total = np.bincount(inverse).astype(float)
    return times, total, [np.bincount(inverse, weights=w, minlength=times.size) for w in weights]


def _loglog_ci(
    est: NDArray, se_log: NDArray, z: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """log(-log) interval for a probability `est` with delta-method se of log(est).

    `se_log` = sqrt(var) / est, so the se of log(-log est) is se_log / |log est|. Where the
    estimate is 0 or 1 (or the se is undefined) the interval collapses onto the estimate.
    """
    # An overflowing exp gives inf, whose exp(-inf) = 0 is the right bound.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        theta = np.log(-np.log(est))
        se_theta = se_log / np.abs(np.log(est))
        a = np.exp(-np.exp(theta + z * se_theta))
        b = np.exp(-np.exp(theta - z * se_theta))
    inside = (est > 0) & (est < 1) & np.isfinite(se_theta)
    low = np.where(inside, np.minimum(a, b), est)
    high = np.where(inside, np.maximum(a, b), est)
    return low, high


def kaplan_meier(time: ArrayLike, event: ArrayLike, level: float = 0.95) -> pd.DataFrame:
    """Kaplan–Meier survival with Greenwood standard errors and log(-log) intervals.

    Parameters
    ----------
    time : array_like
        Follow-up times (>= 0).
    event : array_like
        1 if the event was observed, 0 if censored. Rows with a missing time or event are
        dropped.
    level : float, default 0.95
        Level of the pointwise intervals.

    Returns
    -------
    pandas.DataFrame
        One row per distinct observed time (event or censoring), in increasing order, with
        columns ``time, at_risk, events, censored, survival, se, low, high``. Prepend
        ``(0, 1)`` when drawing the step curve.

    Notes
    -----
    ``S(t) = prod(1 - d_j / n_j)``; Greenwood: ``se = S * sqrt(sum d_j / (n_j (n_j - d_j)))``.
    The interval is the log(-log) transform (Kalbfleisch & Prentice), the default of
    lifelines, Stata and SAS: ``theta = log(-log S)``, ``se_theta = se / (S |log S|)``,
    ``[exp(-exp(theta + z se_theta)), exp(-exp(theta - z se_theta))]``. R ``survfit``'s
    default is the "log" transform, which differs visibly near S = 1. Where S = 1 the
    interval is [1, 1]; where S drops to 0 the SE is NaN and the interval [0, 0].

    Examples
    --------
    >>> km = kaplan_meier([6, 6, 6, 6, 7, 9, 10], [1, 1, 1, 0, 1, 0, 1])
    >>> km[["time", "at_risk", "events", "survival"]].round(4).to_numpy().tolist()[0]
    [6.0, 7.0, 3.0, 0.5714]
    """
    level = check_level(level)
    method = "Kaplan-Meier estimate"
    t, e, _ = _time_event(time, event, method)
    if np.any(e > 1):
        raise ValueError("event must be 0 (censored) or 1 (event)")
    times, total, (deaths,) = _tied_counts(t, e)
    at_risk = t.size - np.concatenate([[0.0], np.cumsum(total)[:-1]])
    survival = np.cumprod(1.0 - deaths / at_risk)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(deaths > 0, deaths / (at_risk * (at_risk - deaths)), 0.0)
    greenwood = np.cumsum(terms)
    with np.errstate(invalid="ignore"):
        se = survival * np.sqrt(greenwood)
    se = np.where(survival > 0, se, np.nan)
    z = st.norm.isf((1.0 - level) / 2.0)
    low, high = _loglog_ci(survival, np.sqrt(greenwood), z)
    return pd.DataFrame(
        {
            "time": times,
            "at_risk": at_risk.astype(int),
            "events": deaths.astype(int),
            "censored": (total - deaths).astype(int),
            "survival": survival,
            "se": se,
            "low": low,
            "high": high,
        }
    )


@dataclasses.dataclass(frozen=True)
class LogrankResult(Result):
    """Log-rank test of equal survival across groups.

    Attributes
    ----------
    chi2 : float
        Log-rank statistic.
    df : int
        Number of groups minus one.
    p_value : float
        Upper-tail chi-square p-value.
    """

    chi2: float
    df: int
    p_value: float


def logrank_test(
    time: ArrayLike, event: ArrayLike, group: ArrayLike, strata: ArrayLike | None = None
) -> LogrankResult:
    """Log-rank (Mantel 1966) test comparing survival between groups.

    Parameters
    ----------
    time, event : array_like
        Follow-up time and event indicator (1 event, 0 censored).
    group : array_like
        Group label of each patient (e.g. "KP"/"VP"); two or more groups.
    strata : array_like, optional
        Stratum label (e.g. institution) for a stratified log-rank test.

    Returns
    -------
    LogrankResult

    Raises
    ------
    InsufficientDataError
        If fewer than two groups remain after dropping missing values, or there is no event.

    Notes
    -----
    Computed with :func:`statsmodels.duration.survfunc.survdiff` (unweighted log-rank; the
    same statistic as R ``survdiff`` with ``rho = 0``).

    Examples
    --------
    >>> r = logrank_test([1, 2, 3, 4, 5, 6], [1, 1, 1, 1, 0, 1], ["KP", "VP"] * 3)
    >>> r.df
    1
    """
    method = "Log-rank test"
    extra = [group] if strata is None else [group, strata]
    t, e, others = _time_event(time, event, method, *extra)
    if np.any(e > 1):
        raise ValueError("event must be 0 (censored) or 1 (event)")
    g = others[0]
    n_groups = pd.unique(g).size
    if n_groups < 2:
        raise InsufficientDataError(method, f"{n_groups} group(s) with data; 2 are needed")
    if e.sum() == 0:
        raise InsufficientDataError(method, "no events were observed")
    kwargs = {} if strata is None else {"strata": others[1]}
    chi2, p = survdiff(t, e, g, **kwargs)
    return LogrankResult(chi2=float(chi2), df=n_groups - 1, p_value=float(p))


def _design(data: pd.DataFrame, covariates: Sequence[str]) -> pd.DataFrame:
    """Numeric design matrix; categorical columns dummy-coded against their first level."""
    parts: list[pd.Series] = []
    for name in covariates:
        col = data[name]
        if isinstance(col.dtype, pd.CategoricalDtype) or not (
            pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)
        ):
            cat = col if isinstance(col.dtype, pd.CategoricalDtype) else col.astype("category")
            cat = cat.cat.remove_unused_categories()
            levels = list(cat.cat.categories)
            if len(levels) < 2:
                raise InsufficientDataError(
                    "Cox model", f"covariate {name!r} has a single level in the data"
                )
            for level in levels[1:]:
                parts.append((cat == level).astype(float).rename(f"{name}[{level}]"))
        else:
            values = col.astype(float)
            if values.nunique() < 2:
                raise InsufficientDataError(
                    "Cox model", f"covariate {name!r} is constant in the data"
                )
            parts.append(values.rename(name))
    return pd.concat(parts, axis=1)


def cox_model(
    df: pd.DataFrame,
    duration: str,
    event: str,
    covariates: Sequence[str],
    strata: str | None = None,
    cluster: str | None = None,
    *,
    level: float = 0.95,
) -> pd.DataFrame:
    """Cox proportional hazards model with Efron ties, as a tidy table of hazard ratios.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per patient (or per treated level when `cluster` is the patient).
    duration : str
        Column with follow-up time.
    event : str
        Column with the event indicator (1 event, 0 censored).
    covariates : sequence of str
        Columns entered in the model. Numeric and boolean columns enter as they are;
        object, string and categorical columns are dummy-coded with the first level as the
        reference (the first category for a categorical dtype, else the first in sorted
        order).
    strata : str, optional
        Column defining strata with separate baseline hazards (e.g. institution).
    cluster : str, optional
        Column with cluster labels (patient or institution) for Lin–Wei robust
        (sandwich) standard errors, computed from Efron score residuals as R
        ``coxph(..., cluster = )`` does (no small-sample factor).
    level : float, default 0.95
        Confidence level (keyword only).

    Returns
    -------
    pandas.DataFrame
        One row per model term: ``term, hazard_ratio, low, high, p_value, coef, se``.
        Dummy terms are named ``"column[level]"``. Wald (z) intervals and p-values.

    Raises
    ------
    InsufficientDataError
        If no event remains after dropping incomplete rows, or a covariate is constant.

    Notes
    -----
    Fitted with :class:`statsmodels.duration.hazard_regression.PHReg` with
    ``ties="efron"`` (Efron 1977), the default of R ``coxph`` and lifelines; the
    statsmodels default, Breslow, gives visibly different estimates with many ties. Rows
    with a missing value in any used column are dropped. The robust covariance is computed
    here, not by ``PHReg.fit(groups=...)``: in statsmodels 0.15 that uses Breslow-type
    score residuals whatever `ties` is, and returns NaN standard errors when any subject
    is censored before the first event time (its residual is set to NaN instead of 0).

    Examples
    --------
    >>> d = pd.DataFrame({"t": [5, 8, 3, 9, 12, 4, 7, 10], "e": [1, 1, 1, 0, 1, 1, 0, 1],
    ...                   "proc": pd.Categorical(["KP", "VP"] * 4, categories=["VP", "KP"])})
    >>> cox_model(d, "t", "e", ["proc"])["term"].tolist()
    ['proc[KP]']
    """
    level = check_level(level)
    method = "Cox model"
    covariates = list(covariates)
    if not covariates:
        raise ValueError("at least one covariate is needed")
    used = [duration, event, *covariates] + [c for c in (strata, cluster) if c is not None]
    missing_cols = [c for c in used if c not in df.columns]
    if missing_cols:
        raise KeyError(f"columns not in the data: {missing_cols}")
    data = df.loc[:, list(dict.fromkeys(used))].dropna()
    t, e, _ = _time_event(data[duration], data[event], method)
    if np.any(e > 1):
        raise ValueError("event must be 0 (censored) or 1 (event)")
    if e.sum() == 0:
        raise InsufficientDataError(method, "no events were observed")
    design = _design(data, covariates)
    if e.sum() < design.shape[1] + 1:
        raise InsufficientDataError(
            method, f"{int(e.sum())} event(s) for {design.shape[1]} model term(s)"
        )
    model = PHReg(
        t,
        design.to_numpy(),
        status=e,
        ties="efron",
        strata=None if strata is None else data[strata].to_numpy(),
    )
    fit = model.fit()
    coef = np.asarray(fit.params)
    if cluster is None:
        se = np.asarray(fit.bse)
    else:
        # Not fit(groups=...): statsmodels' robust covariance uses Breslow score residuals
        # even for Efron fits, and is NaN when anyone is censored before the first event.
        resid = _efron_score_residuals(
            t, e, design.to_numpy(), coef, None if strata is None else data[strata].to_numpy()
        )
        by_cluster = pd.DataFrame(resid).groupby(data[cluster].to_numpy()).sum().to_numpy()
        naive = np.asarray(fit.cov_params())
        se = np.sqrt(np.diag(naive @ (by_cluster.T @ by_cluster) @ naive))
    z = st.norm.isf((1.0 - level) / 2.0)
    return pd.DataFrame(
        {
            "term": list(design.columns),
            "hazard_ratio": np.exp(coef),
            "low": np.exp(coef - z * se),
            "high": np.exp(coef + z * se),
            "p_value": 2.0 * st.norm.sf(np.abs(coef / se)),
            "coef": coef,
            "se": se,
        }
    )


def _efron_score_residuals(
    time: NDArray, event: NDArray, exog: NDArray, beta: NDArray, strata: NDArray | None
) -> NDArray[np.float64]:
    """Score residuals of a Cox model under Efron's tie handling (as R ``coxph``).

    At an event time with d tied events, risk set R and event set D, Efron's k-th step
    (k = 0..d-1) has denominator ``den_k = S0_R - (k/d) S0_D`` and mean
    ``xbar_k = (S1_R - (k/d) S1_D) / den_k``; subject j in R carries weight
    ``c_jk = 1`` (or ``1 - k/d`` if j is in D). The residual is
    ``L_j = sum_t sum_k (x_j - xbar_k) (1{j in D}/d - r_j c_jk / den_k)``, whose sum over
    subjects is the Efron score, 0 at the estimate. Computed with cumulative sums over the
    event times, O(n p) after sorting. The Lin–Wei (1989) robust covariance is
    ``V (sum_g L_g L_g') V`` with V the model-based covariance, summing L within clusters.
    """
    resid = np.zeros_like(exog, dtype=float)
    labels = np.zeros(time.size) if strata is None else strata
    for stratum in pd.unique(labels):
        idx = np.flatnonzero(labels == stratum)
        t, e, x = time[idx], event[idx], exog[idx]
        if e.sum() == 0:
            continue  # no events: no contribution to the score
        eta = x @ beta
        r = np.exp(eta - eta.max())  # scale cancels in every ratio below
        order = np.argsort(t, kind="stable")
        t_sorted, r_sorted, x_sorted = t[order], r[order], x[order]
        u_times = np.unique(t[e == 1])
        # Risk-set sums S0, S1 over {T >= u} via reverse cumulative sums on sorted times.
        first = np.searchsorted(t_sorted, u_times, side="left")
        rev0 = np.concatenate([np.cumsum(r_sorted[::-1])[::-1], [0.0]])
        rev1 = np.vstack(
            [
                np.cumsum((r_sorted[:, None] * x_sorted)[::-1], axis=0)[::-1],
                np.zeros((1, x.shape[1])),
            ]
        )
        s0, s1 = rev0[first], rev1[first]
        # Event-set sums at each event time.
        pos = np.searchsorted(u_times, t[e == 1])
        d = np.bincount(pos, minlength=u_times.size).astype(float)
        s0_d = np.bincount(pos, weights=r[e == 1], minlength=u_times.size)
        s1_d = np.zeros_like(s1)
        np.add.at(s1_d, pos, r[e == 1, None] * x[e == 1])
        # One row per (event time, k) step of Efron's approximation.
        step_time = np.repeat(np.arange(u_times.size), d.astype(int))
        k = np.arange(step_time.size) - np.repeat(np.cumsum(d) - d, d.astype(int))
        frac = k / d[step_time]
        den = s0[step_time] - frac * s0_d[step_time]
        mean = (s1[step_time] - frac[:, None] * s1_d[step_time]) / den[:, None]
        h = np.bincount(step_time, weights=1.0 / den, minlength=u_times.size)
        h2 = np.bincount(step_time, weights=frac / den, minlength=u_times.size)
        g = np.zeros_like(s1)
        g2 = np.zeros_like(s1)
        mbar = np.zeros_like(s1)
        np.add.at(g, step_time, mean / den[:, None])
        np.add.at(g2, step_time, frac[:, None] * mean / den[:, None])
        np.add.at(mbar, step_time, mean / d[step_time, None])
        cum_h = np.cumsum(h)
        cum_g = np.cumsum(g, axis=0)
        # Number of event times each subject is at risk for.
        n_at = np.searchsorted(u_times, t, side="right")
        at = n_at > 0
        last = n_at[at] - 1
        res = np.zeros_like(x, dtype=float)
        res[at] = -r[at, None] * (x[at] * cum_h[last, None] - cum_g[last])
        ev = np.flatnonzero(e == 1)
        own = n_at[ev] - 1  # a subject's own event time is its last event time at risk
        res[ev] += (x[ev] - mbar[own]) + r[ev, None] * (x[ev] * h2[own, None] - g2[own])
        resid[idx] = res
    return resid


def _aalen_johansen(
    n: NDArray[np.float64], d_all: NDArray[np.float64], d_one: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Aalen–Johansen cumulative incidence and its delta-method variance along the last axis.

    `n` is the number at risk just before each distinct time, `d_all` the events of any type
    and `d_one` the events of interest there (1-d arrays of one group, or 2-d arrays with one
    row per group on a shared grid of times; a time where a group has nobody at risk
    contributes nothing). ``CIF(t) = sum_{t_j <= t} S(t_j-) d1_j / n_j`` with S the
    all-cause Kaplan–Meier estimate; the variance is the estimator of Collett (2015, §12.2)
    (Marubini & Valsecchi 1995), which with a single event type is Greenwood's for 1 − KM.
    Used by :func:`cumulative_incidence` and by the horizon estimates of
    :mod:`analysis.horizon`, so both are one estimator.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard_all = np.where(n > 0, d_all / n, 0.0)
        hazard_one = np.where(n > 0, d_one / n, 0.0)
        surv = np.cumprod(1.0 - hazard_all, axis=-1)
        surv_before = np.concatenate([np.ones_like(surv[..., :1]), surv[..., :-1]], axis=-1)
        cif = np.cumsum(surv_before * hazard_one, axis=-1)
        # Var F(t) = sum_j [(F(t)-F_j)^2 a_j + b_j - 2 (F(t)-F_j) c_j], expanded in F(t) so
        # that cumulative sums give every t in O(J). a_j is infinite only at a last time where
        # all at risk fail, and there F(t) - F_j = 0, so its term is 0.
        a = np.where(n > d_all, d_all / (n * (n - d_all)), 0.0)
        b = np.where(n > 0, surv_before**2 * d_one * (n - d_one) / n**3, 0.0)
        c = np.where(n > 0, surv_before * d_one / n**2, 0.0)

    def cum(v: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.cumsum(v, axis=-1)

    var = (
        cif**2 * cum(a)
        - 2 * cif * cum(a * cif)
        + cum(a * cif**2)
        + cum(b)
        - 2 * (cif * cum(c) - cum(c * cif))
    )
    return cif, np.maximum(var, 0.0)  # rounding can leave -1e-18 where the variance is 0


def cumulative_incidence(
    time: ArrayLike,
    event_code: ArrayLike,
    event_of_interest: int = 1,
    level: float = 0.95,
    *,
    at_risk: bool = False,
) -> pd.DataFrame:
    """Aalen–Johansen cumulative incidence of one event type under competing risks.

    Parameters
    ----------
    time : array_like
        Follow-up times (>= 0).
    event_code : array_like of int
        0 = censored, 1 = event (e.g. adjacent fracture), 2 = competing event (death); other
        positive codes are further competing events.
    event_of_interest : int, default 1
        Code whose cumulative incidence is estimated.
    level : float, default 0.95
        Level of the pointwise intervals.
    at_risk : bool, default False
        Add the column ``at_risk``: the patients still followed just before each time
        (those whose time is at least that time).

    Returns
    -------
    pandas.DataFrame
        One row per distinct observed time: ``time, cumulative_incidence, low, high`` (and
        ``at_risk`` when asked).

    Notes
    -----
    ``CIF(t) = sum_{t_j <= t} S(t_j-) d1_j / n_j`` with S the all-cause Kaplan–Meier
    estimate (Aalen & Johansen 1978). The variance is the delta-method (Greenwood-type)
    estimator of Collett (2015, §12.2) / SAS LIFETEST, and the interval the log(-log)
    transform, exactly as in lifelines ``AalenJohansenFitter``; the tests check agreement
    with lifelines. It is implemented here rather than called because
    ``AalenJohansenFitter`` randomly jitters tied times of different event types (so the
    reported times move and results vary between runs unless seeded), while the estimator
    itself handles ties exactly; also its interval columns are labelled the wrong way round
    (``..._upper`` holds the lower limit, lifelines 0.30.3).

    Examples
    --------
    >>> cif = cumulative_incidence([2, 3, 3, 5, 8], [1, 2, 1, 0, 1])
    >>> cif["cumulative_incidence"].round(3).tolist()
    [0.2, 0.4, 0.4, 0.8]
    """
    level = check_level(level)
    method = "Cumulative incidence"
    t, code, _ = _time_event(time, event_code, method)
    if event_of_interest <= 0:
        raise ValueError("event_of_interest must be a positive event code")
    times, total, (d_all, d_one) = _tied_counts(t, (code > 0).astype(float),
                                                (code == event_of_interest).astype(float))
    n = t.size - np.concatenate([[0.0], np.cumsum(total)[:-1]])
    cif, var = _aalen_johansen(n, d_all, d_one)
    z = st.norm.isf((1.0 - level) / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        se_log = np.sqrt(var) / cif
    low, high = _loglog_ci(cif, se_log, z)
    frame = pd.DataFrame({"time": times, "cumulative_incidence": cif, "low": low, "high": high})
    if at_risk:
        frame["at_risk"] = n.astype(np.int64)
    return frame
