"""Quality monitoring: funnel plot, caterpillar plot, risk-adjusted CUSUM/VLAD and a unit table.

Performance: the case-mix model behind the adjusted views is fitted once per (store, data
version, user scope, outcome) on all records (the reference population; a few seconds on
1,000,000 records) and applied to each selection with ``analysis.quality.apply_risk_model``
(intercept recalibrated to the selection's rate); the fit is passed to ``funnel_data``,
``caterpillar`` and ``cusum``. Results are cached per (store, data version, filter, outcome
and the page controls) in small bounded ``functools.lru_cache`` caches, so going back to a
view already seen is instant; the functions get only the columns they use, with facility and
operator as categoricals coded once per data version (:func:`_frame`), so grouping and
picking a unit compare integer codes, not a million strings. The CUSUM limits come from the
in-control false-alarm probability over the unit's series, computed with the Markov chain
(matrix powers by repeated squaring: milliseconds whatever the series length) instead of a
simulation. New fracture has a second reference fit (its 12-month indicator, for the CUSUM).
"""

from __future__ import annotations

import dataclasses
import functools

import dash
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Input, Output, State, callback, dcc, html

from analysis.errors import AnalysisError, InsufficientDataError
from analysis.filters import RecordFilter
from analysis.quality import (
    DEFAULT_COVARIATES,
    FALSE_ALARM,
    MIN_EVENTS,
    OUTCOMES,
    PROCEDURE_COVARIATE,
    TIME_TO_EVENT,
    apply_risk_model,
    caterpillar,
    cusum,
    funnel_data,
    horizon_outcome,
    outcome_completeness,
    outcome_values,
    risk_model,
)
from dashboard import data_access
from dashboard.components import (
    chart_card,
    data_grid,
    empty_state,
    limitation_state,
    mask_small_counts,
    page_header,
    safe_callback,
    stat_card,
)
from dashboard.compute_cache import cached_output
from dashboard.context import database
from dashboard.drilldown import CLICK_HINT
from dashboard.figures.common import OKABE_ITO
from dashboard.figures.quality import (
    adjustment_text,
    caterpillar_figure,
    caterpillar_summary,
    chartable,
    completeness_note,
    cusum_figure,
    cusum_options,
    cusum_outcome_label,
    cusum_summary,
    cusum_text,
    default_cusum_unit,
    display_flags,
    every_unit_hidden,
    excluded_units,
    false_alarm_text,
    flag_counts,
    funnel_figure,
    funnel_summary,
    funnel_text,
    interpretation,
    nothing_shown,
    outcome_label,
    suppressed_units,
    table_labels,
    undrawn_flags,
    unit_counts,
    unit_name,
    units_table,
    with_hidden_units,
)
from dashboard.report import ReportSection, register_report
from dashboard.state import PageSetting, register_settings, settings_from_query
from dashboard.suppression import is_small, label, range_text, threshold
from data import store

PATH = "/quality"
dash.register_page(__name__, path=PATH, name="Quality", title="Quality monitoring", order=7,
                   nav_group="Monitoring")

OVERDISPERSION_OPTIONS = {"additive": "Additive (τ², default)",
                          "multiplicative": "Multiplicative (φ)", "none": "None"}
#: Default over-dispersion model: applied only when the χ² test shows over-dispersion
#: (Spiegelhalter 2005); the additive random-effects form suits high-volume units.
DEFAULT_OVERDISPERSION = "additive"
#: "Adjust for procedure" (VP/KP in the case-mix model): off by default, since the technique
#: is the unit's own choice.
PROCEDURE_OPTIONS = {"no": "No (default)", "yes": "Yes"}
#: In-control probability of any false CUSUM signal over the unit's series (both charts).
FALSE_ALARM_OPTIONS = {"0.01": "1%", "0.05": "5% (default)", "0.1": "10%"}
DEFAULT_FALSE_ALARM = f"{FALSE_ALARM:g}"
UNIT_OPTIONS = {"facility_id": "Facilities", "operator_id": "Operators"}
#: R_A of the CUSUM: the upper chart looks for doubled odds, the lower for halved odds.
CUSUM_ODDS_RATIO = 2.0
#: Units with fewer cases than this are "low volume" (not tested, no CUSUM), as in funnel_data.
MIN_VOLUME = 10
MODEL_FAILED = ("the case-mix model cannot be fitted (too few events or non-events, or the "
                "covariates separate the outcome completely). Crude rates are shown instead.")
# Columns the quality functions read (unit, dates, outcomes, the case-mix covariates).
COLUMNS = ("record_id", "facility_id", "operator_id", "procedure_date", "cement_leakage",
           "pulmonary_embolism", "adjacent_fracture", "adjacent_fracture_days",
           "followup_days", "death_days", "pain_baseline", "pain_month1",
           *DEFAULT_COVARIATES, PROCEDURE_COVARIATE)
#: Case-mix covariates (read only by the reference fit on all records).
CASE_MIX_COLUMNS = (*DEFAULT_COVARIATES, PROCEDURE_COVARIATE)
#: Follow-up columns, read only for a time-to-event outcome (:func:`_records`): taken from all
#: records by position when that outcome is viewed, so other outcomes do not pay their copy.
TIME_COLUMNS = ("adjacent_fracture_days", "followup_days", "death_days")
#: Units compared on the page: taken per selection as categoricals (see :func:`_frame`).
UNIT_COLUMNS = tuple(UNIT_OPTIONS)
#: Columns taken from the selected records (the covariates are read only by the reference
#: fit, on all records; the units come from :func:`_unit_categories`).
SELECTION_COLUMNS = tuple(c for c in COLUMNS if c not in CASE_MIX_COLUMNS
                          and c not in UNIT_COLUMNS and c not in TIME_COLUMNS)


ADJUST_OPTIONS = {"adjusted": "On (case-mix model)", "crude": "Off (crude)"}
#: The page's controls kept in the URL (``?outcome=pulmonary_embolism&cusum=FAC-009``); the
#: CUSUM unit is checked against the units that can be charted when the funnel is computed.
SETTINGS = register_settings(
    PATH,
    PageSetting("quality-outcome", "outcome", "cement_leakage", OUTCOMES, label="Outcome",
                names={o: outcome_label(o) for o in OUTCOMES}),
    PageSetting("quality-unit", "unit", "facility_id", tuple(UNIT_OPTIONS), label="Compare",
                names=UNIT_OPTIONS),
    PageSetting("quality-adjust", "adjust", "adjusted", tuple(ADJUST_OPTIONS),
                label="Risk adjustment", names=ADJUST_OPTIONS),
    PageSetting("quality-overdispersion", "od", DEFAULT_OVERDISPERSION,
                tuple(OVERDISPERSION_OPTIONS), label="Over-dispersion model",
                names=OVERDISPERSION_OPTIONS),
    PageSetting("quality-procedure", "proc", "no", tuple(PROCEDURE_OPTIONS),
                label="Adjust for procedure", names=PROCEDURE_OPTIONS),
    PageSetting("quality-cusum-unit", "cusum", None, None, label="CUSUM unit"),
    PageSetting("quality-false-alarm", "alarm", DEFAULT_FALSE_ALARM, tuple(FALSE_ALARM_OPTIONS),
                label="CUSUM false-alarm probability", names=FALSE_ALARM_OPTIONS),
)


# ------------------------------------------------------------------------------------ layout
def _radio(control_id: str, title: str, options: dict[str, str], value: str) -> html.Fieldset:
    return html.Fieldset([
        html.Legend(title, className="form-label small fw-semibold mb-1 fs-6"),
        dbc.RadioItems(id=control_id, value=value,
                       options=[{"label": v, "value": k} for k, v in options.items()],
                       inline=True),
    ], className="mb-2")


def _loading(component_id: str) -> dcc.Loading:
    return dcc.Loading(html.Div(id=component_id), delay_show=400,
                       overlay_style={"visibility": "visible", "opacity": 0.5})


def layout(**query) -> html.Div:
    chosen = settings_from_query(PATH, query)
    controls = dbc.Card(dbc.CardBody(dbc.Row([
        dbc.Col([
            dbc.Label("Outcome", html_for="quality-outcome", className="small fw-semibold mb-1"),
            dcc.Dropdown(id="quality-outcome", value=chosen["outcome"], clearable=False,
                         options=[{"label": outcome_label(o), "value": o} for o in OUTCOMES]),
        ], xs=12, lg=4),
        dbc.Col(_radio("quality-unit", "Compare", UNIT_OPTIONS, chosen["unit"]), xs=12, lg=2),
        dbc.Col(_radio("quality-adjust", "Risk adjustment", ADJUST_OPTIONS, chosen["adjust"]),
                xs=12, lg=3),
        dbc.Col(_radio("quality-overdispersion", "Over-dispersion model", OVERDISPERSION_OPTIONS,
                       chosen["od"]), xs=12, lg=3),
        dbc.Col(_radio("quality-procedure", "Adjust for procedure (VP/KP)", PROCEDURE_OPTIONS,
                       chosen["proc"]), xs=12, lg=4),
        dbc.Col(html.P("Off by default: the choice of vertebroplasty or kyphoplasty is the "
                       "unit's own, and adjusting for it would remove its effect from the "
                       "comparison. Turn it on to compare units as if they had used the same "
                       "technique.", className="small text-muted mb-0"), xs=12, lg=8),
    ], className="g-2")), className="mb-3")
    cusum_section = dbc.Card([
        dbc.CardHeader(html.H2("Risk-adjusted CUSUM and VLAD of one unit", className="h6 mb-0")),
        dbc.CardBody([
            dbc.Label("Unit to chart", html_for="quality-cusum-unit",
                      className="small fw-semibold mb-1"),
            dcc.Dropdown(id="quality-cusum-unit", clearable=False, className="mb-2",
                         value=chosen["cusum"],
                         placeholder="Choose a unit", style={"maxWidth": "520px"}),
            _radio("quality-false-alarm", "Chance of a false signal over the unit's series "
                   "(both charts, if the unit performs on target)", FALSE_ALARM_OPTIONS,
                   chosen["alarm"]),
            _loading("quality-cusum"),
        ]),
    ], className="mb-3")
    return html.Div([
        page_header("Quality monitoring", "Facilities or operators compared with the pooled "
                    "rate: a funnel plot with 95% and 99.8% limits, observed/expected ratios, "
                    "and a risk-adjusted CUSUM over time. A flag is a prompt to look, not a "
                    "verdict."),
        controls,
        _loading("quality-stats"),
        _loading("quality-funnel"),
        dbc.Card([
            dbc.CardHeader(html.H2("How to read these results", className="h6 mb-0")),
            dbc.CardBody([_loading("quality-adjustment"), _loading("quality-text")],
                         id="quality-explanation", className="small"),
        ], id="quality-explanation-card", className="mb-3"),
        _loading("quality-caterpillar"),
        cusum_section,
        _loading("quality-table"),
    ])


# ------------------------------------------------------------------------ computing (cached)
def _slim(records):
    """Only the columns the quality functions read (copying 50 columns costs time at 1M)."""
    return records[[c for c in COLUMNS if c in records.columns]]


def _store_key() -> tuple[str, str]:
    from dashboard.auth import scope_key

    # The user's scope (role, facilities) is part of every lru_cache key below: a restricted
    # user's results are computed from their facilities' rows only.
    url = store.database_url(database())
    # The threshold too: which units are hidden (and left out of the target) depends on it.
    return url, f"{data_access.data_version(url)}|{scope_key()}|t{threshold()}"


@functools.lru_cache(maxsize=2)
def _unit_categories(url, version) -> dict[str, pd.Categorical]:
    """Facility and operator of every record the user may see, as categoricals (sorted
    categories), once per (data version, user scope): grouping and comparing codes instead
    of a million strings is what keeps the funnel, caterpillar and CUSUM fast."""
    records = data_access.all_records()
    return {column: pd.Categorical(records[column]) for column in UNIT_COLUMNS
            if column in records.columns}


def _positions(index: pd.Index) -> np.ndarray:
    """Row positions in :func:`data_access.all_records` of the selected records' labels."""
    labels = data_access.all_records().index
    if isinstance(labels, pd.RangeIndex) and labels.step == 1:
        return index.to_numpy(dtype=np.int64, copy=False) - labels.start
    positions = labels.get_indexer(index)
    if (positions < 0).any():  # never expected: the selection is a subset of all records
        raise RuntimeError("selected records are not among the records the user may see")
    return positions


@functools.lru_cache(maxsize=2)  # one frame per filter change; it can hold ~40 MB at 1M rows
def _frame(url, version, selection):
    """The selected records with the columns the quality functions read, facility and
    operator as categoricals: one frame per filter change, shared by the page's callbacks."""
    records = data_access.filtered_records(selection, SELECTION_COLUMNS)
    columns = {column: records[column].array for column in records.columns}
    positions = _positions(records.index)
    for column, values in _unit_categories(url, version).items():
        columns[column] = pd.Categorical.from_codes(values.codes[positions], dtype=values.dtype)
    return pd.DataFrame(columns, index=records.index, copy=False)


@functools.lru_cache(maxsize=1)
def _frame_with_time(url, version, selection):
    """:func:`_frame` plus the follow-up columns of a time-to-event outcome."""
    frame = _frame(url, version, selection)
    everything = data_access.all_records()
    positions = _positions(frame.index)
    columns = {column: frame[column].array for column in frame.columns}
    columns.update({column: everything[column].array[positions] for column in TIME_COLUMNS
                    if column in everything.columns})
    return pd.DataFrame(columns, index=frame.index, copy=False)


def _records(url, version, selection, outcome):
    """The selection frame the quality functions need for ``outcome``."""
    if outcome in TIME_TO_EVENT or outcome in {horizon_outcome(o) for o in TIME_TO_EVENT}:
        return _frame_with_time(url, version, selection)
    return _frame(url, version, selection)


def _model_failed(error: InsufficientDataError) -> bool:
    return getattr(error, "method", "") == "Risk model"


def funnel_result(records, unit: str, outcome: str, adjust: bool, overdispersion: str,
                  model=None):
    """``funnel_data`` (adjusted when asked and possible) and why adjustment failed, if it did."""
    if adjust:
        try:
            return funnel_data(records, unit=unit, outcome=outcome, adjust=True,
                               overdispersion=overdispersion, min_volume=MIN_VOLUME,
                               model=model), None
        except InsufficientDataError as error:
            if not _model_failed(error):
                raise
    return funnel_data(records, unit=unit, outcome=outcome, adjust=False,
                       overdispersion=overdispersion,
                       min_volume=MIN_VOLUME), MODEL_FAILED if adjust else None


def caterpillar_result(records, unit: str, outcome: str, adjust: bool, model=None):
    if adjust:
        try:
            return caterpillar(records, unit=unit, outcome=outcome, adjust=True, model=model)
        except InsufficientDataError as error:
            if not _model_failed(error):
                raise
    return caterpillar(records, unit=unit, outcome=outcome, adjust=False)


def cusum_result(records, unit: str, unit_id: str, outcome: str, adjust: bool, model=None,
                 false_alarm: float = FALSE_ALARM):
    """``(CusumResult, None)``, or ``(None, reason)`` when the unit may not be charted. For a
    time-to-event outcome the chart is of its fixed-horizon indicator (``model`` must be
    fitted for :func:`analysis.quality.horizon_outcome`)."""
    rows = records[(records[unit] == unit_id).fillna(False).to_numpy(bool)]
    y = outcome_values(rows, horizon_outcome(outcome))
    n, events = int(y.notna().sum()), int(y.sum())
    if n == 0:
        return None, f"{unit_id} has no procedures with this outcome recorded in the selection."
    if is_small([n, events, n - events]).any() or n < MIN_VOLUME:
        return None, (f"{unit_id} has fewer than {label()[1:]} cases or events in the "
                      "selection: its case-level chart is suppressed.")
    kwargs = {"odds_ratio": CUSUM_ODDS_RATIO, "false_alarm": false_alarm}
    if adjust:
        try:
            return cusum(records, unit, unit_id, outcome, adjust=True, model=model,
                         **kwargs), None
        except InsufficientDataError as error:
            if not _model_failed(error):
                raise
    return cusum(records, unit, unit_id, outcome, adjust=False, **kwargs), None


@functools.lru_cache(maxsize=4)  # one float per record each: keep few
def _reference_fit(url, version, outcome, procedure=False):
    """The case-mix model fitted once per (data version, user scope, outcome, procedure
    option) on all the records the user may see: the reference population (None when it
    cannot be fitted)."""
    try:
        return risk_model(_slim(data_access.all_records()), outcome,
                          adjust_procedure=procedure)
    except InsufficientDataError:
        return None


def _fit(url, version, selection, outcome, procedure=False, unit=None, excluded=()):
    """The reference model applied to the selection (intercept recalibrated to its rate),
    shared by the funnel, caterpillar, CUSUM and adjustment callbacks (None when it cannot be
    used). Fitting once per data version instead of per filter is what keeps a filter change
    fast at a million records; ``docs/quality-monitoring.md`` says so to the user.
    ``excluded`` units (of column ``unit``) are left out (see :func:`_excluded`)."""
    # Without exclusions the unit does not change the frame: one cache entry serves all.
    return _applied_fit(url, version, selection, outcome, procedure,
                        unit if excluded else None, excluded)


@functools.lru_cache(maxsize=4)  # one float per record each: keep few
def _applied_fit(url, version, selection, outcome, procedure, unit, excluded):
    reference = _reference_fit(url, version, outcome, procedure)
    records = _shown_frame(url, version, selection, outcome, unit, excluded)
    if reference is None or records.empty:
        return None
    fit = apply_risk_model(reference, records)
    if min(fit.events, fit.n - fit.events) < MIN_EVENTS:  # as risk_model requires of a fit
        return None
    return fit


# Small-cell suppression of the compared units. A unit with 1..threshold cases or events is
# hidden (listed as hidden, never plotted); when the hidden units together form a small cell,
# the pooled target and the limits would let a viewer recover it (target × N − shown events),
# so the units shown are then compared among themselves: the hidden ones are left out of the
# target, the case-mix recalibration and the limits (:func:`_excluded`).
@functools.lru_cache(maxsize=16)
def _excluded(url, version, selection, unit, outcome) -> tuple[str, ...]:
    """Hidden units to leave out of the displayed comparison (empty when none need be)."""
    records = _frame(url, version, selection)
    if records.empty or unit not in records:
        return ()
    counts = unit_counts(records, unit, outcome)
    return excluded_units(counts["unit"], counts["n"], counts["events"])


@functools.lru_cache(maxsize=4)
def _shown_frame(url, version, selection, outcome, unit=None, excluded=()):
    """The selection's frame for ``outcome`` (:func:`_records`) without the ``excluded``
    units' records."""
    records = _records(url, version, selection, outcome)
    if not excluded:
        return records
    return records[~records[unit].isin(excluded).to_numpy(bool)]


@functools.lru_cache(maxsize=16)
def _funnel(url, version, selection, unit, outcome, adjust, overdispersion, procedure=False):
    """``(result, adjustment failed)`` of the displayed funnel: the hidden units the target
    would reveal left out (:func:`_excluded`) and listed back as hidden rows."""
    records = _records(url, version, selection, outcome)
    if records.empty:
        return None, None
    excluded = _excluded(url, version, selection, unit, outcome)
    shown = _shown_frame(url, version, selection, outcome, unit, excluded)
    if excluded and shown.empty:  # every unit is hidden: nothing may be compared
        return every_unit_hidden(records, unit, outcome), None
    model = _fit(url, version, selection, outcome, procedure, unit, excluded) if adjust else None
    result, failed = funnel_result(shown, unit, outcome, adjust, overdispersion, model)
    if excluded:
        result = with_hidden_units(result, records, excluded)
    return result, failed


@functools.lru_cache(maxsize=8)
def _count(url, version, selection) -> int:
    return len(_frame(url, version, selection))


@functools.lru_cache(maxsize=8)
def _model(url, version, selection, outcome, procedure=False):
    """The case-mix model's summary (c-statistic, calibration, notes) without per-record risks."""
    fit = _fit(url, version, selection, outcome, procedure)
    if fit is None:
        return None
    return dataclasses.replace(fit, expected=fit.expected.iloc[:0],
                               linear_predictor=fit.linear_predictor.iloc[:0],
                               exposure=None if fit.exposure is None else fit.exposure.iloc[:0])


@functools.lru_cache(maxsize=16)
def _caterpillar(url, version, selection, unit, outcome, adjust, procedure=False):
    records = _records(url, version, selection, outcome)
    if records.empty:
        return None
    excluded = _excluded(url, version, selection, unit, outcome)
    shown = _shown_frame(url, version, selection, outcome, unit, excluded)
    if shown.empty:
        return None
    model = _fit(url, version, selection, outcome, procedure, unit, excluded) if adjust else None
    return caterpillar_result(shown, unit, outcome, adjust, model)


@functools.lru_cache(maxsize=8)  # a chart holds one row per case: keep few
def _cusum(url, version, selection, unit, unit_id, outcome, adjust, procedure=False,
           false_alarm=FALSE_ALARM):
    records = _records(url, version, selection, outcome)
    if records.empty:
        return None, "No records match the current filters."
    excluded = _excluded(url, version, selection, unit, outcome)
    if str(unit_id) in excluded:
        return None, (f"{unit_id} has fewer than {label()[1:]} cases or events in the "
                      "selection: its case-level chart is suppressed.")
    shown = _shown_frame(url, version, selection, outcome, unit, excluded)
    chart_outcome = horizon_outcome(outcome)
    model = (_fit(url, version, selection, chart_outcome, procedure, unit, excluded)
             if adjust else None)
    return cusum_result(shown, unit, unit_id, outcome, adjust, model, false_alarm)


def _selection(state) -> RecordFilter:
    return RecordFilter.from_dict(state)


# ------------------------------------------------------------------------------ components
def stats_row(result) -> dbc.Row:
    """The cards count the flags the table lists (:func:`flag_counts`), those of units with
    hidden counts included and said to be not drawn (the small-unit rule of
    :mod:`dashboard.figures.quality`); units with hidden counts are counted as hidden."""
    units = result.units
    hidden = suppressed_units(units)
    tested = ~display_flags(units).isin(["low_volume", "hidden"]).to_numpy()
    flags = flag_counts(result)
    undrawn = undrawn_flags(result)
    alarms = int(flags.get("alarm_high", 0) + flags.get("alarm_low", 0))
    alerts = int(flags.get("alert_high", 0) + flags.get("alert_low", 0))

    def not_drawn(*kinds: str) -> str:
        count = sum(undrawn.get(kind, 0) for kind in kinds)
        return f"; {count} not drawn (counts hidden)" if count else ""

    od = (f"{result.overdispersion} model applied" if result.overdispersion_applied else
          f"{result.overdispersion} model not applied (not significant)"
          if result.overdispersion != "none" else "model switched off")
    target = (f"{100 * result.target:.1f}%" if result.measure != "rate"
              else f"{100 * result.target:.1f}")
    detail = (outcome_label(result.outcome) if result.measure != "rate"
              else f"{outcome_label(result.outcome)} per 100 person-years")
    cards = [
        stat_card("Target (pooled rate)", target, detail, "quality-target", OKABE_ITO["black"]),
        stat_card(f"{unit_name(result.unit, True).capitalize()} tested", f"{int(tested.sum())}",
                  f"of {len(units)}; fewer than {result.min_volume} cases: not tested; "
                  f"{int(hidden.sum())} with counts hidden ({range_text()} cases, events or "
                  "non-events)",
                  "quality-tested"),
        stat_card("Alarms (beyond 99.8%)", str(alarms), f"{int(flags.get('alarm_high', 0))} high"
                  + not_drawn("alarm_high", "alarm_low"),
                  "quality-alarms", OKABE_ITO["vermillion"]),
        stat_card("Alerts (beyond 95% only)", str(alerts),
                  f"{int(flags.get('alert_high', 0))} high; ~{0.05 * tested.sum():.1f} "
                  "expected by chance" + not_drawn("alert_high", "alert_low"),
                  "quality-alerts", OKABE_ITO["orange"]),
        stat_card("Over-dispersion φ", "–" if result.phi != result.phi else f"{result.phi:.2f}",
                  f"τ² {result.tau2:.3g}; {od}", "quality-phi"),
    ]
    return dbc.Row([dbc.Col(card, xs=6, md=4, xl=True) for card in cards], className="g-2 mb-3")


def every_unit_hidden_text(result) -> str:
    count = len(result.units)
    units = f"{count} {unit_name(result.unit, plural=count != 1)}"
    return (f"Every unit in this selection ({units}) has "
            f"{range_text()} procedures, events or non-events with this outcome recorded, so "
            "none can be plotted or compared (small-cell suppression); the table lists them "
            "as hidden. Widen the filters to compare them.")


def funnel_card(result):
    return chart_card("Funnel plot", funnel_figure(result), funnel_summary(result),
                      graph_id="quality-funnel-graph",
                      extra=[html.P(CLICK_HINT, className="small text-muted mb-0")])


def paragraphs(texts: list[str]) -> list[html.P]:
    return [html.P(text, className="mb-2") for text in texts]


# Column widths of the unit table, so ten columns fit at 1280 px (the grid's default is 90 px).
GRID_WIDTHS = {"unit": (95, 1.2), "n": (62, 0.8), "events": (72, 0.9), "rate": (72, 0.9),
               "expected": (92, 1.0), "oe": (62, 0.8), "oe_ci": (100, 1.3), "z": (62, 0.8),
               "flag": (108, 1.3), "p_adjusted": (84, 1.0), "completeness": (84, 1.0)}


def _fit_columns(block: html.Div) -> html.Div:
    """Narrow numeric columns, wider text columns (the grid is the block's last child)."""
    grid = block.children[-1]
    for column in getattr(grid, "columnDefs", None) or []:
        min_width, flex = GRID_WIDTHS.get(column["field"], (80, 1))
        # never narrower than data_grid's width for the longest word/number
        column.update(minWidth=max(min_width, column.get("minWidth", 0)), flex=flex)
    return block


def table_card(result, completeness=None) -> dbc.Card:
    table = units_table(result, completeness)
    grid = data_grid(table, "quality-units", f"quality-{result.outcome}-units",
                      column_labels=table_labels(result))
    note = html.P(completeness_note(result.outcome), className="small text-muted mb-0 mt-1",
                  id="quality-completeness-note")
    return dbc.Card([
        dbc.CardHeader(html.H2(f"{unit_name(result.unit, True).capitalize()}: counts, O/E and "
                               "flags (flagged first: alarms, alerts, within limits, then "
                               "not tested and hidden; alphabetical within each, not a "
                               "ranking)",
                               className="h6 mb-0", id="quality-table-caption")),
        dbc.CardBody([_fit_columns(grid), note] if completeness is not None
                     else _fit_columns(grid)),
    ], className="mb-3")


@functools.lru_cache(maxsize=8)
def _completeness(url, version, selection, unit, outcome):
    """Share of each unit's records with the outcome recorded (the table's "Recorded %")."""
    records = _frame(url, version, selection)
    return None if records.empty else outcome_completeness(records, unit, outcome)


def cusum_card(value, detail):
    if value is None:
        return empty_state(detail) if detail else html.Div()
    return html.Div([
        chart_card(f"{unit_name(value.unit).capitalize()} {value.unit_id}: "
                   f"{cusum_outcome_label(value).lower()}", cusum_figure(value),
                   cusum_summary(value), graph_id="quality-cusum-graph"),
        html.P(false_alarm_text(value), className="small fw-semibold",
               id="quality-cusum-false-alarm"),
        html.P(cusum_text(value), className="small", id="quality-cusum-text"),
    ])


# ------------------------------------------------------------------------------- callbacks
def _procedure(value) -> bool:
    return value == "yes"


def _false_alarm(value) -> float:
    try:
        chosen = float(value)
    except (TypeError, ValueError):
        return FALSE_ALARM
    return chosen if 0.0 < chosen < 1.0 else FALSE_ALARM


@callback(
    Output("quality-stats", "children"), Output("quality-funnel", "children"),
    Output("quality-text", "children"), Output("quality-table", "children"),
    Output("quality-cusum-unit", "options"), Output("quality-cusum-unit", "value"),
    Output("quality-explanation-card", "style"), Input("filter-state", "data"), Input("quality-outcome", "value"),
    Input("quality-unit", "value"), Input("quality-adjust", "value"),
    Input("quality-overdispersion", "value"), Input("quality-procedure", "value"),
    State("quality-cusum-unit", "value"),
)
@safe_callback(7)
@cached_output
def update_quality(state, outcome, unit, adjust, overdispersion, procedure="no", current=None):
    """Funnel plot, statistics, unit table, the funnel's explanation and the CUSUM choices."""
    selection, adjusted = _selection(state), adjust == "adjusted"
    result, _failed = _funnel(*_store_key(), selection, unit, outcome, adjusted, overdispersion,
                              _procedure(procedure))
    if result is None:
        return empty_state(), None, None, None, [], None, {"display": "none"}
    if nothing_shown(result):
        return (limitation_state(every_unit_hidden_text(result)), None, None,
                table_card(result), cusum_options(result), None, {"display": "none"})
    options = cusum_options(result)
    allowed = {o["value"] for o in options if not o["disabled"]}
    chosen = current if current in allowed else default_cusum_unit(result)
    completeness = _completeness(*_store_key(), selection, unit, outcome)
    return (stats_row(result), funnel_card(result), paragraphs(funnel_text(result)),
            table_card(result, completeness), options, None if chosen is None else str(chosen),
            {})


@callback(Output("quality-adjustment", "children"), Input("filter-state", "data"),
          Input("quality-outcome", "value"), Input("quality-unit", "value"),
          Input("quality-adjust", "value"), Input("quality-procedure", "value"))
@safe_callback()
@cached_output
def update_adjustment(state, outcome, unit, adjust, procedure="no"):
    """Which adjustment is active (its own callback: the model fit runs beside the funnel's)."""
    key, selection = _store_key(), _selection(state)
    if not _count(*key, selection):
        return None
    model = (_model(*key, selection, outcome, _procedure(procedure))
             if adjust == "adjusted" else None)
    failed = MODEL_FAILED if adjust == "adjusted" and model is None else None
    return paragraphs([adjustment_text(outcome, unit, model, failed)])


@callback(Output("quality-caterpillar", "children"), Input("filter-state", "data"),
          Input("quality-outcome", "value"), Input("quality-unit", "value"),
          Input("quality-adjust", "value"), Input("quality-procedure", "value"))
@safe_callback()
@cached_output
def update_caterpillar(state, outcome, unit, adjust, procedure="no"):
    table = _caterpillar(*_store_key(), _selection(state), unit, outcome, adjust == "adjusted",
                         _procedure(procedure))
    if table is None:
        return html.Div()
    return chart_card("Observed / expected ratios (caterpillar plot)",
                      caterpillar_figure(table, unit, outcome), caterpillar_summary(table, unit),
                      graph_id="quality-caterpillar-graph",
                      extra=[html.P(CLICK_HINT, className="small text-muted mb-0")])


@callback(Output("quality-cusum", "children"), Input("quality-cusum-unit", "value"),
          Input("filter-state", "data"), Input("quality-outcome", "value"),
          Input("quality-unit", "value"), Input("quality-adjust", "value"),
          Input("quality-procedure", "value"), Input("quality-false-alarm", "value"))
@safe_callback()
@cached_output
def update_cusum(unit_id, state, outcome, unit, adjust, procedure="no",
                 false_alarm=DEFAULT_FALSE_ALARM):
    if not unit_id:
        return empty_state("No unit has enough cases and events to chart.")
    value, detail = _cusum(*_store_key(), _selection(state), unit, unit_id, outcome,
                           adjust == "adjusted", _procedure(procedure), _false_alarm(false_alarm))
    if value is None:
        return empty_state(detail)
    return cusum_card(value, detail)


# ---------------------------------------------------------------------------------- report
@register_report(PATH, "Quality monitoring")
def quality_report(selection: RecordFilter, settings: dict | None = None) -> list[ReportSection]:
    """The report with the page's settings (by default: cement leakage, facilities,
    risk-adjusted, procedure not adjusted for, the additive over-dispersion model when the χ²
    test shows over-dispersion, CUSUM limits for a 5% false-alarm probability, the CUSUM unit
    the page would chart first)."""
    settings = settings or settings_from_query(PATH, None)
    outcome, unit = settings["outcome"], settings["unit"]
    adjusted, procedure = settings["adjust"] == "adjusted", _procedure(settings["proc"])
    key = _store_key()
    try:
        result, failed = _funnel(*key, selection, unit, outcome, adjusted, settings["od"],
                                 procedure)
    except AnalysisError as error:  # a selection the funnel cannot support: say so
        return [ReportSection("Funnel plot", mask_small_counts(str(error)))]
    if result is None:
        return [ReportSection("No records", "No records match the filters.")]
    if nothing_shown(result):
        table = units_table(result)
        table = table.astype(object).where(table.notna(), "–").rename(
            columns=table_labels(result))
        return [ReportSection("Units", every_unit_hidden_text(result), table=table)]
    model = _model(*key, selection, outcome, procedure) if result.adjusted else None
    table = units_table(result, _completeness(*key, selection, unit, outcome))
    table = table.astype(object).where(table.notna(), "–").rename(columns=table_labels(result))
    sections = [
        ReportSection("How to read these results", " ".join(interpretation(result, model, failed))),
        ReportSection("Funnel plot", funnel_summary(result), figure=funnel_figure(result)),
        ReportSection("Units", "Flagged units first: alarms, alerts, within limits, then not "
                      "tested and hidden; alphabetical within each, not a ranking. "
                      f"Counts of {range_text()} are "
                      f"shown as {label()} and the values computed from them are hidden. "
                      + completeness_note(outcome), table=table),
    ]
    cat = _caterpillar(*key, selection, unit, outcome, adjusted, procedure)
    if cat is not None:
        sections.append(ReportSection("Observed / expected ratios", caterpillar_summary(cat, unit),
                                      figure=caterpillar_figure(cat, unit, outcome)))
    allowed = {o["value"] for o in cusum_options(result) if not o["disabled"]}
    chosen = settings["cusum"] if settings["cusum"] in allowed else default_cusum_unit(result)
    if chosen is not None and chartable(result.units).any():
        value, detail = _cusum(*key, selection, unit, str(chosen), outcome, adjusted, procedure,
                               _false_alarm(settings["alarm"]))
        if value is not None:
            sections.append(ReportSection(
                f"Risk-adjusted CUSUM and VLAD: {chosen}",
                " ".join([cusum_summary(value), false_alarm_text(value), cusum_text(value)]),
                figure=cusum_figure(value)))
    return sections
