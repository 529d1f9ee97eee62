"""Current quality signals across every monitored outcome and both unit types.

A quality lead should not have to open the Quality page once per outcome and unit type to find
what needs a look. :func:`current_signals` runs the Quality page's own monitoring, through the
functions of :mod:`analysis.quality` (nothing is recomputed here by another method), for every
outcome of :data:`analysis.quality.OUTCOMES` and for facilities and operators, and lists:

* every **funnel** flag beyond the 95% ("alert") or 99.8% ("alarm") limits of
  :func:`analysis.quality.funnel_data` (risk-adjusted, additive over-dispersion when the χ² test
  shows it, units with fewer than ``min_volume`` cases not tested) — the unit's current position
  over all its records;
* every **CUSUM** signal of the risk-adjusted Bernoulli CUSUM of
  :func:`analysis.quality.cusum` (R_A = 2 upwards, 1/2 downwards; limits chosen for a 5%
  in-control probability of any false signal over the unit's series) raised on or after
  ``since``. For a time-to-event outcome the CUSUM charts its 12-month indicator
  (:func:`analysis.quality.horizon_outcome`), as on the Quality page.

Each row carries n, observed and expected events, O/E with its 95% CI
(:func:`analysis.quality.oe_ratio`) and the false-alarm probability of the chart that raised
it: for a funnel flag the per-unit two-sided probability of falling beyond that limit when the
unit performs on target (5% or 0.2%); for a CUSUM signal the in-control probability of at least
one false signal of that chart over the unit's series (Markov chain). Rows are sorted by
direction (worse than expected first), severity (alarm, CUSUM signal, alert), unit type
(facilities before operators: a facility's signal usually explains its operators'), strength of
evidence (|z| of the funnel) and recency.

Only the charts that may signal are charted in full: a chart whose highest value is proven
to lie below its exact false-alarm limit cannot signal, so its limit is not searched
(:func:`_chart_limits`; the bound is :func:`analysis.quality._below_false_alarm_limit`, and
:func:`analysis.quality.cusum` keeps its limits above such values). The rows are those of
charting every unit (``tests/unit/analysis/test_signals_fast.py``); on the 5,000-record demo
the computation takes about 4 s of CPU instead of 33 s (100,000 records: 33 s instead of 75 s).

Counts here are raw: the display applies small-cell suppression (``dashboard.suppression``);
``options.exclude`` lets the caller leave out the units the display hides, exactly as the
Quality page does, so each signal is the flag that page shows.

References: Spiegelhalter DJ. Stat Med 2005;24:1185 (funnel plots); Steiner SH et al.
Biostatistics 2000;1:441 (risk-adjusted CUSUM).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from analysis._results import Result
from analysis.errors import InsufficientDataError
from analysis.quality import (
    DEFAULT_COVARIATES,
    FALSE_ALARM,
    FUNNEL_LEVELS,
    MIN_EVENTS,
    OUTCOMES,
    PROCEDURE_COVARIATE,
    _below_false_alarm_limit,
    _chart_top,
    _check_odds_ratio,
    _cusum_weights,
    _expected_risks,
    _false_alarm_limit,
    _unit_series,
    _weight_atoms,
    apply_risk_model,
    cusum,
    funnel_data,
    horizon_outcome,
    oe_ratio,
    outcome_values,
    risk_model,
)

__all__ = ["READ_COLUMNS", "SIGNAL_COLUMNS", "SignalOptions", "SignalsResult", "current_signals", "signal_key"]

UNITS: tuple[str, ...] = ("facility_id", "operator_id")
#: The record columns the signals read (units, dates, outcomes, follow-up, case mix): pass
#: only these to :func:`current_signals` (copying every column of a large store costs time).
READ_COLUMNS: tuple[str, ...] = (
    "record_id", "facility_id", "operator_id", "procedure_date", "cement_leakage",
    "pulmonary_embolism", "adjacent_fracture", "adjacent_fracture_days", "followup_days",
    "death_days", "pain_baseline", "pain_month1", *DEFAULT_COVARIATES, PROCEDURE_COVARIATE)
#: Severity rank (lower is more severe) of each kind of signal.
SEVERITY: dict[str, int] = {"alarm": 0, "cusum": 1, "alert": 2}
SIGNAL_COLUMNS: tuple[str, ...] = (
    "key", "kind", "severity", "direction", "outcome", "unit", "unit_id", "n", "observed",
    "expected", "oe", "oe_low", "oe_high", "z", "false_alarm", "signal_date", "signals",
    "latest_date",
)

#: ``exclude(records, unit, outcome) -> unit ids`` left out of the comparison (the display's
#: small-cell rule, e.g. the Quality page's hidden units).
Exclude = Callable[[pd.DataFrame, str, str], Sequence[str]]


@dataclasses.dataclass(frozen=True)
class SignalOptions:
    """Settings of :func:`current_signals` (the Quality page's defaults).

    ``since``: CUSUM signals raised on or after this date are listed (``None``: all).
    ``exclude``: the units to leave out of each comparison (see :data:`Exclude`).
    """

    since: dt.date | None = None
    outcomes: tuple[str, ...] = OUTCOMES
    units: tuple[str, ...] = UNITS
    adjust: bool = True
    overdispersion: str = "additive"
    min_volume: int = 10
    false_alarm: float = FALSE_ALARM
    odds_ratio: float = 2.0
    exclude: Exclude | None = None


@dataclasses.dataclass(frozen=True)
class SignalsResult(Result):
    """The current signals (``signals``, one row each, sorted) and what was monitored."""

    signals: pd.DataFrame
    since: dt.date | None
    monitored: pd.DataFrame
    notes: tuple[str, ...] = ()
    #: Every CUSUM crossing (``key, crossed_at``), whatever ``since``.
    crossings: pd.DataFrame = dataclasses.field(
        default_factory=lambda: pd.DataFrame(columns=["key", "crossed_at"]))
    #: The signals with every CUSUM crossing (``since=None``), for :meth:`since_date`.
    unfiltered: pd.DataFrame | None = None

    def to_frame(self) -> pd.DataFrame:
        """The signals table (a copy): columns :data:`SIGNAL_COLUMNS`."""
        return self.signals.copy()

    def since_date(self, since: dt.date | None) -> SignalsResult:
        """The same signals for another ``since`` date, without recomputing any chart (the
        CUSUM limits are what takes time): equal to ``current_signals`` with that date."""
        base = self.unfiltered if self.unfiltered is not None else self.signals
        return dataclasses.replace(self, signals=_since(base, self.crossings, since),
                                   since=since)


def signal_key(kind: str, outcome: str, unit: str, unit_id: object, direction: str) -> str:
    """Stable identity of a signal, for acknowledgements and alerts: the same unit, outcome,
    chart and direction is the same signal from one data version to the next.

    >>> signal_key("alarm", "cement_leakage", "facility_id", "FAC-009", "high")
    'funnel|cement_leakage|facility_id|FAC-009|high'
    """
    chart = "cusum" if kind == "cusum" else "funnel"
    return f"{chart}|{outcome}|{unit}|{unit_id}|{direction}"


def _model(records: pd.DataFrame, shown: pd.DataFrame, outcome: str,
           fits: dict | None = None):
    """The Quality page's model: fitted on all records, applied to the compared ones (None
    when it cannot be fitted or has too few events). ``fits`` keeps each outcome's reference
    fit, shared by the two unit types (the fit is the costly step on a large store)."""
    fits = {} if fits is None else fits
    if outcome not in fits:
        try:
            fits[outcome] = risk_model(records, outcome)
        except InsufficientDataError:
            fits[outcome] = None
    reference = fits[outcome]
    if reference is None:
        return None
    fit = apply_risk_model(reference, shown)
    return fit if min(fit.events, fit.n - fit.events) >= MIN_EVENTS else None


def _funnel(records, shown, unit, outcome, options, fits=None):
    model = _model(records, shown, outcome, fits) if options.adjust else None
    kwargs = {"unit": unit, "outcome": outcome, "overdispersion": options.overdispersion,
              "min_volume": options.min_volume}
    if model is not None:
        return funnel_data(shown, adjust=True, model=model, **kwargs)
    return funnel_data(shown, adjust=False, **kwargs)


def _ratio(observed: float, expected: float) -> tuple[float, float, float]:
    if not expected > 0:
        return math.nan, math.nan, math.nan
    ratio = oe_ratio(int(round(observed)), float(expected))
    return ratio.ratio, ratio.low, ratio.high


def _funnel_rows(result, latest: pd.Series) -> list[dict]:
    rows = []
    units = result.units
    flagged = units[units["flag"].astype(str).str.startswith(("alarm", "alert"))]
    for row in flagged.itertuples():
        kind, direction = str(row.flag).split("_")
        oe, low, high = _ratio(row.events, row.expected)
        level = max(FUNNEL_LEVELS) if kind == "alarm" else min(FUNNEL_LEVELS)
        rows.append({
            "key": signal_key(kind, result.outcome, result.unit, row.unit, direction),
            "kind": kind, "direction": direction, "outcome": result.outcome,
            "unit": result.unit, "unit_id": str(row.unit), "n": int(row.n),
            "observed": int(row.events), "expected": float(row.expected), "oe": oe,
            "oe_low": low, "oe_high": high, "z": float(row.z),
            "false_alarm": 1.0 - level, "signal_date": pd.NaT, "signals": 1,
            "latest_date": latest.get(str(row.unit), pd.NaT),
        })
    return rows


#: :func:`_chart_limits` found that the unit's CUSUM cannot signal.
NO_SIGNAL = "no signal"


def _chart_limits(shown: pd.DataFrame, unit: str, unit_id: str, outcome: str, y: pd.Series,
                  p: pd.Series, options: SignalOptions) -> tuple[float, float] | str | None:
    """The limits (upper, lower) to chart the unit with, :data:`NO_SIGNAL` when neither
    chart can signal, or None when charting it fails here (:func:`cusum` then decides).

    A chart whose largest value is proven to lie below the exact false-alarm limit
    (:func:`analysis.quality._below_false_alarm_limit`, a lower bound of the exact in-control
    probability) cannot signal, and :func:`analysis.quality.cusum` keeps its limit above such
    a value, so its limit is not searched: it is charted with a limit above its largest value
    instead (no signal either way). Any other chart's limit is searched (cached) exactly as
    :func:`cusum` searches it.
    """
    try:
        sub = _unit_series(shown, unit, unit_id, outcome, y, p)
    except InsufficientDataError:
        return None
    n = len(sub)
    observed = sub["y"].to_numpy(dtype=float)
    risks = sub["p"].to_numpy(dtype=float)
    alpha = float(options.false_alarm) / 2.0
    charts = []
    for ratio in (options.odds_ratio, 1.0 / options.odds_ratio):
        atoms, prob = _weight_atoms(risks, ratio)
        if not np.any(atoms > 0):  # cusum() refuses the unit
            return None
        charts.append((atoms, prob, _chart_top(_cusum_weights(observed, risks, ratio))))
    limits, signals = [], False
    for atoms, prob, top in charts:
        if _below_false_alarm_limit(atoms, prob, n, alpha, top):
            limits.append(top + 1.0)
            continue
        try:
            h = _false_alarm_limit(atoms, prob, n, alpha)[0]
        except InsufficientDataError:
            return None
        limits.append(h)
        signals = signals or top >= h
    return (limits[0], limits[1]) if signals else NO_SIGNAL


def _cusum_rows(records, shown, unit, outcome, tested, options,
                crossings: list[dict], fits: dict | None = None) -> list[dict]:
    """A row per unit and chart with any crossing (all dates); each crossing is appended to
    ``crossings``. Only the units whose CUSUM may signal are charted (:func:`_chart_limits`),
    with the limits :func:`cusum` would choose (a chart that cannot signal, with a limit above
    its largest value: its own limit is not needed). The rows equal those of charting every
    unit with :func:`cusum`'s own limits (``tests/unit/analysis/test_signals_fast.py``); the
    one difference is in a failure never seen: a unit whose non-signalling chart's limit
    search would fail (no limit below 1,000 meeting the level) had its other chart's signal
    dropped before and has it listed now."""
    chart_outcome = horizon_outcome(outcome)
    model = _model(records, shown, chart_outcome, fits) if options.adjust else None
    _check_odds_ratio(options.odds_ratio)
    if not 0.0 < options.false_alarm < 1.0:
        raise ValueError("false_alarm must be a probability between 0 and 1")
    try:
        y, p = _expected_risks(shown, chart_outcome, model is not None, model)
    except InsufficientDataError:
        return []
    rows = []
    for unit_id in tested:
        limits = _chart_limits(shown, unit, unit_id, outcome, y, p, options)
        if limits == NO_SIGNAL:
            continue
        kwargs = {"odds_ratio": options.odds_ratio, "threshold": limits}
        if limits is None:  # let cusum() choose (and refuse) as before
            kwargs = {"odds_ratio": options.odds_ratio, "false_alarm": options.false_alarm}
        try:
            if model is not None:
                result = cusum(shown, unit, unit_id, outcome, adjust=True, model=model, **kwargs)
            else:
                result = cusum(shown, unit, unit_id, outcome, adjust=False, **kwargs)
        except InsufficientDataError:
            continue
        hits = result.signals
        if hits.empty:
            continue
        observed = float(result.chart["observed"].sum())
        expected = float(result.chart["expected"].sum())
        oe, low, high = _ratio(observed, expected)
        latest = pd.to_datetime(result.chart["procedure_date"]).max()
        for direction, chart_hits in hits.groupby("direction", sort=True):
            side = "high" if direction == "upper" else "low"
            key = signal_key("cusum", outcome, unit, unit_id, side)
            crossings.extend({"key": key, "crossed_at": when}
                             for when in pd.to_datetime(chart_hits["procedure_date"]))
            rows.append({
                "key": key,
                "kind": "cusum", "direction": side, "outcome": outcome, "unit": unit,
                "unit_id": str(unit_id), "n": int(result.n), "observed": int(round(observed)),
                "expected": expected, "oe": oe, "oe_low": low, "oe_high": high, "z": math.nan,
                "false_alarm": float(result.false_alarm_upper if side == "high"
                                     else result.false_alarm_lower),
                "signal_date": pd.to_datetime(chart_hits["procedure_date"]).max(),
                "signals": int(len(chart_hits)), "latest_date": latest,
            })
    return rows


def _latest_dates(records: pd.DataFrame, unit: str) -> pd.Series:
    if "procedure_date" not in records:
        return pd.Series(dtype="datetime64[ns]")
    dates = pd.to_datetime(records["procedure_date"])
    return dates.groupby(records[unit].astype(str), observed=True).max()


def current_signals(records: pd.DataFrame,
                    options: SignalOptions | None = None) -> SignalsResult:
    """Every current funnel alarm/alert and every CUSUM signal since a date.

    Parameters
    ----------
    records : DataFrame
        Records with the data-dictionary columns the Quality functions read (units,
        ``procedure_date``, the outcomes, the case-mix covariates, follow-up days).
    options : SignalOptions, optional
        Outcomes, unit types, ``since`` and the Quality page's settings (its defaults).

    Returns
    -------
    SignalsResult
        ``signals`` has one row per signal (columns :data:`SIGNAL_COLUMNS`): ``kind``
        (``"alarm"``: beyond the 99.8% funnel limit; ``"alert"``: beyond 95% only;
        ``"cusum"``: the risk-adjusted CUSUM crossed its limit), ``direction`` (``"high"``:
        more events than expected), the unit, ``n``/``observed``/``expected`` events of the
        funnel (or of the charted CUSUM series), ``oe`` with its 95% CI, the funnel ``z``,
        ``false_alarm`` (see the module notes), ``signal_date`` (the last CUSUM crossing
        since ``since``; empty for a funnel flag), ``signals`` (crossings since ``since``) and
        ``latest_date`` (the unit's last procedure). ``monitored`` lists each (outcome, unit
        type) with the number of units tested, or why it was skipped.

    Examples
    --------
    >>> from data.demo import demo_records
    >>> result = current_signals(demo_records(3000, seed=1),
    ...                          SignalOptions(outcomes=("cement_leakage",)))
    >>> list(result.to_frame().columns[:4])
    ['key', 'kind', 'severity', 'direction']
    """
    options = options or SignalOptions()
    if options.since is not None and not isinstance(options.since, dt.date):
        raise TypeError("since must be a datetime.date (or None)")
    unknown = sorted(set(options.outcomes) - set(OUTCOMES))
    if unknown:
        raise ValueError(f"unknown outcome(s) {unknown}; use those of analysis.quality.OUTCOMES")
    rows: list[dict] = []
    crossings: list[dict] = []
    fits: dict = {}
    monitored: list[dict] = []
    notes: list[str] = []
    for unit in options.units:
        if unit not in records:
            raise KeyError(f"records lack the unit column {unit!r}")
        latest = _latest_dates(records, unit)
        for outcome in options.outcomes:
            excluded = tuple(options.exclude(records, unit, outcome)) if options.exclude else ()
            shown = (records[~records[unit].astype(object).isin(excluded).to_numpy(bool)]
                     if excluded else records)
            try:
                result = _funnel(records, shown, unit, outcome, options, fits)
            except InsufficientDataError as error:
                monitored.append({"outcome": outcome, "unit": unit, "tested": 0,
                                  "skipped": str(error)})
                continue
            tested = result.units.loc[result.units["n"] >= options.min_volume, "unit"]
            # The CUSUM needs events and non-events: a unit without either is not charted.
            y = outcome_values(shown, horizon_outcome(outcome))
            charted = y.notna().to_numpy()
            by_unit = pd.DataFrame({"unit": shown[unit].astype(str).to_numpy()[charted],
                                    "y": y.to_numpy()[charted]}).groupby("unit")["y"]
            n_chart, events_chart = by_unit.size(), by_unit.sum()
            ok = [u for u in tested.astype(str)
                  if n_chart.get(u, 0) >= options.min_volume and 0 < events_chart.get(u, 0)
                  < n_chart.get(u, 0)]
            rows += _funnel_rows(result, latest)
            rows += _cusum_rows(records, shown, unit, outcome, ok, options, crossings, fits)
            monitored.append({"outcome": outcome, "unit": unit, "tested": int(len(tested)),
                              "skipped": ""})
            notes.extend(f"{outcome}, {unit}: {note}" for note in result.notes)
    frame = pd.DataFrame(rows, columns=[c for c in SIGNAL_COLUMNS if c != "severity"])
    frame.insert(2, "severity", frame["kind"].map(SEVERITY).astype("Int64"))
    crossed = pd.DataFrame(crossings, columns=["key", "crossed_at"])
    return SignalsResult(signals=_since(frame, crossed, options.since), since=options.since,
                         monitored=pd.DataFrame(monitored,
                                                columns=["outcome", "unit", "tested", "skipped"]),
                         notes=tuple(notes), crossings=crossed, unfiltered=frame)


def _since(frame: pd.DataFrame, crossings: pd.DataFrame,
           since: dt.date | None) -> pd.DataFrame:
    """The signals with CUSUM crossings on or after ``since`` only (count and last date
    recomputed; a chart without any is dropped), sorted (see the module notes)."""
    frame = frame.copy()
    if since is not None and len(frame):
        later = crossings[pd.to_datetime(crossings["crossed_at"]) >= pd.Timestamp(since)]
        grouped = later.groupby("key")["crossed_at"]
        cusum_rows = (frame["kind"] == "cusum").to_numpy()
        keys = frame.loc[cusum_rows, "key"]
        frame.loc[cusum_rows, "signals"] = keys.map(grouped.size()).fillna(0).astype(int)
        frame.loc[cusum_rows, "signal_date"] = pd.to_datetime(keys.map(grouped.max()))
        frame = frame[~cusum_rows | (frame["signals"] > 0).to_numpy()]
    order = frame.assign(
        _worse=(frame["direction"] != "high").astype(int),
        _level=frame["unit"].map({u: i for i, u in enumerate(UNITS)}).fillna(len(UNITS)),
        _z=-frame["z"].abs().fillna(0.0),
        _when=pd.to_datetime(frame["signal_date"]).fillna(pd.to_datetime(frame["latest_date"])),
    ).sort_values(["_worse", "severity", "_level", "_z", "_when", "key"],
                  ascending=[True, True, True, True, False, True], kind="mergesort")
    return frame.loc[order.index].reset_index(drop=True)
