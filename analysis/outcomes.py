"""Outcome tables for vertebroplasty (VP) and kyphoplasty (KP) records.

Pain responders, pain over the follow-up visits, Oswestry Disability Index (ODI) change, opioid
use, complication rates, resource use (duration, cement volume, length of stay, care setting)
and one stacked summary (:func:`outcome_summary`) that the dashboard and the notebooks use.

Every function takes procedure records (one row per procedure, the columns and dtypes of
:data:`data.dictionary.FIELDS`, e.g. from :func:`data.load_records` or
:func:`data.demo_records`) and returns a tidy :class:`pandas.DataFrame`: the grouping columns
named in ``by`` first, one row per group (and per outcome, visit or variable), a default
``RangeIndex``.

Conventions
-----------
* **Grouping.** ``by`` is any sequence of columns of `records` (``"procedure"``,
  ``"facility_id"``, ``"country"``, ``"etiology"``, a derived quarter column, …), a single
  column name, or ``()`` for one overall row. Groups are the observed combinations (categorical
  categories with no record do not appear, as ``groupby(observed=True)``), sorted like
  ``groupby(sort=True)`` (categoricals in category order, so vertebroplasty before kyphoplasty),
  and records with a missing grouping value form their own group, listed last (as
  ``groupby(dropna=False)``): they are shown, never silently dropped.
* **Empty input.** An empty frame gives an empty frame with the same columns; no exception.
* **Proportions.** Wilson (1927) score interval, computed by
  :func:`analysis.proportions.proportion_ci`; where the events are 0 or n the Clopper–Pearson
  (1934) "exact" interval is used instead and ``method`` says so (Newcombe 1998; the project's
  statistical-methods reference, §0). A group with no eligible record has NaN rate and limits
  and ``method`` ``"not estimable (n = 0)"``.
* **Means.** t interval ``mean ± t(n-1) · sd / sqrt(n)`` with the sample SD (ddof 1); NaN when
  fewer than 2 values.
* **Missing data are counted, never imputed.** A patient without a follow-up score is neither a
  responder nor a non-responder; the counts of missing values are reported in each table.
* **KP compared with VP.** These tables describe each group; the comparisons (differences KP −
  VP, ratios KP/VP) are made with :func:`analysis.proportions.compare_proportions` and
  :func:`analysis.means.compare_means`.

Computation is vectorised: the groups are numbered once and every count, sum and sum of
squares is one :func:`numpy.bincount` over all records, so :func:`outcome_summary` by
procedure takes well under a second on 1,000,000 records.

References
----------
.. [1] Wilson EB. Probable inference, the law of succession, and statistical inference.
   J Am Stat Assoc 1927;22:209-212.
.. [2] Clopper CJ, Pearson ES. The use of confidence or fiducial limits illustrated in the
   case of the binomial. Biometrika 1934;26:404-413.
.. [3] Newcombe RG. Two-sided confidence intervals for the single proportion: comparison of
   seven methods. Stat Med 1998;17:857-872.
.. [4] McNemar Q. Note on the sampling error of the difference between correlated proportions
   or percentages. Psychometrika 1947;12:153-157.
.. [5] Buchbinder R et al. Percutaneous vertebroplasty for osteoporotic vertebral compression
   fracture. Cochrane Database Syst Rev, CD006349 (responder outcome: "improvement in pain of
   2.5 units or 30% or more from baseline").
.. [6] Klazen CAH et al. Vertebroplasty versus conservative treatment in acute osteoporotic
   vertebral compression fractures (VERTOS II). Lancet 2010;376:1085-1092 (clinically
   significant relief: VAS decrease of at least 3 from baseline).
.. [7] Firanescu CE et al. Vertebroplasty versus sham procedure for painful acute osteoporotic
   vertebral compression fractures (VERTOS IV). BMJ 2018;361:k1551 (clinically significant
   relief: VAS decrease of at least 1.5).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats as st
from statsmodels.stats.contingency_tables import mcnemar

from analysis._checks import check_level
from analysis._grouping import group_codes
from analysis._histogram import (
    QUARTILES,
    GridCodes,
    blend,
    fence_limits,
    grid_codes,
    histogram_stats,
)
from analysis.horizon import HORIZON_OUTCOMES, horizon_groups, horizon_time_event
from analysis.proportions import proportion_ci
from data.dictionary import PAIN_VISITS

__all__ = [
    "COMPLICATION_OUTCOMES",
    "ResponderDefinition",
    "complication_rates",
    "odi_change",
    "opioid_use",
    "outcome_summary",
    "pain_trajectory",
    "resource_summary",
    "responder_rates",
    "setting_mix",
]

By = str | Sequence[str] | None

#: Complication outcomes of :func:`complication_rates`, in display order, with their labels.
COMPLICATION_OUTCOMES: dict[str, str] = {
    "cement_leakage": "Cement leakage",
    "leakage_symptomatic": "Symptomatic cement leakage",
    "pulmonary_embolism": "Pulmonary cement embolism",
    "embolism_symptomatic": "Symptomatic pulmonary cement embolism",
    "adjacent_fracture_12m": "New vertebral fracture by 12 months (cumulative incidence)",
    "infection": "Procedure-related infection",
    "new_neurologic_deficit": "New neurological deficit",
    "death_30d": "Death by 30 days (cumulative incidence)",
}

#: Horizon of ``adjacent_fracture_12m`` and of ``death_30d``, in days after the procedure.
FRACTURE_HORIZON_DAYS = HORIZON_OUTCOMES["adjacent_fracture_12m"].horizon_days
DEATH_HORIZON_DAYS = HORIZON_OUTCOMES["death_30d"].horizon_days
#: Estimand of the complications that are proportions (no time to the event).
PROPORTION_ESTIMAND = "proportion of patients"

#: Continuous resource variables of :func:`outcome_summary`: label and unit.
RESOURCE_VARIABLES: dict[str, tuple[str, str]] = {
    "duration_min": ("Procedure duration", "minutes"),
    "cement_volume_ml": ("Cement volume", "mL"),
    "length_of_stay_days": ("Length of stay", "days"),
}

ODI_TIME_POINTS: tuple[str, ...] = ("month1", "month12")

WILSON = "Wilson"
EXACT = "Clopper-Pearson (0 or n events)"
NOT_ESTIMABLE = "not estimable (n = 0)"
T_INTERVAL = "t interval"

# Pain scores are recorded to one decimal; differences such as 7.3 - 5.3 are not exact in
# binary floating point, so threshold comparisons allow this much rounding.
_TOLERANCE = 1e-9

# Up to this many groups, quantiles are computed group by group with np.quantile (fast when
# there are few large groups); above it by one lexicographic sort of all values.
_QUANTILE_LOOP_MAX_GROUPS = 2000
#: Up to this many groups the quartiles select each group with a boolean mask (no sort).
_QUANTILE_MASK_MAX_GROUPS = 8

_RESPONDER_KINDS = ("relative", "absolute")
#: How a death before the visit, without a score, counts in a responder analysis.
RESPONDER_DEATHS = ("missing", "non_response")


# --------------------------------------------------------------------------------------------
# Responder definition
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ResponderDefinition:
    """Definition of a pain responder: a large enough fall of pain from baseline at a visit.

    Parameters
    ----------
    time_point : {"day1", "week1", "month1", "month3", "month6", "month12"}, default "month1"
        Follow-up visit whose score (``pain_<time_point>``) is compared with ``pain_baseline``.
    kind : {"relative", "absolute"}, default "relative"
        ``"relative"``: the reduction is at least `threshold` percent of the baseline score.
        ``"absolute"``: the reduction is at least `threshold` points on the 0–10 scale.
    threshold : float, default 30.0
        Percent (0 < threshold ≤ 100) for relative definitions, points (0 < threshold ≤ 10)
        for absolute ones.
    deaths : {"missing", "non_response"}, default "missing"
        A patient with a baseline score who died before the visit's nominal day
        (``died`` and ``death_days`` < the day of :data:`data.dictionary.PAIN_VISITS`)
        without a score at it: ``"missing"`` leaves them out (complete case, the
        default); ``"non_response"`` counts them as non-responders (the composite
        "alive and responding"), which avoids a rate that looks better only because the
        sickest patients died. Needs the ``died`` and ``death_days`` columns.

    Notes
    -----
    Definitions in use (seen in the sources; see the module references):

    * Cochrane CD006349 (Buchbinder et al.): "improvement in pain of 2.5 units or 30% or more
      from baseline" (either criterion; use ``kind="relative", threshold=30`` or
      ``kind="absolute", threshold=2.5``).
    * VERTOS II (Klazen et al. 2010): clinically significant relief = VAS decrease ≥ 3
      (``kind="absolute", threshold=3``).
    * VERTOS IV (Firanescu et al. 2018): clinically significant relief = VAS decrease ≥ 1.5
      (``kind="absolute", threshold=1.5``).

    A responder needs an actual fall of pain of at least the threshold; a patient with a
    baseline score of 0 therefore cannot respond and counts as a non-responder (this keeps
    relative and absolute definitions consistent). The quality monitoring's pain
    non-response outcome (:func:`analysis.quality.outcome_values`) uses this same rule. Comparisons allow a rounding tolerance of
    1e-9 so that, e.g., 7.3 → 5.3 is a 2-point reduction.

    Examples
    --------
    >>> ResponderDefinition().label
    '≥30% pain reduction at month 1'
    >>> ResponderDefinition("month3", "absolute", 3.0).label
    '≥3-point pain reduction at month 3'
    >>> ResponderDefinition(deaths="non_response").label
    '≥30% pain reduction at month 1 (death before the visit = non-responder)'
    """

    time_point: str = "month1"
    kind: str = "relative"
    threshold: float = 30.0
    deaths: str = "missing"

    def __post_init__(self) -> None:
        if self.time_point not in PAIN_VISITS:
            raise ValueError(
                f"time_point must be one of {', '.join(PAIN_VISITS)}; got {self.time_point!r}"
            )
        if self.kind not in _RESPONDER_KINDS:
            raise ValueError(f"kind must be 'relative' or 'absolute'; got {self.kind!r}")
        if self.deaths not in RESPONDER_DEATHS:
            raise ValueError(f"deaths must be 'missing' or 'non_response'; got {self.deaths!r}")
        threshold = self.threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.number):
            raise ValueError(f"threshold must be a number; got {threshold!r}")
        threshold = float(threshold)
        if not math.isfinite(threshold) or threshold <= 0:
            raise ValueError(f"threshold must be a positive number; got {threshold!r}")
        if self.kind == "relative" and threshold > 100:
            raise ValueError(
                f"a relative threshold is a percentage of the baseline score (0 < threshold "
                f"<= 100); got {threshold:g}"
            )
        if self.kind == "absolute" and threshold > 10:
            raise ValueError(
                f"an absolute threshold is in points of the 0-10 pain scale (0 < threshold "
                f"<= 10); got {threshold:g}"
            )
        object.__setattr__(self, "threshold", threshold)

    @property
    def label(self) -> str:
        """Human-readable definition, e.g. ``"≥30% pain reduction at month 1"``."""
        visit = PAIN_VISITS[self.time_point][0].lower()
        if self.kind == "relative":
            text = f"≥{self.threshold:g}% pain reduction at {visit}"
        else:
            text = f"≥{self.threshold:g}-point pain reduction at {visit}"
        if self.deaths == "non_response":
            text += " (death before the visit = non-responder)"
        return text

    @property
    def column(self) -> str:
        """The follow-up pain column, ``pain_<time_point>``."""
        return f"pain_{self.time_point}"

    @property
    def columns(self) -> tuple[str, ...]:
        """The record columns the definition reads."""
        extra = ("died", "death_days") if self.deaths == "non_response" else ()
        return ("pain_baseline", self.column, *extra)

    def _died_before(self, records: pd.DataFrame, eligible: np.ndarray,
                     scored: np.ndarray) -> np.ndarray:
        """Eligible records without a score whose death precedes the visit's nominal day."""
        _, died = _flags(records, "died")
        days = _floats(records, "death_days")
        with np.errstate(invalid="ignore"):
            before = died & (days < PAIN_VISITS[self.time_point][1])
        return eligible & ~scored & before

    def _arrays(self, records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(baseline present, in the denominator, responder) as numpy bools.

        The denominator is the records with a follow-up score, plus with
        ``deaths="non_response"`` the deaths before the visit (as non-responders).
        """
        baseline = _floats(records, "pain_baseline")
        followup = _floats(records, self.column)
        eligible = ~np.isnan(baseline)
        followed = eligible & ~np.isnan(followup)
        with np.errstate(invalid="ignore"):
            reduction = baseline - followup
            if self.kind == "relative":
                needed = self.threshold / 100.0 * baseline
                responder = (baseline > 0) & (reduction >= needed - _TOLERANCE)
            else:
                responder = reduction >= self.threshold - _TOLERANCE
        responder = followed & responder
        if self.deaths == "non_response":
            followed = followed | self._died_before(records, eligible, followed)
        return eligible, followed, responder

    def is_responder(self, records: pd.DataFrame) -> pd.Series:
        """Responder status of each record.

        Parameters
        ----------
        records : pandas.DataFrame
            Records with ``pain_baseline`` and ``pain_<time_point>``.

        Returns
        -------
        pandas.Series
            Nullable ``boolean`` with the index of `records`, named ``"responder"``: True or
            False where both scores are present, ``<NA>`` where either is missing (with
            ``deaths="non_response"``, False for a death before the visit without a score).

        Examples
        --------
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"pain_baseline": [8.0, 8.0, 8.0],
        ...                       "pain_month1": [5.0, 6.0, None]})
        >>> ResponderDefinition().is_responder(frame).tolist()
        [True, False, <NA>]
        """
        _require(records, self.columns)
        _, followed, responder = self._arrays(records)
        values = pd.arrays.BooleanArray(responder, ~followed)
        return pd.Series(values, index=records.index, name="responder")


# --------------------------------------------------------------------------------------------
# Grouping and vectorised statistics (internal)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Groups:
    """Group number of every record and one row of grouping values per group."""

    codes: np.ndarray
    keys: pd.DataFrame

    @property
    def size(self) -> int:
        return len(self.keys)

    def count(self, mask: np.ndarray | None = None) -> np.ndarray:
        codes = self.codes if mask is None else self.codes[mask]
        return np.bincount(codes, minlength=self.size).astype(np.int64)

    def total(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        # Zeros outside the mask instead of compacting both arrays: the same sums (adding 0.0
        # changes nothing and the order of the other terms is kept), one pass fewer.
        return np.bincount(self.codes, weights=np.where(mask, values, 0.0), minlength=self.size)


def _normalise_by(by: By) -> tuple[str, ...]:
    if by is None:
        return ()
    if isinstance(by, str):
        return (by,)
    columns = tuple(by)
    if not all(isinstance(column, str) for column in columns):
        raise TypeError(f"by must be a column name or a sequence of column names; got {by!r}")
    if len(set(columns)) != len(columns):
        raise ValueError(f"by names a column twice: {columns!r}")
    return columns


def _require(records: pd.DataFrame, columns: Sequence[str]) -> None:
    """Raise KeyError naming the columns a non-empty frame lacks."""
    if len(records) == 0:
        return
    missing = [column for column in columns if column not in records.columns]
    if missing:
        raise KeyError(f"records lack the column(s) {', '.join(missing)}")


def _floats(records: pd.DataFrame, column: str) -> np.ndarray:
    """A numeric or boolean column as float64 with NaN for missing values."""
    if column not in records.columns and len(records) == 0:
        return np.empty(0)
    return records[column].to_numpy(dtype=float, na_value=np.nan)


def _flags(records: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(known, true) boolean arrays of a boolean column with missing values."""
    values = _floats(records, column)
    known = ~np.isnan(values)
    return known, known & (values != 0)


def _groups(records: pd.DataFrame, by: tuple[str, ...]) -> _Groups:
    """Number the observed combinations of the `by` columns in sorted order (NaN last)."""
    n = len(records)
    if n == 0:
        keys = pd.DataFrame(
            {name: records[name].iloc[:0] if name in records.columns else pd.Series(dtype=object)
             for name in by}
        )
        return _Groups(np.zeros(0, dtype=np.intp), keys.reset_index(drop=True))
    if not by:
        return _Groups(np.zeros(n, dtype=np.intp), pd.DataFrame(index=pd.RangeIndex(1)))
    _require(records, by)
    return _Groups(*group_codes(records, by))


def _proportions(
    events: np.ndarray, n: np.ndarray, level: float, exact_at_bounds: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rate, Wilson limits (Clopper–Pearson at 0 or n events) and method, per group."""
    events = np.asarray(events, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    size = n.size
    method = np.full(size, WILSON, dtype=object)
    if size == 0:
        empty = np.empty(0)
        return empty, empty, empty, method
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, events / np.maximum(n, 1), np.nan)
    low, high = proportion_ci(events, n, level=level, method="wilson")
    if exact_at_bounds:
        edge = (n > 0) & ((events == 0) | (events == n))
        if edge.any():
            exact_low, exact_high = proportion_ci(events, n, level=level, method="exact")
            low = np.where(edge, exact_low, low)
            high = np.where(edge, exact_high, high)
            method[edge] = EXACT
    method[n == 0] = NOT_ESTIMABLE
    return rate, np.asarray(low, dtype=float), np.asarray(high, dtype=float), method


def _moments(
    groups: _Groups, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count of non-missing values, mean and SD (ddof 1) per group, two-pass."""
    ok = ~np.isnan(values)
    n = groups.count(ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = groups.total(values, ok) / n
        deviation = values - mean[groups.codes]
        squares = groups.total(deviation * deviation, ok)
        sd = np.where(n >= 2, np.sqrt(squares / np.maximum(n - 1, 1)), np.nan)
    return n, mean, sd


def _t_interval(
    mean: np.ndarray, sd: np.ndarray, n: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Student t interval for a mean; NaN when fewer than 2 values."""
    df = np.maximum(n - 1, 1)
    quantile = st.t.ppf(0.5 + level / 2.0, df)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = quantile * sd / np.sqrt(n)
    ok = n >= 2
    return np.where(ok, mean - half, np.nan), np.where(ok, mean + half, np.nan)


def _t_method(n: np.ndarray) -> np.ndarray:
    """``"t interval"``, or why it is not estimable (fewer than 2 values)."""
    method = np.full(n.size, T_INTERVAL, dtype=object)
    method[n == 1] = "not estimable (n = 1)"
    method[n == 0] = NOT_ESTIMABLE
    return method


def _quantiles(groups: _Groups, values: np.ndarray) -> dict[str, np.ndarray]:
    """Quartiles (linear interpolation, as numpy and pandas), minimum and maximum per group."""
    size = groups.size
    out = {name: np.full(size, np.nan) for name in ("q1", "median", "q3", "min", "max")}
    ok = ~np.isnan(values)
    v, codes = values[ok], groups.codes[ok]
    n = np.bincount(codes, minlength=size)
    if v.size == 0:
        return out
    if size <= _QUANTILE_MASK_MAX_GROUPS:
        # Few groups (VP and KP): one boolean selection per group beats sorting the codes.
        for g in np.flatnonzero(n):
            segment = v if size == 1 else v[codes == g]
            q1, median, q3 = np.quantile(segment, QUARTILES)
            out["q1"][g], out["median"][g], out["q3"][g] = q1, median, q3
            out["min"][g], out["max"][g] = segment.min(), segment.max()
        return out
    if size <= _QUANTILE_LOOP_MAX_GROUPS:
        order = np.argsort(codes, kind="stable")
        ends = np.cumsum(n)
        starts = ends - n
        v = v[order]
        for g in np.flatnonzero(n):
            segment = v[starts[g]:ends[g]]
            q1, median, q3 = np.quantile(segment, QUARTILES)
            out["q1"][g], out["median"][g], out["q3"][g] = q1, median, q3
            out["min"][g], out["max"][g] = segment.min(), segment.max()
        return out
    order = np.lexsort((v, codes))
    v = v[order]
    ends = np.cumsum(n)
    starts = ends - n
    has = n > 0
    for name, q in zip(("q1", "median", "q3"), QUARTILES, strict=True):
        position = q * (n[has] - 1)
        below = np.floor(position).astype(np.int64)
        above = np.minimum(below + 1, n[has] - 1)
        fraction = position - below
        lower, upper = v[starts[has] + below], v[starts[has] + above]
        out[name][has] = lower + fraction * (upper - lower)
    out["min"][has] = v[starts[has]]
    out["max"][has] = v[ends[has] - 1]
    return out


def _long(keys: pd.DataFrame, blocks: list[dict[str, Any]]) -> pd.DataFrame:
    """Stack per-group blocks (one per outcome/visit/variable) group-major into a tidy frame.

    Each block maps a column name to an array of one value per group (or a scalar).
    """
    size, k = len(keys), len(blocks)
    index = np.repeat(np.arange(size), k)
    frame = keys.iloc[index].reset_index(drop=True)
    columns: dict[str, np.ndarray] = {}
    for name in blocks[0]:
        parts = []
        for block in blocks:
            value = block[name]
            if np.ndim(value) == 0:
                value = np.full(size, value, dtype=object if isinstance(value, str) else None)
            parts.append(np.asarray(value))
        stacked = np.stack(parts, axis=1).reshape(-1) if size else np.concatenate(parts)
        columns[name] = stacked
    body = pd.DataFrame(columns, index=frame.index)
    return pd.concat([frame, body], axis=1) if len(frame.columns) else body


# --------------------------------------------------------------------------------------------
# Fast paths (issue 6): histograms of scores and status codes, one bincount per column
# --------------------------------------------------------------------------------------------

#: Scores are recorded to one decimal (pain 0–10, ODI 0–100), so a column holds few distinct
#: values and its per-group counts, means, SDs and quartiles follow exactly from one histogram
#: per group (:mod:`analysis._histogram`), instead of per-record sums and a partition of each
#: group's values.
_DISCRETE_SCALES = (10,)
#: Most bins (distinct multiples of 0.1 from the least to the largest value) a histogram may
#: have; a column spread wider takes the general path.
_DISCRETE_MAX_BINS = 4096


def _discrete(values: np.ndarray, groups: _Groups) -> GridCodes | None:
    """`values` as codes of multiples of 0.1, or None (use the general path) unless every
    present value is a multiple of 0.1 that ``k / 10`` gives back exactly (so each statistic
    read from the bins is the recorded value itself), they span at most
    :data:`_DISCRETE_MAX_BINS` bins and the histogram of every group (with a column for the
    missing values) stays small beside the records."""
    cells = max(2 * values.size, 1 << 16)
    max_bins = min(_DISCRETE_MAX_BINS, cells // max(groups.size, 1) - 1)
    return grid_codes(values, _DISCRETE_SCALES, max_bins)


def _status_counts(groups: _Groups, status: np.ndarray, states: int) -> np.ndarray:
    """Records per group (rows) and status (columns 0 … states-1): one bincount."""
    flat = np.bincount(groups.codes * states + status, minlength=groups.size * states)
    return flat.reshape(groups.size, states)


# --------------------------------------------------------------------------------------------
# Responders
# --------------------------------------------------------------------------------------------


def _responder_block(
    records: pd.DataFrame, groups: _Groups, responder: ResponderDefinition, level: float
) -> dict[str, Any]:
    _require(records, responder.columns)
    eligible, followed, is_responder = responder._arrays(records)
    return _responder_counts_block(groups.count(eligible), groups.count(followed),
                                   groups.count(is_responder), level)


def _responder_counts_block(n_eligible: np.ndarray, n_followed: np.ndarray,
                            responders: np.ndarray, level: float) -> dict[str, Any]:
    """The columns of :func:`responder_rates` (without ``definition``) from the counts."""
    rate, low, high, method = _proportions(responders, n_followed, level)
    return {
        "n_eligible": n_eligible,
        "n_followed": n_followed,
        "n_missing": n_eligible - n_followed,
        "responders": responders,
        "rate": rate,
        "low": low,
        "high": high,
        "method": method,
    }


def _responder_rates_block(
    records: pd.DataFrame, groups: _Groups, responder: ResponderDefinition, level: float
) -> dict[str, Any]:
    """:func:`_responder_block` from one bincount: eligible ⊇ followed ⊇ responder, so their
    sum (0 … 3) is one status per record and the three counts are tail sums of its table."""
    _require(records, responder.columns)
    eligible, followed, is_responder = responder._arrays(records)
    status = eligible.view(np.uint8) + followed.view(np.uint8) + is_responder.view(np.uint8)
    table = _status_counts(groups, status, 4)
    block = _responder_counts_block(table[:, 1:].sum(axis=1), table[:, 2:].sum(axis=1),
                                    table[:, 3].copy(), level)
    if responder.deaths == "non_response":
        baseline = _floats(records, "pain_baseline")
        scored = ~np.isnan(_floats(records, responder.column))
        died = responder._died_before(records, ~np.isnan(baseline), scored)
        block = {**dict(list(block.items())[:3]), "n_died_before_visit": groups.count(died),
                 **dict(list(block.items())[3:])}
    return block


def responder_rates(
    records: pd.DataFrame,
    responder: ResponderDefinition | None = None,
    by: By = ("procedure",),
    level: float = 0.95,
) -> pd.DataFrame:
    """Share of pain responders per group, with missing follow-up counted separately.

    Parameters
    ----------
    records : pandas.DataFrame
        Procedure records (``pain_baseline``, ``pain_<time_point>`` and the `by` columns).
    responder : ResponderDefinition, optional
        Default ``ResponderDefinition()``: ≥30% reduction from baseline at month 1.
    by : str or sequence of str, default ("procedure",)
        Grouping columns; ``()`` for one overall row.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        Columns ``<by>…, n_eligible, n_followed, n_missing, responders, rate, low, high,
        method, definition``:

        * ``n_eligible``: records with a baseline score;
        * ``n_followed``: of those, records with a score at the time point;
        * ``n_missing``: ``n_eligible - n_followed`` (no score at the visit: lost, not yet
          due or not recorded); they are neither responders nor non-responders;
        * only with ``deaths="non_response"``: ``n_died_before_visit``, the deaths before
          the visit without a score, counted in ``n_followed`` as non-responders;
        * ``rate = responders / n_followed`` with its Wilson interval (Clopper–Pearson at 0
          or n responders), named in ``method``;
        * ``definition``: the responder definition's label.

    Notes
    -----
    By default this is a complete-case analysis: the rate is unbiased only if the missing
    scores are missing completely at random. Show ``n_missing`` next to the rate. Deaths
    before the visit are informative, not random: ``deaths="non_response"`` gives the
    composite rate (alive and responding), to be read beside the complete-case one.

    Examples
    --------
    >>> import pandas as pd
    >>> records = pd.DataFrame({
    ...     "procedure": ["kyphoplasty"] * 4 + ["vertebroplasty"] * 2,
    ...     "pain_baseline": [8.0, 8.0, 8.0, 8.0, 7.0, 7.0],
    ...     "pain_month1": [2.0, 7.0, None, 4.0, 3.0, 6.0]})
    >>> table = responder_rates(records)
    >>> table[["procedure", "n_eligible", "n_followed", "n_missing", "responders"]]
            procedure  n_eligible  n_followed  n_missing  responders
    0     kyphoplasty           4           3          1           2
    1  vertebroplasty           2           2          0           1
    """
    responder = ResponderDefinition() if responder is None else responder
    if not isinstance(responder, ResponderDefinition):
        raise TypeError("responder must be a ResponderDefinition")
    by = _normalise_by(by)
    level = check_level(level)
    groups = _groups(records, by)
    block = _responder_rates_block(records, groups, responder, level)
    block["definition"] = responder.label
    return _long(groups.keys, [block])


# --------------------------------------------------------------------------------------------
# Pain over time, ODI, opioids
# --------------------------------------------------------------------------------------------


def _describe_block(groups: _Groups, values: np.ndarray, level: float) -> dict[str, Any]:
    n, mean, sd = _moments(groups, values)
    low, high = _t_interval(mean, sd, n, level)
    quantiles = _quantiles(groups, values)
    return {"n": n, "mean": mean, "sd": sd, "low": low, "high": high, **quantiles}


def pain_trajectory(
    records: pd.DataFrame, by: By = ("procedure",), level: float = 0.95
) -> pd.DataFrame:
    """Pain score at baseline and at each follow-up visit, per group.

    Parameters
    ----------
    records : pandas.DataFrame
        Records with ``pain_baseline`` and ``pain_day1`` … ``pain_month12``.
    by : str or sequence of str, default ("procedure",)
        Grouping columns.
    level : float, default 0.95
        Level of the t interval of the mean.

    Returns
    -------
    pandas.DataFrame
        Per group, one row per visit in order (baseline, day1, week1, month1, month3,
        month6, month12): ``<by>…, visit, nominal_day, n, mean, sd, low, high, median, q1,
        q3``. ``n`` counts the records still followed with a score at that visit, so the
        visits describe shrinking (and possibly selected) samples; ``low``/``high`` is the t
        interval of the mean; quartiles use linear interpolation (numpy/pandas default).

    Notes
    -----
    A descriptive summary of the observed scores. For inference across visits use a linear
    mixed model (statistical-methods reference §1.6), which uses every available score under
    a missing-at-random assumption.

    Examples
    --------
    >>> import pandas as pd
    >>> records = pd.DataFrame({"procedure": ["kyphoplasty"] * 3,
    ...                         "pain_baseline": [8.0, 7.0, 9.0], "pain_day1": [4.0, 3.0, None],
    ...                         "pain_week1": None, "pain_month1": None, "pain_month3": None,
    ...                         "pain_month6": None, "pain_month12": None})
    >>> pain_trajectory(records)[["visit", "nominal_day", "n", "mean"]].head(2)
          visit  nominal_day  n  mean
    0  baseline            0  3   8.0
    1      day1            1  2   3.5
    """
    by = _normalise_by(by)
    level = check_level(level)
    visits = [("baseline", 0, "pain_baseline")] + [
        (suffix, nominal, f"pain_{suffix}") for suffix, (_, nominal, _) in PAIN_VISITS.items()
    ]
    _require(records, [column for _, _, column in visits])
    groups = _groups(records, by)
    blocks = []
    for visit, nominal_day, column in visits:
        values = _floats(records, column)
        discrete = _discrete(values, groups)
        if discrete is None:
            stats = _describe_block(groups, values, level)
        else:  # scores to one decimal: one histogram per visit, no per-group partition
            stats = histogram_stats(discrete.histogram(groups.codes, groups.size),
                                    discrete.points)
            stats["low"], stats["high"] = _t_interval(stats["mean"], stats["sd"], stats["n"],
                                                      level)
        blocks.append({
            "visit": visit,
            "nominal_day": np.full(groups.size, nominal_day, dtype=np.int64),
            **{name: stats[name] for name in
               ("n", "mean", "sd", "low", "high", "median", "q1", "q3")},
        })
    return _long(groups.keys, blocks)


def _paired_change(baseline: GridCodes, followup: GridCodes, paired: np.ndarray) -> GridCodes:
    """Follow-up minus baseline of the `paired` records as codes on the grid both share (the
    rest missing)."""
    offset = baseline.size - 1  # the largest baseline value gives the smallest change
    size = followup.size + offset
    codes = blend(followup.codes - baseline.codes + offset, paired, size)
    return GridCodes(codes, followup.low - (baseline.low + offset), size, followup.scale)


def odi_change(
    records: pd.DataFrame, by: By = ("procedure",), level: float = 0.95
) -> pd.DataFrame:
    """Change of the Oswestry Disability Index from baseline to months 1 and 12, per group.

    Parameters
    ----------
    records : pandas.DataFrame
        Records with ``odi_baseline``, ``odi_month1`` and ``odi_month12`` (0–100).
    by : str or sequence of str, default ("procedure",)
        Grouping columns.
    level : float, default 0.95
        Level of the paired t interval.

    Returns
    -------
    pandas.DataFrame
        Per group, rows for ``time_point`` ``"month1"`` and ``"month12"``: ``<by>…,
        time_point, n, mean_baseline, mean_followup, mean_change, sd_change, low, high,
        method``. ``n`` counts the records with both the baseline and the follow-up ODI
        (paired); both means are over those records; ``mean_change`` is follow-up minus
        baseline (negative = less disability) with its paired t interval.

    Examples
    --------
    >>> import pandas as pd
    >>> records = pd.DataFrame({"procedure": ["vertebroplasty"] * 3,
    ...                         "odi_baseline": [60.0, 70.0, None],
    ...                         "odi_month1": [30.0, 40.0, 20.0], "odi_month12": None})
    >>> odi_change(records)[["time_point", "n", "mean_baseline", "mean_change"]]
      time_point  n  mean_baseline  mean_change
    0     month1  2           65.0        -30.0
    1    month12  0            NaN          NaN
    """
    by = _normalise_by(by)
    level = check_level(level)
    _require(records, ["odi_baseline", *(f"odi_{tp}" for tp in ODI_TIME_POINTS)])
    groups = _groups(records, by)
    baseline = _floats(records, "odi_baseline")
    baseline_bins = _discrete(baseline, groups)
    blocks = []
    for time_point in ODI_TIME_POINTS:
        followup = _floats(records, f"odi_{time_point}")
        paired = ~np.isnan(baseline) & ~np.isnan(followup)
        followup_bins = None if baseline_bins is None else _discrete(followup, groups)
        change = None if followup_bins is None else _paired_change(baseline_bins,
                                                                   followup_bins, paired)
        if change is not None and groups.size * change.size <= max(2 * paired.size, 1 << 16):
            # Scores to one decimal: three histograms instead of per-record sums.
            stats = histogram_stats(change.histogram(groups.codes, groups.size), change.points)
            n, mean_change, sd_change = stats["n"], stats["mean"], stats["sd"]
            with np.errstate(invalid="ignore", divide="ignore"):
                mean_baseline = (baseline_bins.histogram(groups.codes, groups.size, paired)
                                 @ baseline_bins.points / n)
                mean_followup = (followup_bins.histogram(groups.codes, groups.size, paired)
                                 @ followup_bins.points / n)
        else:
            change = np.where(paired, followup - baseline, np.nan)
            n, mean_change, sd_change = _moments(groups, change)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean_baseline = groups.total(baseline, paired) / n
                mean_followup = groups.total(followup, paired) / n
        low, high = _t_interval(mean_change, sd_change, n, level)
        blocks.append({
            "time_point": time_point,
            "n": n,
            "mean_baseline": mean_baseline,
            "mean_followup": mean_followup,
            "mean_change": mean_change,
            "sd_change": sd_change,
            "low": low,
            "high": high,
            "method": "paired t interval",
        })
    return _long(groups.keys, blocks)


def opioid_use(
    records: pd.DataFrame, by: By = ("procedure",), level: float = 0.95
) -> pd.DataFrame:
    """Opioid use before the procedure and at 1 month in the same patients, per group.

    Parameters
    ----------
    records : pandas.DataFrame
        Records with the booleans ``opioid_baseline`` and ``opioid_month1``.
    by : str or sequence of str, default ("procedure",)
        Grouping columns.
    level : float, default 0.95
        Level of the Wilson intervals.

    Returns
    -------
    pandas.DataFrame
        ``<by>…, n_paired, on_before, on_after, rate_before, low_before, high_before,
        rate_after, low_after, high_after, change, stopped, started, p_mcnemar, method``.
        Only records with both values known (``n_paired``) are used, so the two rates
        describe the same patients; ``change = rate_after - rate_before``; ``stopped`` /
        ``started`` are the discordant pairs (on → off, off → on); ``p_mcnemar`` is the
        exact McNemar test of equal marginal proportions
        (``statsmodels.stats.contingency_tables.mcnemar(exact=True)``: two-sided binomial
        test of ``stopped`` against ``stopped + started`` with p = 1/2; 1.0 when there are
        no discordant pairs; NaN when ``n_paired`` is 0). Intervals: Wilson (also at 0 or n
        events, so that both rates of a row use one method).

    Examples
    --------
    >>> import pandas as pd
    >>> records = pd.DataFrame({
    ...     "procedure": ["kyphoplasty"] * 6,
    ...     "opioid_baseline": pd.array([True, True, True, True, False, None], dtype="boolean"),
    ...     "opioid_month1": pd.array([False, False, False, True, False, True],
    ...                               dtype="boolean")})
    >>> opioid_use(records)[["n_paired", "on_before", "on_after", "stopped", "started"]]
       n_paired  on_before  on_after  stopped  started
    0         5          4         1        3        0
    """
    by = _normalise_by(by)
    level = check_level(level)
    _require(records, ("opioid_baseline", "opioid_month1"))
    groups = _groups(records, by)
    before_known, before = _flags(records, "opioid_baseline")
    after_known, after = _flags(records, "opioid_month1")
    # One status per record, 3 × before (off, on, unknown) + after: one bincount for all
    # the counts, the paired ones in the top-left 2 × 2 block of each group's 3 × 3 table.
    status = (3 * np.where(before_known, before.view(np.uint8), np.uint8(2))
              + np.where(after_known, after.view(np.uint8), np.uint8(2)))
    table = _status_counts(groups, status, 9).reshape(groups.size, 3, 3)[:, :2, :2]
    n = table.sum(axis=(1, 2))
    on_before = table[:, 1, :].sum(axis=1)
    on_after = table[:, :, 1].sum(axis=1)
    stopped = table[:, 1, 0].copy()
    started = table[:, 0, 1].copy()
    rate_before, low_before, high_before, _ = _proportions(on_before, n, level, False)
    rate_after, low_after, high_after, _ = _proportions(on_after, n, level, False)
    p_value = np.full(groups.size, np.nan)
    for g in np.flatnonzero(n > 0):
        table = np.array([[0, stopped[g]], [started[g], 0]])
        p_value[g] = float(mcnemar(table, exact=True).pvalue)
    block = {
        "n_paired": n,
        "on_before": on_before,
        "on_after": on_after,
        "rate_before": rate_before,
        "low_before": low_before,
        "high_before": high_before,
        "rate_after": rate_after,
        "low_after": low_after,
        "high_after": high_after,
        "change": rate_after - rate_before,
        "stopped": stopped,
        "started": started,
        "p_mcnemar": p_value,
        "method": np.where(n > 0, "Wilson; McNemar exact", NOT_ESTIMABLE).astype(object),
    }
    return _long(groups.keys, [block])


# --------------------------------------------------------------------------------------------
# Complications
# --------------------------------------------------------------------------------------------


def _complication_status(
    records: pd.DataFrame, outcome: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(event, non-event, censored) per record; the rest have an unknown status.

    For the horizon outcomes (``adjacent_fracture_12m``, ``death_30d``) this is the status
    *at the horizon*, which is unknown for a record censored before it: only a per-record
    classification (e.g. for listing records), **never an estimate** — a share of the
    classified records keeps every early event and drops the censored ones, so it is biased
    upwards. Their rates are cumulative incidences (:mod:`analysis.horizon`).
    """
    size = len(records)
    no = np.zeros(size, dtype=bool)
    if outcome in ("cement_leakage", "pulmonary_embolism", "infection",
                   "new_neurologic_deficit"):
        known, event = _flags(records, outcome)
        return event, known & ~event, no
    if outcome in ("leakage_symptomatic", "embolism_symptomatic"):
        parent = "cement_leakage" if outcome == "leakage_symptomatic" else "pulmonary_embolism"
        known, event = _flags(records, outcome)
        parent_known, parent_event = _flags(records, parent)
        # Without leakage (embolism) there is no symptomatic leakage (embolism): known false.
        implied_false = ~known & parent_known & ~parent_event
        return event, (known & ~event) | implied_false, no
    if outcome == "adjacent_fracture_12m":
        known, fracture = _flags(records, "adjacent_fracture")
        days = _floats(records, "adjacent_fracture_days")
        followup = _floats(records, "followup_days")
        horizon = FRACTURE_HORIZON_DAYS
        with np.errstate(invalid="ignore"):
            event = fracture & (days <= horizon)
            non_event = (known & ~fracture & (followup >= horizon)) | (fracture & (days > horizon))
            censored = known & ~fracture & (followup < horizon)
        return event, non_event, censored
    if outcome == "death_30d":
        _, died = _flags(records, "died")
        days = _floats(records, "death_days")
        followup = _floats(records, "followup_days")
        horizon = DEATH_HORIZON_DAYS
        with np.errstate(invalid="ignore"):
            event = died & (days <= horizon)
            non_event = ~event & ((followup >= horizon) | (days > horizon))
            censored = ~event & ~non_event & ~died & (followup < horizon)
        return event, non_event, censored
    raise ValueError(
        f"unknown outcome {outcome!r}; choose from {', '.join(COMPLICATION_OUTCOMES)}"
    )


_COMPLICATION_COLUMNS: dict[str, tuple[str, ...]] = {
    "cement_leakage": ("cement_leakage",),
    "leakage_symptomatic": ("leakage_symptomatic", "cement_leakage"),
    "pulmonary_embolism": ("pulmonary_embolism",),
    "embolism_symptomatic": ("embolism_symptomatic", "pulmonary_embolism"),
    "adjacent_fracture_12m": ("adjacent_fracture", "adjacent_fracture_days", "followup_days"),
    "infection": ("infection",),
    "new_neurologic_deficit": ("new_neurologic_deficit",),
    "death_30d": ("died", "death_days", "followup_days"),
}


def _check_outcomes(outcomes: Sequence[str] | None) -> tuple[str, ...]:
    if outcomes is None:
        return tuple(COMPLICATION_OUTCOMES)
    chosen = (outcomes,) if isinstance(outcomes, str) else tuple(outcomes)
    unknown = [name for name in chosen if name not in COMPLICATION_OUTCOMES]
    if unknown:
        raise ValueError(
            f"unknown outcome(s) {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(COMPLICATION_OUTCOMES)}"
        )
    return chosen


def _complication_blocks(
    records: pd.DataFrame, groups: _Groups, outcomes: tuple[str, ...], level: float
) -> list[dict[str, Any]]:
    _require(records, sorted({c for o in outcomes for c in _COMPLICATION_COLUMNS[o]}))
    total = groups.count()
    blocks = []
    for outcome in outcomes:
        if outcome in HORIZON_OUTCOMES:
            blocks.append(_horizon_block(records, groups, outcome, level))
            continue
        event, non_event, censored = _complication_status(records, outcome)
        n = groups.count(event | non_event)
        n_censored = groups.count(censored)
        blocks.append(_complication_counts_block(outcome, groups.count(event), n,
                                                 total - n - n_censored, n_censored, level))
    return blocks


def _complication_counts_block(outcome: str, events: np.ndarray, n: np.ndarray,
                               n_missing: np.ndarray, n_censored: np.ndarray,
                               level: float) -> dict[str, Any]:
    """The columns of :func:`complication_rates` for one outcome (a proportion) from its
    counts."""
    rate, low, high, method = _proportions(events, n, level)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(rate * (1.0 - rate) / n)
    return {
        "outcome": outcome,
        "n": n,
        "events": events,
        "rate": rate,
        "low": low,
        "high": high,
        "method": method,
        "n_missing": n_missing,
        "n_censored": n_censored,
        "se": se,
        "at_risk": np.full(n.size, np.nan),
        "estimand": PROPORTION_ESTIMAND,
    }


def _horizon_block(records: pd.DataFrame, groups: _Groups, outcome: str,
                   level: float) -> dict[str, Any]:
    """The columns of :func:`complication_rates` for an outcome "by day N": the cumulative
    incidence at the horizon per group (:func:`analysis.horizon.horizon_groups`, one
    vectorised table of group × day), its log(−log) interval and the number at risk."""
    spec = HORIZON_OUTCOMES[outcome]
    time, code = horizon_time_event(records, outcome)
    out = horizon_groups(time, code, spec.horizon_days, groups.codes, groups.size, level)
    competing = "died" in records.columns and bool(records["died"].notna().any())
    n = out["n"].astype(np.int64)
    method = np.full(groups.size, spec.method(competing), dtype=object)
    method[n == 0] = NOT_ESTIMABLE
    return {
        "outcome": outcome,
        "n": n,
        "events": out["events"].astype(np.int64),
        "rate": out["estimate"],
        "low": out["low"],
        "high": out["high"],
        "method": method,
        "n_missing": groups.count() - n,
        "n_censored": out["censored"].astype(np.int64),
        "se": out["se"],
        "at_risk": out["at_risk"],
        "estimand": spec.estimand(competing),
    }


def _complication_rate_blocks(
    records: pd.DataFrame, groups: _Groups, outcomes: tuple[str, ...], level: float
) -> list[dict[str, Any]]:
    """:func:`_complication_blocks` from status counts: event, non-event and censored are
    disjoint, so ``3 - 3 event - 2 non-event - censored`` is one status per record (0 event,
    1 non-event, 2 censored, 3 unknown), and the statuses of all outcomes together are one
    base-4 number, counted with a single bincount (one per outcome when that table would be
    large beside the records)."""
    _require(records, sorted({c for o in outcomes for c in _COMPLICATION_COLUMNS[o]}))
    requested = outcomes
    outcomes = tuple(o for o in requested if o not in HORIZON_OUTCOMES)
    horizon = {o: _horizon_block(records, groups, o, level)
               for o in requested if o in HORIZON_OUTCOMES}
    if not outcomes:
        return [horizon[o] for o in requested]
    statuses = []
    for outcome in outcomes:
        event, non_event, censored = _complication_status(records, outcome)
        statuses.append(3 - (3 * event.view(np.uint8) + 2 * non_event.view(np.uint8)
                             + censored.view(np.uint8)))
    k = len(outcomes)
    tables = []
    if groups.size * 4**k <= max(2 * len(records), 1 << 20):
        combined = np.zeros(len(records), dtype=np.int32)
        for i, status in enumerate(statuses):
            combined += status.astype(np.int32) * 4**i
        joint = _status_counts(groups, combined, 4**k).reshape((groups.size,) + (4,) * k)
        for i in range(k):
            axis = k - i  # outcome i is digit i: the (i+1)-th axis from the right
            tables.append(joint.sum(axis=tuple(a for a in range(1, k + 1) if a != axis)))
    else:
        tables = [_status_counts(groups, status, 4) for status in statuses]
    blocks = []
    for outcome, table in zip(outcomes, tables, strict=True):
        events = table[:, 0].copy()
        blocks.append(_complication_counts_block(outcome, events, events + table[:, 1],
                                                 table[:, 3].copy(), table[:, 2].copy(), level))
    by_name = {block["outcome"]: block for block in blocks} | horizon
    return [by_name[o] for o in requested]


def complication_rates(
    records: pd.DataFrame,
    by: By = ("procedure",),
    level: float = 0.95,
    outcomes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Complication rates per patient (procedure record), per group: proportions, and
    cumulative incidences at the horizon for the outcomes "by day N".

    Parameters
    ----------
    records : pandas.DataFrame
        Procedure records.
    by : str or sequence of str, default ("procedure",)
        Grouping columns.
    level : float, default 0.95
        Confidence level.
    outcomes : sequence of str, optional
        A subset of :data:`COMPLICATION_OUTCOMES` (default: all, in that order).

    Returns
    -------
    pandas.DataFrame
        Per group, one row per outcome: ``<by>…, outcome, n, events, rate, low, high,
        method, n_missing, n_censored, se, at_risk, estimand``.

        *Proportions* (every outcome but the two below): ``n`` is the denominator (records
        whose status is known), ``rate = events / n`` with a Wilson interval,
        Clopper–Pearson when the events are 0 or n (``method``), ``se`` the binomial SE,
        ``n_censored`` 0, ``at_risk`` NaN; ``n + n_missing`` is the number of records.

        *Cumulative incidences* (``adjacent_fracture_12m``, ``death_30d``): ``rate`` is the
        cumulative incidence at the horizon (:mod:`analysis.horizon`), ``se`` its
        delta-method SE, ``low``/``high`` the log(−log) interval; ``n`` the records with a
        known time (all of them enter the estimate, censored ones for as long as they were
        followed), ``events`` the events observed up to the horizon, ``n_censored`` those
        censored before the horizon without an event, ``at_risk`` the number still followed
        without an event at the horizon; ``n + n_missing`` is the number of records.

        ``estimand`` says what ``rate`` estimates, e.g. ``"cumulative incidence of new
        vertebral fracture at 365 days (Aalen–Johansen, death competing)"``.

    Notes
    -----
    Definitions (denominators are records, i.e. per patient-procedure, not per level):

    * ``cement_leakage``, ``pulmonary_embolism``, ``infection``, ``new_neurologic_deficit``:
      the boolean field; ``n`` = records with the field recorded.
    * ``leakage_symptomatic`` (``embolism_symptomatic``): symptomatic leakage (embolism)
      among **all** records, not among those with leakage. ``n`` = records whose status is
      known: the field is recorded, or the record has no leakage (embolism), which implies
      no symptomatic leakage (embolism). A leakage with unknown symptom status is **not**
      counted as asymptomatic: it is in ``n_missing``.
    * ``adjacent_fracture_12m``: cumulative incidence of a new vertebral fracture at 365
      days, Aalen–Johansen with death as a competing risk (1 − Kaplan–Meier when the
      records have no ``died`` column). A fracture counts at ``adjacent_fracture_days``; a
      death without a preceding fracture on or before the last contact competes at
      ``death_days``; everyone else — including a patient who died **after** the last
      contact, since fractures are only ascertained up to ``followup_days`` — is censored at
      ``followup_days``. A fracture without its day, or no follow-up time, is in
      ``n_missing``. (The share of patients "followed a year or with a fracture" used before
      dropped the censored patients and kept every early fracture: biased upwards, 31.9% /
      28.5% instead of about 20% / 18% on the demo data.)
    * ``death_30d``: cumulative incidence of death at 30 days, 1 − Kaplan–Meier (Greenwood
      SE): a death at ``death_days``, censored at ``followup_days`` otherwise; a death without
      its day is in ``n_missing``.

    Examples
    --------
    >>> import pandas as pd
    >>> records = pd.DataFrame({
    ...     "procedure": ["kyphoplasty"] * 4,
    ...     "cement_leakage": pd.array([True, False, False, False], dtype="boolean")})
    >>> complication_rates(records, outcomes=["cement_leakage"])[["n", "events", "rate"]]
       n  events  rate
    0  4       1  0.25
    """
    by = _normalise_by(by)
    level = check_level(level)
    chosen = _check_outcomes(outcomes)
    groups = _groups(records, by)
    return _long(groups.keys, _complication_rate_blocks(records, groups, chosen, level))


# --------------------------------------------------------------------------------------------
# Resources
# --------------------------------------------------------------------------------------------


# Values on a grid of step 1/scale (whole minutes, 0.1 mL, whole days) are summarised from a
# histogram per group: one counting pass instead of a selection and partition per group.
_GRID_SCALES = (1, 10, 100, 1000)
#: Largest histogram (groups x grid points) of the grid path; wider data takes the general path.
_GRID_MAX_BINS = 4_000_000


def _grid_block(groups: _Groups, values: np.ndarray, fences: float | None) -> dict | None:
    """Per-group n, mean, SD, quartiles, min, max (and whisker ends) from a histogram, or None
    unless the values lie on a grid of :data:`_GRID_SCALES` small enough beside the data.

    Exact for the order statistics (quartiles interpolated as :func:`numpy.quantile`) and the
    mean (summed in record order, as :func:`_moments` does: the same number to the last bit);
    the SD is a sum over the histogram (equal to the direct sum up to rounding).
    """
    ok = ~np.isnan(values)
    present = values[ok]
    # A histogram much larger than the data would cost more than partitioning the values.
    max_cells = min(_GRID_MAX_BINS, max(8 * present.size, 1 << 16))
    coded = grid_codes(present, _GRID_SCALES, max_cells // max(groups.size, 1))
    if coded is None:
        return None
    counts = coded.histogram(groups.codes[ok], groups.size)
    return histogram_stats(counts, coded.points, totals=groups.total(values, ok),
                           count_first=True, fences=fences)


def _fence_values(groups: _Groups, values: np.ndarray, q1: np.ndarray, q3: np.ndarray,
                  whisker: float) -> dict[str, np.ndarray]:
    """Smallest / largest value of each group within ``whisker`` IQR of its quartiles."""
    lows, highs = fence_limits(q1, q3, whisker)
    ok = ~np.isnan(values)
    v, codes = values[ok], groups.codes[ok]
    out = {}
    for name, keep, reduce, start in (("lowerfence", v >= lows[codes], np.minimum, np.inf),
                                      ("upperfence", v <= highs[codes], np.maximum, -np.inf)):
        ends = np.full(groups.size, start)
        reduce.at(ends, codes[keep], v[keep])
        found = np.bincount(codes[keep], minlength=groups.size) > 0
        out[name] = np.where(found, ends, np.nan)
    return out


def resource_summary(
    records: pd.DataFrame,
    by: By = ("procedure",),
    variables: Sequence[str] = tuple(RESOURCE_VARIABLES),
    *,
    fences: float | None = None,
) -> pd.DataFrame:
    """Descriptive statistics of resource-use variables, per group.

    Parameters
    ----------
    records : pandas.DataFrame
        Procedure records.
    by : str or sequence of str, default ("procedure",)
        Grouping columns.
    variables : sequence of str, default ("duration_min", "cement_volume_ml", "length_of_stay_days")
        Numeric columns to describe. ``cost`` is in each record's own currency: describe it
        with ``by`` including ``"currency"``.
    fences : float, optional
        Whisker length in IQRs (Tukey: 1.5). When given, two more columns: ``lowerfence`` /
        ``upperfence``, the smallest / largest value within ``fences`` IQR below the first /
        above the third quartile, the ends of box-plot whiskers.

    Returns
    -------
    pandas.DataFrame
        Per group, one row per variable: ``<by>…, variable, n, missing, mean, sd, median,
        q1, q3, min, max`` (sample SD; quartiles by linear interpolation, the numpy/pandas
        default; NaN statistics where ``n`` is 0, NaN SD where ``n`` is 1), then
        ``lowerfence, upperfence`` if asked for.

    Notes
    -----
    Values on a grid of step 1, 0.1, 0.01 or 0.001 (whole minutes, 0.1 mL, whole days) are
    counted into one histogram per group, from which the quartiles, minimum and maximum are
    read exactly (the same numbers as :func:`numpy.quantile`) and the SD is computed (equal
    to the direct sum up to floating-point rounding); this takes a few passes over the values
    however many groups there are. Other values are selected and partitioned group by group.

    Examples
    --------
    >>> import pandas as pd
    >>> records = pd.DataFrame({"procedure": ["kyphoplasty"] * 4,
    ...                         "duration_min": [30.0, 40.0, 50.0, None]})
    >>> resource_summary(records, variables=["duration_min"])[["n", "missing", "mean", "median"]]
       n  missing  mean  median
    0  3        1  40.0    40.0
    >>> boxes = resource_summary(records, variables=["duration_min"], fences=1.5)
    >>> boxes[["q1", "q3", "lowerfence", "upperfence"]].values.tolist()
    [[35.0, 45.0, 30.0, 50.0]]
    """
    by = _normalise_by(by)
    chosen = (variables,) if isinstance(variables, str) else tuple(variables)
    if not chosen:
        raise ValueError("variables must name at least one column")
    _require(records, chosen)
    groups = _groups(records, by)
    total = groups.count()
    blocks = []
    whisker = None if fences is None else float(fences)
    for variable in chosen:
        values = _floats(records, variable)
        stats = _grid_block(groups, values, whisker)
        if stats is None:
            n, mean, sd = _moments(groups, values)
            stats = {"n": n, "mean": mean, "sd": sd, **_quantiles(groups, values)}
            if whisker is not None:
                stats.update(_fence_values(groups, values, stats["q1"], stats["q3"], whisker))
        names = ("median", "q1", "q3", "min", "max")
        names += ("lowerfence", "upperfence") if whisker is not None else ()
        blocks.append({
            "variable": variable,
            "n": stats["n"],
            "missing": total - stats["n"],
            "mean": stats["mean"],
            "sd": stats["sd"],
            **{name: stats[name] for name in names},
        })
    return _long(groups.keys, blocks)


def _setting_states(setting: pd.Series) -> np.ndarray:
    """0 missing, 1 outpatient, 2 inpatient, 3 any other recorded value, per record."""
    if isinstance(setting.dtype, pd.CategoricalDtype):
        labels = setting.cat.categories
        table = np.array([0] + [1 if c == "outpatient" else 2 if c == "inpatient" else 3
                                for c in labels], dtype=np.int64)
        return table[setting.cat.codes.to_numpy().astype(np.int64) + 1]
    known = setting.notna().to_numpy()
    outpatient = (setting == "outpatient").to_numpy(dtype=bool, na_value=False) & known
    inpatient = (setting == "inpatient").to_numpy(dtype=bool, na_value=False) & known
    return np.where(outpatient, 1, np.where(inpatient, 2, np.where(known, 3, 0)))


def setting_mix(
    records: pd.DataFrame, by: By = ("procedure",), level: float = 0.95
) -> pd.DataFrame:
    """Outpatient and inpatient counts and the outpatient share, per group.

    Parameters
    ----------
    records : pandas.DataFrame
        Records with ``setting`` (``"outpatient"`` includes 23-hour stays, or
        ``"inpatient"``).
    by : str or sequence of str, default ("procedure",)
        Grouping columns.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        ``<by>…, n, outpatient, inpatient, missing, share_outpatient, low, high, method``:
        ``n`` records with a known setting, ``share_outpatient = outpatient / n`` with a
        Wilson interval (Clopper–Pearson at 0 or n).

    Examples
    --------
    >>> import pandas as pd
    >>> records = pd.DataFrame({"procedure": ["kyphoplasty"] * 3,
    ...                         "setting": ["outpatient", "inpatient", None]})
    >>> setting_mix(records)[["n", "outpatient", "inpatient", "missing", "share_outpatient"]]
       n  outpatient  inpatient  missing  share_outpatient
    0  2           1          1        1               0.5
    """
    by = _normalise_by(by)
    level = check_level(level)
    _require(records, ("setting",))
    groups = _groups(records, by)
    # One state per record (0 missing, 1 outpatient, 2 inpatient, 3 another value) and one
    # count of group x state, instead of one pass per count.
    state = _setting_states(records["setting"]) if len(records) else np.zeros(0, np.int64)
    counts = np.bincount(groups.codes * 4 + state, minlength=4 * groups.size)
    counts = counts.reshape(groups.size, 4).astype(np.int64)
    n = counts[:, 1:].sum(axis=1)
    n_out = counts[:, 1]
    share, low, high, method = _proportions(n_out, n, level)
    block = {
        "n": n,
        "outpatient": n_out,
        "inpatient": counts[:, 2],
        "missing": counts[:, 0],
        "share_outpatient": share,
        "low": low,
        "high": high,
        "method": method,
    }
    return _long(groups.keys, [block])


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------


def outcome_summary(
    records: pd.DataFrame,
    by: By = ("procedure",),
    responder: ResponderDefinition | None = None,
    level: float = 0.95,
    outcomes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One tidy table of the key outcomes per group: responders, complications, resources.

    Parameters
    ----------
    records : pandas.DataFrame
        Procedure records.
    by : str or sequence of str, default ("procedure",)
        Grouping columns.
    responder : ResponderDefinition, optional
        Default ``ResponderDefinition()`` (≥30% pain reduction at month 1).
    level : float, default 0.95
        Confidence level.
    outcomes : sequence of str, optional
        Only these outcomes (names as in the ``outcome`` column), in the usual row order;
        default all. The others are not computed (a page showing a few saves the rest).

    Returns
    -------
    pandas.DataFrame
        Per group, one row per outcome: ``<by>…, outcome, n, events, estimate, low, high,
        method, label, unit, se, at_risk``. Rows, in order:

        * ``responder``: ``n`` = records followed at the time point with a baseline,
          ``events`` = responders, ``estimate`` = rate (see :func:`responder_rates`);
        * every complication of :data:`COMPLICATION_OUTCOMES` (see
          :func:`complication_rates`, whose ``n_missing``/``n_censored`` are not repeated):
          a proportion, or for ``adjacent_fracture_12m`` and ``death_30d`` the cumulative
          incidence at the horizon with ``unit`` ``"cumulative incidence"``, its ``se`` and
          the number ``at_risk`` at the horizon (NaN on the other rows);
        * ``duration_min``, ``cement_volume_ml``, ``length_of_stay_days``: ``n`` non-missing
          values, ``events`` NaN, ``estimate`` = mean with its t interval.

        ``method`` is ``"Wilson"``, ``"Clopper-Pearson (0 or n events)"``, ``"t interval"`` or
        ``"not estimable (n = 0)"``; ``label`` is a display name and ``unit`` is
        ``"proportion"``, ``"minutes"``, ``"mL"`` or ``"days"``.

    Examples
    --------
    >>> from data import demo_records
    >>> summary = outcome_summary(demo_records(2000, seed=1))
    >>> summary.outcome.unique().tolist()[:3]
    ['responder', 'cement_leakage', 'leakage_symptomatic']
    >>> summary.procedure.unique().tolist()
    ['vertebroplasty', 'kyphoplasty']
    """
    responder = ResponderDefinition() if responder is None else responder
    if not isinstance(responder, ResponderDefinition):
        raise TypeError("responder must be a ResponderDefinition")
    by = _normalise_by(by)
    level = check_level(level)
    known = ("responder", *COMPLICATION_OUTCOMES, *RESOURCE_VARIABLES)
    wanted = set(known) if outcomes is None else {str(o) for o in outcomes}
    unknown = sorted(wanted - set(known))
    if unknown:
        raise ValueError(f"unknown outcomes {unknown}: expected some of {list(known)}")
    resources = tuple(v for v in RESOURCE_VARIABLES if v in wanted)
    complications = tuple(o for o in COMPLICATION_OUTCOMES if o in wanted)
    _require(records, resources)
    groups = _groups(records, by)
    blocks: list[dict[str, Any]] = []

    if "responder" in wanted:
        blocks.append(_responder_summary(records, groups, responder, level))
    if complications:
        blocks.extend(_complication_summaries(records, groups, complications, level))
    for variable in resources:
        label, unit = RESOURCE_VARIABLES[variable]
        n, mean, sd = _moments(groups, _floats(records, variable))
        low, high = _t_interval(mean, sd, n, level)
        blocks.append({
            "outcome": variable,
            "n": n,
            "events": np.full(groups.size, np.nan),
            "estimate": mean,
            "low": low,
            "high": high,
            "method": _t_method(n),
            "label": label,
            "unit": unit,
            "se": np.full(groups.size, np.nan),
            "at_risk": np.full(groups.size, np.nan),
        })
    return _long(groups.keys, blocks)


def _responder_summary(records, groups, responder, level) -> dict[str, Any]:
    block = _responder_block(records, groups, responder, level)
    return {
        "outcome": "responder",
        "n": block["n_followed"],
        "events": block["responders"].astype(float),
        "estimate": block["rate"],
        "low": block["low"],
        "high": block["high"],
        "method": block["method"],
        "label": responder.label,
        "unit": "proportion",
        "se": np.full(groups.size, np.nan),
        "at_risk": np.full(groups.size, np.nan),
    }


def _complication_summaries(records, groups, complications, level) -> list[dict[str, Any]]:
    return [{
        "outcome": block["outcome"],
        "n": block["n"],
        "events": block["events"].astype(float),
        "estimate": block["rate"],
        "low": block["low"],
        "high": block["high"],
        "method": block["method"],
        "label": COMPLICATION_OUTCOMES[block["outcome"]],
        "unit": ("cumulative incidence" if block["outcome"] in HORIZON_OUTCOMES
                 else "proportion"),
        "se": np.where(np.isnan(block["at_risk"]), np.nan, block["se"]),
        "at_risk": block["at_risk"],
    } for block in _complication_blocks(records, groups, complications, level)]
