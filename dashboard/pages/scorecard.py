"""Facility scorecard: one facility against the peer group the user chooses and the literature.

The filters select the records (dates, procedure, patients …) of the facility and of its
peers; the facility filter is not applied to the peers: the first facility of the filter (or
of the dropdown) is the one profiled. Peers come from every stored record
(:func:`dashboard.data_access.peer_records`) whatever the user's facility scope; a
facility-restricted user can profile only their own facilities and sees the peers as "Peer
1…N" with no country, region or id. The analysis is :func:`analysis.scorecard.scorecard`
(case-mix model on facility + peers, O/E, rank intervals, random-intercept shrinkage, Laney
p′ chart), cached per (store, data version, user scope, filter, facility, peer group).

Page settings in the URL, declared with :func:`dashboard.state.register_settings` like every
page's (so a link, the Report button and ``python -m dashboard.report`` give the view on
screen): ``sc_facility`` (the profiled facility; when absent, the first facility of the global
``facility`` filter, so older links ``/scorecard?facility=FAC-009`` still open that facility),
``peers`` (all, country, region, volume, list), ``peer_list`` (comma-separated ids, for
``peers=list``; not for restricted users), ``outcome`` (rank and trend charts) and
``anonymise=on`` (``yes`` accepted too; peers as "Peer k" even for users who may see them,
e.g. for a report sent to the facility).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import urllib.parse
from collections.abc import Mapping
from typing import Any, NamedTuple

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, callback, dcc, html

from analysis.errors import InsufficientDataError
from analysis.filters import RecordFilter, apply_filter
from analysis.scorecard import (
    PEER_GROUP_KINDS,
    SCORECARD_OUTCOMES,
    PeerSetFit,
    ScorecardResult,
    facility_profile,
    fit_peer_set,
    peer_group,
    quarterly_p_chart,
    scorecard,
)
from dashboard import data_access
from dashboard.components import (
    chart_card,
    data_grid,
    empty_state,
    limitation_state,
    page_header,
    safe_callback,
)
from dashboard.compute_cache import cached_output
from dashboard.context import database
from dashboard.figures.scorecard import (
    BENCHMARK_NOTE,
    benchmark_rows,
    oe_figure,
    oe_summary,
    outcomes_table,
    rank_figure,
    scorecard_label,
    trend_figure,
    trend_summary,
)
from dashboard.report import ReportSection, register_report
from dashboard.state import PageSetting, register_settings, settings_from_query
from dashboard.suppression import is_small, label, threshold
from data import store

PATH = "/scorecard"
dash.register_page(__name__, path=PATH, name="Scorecard", title="Facility scorecard", order=8,
                   nav_group="Monitoring")

PEER_OPTIONS: dict[str, str] = {
    "all": "All other facilities", "country": "Same country", "region": "Same region",
    "volume": "Similar volume (tertile)", "list": "A chosen list",
}
#: Columns the scorecard reads (the case-mix covariates, outcomes, dates and grouping).
COLUMNS = ("facility_id", "country", "region", "procedure_date", "cement_leakage",
           "pulmonary_embolism", "adjacent_fracture", "adjacent_fracture_days", "followup_days",
           "death_days", "pain_baseline", "pain_month1", "age", "sex", "etiology",
           "levels_treated", "prior_fractures", "procedure")
METHOD_TEXT = (
    "O/E: observed events over those expected of the facility's own patients by a logistic "
    "case-mix model (age, sex, etiology, levels treated, prior fractures) fitted on the "
    "facility and its peers; 95% CI exact Poisson for fewer than ten events, Byar's "
    "approximation from ten. "
    "Risk-adjusted rate: O/E × the peer set's rate. Rank: 1 = lowest O/E; the 95% rank "
    "interval comes from simulating each facility's log O/E from its sampling distribution "
    "(Goldstein & Spiegelhalter, JRSS-A 1996;159:385). Shrunken O/E: a random-intercept "
    "logistic model with the case-mix prediction as offset (maximum likelihood, Laplace "
    "approximation as in R's lme4), predicted over expected events — the approach CMS uses "
    "to profile hospitals (Krumholz et al., Circulation 2006;113:1683); it pulls facilities "
    "with few procedures towards the peer mean, and compares with a typical peer facility "
    "rather than the pooled rate; when the peers vary no more than chance (σ = 0) every "
    "facility is shrunk to 1. Trend: the facility's proportion by quarter (by year when most "
    "quarters have counts too small to show) on "
    "a Laney p′ chart (Laney, Quality Engineering 2002;14:531). New fracture is the 12-month "
    "indicator among procedures whose status at 12 months is known.")


# ------------------------------------------------------------------------------- settings
#: The page's controls kept in the URL. ``sc_facility`` is not the global ``facility`` filter
#: key: the filter selects records, the setting the facility profiled (checked by
#: :func:`resolve` against the facilities the user may profile).
SETTINGS = register_settings(
    PATH,
    PageSetting("scorecard-facility", "sc_facility", None, None, label="Facility profiled",
                names={None: "the facility filter's first (else the first facility)"}),
    PageSetting("scorecard-peers", "peers", "all", tuple(PEER_OPTIONS), label="Peer group",
                names=PEER_OPTIONS),
    PageSetting("scorecard-peer-list", "peer_list", (), None, label="Chosen peers",
                multiple=True),
    PageSetting("scorecard-outcome", "outcome", SCORECARD_OUTCOMES[0], SCORECARD_OUTCOMES,
                label="Outcome of the rank and trend charts",
                names={o: scorecard_label(o) for o in SCORECARD_OUTCOMES}),
    PageSetting("scorecard-anonymise", "anonymise", False, (False, True), prop="data",
                label="Peers anonymised", names={False: "no", True: "yes"},
                aliases={"yes": True, "1": True, "true": True, "no": False}),
)


class ScorecardSettings(NamedTuple):
    """The page settings (from the URL or the controls). A NamedTuple, not a dataclass: Dash
    executes page modules before they are in ``sys.modules``, which dataclasses need."""

    facility: str | None = None
    peers: str = "all"
    peer_list: tuple[str, ...] = ()
    outcome: str = SCORECARD_OUTCOMES[0]
    anonymise: bool = False

    @classmethod
    def from_settings(cls, values: Mapping[str, Any],
                      selection: RecordFilter | None = None) -> ScorecardSettings:
        """Settings from the page's parsed settings (:func:`settings_from_query`); without
        ``sc_facility`` the profiled facility is the first of the filter's facilities."""
        facility = values.get("sc_facility") or None
        if facility is None and selection is not None and selection.facilities:
            facility = selection.facilities[0]
        peers = values.get("peers", "all")
        return cls(facility=facility,
                   peers=peers if peers in PEER_GROUP_KINDS else "all",
                   peer_list=tuple(values.get("peer_list") or ()),
                   outcome=values.get("outcome") or SCORECARD_OUTCOMES[0],
                   anonymise=bool(values.get("anonymise", False)))

    @classmethod
    def from_query(cls, query: Mapping[str, str] | str | None) -> ScorecardSettings:
        """Settings from a query string (or the keyword arguments of a page layout): bad
        values give the defaults, and the filter's first facility is the default facility."""
        from dashboard.state import filter_from_query

        search = ("?" + urllib.parse.urlencode({k: str(v) for k, v in query.items()}, safe=",")
                  if isinstance(query, Mapping) else query)
        return cls.from_settings(settings_from_query(PATH, search), filter_from_query(search))


def _restricted_facilities() -> tuple[str, ...] | None:
    from dashboard.auth import current_user

    return current_user().facilities


def allowed_facilities() -> list[str]:
    """The facilities the user may profile: their own, or every facility."""
    own = _restricted_facilities()
    if own is not None:
        return list(own)
    return sorted(data_access.peer_records()["facility_id"].dropna().astype(str).unique())


def resolve(settings: ScorecardSettings) -> ScorecardSettings:
    """Settings the user may have: a facility they may see, no chosen list and anonymised
    peers for a restricted user."""
    allowed = allowed_facilities()
    facility = settings.facility if settings.facility in allowed else (allowed[0] if allowed
                                                                         else None)
    if _restricted_facilities() is not None:
        peers = "all" if settings.peers == "list" else settings.peers
        return settings._replace(facility=facility, peers=peers, peer_list=(), anonymise=True)
    return settings._replace(facility=facility)


# ------------------------------------------------------------------------------ computing
def _store_key() -> tuple[str, str]:
    from dashboard.auth import scope_key

    url = store.database_url(database())
    return url, f"{data_access.data_version(url)}|{scope_key()}|t{threshold()}"


@functools.lru_cache(maxsize=1)
def _peer_frame(url: str, version: str) -> pd.DataFrame:
    records = data_access.peer_records()
    return records[[c for c in COLUMNS if c in records.columns]]


@functools.lru_cache(maxsize=4)
def _peer_set(url: str, version: str, selection: RecordFilter, members: tuple[str, ...],
              ) -> PeerSetFit:
    """The models of one set of facilities: fitted once for every facility of the set (e.g.
    each facility against all the others, as in the monthly pack)."""
    records = apply_filter(_peer_frame(url, version),
                           dataclasses.replace(selection, facilities=()))
    return fit_peer_set(records, members)


@functools.lru_cache(maxsize=16)
def _card(url: str, version: str, selection: RecordFilter, facility: str, kind: str,
          members: tuple[str, ...]) -> tuple[ScorecardResult | None, str | None]:
    """The scorecard (or why there is none), computed once per view."""
    records = apply_filter(_peer_frame(url, version),
                           dataclasses.replace(selection, facilities=()))
    if records.empty:
        return None, "No records match the filters."
    try:
        profile = facility_profile(records)
        peers = peer_group(profile, facility, kind, members)
        fitted = _peer_set(url, version, selection, tuple(sorted({facility, *peers.members})))
        card = scorecard(records, facility, peers, fitted=fitted)
    except InsufficientDataError as error:
        return None, str(error)
    own = records[(records["facility_id"] == facility).to_numpy()]
    return dataclasses.replace(card, trends=readable_trends(card.trends, own)), None


def readable_trends(trends: dict[str, pd.DataFrame], own: pd.DataFrame
                    ) -> dict[str, pd.DataFrame]:
    """Quarterly charts, or yearly ones where most quarters have counts too small to show."""
    out = {}
    for outcome, chart in trends.items():
        hidden = (is_small(chart["count"]) | is_small(chart["total"] - chart["count"])
                  | is_small(chart["total"]))
        if hidden.mean() > 0.5:
            with contextlib.suppress(InsufficientDataError):
                chart = quarterly_p_chart(own, outcome, period="Y")
        out[outcome] = chart
    return out


def compute(selection: RecordFilter, settings: ScorecardSettings
            ) -> tuple[ScorecardResult | None, str | None, ScorecardSettings]:
    chosen = resolve(settings)
    if chosen.facility is None:
        return None, "No facility to profile.", chosen
    card, reason = _card(*_store_key(), selection, chosen.facility, chosen.peers,
                         chosen.peer_list)
    return card, reason, chosen


def peer_text(card: ScorecardResult, anonymise: bool) -> str:
    peers = card.peers
    if anonymise:
        kind = PEER_OPTIONS.get(peers.kind, peers.kind).lower()
        return (f"{card.facility} compared with {len(peers.members)} peer facilities "
                f"({kind}); peers are shown without their names.")
    return (f"{card.facility} compared with {len(peers.members)} peer facilities "
            f"({peers.description}): "
            f"{', '.join(peers.members)}.")


# --------------------------------------------------------------------------------- layout
def layout(**query) -> html.Div:
    settings = ScorecardSettings.from_query({k: str(v) for k, v in query.items()})
    try:
        chosen = resolve(settings)
        facilities = allowed_facilities()
    except Exception:  # noqa: BLE001 - no store yet: the callbacks show the empty state
        chosen, facilities = settings, []
    restricted = _restricted_facilities() is not None
    kinds = {k: v for k, v in PEER_OPTIONS.items() if not (restricted and k == "list")}
    controls = dbc.Card(dbc.CardBody(dbc.Row([
        dbc.Col([
            dbc.Label("Facility", html_for="scorecard-facility", className="small fw-semibold"),
            dcc.Dropdown(id="scorecard-facility", value=chosen.facility, clearable=False,
                         options=[{"label": f, "value": f} for f in facilities]),
        ], xs=12, lg=3),
        dbc.Col(html.Fieldset([
            html.Legend("Peer group", className="form-label small fw-semibold mb-1 fs-6"),
            dbc.RadioItems(id="scorecard-peers", value=chosen.peers, inline=True,
                           options=[{"label": v, "value": k} for k, v in kinds.items()]),
        ]), xs=12, lg=5),
        dbc.Col([
            dbc.Label("Chosen peers (for “a chosen list”)", html_for="scorecard-peer-list",
                      className="small fw-semibold"),
            dcc.Dropdown(id="scorecard-peer-list", multi=True, value=list(chosen.peer_list),
                         disabled=restricted,
                         options=[] if restricted else
                         [{"label": f, "value": f} for f in facilities]),
        ], xs=12, lg=4),
        dbc.Col([
            dbc.Label("Outcome of the rank and trend charts", html_for="scorecard-outcome",
                      className="small fw-semibold"),
            dcc.Dropdown(id="scorecard-outcome", value=chosen.outcome, clearable=False,
                         options=[{"label": scorecard_label(o), "value": o}
                                  for o in SCORECARD_OUTCOMES]),
        ], xs=12, lg=4),
    ], className="g-2")), className="mb-3")
    loading = {"delay_show": 400, "overlay_style": {"visibility": "visible", "opacity": 0.5}}
    return html.Div([
        page_header("Facility scorecard", "One facility against a peer group and published "
                    "figures: risk-adjusted rates, observed/expected ratios, ranks with their "
                    "uncertainty, estimates shrunk for small volumes, and the quarterly trend."),
        dcc.Store(id="scorecard-anonymise", data=chosen.anonymise),
        controls,
        dcc.Loading(html.Div(id="scorecard-main"), **loading),
        dcc.Loading(html.Div(id="scorecard-detail"), **loading),
    ])


@callback(Output("scorecard-main", "children"), Input("filter-state", "data"),
          Input("scorecard-facility", "value"), Input("scorecard-peers", "value"),
          Input("scorecard-peer-list", "value"), Input("scorecard-anonymise", "data"))
@safe_callback()
@cached_output
def update_main(state, facility, peers, peer_list, anonymise=False):
    settings = ScorecardSettings(facility, peers or "all", tuple(peer_list or ()),
                                 anonymise=bool(anonymise))
    card, reason, chosen = compute(RecordFilter.from_dict(state or {}), settings)
    if card is None:
        return limitation_state(reason) if reason else empty_state()
    return html.Div(main_blocks(card, chosen.anonymise))


@callback(Output("scorecard-detail", "children"), Input("filter-state", "data"),
          Input("scorecard-facility", "value"), Input("scorecard-peers", "value"),
          Input("scorecard-peer-list", "value"), Input("scorecard-outcome", "value"),
          Input("scorecard-anonymise", "data"))
@safe_callback()
@cached_output
def update_detail(state, facility, peers, peer_list, outcome, anonymise=False):
    settings = ScorecardSettings(facility, peers or "all", tuple(peer_list or ()),
                                 outcome or SCORECARD_OUTCOMES[0], bool(anonymise))
    card, _reason, chosen = compute(RecordFilter.from_dict(state or {}), settings)
    if card is None:
        return None
    chart = card.trends.get(chosen.outcome)
    return html.Div([
        chart_card(f"Rank among the peer set: {scorecard_label(chosen.outcome)}",
                   rank_figure(card, chosen.outcome, chosen.anonymise),
                   "Facilities with counts of " + label() + " are not drawn (they are ranked).",
                   graph_id="scorecard-rank-graph"),
        chart_card(f"Trend (Laney p′ chart): {scorecard_label(chosen.outcome)}",
                   trend_figure(chart, card.facility, chosen.outcome),
                   trend_summary(chart, chosen.outcome), graph_id="scorecard-trend-graph"),
    ])


def main_blocks(card: ScorecardResult, anonymise: bool) -> list:
    table = outcomes_table(card)
    benchmarks = benchmark_rows(list(card.to_frame()["outcome"]))
    notes = [html.P(peer_text(card, anonymise), id="scorecard-peer-text", className="small"),
             html.P(METHOD_TEXT, className="small text-muted")]
    return [
        dbc.Card(dbc.CardBody(notes), className="mb-3"),
        chart_card("Observed / expected against the peers", oe_figure(card, anonymise),
                   oe_summary(card), graph_id="scorecard-oe-graph"),
        html.Div(data_grid(table, "scorecard-table", "scorecard",
                           min_widths={"Outcome": 150, "O/E (95% CI)": 110,
                                       "Shrunken O/E (95% CI)": 110}),
                 id="scorecard-table-block"),
        dbc.Card([dbc.CardHeader(html.H2("Published figures", className="h6 mb-0")),
                  dbc.CardBody([html.P(BENCHMARK_NOTE, className="small"),
                                data_grid(benchmarks, "scorecard-benchmarks",
                                          "scorecard-benchmarks")])], className="mb-3"),
    ]


# --------------------------------------------------------------------------------- report
@register_report(PATH, "Facility scorecard")
def scorecard_report(selection: RecordFilter,
                     settings: Mapping[str, Any] | None = None) -> list[ReportSection]:
    """The scorecard as report sections; ``settings`` are the page settings of the URL
    (:func:`settings_from_query`; the profiled facility defaults to the first of the filter's
    facilities, as on screen)."""
    values = settings if settings is not None else settings_from_query(PATH, None)
    card, reason, chosen = compute(selection, ScorecardSettings.from_settings(values, selection))
    if card is None:
        return [ReportSection("Scorecard", reason or "No records match the filters.")]
    frame = card.to_frame()
    sections = [
        ReportSection(f"Scorecard of {card.facility}",
                      peer_text(card, chosen.anonymise) + "\n\n" + METHOD_TEXT,
                      table=outcomes_table(card)),
        ReportSection("Observed / expected against the peers", oe_summary(card),
                      figure=oe_figure(card, chosen.anonymise)),
    ]
    for outcome in frame["outcome"]:
        chart = card.trends.get(outcome)
        sections.append(ReportSection(
            f"Trend (Laney p′ chart): {scorecard_label(outcome)}", trend_summary(chart, outcome),
            figure=trend_figure(chart, card.facility, outcome)))
    sections.append(ReportSection(
        f"Rank among the peer set: {scorecard_label(chosen.outcome)}",
        "1 = lowest O/E, with the 95% rank interval.",
        figure=rank_figure(card, chosen.outcome, chosen.anonymise)))
    sections.append(ReportSection("Published figures", BENCHMARK_NOTE,
                                  table=benchmark_rows(list(frame["outcome"]))))
    return sections
