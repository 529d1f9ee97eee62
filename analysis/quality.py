"""Quality monitoring of facilities and operators: funnel plots, O/E ratios, RA-CUSUM, p-charts.

Every function works on the project's record frame (one row per procedure, data-dictionary
column names) or on plain arrays, and returns either a tidy :class:`pandas.DataFrame` or a small
frozen result object (:class:`analysis._results.Result`).

Outcomes
--------
``"cement_leakage"`` and ``"pulmonary_embolism"`` are used as recorded (rows with a missing value
are excluded). ``"adjacent_fracture"`` (new fracture) is a time-to-event outcome: the funnel,
caterpillar and table compare observed with expected events given each procedure's time at risk
(:func:`person_time`; a Poisson case-mix model with log person-time as offset), and the CUSUM
charts the fixed-horizon indicator "new fracture within 365 days" among procedures whose status
at 365 days is known (:func:`horizon_outcome`). ``"non_response"`` is 1 when the patient is *not* a
pain responder at month 1 by the default definition of
:class:`analysis.outcomes.ResponderDefinition` (a reduction of at least 30% from baseline), the one
rule used everywhere: a baseline of 0 cannot fall by 30% and is a non-response (an event); rows
with a missing ``pain_month1`` or ``pain_baseline`` are excluded, never counted as events (complete
case; deaths before the visit are missing too). :func:`outcome_completeness` gives each unit's
share of records with the outcome recorded (for non-response: with a month-1 score), shown beside
the monitoring table.

Methods
-------
* Funnel plots: Spiegelhalter DJ. Funnel plots for comparing institutional performance. Stat Med
  2005;24:1185 (exact binomial / Poisson limits with interpolation, Appendix A.1); over-dispersion
  by winsorised z-scores: Spiegelhalter DJ. QSHC 2005;14:347; additive random-effects limits:
  Spiegelhalter DJ et al. JRSS-A 2012;175:1.
* O/E ratios: exact Poisson limits from the chi-square relation (Ulm K. AJE 1990;131:373) and
  Byar's approximation (Breslow NE, Day NE. Statistical Methods in Cancer Research II, 1987).
* Risk-adjusted CUSUM: Steiner SH, Cook RJ, Farewell VT, Treasure T. Biostatistics 2000;1:441;
  its decision limits from the Markov-chain ARL: Brook D, Evans DA. Biometrika 1972;59:539;
  VLAD: Lovegrove J et al. Lancet 1997;350:1128.
* p-chart and Laney p': Laney DB. Quality Engineering 2002;14:531.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import math
import struct
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats as st
from scipy import optimize, special

from analysis._kernels import _floats
from analysis._results import Result
from analysis.errors import InsufficientDataError
from analysis.outcomes import ResponderDefinition

__all__ = [
    "OUTCOMES",
    "CusumResult",
    "CusumThreshold",
    "FunnelResult",
    "OERatio",
    "Overdispersion",
    "RiskModelResult",
    "alternative_risk",
    "caterpillar",
    "cusum",
    "cusum_arl",
    "cusum_chart",
    "cusum_false_alarm",
    "cusum_threshold",
    "horizon_outcome",
    "person_time",
    "estimate_overdispersion",
    "funnel_data",
    "funnel_limits",
    "funnel_limits_oe",
    "oe_ratio",
    "outcome_completeness",
    "outcome_values",
    "p_chart",
    "risk_model",
    "apply_risk_model",
]

OUTCOMES: tuple[str, ...] = (
    "cement_leakage",
    "pulmonary_embolism",
    "adjacent_fracture",
    "non_response",
)
"""Outcomes supported by the quality functions."""

#: Relative pain reduction that defines a responder at month 1 (>= 30%).
RESPONDER_REDUCTION = 0.30
#: Default case-mix covariates of :func:`risk_model` (``prior_fractures`` only when present).
#: The procedure (VP or KP) is not among them: it is the unit's own choice of technique, so
#: adjusting for it would remove that choice from the unit's assessment. Add
#: :data:`PROCEDURE_COVARIATE` explicitly (``adjust_procedure=True``) to compare units as if
#: they had used the same technique.
DEFAULT_COVARIATES: tuple[str, ...] = (
    "age",
    "sex",
    "etiology",
    "levels_treated",
    "prior_fractures",
)
#: The optional case-mix covariate "procedure" (see :data:`DEFAULT_COVARIATES`).
PROCEDURE_COVARIATE = "procedure"
#: Time-to-event outcomes and the column with the day of the event. They are monitored as
#: events per person-time (Poisson), never as a proportion: a proportion of "ever recorded"
#: events grows with the length of follow-up.
TIME_TO_EVENT: dict[str, str] = {"adjacent_fracture": "adjacent_fracture_days"}
#: Horizon (days) of the fixed-horizon indicator that the CUSUM/VLAD charts for a
#: time-to-event outcome (event by this day, among procedures whose status at the horizon is
#: known); see :func:`horizon_outcome`.
HORIZON_DAYS = 365
#: Days in a person-year.
DAYS_PER_YEAR = 365.25
#: Follow-up bands (days since the procedure) of the piecewise-constant baseline rate of a
#: time-to-event outcome: the expected events of a record are the sum over the bands of its
#: days at risk in the band × the band's rate (× its case-mix rate ratio). New fractures are
#: most frequent in the first months, so a single constant rate would expect too few events
#: of units with short follow-up and too many of units with long follow-up.
FOLLOWUP_BANDS: tuple[float, ...] = (0.0, 90.0, 180.0, 365.0, 730.0, math.inf)
#: Default in-control probability of at least one false signal of the pair of CUSUM charts
#: over a unit's whole series (split equally between the upper and the lower chart).
FALSE_ALARM = 0.05
#: Minimum number of events and of non-events for fitting a case-mix model.
MIN_EVENTS = 10
#: Funnel limit levels used by :func:`funnel_data`: "alert" (95%) and "alarm" (99.8%).
FUNNEL_LEVELS: tuple[float, float] = (0.95, 0.998)
#: Significance level of the over-dispersion test that decides whether a model is applied.
OVERDISPERSION_ALPHA = 0.05


# ---------------------------------------------------------------------------------------------
# Outcomes
# ---------------------------------------------------------------------------------------------
def outcome_values(records: pd.DataFrame, outcome: str) -> pd.Series:
    """Binary outcome per record as floats (1 = event, 0 = none, NaN = excluded).

    Parameters
    ----------
    records : DataFrame
        Records with the data-dictionary columns.
    outcome : str
        One of :data:`OUTCOMES`.

    Returns
    -------
    Series
        Aligned to ``records.index``. For ``"non_response"`` an event is a month-1 pain score above
        70% of baseline, as :class:`analysis.outcomes.ResponderDefinition` (so a baseline of 0 is
        an event); rows without ``pain_month1`` or ``pain_baseline`` are NaN (excluded), never
        events.

    Examples
    --------
    >>> df = pd.DataFrame({"pain_baseline": [8.0, 8.0, 8.0, 0.0],
    ...                    "pain_month1": pd.array([2.0, 7.0, None, 0.0], dtype="Float64")})
    >>> outcome_values(df, "non_response").tolist()
    [0.0, 1.0, nan, 1.0]
    """
    if outcome in _HORIZON_OUTCOMES:
        return _horizon_values(records, _HORIZON_OUTCOMES[outcome], outcome)
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
    if outcome == "non_response":
        missing = [c for c in ("pain_baseline", "pain_month1") if c not in records]
        if missing:
            raise KeyError(f"records lack column(s) {missing} needed for 'non_response'")
        _, followed, responder = ResponderDefinition(
            "month1", "relative", 100 * RESPONDER_REDUCTION)._arrays(records)
        values = np.where(followed, np.where(responder, 0.0, 1.0), np.nan)
    else:
        if outcome not in records:
            raise KeyError(f"records lack column {outcome!r}")
        values = _floats(records[outcome])
    return pd.Series(values, index=records.index, name=outcome)


def outcome_completeness(records: pd.DataFrame, unit: str, outcome: str) -> pd.DataFrame:
    """Per unit, the share of its records that have the outcome recorded.

    Monitoring uses the records with the outcome (complete case); a unit whose patients
    are often not followed up can look good or bad by who was followed. Show this next to
    the unit's rate.

    Parameters
    ----------
    records : DataFrame
        Records with the unit column and the columns of the outcome.
    unit : str
        Grouping column, ``"facility_id"`` or ``"operator_id"``.
    outcome : str
        One of :data:`OUTCOMES`.

    Returns
    -------
    DataFrame
        ``unit, n_eligible, n_recorded, completeness`` sorted by unit: for
        ``"non_response"`` the records with a baseline pain score and, of those, the ones
        with a month-1 score; for the other outcomes all records and those with the outcome
        recorded. ``completeness = n_recorded / n_eligible`` (NaN when no record is
        eligible). Records without a unit are left out.

    Examples
    --------
    >>> df = pd.DataFrame({"facility_id": ["A", "A", "A", "B"],
    ...                    "pain_baseline": [8.0, 8.0, None, 6.0],
    ...                    "pain_month1": [2.0, None, None, 5.0]})
    >>> outcome_completeness(df, "facility_id", "non_response")
      unit  n_eligible  n_recorded  completeness
    0    A           2           1           0.5
    1    B           1           1           1.0
    """
    if unit not in records:
        raise KeyError(f"records lack the unit column {unit!r}")
    recorded = outcome_values(records, outcome).notna().to_numpy()
    if outcome == "non_response":
        eligible = ~np.isnan(_floats(records["pain_baseline"]))
    else:
        eligible = np.ones(len(records), dtype=bool)
    has_unit = records[unit].notna().to_numpy()
    columns = ["unit", "n_eligible", "n_recorded", "completeness"]
    if not has_unit.any():
        return pd.DataFrame(columns=columns)
    group, names = _unit_groups(records[unit], has_unit)
    n_eligible = np.bincount(group, weights=eligible[has_unit], minlength=names.size)
    n_recorded = np.bincount(group, weights=recorded[has_unit], minlength=names.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(n_eligible > 0, n_recorded / n_eligible, np.nan)
    return pd.DataFrame({"unit": names, "n_eligible": n_eligible.astype(np.int64),
                         "n_recorded": n_recorded.astype(np.int64), "completeness": share},
                        columns=columns)


def horizon_outcome(outcome: str, horizon: int = HORIZON_DAYS) -> str:
    """Name of the fixed-horizon indicator of a time-to-event outcome (the CUSUM's outcome).

    ``outcome_values(records, horizon_outcome("adjacent_fracture"))`` is 1 for a new fracture
    by day 365, 0 when the procedure is known to be free of it at day 365 (follow-up of at
    least 365 days, or death within follow-up before day 365 without a fracture: death is a
    competing event) and NaN when the status at day 365 is unknown (last contact before day
    365 and no fracture by then). Selecting on the follow-up, not on the outcome, keeps the
    indicator unbiased for the cumulative incidence at 365 days under independent censoring.
    Other outcomes are returned unchanged.

    Examples
    --------
    >>> horizon_outcome("adjacent_fracture"), horizon_outcome("cement_leakage")
    ('adjacent_fracture_365d', 'cement_leakage')
    """
    if outcome not in TIME_TO_EVENT:
        return outcome
    name = f"{outcome}_{int(horizon)}d"
    _HORIZON_OUTCOMES[name] = outcome
    _HORIZONS[name] = int(horizon)
    return name


_HORIZON_OUTCOMES: dict[str, str] = {}
_HORIZONS: dict[str, int] = {}
for _outcome in TIME_TO_EVENT:
    horizon_outcome(_outcome)


def _column_days(records: pd.DataFrame, column: str) -> np.ndarray:
    if column not in records:
        raise KeyError(f"records lack column {column!r} needed for the time at risk")
    return _floats(records[column])


def _horizon_values(records: pd.DataFrame, outcome: str, name: str) -> pd.Series:
    horizon = float(_HORIZONS[name])
    event = _floats(records[outcome]) if outcome in records else None
    if event is None:
        raise KeyError(f"records lack column {outcome!r}")
    event_day = _column_days(records, TIME_TO_EVENT[outcome])
    followup = _column_days(records, "followup_days")
    death = _column_days(records, "death_days") if "death_days" in records else np.full(
        len(records), np.nan)
    with np.errstate(invalid="ignore"):
        by_horizon = (event == 1) & (event_day <= horizon)
        died_in_followup = death <= followup
        free = ((event == 0) | ((event == 1) & (event_day > horizon))) & (
            (followup >= horizon) | (died_in_followup & (death < horizon)))
    values = np.where(by_horizon, 1.0, np.where(free, 0.0, np.nan))
    values[np.isnan(event)] = np.nan
    return pd.Series(values, index=records.index, name=name)


def person_time(records: pd.DataFrame, outcome: str = "adjacent_fracture") -> pd.Series:
    """Days at risk of a time-to-event outcome per record (NaN where it cannot be computed).

    Time at risk ends at the first event (``adjacent_fracture_days``), at death
    (``death_days``) or at the last contact (``followup_days``), whichever comes first. A death
    recorded after the last contact (e.g. from a death register) does not extend it: events
    are ascertained only up to the last contact. Half a day is added so that an event or a last
    contact on the day of the procedure contributes some time (the usual mid-interval
    convention for whole-day times).

    Parameters
    ----------
    records : DataFrame
        Records with the outcome, its event-day column, ``followup_days`` and (optionally)
        ``death_days``.
    outcome : str
        A key of :data:`TIME_TO_EVENT`.

    Returns
    -------
    Series
        Days at risk (float), aligned to ``records.index``; NaN where the outcome, its day (for
        an event) or ``followup_days`` is missing.

    Examples
    --------
    >>> df = pd.DataFrame({"adjacent_fracture": [True, False, False],
    ...                    "adjacent_fracture_days": [30.0, None, None],
    ...                    "followup_days": [400.0, 200.0, 100.0],
    ...                    "death_days": [None, 150.0, 700.0]})
    >>> person_time(df).tolist()
    [30.5, 150.5, 100.5]
    """
    if outcome not in TIME_TO_EVENT:
        raise ValueError(f"{outcome!r} is not a time-to-event outcome")
    if outcome not in records:
        raise KeyError(f"records lack column {outcome!r}")
    event = _floats(records[outcome])
    event_day = _column_days(records, TIME_TO_EVENT[outcome])
    end = _column_days(records, "followup_days")
    if "death_days" in records:
        death = _floats(records["death_days"])
        end = np.where(death < end, death, end)  # NaN death: the comparison is False
    days = np.where(event == 1, np.minimum(event_day, end), end)
    days = np.where(np.isnan(event), np.nan, days)
    return pd.Series(days + 0.5, index=records.index, name="person_time")


def _band_exposure(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Days at risk in each :data:`FOLLOWUP_BANDS` band (n × B) and the band in which each
    record's time at risk ends (where its event, if any, happened)."""
    edges = np.asarray(FOLLOWUP_BANDS)
    lo, hi = edges[:-1], edges[1:]
    exposure = np.clip(days[:, None] - lo[None, :], 0.0, hi - lo)
    last = np.clip(np.searchsorted(edges, days, side="left") - 1, 0, lo.size - 1)
    return exposure, last


def _crude_expected_events(days: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Expected events of each record at the pooled piecewise-constant rates: Σ_b t_ib·λ_b
    with λ_b = events ending in band b ÷ days at risk in band b (all records given)."""
    exposure, last = _band_exposure(days)
    events = np.bincount(last, weights=y, minlength=exposure.shape[1])
    at_risk = exposure.sum(axis=0)
    rate = np.divide(events, at_risk, out=np.zeros_like(events), where=at_risk > 0)
    return exposure @ rate


def _unit_groups(units: pd.Series, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group number (0..k-1) of each kept row, and the k unit names in sorted order.

    The same groups and order as ``groupby(units[keep], sort=True)`` on the unit values as
    objects, without hashing strings when ``units`` is categorical (the dashboard passes
    categorical unit columns: grouping a million string ids costs ~40 ms, codes ~2 ms).
    """
    if isinstance(units.dtype, pd.CategoricalDtype):
        codes = units.cat.codes.to_numpy()[keep].astype(np.intp)
        names = np.asarray(units.cat.categories.astype(object), dtype=object)
    else:
        codes, uniques = pd.factorize(units.to_numpy(dtype=object)[keep])
        names = np.asarray(uniques, dtype=object)
    present = np.flatnonzero(np.bincount(codes, minlength=names.size) > 0)
    order = present[np.argsort(names[present], kind="stable")]
    group = np.empty(names.size, dtype=np.intp)
    group[order] = np.arange(order.size)
    return group[codes], names[order]


def _group_sums(group: np.ndarray, k: int, *values: np.ndarray) -> list[np.ndarray]:
    """Per-group sums of each array (``np.bincount`` with weights), NaN skipped as
    ``groupby(...).sum()`` skips it."""
    return [np.bincount(group, weights=np.where(np.isnan(v), 0.0, v), minlength=k)
            for v in values]


# ---------------------------------------------------------------------------------------------
# Funnel limits
# ---------------------------------------------------------------------------------------------
def _z(level: float) -> float:
    return float(st.norm.ppf(1.0 - (1.0 - level) / 2.0))


def _check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    levels = tuple(float(x) for x in np.atleast_1d(levels))
    if not levels or any(not 0.0 < x < 1.0 for x in levels):
        raise ValueError("levels must be probabilities strictly between 0 and 1")
    return levels


def _binom_cdf(r: np.ndarray, n: np.ndarray, theta: float) -> np.ndarray:
    """Binomial cdf extended to real n via the regularised incomplete beta function."""
    r = np.asarray(r, dtype=float)
    n = np.broadcast_to(np.asarray(n, dtype=float), r.shape)
    out = np.where(r < 0, 0.0, 1.0)
    inside = (r >= 0) & (r < n)
    out[inside] = special.betainc(n[inside] - r[inside], r[inside] + 1.0, 1.0 - theta)
    return out


def _poisson_cdf(r: np.ndarray, mu: np.ndarray) -> np.ndarray:
    r = np.asarray(r, dtype=float)
    mu = np.broadcast_to(np.asarray(mu, dtype=float), r.shape)
    out = np.zeros(r.shape)
    ok = r >= 0
    out[ok] = special.gammaincc(r[ok] + 1.0, mu[ok])
    return out


def _interpolated_quantile(
    cdf: Callable[[np.ndarray], np.ndarray], p: float, upper: np.ndarray
) -> np.ndarray:
    """``r_p - alpha`` of Spiegelhalter (2005) Appendix A.1, vectorised.

    ``r_p`` is the smallest integer r with ``cdf(r) >= p`` (found by bisection on
    ``[-1, upper]``) and ``alpha = (cdf(r_p) - p) / (cdf(r_p) - cdf(r_p - 1))``.
    """
    hi = np.asarray(upper, dtype=float).copy()
    if np.any(cdf(hi) < p):  # pragma: no cover - the callers choose safe upper bounds
        raise RuntimeError("quantile search bound too small")
    lo = np.full(hi.shape, -1.0)
    while np.any(hi - lo > 1):
        mid = np.floor((lo + hi) / 2.0)
        ok = cdf(mid) >= p
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    f_r = cdf(hi)
    f_below = cdf(hi - 1.0)
    alpha = (f_r - p) / (f_r - f_below)
    return hi - alpha


def funnel_limits(
    n: float | Sequence[float] | np.ndarray,
    target: float,
    levels: Sequence[float] = FUNNEL_LEVELS,
    method: str = "exact",
) -> pd.DataFrame:
    """Funnel-plot control limits for a proportion.

    Parameters
    ----------
    n : float or array_like
        Denominators (volumes). Non-integer values are allowed, to draw smooth curves: the exact
        method then uses the binomial cdf extended to real n through the incomplete beta function.
    target : float
        Target proportion θ0, strictly between 0 and 1.
    levels : sequence of float
        Two-sided coverage levels; 0.95 gives the limits at p = 0.025/0.975 ("2σ") and 0.998 at
        p = 0.001/0.999 ("3σ").
    method : {"exact", "normal"}
        ``"exact"``: binomial quantiles with Spiegelhalter's interpolation,
        ``limit = (r_p - α)/n`` truncated to [0, 1] (Spiegelhalter 2005, Stat Med 24:1185,
        Appendix A.1.1). ``"normal"``: ``θ0 ± z·sqrt(θ0(1-θ0)/n)``, not truncated.

    Returns
    -------
    DataFrame
        Columns ``n, level, low, high``; one row per level and n (all n of the first level first).

    Examples
    --------
    >>> funnel_limits([20, 100], 0.10, levels=[0.95]).round(4)
           n  level     low    high
    0   20.0   0.95  0.0000  0.2285
    1  100.0   0.95  0.0404  0.1577
    """
    if not 0.0 < target < 1.0:
        raise ValueError("target must be strictly between 0 and 1")
    levels = _check_levels(levels)
    n_arr = np.atleast_1d(np.asarray(n, dtype=float))
    if np.any(~np.isfinite(n_arr)) or np.any(n_arr <= 0):
        raise ValueError("n must be positive and finite")
    if method not in ("exact", "normal"):
        raise ValueError("method must be 'exact' or 'normal'")
    frames = []
    for level in levels:
        p_low, p_high = (1.0 - level) / 2.0, 1.0 - (1.0 - level) / 2.0
        if method == "exact":

            def cdf(r: np.ndarray) -> np.ndarray:
                return _binom_cdf(r, n_arr, target)

            upper = np.ceil(n_arr)
            low = np.clip(_interpolated_quantile(cdf, p_low, upper) / n_arr, 0.0, 1.0)
            high = np.clip(_interpolated_quantile(cdf, p_high, upper) / n_arr, 0.0, 1.0)
        else:
            half = _z(level) * np.sqrt(target * (1.0 - target) / n_arr)
            low, high = target - half, target + half
        frames.append(pd.DataFrame({"n": n_arr, "level": level, "low": low, "high": high}))
    return pd.concat(frames, ignore_index=True)


def funnel_limits_oe(
    expected: float | Sequence[float] | np.ndarray,
    levels: Sequence[float] = FUNNEL_LEVELS,
    method: str = "exact",
) -> pd.DataFrame:
    """Funnel-plot limits for an observed/expected ratio (indirect standardisation).

    Parameters
    ----------
    expected : float or array_like
        Expected counts E (sum of predicted risks); any positive real.
    levels : sequence of float
        Two-sided coverage levels, as in :func:`funnel_limits`.
    method : {"exact", "normal"}
        ``"exact"``: Poisson(E) quantiles with the same interpolation,
        ``limit = (r_p - α)/E`` (Spiegelhalter 2005, Stat Med 24:1185, Appendix A.1.2), low
        limit floored at 0. ``"normal"``: ``1 ± z/sqrt(E)``.

    Returns
    -------
    DataFrame
        Columns ``expected, level, low, high`` on the O/E scale (multiply by a target rate to plot
        on the proportion scale).

    Examples
    --------
    >>> funnel_limits_oe([10.0], levels=[0.95]).round(3)
       expected  level    low   high
    0      10.0   0.95  0.378  1.616
    """
    levels = _check_levels(levels)
    e_arr = np.atleast_1d(np.asarray(expected, dtype=float))
    if np.any(~np.isfinite(e_arr)) or np.any(e_arr <= 0):
        raise ValueError("expected must be positive and finite")
    if method not in ("exact", "normal"):
        raise ValueError("method must be 'exact' or 'normal'")
    frames = []
    for level in levels:
        p_low, p_high = (1.0 - level) / 2.0, 1.0 - (1.0 - level) / 2.0
        if method == "exact":

            def cdf(r: np.ndarray) -> np.ndarray:
                return _poisson_cdf(r, e_arr)

            upper = np.ceil(e_arr + 12.0 * np.sqrt(e_arr) + 30.0)
            low = np.maximum(_interpolated_quantile(cdf, p_low, upper) / e_arr, 0.0)
            high = _interpolated_quantile(cdf, p_high, upper) / e_arr
        else:
            half = _z(level) / np.sqrt(e_arr)
            low, high = 1.0 - half, 1.0 + half
        frames.append(pd.DataFrame({"expected": e_arr, "level": level, "low": low, "high": high}))
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Over-dispersion
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Overdispersion(Result):
    """Over-dispersion of unit z-scores (Spiegelhalter 2005 QSHC; 2012 JRSS-A)."""

    phi: float
    p_value: float
    tau2: float
    n_units: int
    n_winsorised: int


def estimate_overdispersion(
    z: Sequence[float] | np.ndarray,
    se: Sequence[float] | np.ndarray,
    winsor: float = 0.10,
) -> Overdispersion:
    """Winsorised over-dispersion factor φ and additive between-unit variance τ².

    Parameters
    ----------
    z : array_like
        Unit z-scores ``(y_i - θ0)/s_i``.
    se : array_like
        Their standard errors ``s_i`` on the plotted scale (used only for τ²).
    winsor : float
        Fraction winsorised at each end. With ``k = floor(winsor * I)``, the k lowest z-scores are
        replaced by the (k+1)-th lowest and the k highest by the (k+1)-th highest (so with I = 10
        the single lowest and highest are replaced by their neighbours).

    Returns
    -------
    Overdispersion
        ``phi = mean(z_w²)``; ``p_value`` = P(χ²_{I-1} ≥ I·φ); ``tau2`` =
        ``max(0, (I·φ - (I-1)) / (Σw - Σw²/Σw))`` with ``w = 1/s²`` (DerSimonian–Laird type,
        Spiegelhalter 2012 JRSS-A 175:1). NaN when fewer than 2 units.

    Examples
    --------
    >>> od = estimate_overdispersion([-3, -1, 0, 0, 1, 1, 2, 2, 0.5, 9], [0.1] * 10)
    >>> round(od.phi, 3), od.n_winsorised
    (1.625, 2)
    """
    z_arr = np.asarray(z, dtype=float)
    s_arr = np.asarray(se, dtype=float)
    keep = np.isfinite(z_arr) & np.isfinite(s_arr) & (s_arr > 0)
    z_arr, s_arr = z_arr[keep], s_arr[keep]
    n_units = int(z_arr.size)
    if n_units < 2:
        return Overdispersion(math.nan, math.nan, math.nan, n_units, 0)
    k = int(math.floor(winsor * n_units + 1e-12))
    zw = z_arr.copy()
    if k > 0:
        ordered = np.sort(z_arr)
        zw = np.clip(zw, ordered[k], ordered[n_units - 1 - k])
    n_changed = int(np.sum(zw != z_arr))
    phi = float(np.mean(zw**2))
    p_value = float(st.chi2.sf(n_units * phi, n_units - 1))
    w = 1.0 / s_arr**2
    denom = w.sum() - (w**2).sum() / w.sum()
    tau2 = float(max(0.0, (n_units * phi - (n_units - 1)) / denom)) if denom > 0 else math.nan
    return Overdispersion(phi, p_value, tau2, n_units, n_changed)


# ---------------------------------------------------------------------------------------------
# O/E ratio
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class OERatio(Result):
    """Observed/expected ratio with a confidence interval."""

    observed: int
    expected: float
    ratio: float
    low: float
    high: float
    method: str
    level: float = 0.95


def oe_ratio(observed: int, expected: float, level: float = 0.95, method: str = "auto") -> OERatio:
    """Observed/expected (indirectly standardised) ratio with an exact or Byar CI.

    Parameters
    ----------
    observed : int
        Observed events O (non-negative integer).
    expected : float
        Expected events E (sum of predicted risks), positive.
    level : float
        Confidence level.
    method : {"auto", "exact", "byar"}
        ``"exact"``: Poisson limits from the chi-square relation,
        ``O_L = χ²_{α/2}(2O)/2`` (0 when O = 0) and ``O_U = χ²_{1-α/2}(2O+2)/2`` (Ulm 1990,
        AJE 131:373). ``"byar"``: Byar's approximation (Breslow & Day 1987, vol. II),
        ``O_L = O(1 - 1/(9O) - z/(3√O))³`` and
        ``O_U = (O+1)(1 - 1/(9(O+1)) + z/(3√(O+1)))³``; only allowed when O ≥ 10.
        ``"auto"`` follows PHE/Fingertips practice: exact below 10 events, Byar at 10 or more.

    Returns
    -------
    OERatio
        ``ratio = O/E`` and the limits divided by E; ``method`` is the one used.

    Examples
    --------
    >>> r = oe_ratio(0, 1.0)
    >>> round(r.high, 3), r.method
    (3.689, 'exact')
    >>> r = oe_ratio(10, 10.0, method="exact")
    >>> round(r.low, 4), round(r.high, 3)
    (0.4795, 1.839)
    """
    if not 0.0 < level < 1.0:
        raise ValueError("level must be between 0 and 1")
    if observed < 0 or float(observed) != int(observed):
        raise ValueError("observed must be a non-negative integer")
    observed = int(observed)
    if not np.isfinite(expected) or expected <= 0:
        raise InsufficientDataError("O/E ratio", f"expected count is {expected}; it must be > 0")
    if method == "auto":
        method = "byar" if observed >= 10 else "exact"
    alpha = 1.0 - level
    if method == "exact":
        o_low = 0.0 if observed == 0 else st.chi2.ppf(alpha / 2.0, 2 * observed) / 2.0
        o_high = st.chi2.ppf(1.0 - alpha / 2.0, 2 * observed + 2) / 2.0
    elif method == "byar":
        if observed < 10:
            raise ValueError(
                f"Byar's approximation needs at least 10 observed events (got {observed}); "
                "use method='exact'"
            )
        z = _z(level)
        o, o1 = float(observed), float(observed + 1)
        o_low = o * (1.0 - 1.0 / (9.0 * o) - z / (3.0 * math.sqrt(o))) ** 3
        o_high = o1 * (1.0 - 1.0 / (9.0 * o1) + z / (3.0 * math.sqrt(o1))) ** 3
    else:
        raise ValueError("method must be 'auto', 'exact' or 'byar'")
    e = float(expected)
    return OERatio(observed, e, observed / e, float(o_low) / e, float(o_high) / e, method, level)


def _oe_limits(
    observed: np.ndarray, expected: np.ndarray, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`oe_ratio` with ``method="auto"`` for many units at once (same formulas).

    Returns ``ratio, low, high, method`` arrays; ``expected`` must be positive.
    """
    if not 0.0 < level < 1.0:
        raise ValueError("level must be between 0 and 1")
    o = np.asarray(observed, dtype=np.int64)
    e = np.asarray(expected, dtype=float)
    alpha = 1.0 - level
    byar = o >= 10
    o_low = np.zeros(o.size)
    o_high = np.empty(o.size)
    exact = ~byar
    some = exact & (o > 0)
    o_low[some] = st.chi2.ppf(alpha / 2.0, 2 * o[some]) / 2.0
    o_high[exact] = st.chi2.ppf(1.0 - alpha / 2.0, 2 * o[exact] + 2) / 2.0
    if byar.any():
        z = _z(level)
        ob = o[byar].astype(float)
        o1 = ob + 1.0
        o_low[byar] = ob * (1.0 - 1.0 / (9.0 * ob) - z / (3.0 * np.sqrt(ob))) ** 3
        o_high[byar] = o1 * (1.0 - 1.0 / (9.0 * o1) + z / (3.0 * np.sqrt(o1))) ** 3
    method = np.where(byar, "byar", "exact").astype(object)
    return o / e, o_low / e, o_high / e, method


# ---------------------------------------------------------------------------------------------
# Case-mix (risk) model
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RiskModelResult(Result):
    """Logistic case-mix model fitted on the pooled records."""

    outcome: str
    expected: pd.Series
    linear_predictor: pd.Series
    c_statistic: float
    calibration: pd.DataFrame
    coefficients: pd.DataFrame
    formula: str
    n: int
    events: int
    notes: tuple[str, ...] = ()
    #: Records the model was fitted on when it is a reference fit applied to a selection
    #: (:func:`apply_risk_model`); None for a fit on these records themselves.
    reference_n: int | None = None
    #: "binomial" (logistic model of a risk) or "poisson" (log-linear model of an event rate
    #: with log person-time as offset; ``expected`` is then the expected number of events of
    #: each record over its time at risk and ``linear_predictor`` the log rate per day).
    family: str = "binomial"
    #: Days at risk per record (:func:`person_time`) for ``family="poisson"``, else None.
    exposure: pd.Series | None = None


def _is_categorical(values: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values))


def _c_statistic(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve by the Mann–Whitney rank formula (ties count 1/2)."""
    n1 = float(y.sum())
    n0 = float(y.size - n1)
    ranks = st.rankdata(p)
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def _design(
    data: pd.DataFrame, y: np.ndarray, covariates: Sequence[str], outcome: str
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Design matrix, formula terms and notes for :func:`risk_model`."""
    columns: dict[str, np.ndarray] = {"Intercept": np.ones(len(data))}
    terms: list[str] = []
    notes: list[str] = []
    for cov in covariates:
        values = data[cov]
        if _is_categorical(values):
            labels = values.astype("object").where(values.notna(), "(missing)").astype(str)
            counts = labels.value_counts(sort=False)
            if isinstance(values.dtype, pd.CategoricalDtype):
                order = [str(c) for c in values.cat.categories if str(c) in counts.index]
                order += [c for c in counts.index if c not in order]
            else:
                order = sorted(counts.index)
            if len(order) < 2:
                notes.append(f"{cov} dropped: a single level ({order[0] if order else 'none'})")
                continue
            if isinstance(values.dtype, pd.CategoricalDtype):
                ref = order[0]  # first category of the dtype (data-dictionary order)
            else:
                ref = max(order, key=lambda lvl: (counts[lvl], -order.index(lvl)))
            kept = []
            for lvl in order:
                if lvl == ref:
                    continue
                y_lvl = y[(labels == lvl).to_numpy()]
                if y_lvl.min() == y_lvl.max():
                    notes.append(
                        f"{cov}={lvl} pooled with {ref}: its {y_lvl.size} record(s) all have "
                        f"{outcome}={int(y_lvl[0])} (separation)"
                    )
                    continue
                kept.append(lvl)
            if not kept:
                notes.append(f"{cov} dropped: no level besides {ref} could be estimated")
                continue
            for lvl in kept:
                columns[f"{cov}[T.{lvl}]"] = (labels == lvl).to_numpy(dtype=float)
            terms.append(f"C({cov}, Treatment({ref!r}))")
        else:
            x = _floats(values)
            missing = np.isnan(x)
            if missing.all():
                notes.append(f"{cov} dropped: all values missing")
                continue
            median = float(np.median(x[~missing]))
            x = np.where(missing, median, x)
            if np.ptp(x) == 0:
                notes.append(f"{cov} dropped: constant ({median:g})")
                continue
            columns[cov] = x
            terms.append(cov)
            if missing.any():
                notes.append(
                    f"{cov}: {int(missing.sum())} missing value(s) set to the median {median:g}"
                )
                y_miss = y[missing]
                if y_miss.min() == y_miss.max():
                    notes.append(f"{cov}_missing indicator omitted (separation)")
                else:
                    columns[f"{cov}_missing"] = missing.astype(float)
                    terms.append(f"{cov}_missing")
    return pd.DataFrame(columns, index=data.index), terms, notes


def _fitted_outputs(
    index: pd.Index, keep: np.ndarray, y: np.ndarray, fitted: np.ndarray, lin: np.ndarray,
    order: np.ndarray,
) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Calibration by deciles of ``order`` (observed and expected events per decile) and the
    per-record expected events and linear predictor (NaN outside ``keep``) of a fitted
    case-mix model."""
    n_groups = min(10, y.size)
    decile = pd.qcut(pd.Series(order).rank(method="first"), n_groups, labels=False) + 1
    calibration = (
        pd.DataFrame({"decile": decile.to_numpy(), "y": y, "p": fitted})
        .groupby("decile")
        .agg(n=("y", "size"), observed=("y", "sum"), expected=("p", "sum"))
        .reset_index()
    )
    calibration["observed"] = calibration["observed"].astype(int)
    expected = pd.Series(np.nan, index=index, name="expected")
    expected[keep] = fitted
    linear_predictor = pd.Series(np.nan, index=index, name="linear_predictor")
    linear_predictor[keep] = lin
    return calibration, expected, linear_predictor


def risk_model(
    records: pd.DataFrame, outcome: str, covariates: Sequence[str] | None = None,
    adjust_procedure: bool = False,
) -> RiskModelResult:
    """Fit a case-mix model on the pooled records (expected risk, or events, per record).

    A logistic model for a binary outcome; for a time-to-event outcome
    (:data:`TIME_TO_EVENT`) a Poisson log-linear model of the event rate with log person-time
    (:func:`person_time`) as offset, ``log E[y] = log t + x'β`` (Breslow & Day 1987, vol. II,
    ch. 4), so that a record's expected events ``t·exp(x'β)`` grow with its follow-up.

    Parameters
    ----------
    records : DataFrame
        Records of all units (the reference population for the expected risks).
    outcome : str
        One of :data:`OUTCOMES`; rows where it is missing are excluded.
    covariates : sequence of str, optional
        Default: age, sex, etiology, levels_treated, plus prior_fractures when the column
        exists and has any value (:data:`DEFAULT_COVARIATES`).
    adjust_procedure : bool
        Add ``procedure`` (VP/KP) to the default covariates. Off by default: the technique is
        the unit's own choice, and adjusting for it removes that choice from its assessment.

    Returns
    -------
    RiskModelResult
        ``expected``: predicted risk per record aligned to ``records.index`` (NaN for excluded
        rows); ``c_statistic`` (AUC); ``calibration`` with ``decile, n, observed, expected``
        (counts, by decile of predicted risk); ``coefficients`` with
        ``term, odds_ratio, low, high, p_value`` (95% Wald); ``formula``; ``n``; ``notes``.

    Notes
    -----
    statsmodels ``GLM(family=Binomial())``, IRLS; from :data:`LARGE_FIT_ROWS` fitting rows the
    same IRLS in numpy (:func:`_logistic_irls`, estimates equal to ~1e-9, a fraction of the
    memory). Numeric covariates enter linearly; their
    missing values are set to the median of the fitting rows and a ``<name>_missing`` indicator is
    added (missing-indicator method). Categorical covariates use treatment coding against the
    first category of their dtype present in the data (e.g. vertebroplasty, F, osteoporotic), or
    the most frequent level for plain string columns; a missing category becomes the level
    ``"(missing)"``. A covariate with a
    single level is dropped; a level whose records all share the same outcome (separation) is
    pooled with the reference level. These decisions are listed in ``notes``.
    ``InsufficientDataError`` is raised when there are fewer than 10 events or non-events, on
    complete separation, or when a coefficient cannot be estimated (standard error > 100 on the
    log-odds scale, e.g. quasi-complete separation on a numeric covariate or collinear terms).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> df = pd.DataFrame({"age": rng.integers(50, 90, 400),
    ...                    "cement_leakage": rng.random(400) < 0.3})
    >>> fit = risk_model(df, "cement_leakage", covariates=["age"])
    >>> fit.formula, fit.n
    ('cement_leakage ~ age', 400)
    """
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    method = "Risk model"
    y_all = outcome_values(records, outcome)
    if covariates is None:
        wanted = DEFAULT_COVARIATES + ((PROCEDURE_COVARIATE,) if adjust_procedure else ())
        covariates = [
            c
            for c in wanted
            if c in records and (c != "prior_fractures" or records[c].notna().any())
        ]
    else:
        covariates = list(covariates)
        absent = [c for c in covariates if c not in records]
        if absent:
            raise KeyError(f"records lack covariate column(s) {absent}")
    keep = y_all.notna().to_numpy()
    if outcome in TIME_TO_EVENT:
        return _rate_model(records, outcome, covariates, keep, y_all)
    data = records.loc[keep]
    y = y_all.to_numpy()[keep]
    events = int(y.sum())
    if min(events, y.size - events) < MIN_EVENTS:
        raise InsufficientDataError(
            method,
            f"{outcome} has {events} event(s) and {y.size - events} non-event(s) among "
            f"{y.size} records; at least {MIN_EVENTS} of each are needed",
        )
    design, terms, notes = _design(data, y, covariates, outcome)
    if y.size >= LARGE_FIT_ROWS:
        # statsmodels keeps several n x k copies (about 1 GB at a million rows); the same
        # IRLS on the normal equations needs one.
        params, bse, converged = _logistic_irls(design.to_numpy(dtype=float), y)
        pvalues = 2.0 * st.norm.sf(np.abs(params / bse))
        half = st.norm.ppf(0.975) * bse
        ci = np.column_stack([params - half, params + half])
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PerfectSeparationWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                fit = sm.GLM(y, design, family=sm.families.Binomial()).fit()
            except PerfectSeparationWarning as exc:
                raise InsufficientDataError(
                    method, f"the covariates predict {outcome} perfectly (complete separation)"
                ) from exc
        params, bse, converged = np.asarray(fit.params), np.asarray(fit.bse), fit.converged
        pvalues, ci = np.asarray(fit.pvalues), np.asarray(fit.conf_int(alpha=0.05))
    bad = ~np.isfinite(bse) | (bse > 100.0) | ~np.isfinite(params)
    if bad.any() or not converged:
        which = ", ".join(design.columns[bad]) or "all terms"
        raise InsufficientDataError(
            method,
            f"the coefficient(s) of {which} cannot be estimated (separation or collinearity); "
            "remove the covariate or widen the selection",
        )
    lin = design.to_numpy() @ params
    pred = special.expit(lin)
    coefficients = pd.DataFrame(
        {
            "term": list(design.columns),
            "odds_ratio": np.exp(params),
            "low": np.exp(ci[:, 0]),
            "high": np.exp(ci[:, 1]),
            "p_value": pvalues,
        }
    )
    calibration, expected, linear_predictor = _fitted_outputs(records.index, keep, y, pred,
                                                              lin, order=pred)
    formula = f"{outcome} ~ " + (" + ".join(terms) if terms else "1")
    return RiskModelResult(
        outcome=outcome,
        expected=expected,
        linear_predictor=linear_predictor,
        c_statistic=_c_statistic(y, pred),
        calibration=calibration,
        coefficients=coefficients,
        formula=formula,
        n=int(y.size),
        events=events,
        notes=tuple(notes),
    )


def _rate_model(records: pd.DataFrame, outcome: str, covariates: Sequence[str],
                keep: np.ndarray, y_all: pd.Series) -> RiskModelResult:
    """The Poisson branch of :func:`risk_model` (events per person-time, log-t offset)."""
    method = "Risk model"
    t_all = person_time(records, outcome).to_numpy()
    keep = keep & np.isfinite(t_all)
    data = records.loc[keep]
    y = y_all.to_numpy()[keep]
    t = t_all[keep]
    events = int(y.sum())
    if min(events, y.size - events) < MIN_EVENTS:
        raise InsufficientDataError(
            method,
            f"{outcome} has {events} event(s) and {y.size - events} record(s) without among "
            f"{y.size} records; at least {MIN_EVENTS} of each are needed",
        )
    design, terms, notes = _design(data, y, covariates, outcome)
    x = design.to_numpy(dtype=float)
    # Piecewise-constant baseline rate (FOLLOWUP_BANDS): the MLE of
    # log E[y_i] = log(Σ_b t_ib·λ_b) + x_i'β by alternating the two closed blocks: β by IRLS
    # with the offset log Σ_b t_ib·λ_b, then λ_b = O_b / Σ_i t_ib·exp(x_i'β) (the score
    # equations of the band rates), until the fitted events settle. The same MLE as a Poisson
    # GLM with one row per record and band (R: survSplit + glm, tests/results/).
    exposure, last = _band_exposure(t)
    band_events = np.bincount(last, weights=y, minlength=exposure.shape[1])
    used = exposure.sum(axis=0) > 0
    band_rate = np.where(used, band_events / np.where(used, exposure.sum(axis=0), 1.0), 0.0)
    params = None
    mu_old = np.zeros(y.size)
    converged = False
    for _ in range(100):
        offset = np.log(exposure @ band_rate)
        params, bse, ok = _poisson_irls(x, y, offset, start=params)
        relative = np.exp(x @ params)
        mu = relative * np.exp(offset)
        if ok and np.max(np.abs(mu - mu_old)) < 1e-10 * max(1.0, float(np.max(mu))):
            converged = True
            break
        mu_old = mu
        denom = relative @ exposure
        band_rate = np.where(used & (denom > 0), band_events / np.where(denom > 0, denom, 1.0),
                             0.0)
    bse = _rate_model_se(x, exposure, band_rate * np.exp(params[0]), np.exp(x @ params - params[0]),
                         bse)
    bad = ~np.isfinite(bse) | (bse > 100.0) | ~np.isfinite(params)
    if bad.any() or not converged:
        which = ", ".join(design.columns[bad]) or "all terms"
        raise InsufficientDataError(
            method,
            f"the coefficient(s) of {which} cannot be estimated (separation or collinearity); "
            "remove the covariate or widen the selection",
        )
    lin = x @ params  # log rate ratio against the baseline band rates
    half = st.norm.ppf(0.975) * bse
    coefficients = pd.DataFrame({
        "term": list(design.columns),
        "rate_ratio": np.exp(params),
        "low": np.exp(params - half),
        "high": np.exp(params + half),
        "p_value": 2.0 * st.norm.sf(np.abs(params / bse)),
    })
    calibration, expected, linear_predictor = _fitted_outputs(records.index, keep, y, mu, lin,
                                                              order=lin)
    exposure = pd.Series(np.where(keep, t_all, np.nan), index=records.index, name="person_time")
    formula = (f"{outcome} ~ " + (" + ".join(terms) if terms else "1")
               + " + offset(log(Σ person_time in band × band rate))")
    notes.append("baseline rate piecewise constant over follow-up bands "
                 + ", ".join(f"{lo:g}-{hi:g}" for lo, hi in zip(FOLLOWUP_BANDS[:-1],
                                                                FOLLOWUP_BANDS[1:], strict=True))
                 + " days")
    return RiskModelResult(
        outcome=outcome, expected=expected, linear_predictor=linear_predictor,
        c_statistic=math.nan, calibration=calibration, coefficients=coefficients,
        formula=formula, n=int(y.size), events=events, notes=tuple(notes),
        family="poisson", exposure=exposure,
    )


def _rate_model_se(x: np.ndarray, exposure: np.ndarray, band_rate: np.ndarray,
                   relative: np.ndarray, conditional: np.ndarray) -> np.ndarray:
    """Standard errors of the covariate terms of the piecewise-rate model from the full
    Fisher information of (band log-rates, covariate log-rate ratios): with
    μ_ib = t_ib·λ_b·exp(x_i'β), I_ββ = Σ μ_i x_i x_i', I_αα = diag(Σ_i μ_ib),
    I_αβ = Σ_i μ_ib x_i'. The intercept is aliased with the band rates: its entry keeps the
    IRLS value conditional on them (``conditional``)."""
    mu_band = exposure * band_rate[None, :] * relative[:, None]
    used = mu_band.sum(axis=0) > 0
    mu_band = mu_band[:, used]
    mu = mu_band.sum(axis=1)
    z = x[:, 1:]
    info = np.block([
        [np.diag(mu_band.sum(axis=0)), mu_band.T @ z],
        [z.T @ mu_band, z.T @ (z * mu[:, None])],
    ])
    out = np.array(conditional, dtype=float)
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        return out
    with np.errstate(invalid="ignore"):
        out[1:] = np.sqrt(np.diag(cov)[mu_band.shape[1]:])
    return out


def _poisson_irls(x: np.ndarray, y: np.ndarray, offset: np.ndarray, tol: float = 1e-10,
                  max_iter: int = 100,
                  start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """Poisson regression with log link and an offset by IRLS (Fisher scoring, as R's ``glm``):
    start from the intercept-only fit, stop when the deviance changes by less than
    ``tol × (|deviance| + 0.1)`` (R's criterion); standard errors from the inverse of X'WX.

    Returns ``(params, bse, converged)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.column_stack([np.ones(5000), rng.normal(size=5000)])
    >>> t = rng.uniform(10, 400, 5000)
    >>> y = rng.poisson(t * np.exp(-6 + 0.5 * x[:, 1])).astype(float)
    >>> params, bse, converged = _poisson_irls(x, y, np.log(t))
    >>> converged, np.round(params, 1).tolist()
    (True, [-6.0, 0.5])
    """
    if start is None:
        params = np.zeros(x.shape[1])
        params[0] = math.log(max(y.sum(), 0.5) / np.exp(offset).sum())
    else:
        params = np.array(start, dtype=float)
    cov = np.full((x.shape[1], x.shape[1]), np.nan)
    deviance = np.inf
    converged = False
    for _ in range(max_iter):
        eta = x @ params + offset
        mu = np.exp(eta)
        working = eta - offset + (y - mu) / mu
        weighted = x * mu[:, None]
        try:
            cov = np.linalg.inv(x.T @ weighted)
        except np.linalg.LinAlgError:
            break
        params = cov @ (weighted.T @ working)
        mu = np.exp(x @ params + offset)
        new = 2.0 * float(np.sum(special.xlogy(y, y / mu) - (y - mu)))
        if abs(new - deviance) < tol * (abs(new) + 0.1):
            converged = True
            break
        deviance = new
    mu = np.exp(x @ params + offset)
    with contextlib.suppress(np.linalg.LinAlgError):
        cov = np.linalg.inv(x.T @ (x * mu[:, None]))
    with np.errstate(invalid="ignore"):
        bse = np.sqrt(np.diag(cov))
    return params, bse, converged


#: From this many fitting rows :func:`risk_model` uses :func:`_logistic_irls` instead of
#: statsmodels (same estimates; a fraction of the memory and time).
LARGE_FIT_ROWS = 200_000


def _logistic_irls(x: np.ndarray, y: np.ndarray, tol: float = 1e-8,
                   max_iter: int = 100) -> tuple[np.ndarray, np.ndarray, bool]:
    """Logistic regression by iteratively reweighted least squares, as statsmodels' GLM
    (Binomial, logit) does it: start at mu = (y + 1/2) / 2, stop when the deviance changes by
    less than ``tol``; standard errors from the inverse of X'WX (scale 1).

    Returns ``(params, bse, converged)``. Only k x k matrices and n-vectors are formed besides
    ``x`` itself.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.column_stack([np.ones(2000), rng.normal(size=2000)])
    >>> y = (rng.random(2000) < special.expit(-1 + 0.5 * x[:, 1])).astype(float)
    >>> params, bse, converged = _logistic_irls(x, y)
    >>> converged, np.round(params, 1).tolist()
    (True, [-1.0, 0.5])
    """
    mu = (y + 0.5) / 2.0
    eta = special.logit(mu)
    deviance = np.inf
    converged = False
    params = np.zeros(x.shape[1])
    cov = np.full((x.shape[1], x.shape[1]), np.nan)
    for _ in range(max_iter):
        weight = mu * (1.0 - mu)
        working = eta + (y - mu) / weight
        weighted = x * weight[:, None]
        try:
            cov = np.linalg.inv(x.T @ weighted)
        except np.linalg.LinAlgError:
            break
        params = cov @ (weighted.T @ working)
        eta = x @ params
        mu = special.expit(eta)
        with np.errstate(divide="ignore", invalid="ignore"):
            new = -2.0 * float(np.sum(special.xlogy(y, mu) + special.xlogy(1.0 - y, 1.0 - mu)))
        if abs(new - deviance) < tol:
            converged = True
            break
        deviance = new
    with np.errstate(invalid="ignore"):
        bse = np.sqrt(np.diag(cov))
    return params, bse, converged


def apply_risk_model(model: RiskModelResult, records: pd.DataFrame,
                     recalibrate: bool = True) -> RiskModelResult:
    """A reference :func:`risk_model` fit applied to a subset of the records it was fitted on.

    The registry practice for monitoring a selection: the case-mix model is fitted once on
    all records (the reference population) and each selected record keeps its reference
    linear predictor; with ``recalibrate`` the intercept is shifted so that the selection's
    expected events equal its observed events (the same recalibration :func:`funnel_data`
    uses for an external target), so units are compared with the selection's own average.

    Parameters
    ----------
    model : RiskModelResult
        A fit on a frame whose index contains every label of ``records.index``.
    records : DataFrame
        The selected records (e.g. ``apply_filter(all_records, selection)``, which keeps the
        row labels).
    recalibrate : bool
        Shift the intercept to the selection's observed rate (default) or keep the reference
        risks as they are.

    Returns
    -------
    RiskModelResult
        ``expected`` and ``linear_predictor`` aligned to ``records.index`` (NaN where the
        outcome is missing or the reference fit had no risk); ``n`` and ``events`` of the
        selection; the reference fit's coefficients, c-statistic, calibration and formula,
        with a note on the recalibration.

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> df = pd.DataFrame({"age": rng.integers(50, 90, 600),
    ...                    "cement_leakage": rng.random(600) < 0.3})
    >>> reference = risk_model(df, "cement_leakage", covariates=["age"])
    >>> part = apply_risk_model(reference, df[df.age >= 70])
    >>> bool(np.isclose(part.expected.sum(), part.events))
    True
    """
    reference = model.linear_predictor
    labels = records.index
    if isinstance(reference.index, pd.RangeIndex) and reference.index.step == 1 and len(labels):
        positions = labels.to_numpy(dtype=np.int64, copy=False) - reference.index.start
        if positions.min() < 0 or positions.max() >= len(reference):
            raise ValueError("records hold rows the reference model was not fitted on")
    else:
        positions = reference.index.get_indexer(labels)
        if (positions < 0).any():
            raise ValueError("records hold rows the reference model was not fitted on")
    lin = reference.to_numpy(dtype=float)[positions]
    y = outcome_values(records, model.outcome).to_numpy(dtype=float)
    usable = np.isfinite(lin) & ~np.isnan(y)
    exposure = None
    if model.family == "poisson":
        days = model.exposure.to_numpy(dtype=float)[positions]
        usable &= np.isfinite(days)
        exposure = pd.Series(np.where(usable, days, np.nan), index=labels, name="person_time")
    lin = np.where(usable, lin, np.nan)
    events = int(np.nansum(y[usable]))
    n = int(usable.sum())
    notes = list(model.notes)
    if model.family == "poisson":
        expected = np.where(usable, model.expected.to_numpy(dtype=float)[positions], np.nan)
        if recalibrate and 0 < events < n:  # closed form: Σ E·exp(δ) = O
            delta = math.log(events / float(np.sum(expected[usable])))
            lin[usable] += delta
            expected = expected * math.exp(delta)
            notes.append("reference model (all records) recalibrated to the selection's rate")
    else:
        if recalibrate and 0 < events < n:
            lin[usable] += _intercept_shift(lin[usable], events / n)
            notes.append("reference model (all records) recalibrated to the selection's rate")
        expected = special.expit(lin)
    return dataclasses.replace(
        model,
        expected=pd.Series(expected, index=labels, name="expected"),
        linear_predictor=pd.Series(lin, index=labels, name="linear_predictor"),
        n=n, events=events, notes=tuple(notes),
        reference_n=model.n if model.reference_n is None else model.reference_n,
        exposure=exposure,
    )


def _intercept_shift(linear_predictor: np.ndarray, target: float) -> float:
    """δ with mean(expit(lp + δ)) = target, by Newton's method (the mean is increasing in δ)."""
    delta = 0.0
    for _ in range(50):
        p = special.expit(linear_predictor + delta)
        gap = float(p.mean()) - target
        slope = float((p * (1.0 - p)).mean())
        if abs(gap) < 1e-12 or slope <= 0.0:
            break
        delta -= gap / slope
    else:  # Newton did not settle (extreme predictors): the bracketing solver
        return float(optimize.brentq(
            lambda d: float(np.mean(special.expit(linear_predictor + d))) - target, -30.0, 30.0,
            xtol=1e-12))
    return delta


# ---------------------------------------------------------------------------------------------
# Funnel data
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FunnelResult(Result):
    """Funnel-plot data: per-unit table, limit curves and the dispersion summary.

    ``to_frame()`` returns the per-unit table.
    """

    units: pd.DataFrame
    limits: pd.DataFrame
    outcome: str
    unit: str
    target: float
    target_source: str
    phi: float
    phi_p_value: float
    tau2: float
    overdispersion: str
    overdispersion_applied: bool
    adjusted: bool
    min_volume: int
    notes: tuple[str, ...] = ()
    #: "proportion" (binary outcome) or "rate" (time-to-event outcome: events per
    #: person-year; ``target`` and the plotted values are then per person-year).
    measure: str = "proportion"
    #: The distribution of a unit's events under the target: "binomial" or "poisson".
    distribution: str = "binomial"

    def to_frame(self) -> pd.DataFrame:
        """The per-unit table (a copy)."""
        return self.units.copy()


def _level_tag(level: float) -> str:
    return f"{level * 100:g}".replace(".", "")


def _recalibrate(linear_predictor: np.ndarray, target: float) -> np.ndarray:
    """Shift the logit intercept so the mean predicted risk equals ``target``."""

    def gap(delta: float) -> float:
        return float(np.mean(special.expit(linear_predictor + delta)) - target)

    delta = optimize.brentq(gap, -30.0, 30.0, xtol=1e-12)
    return special.expit(linear_predictor + delta)


def _od_limits(
    centre: float, se: np.ndarray, z: float, model: str, phi: float, tau2: float
) -> tuple[np.ndarray, np.ndarray]:
    scale = math.sqrt(phi) * se if model == "multiplicative" else np.sqrt(se**2 + tau2)
    half = z * scale
    return centre - half, centre + half


def funnel_data(
    records: pd.DataFrame,
    unit: str = "facility_id",
    outcome: str = "cement_leakage",
    target: float | None = None,
    adjust: bool = False,
    overdispersion: str = "none",
    min_volume: int = 10,
    model: RiskModelResult | None = None,
) -> FunnelResult:
    """Per-unit rates, z-scores, p-values, flags and limit curves for a funnel plot.

    Parameters
    ----------
    records : DataFrame
        Records with the data-dictionary columns. Rows with a missing unit or outcome (or, for
        a time-to-event outcome, a missing time at risk) are excluded.
    unit : str
        Grouping column, ``"facility_id"`` or ``"operator_id"``.
    outcome : str
        One of :data:`OUTCOMES`. A time-to-event outcome (:data:`TIME_TO_EVENT`) is compared
        as events per person-time (``measure="rate"``, per person-year), never as a
        proportion.
    target : float, optional
        External benchmark θ0 (a proportion, or events per person-year for a time-to-event
        outcome). Default: the pooled value of the included records (``target_source`` says
        which).
    adjust : bool
        Risk-adjust with :func:`risk_model` fitted on all records with the outcome (including
        those without a unit): E_i is the sum of the unit's expected risks (or expected events
        over each record's time at risk) and the plotted value is ``O/E × θ0`` (indirect
        standardisation). With an external target the model's expected counts are rescaled
        (logistic: intercept shift) so that they match it.
    overdispersion : {"none", "multiplicative", "additive"}
        Model for over-dispersion (Spiegelhalter 2005 QSHC 14:347; 2012 JRSS-A 175:1). It is
        applied only when the winsorised φ > 1 and the χ² test has p < 0.05; the limits are then
        normal-approximation limits ``θ0 ± z·√φ·s_i`` (multiplicative) or
        ``θ0 ± z·√(s_i² + τ²)`` (additive), low limit floored at 0 (and a proportion's high
        limit capped at 1).
    min_volume : int
        Units with fewer included records are flagged ``"low_volume"``: they are shown but not
        tested, and excluded from φ, τ² and the BH family (they still count in the pooled target).
    model : RiskModelResult, optional
        A :func:`risk_model` fit on these same ``records`` and ``outcome``, reused instead of
        refitting (so the funnel, caterpillar and CUSUM views share one fit).

    Returns
    -------
    FunnelResult
        ``units`` has one row per unit: ``unit, n, events, rate, expected, oe, z, p_value,
        p_adjusted, flag`` plus ``z_raw`` (the Pearson score ``(O - E)/√V``, used for φ),
        ``plot_n`` and ``plot_rate`` (the point to plot) and the unit's own limits
        ``low_95, high_95, low_998, high_998`` on the plotted scale; ``person_years`` for a
        time-to-event outcome. ``flag`` is ``"alarm_*"`` beyond the 99.8% limits, ``"alert_*"``
        beyond 95%, else ``"within"``. ``limits`` holds a smooth grid (``n, expected, level,
        low, high``) for both levels with the same model.

    Notes
    -----
    **One distribution per funnel** gives the flag, the p-value, z and the plotted limits:

    * Binary outcome: the unit's events are compared with a Binomial(m_i, θ0), where m_i is
      the volume n_i (crude) or the *effective volume* E_i/θ0 (risk-adjusted), the value
      plotted is O_i/m_i (the crude rate, or O/E × θ0) against m_i, and the variance is
      V_i = m_i θ0(1 - θ0) = E_i(1 - θ0). With an intercept-only case-mix model E_i = n_i θ0,
      so the adjusted funnel is then exactly the crude one. (The exact distribution of O_i is
      Poisson-binomial with variance Σp(1-p); the effective-volume binomial has the same
      mean and, for a unit of average case mix, a slightly larger variance.)
    * Time-to-event outcome: Poisson(E_i), E_i the expected events given each record's time at
      risk (crude: person-years × pooled rate), V_i = E_i; plotted ``O/E × θ0`` against the
      effective person-years E_i/θ0 (Spiegelhalter 2005, Appendix A.1.2).

    Without an over-dispersion model the limits are the exact quantiles with Spiegelhalter's
    interpolation (Stat Med 2005;24:1185, Appendix A.1), and the two-sided p-value is the one
    whose contour passes through the point: ``p = 2·min(F(O), 1 - F(O))`` with F the cdf
    above, so a unit is outside the 95% (99.8%) limits exactly when p < 0.05 (0.002), and
    ``z = Φ⁻¹(F(O))`` is the matching normal score (|z| > 1.96 exactly at the 95% limits).
    With an over-dispersion model everything is normal: ``z = z_raw/√φ`` or
    ``(y - θ0)/√(s² + τ²)``, ``p = 2Φ(-|z|)`` and the limits above. ``p_adjusted`` is
    Benjamini–Hochberg over the tested units.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"facility_id": np.repeat(list("ABCDE"), 100),
    ...                    "cement_leakage": rng.random(500) < 0.2})
    >>> fp = funnel_data(df, outcome="cement_leakage")
    >>> fp.target_source, list(fp.units["unit"])
    ('pooled', ['A', 'B', 'C', 'D', 'E'])
    """
    if overdispersion not in ("none", "multiplicative", "additive"):
        raise ValueError("overdispersion must be 'none', 'multiplicative' or 'additive'")
    if unit not in records:
        raise KeyError(f"records lack the unit column {unit!r}")
    method = "Funnel plot"
    rate_outcome = outcome in TIME_TO_EVENT
    y_all = outcome_values(records, outcome)
    keep = (y_all.notna() & records[unit].notna()).to_numpy()
    if rate_outcome:
        days_all = (model.exposure.to_numpy() if adjust and model is not None
                    and model.exposure is not None else person_time(records, outcome).to_numpy())
        keep &= np.isfinite(days_all)
    if not keep.any():
        raise InsufficientDataError(method, f"no records with both {unit} and {outcome}")
    y = y_all.to_numpy()[keep]
    years = days_all[keep] / DAYS_PER_YEAR if rate_outcome else None
    group, names = _unit_groups(records[unit], keep)
    notes: list[str] = []
    pooled = float(y.sum() / years.sum()) if rate_outcome else float(y.mean())
    if target is None:
        theta, target_source = pooled, "pooled"
        if not (theta > 0.0 and (rate_outcome or theta < 1.0)):
            raise InsufficientDataError(
                method, f"the pooled {outcome} rate is {theta:g}; limits need 0 < rate < 1"
            )
    else:
        theta, target_source = float(target), "external"
        if not (theta > 0.0 and (rate_outcome or theta < 1.0)):
            raise ValueError("target must be positive (and below 1 for a proportion)")
    if adjust:
        # Fitted on every record with the outcome (also those without a unit), like
        # caterpillar() and cusum(), so the three views share one set of expected risks.
        model = _fitted(records, outcome, model)
        notes.extend(model.notes)
        p = model.expected.to_numpy()[keep]
        if target_source == "external":
            if rate_outcome:
                p = p * (theta * years.sum() / p.sum())
            else:
                lin = model.linear_predictor.to_numpy()
                fitted = np.isfinite(lin)
                p_all = np.full(lin.size, np.nan)
                p_all[fitted] = _recalibrate(lin[fitted], theta)
                p = p_all[keep]
            notes.append("risk model recalibrated to the external target")
    elif rate_outcome:
        p = _crude_expected_events(days_all[keep], y)
        if target_source == "external":
            p = p * (theta * years.sum() / p.sum())
    else:
        p = np.full(y.size, theta)

    k = names.size
    events, expected = _group_sums(group, k, y, p)
    n_u = np.bincount(group, minlength=k).astype(np.int64)
    table = pd.DataFrame({"unit": names, "n": n_u, "events": np.rint(events).astype(int),
                          "expected": expected})
    n_u = n_u.astype(float)
    o_u = table["events"].to_numpy(dtype=float)
    e_u = expected
    if rate_outcome:
        person_years = _group_sums(group, k, years)[0]
        table["rate"] = o_u / person_years
        # Poisson(E): the plotted value O/E·θ0 at the effective person-years E/θ0.
        volume = e_u / theta
        variance = e_u
        s_plot = theta / np.sqrt(e_u)
        cdf = special.gammaincc(o_u + 1.0, e_u)
        sf = special.gammainc(o_u + 1.0, e_u)
    else:
        table["rate"] = o_u / n_u
        # Binomial(m, θ0) with m = n (crude) or the effective volume E/θ0 (adjusted).
        volume = e_u / theta if adjust else n_u
        variance = volume * theta * (1.0 - theta)
        s_plot = np.sqrt(theta * (1.0 - theta) / volume)
        cdf = _binom_cdf(o_u, volume, theta)
        inside = o_u < volume
        sf = np.zeros(k)
        sf[inside] = special.betainc(o_u[inside] + 1.0, volume[inside] - o_u[inside], theta)
    table["oe"] = o_u / e_u
    y_plot = o_u / volume  # = rate (crude proportion) or O/E × θ0
    z_raw = (o_u - e_u) / np.sqrt(variance)
    tested = n_u >= min_volume
    od = estimate_overdispersion(z_raw[tested], s_plot[tested])
    applied = (
        overdispersion != "none"
        and np.isfinite(od.phi)
        and od.phi > 1.0
        and od.p_value < OVERDISPERSION_ALPHA
    )
    if overdispersion != "none" and not applied:
        notes.append(
            f"{overdispersion} over-dispersion requested but not applied "
            f"(phi={od.phi:.3g}, p={od.p_value:.3g})"
        )
    if applied:
        if overdispersion == "multiplicative":
            z = z_raw / math.sqrt(od.phi)
        else:
            z = (y_plot - theta) / np.sqrt(s_plot**2 + od.tau2)
        p_value = 2.0 * st.norm.sf(np.abs(z))
        high_side = z > 0
    else:
        # The exact tail whose contour passes through the point (see Notes).
        p_value = np.minimum(1.0, 2.0 * np.minimum(cdf, sf))
        z = np.where(cdf <= 0.5, st.norm.ppf(cdf), st.norm.isf(sf))
        z = np.clip(z, -40.0, 40.0)
        high_side = sf < cdf
    p_adjusted = np.full(z.size, np.nan)
    if tested.any():
        from statsmodels.stats.multitest import multipletests

        p_adjusted[tested] = multipletests(p_value[tested], method="fdr_bh")[1]

    # Limits at each unit (plotted scale) and the flags (from the same p-values).
    flag = np.where(tested, "within", "low_volume").astype(object)
    for level in sorted(FUNNEL_LEVELS):
        low, high = _unit_limits(volume, theta, level, rate_outcome, applied, overdispersion,
                                 od.phi, od.tau2, s_plot)
        name = "alarm" if level == max(FUNNEL_LEVELS) else "alert"
        beyond = tested & (p_value < 1.0 - level)
        flag = np.where(beyond & high_side, f"{name}_high", flag)
        flag = np.where(beyond & ~high_side, f"{name}_low", flag)
        tag = _level_tag(level)
        table[f"low_{tag}"] = low
        table[f"high_{tag}"] = high

    table["z"] = z
    table["z_raw"] = z_raw
    table["p_value"] = p_value
    table["p_adjusted"] = p_adjusted
    table["flag"] = flag
    table["plot_n"] = volume
    table["plot_rate"] = y_plot
    columns = ["unit", "n", "events", "rate", "expected", "oe", "z", "p_value", "p_adjusted",
               "flag", "z_raw", "plot_n", "plot_rate"]
    if rate_outcome:
        table["person_years"] = person_years
        columns.append("person_years")
    columns += [c for c in table.columns if c.startswith(("low_", "high_"))]
    table = table[columns]

    # Smooth grid of limits (x = n, or the effective volume E/θ0).
    limits = _limit_grid(float(table["plot_n"].min()) * 0.5, float(table["plot_n"].max()) * 1.1,
                         theta, rate_outcome, applied, overdispersion, od.phi, od.tau2)
    return FunnelResult(
        units=table,
        limits=limits,
        outcome=outcome,
        unit=unit,
        target=theta,
        target_source=target_source,
        phi=od.phi,
        phi_p_value=od.p_value,
        tau2=od.tau2,
        overdispersion=overdispersion,
        overdispersion_applied=bool(applied),
        adjusted=bool(adjust),
        min_volume=int(min_volume),
        notes=tuple(notes),
        measure="rate" if rate_outcome else "proportion",
        distribution="poisson" if rate_outcome else "binomial",
    )


def _unit_limits(volume: np.ndarray, theta: float, level: float, rate_outcome: bool,
                 applied: bool, overdispersion: str, phi: float, tau2: float,
                 se: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Funnel limits on the plotted scale at the (effective) volumes of :func:`funnel_data`."""
    if applied:
        low, high = _od_limits(theta, se, _z(level), overdispersion, phi, tau2)
    elif rate_outcome:
        lim = funnel_limits_oe(volume * theta, levels=[level])
        low, high = lim["low"].to_numpy() * theta, lim["high"].to_numpy() * theta
    else:
        lim = funnel_limits(volume, theta, levels=[level])
        low, high = lim["low"].to_numpy(), lim["high"].to_numpy()
    low = np.maximum(low, 0.0)
    if not rate_outcome:
        high = np.minimum(high, 1.0)
    return low, high


def limit_curves(result: FunnelResult, n_low: float, n_high: float) -> pd.DataFrame:
    """The funnel's limit curves of ``result`` over volumes ``n_low``..``n_high`` only.

    The same model as ``result.limits`` (exact binomial, Poisson or over-dispersion limits
    around the same target), on a grid chosen by the caller: a display draws the limits over
    the range of the units it shows, so the curves' extent reveals no hidden unit's volume.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"facility_id": np.repeat(list("ABCDE"), 100),
    ...                    "cement_leakage": rng.random(500) < 0.2})
    >>> curves = limit_curves(funnel_data(df), 50.0, 110.0)
    >>> float(curves["n"].min()), float(curves["n"].max())
    (50.0, 110.0)
    """
    return _limit_grid(n_low, n_high, result.target, result.measure == "rate",
                       result.overdispersion_applied, result.overdispersion, result.phi,
                       result.tau2)


def _limit_grid(n_low: float, n_high: float, theta: float, rate_outcome: bool, applied: bool,
                overdispersion: str, phi: float, tau2: float) -> pd.DataFrame:
    """Limit curves (``n, expected, level, low, high``) on a geometric grid of 200 volumes
    (person-years for a rate outcome, which may be below 1)."""
    x_min = n_low if rate_outcome else max(1.0, n_low)
    grid_n = np.unique(np.geomspace(x_min, max(n_high, x_min * 1.01), 200))
    grid_e = grid_n * theta
    s_grid = (theta / np.sqrt(grid_e) if rate_outcome
              else np.sqrt(theta * (1.0 - theta) / grid_n))
    frames = []
    for level in FUNNEL_LEVELS:
        low, high = _unit_limits(grid_n, theta, level, rate_outcome, applied, overdispersion,
                                 phi, tau2, s_grid)
        frames.append(
            pd.DataFrame(
                {"n": grid_n, "expected": grid_e, "level": level, "low": low, "high": high}
            )
        )
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Caterpillar
# ---------------------------------------------------------------------------------------------
def _fitted(records: pd.DataFrame, outcome: str,
            model: RiskModelResult | None) -> RiskModelResult:
    """``model`` when it was fitted on these records, else a new fit (one fit can then serve
    the funnel, the caterpillar and every unit's CUSUM)."""
    if model is None:
        return risk_model(records, outcome)
    if not model.expected.index.equals(records.index):
        raise ValueError("model was fitted on other records: pass the records it was fitted on")
    return model


def _expected_risks(
    records: pd.DataFrame, outcome: str, adjust: bool, model: RiskModelResult | None = None
) -> tuple[pd.Series, pd.Series]:
    """Outcome and expected risk per record (pooled model, or the pooled rate); for a
    time-to-event outcome the expected events over each record's time at risk (crude: its
    person-time × the pooled events per person-time). NaN where a record is excluded."""
    y = outcome_values(records, outcome)
    if adjust:
        p = _fitted(records, outcome, model).expected
    elif outcome in TIME_TO_EVENT:
        days = person_time(records, outcome).to_numpy()
        usable = y.notna().to_numpy() & np.isfinite(days)
        if not usable.any():
            raise InsufficientDataError("Expected events", f"no records with {outcome}")
        expected = np.full(days.size, np.nan)
        expected[usable] = _crude_expected_events(days[usable], y.to_numpy()[usable])
        p = pd.Series(expected, index=records.index)
    else:
        if y.notna().sum() == 0:
            raise InsufficientDataError("Expected risk", f"no records with {outcome}")
        p = pd.Series(np.where(y.notna(), float(y.mean()), np.nan), index=records.index)
    if outcome in TIME_TO_EVENT:  # records without a time at risk have no expected events
        y = y.where(p.notna())
    return y, p


def caterpillar(
    records: pd.DataFrame,
    unit: str = "facility_id",
    outcome: str = "cement_leakage",
    adjust: bool = True,
    level: float = 0.95,
    model: RiskModelResult | None = None,
) -> pd.DataFrame:
    """O/E ratio with a CI for every unit, sorted for a caterpillar plot.

    Parameters
    ----------
    records : DataFrame
        Records with the data-dictionary columns.
    unit : str
        Grouping column (``"facility_id"`` or ``"operator_id"``); rows without it are excluded.
    outcome : str
        One of :data:`OUTCOMES`.
    adjust : bool
        Expected counts from :func:`risk_model` on the pooled records (indirect standardisation);
        otherwise ``n × pooled rate``.
    level : float
        Confidence level of :func:`oe_ratio` (``method="auto"``: exact Poisson below 10 events,
        Byar from 10).
    model : RiskModelResult, optional
        A :func:`risk_model` fit on these same ``records`` and ``outcome``, reused instead of
        refitting (so the funnel, caterpillar and CUSUM views share one fit).

    Returns
    -------
    DataFrame
        ``unit, n, observed, expected, oe, low, high, method``, sorted by ``oe`` (then unit).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"facility_id": np.repeat(list("AB"), 50),
    ...                    "cement_leakage": rng.random(100) < 0.3})
    >>> list(caterpillar(df, adjust=False).columns)
    ['unit', 'n', 'observed', 'expected', 'oe', 'low', 'high', 'method']
    """
    if unit not in records:
        raise KeyError(f"records lack the unit column {unit!r}")
    y, p = _expected_risks(records, outcome, adjust, model)
    keep = (y.notna() & records[unit].notna()).to_numpy()
    if not keep.any():
        raise InsufficientDataError("Caterpillar plot", f"no records with {unit} and {outcome}")
    group, names = _unit_groups(records[unit], keep)
    k = names.size
    observed, expected = _group_sums(group, k, y.to_numpy()[keep], p.to_numpy()[keep])
    observed = np.rint(observed).astype(np.int64)
    bad = ~np.isfinite(expected) | (expected <= 0)
    if bad.any():  # the error oe_ratio gives for that unit
        i = int(np.flatnonzero(bad)[0])
        oe_ratio(int(observed[i]), float(expected[i]), level=level)
    ratio, low, high, method = _oe_limits(observed, expected, level)
    rows = {
        "unit": names,
        "n": np.bincount(group, minlength=k).astype(np.int64),
        "observed": observed,
        "expected": expected,
        "oe": ratio,
        "low": low,
        "high": high,
        "method": method,
    }
    out = pd.DataFrame(rows)
    return out.sort_values(["oe", "unit"], kind="mergesort").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# CUSUM and VLAD
# ---------------------------------------------------------------------------------------------
def alternative_risk(p0: float | np.ndarray, odds_ratio: float) -> float | np.ndarray:
    """Risk after multiplying the odds of ``p0`` by ``odds_ratio``: ``R·p0/(1 - p0 + R·p0)``.

    This is p1 of the unadjusted Bernoulli CUSUM (Reynolds & Stoumbos 1999, J Qual Technol
    31:87) and the alternative of the risk-adjusted CUSUM (Steiner et al. 2000).

    Examples
    --------
    >>> round(alternative_risk(0.10, 2.0), 4)
    0.1818
    """
    p0 = np.asarray(p0, dtype=float)
    out = odds_ratio * p0 / (1.0 - p0 + odds_ratio * p0)
    return float(out) if out.ndim == 0 else out


def _cusum_weights(y: np.ndarray, p: np.ndarray, odds_ratio: float) -> np.ndarray:
    """Steiner's log-likelihood-ratio weight for H0: R = 1 against R = ``odds_ratio``."""
    return y * math.log(odds_ratio) - np.log1p(-p + odds_ratio * p)


def _check_odds_ratio(odds_ratio: float) -> float:
    odds_ratio = float(odds_ratio)
    if not np.isfinite(odds_ratio) or odds_ratio <= 1.0:
        raise ValueError(
            "odds_ratio must be > 1 (the upper chart detects R_A = odds_ratio, "
            "the lower chart R_A = 1/odds_ratio)"
        )
    return odds_ratio


def _cusum_path(
    weights: np.ndarray, h: float, block: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """``X_t = max(0, X_{t-1} + W_t)`` restarted at 0 after each ``X_t >= h``, and the signals.

    Vectorised by blocks through the Lindley form ``X_t = S_t - min(0, min_{u<=t} S_u)``
    (S the running sum from the block's start value), restarting a block after each signal,
    instead of a Python loop over the cases (~1 µs per case). The values equal the loop's up
    to floating-point rounding (the sums are kept short by the blocks).

    Examples
    --------
    >>> x, signal = _cusum_path(np.array([1.0, -2.0, 1.5, 1.0, 0.5]), 2.0)
    >>> x.tolist(), signal.tolist()
    ([1.0, 0.0, 1.5, 2.5, 0.5], [False, False, False, True, False])
    """
    n = weights.size
    values = np.empty(n)
    signal = np.zeros(n, dtype=bool)
    start, x0 = 0, 0.0
    while start < n:
        stop = min(n, start + block)
        s = np.cumsum(np.concatenate(([x0], weights[start:stop])))[1:]
        x = s - np.minimum(np.minimum.accumulate(s), 0.0)
        hits = np.flatnonzero(x >= h)
        if hits.size:
            end = start + int(hits[0]) + 1
            values[start:end] = x[: hits[0] + 1]
            signal[end - 1] = True
            start, x0 = end, 0.0
        else:
            values[start:stop] = x
            start, x0 = stop, float(x[-1])
    return values, signal


def cusum_chart(
    observed: Sequence[float] | np.ndarray,
    expected: Sequence[float] | np.ndarray,
    odds_ratio: float = 2.0,
    threshold_upper: float | None = 4.5,
    threshold_lower: float | None = 4.5,
) -> pd.DataFrame:
    """Risk-adjusted Bernoulli CUSUM (upper and lower) and VLAD for one ordered series.

    Parameters
    ----------
    observed : array_like of {0, 1}
        Outcomes in time order.
    expected : array_like
        Predicted risks p_t in [0, 1] (a constant p0 gives the unadjusted Bernoulli CUSUM).
    odds_ratio : float
        R_A > 1 of the upper chart (deterioration); the lower chart uses 1/R_A (improvement).
    threshold_upper, threshold_lower : float or None
        Decision limits h⁺ and h⁻ (positive); ``None`` never signals. The default 4.5 is the
        value Steiner et al. used for R_A = 2; prefer a limit chosen for the unit's case mix
        (:func:`cusum_threshold`).

    Returns
    -------
    DataFrame
        ``observed, expected, weight_upper, upper, weight_lower, lower, signal_upper,
        signal_lower, vlad``. Weights are ``W_t = y_t·log R - log(1 - p_t + R·p_t)``
        (R0 = 1; Steiner, Cook, Farewell & Treasure 2000, Biostatistics 1:441). Upper chart
        ``X_t = max(0, X_{t-1} + W_t)`` with R = odds_ratio, signal when ``X_t ≥ h⁺``; lower
        chart ``Z_t = min(0, Z_{t-1} - W_t)`` with R = 1/odds_ratio, signal when ``Z_t ≤ -h⁻``.
        The row of a signal shows the value that crossed the limit; the chart restarts from 0 at
        the next case. ``vlad`` is ``Σ (p_s - y_s)``, expected minus observed events (Lovegrove
        et al. 1997, Lancet 350:1128).

    Examples
    --------
    >>> chart = cusum_chart([0, 1, 1], [0.1, 0.1, 0.1])
    >>> chart["upper"].round(4).tolist()
    [0.0, 0.5978, 1.1957]
    """
    odds_ratio = _check_odds_ratio(odds_ratio)
    y = np.asarray(observed, dtype=float)
    p = np.asarray(expected, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError("observed and expected must be 1-d arrays of the same length")
    if not np.all(np.isin(y, (0.0, 1.0))):
        raise ValueError("observed must contain only 0 and 1")
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("expected risks must lie in [0, 1]")
    h_up = math.inf if threshold_upper is None else float(threshold_upper)
    h_low = math.inf if threshold_lower is None else float(threshold_lower)
    if h_up <= 0 or h_low <= 0:
        raise ValueError("thresholds must be positive")
    w_up = _cusum_weights(y, p, odds_ratio)
    w_low = _cusum_weights(y, p, 1.0 / odds_ratio)
    upper, sig_up = _cusum_path(w_up, h_up)
    # Z = min(0, Z - W) is -X of the chart X = max(0, X + W); 0.0 - X keeps +0.0 at zero.
    x_low, sig_low = _cusum_path(w_low, h_low)
    lower = 0.0 - x_low
    return pd.DataFrame(
        {
            "observed": y.astype(int),
            "expected": p,
            "weight_upper": w_up,
            "upper": upper,
            "weight_lower": w_low,
            "lower": lower,
            "signal_upper": sig_up,
            "signal_lower": sig_low,
            "vlad": np.cumsum(p - y),
        }
    )


@dataclasses.dataclass(frozen=True)
class CusumThreshold(Result):
    """Decision limit h of a CUSUM and its in-control average run length (ARL).

    ``method`` is ``"markov"`` (Markov-chain approximation on ``n_states`` grid points;
    ``n_sim`` and ``horizon`` are 0) or ``"simulation"`` (``n_sim`` charts over ``horizon``
    cases; ``n_states`` is 0).
    """

    h: float
    arl: float
    target_arl: float
    direction: str
    n_sim: int
    horizon: int
    method: str = "markov"
    n_states: int = 0


#: Grid points of the Markov-chain ARL (:func:`cusum_arl`). Against 4,000 points the ARL
#: differs by about 0.1% up to h = 6 (ARL ~ 10^4) and by under 0.6% at h = 9 (ARL ~ 10^5 to
#: 10^6, less than 0.005 on h); it lies within the 99% CI of long simulations and within 0.5%
#: of exact Bernoulli-CUSUM ARLs (``tests/unit/analysis/test_cusum_markov.py``). The
#: simulation it replaces had a Monte-Carlo error of 2-3% on the ARL.
MARKOV_STATES = 1000
#: Grid of the first, coarse search for h; the fine grid then moves h by a few thousandths.
_COARSE_STATES = 200
#: Smallest decision limit considered, and the resolution h is reported at.
_H_STEP = 1e-3


def _weight_atoms(expected: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Support and probabilities of the in-control weight W of one case.

    The case's risk p is one of ``expected`` with equal probability and y ~ Bernoulli(p), so
    W = -log(1 - p + R·p) with probability (1 - p)/n and W + log R with probability p/n.
    Repeated risks are merged first (a case-mix model gives many ties).
    """
    values, counts = np.unique(expected, return_counts=True)
    share = counts / float(expected.size)
    w0 = -np.log1p(-values + ratio * values)
    atoms = np.concatenate([w0, w0 + math.log(ratio)])
    prob = np.concatenate([share * (1.0 - values), share * values])
    keep = prob > 0.0
    return atoms[keep], prob[keep]


def _markov_arl(atoms: np.ndarray, prob: np.ndarray, h: float, n_states: int) -> float:
    """In-control ARL from 0 of ``X = max(0, X + W)`` signalling at ``X >= h``.

    Brook & Evans (1972) discretisation with linear interpolation between grid points: the
    ARL function ``L(x) = 1 + E[L(max(0, x + W)); x + W < h]`` is evaluated at the nodes
    ``x_i = i·h/(M-1)``, ``i = 0..M-1`` (the last node stands for the left limit at h), and a
    move from ``x_i`` to ``v = x_i + w`` inside ``[x_j, x_j+1)`` is split between nodes j and
    j+1 so that its mean is kept. (Rounding each move to the nearest node instead biases the
    drift of the chart, which is small, and makes the ARL of a chart with few distinct
    weights, e.g. the unadjusted Bernoulli CUSUM, jump by tens of percent between grid sizes.)
    ``v <= 0`` goes to node 0 and ``v >= h`` is the signal. The transition matrix R is then a
    Toeplitz matrix T (the node offset of a move) corrected in its first and last columns, so
    ``(I - R) L = 1`` is solved by Levinson recursion on ``I - T`` plus a rank-2 Woodbury
    correction: O(M²) time and O(M) memory instead of a dense O(M³) solve (about 2 ms for
    M = 1,000).
    """
    from scipy import linalg

    m = int(n_states)
    step = h / (m - 1)
    scaled = atoms / step
    k = np.floor(scaled)
    frac = scaled - k
    # Moves beyond +-m nodes only matter through their totals (clamped or absorbed).
    off = m + 1
    idx = (np.clip(k, -off, m) + off).astype(np.intp)
    size = 2 * m + 3
    lower = np.bincount(idx, prob * (1.0 - frac), size)  # share landing on the node below v
    upper = np.bincount(idx, prob * frac, size)  # ... and on the node above v
    g = lower.copy()
    g[1:] += upper[:-1]  # g[off + e]: probability of moving e nodes
    i = np.arange(m)
    col = -g[off - i]
    col[0] += 1.0
    row = -g[off + i]
    row[0] += 1.0
    # Corrections of T: node 0 also takes the moves to nodes < 0 (the chart's floor at 0), and
    # the share T puts on the last node from v in [h, h + step) is a signal, not a stay.
    below = np.cumsum(g)[off - 1 - i]
    over = lower[off + m - 1 - i]
    # Woodbury needs only rows 0 and m-1 of (I - T)^-1; a Toeplitz matrix is persymmetric
    # (J A J = A'), so those rows are its last and first columns reversed: two Levinson
    # solves instead of three.
    unit = np.zeros((m, 2))
    unit[0, 0] = unit[m - 1, 1] = 1.0
    first, last = linalg.solve_toeplitz((col, row), unit, check_finite=False).T
    ends = np.stack([last[::-1], first[::-1]])  # rows 0 and m-1 of the inverse
    base = ends.sum(axis=1)  # (I - T)^-1 1 at the two ends
    corr = ends @ np.column_stack([below, -over])
    coef = np.linalg.solve(np.eye(2) - corr, base)
    return float(base[0] + corr[0] @ coef)


def cusum_arl(
    expected: Sequence[float] | np.ndarray,
    h: float,
    odds_ratio: float = 2.0,
    direction: str = "upper",
    n_states: int = MARKOV_STATES,
) -> float:
    """In-control average run length of a risk-adjusted CUSUM with decision limit h.

    Markov-chain approximation (Brook DS, Evans DA. Biometrika 1972;59:539), as Steiner, Cook,
    Farewell & Treasure (Biostatistics 2000;1:441) used for the risk-adjusted CUSUM: the chart
    is discretised on ``n_states`` grid points of [0, h], the transition probabilities come
    from the distribution of the weight W under the unit's own case mix (each case's risk p
    with equal probability, y ~ Bernoulli(p)), and the ARL from a start at 0 is the first
    entry of ``(I - R)⁻¹ 1``. It is the quantity a simulation of the in-control run length
    estimates, without Monte-Carlo error. See :func:`_markov_arl` for the grid.

    Parameters
    ----------
    expected : array_like
        Predicted risks of the unit's cases (NaN ignored).
    h : float
        Decision limit (> 0).
    odds_ratio : float
        R_A > 1 of the upper chart; the lower chart uses 1/R_A.
    direction : {"upper", "lower"}
        Which chart (the lower chart ``Z = min(0, Z - W)`` is the upper chart of -Z).
    n_states : int
        Grid points (at least 10).

    Returns
    -------
    float
        The ARL (cases to a signal, the signalling case included); ``inf`` when no case can
        move the chart up.

    Examples
    --------
    >>> round(cusum_arl(np.full(50, 0.1), 3.0), -1)
    840.0
    """
    odds_ratio = _check_odds_ratio(odds_ratio)
    if direction not in ("upper", "lower"):
        raise ValueError("direction must be 'upper' or 'lower'")
    if not h > 0:
        raise ValueError("h must be positive")
    if int(n_states) < 10:
        raise ValueError("n_states must be at least 10")
    p = np.asarray(expected, dtype=float)
    p = p[np.isfinite(p)]
    if p.size == 0:
        raise InsufficientDataError("CUSUM ARL", "no expected risks")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("expected risks must lie in [0, 1]")
    atoms, prob = _weight_atoms(p, odds_ratio if direction == "upper" else 1.0 / odds_ratio)
    if not np.any(atoms[prob > 0] > 0):
        return math.inf
    return _markov_arl(atoms, prob, float(h), int(n_states))


def _markov_threshold(
    atoms: np.ndarray, prob: np.ndarray, target: float, n_states: int
) -> tuple[float, float]:
    """Smallest h on a 0.001 grid whose Markov-chain ARL reaches ``target``, and that ARL.

    A root search on log ARL(h) (nearly linear in h) on a coarse grid first, then a few chord
    steps with the coarse slope on the fine grid (typically 4-7 coarse and 3-7 fine solves,
    10-30 ms in all).
    """
    log_target = math.log(target)

    def gap(h: float, m: int) -> float:
        arl = _markov_arl(atoms, prob, h, m)
        if not arl >= 1.0:  # NaN or below one case: the solve broke down
            raise InsufficientDataError("CUSUM threshold", f"the ARL at h = {h:g} is {arl:g}")
        return math.log(min(arl, 1e300)) - log_target  # an overflow counts as "far above"

    coarse = min(_COARSE_STATES, n_states)
    settled = False
    # Bracket the root on the coarse grid (typical limits lie between 2 and 10) ...
    lo, hi = 2.0, 4.0
    f_hi = gap(hi, coarse)
    if f_hi < 0.0:
        while f_hi < 0.0:
            if hi > 1e3:
                raise InsufficientDataError("CUSUM threshold",
                                            f"no h < 1000 reaches ARL {target:g}")
            lo, f_lo = hi, f_hi
            hi *= 2.0
            f_hi = gap(hi, coarse)
    else:
        f_lo = gap(lo, coarse)
        while f_lo > 0.0:
            if lo <= _H_STEP:  # one case can signal and that is already rare enough
                return _H_STEP, _markov_arl(atoms, prob, _H_STEP, n_states)
            hi, f_hi = lo, f_lo
            lo = max(lo / 2.0, _H_STEP)
            f_lo = gap(lo, coarse)
    # ... and close in with the Illinois variant of regula falsi (log ARL is nearly linear in
    # h, so a few steps reach 0.1% of the target), keeping the last secant slope.
    points = [(lo, f_lo), (hi, f_hi)]
    side = 0
    for _ in range(60):
        h = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        f = gap(h, coarse)
        points.append((h, f))
        if abs(f) < 1e-3 or hi - lo < 1e-6:
            break
        if f > 0.0:
            hi, f_hi = h, f
            if side == 1:
                f_lo /= 2.0
            side = 1
        else:
            lo, f_lo = h, f
            if side == -1:
                f_hi /= 2.0
            side = -1
    (h_a, f_a), (h_b, f_b) = points[-2], points[-1]
    slope = (f_b - f_a) / (h_b - h_a) if h_b != h_a else 0.0
    if n_states != coarse:
        if not slope > 0.0 or abs(h_b - h_a) > 1.0:  # no usable secant: a central difference
            width = min(0.05, h / 4.0)
            slope = (gap(h + width, coarse) - gap(h - width, coarse)) / (2.0 * width)
        below, above = 0.0, math.inf  # fine-grid limits known to fall short of / reach it
        for _ in range(24 if slope > 0 else 0):
            f = gap(h, n_states)
            if f < 0.0:
                below = max(below, h)
            else:
                above = min(above, h)
            if above - below < _H_STEP:
                # Settled to within the reporting step (a chart with few distinct weights has
                # a step-like ARL, on which chord steps alone would hop to and fro).
                h, settled = above, True
                break
            move = f / slope
            if abs(move) < 1e-5:
                h -= move
                break
            step_to = h - move
            if math.isfinite(above) and not below + 1e-9 < step_to < above - 1e-9:
                step_to = (below + above) / 2.0  # bisect when the chord leaves the bracket
            h = max(step_to, _H_STEP)
        else:  # the chord steps did not settle: bracket on the fine grid instead
            h = optimize.brentq(gap, max(h / 2.0, _H_STEP), 2.0 * h + 1.0,
                                args=(n_states,), xtol=1e-6)
    # Report h on a 0.001 grid, rounded up so its ARL reaches the target (the discretised
    # ARL is monotone in h up to tiny steps, hence the short loop).
    h = round(math.ceil(h / _H_STEP - 1e-6) * _H_STEP, 3)
    arl = _markov_arl(atoms, prob, h, n_states)
    for _ in range(20):
        if arl >= target:
            break
        h = round(h + _H_STEP, 3)
        arl = _markov_arl(atoms, prob, h, n_states)
    for _ in range(3 if settled else 0):  # a step-like ARL may reach the target a step lower
        lower_h = round(h - _H_STEP, 3)
        lower_arl = _markov_arl(atoms, prob, lower_h, n_states) if lower_h > 0 else 0.0
        if lower_arl < target:
            break
        h, arl = lower_h, lower_arl
    return h, arl


def _arl_estimate(running_max: np.ndarray, h: float) -> float:
    """ARL at limit ``h`` from paths of the running maximum of the chart (censored at T).

    ``E[RL] = E[min(RL, T)] + P(RL > T)·m``, where the mean residual run length ``m`` of the
    charts still running at T is estimated from the signal rate over the second half of the
    horizon (the run length is close to geometric once the chart has left its start).
    """
    n_sim, horizon = running_max.shape
    below = np.count_nonzero(running_max < h, axis=1)  # run length - 1 for charts that signalled
    signalled = below < horizon
    rl = np.where(signalled, below + 1, horizon).astype(float)
    mean_part = rl.mean()
    censored = 1.0 - signalled.mean()
    if censored == 0.0:
        return float(mean_part)
    half = horizon // 2
    at_risk = np.clip(rl - half, 0.0, None).sum()
    late = np.sum(signalled & (rl > half))
    if late == 0:
        return math.inf
    return float(mean_part + censored * at_risk / late)


def cusum_threshold(
    expected: Sequence[float] | np.ndarray,
    odds_ratio: float = 2.0,
    in_control_arl: float = 1000.0,
    direction: str = "upper",
    seed: int | np.random.Generator | None = 0,
    n_sim: int | None = None,
    method: str = "markov",
    n_states: int = MARKOV_STATES,
) -> CusumThreshold:
    """Choose a CUSUM decision limit h whose in-control ARL reaches a target.

    The in-control run length comes from the unit's own case mix (Steiner et al. 2000,
    Biostatistics 1:441): each case's risk p is one of ``expected`` with equal probability and
    its outcome y ~ Bernoulli(p).

    * ``method="markov"`` (default): the ARL is computed with the Markov-chain approximation
      of Brook & Evans (1972, Biometrika 59:539) on ``n_states`` grid points
      (:func:`cusum_arl`), which Steiner et al. used for the risk-adjusted CUSUM; h is found
      by a root search on that ARL and reported as the smallest h on a 0.001 grid whose ARL
      reaches the target. No Monte-Carlo error, and the cost (a few milliseconds per ARL)
      does not grow with the target.
    * ``method="simulation"``: ``n_sim`` charts are simulated for a horizon of 3× the target
      (vectorised through the Lindley form ``X_t = S_t - min_{s≤t} S_s`` of the CUSUM, S the
      cumulative weight) and h is found by bisection on the simulated ARL (see
      :func:`_arl_estimate` for the censoring correction).

    Parameters
    ----------
    expected : array_like
        Predicted risks of the unit's cases.
    odds_ratio : float
        R_A of the upper chart; the lower chart uses 1/R_A.
    in_control_arl : float
        Target in-control average run length (cases to a false signal).
    direction : {"upper", "lower"}
        Which chart.
    seed : int or Generator, optional
        Seed of :func:`numpy.random.default_rng` (simulation only).
    n_sim : int, optional
        Number of simulated charts (simulation only); default ``clip(4e6 / horizon, 200,
        2000)`` (about 4 million simulated cases; the relative Monte-Carlo error of the ARL is
        about 1/√n_sim).
    method : {"markov", "simulation"}
        How the ARL is computed.
    n_states : int
        Grid points of the Markov chain (``method="markov"`` only).

    Returns
    -------
    CusumThreshold
        ``h``, its ``arl``, ``target_arl``, ``direction``, ``method``, and ``n_states`` (Markov)
        or ``n_sim`` and ``horizon`` (simulation).

    Examples
    --------
    >>> th = cusum_threshold(np.full(50, 0.1), in_control_arl=500)
    >>> th.method, 1.0 < th.h < 6.0, th.arl >= 500
    ('markov', True, True)
    >>> sim = cusum_threshold(np.full(50, 0.1), in_control_arl=500, method="simulation",
    ...                       n_sim=300)
    >>> sim.method, 1.0 < sim.h < 6.0
    ('simulation', True)
    """
    odds_ratio = _check_odds_ratio(odds_ratio)
    p = np.asarray(expected, dtype=float)
    p = p[np.isfinite(p)]
    if p.size == 0:
        raise InsufficientDataError("CUSUM threshold", "no expected risks to simulate from")
    if direction not in ("upper", "lower"):
        raise ValueError("direction must be 'upper' or 'lower'")
    if not in_control_arl > 1:
        raise ValueError("in_control_arl must be > 1")
    if method not in ("markov", "simulation"):
        raise ValueError("method must be 'markov' or 'simulation'")
    ratio = odds_ratio if direction == "upper" else 1.0 / odds_ratio
    if method == "markov":
        if int(n_states) < 10:
            raise ValueError("n_states must be at least 10")
        if np.any((p < 0) | (p > 1)):
            raise ValueError("expected risks must lie in [0, 1]")
        atoms, prob = _weight_atoms(p, ratio)
        if not np.any(atoms > 0):
            raise InsufficientDataError(
                "CUSUM threshold", "no case can move the chart up (all expected risks are 0)"
            )
        h, arl = _markov_threshold(atoms, prob, float(in_control_arl), int(n_states))
        return CusumThreshold(h=h, arl=arl, target_arl=float(in_control_arl),
                              direction=direction, n_sim=0, horizon=0, method="markov",
                              n_states=int(n_states))
    rng = np.random.default_rng(seed)
    w0 = _cusum_weights(np.zeros(p.size), p, ratio)
    w1 = _cusum_weights(np.ones(p.size), p, ratio)
    weights = np.stack([w0, w1])
    horizon = int(math.ceil(3.0 * in_control_arl))
    if n_sim is None:
        n_sim = int(np.clip(4e6 // horizon, 200, 2000))
    running_max = np.empty((n_sim, horizon), dtype=np.float32)
    s_last = np.zeros(n_sim)
    s_min = np.zeros(n_sim)
    x_max = np.zeros(n_sim)
    chunk = max(1, int(2e6 // n_sim))
    for start in range(0, horizon, chunk):
        width = min(chunk, horizon - start)
        idx = rng.integers(0, p.size, size=(n_sim, width))
        event = rng.random((n_sim, width)) < p[idx]
        # One gather from a (2, n) table instead of gathering both weights and choosing.
        s = s_last[:, None] + np.cumsum(weights[event.view(np.int8), idx], axis=1)
        s_run_min = np.minimum(s_min[:, None], np.minimum.accumulate(s, axis=1))
        x = s - s_run_min
        mx = np.maximum(x_max[:, None], np.maximum.accumulate(x, axis=1))
        running_max[:, start : start + width] = mx
        s_last, s_min, x_max = s[:, -1], s_run_min[:, -1], mx[:, -1]
    lo, hi = 0.0, 2.0
    while _arl_estimate(running_max, hi) < in_control_arl and hi < 200.0:
        lo, hi = hi, hi * 2.0
    for _ in range(40):
        if hi - lo < 1e-3:
            break
        mid = (lo + hi) / 2.0
        if _arl_estimate(running_max, mid) < in_control_arl:
            lo = mid
        else:
            hi = mid
    h = round(hi, 3)
    return CusumThreshold(
        h=h,
        arl=_arl_estimate(running_max, h),
        target_arl=float(in_control_arl),
        direction=direction,
        n_sim=int(n_sim),
        horizon=horizon,
        method="simulation",
        n_states=0,
    )


#: Grid points of the Markov chain for the run-length *distribution* (the probability of a
#: false signal within n cases, :func:`cusum_false_alarm`). The n-step probability needs the
#: dense transition matrix raised to the power n, formed by repeated squaring (log2(n)
#: products of 100 × 100 matrices, about 1 ms whatever n) instead of n matrix-vector steps.
#: A 100-point grid alone overstates the probability (by 1-25%: the split of each move between
#: two grid points adds variance); its time scale is therefore matched to the
#: :data:`MARKOV_STATES`-point chain: ``P(RL > n) = S_100(n)^(ARL_100/ARL_1000)``. This is
#: exact for a geometric run length and, in the tests, within the Monte-Carlo error of 20,000
#: simulated series (``tests/unit/analysis/test_cusum_markov.py``).
FALSE_ALARM_STATES = 100


def _transition_matrix(atoms: np.ndarray, prob: np.ndarray, h: float, m: int) -> np.ndarray:
    """Dense in-control transition matrix R (m × m, substochastic) of the chart on [0, h):
    the grid and the mean-keeping split of :func:`_markov_arl` (R = T + the floor column -
    the signalling share of the last column); the missing row mass is the signal."""
    step = h / (m - 1)
    scaled = atoms / step
    k = np.floor(scaled)
    frac = scaled - k
    off = m + 1
    idx = (np.clip(k, -off, m) + off).astype(np.intp)
    size = 2 * m + 3
    lower = np.bincount(idx, prob * (1.0 - frac), size)
    upper = np.bincount(idx, prob * frac, size)
    g = lower.copy()
    g[1:] += upper[:-1]
    i = np.arange(m)
    r = g[off + i[None, :] - i[:, None]]
    r[:, 0] += np.cumsum(g)[off - 1 - i]
    r[:, m - 1] -= lower[off + m - 1 - i]
    return r


def _arl_ratio(atoms: np.ndarray, prob: np.ndarray, h: float, m: int,
               fine: int) -> tuple[float, float]:
    """``ARL_m / ARL_fine`` at h (the time-scale correction of :data:`FALSE_ALARM_STATES`)
    and ``ARL_fine``."""
    arl = _markov_arl(atoms, prob, h, fine)
    ratio = _markov_arl(atoms, prob, h, m) / arl
    return (ratio if np.isfinite(ratio) and ratio > 0 else 1.0), arl


def _signal_probability(atoms: np.ndarray, prob: np.ndarray, h: float, n: int,
                        m: int = FALSE_ALARM_STATES, fine: int | None = MARKOV_STATES,
                        ratio: float | None = None) -> float:
    """P(at least one signal within n cases) from a start at 0: ``1 - e_0' R^n 1``, with R^n
    by repeated squaring (O(m³ log n), not O(n m²)); with ``fine`` the survival is raised to
    the power ``ratio = ARL_m / ARL_fine`` (see :data:`FALSE_ALARM_STATES`; computed at h
    unless given)."""
    power = _transition_matrix(atoms, prob, h, m)
    row = np.zeros(m)
    row[0] = 1.0
    steps = int(n)
    while steps:
        if steps & 1:
            row = row @ power
        steps >>= 1
        if steps:
            power = power @ power
    survival = float(min(1.0, max(0.0, row.sum())))
    if fine and fine != m and 0.0 < survival < 1.0:
        if ratio is None:
            ratio = _arl_ratio(atoms, prob, h, m, fine)[0]
        survival = math.exp(math.log(survival) * ratio)
    return 1.0 - survival


def cusum_false_alarm(
    expected: Sequence[float] | np.ndarray,
    h: float,
    n: int,
    odds_ratio: float = 2.0,
    direction: str = "upper",
    n_states: int = FALSE_ALARM_STATES,
) -> float:
    """In-control probability that a risk-adjusted CUSUM signals at least once within n cases.

    The chart starts at 0; the cases' risks are drawn from ``expected`` (each equally likely)
    and their outcomes from those risks, as for :func:`cusum_arl`. With R the Markov chain's
    transition matrix among the non-signalling states (Brook & Evans 1972, Biometrika
    59:539), ``P(RL ≤ n) = 1 - P(no absorption in n steps) = 1 - e_0' Rⁿ 1``; Rⁿ is formed by
    repeated squaring on a grid of ``n_states`` points, its time scale matched to the
    :data:`MARKOV_STATES`-point chain's ARL (see :data:`FALSE_ALARM_STATES`).

    Parameters
    ----------
    expected : array_like
        Predicted risks of the unit's cases (NaN ignored).
    h : float
        Decision limit (> 0).
    n : int
        Number of cases monitored (the unit's series).
    odds_ratio : float
        R_A > 1 of the upper chart; the lower chart uses 1/R_A.
    direction : {"upper", "lower"}
        Which chart.
    n_states : int
        Grid points (at least 10).

    Returns
    -------
    float
        The probability of at least one false signal over the n cases.

    Examples
    --------
    >>> round(cusum_false_alarm(np.full(50, 0.1), 3.0, 100), 2)
    0.08
    """
    odds_ratio = _check_odds_ratio(odds_ratio)
    if direction not in ("upper", "lower"):
        raise ValueError("direction must be 'upper' or 'lower'")
    if not h > 0:
        raise ValueError("h must be positive")
    if int(n) < 0 or int(n_states) < 10:
        raise ValueError("n must be >= 0 and n_states at least 10")
    p = np.asarray(expected, dtype=float)
    p = p[np.isfinite(p)]
    if p.size == 0:
        raise InsufficientDataError("CUSUM false-alarm probability", "no expected risks")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("expected risks must lie in [0, 1]")
    atoms, prob = _weight_atoms(p, odds_ratio if direction == "upper" else 1.0 / odds_ratio)
    return _signal_probability(atoms, prob, float(h), int(n), int(n_states))


def _false_alarm_threshold(atoms: np.ndarray, prob: np.ndarray, n: int, alpha: float,
                           m: int = FALSE_ALARM_STATES) -> tuple[float, float, float]:
    """Smallest h on the 0.001 grid with P(signal within n cases) ≤ alpha: ``(h, P, ARL)``.

    The start is the limit whose ARL gives alpha for a geometric run length,
    ``ARL = 1/(1 - (1 - alpha)^(1/n))`` (coarse Markov grid); then regula falsi (Illinois)
    on log P(h), which is nearly linear in h. The time-scale correction of
    :data:`FALSE_ALARM_STATES` is computed at the start and again at the final h (it changes
    slowly with h), so the search costs a few 100-point matrix powers and four ARL solves.
    """
    arl = 1.0 / -math.expm1(math.log1p(-alpha) / n)
    try:
        h0, _ = _markov_threshold(atoms, prob, max(arl, 1.0 + 1e-9), _COARSE_STATES)
    except InsufficientDataError:
        h0 = 4.0
    ratio = _arl_ratio(atoms, prob, h0, m, MARKOV_STATES)[0]

    def chance_at(h: float) -> float:
        return _signal_probability(atoms, prob, h, n, m, MARKOV_STATES, ratio)

    def gap(h: float) -> float:
        return math.log(max(chance_at(h), 1e-300)) - math.log(alpha)

    lo, hi = max(h0 * 0.95, _H_STEP), h0 * 1.05
    f_lo, f_hi = gap(lo), gap(hi)
    while f_lo < 0.0 and lo > _H_STEP:  # even a lower limit is rare enough
        hi, f_hi = lo, f_lo
        lo = max(lo / 2.0, _H_STEP)
        f_lo = gap(lo)
    if f_lo <= 0.0:
        hi = _H_STEP
    else:
        while f_hi > 0.0:
            if hi > 1e3:
                raise InsufficientDataError("CUSUM threshold",
                                            f"no h < 1000 gives P ≤ {alpha:g}")
            lo, f_lo = hi, f_hi
            hi *= 1.5
            f_hi = gap(hi)
        side = 0
        for _ in range(60):
            if hi - lo < _H_STEP / 2.0:
                break
            h = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
            if not lo < h < hi:
                h = (lo + hi) / 2.0
            f = gap(h)
            if abs(f) < 1e-4:
                hi = h
                break
            if f < 0.0:
                hi, f_hi = h, f
                if side == 1:
                    f_lo /= 2.0
                side = 1
            else:
                lo, f_lo = h, f
                if side == -1:
                    f_hi /= 2.0
                side = -1
    # Settle on the 0.001 grid with the correction computed at each candidate h itself (each
    # grid point once: the downward check often revisits the last point of the upward walk).
    settled: dict[float, tuple[float, float]] = {}

    def exact(h: float) -> tuple[float, float]:
        if h not in settled:
            ratio_h, arl_h = _arl_ratio(atoms, prob, h, m, MARKOV_STATES)
            settled[h] = (_signal_probability(atoms, prob, h, n, m, MARKOV_STATES, ratio_h),
                          arl_h)
        return settled[h]

    h = max(round(math.ceil(hi / _H_STEP - 1e-6) * _H_STEP, 3), _H_STEP)
    chance, arl = exact(h)
    for i in range(200):
        if chance <= alpha:
            break
        h = round(h + _H_STEP * (1 + 4 * (i // 10)), 3)
        chance, arl = exact(h)
    for _ in range(5):  # the root search may stop a step or two above the smallest such h
        lower_h = round(h - _H_STEP, 3)
        if lower_h <= 0:
            break
        lower, lower_arl = exact(lower_h)
        if lower > alpha:
            break
        h, chance, arl = lower_h, lower, lower_arl
    return h, chance, arl


#: Limits already searched, by a digest of what the limit depends on: the weight
#: distribution (the unit's risks as atoms and probabilities), n, alpha and the grid. The
#: Signals page and the Quality page chart the same units with the same risks, so each limit
#: is searched once per process (an exact cache: equal keys give the same search).
_LIMIT_CACHE: collections.OrderedDict[bytes, tuple[float, float, float]] = (
    collections.OrderedDict())
_LIMIT_CACHE_SIZE = 4096
_LIMIT_LOCK = threading.Lock()


def _false_alarm_limit(atoms: np.ndarray, prob: np.ndarray, n: int, alpha: float,
                       m: int = FALSE_ALARM_STATES) -> tuple[float, float, float]:
    """:func:`_false_alarm_threshold`, cached per (atoms, probabilities, n, alpha, m)."""
    atoms = np.ascontiguousarray(atoms, dtype=float)
    prob = np.ascontiguousarray(prob, dtype=float)
    digest = hashlib.blake2b(digest_size=20)
    digest.update(struct.pack("<qqdq", atoms.size, int(n), float(alpha), int(m)))
    digest.update(atoms.tobytes())
    digest.update(prob.tobytes())
    key = digest.digest()
    with _LIMIT_LOCK:
        if key in _LIMIT_CACHE:
            _LIMIT_CACHE.move_to_end(key)
            return _LIMIT_CACHE[key]
    value = _false_alarm_threshold(atoms, prob, int(n), float(alpha), m)
    with _LIMIT_LOCK:
        _LIMIT_CACHE[key] = value
        while len(_LIMIT_CACHE) > _LIMIT_CACHE_SIZE:
            _LIMIT_CACHE.popitem(last=False)
    return value


#: Lattice points of the chain that bounds the false-alarm probability from below
#: (:func:`_signal_probability_lower_bound`), and of the finer second try for series of at
#: most ``_FINE_BOUND_CASES`` cases (:func:`_below_false_alarm_limit`).
LOWER_BOUND_STATES = 100
_FINE_BOUND_STATES = 400
_FINE_BOUND_CASES = 1000


def _signal_probability_lower_bound(atoms: np.ndarray, prob: np.ndarray, h: float, n: int,
                                    states: int = LOWER_BOUND_STATES) -> float:
    """A lower bound of the exact in-control probability that the CUSUM
    ``X_t = max(0, X_{t-1} + W_t)`` from 0 reaches ``h`` within ``n`` cases.

    Why it is a bound (no approximation in its direction): round every weight *down* to the
    lattice δ = h/states, ``W' = δ·floor(W/δ) ≤ W``, and run the chart of the rounded
    weights on the same cases, ``X'_t = max(0, X'_{t-1} + W'_t)``. Since ``max(0, ·)`` is
    non-decreasing, ``X'_{t-1} ≤ X_{t-1}`` and ``W'_t ≤ W_t`` give ``X'_t ≤ X_t`` for every t
    and every sequence of cases (induction from X'_0 = X_0 = 0). So whenever X' reaches
    h = states·δ, X has reached h at that case or before: P(X' signals within n) ≤ P(X signals
    within n). X' lives exactly on the lattice 0, δ, …, (states-1)·δ (a signal absorbs) and
    its cases are independent draws of the weight distribution, as in the Markov chains of
    :func:`cusum_false_alarm`; its probability ``1 - e_0' Q^n 1`` (Q its substochastic
    transition matrix, by repeated squaring) is therefore exact, not a discretisation. The
    rounding only makes the bound conservative (it adds drift downwards).

    Examples
    --------
    >>> atoms, prob = _weight_atoms(np.full(50, 0.1), 2.0)
    >>> bound = _signal_probability_lower_bound(atoms, prob, 3.0, 100)
    >>> 0.0 < bound < cusum_false_alarm(np.full(50, 0.1), 3.0, 100)
    True
    """
    power = _lattice_chain(atoms, prob, h, states)
    row = np.zeros(states)
    row[0] = 1.0
    steps = int(n)
    while steps:
        if steps & 1:
            row = row @ power
        steps >>= 1
        if steps:
            power = power @ power
    return 1.0 - float(min(1.0, max(0.0, row.sum())))


def _lattice_chain(atoms: np.ndarray, prob: np.ndarray, h: float, states: int) -> np.ndarray:
    """Transition matrix (states × states, substochastic: the missing mass signals) of the
    chart of the weights rounded down to the lattice δ = h/states
    (:func:`_signal_probability_lower_bound`)."""
    step = float(h) / states
    k = np.floor(atoms / step)
    k -= k * step > atoms  # keep k·δ ≤ w when the division rounds up
    off = states
    idx = (np.clip(k, -off, states) + off).astype(np.intp)
    g = np.bincount(idx, prob, 2 * states + 1)  # g[off + e]: probability of moving e points
    i = np.arange(states)
    chain = g[off + i[None, :] - i[:, None]]  # moves that stay below h (the last column too)
    chain[:, 0] = np.cumsum(g)[off - i]  # every move to 0 or below lands on 0
    return chain


def _lattice_exceeds(atoms: np.ndarray, prob: np.ndarray, h: float, n: int, states: int,
                     alpha: float) -> bool:
    """Whether the lower bound of :func:`_signal_probability_lower_bound` on ``states``
    lattice points exceeds ``alpha``, case by case (n products of a vector with the chain,
    stopping as soon as the signalled mass exceeds ``alpha``: it only grows)."""
    chain = _lattice_chain(atoms, prob, h, states)
    row = np.zeros(states)
    row[0] = 1.0
    for _ in range(int(n)):
        row = row @ chain
        if 1.0 - row.sum() > alpha:
            return True
    return False


def _below_false_alarm_limit(atoms: np.ndarray, prob: np.ndarray, n: int, alpha: float,
                             level: float) -> bool:
    """True when ``level`` is proven to lie below the exact false-alarm limit: the smallest
    h whose in-control probability of a signal within n cases is at most ``alpha``.

    The probability is non-increasing in h (on every sequence of cases the chart reaches a
    higher limit later, if at all), so ``P(level) ≥`` :func:`_signal_probability_lower_bound`
    ``> alpha`` means every h ≤ ``level`` has P > alpha: the exact limit is above ``level``.
    The bound is tried on 100 lattice points, then (series of at most 1,000 cases) on 400,
    which lose less drift to the rounding; either suffices.
    (A level below the smallest limit searched, 0.001, is below any limit.) A chart whose
    largest value is such a level cannot signal at the exact limit; :func:`cusum` keeps its
    Markov-chain limit above it (see there), so the Signals page may skip the limit search of
    a chart that stays below a proven level without changing any result.
    """
    if level < _H_STEP:
        return True
    # The margin covers rounding in the matrix powers (the bound itself is exact).
    if _signal_probability_lower_bound(atoms, prob, level, n) > alpha + 1e-12:
        return True
    # A finer lattice loses less drift to the rounding: worth it while n vector products
    # cost less than a limit search.
    return n <= _FINE_BOUND_CASES and _lattice_exceeds(atoms, prob, level, n,
                                                        _FINE_BOUND_STATES, alpha + 1e-12)


def _chart_top(weights: np.ndarray) -> float:
    """Largest value of the chart ``max(0, X + W)`` from 0 without a limit (it signals at a
    limit h exactly when this reaches h: the path is the same up to its first crossing)."""
    if weights.size == 0:
        return 0.0
    return float(_cusum_path(weights, math.inf)[0].max())


def _in_order(dates: np.ndarray, ids: np.ndarray) -> bool:
    """True when rows are already sorted by (date, id), as the store returns them: the
    sort of a large unit's cases (~25 ms at 100,000) can then be skipped."""
    if dates.size < 2:
        return True
    if dates.dtype.kind != "M":
        return False
    stamp = dates.astype("datetime64[ns]").view(np.int64)
    if (stamp == np.iinfo(np.int64).min).any():  # NaT: let the sort place it
        return False
    step = np.diff(stamp)
    if (step < 0).any():
        return False
    tied = np.flatnonzero(step == 0)
    if tied.size == 0:
        return True
    try:
        return bool(np.all(ids[tied] <= ids[tied + 1]))
    except TypeError:  # ids that do not compare (missing values, mixed types)
        return False


def _unit_series(records: pd.DataFrame, unit: str, unit_id: Any, outcome: str,
                 y: pd.Series, p: pd.Series) -> pd.DataFrame:
    """The unit's charted cases in ``procedure_date`` order (ties by ``record_id``):
    ``record_index, record_id, procedure_date, y, p`` (the outcome and expected risk of
    :func:`_expected_risks` on ``records``), as :func:`cusum` charts them."""
    mask = (records[unit] == unit_id).fillna(False).to_numpy(dtype=bool) & y.notna().to_numpy()
    if not mask.any():
        raise InsufficientDataError("CUSUM", f"no records of {unit}={unit_id!r} with {outcome}")
    rows = np.flatnonzero(mask)  # gather the unit's rows only (not a million ids first)
    sub = pd.DataFrame(
        {
            "record_index": records.index[rows],
            "record_id": (
                records["record_id"].iloc[rows].to_numpy()
                if "record_id" in records
                else records.index[rows]
            ),
            "procedure_date": records["procedure_date"].iloc[rows].to_numpy(),
            "y": y.to_numpy()[rows],
            "p": p.to_numpy()[rows],
        }
    )
    if not _in_order(sub["procedure_date"].to_numpy(), sub["record_id"].to_numpy()):
        sub = sub.sort_values(["procedure_date", "record_id"], kind="mergesort")
        sub = sub.reset_index(drop=True)
    return sub


@dataclasses.dataclass(frozen=True)
class CusumResult(Result):
    """Risk-adjusted CUSUM and VLAD of one unit."""

    chart: pd.DataFrame
    signals: pd.DataFrame
    unit: str
    unit_id: Any
    outcome: str
    odds_ratio: float
    threshold_upper: float
    threshold_lower: float
    threshold_method: str
    in_control_arl: float
    arl_upper: float
    arl_lower: float
    adjusted: bool
    n: int
    #: Target in-control probability of at least one false signal of the two charts over the
    #: unit's n cases (split equally between them); NaN when the limits were not chosen by it.
    false_alarm: float = math.nan
    #: In-control probability of at least one false signal within the n cases, per chart
    #: (Markov chain, :func:`cusum_false_alarm`), whatever way the limits were chosen.
    false_alarm_upper: float = math.nan
    false_alarm_lower: float = math.nan
    #: The outcome charted: ``outcome`` itself, or for a time-to-event outcome its
    #: fixed-horizon indicator (:func:`horizon_outcome`).
    chart_outcome: str = ""


def cusum(
    records: pd.DataFrame,
    unit: str,
    unit_id: Any,
    outcome: str,
    odds_ratio: float = 2.0,
    threshold: float | tuple[float, float] | None = None,
    in_control_arl: float | None = None,
    seed: int | None = 0,
    adjust: bool = True,
    model: RiskModelResult | None = None,
    arl_method: str = "markov",
    false_alarm: float = FALSE_ALARM,
) -> CusumResult:
    """Risk-adjusted CUSUM (Steiner et al. 2000) and VLAD for one facility or operator.

    For a time-to-event outcome (:data:`TIME_TO_EVENT`) the chart is the Bernoulli CUSUM of
    its fixed-horizon indicator (:func:`horizon_outcome`: new fracture within 365 days, among
    the procedures whose status at 365 days is known), so every charted case has the same
    follow-up window; pass a model fitted for that indicator.

    Parameters
    ----------
    records : DataFrame
        Records of *all* units: the case-mix model is fitted on the pooled records.
    unit : str
        Grouping column (``"facility_id"`` or ``"operator_id"``).
    unit_id : Any
        The unit to chart.
    outcome : str
        One of :data:`OUTCOMES`; the unit's rows where it is missing are skipped.
    odds_ratio : float
        R_A of the upper chart (deterioration); the lower chart detects 1/R_A.
    threshold : float or (float, float), optional
        Given decision limits (h⁺, h⁻), or one value for both. Default: chosen from the
        unit's own expected risks so that the in-control probability of at least one false
        signal over its n charted cases is at most ``false_alarm`` for the two charts
        together (``false_alarm/2`` each; Markov chain, :func:`cusum_false_alarm`), or, when
        ``in_control_arl`` is given, by :func:`cusum_threshold` for that ARL.
    in_control_arl : float, optional
        Target in-control ARL of the chosen limits (instead of ``false_alarm``).
    seed : int, optional
        Seed of the simulation (``arl_method="simulation"`` only).
    adjust : bool
        Expected risks from :func:`risk_model` on the pooled records (default); otherwise the
        pooled rate for every case (unadjusted Bernoulli CUSUM).
    model : RiskModelResult, optional
        A :func:`risk_model` fit on these same ``records`` and ``outcome``, reused instead of
        refitting.
    arl_method : {"markov", "simulation"}
        ``method`` of :func:`cusum_threshold` when the limits are chosen for an ARL.
    false_alarm : float
        In-control probability of at least one false signal of the pair of charts over the
        unit's series (default 5%).

    Returns
    -------
    CusumResult
        ``chart`` in ``procedure_date`` order (ties by ``record_id``) with ``record_index,
        record_id, procedure_date`` and the columns of :func:`cusum_chart`; ``signals`` with
        ``position, record_index, record_id, procedure_date, direction, value``; the limits and
        ``threshold_method``: ``"false_alarm"`` (the default), ``"markov"`` (Markov-chain
        ARL), ``"simulated"`` (``arl_method="simulation"``) or ``"given"``; and the in-control
        false-alarm probability of each chart over the n cases.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"facility_id": np.repeat(list("AB"), 60),
    ...                    "procedure_date": pd.date_range("2024-01-01", periods=120),
    ...                    "cement_leakage": rng.random(120) < 0.2})
    >>> res = cusum(df, "facility_id", "A", "cement_leakage", threshold=4.0, adjust=False)
    >>> res.threshold_method, res.n
    ('given', 60)
    """
    odds_ratio = _check_odds_ratio(odds_ratio)
    if arl_method not in ("markov", "simulation"):
        raise ValueError("arl_method must be 'markov' or 'simulation'")
    if not 0.0 < false_alarm < 1.0:
        raise ValueError("false_alarm must be a probability between 0 and 1")
    for column in (unit, "procedure_date"):
        if column not in records:
            raise KeyError(f"records lack column {column!r}")
    chart_outcome = horizon_outcome(outcome)
    y, p = _expected_risks(records, chart_outcome, adjust, model)
    sub = _unit_series(records, unit, unit_id, outcome, y, p)
    n = len(sub)
    risks = sub["p"].to_numpy(dtype=float)
    atoms = {d: _weight_atoms(risks, odds_ratio if d == "upper" else 1.0 / odds_ratio)
             for d in ("upper", "lower")}
    chance = {"upper": math.nan, "lower": math.nan}
    alpha = math.nan
    if threshold is None and in_control_arl is None:
        alpha = float(false_alarm)
        limits = {}
        for d, (w, pr) in atoms.items():
            if not np.any(w > 0):
                raise InsufficientDataError(
                    "CUSUM threshold", "no case can move the chart up (all expected risks are 0)")
            limits[d] = _false_alarm_limit(w, pr, n, alpha / 2.0)
        for d, (w, pr) in atoms.items():
            # The Markov-chain limit is never left at or below a chart value that is proven to
            # lie below the exact limit (:func:`_below_false_alarm_limit`): such a chart does
            # not signal at the exact limit, so it does not signal here either. (Rare: the
            # chain's limit is within a few thousandths of the exact one; of the 1,006 charts
            # of the 5,000-record demo one limit, n = 13, lies at a proven level, and no chart
            # reaches it there.)
            ratio = odds_ratio if d == "upper" else 1.0 / odds_ratio
            top = _chart_top(_cusum_weights(sub["y"].to_numpy(dtype=float), risks, ratio))
            if top >= limits[d][0] and _below_false_alarm_limit(w, pr, n, alpha / 2.0, top):
                h = round(math.floor(top / _H_STEP + 1.0) * _H_STEP, 3)
                while h <= top:
                    h = round(h + _H_STEP, 3)
                ratio_h, arl_h = _arl_ratio(w, pr, h, FALSE_ALARM_STATES, MARKOV_STATES)
                limits[d] = (h, _signal_probability(w, pr, h, n, ratio=ratio_h), arl_h)
        (h_up, chance["upper"], arl_up), (h_low, chance["lower"], arl_low) = (
            limits["upper"], limits["lower"])
        target = math.nan
        method = "false_alarm"
    elif threshold is None:
        target = float(in_control_arl)
        rng = np.random.default_rng(seed)
        th_up = cusum_threshold(risks, odds_ratio, target, "upper", rng, method=arl_method)
        th_low = cusum_threshold(risks, odds_ratio, target, "lower", rng, method=arl_method)
        h_up, h_low, arl_up, arl_low = th_up.h, th_low.h, th_up.arl, th_low.arl
        method = "markov" if arl_method == "markov" else "simulated"
    else:
        h_up, h_low = (threshold, threshold) if np.isscalar(threshold) else threshold
        h_up, h_low = float(h_up), float(h_low)
        target, arl_up, arl_low = math.nan, math.nan, math.nan
        method = "given"
    for d, h in (("upper", h_up), ("lower", h_low)):
        w, pr = atoms[d]
        if math.isnan(chance[d]) and np.any(w > 0) and h > 0:
            chance[d] = _signal_probability(w, pr, h, n)
    chart = cusum_chart(sub["y"], sub["p"], odds_ratio, h_up, h_low)
    chart.insert(0, "procedure_date", sub["procedure_date"])
    chart.insert(0, "record_id", sub["record_id"])
    chart.insert(0, "record_index", sub["record_index"])
    columns = ["position", "record_index", "record_id", "procedure_date", "direction", "value"]
    hits = [(d, np.flatnonzero(chart[f"signal_{d}"].to_numpy())) for d in ("upper", "lower")]
    at = np.concatenate([i for _, i in hits])
    if at.size:
        signals = pd.DataFrame({
            "position": at + 1,
            "record_index": chart["record_index"].to_numpy()[at],
            "record_id": chart["record_id"].to_numpy()[at],
            "procedure_date": chart["procedure_date"].to_numpy()[at],
            "direction": np.concatenate([[d] * i.size for d, i in hits]).astype(object),
            "value": np.concatenate([chart[d].to_numpy()[i] for d, i in hits]),
        }, columns=columns)
    else:
        signals = pd.DataFrame([], columns=columns)
    signals = signals.sort_values(["position", "direction"], kind="mergesort").reset_index(
        drop=True
    )
    return CusumResult(
        chart=chart,
        signals=signals,
        unit=unit,
        unit_id=unit_id,
        outcome=outcome,
        odds_ratio=odds_ratio,
        threshold_upper=h_up,
        threshold_lower=h_low,
        threshold_method=method,
        in_control_arl=target,
        arl_upper=arl_up,
        arl_lower=arl_low,
        adjusted=bool(adjust),
        n=n,
        false_alarm=alpha,
        false_alarm_upper=chance["upper"],
        false_alarm_lower=chance["lower"],
        chart_outcome=chart_outcome,
    )


# ---------------------------------------------------------------------------------------------
# p-chart / Laney p'
# ---------------------------------------------------------------------------------------------
def p_chart(
    counts: Sequence[float] | np.ndarray,
    totals: Sequence[float] | np.ndarray,
    method: str = "p",
) -> pd.DataFrame:
    """p-chart (3σ) or Laney p′ chart for subgroups in time order.

    Parameters
    ----------
    counts, totals : array_like
        Events d_i and subgroup sizes n_i (e.g. per month), in time order.
    method : {"p", "laney"}
        ``"p"``: ``p̄ ± 3·σ_i`` with ``σ_i = √(p̄(1-p̄)/n_i)``. ``"laney"``: Laney p′
        (Laney 2002, Quality Engineering 14:531): ``z_i = (p_i - p̄)/σ_i``,
        ``σ_z = mean|z_i - z_{i-1}| / 1.128`` and limits ``p̄ ± 3·σ_i·σ_z``.

    Returns
    -------
    DataFrame
        One row per subgroup: ``count, total, p, center, low, high, z, sigma_z, signal``
        (``sigma_z`` is 1 for the p-chart). The lower limit is floored at 0 and the upper capped
        at 1; ``signal`` marks points outside the limits.

    Examples
    --------
    >>> chart = p_chart([12, 25, 6, 30], [100, 120, 90, 150], method="laney")
    >>> chart[["p", "low", "high"]].round(3).iloc[0].tolist()
    [0.12, 0.0, 0.489]
    """
    d = np.asarray(counts, dtype=float)
    n = np.asarray(totals, dtype=float)
    if d.shape != n.shape or d.ndim != 1:
        raise ValueError("counts and totals must be 1-d arrays of the same length")
    if np.any(n <= 0) or np.any(d < 0) or np.any(d > n):
        raise ValueError("totals must be positive and 0 <= counts <= totals")
    if method not in ("p", "laney"):
        raise ValueError("method must be 'p' or 'laney'")
    if d.size == 0:
        raise InsufficientDataError("p-chart", "no subgroups")
    pbar = d.sum() / n.sum()
    if pbar in (0.0, 1.0):
        raise InsufficientDataError("p-chart", f"the overall proportion is {pbar:g}")
    sigma = np.sqrt(pbar * (1.0 - pbar) / n)
    p = d / n
    z = (p - pbar) / sigma
    sigma_z = 1.0
    if method == "laney":
        if d.size < 2:
            raise InsufficientDataError("Laney p' chart", "1 subgroup; 2 are needed")
        sigma_z = float(np.mean(np.abs(np.diff(z))) / 1.128)
    low = np.maximum(pbar - 3.0 * sigma * sigma_z, 0.0)
    high = np.minimum(pbar + 3.0 * sigma * sigma_z, 1.0)
    return pd.DataFrame(
        {
            "count": d,
            "total": n,
            "p": p,
            "center": pbar,
            "low": low,
            "high": high,
            "z": z,
            "sigma_z": sigma_z,
            "signal": (p > high) | (p < low),
        }
    )
