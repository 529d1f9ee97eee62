"""Outcomes "by day N": cumulative incidence at a horizon, with censoring and competing risks.

An outcome such as *new vertebral fracture by 12 months* or *death by 30 days* is a risk at a
fixed horizon. Patients are followed for different lengths of time, so the share of patients
with the event among those "followed long enough or with the event" is biased: every early
event is kept while the patients censored before the horizon are dropped (biased upwards), and
patients who die cannot have a fracture afterwards (death is a competing risk). This module
estimates the **cumulative incidence at the horizon** instead:

* new fracture by 12 months (``adjacent_fracture_12m``): Aalen–Johansen (1978) cumulative
  incidence of a new fracture at day 365 with death as a competing risk (when deaths are
  recorded; otherwise 1 − Kaplan–Meier, the same estimator with one event type);
* death by 30 days (``death_30d``): 1 − Kaplan–Meier of death-free survival at day 30 (the
  Aalen–Johansen estimator with death the only event type, identical to 1 − KM).

Both use the estimator and delta-method variance of :func:`analysis.survival.cumulative_incidence`
(Collett 2015, §12.2; Greenwood's variance with a single event type) and its log(−log)
interval, with the number still at risk at the horizon. KP − VP differences and ratios at the
horizon come from the two independent estimates (:func:`compare_cumulative_incidence`), and
the confounding-adjusted difference from the IPTW-weighted cumulative incidence
(:func:`iptw_cumulative_incidence`). With records clustered in facilities, the difference
and ratio get a grouped jackknife over the facilities
(:func:`cluster_jackknife_cumulative_incidence`, every leave-one-out estimate from
per-facility count tables: O(n) once + O(G × days)) and the IPTW bootstrap resamples whole
facilities.

Event times (:func:`horizon_time_event`)
----------------------------------------
*New fracture*: a new fracture at ``adjacent_fracture_days`` (code 1). Without a new fracture,
a death on or before the last contact (``death_days ≤ followup_days``) is the competing event
at ``death_days`` (code 2). New fractures are only ascertained up to the last contact
(``followup_days``), so a patient who died **after** the last contact (e.g. a death found by
registry linkage) without a recorded fracture is **censored at the last contact** (code 0), as
is a death without its day: keeping them at risk until their death would count fracture-free
time that nobody observed and bias the cumulative incidence low. Everyone else is censored at
``followup_days``. A fracture without its day, or no follow-up time, is missing.

*Death*: a death at ``death_days`` (code 1); no recorded death: censored at ``followup_days``
(code 0); a death without its day is missing.

References
----------
.. [1] Aalen OO, Johansen S. An empirical transition matrix for non-homogeneous Markov chains
   based on censored observations. Scand J Stat 1978;5:141-150.
.. [2] Kaplan EL, Meier P. Nonparametric estimation from incomplete observations. J Am Stat
   Assoc 1958;53:457-481.
.. [3] Collett D. Modelling Survival Data in Medical Research, 3rd ed. CRC 2015, §12.2
   (variance of the cumulative incidence; Marubini & Valsecchi 1995).
.. [4] Kalbfleisch JD, Prentice RL. The Statistical Analysis of Failure Time Data, 2nd ed.
   Wiley 2002 (log(-log) confidence intervals).
.. [5] Putter H, Fiocco M, Geskus RB. Tutorial in biostatistics: competing risks and
   multi-state models. Stat Med 2007;26:2389-2430.
.. [6] Cole SR, Hernán MA. Adjusted survival curves with inverse probability weights.
   Comput Methods Programs Biomed 2004;75:45-49 (IPTW-weighted survival / cumulative
   incidence).
.. [7] Bickel PJ, Götze F, van Zwet WR. Resampling fewer than n observations. Stat Sin
   1997;7:1-31 (m-out-of-n bootstrap).
.. [8] Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall 1993,
   ch. 11 (the jackknife).
.. [9] Cameron AC, Miller DL. A practitioner's guide to cluster-robust inference. J Hum
   Resour 2015;50:317-372 (grouped jackknife, cluster bootstrap, t(G − 1)).
.. [10] Field CA, Welsh AH. Bootstrapping clustered data. J R Stat Soc B 2007;69:369-390.
.. [11] Lunceford JK, Davidian M. Stratification and weighting via the propensity score in
   estimation of causal treatment effects. Stat Med 2004;23:2937-2960 (ignoring the
   estimation of ATE weights is conservative).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import scipy.stats as st
from numpy.typing import ArrayLike, NDArray

from analysis._results import Result
from analysis.errors import InsufficientDataError
from analysis.survival import _aalen_johansen, _loglog_ci

__all__ = [
    "HORIZON_OUTCOMES",
    "ClusterJackknifeComparison",
    "CumulativeIncidenceComparison",
    "HorizonOutcome",
    "IptwCumulativeIncidence",
    "cluster_jackknife_cumulative_incidence",
    "compare_cumulative_incidence",
    "cumulative_incidence_at",
    "fracture_competing_times",
    "horizon_groups",
    "horizon_time_event",
    "iptw_cumulative_incidence",
    "leave_one_cluster_out",
]


@dataclasses.dataclass(frozen=True)
class HorizonOutcome:
    """An outcome "event by day N": its event, horizon and whether death competes."""

    name: str
    event: str
    horizon_days: int
    competing_death: bool

    def method(self, competing: bool) -> str:
        """The estimator as displayed (``competing``: deaths were recorded)."""
        if self.competing_death and competing:
            return "Aalen–Johansen, death as a competing risk; log(−log) CI"
        return "1 − Kaplan–Meier; log(−log) CI"

    def estimand(self, competing: bool) -> str:
        """What the number estimates, e.g. ``"cumulative incidence of new fracture at 365
        days (Aalen–Johansen, death competing)"``."""
        how = ("Aalen–Johansen, death competing" if self.competing_death and competing
               else "1 − Kaplan–Meier")
        return f"cumulative incidence of {self.event} at {self.horizon_days} days ({how})"


#: The outcomes "by day N" of :mod:`analysis.outcomes`, estimated as cumulative incidences.
HORIZON_OUTCOMES: dict[str, HorizonOutcome] = {
    "adjacent_fracture_12m": HorizonOutcome("adjacent_fracture_12m", "new vertebral fracture",
                                            365, True),
    "death_30d": HorizonOutcome("death_30d", "death", 30, False),
}

#: Largest (cluster, group, day, state) count table of the clustered estimates (80 MB).
MAX_CLUSTER_TABLE_CELLS = 10_000_000

#: Event codes of :func:`horizon_time_event`.
CENSORED, EVENT, COMPETING = 0.0, 1.0, 2.0


def _column(records: pd.DataFrame, name: str) -> NDArray[np.float64]:
    if name not in records.columns:
        return np.full(len(records), np.nan)
    return records[name].to_numpy(dtype=float, na_value=np.nan)


def _flag(records: pd.DataFrame, name: str) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """(known, true) of a boolean column as numpy bools (one pass each, no float copy)."""
    if name not in records.columns:
        none = np.zeros(len(records), dtype=bool)
        return none, none
    column = records[name]
    values = column.to_numpy(dtype=bool, na_value=False)
    return column.notna().to_numpy(), values


def fracture_competing_times(
    records: pd.DataFrame, time: NDArray[np.float64], event: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Competing-risk time and code of a new fracture from the cause-specific `time`/`event`
    (fracture at its day, else censored at ``followup_days``): a death without a fracture
    on or before the last contact becomes code 2 at ``death_days``; a death after the last
    contact, or without its day, stays censored at the last contact (see the module notes).
    Without a ``died`` column the inputs are returned unchanged."""
    if "died" not in records.columns:
        return time, event
    _, died = _flag(records, "died")
    death_days = _column(records, "death_days")
    followup = _column(records, "followup_days")
    with np.errstate(invalid="ignore"):
        competing = died & (event == 0) & (death_days <= followup)
    return (np.where(competing, death_days, time), np.where(competing, COMPETING, event))


def horizon_time_event(
    records: pd.DataFrame, outcome: str
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Time (days) and event code of every record for a horizon outcome.

    Parameters
    ----------
    records : pandas.DataFrame
        Procedure records (``adjacent_fracture``, ``adjacent_fracture_days``,
        ``followup_days``, ``died``, ``death_days``).
    outcome : {"adjacent_fracture_12m", "death_30d"}
        A key of :data:`HORIZON_OUTCOMES`.

    Returns
    -------
    time, code : numpy.ndarray
        Codes 0 censored, 1 the event, 2 death as a competing event (fracture only); NaN
        time and code where the record cannot be placed (see the module notes).

    Examples
    --------
    >>> rows = pd.DataFrame({"adjacent_fracture": [True, False, False, False],
    ...                      "adjacent_fracture_days": [100, None, None, None],
    ...                      "followup_days": [400, 200, 300, 90],
    ...                      "died": [False, True, True, False],
    ...                      "death_days": [None, 200, 500, None]})
    >>> time, code = horizon_time_event(rows, "adjacent_fracture_12m")
    >>> time.tolist(), code.tolist()
    ([100.0, 200.0, 300.0, 90.0], [1.0, 2.0, 0.0, 0.0])
    """
    if outcome not in HORIZON_OUTCOMES:
        raise ValueError(f"unknown horizon outcome {outcome!r}; choose from "
                         f"{', '.join(HORIZON_OUTCOMES)}")
    followup = _column(records, "followup_days")
    if outcome == "death_30d":
        _, died = _flag(records, "died")
        death_days = _column(records, "death_days")
        time = np.where(died, death_days, followup)
        code = np.where(np.isnan(time), np.nan, died.astype(float))
        return time, code
    # Written for speed (a page computes this on a million records): boolean masks and
    # in-place updates instead of float copies; the same codes as fracture_competing_times.
    known, fracture = _flag(records, "adjacent_fracture")
    time = np.where(fracture, _column(records, "adjacent_fracture_days"), followup)
    code = fracture.astype(float)
    if "died" in records.columns:
        _, died = _flag(records, "died")
        death_days = _column(records, "death_days")
        with np.errstate(invalid="ignore"):
            competing = died & ~fracture & (death_days <= followup)
        np.copyto(time, death_days, where=competing)
        np.copyto(code, COMPETING, where=competing)
    if not known.all():
        time[~known] = np.nan
    unknown = np.isnan(time)
    if unknown.any():
        code[unknown] = np.nan
    return time, code


# --------------------------------------------------------------------------------------------
# Cumulative incidence at the horizon, per group, vectorised
# --------------------------------------------------------------------------------------------


def _horizon_table(
    time: NDArray[np.float64],
    code: NDArray[np.float64],
    horizon: float,
    groups: NDArray[np.intp],
    n_groups: int,
    weights: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_]]:
    """The (group, time column, state) count table of :func:`_at_horizon` (one bincount)
    and the masks of the columns before and at/after the horizon."""
    valid = ~np.isnan(time + code)
    if groups.size and groups.min() < 0:
        valid &= groups >= 0
    everyone = bool(valid.all())
    t = time if everyone else np.where(valid, time, 0.0)
    days = t.astype(np.intp)  # whole days: the column is the day (one pass, no sort)
    whole = float(horizon).is_integer() and bool(np.array_equal(days, t))
    if whole:
        width = int(horizon) + 1  # days 0..horizon, then the column "after the horizon"
        column = np.minimum(days, width, out=days)
        before_horizon = np.arange(width + 1) < int(horizon)
        at_horizon = np.arange(width + 1) >= int(horizon)
    else:
        grid = np.unique(t[valid & (t <= horizon)])
        width = grid.size
        column = np.where(t <= horizon, np.searchsorted(grid, t), width)
        values = np.append(grid, np.inf)
        before_horizon = values < horizon
        at_horizon = values >= horizon
    state = (code if everyone else np.where(valid, code, 0.0)).astype(np.intp)
    np.minimum(state, 2, out=state)
    cells = n_groups * (width + 1) * 3
    key = groups.astype(np.intp, copy=False) * ((width + 1) * 3)
    key += column * 3
    key += state
    if not everyone:
        key[~valid] = cells
    counts = np.bincount(key, weights=weights, minlength=cells + 1)[:cells]
    counts = counts.reshape(n_groups, width + 1, 3).astype(float)
    return counts, before_horizon, at_horizon


def _summarise_table(
    counts: NDArray[np.float64], before_horizon: NDArray[np.bool_],
    at_horizon: NDArray[np.bool_],
) -> dict[str, NDArray[np.float64]]:
    """Counts, cumulative incidence at the horizon and its variance of every row of a
    (…, time column, state) count table (leading axes are kept)."""
    total = counts.sum(axis=-1)
    d_one = counts[..., 1].copy()
    d_all = d_one + counts[..., 2]
    # The last column holds only times after the horizon: no event is counted there.
    d_one[..., -1] = 0.0
    d_all[..., -1] = 0.0
    n_total = total.sum(axis=-1)
    at_risk_before = n_total[..., None] - np.concatenate(
        [np.zeros(total.shape[:-1] + (1,)), np.cumsum(total, axis=-1)[..., :-1]], axis=-1)
    cif, var = _aalen_johansen(at_risk_before, d_all, d_one)
    return {"n": n_total, "events": d_one.sum(axis=-1),
            "competing": counts[..., :-1, 2].sum(axis=-1),
            "censored": counts[..., before_horizon, 0].sum(axis=-1),
            "at_risk": total[..., at_horizon].sum(axis=-1),
            "estimate": cif[..., -1], "variance": var[..., -1]}


def _at_horizon(
    time: NDArray[np.float64],
    code: NDArray[np.float64],
    horizon: float,
    groups: NDArray[np.intp],
    n_groups: int,
    weights: NDArray[np.float64] | None = None,
) -> dict[str, NDArray[np.float64]]:
    """Per group: records analysed, events, competing events and censorings by the horizon,
    the number at risk at the horizon, the cumulative incidence there and its variance.

    `groups` numbers the records 0..n_groups-1 (negative: not in any group); records with a
    NaN time or code are left out. Every record gets one cell of a (group, time column,
    state) table — the time column is the day itself for whole days (else the rank among
    the distinct times up to the horizon, one sort), one extra column for times after the
    horizon (at risk at every earlier time, no event counted), the state its code 0, 1 or
    2+ — and one ``np.bincount`` counts them all, with no copy of the records. The estimator
    is the one of :func:`analysis.survival.cumulative_incidence` (shared code), read at the
    last column.
    """
    return _summarise_table(*_horizon_table(time, code, horizon, groups, n_groups, weights))


def _intervals(estimate: NDArray, variance: NDArray, level: float
               ) -> tuple[NDArray, NDArray, NDArray]:
    """SE and log(−log) interval of cumulative incidences (NaN where nobody was analysed)."""
    z = st.norm.isf((1.0 - level) / 2.0)
    se = np.sqrt(variance)
    with np.errstate(all="ignore"):
        low, high = _loglog_ci(estimate, se / estimate, z)
    return se, low, high


def horizon_groups(
    time: NDArray[np.float64], code: NDArray[np.float64], horizon: float,
    groups: NDArray[np.intp], n_groups: int, level: float = 0.95,
) -> dict[str, NDArray[np.float64]]:
    """:func:`_at_horizon` plus ``se``, ``low``, ``high`` (log(−log)); NaN estimates for a
    group with no record analysed. Used by :mod:`analysis.outcomes` on its groups."""
    out = _at_horizon(time, code, horizon, groups, n_groups)
    empty = out["n"] == 0
    out["estimate"] = np.where(empty, np.nan, out["estimate"])
    out["variance"] = np.where(empty, np.nan, out["variance"])
    out["se"], out["low"], out["high"] = _intervals(out["estimate"], out["variance"], level)
    return out


def cumulative_incidence_at(
    time: ArrayLike,
    event_code: ArrayLike,
    horizon: float,
    group: ArrayLike | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Cumulative incidence of event code 1 at `horizon`, per group, with SE, CI and at risk.

    Parameters
    ----------
    time : array_like
        Follow-up times (≥ 0); NaN rows are dropped.
    event_code : array_like
        0 censored, 1 event of interest, 2 (or any other positive code) competing event.
    horizon : float
        Time at which the cumulative incidence is read (e.g. 365 days).
    group : array_like, optional
        Group label of each record; one row per distinct label (sorted). Default one group.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        ``group`` (with `group`), ``n`` (records analysed), ``events`` and ``competing``
        (observed up to the horizon), ``censored`` (before the horizon, without an event),
        ``at_risk`` (still followed without an event at the horizon: time ≥ horizon),
        ``cumulative_incidence``, ``se``, ``low``, ``high``.

    Notes
    -----
    The estimate equals :func:`analysis.survival.cumulative_incidence` read at the last time
    ≤ `horizon` (same code); with no competing event it is 1 − Kaplan–Meier and the SE is
    Greenwood's. The interval is the log(−log) transform, ``se`` the delta-method SE of the
    cumulative incidence (Collett 2015, §12.2). Checked against R ``survfit`` (estimate, n at
    risk) and an R implementation of the variance in ``tests/results/horizon_cif.R``.

    Examples
    --------
    >>> cumulative_incidence_at([2, 3, 3, 5, 8], [1, 2, 1, 0, 1], 4)[
    ...     ["n", "events", "at_risk", "cumulative_incidence"]].round(3).to_numpy().tolist()
    [[5.0, 2.0, 2.0, 0.4]]
    """
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (exclusive), got {level}")
    t = np.asarray(time, dtype=float).ravel()
    e = np.asarray(event_code, dtype=float).ravel()
    if t.size != e.size:
        raise ValueError("time and event_code must have the same length")
    if np.any(t[~np.isnan(t)] < 0):
        raise ValueError("times must be non-negative")
    if not math.isfinite(float(horizon)) or horizon < 0:
        raise ValueError(f"horizon must be a non-negative number, got {horizon!r}")
    if group is None:
        codes, labels = np.zeros(t.size, dtype=np.intp), None
    else:
        g = pd.Series(np.asarray(group).ravel())
        if g.size != t.size:
            raise ValueError("group must have the same length as time")
        codes, labels = pd.factorize(g, sort=True)
    n_groups = 1 if labels is None else len(labels)
    out = horizon_groups(t, e, float(horizon), codes.astype(np.intp), n_groups, level)
    frame = pd.DataFrame({
        "n": out["n"].astype(np.int64), "events": out["events"].astype(np.int64),
        "competing": out["competing"].astype(np.int64),
        "censored": out["censored"].astype(np.int64), "at_risk": out["at_risk"].astype(np.int64),
        "cumulative_incidence": out["estimate"], "se": out["se"], "low": out["low"],
        "high": out["high"]})
    if labels is not None:
        frame.insert(0, "group", list(labels))
    return frame


# --------------------------------------------------------------------------------------------
# KP compared with VP at the horizon
# --------------------------------------------------------------------------------------------


def _log_interval(ratio: float, se_log: float, quantile: float) -> tuple[float, float]:
    """``ratio`` × exp(∓ quantile × se_log): the interval of a ratio from the SE of its log
    (NaN bounds for a NaN ratio)."""
    if math.isnan(ratio):
        return math.nan, math.nan
    return ratio * math.exp(-quantile * se_log), ratio * math.exp(quantile * se_log)


@dataclasses.dataclass(frozen=True)
class CumulativeIncidenceComparison(Result):
    """Cumulative incidences of two independent groups at a horizon compared.

    Attributes
    ----------
    estimate1, estimate2 : float
        The cumulative incidences (group 1 = KP, group 2 = VP by convention).
    difference, diff_low, diff_high : float
        ``estimate1 - estimate2`` with its Wald interval, SE ``sqrt(se1² + se2²)``.
    diff_se : float
        That SE.
    p_value : float
        Two-sided Wald z test of no difference.
    ratio, ratio_low, ratio_high : float
        ``estimate1 / estimate2`` with the interval of its log (delta method,
        ``SE² = se1²/F1² + se2²/F2²``); NaN when either estimate is 0.
    method : str
    """

    estimate1: float
    estimate2: float
    difference: float
    diff_se: float
    diff_low: float
    diff_high: float
    p_value: float
    ratio: float
    ratio_low: float
    ratio_high: float
    method: str


def compare_cumulative_incidence(
    estimate1: float, se1: float, estimate2: float, se2: float, level: float = 0.95
) -> CumulativeIncidenceComparison:
    """Difference and ratio of two independent cumulative incidences at the same horizon.

    Parameters
    ----------
    estimate1, se1 : float
        Cumulative incidence of group 1 (KP) and its SE.
    estimate2, se2 : float
        The same for group 2 (VP, the reference).
    level : float, default 0.95

    Returns
    -------
    CumulativeIncidenceComparison

    Notes
    -----
    The groups are independent, so the variance of the difference is the sum of the two
    variances (delta method); the ratio's interval is computed on the log scale and
    back-transformed. p from the Wald z test of the difference (Klein & Moeschberger 2003,
    §7.8; Pintilie, Competing Risks, Wiley 2006, §4.3).

    Examples
    --------
    >>> r = compare_cumulative_incidence(0.18, 0.012, 0.20, 0.015)
    >>> round(r.difference, 3), round(r.diff_se, 4)
    (-0.02, 0.0192)
    """
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (exclusive), got {level}")
    values = [float(v) for v in (estimate1, se1, estimate2, se2)]
    if any(math.isnan(v) for v in values):
        raise InsufficientDataError("Cumulative incidence comparison",
                                    "an estimate or its standard error is not available")
    f1, s1, f2, s2 = values
    z = float(st.norm.isf((1.0 - level) / 2.0))
    diff = f1 - f2
    se = math.sqrt(s1**2 + s2**2)
    p = float(2 * st.norm.sf(abs(diff) / se)) if se > 0 else (1.0 if diff == 0 else 0.0)
    if f1 > 0 and f2 > 0:
        ratio = f1 / f2
        se_log = math.sqrt((s1 / f1) ** 2 + (s2 / f2) ** 2)
        ratio_low, ratio_high = _log_interval(ratio, se_log, z)
    else:
        ratio = ratio_low = ratio_high = math.nan
    return CumulativeIncidenceComparison(
        estimate1=f1, estimate2=f2, difference=diff, diff_se=se, diff_low=diff - z * se,
        diff_high=diff + z * se, p_value=p, ratio=ratio, ratio_low=ratio_low,
        ratio_high=ratio_high,
        method=("difference with SE sqrt(var1 + var2) (independent groups, delta method), "
                "Wald z test; ratio with a log-scale delta-method interval"))


# --------------------------------------------------------------------------------------------
# Grouped (cluster) jackknife of the unadjusted comparison
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class KpVpContrast(Result):
    """The fields every KP − VP comparison of cumulative incidences at a horizon reports
    (the subclasses add how the SE was obtained).

    Attributes
    ----------
    estimate_kp, estimate_vp : float
        The cumulative incidences.
    difference, se, low, high, p_value : float
        KP − VP with its SE, interval and test.
    ratio, ratio_low, ratio_high : float
        KP / VP with the interval from the SE of the log ratio (NaN when not estimable).
    """

    estimate_kp: float
    estimate_vp: float
    difference: float
    se: float
    low: float
    high: float
    p_value: float
    ratio: float
    ratio_low: float
    ratio_high: float


@dataclasses.dataclass(frozen=True)
class ClusterJackknifeComparison(KpVpContrast):
    """KP − VP difference and KP / VP ratio of cumulative incidences at a horizon with a
    grouped (leave-one-cluster-out) jackknife standard error.

    Attributes
    ----------
    estimate_kp, estimate_vp : float
        The cumulative incidences from all records.
    difference, se, low, high, p_value : float
        KP − VP with the jackknife SE, the t(G − 1) interval and test.
    ratio, ratio_low, ratio_high : float
        KP / VP with the interval from the jackknife SE of the log ratio (NaN when an estimate
        is 0 in the full data or in a leave-one-out sample).
    n_clusters : int
        Clusters G with at least one analysed record (the jackknife replicates).
    leave_one_out : numpy.ndarray
        G × 2 cumulative incidences (KP, VP) without each cluster.
    method : str
    """

    n_clusters: int
    leave_one_out: NDArray[np.float64]
    method: str


def leave_one_cluster_out(
    time: NDArray[np.float64], code: NDArray[np.float64], horizon: float,
    groups: NDArray[np.intp], n_groups: int, clusters: NDArray[np.intp], n_clusters: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Cumulative incidence at `horizon` of every group from all records and without each
    cluster, from one count table per cluster.

    The Aalen–Johansen estimate at the horizon is a function of the per-time counts of
    events, competing events and censorings of a group only, so the table without cluster
    ``c`` is the total table minus the table of ``c``: one ``np.bincount`` over the records
    (O(n)), then O(G × days) for all G leave-one-out estimates, identical to re-running
    :func:`horizon_groups` without the cluster (a time column where nobody is left
    contributes nothing).

    Returns
    -------
    full : numpy.ndarray
        Estimates of the `n_groups` groups from all records (NaN: group empty).
    without : numpy.ndarray
        ``n_clusters × n_groups`` estimates without each cluster (NaN: group empty then).
    analysed : numpy.ndarray
        ``n_clusters`` records analysed per cluster (a cluster with none leaves the
        estimates unchanged).

    Examples
    --------
    >>> time = np.array([10.0, 20, 30, 40, 15, 25])
    >>> code = np.array([1.0, 0, 1, 0, 1, 0])
    >>> full, without, n = leave_one_cluster_out(time, code, 365, np.zeros(6, np.intp), 1,
    ...                                          np.array([0, 0, 1, 1, 2, 2]), 3)
    >>> round(float(full[0]), 4), np.round(without[:, 0], 4).tolist(), n.tolist()
    (0.6667, [0.625, 0.5, 0.625], [2.0, 2.0, 2.0])
    """
    cells = n_clusters * n_groups * (int(horizon) + 2) * 3
    if cells > MAX_CLUSTER_TABLE_CELLS:
        raise InsufficientDataError(
            "Cluster jackknife", f"{n_clusters:,} clusters need a count table of {cells:,} "
            f"cells (at most {MAX_CLUSTER_TABLE_CELLS:,})")
    combined = clusters.astype(np.intp, copy=False) * n_groups + groups
    combined = np.where(groups < 0, -1, combined)
    counts, before, at = _horizon_table(time, code, horizon, combined,
                                        n_clusters * n_groups)
    counts = counts.reshape(n_clusters, n_groups, *counts.shape[1:])
    total = counts.sum(axis=0)
    full = _summarise_table(total, before, at)
    without = _summarise_table(total[None] - counts, before, at)
    full_estimate = np.where(full["n"] > 0, full["estimate"], np.nan)
    loo = np.where(without["n"] > 0, without["estimate"], np.nan)
    return full_estimate, loo, counts.sum(axis=(1, 2, 3))


def cluster_jackknife_cumulative_incidence(
    time: NDArray[np.float64], code: NDArray[np.float64], treated: NDArray[np.intp],
    horizon: float, clusters: NDArray[np.intp], n_clusters: int, level: float = 0.95,
) -> ClusterJackknifeComparison:
    """KP − VP difference and KP / VP ratio of cumulative incidences at `horizon`, with a
    grouped jackknife over clusters (facilities).

    Parameters
    ----------
    time, code : numpy.ndarray
        Times and event codes (:func:`horizon_time_event`).
    treated : numpy.ndarray
        1 KP, 0 VP, negative: not compared.
    horizon : float
    clusters : numpy.ndarray
        Cluster codes 0..n_clusters-1 (:func:`analysis.cluster_variance.cluster_codes`).
    n_clusters : int
    level : float, default 0.95

    Returns
    -------
    ClusterJackknifeComparison

    Notes
    -----
    Each cluster g with an analysed record is left out in turn and both cumulative
    incidences are recomputed (:func:`leave_one_cluster_out`, without re-reading the
    records); with θ₋g the difference (or log ratio) without cluster g and θ̄ their mean,
    ``Var = (G − 1)/G Σ_g (θ₋g − θ̄)²`` (Efron & Tibshirani 1993, ch. 11; the grouped /
    delete-one-cluster jackknife, Cameron & Miller 2015, §VI.C). It allows any correlation
    of the outcomes within a cluster, as the CR1 sandwich of the other clustered rows, and
    the interval and test use t with G − 1 degrees of freedom like them. The estimate is the
    one from all records.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> n = 400
    >>> clusters = rng.integers(0, 8, n)
    >>> treated = rng.integers(0, 2, n)
    >>> time = rng.integers(1, 500, n).astype(float)
    >>> code = rng.integers(0, 2, n).astype(float)
    >>> r = cluster_jackknife_cumulative_incidence(time, code, treated, 365, clusters, 8)
    >>> r.n_clusters, bool(r.se > 0)
    (8, True)
    """
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (exclusive), got {level}")
    groups = np.asarray(treated, dtype=np.intp)
    full, without, analysed = leave_one_cluster_out(time, code, horizon, groups, 2,
                                                    np.asarray(clusters), n_clusters)
    kp, vp = float(full[1]), float(full[0])
    used = analysed > 0
    g = int(used.sum())
    if math.isnan(kp) or math.isnan(vp):
        raise InsufficientDataError("Cluster jackknife", "a procedure has no analysed record")
    if g < 2:
        raise InsufficientDataError("Cluster jackknife", "fewer than 2 clusters")
    loo = without[used][:, ::-1]  # columns KP, VP
    if np.isnan(loo).any():
        raise InsufficientDataError(
            "Cluster jackknife", "leaving out one cluster removes every analysed record of "
            "a procedure")

    def jackknife_se(theta: NDArray[np.float64]) -> float:
        return float(math.sqrt((g - 1) / g * float(((theta - theta.mean()) ** 2).sum())))

    diff = kp - vp
    se = jackknife_se(loo[:, 0] - loo[:, 1])
    q = float(st.t.isf((1.0 - level) / 2.0, g - 1))
    p = float(2 * st.t.sf(abs(diff) / se, g - 1)) if se > 0 else (1.0 if diff == 0 else 0.0)
    nan = math.nan
    ratio = ratio_low = ratio_high = nan
    if kp > 0 and vp > 0 and (loo > 0).all():
        ratio = kp / vp
        se_log = jackknife_se(np.log(loo[:, 0] / loo[:, 1]))
        ratio_low, ratio_high = _log_interval(ratio, se_log, q)
    how = (f"SE from the grouped jackknife over {g} clusters (each cluster left out in turn "
           "and both cumulative incidences recomputed; Efron & Tibshirani 1993, Cameron & "
           f"Miller 2015), t with {g - 1} df; ratio with the jackknife SE of its log")
    return ClusterJackknifeComparison(
        estimate_kp=kp, estimate_vp=vp, difference=diff, se=se, low=diff - q * se,
        high=diff + q * se, p_value=p, ratio=ratio, ratio_low=ratio_low,
        ratio_high=ratio_high, n_clusters=g, leave_one_out=loo, method=how)


# --------------------------------------------------------------------------------------------
# IPTW-adjusted cumulative incidence
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class IptwCumulativeIncidence(KpVpContrast):
    """IPTW-weighted cumulative incidences of KP and VP at a horizon and their difference.

    Attributes
    ----------
    estimate_kp, estimate_vp : float
        Weighted cumulative incidences (the whole population treated with KP / with VP).
    difference, low, high, se, p_value : float
        KP − VP with the bootstrap SE, a Wald interval and a z test.
    ratio, ratio_low, ratio_high : float
        KP / VP with the interval from the bootstrap SE of the log ratio.
    n_boot : int
        Bootstrap replicates that gave an estimate.
    m : int
        Records resampled per replicate (m-out-of-n above ``BOOTSTRAP_MAX_N``; with
        clusters: the number of records).
    method : str
    n_clusters : int
        Clusters resampled (0: records resampled, not clustered).
    """

    n_boot: int
    m: int
    method: str
    n_clusters: int = 0


def _weighted_pair(time, code, t, w, horizon) -> tuple[float, float]:
    out = _at_horizon(time, code, horizon, t.astype(np.intp), 2, w)
    return float(out["estimate"][1]), float(out["estimate"][0])


def iptw_cumulative_incidence(
    time: NDArray[np.float64],
    code: NDArray[np.float64],
    treated: NDArray[np.float64],
    x: NDArray[np.float64],
    horizon: float,
    *,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
    max_n: int = 5000,
    weights: NDArray[np.float64] | None = None,
    clusters: NDArray[np.intp] | None = None,
) -> IptwCumulativeIncidence:
    """Cumulative incidence at `horizon` of KP and VP weighted by the inverse probability
    of treatment (ATE, stabilised), with a bootstrap that refits the propensity model.

    Parameters
    ----------
    time, code : numpy.ndarray
        Times and event codes (:func:`horizon_time_event`), one per modelled record.
    treated : numpy.ndarray
        1 for KP, 0 for VP.
    x : numpy.ndarray
        Propensity model matrix (intercept and covariates, without the treatment), as in
        :mod:`analysis.adjustment`.
    horizon : float
    n_boot : int, default 200
        Bootstrap replicates (keyword only).
    seed : int, default 0
    level : float, default 0.95
    max_n : int, default 5000
        Above this many records each replicate resamples ``max_n`` of them and the SE is
        rescaled by ``sqrt(m / n)`` (m-out-of-n bootstrap, as the g-computation does).
    weights : numpy.ndarray, optional
        The weights of the point estimate when already computed from the same propensity
        model on these records (as :func:`analysis.comparison.compare_procedures` has them);
        default: fitted here.
    clusters : numpy.ndarray, optional
        Cluster (facility) code of every record: the bootstrap then resamples whole clusters
        (see the notes).

    Returns
    -------
    IptwCumulativeIncidence

    Notes
    -----
    Weights from the logistic propensity model of :mod:`analysis.adjustment` (the one of
    ``iptw_effect``); the weighted Aalen–Johansen estimator uses weighted numbers at risk
    and of events (Cole & Hernán 2004). The variance is a nonparametric bootstrap of whole
    records that refits the propensity model in every replicate, so the uncertainty of the
    weights is included.

    With `clusters` it is a **cluster bootstrap** (Field & Welsh 2007; Cameron & Miller 2015,
    §VI.A): each replicate draws G clusters with replacement and keeps all their records. Up
    to `max_n` records the propensity model is refitted in every replicate. Above, a refit
    per replicate would cost O(n) each, and resampling fewer records within the clusters
    would shrink the between-cluster variance, so the weights are held at those of the
    full-data model: one weighted count table per cluster (O(n) once) and each replicate
    adds the tables of its clusters (O(G × days)). Holding estimated ATE weights fixed
    ignores their estimation, which makes the variance conservative (Lunceford & Davidian
    2004), as for the HC0 interval of the IPTW risk difference.
    """
    from analysis.adjustment.propensity import _propensity  # here: adjustment is the heavier module

    if weights is None:
        _, weights, _, _ = _propensity(x, treated, "ATE", True, None)
    # The weights come from every modelled record (also those without a time at the
    # horizon, as the propensity model of analysis.adjustment); the estimate uses those
    # with a time.
    ok = ~(np.isnan(time) | np.isnan(code) | np.isnan(treated))
    time, code, treated, x, w = time[ok], code[ok], treated[ok], x[ok], weights[ok]
    n = time.size
    if min(int((treated == 1).sum()), int((treated == 0).sum())) < 2:
        raise InsufficientDataError("IPTW cumulative incidence",
                                    "fewer than 2 records in a procedure")
    kp, vp = _weighted_pair(time, code, treated, w, horizon)
    rng = np.random.default_rng(seed)
    if clusters is not None:
        return _iptw_cluster_bootstrap(time, code, treated, x, w, horizon, clusters[ok],
                                       n_boot, rng, level, max_n, (kp, vp))
    m = min(n, max_n)
    reps = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=m)
        tb = treated[idx]
        if tb.min() == tb.max():
            continue
        try:
            _, wb, _, _ = _propensity(x[idx], tb, "ATE", True, None)
        except (np.linalg.LinAlgError, ValueError):
            continue
        reps.append(_weighted_pair(time[idx], code[idx], tb, wb, horizon))
    z = float(st.norm.isf((1.0 - level) / 2.0))
    scale = math.sqrt(m / n)
    se, ratio_se = _bootstrap_ses(np.asarray(reps).reshape(-1, 2), scale)
    diff = kp - vp
    nan = math.nan
    p = float(2 * st.norm.sf(abs(diff) / se)) if se > 0 else nan
    ratio = kp / vp if vp > 0 and kp > 0 else nan
    how = (f"IPTW-weighted cumulative incidence at {horizon:g} days (ATE, stabilised weights; "
           f"Cole & Hernán 2004); SE from {len(reps)} bootstrap replicates refitting the "
           "propensity model" + (f", m-out-of-n (m = {m:,} of {n:,}, SE × sqrt(m/n))"
                                 if m < n else "")
           + (f" (Monte-Carlo error of the SE about {100 / math.sqrt(2 * len(reps)):.0f}%)"
              if reps else "") + "; Wald CI and z test")
    ratio_low, ratio_high = _log_interval(ratio, ratio_se, z)
    return IptwCumulativeIncidence(
        estimate_kp=kp, estimate_vp=vp, difference=diff, se=se, low=diff - z * se,
        high=diff + z * se, p_value=p, ratio=ratio,
        ratio_low=ratio_low, ratio_high=ratio_high,
        n_boot=len(reps), m=m, method=how)


def _bootstrap_ses(reps: NDArray[np.float64], scale: float = 1.0) -> tuple[float, float]:
    """Bootstrap SEs of the difference and of the log ratio from replicate (KP, VP) pairs."""
    se = ratio_se = math.nan
    if len(reps) >= 2:
        se = float(np.std(reps[:, 0] - reps[:, 1], ddof=1)) * scale
        positive = (reps > 0).all(axis=1)
        if positive.sum() >= 2:
            ratio_se = float(np.std(np.log(reps[positive, 0] / reps[positive, 1]),
                                    ddof=1)) * scale
    return se, ratio_se


def _iptw_cluster_bootstrap(
    time: NDArray[np.float64], code: NDArray[np.float64], treated: NDArray[np.float64],
    x: NDArray[np.float64], w: NDArray[np.float64], horizon: float,
    clusters: NDArray[np.intp], n_boot: int, rng: np.random.Generator, level: float,
    max_n: int, estimates: tuple[float, float],
) -> IptwCumulativeIncidence:
    """The cluster bootstrap of :func:`iptw_cumulative_incidence` (see its notes)."""
    from analysis.adjustment.propensity import _propensity

    n = time.size
    codes, clusters = np.unique(np.asarray(clusters, dtype=np.intp), return_inverse=True)
    g = codes.size
    if g < 2:
        raise InsufficientDataError("IPTW cluster bootstrap", "fewer than 2 clusters")
    draws = rng.integers(0, g, size=(n_boot, g))
    reps = []
    refit = n <= max_n
    if refit:
        order = np.argsort(clusters, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(clusters, minlength=g))])
        members = [order[bounds[c]:bounds[c + 1]] for c in range(g)]
        for draw in draws:
            idx = np.concatenate([members[c] for c in draw])
            tb = treated[idx]
            if tb.min() == tb.max():
                continue
            try:
                _, wb, _, _ = _propensity(x[idx], tb, "ATE", True, None)
            except (np.linalg.LinAlgError, ValueError):
                continue
            reps.append(_weighted_pair(time[idx], code[idx], tb, wb, horizon))
        reps_arr = np.asarray(reps).reshape(-1, 2)
    else:
        cells = g * 2 * (int(horizon) + 2) * 3
        if cells > MAX_CLUSTER_TABLE_CELLS:
            raise InsufficientDataError(
                "IPTW cluster bootstrap", f"{g:,} clusters need a count table of {cells:,} "
                f"cells (at most {MAX_CLUSTER_TABLE_CELLS:,})")
        table, before, at = _horizon_table(time, code, horizon,
                                           clusters * 2 + treated.astype(np.intp), g * 2, w)
        table = table.reshape(g, -1)
        times_drawn = np.zeros((n_boot, g))
        np.add.at(times_drawn, (np.repeat(np.arange(n_boot), g), draws.ravel()), 1.0)
        replicate = (times_drawn @ table).reshape(n_boot, 2, -1, 3)
        out = _summarise_table(replicate, before, at)
        both = (out["n"] > 0).all(axis=1)
        reps_arr = out["estimate"][both][:, ::-1]  # columns KP, VP
    kp, vp = estimates
    se, ratio_se = _bootstrap_ses(reps_arr)
    q = float(st.t.isf((1.0 - level) / 2.0, g - 1))
    diff = kp - vp
    nan = math.nan
    p = float(2 * st.t.sf(abs(diff) / se, g - 1)) if se > 0 else nan
    ratio = kp / vp if vp > 0 and kp > 0 else nan
    b = len(reps_arr)
    how = (f"IPTW-weighted cumulative incidence at {horizon:g} days (ATE, stabilised weights; "
           f"Cole & Hernán 2004); SE from {b} cluster bootstrap replicates resampling whole "
           f"clusters ({g} clusters; Field & Welsh 2007)"
           + (", refitting the propensity model" if refit else
              f", weights held at the full-data propensity model above {max_n:,} records "
              "(conservative: Lunceford & Davidian 2004)")
           + (f" (Monte-Carlo error of the SE about {100 / math.sqrt(2 * b):.0f}%)" if b else "")
           + f"; Wald CI and test with t, {g - 1} df (Cameron & Miller 2015)")
    ratio_low, ratio_high = _log_interval(ratio, ratio_se, q)
    return IptwCumulativeIncidence(
        estimate_kp=kp, estimate_vp=vp, difference=diff, se=se, low=diff - q * se,
        high=diff + q * se, p_value=p, ratio=ratio,
        ratio_low=ratio_low, ratio_high=ratio_high,
        n_boot=b, m=n, method=how, n_clusters=g)
