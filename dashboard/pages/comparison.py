"""VP vs KP statistics: Table 1, every outcome's unadjusted and adjusted effect, covariate
balance, propensity overlap, minimum detectable differences and what the methods can and
cannot tell.

Heavy work and caching
----------------------
Measured on 1,000,000 demo records (2-CPU machine): ``compare_procedures(adjust=True)``
8–20 s, Table 1 unweighted + IPTW-weighted with the propensity model 10–18 s (``table_one``
alone takes 7–8 s per call at that size), the minimum detectable differences 0.25 s. So the
first two run in **Dash background callbacks** (``background=True``, a ``DiskcacheManager``
passed on the callback): each job runs in a process forked from the web server, the page
stays responsive, the confidence-level control and the clustering switch are disabled and a
status line says what is being computed while the previous result stays visible, dimmed (no
spinner, so no flicker).
Background callbacks work in this project's tests and browser tests: the forked job inherits
the request's ``flask.current_app``, and :func:`dashboard.compute_cache.prepare_forked_job`
gives it database connections of its own.

Results are cached on one bounded on-disk ``diskcache`` (200 MB, least recently used entries
evicted; ``VA_CACHE_DIR`` or ``instance/cache``) that every worker process shares:

* Dash caches each background callback's output per inputs and ``cache_by`` = (data version,
  suppression threshold, code version), so a repeat visit shows the result after one 0.5 s
  poll without recomputing;
* the analysis results are memoised per (code version, data version, canonical filter JSON,
  confidence level) by :func:`dashboard.compute_cache.memoised`, used by the callbacks, the
  page report and the tests (and by a callback whose rendered output is not cached yet).

A new import changes the data version, so both caches miss and the page recomputes. The
minimum detectable differences use a normal callback and show first.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, callback, dcc, html

import analysis
from analysis.adjustment import SMD_THRESHOLD
from analysis.filters import RecordFilter
from dashboard.components import chart_card, data_grid, empty_state, page_header, safe_callback
from dashboard.compute_cache import (
    background_manager,
    code_version,
    data_key,
    filter_key,
    memoised,
    prepare_forked_job,
)
from dashboard.data_access import filtered_records
from dashboard.figures import comparison as fig
from dashboard.report import ReportSection, register_report
from dashboard.state import PageSetting, register_settings, settings_from_query
from dashboard.suppression import format_count, label, suppress_table

dash.register_page(
    __name__, path="/comparison", name="VP vs KP", title="VP vs KP statistics", order=5
)

#: The analysis package and this page's figures module: cached results are keyed by it too.
CODE_VERSION = code_version(analysis, fig)
MANAGER = background_manager(lambda: CODE_VERSION)
#: The page's controls kept in the URL (``?level=0.9&cluster=off&p=on``).
SETTINGS = register_settings(
    "/comparison",
    PageSetting("comparison-table-one-p", "p", False, (True, False),
                label="Baseline p-values in Table 1", names={True: "shown", False: "hidden"}),
    PageSetting("comparison-level", "level", fig.DEFAULT_LEVEL, tuple(fig.LEVELS),
                label="Confidence level", names=fig.LEVELS),
    PageSetting("comparison-cluster", "cluster", True, (True, False),
                label="Intervals clustered by facility", names={True: "yes", False: "no"}),
)
DIMMED = {"opacity": 0.45, "transition": "opacity 0.3s"}
BASELINE_RUNNING = (
    "Computing Table 1, propensity scores and balance… Large selections take up "
    "to a minute; results are kept for the next visit."
)
EFFECTS_RUNNING = (
    "Computing the unadjusted and adjusted comparisons… Large selections take up "
    "to a minute; results are kept for the next visit."
)

EFFECTS_INTRO = (
    "Differences are KP − VP, ratios KP / VP; RD risk difference in percentage points, MD "
    "difference in means. p (BH): Benjamini–Hochberg adjusted over the outcomes (on the "
    "adjusted p where there is one). Each effect shows its interval and its p-value. The "
    "methods and notes of every outcome (they say when and why a method was skipped) and the "
    "IPTW sensitivity estimates, where computed, are listed under the table."
)
CLUSTER_TEXT = {
    True: (
        "Intervals and p-values are clustered by facility: patients of one facility are not "
        "independent, so the variance is cluster-robust (sandwich, Lin–Wei for the Cox model, "
        "a bootstrap of whole facilities for the cost difference) with a t distribution on "
        "facilities − 1 degrees of freedom. Estimates do not change."
    ),
    False: (
        "Intervals and p-values are model-based: they assume every patient is independent, "
        "which records from the same facility are not, so they are too narrow when outcomes "
        "cluster by facility."
    ),
}


def layout(**query) -> html.Div:
    chosen = settings_from_query("/comparison", query)
    status = {"role": "status", "aria-live": "polite", "className": "small text-muted mb-2"}
    return html.Div(
        [
            page_header(
                "VP vs KP statistics",
                "Kyphoplasty (KP) compared with vertebroplasty (VP) "
                "for the selected records: who was treated (Table 1), every outcome's "
                "unadjusted and adjusted difference, whether the adjustment balanced the "
                "groups, and how large a difference these numbers can detect.",
            ),
            dbc.Alert(
                [
                    "Observational data: these are associations, not proof that one procedure "
                    "causes better outcomes. KP is chosen more often for some patients "
                    "(confounding by indication); adjustment covers recorded characteristics "
                    "only. ",
                    html.A("How to read these statistics", href="#comparison-notes"),
                ],
                color="secondary",
                className="py-2 small",
            ),
            html.Div(id="comparison-baseline-status", **status),
            dbc.Switch(
                id="comparison-table-one-p",
                label="Show baseline p-values in Table 1 (off: balance is judged by the SMD)",
                value=chosen["p"],
                className="small mb-1",
            ),
            html.Div(id="comparison-table-one"),
            dbc.Card(
                dbc.CardBody(
                    dbc.Row(
                        [
                            dbc.Col(
                                dbc.Label(
                                    "Confidence level of the intervals",
                                    html_for="comparison-level",
                                    className="small mb-0",
                                ),
                                width="auto",
                                className="align-self-center",
                            ),
                            dbc.Col(
                                dcc.Dropdown(
                                    id="comparison-level",
                                    value=chosen["level"],
                                    clearable=False,
                                    searchable=False,
                                    style={"minWidth": "8rem"},
                                    options=[
                                        {"label": t, "value": v} for v, t in fig.LEVELS.items()
                                    ],
                                ),
                                width="auto",
                            ),
                            dbc.Col(
                                dbc.Switch(
                                    id="comparison-cluster",
                                    label="Intervals clustered by facility",
                                    value=chosen["cluster"],
                                    className="small mb-0",
                                ),
                                width="auto",
                                className="align-self-center ms-3",
                            ),
                        ],
                        className="g-2",
                    )
                ),
                className="mb-2",
                id="comparison-controls",
            ),
            html.Div(id="comparison-effects-status", **status),
            html.Div(id="comparison-effects"),
            html.Div(id="comparison-diagnostics"),
            dcc.Loading(
                html.Div(id="comparison-mdd"),
                delay_show=400,
                overlay_style={"visibility": "visible", "opacity": 0.5},
            ),
            notes_card(),
        ]
    )


# --------------------------------------------------------------------------------------------
# Cached analyses (shared by the callbacks and the report)
# --------------------------------------------------------------------------------------------


def _memoised(namespace: str, selection: RecordFilter, analyse, *extra):
    """``analyse(records)`` of the selection, or None when no record matches; on disk per
    (code version, data version, filter, extra)."""

    def compute():
        records = filtered_records(selection)
        return None if records.empty else analyse(records)

    return memoised(namespace, (CODE_VERSION, data_key(), filter_key(selection), *extra), compute)


def baseline(selection: RecordFilter) -> fig.BaselineResult | None:
    return _memoised("comparison-baseline", selection, fig.baseline_analysis)


def comparison(
    selection: RecordFilter, level: float = fig.DEFAULT_LEVEL, clustered: bool = True
) -> pd.DataFrame | None:
    return _memoised(
        "comparison-effects",
        selection,
        lambda records: fig.comparison_analysis(records, level, clustered),
        level,
        *(() if clustered else ("model-based",)),
    )


def _level(value) -> float:
    return float(value) if value in fig.LEVELS else fig.DEFAULT_LEVEL


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


TABLE_ONE_WIDTHS = {
    "Characteristic": 150,
    "VP": 112,
    "KP": 112,
    "Missing (VP / KP)": 88,
    "p-value": 70,
    "SMD": 66,
    "VP (IPTW)": 120,
    "KP (IPTW)": 120,
    "SMD (IPTW)": 70,
}


#: Columns of the effects table that are shown inside other cells (n under each procedure's
#: estimate, p beside each effect) or in the list of methods and notes under it (the methods,
#: the notes and the IPTW sensitivity estimate, which exists for few outcomes): hidden in the
#: grid, kept in its data and so in its CSV download.
EFFECTS_HIDDEN = ("n VP", "n KP", "Unadjusted p", "Adjusted p", "IPTW p", "Unadjusted method",
                  "Adjusted method", "Notes")
#: Pixels per character of the grid's 12 px font (generous), and a cell's padding.
_CHAR_PX, _CELL_PAD = 6.9, 20


def _line_width(texts) -> int:
    return int(max((len(str(t)) for t in texts), default=0) * _CHAR_PX) + _CELL_PAD


def effect_lines(value: str, p: str) -> tuple[str, str]:
    """The two lines ``VaEffectCell`` (dashboard/assets) shows: the estimate over its
    interval, with the p-value on the shorter of the two.

    Examples
    --------
    >>> effect_lines("RD −15.6 pp (−19.1 to −12.1)", "<0.001")
    ('RD −15.6 pp, p <0.001', '(−19.1 to −12.1)')
    >>> effect_lines("ratio of means 1.43 (1.36 to 1.51)", "<0.001")
    ('ratio of means 1.43', '(1.36 to 1.51), p <0.001')
    """
    estimate, _, interval = str(value or "").partition(" (")
    interval = f"({interval}" if interval else ""
    if not p:
        return estimate, interval
    if interval and len(interval) < len(estimate):
        return estimate, f"{interval}, p {p}"
    return f"{estimate}, p {p}", interval


def effects_grid(shown: pd.DataFrame, level: float, clustered: bool) -> html.Div:
    """The effects table at most two lines a row: each procedure's estimate over its n, each
    effect over its interval with its p; the other columns hidden (``EFFECTS_HIDDEN``).

    Column widths fit the longest line of each column, so no line is cut and the table fits a
    1366 px screen without sideways scrolling."""
    block = data_grid(shown, "comparison-effects", "comparison-effects")
    ci = fig.ci_label(level, clustered)
    hidden = {*EFFECTS_HIDDEN, f"IPTW ({ci})"}
    widths = {"Outcome": 230}
    for group in ("VP", "KP"):
        widths[group] = _line_width([*shown[group], *(f"n {n}" for n in shown[f"n {group}"])])
    for title in ("Unadjusted", "Adjusted"):
        column = f"{title} ({ci})"
        widths[column] = max(110, _line_width(
            [line for value, p in zip(shown[column], shown[f"{title} p"], strict=True)
             for line in effect_lines(value, p)]))
    widths["p (BH)"] = max(_line_width(shown["p (BH)"]), 70)
    renderers = {"Outcome": ("VaOutcomeCell", {}),
                 "VP": ("VaGroupCell", {"n": "n VP"}), "KP": ("VaGroupCell", {"n": "n KP"}),
                 **{f"{t} ({ci})": ("VaEffectCell", {"p": f"{t} p"})
                    for t in ("Unadjusted", "Adjusted")}}
    for column in block.children[1].columnDefs:
        name = column["field"]
        if name in hidden:
            column["hide"] = True
            continue
        column["minWidth"] = widths.get(name, column["minWidth"])
        column["flex"] = 2 if name == "Outcome" else 1
        if name in renderers:
            renderer, parameters = renderers[name]
            column.update(cellRenderer=renderer, cellRendererParams=parameters, wrapText=True,
                          autoHeight=True, cellClass="va-wrap")
        if name == "Outcome":
            column["tooltipField"] = "Outcome"
    return block


def effects_list(shown: pd.DataFrame, level: float, clustered: bool) -> html.Div:
    """The effects table as one block per outcome, for narrow windows (below 992 px)."""
    ci = fig.ci_label(level, clustered)
    blocks = []
    for row in shown.to_dict("records"):
        items = [("VP", f"{row['VP']} (n {row['n VP']})"), ("KP", f"{row['KP']} (n {row['n KP']})")]
        for title in ("Unadjusted", "Adjusted", "IPTW"):
            value = row[f"{title} ({ci})"]
            if value:
                p = row[f"{title} p"]
                items.append((f"{title} ({ci})", f"{value}, p {p}" if p else value))
        if row["p (BH)"]:
            items.append(("p (BH)", row["p (BH)"]))
        blocks.append(html.Div(
            [html.H3(str(row["Outcome"]).split(": ")[0], className="h6 mb-1"),
             html.Dl([part for label_, value in items
                      for part in (html.Dt(label_, className="col-5 fw-normal text-muted"),
                                   html.Dd(value, className="col-7 mb-1"))],
                     className="row small mb-0")],
            className="border-bottom py-2", **{"data-outcome": str(row["Outcome"])}))
    return html.Div(blocks, id="comparison-effects-list", className="d-lg-none mb-3")


def effects_methods(shown: pd.DataFrame, level: float, clustered: bool) -> html.Details:
    """Each outcome's full definition, its unadjusted and adjusted methods, its IPTW
    sensitivity estimate where there is one, and its notes."""
    ci = fig.ci_label(level, clustered)
    blocks = []
    for row in shown.to_dict("records"):
        items = [("Unadjusted", row["Unadjusted method"]), ("Adjusted", row["Adjusted method"])]
        if row[f"IPTW ({ci})"]:
            p = row["IPTW p"]
            items.append((f"IPTW ({ci})", row[f"IPTW ({ci})"] + (f", p {p}" if p else "")))
        if row["Notes"]:
            items.append(("Notes", row["Notes"]))
        blocks.append(html.Div(
            [html.H3(row["Outcome"], className="h6 mb-1"),
             html.Dl([part for label_, value in items
                      for part in (html.Dt(label_, className="col-sm-2 fw-normal text-muted"),
                                   html.Dd(value, className="col-sm-10 mb-1"))],
                     className="row small mb-0")],
            className="border-bottom py-2", **{"data-outcome": str(row["Outcome"])}))
    return html.Details(
        [html.Summary("Methods and notes for each outcome", className="small fw-semibold"),
         *blocks],
        open=True, id="comparison-effects-methods")


def _compact(grid: html.Div, font_size: str | None = None) -> html.Div:
    """Narrower cell padding (and optionally a smaller font), so that wide tables fit a
    laptop screen."""
    extra = {"fontSize": font_size} if font_size else {}
    for column in grid.children[1].columnDefs:
        column["cellStyle"] = {
            **column.get("cellStyle", {}),
            "paddingLeft": "8px",
            "paddingRight": "8px",
            **extra,
        }
    return grid


def _unpaged(grid: html.Div) -> html.Div:
    """Every row of a ``data_grid`` shown (no pagination, no inner scrolling), and every
    column rendered, so that wrapped cells off to the right still size their rows."""
    table = grid.children[1]
    table.dashGridOptions = {"domLayout": "autoHeight", "suppressColumnVirtualisation": True}
    table.style = {}
    return grid


def _wide_only(block: html.Div) -> html.Div:
    """The grid of a ``data_grid`` block shown from 992 px up (its download button always)."""
    block.children[1].className += " d-none d-lg-block"
    return block


def _card(title: str, body: list, card_id: str) -> dbc.Card:
    return dbc.Card(
        [dbc.CardHeader(html.H2(title, className="h6 mb-0")), dbc.CardBody(body)],
        className="mb-3",
        id=card_id,
    )


def table_one_section(result: fig.BaselineResult, p_values: bool = False) -> dbc.Card:
    shown = fig.table_one_display(result.table_one, result.table_one_weighted, p_values)
    weighted = (
        "IPTW columns: the same patients weighted by the inverse probability of the "
        "procedure they received (stabilised ATE weights), sums of weights for counts."
        if result.table_one_weighted is not None
        else f"No IPTW-weighted columns: {fig.redact_counts(result.ps_error)}."
    )
    return _card(
        "Baseline characteristics by procedure (Table 1)",
        [
            html.P(
                [
                    "Percentages of the non-missing values. SMD: standardised mean difference "
                    f"KP − VP; |SMD| < {SMD_THRESHOLD:g} is usually taken as balanced. Balance "
                    "is judged by the SMD, not by tests (STROBE item 14a), so baseline p-values "
                    "are off by default; "
                    + (
                        "shown here: Welch's t-test for numbers; chi-square test for "
                        "categories, or Fisher's exact test when expected counts are small "
                        "(Monte Carlo for tables larger than 2 × 2). "
                        if p_values
                        else "the switch above adds them. "
                    ),
                    weighted,
                    f" Counts from 1 to 10 show as {label()}.",
                ],
                className="small text-muted",
            ),
            _unpaged(
                _compact(
                    data_grid(
                        shown,
                        "comparison-table-one",
                        "comparison-table-one",
                        flex={
                            "Characteristic": 1.8,
                            "VP": 1.2,
                            "KP": 1.2,
                            "VP (IPTW)": 1.2,
                            "KP (IPTW)": 1.2,
                        },
                        min_widths=TABLE_ONE_WIDTHS,
                    ),
                    font_size="13px",
                )
            ),
            html.P(
                fig.table_one_summary(result.table_one, result.table_one_weighted),
                id="comparison-table-one-summary",
                className="small text-muted mb-0",
            ),
        ],
        "comparison-table-one-card",
    )


def effects_section(table: pd.DataFrame, level: float) -> html.Div:
    shown = fig.effects_table(table, level)
    clustered = fig.is_clustered(table)
    return html.Div(
        [
            chart_card(
                "Effects of KP compared with VP, unadjusted and adjusted",
                fig.forest_figure(table, level),
                fig.forest_summary(table, level),
                graph_id="comparison-forest",
            ),
            _card(
                "Effect estimates, methods and notes",
                [
                    html.P(EFFECTS_INTRO, className="small text-muted"),
                    html.P(
                        CLUSTER_TEXT[clustered],
                        id="comparison-cluster-text",
                        className="small text-muted",
                    ),
                    _wide_only(_unpaged(_compact(effects_grid(shown, level, clustered),
                                                 font_size="12px"))),
                    effects_list(shown, level, clustered),
                    effects_methods(shown, level, clustered),
                ],
                "comparison-effects-card",
            ),
        ]
    )


def diagnostics_section(result: fig.BaselineResult) -> html.Div:
    if result.ps_error:
        return dbc.Alert(
            f"Balance and overlap are not available: {fig.redact_counts(result.ps_error)}.",
            color="info",
            id="comparison-ps-error",
        )
    hidden = fig.hidden_covariates(result.balance, result.table_one)
    histogram = suppress_table(
        result.histogram.assign(
            procedure=result.histogram["procedure"].map({fig.VP: "VP", fig.KP: "KP"}),
            bin_start=result.histogram["bin_start"].round(3),
            bin_end=result.histogram["bin_end"].round(3),
        ),
        ["count"],
    ).drop(columns="suppressed")
    warning = (
        dbc.Alert(
            [
                "Positivity warning: ",
                result.positivity_warning,
                ". Estimates rest "
                "on few patients where one procedure is almost never used; consider "
                "restricting the selection.",
            ],
            color="warning",
            id="comparison-positivity",
        )
        if result.positivity_warning
        else html.P(
            "No positivity warning: fewer than 1% of the scores are below 0.025 or "
            "above 0.975 and no weight exceeds 20.",
            id="comparison-positivity",
            className="small",
        )
    )
    return html.Div(
        [
            chart_card(
                "Covariate balance before and after IPTW",
                fig.love_plot(result.balance, hidden),
                fig.love_summary(result.balance, hidden),
                graph_id="comparison-love",
                table=data_grid(
                    fig.balance_table(result.balance, hidden),
                    "comparison-balance",
                    "comparison-balance",
                ),
            ),
            chart_card(
                "Propensity score overlap",
                fig.overlap_figure(result.histogram),
                fig.overlap_summary(result),
                graph_id="comparison-overlap",
                table=data_grid(histogram, "comparison-overlap-bins", "comparison-overlap-bins"),
            ),
            _card(
                "IPTW weights",
                [
                    warning,
                    html.P(
                        f"Propensity model: {result.formula}. {format_count(result.n_used)} records modelled"
                        + (
                            f", {result.n_dropped_missing:,} left out for a missing characteristic"
                            if result.n_dropped_missing
                            else ""
                        )
                        + f". c-statistic {result.c_statistic:.2f} (0.5: the characteristics "
                        "do not predict the procedure; near 1: little overlap).",
                        className="small",
                    ),
                    _compact(
                        data_grid(
                            fig.weight_summary_table(result.weight_summary),
                            "comparison-weights",
                            "comparison-weights",
                            flex={"Group": 2},
                            min_widths={"Group": 160, "n": 90},
                        )
                    ),
                ],
                "comparison-weights-card",
            ),
        ]
    )


def mdd_section(mdd: pd.DataFrame) -> dbc.Card:
    return _card(
        "Minimum detectable differences (80% power, two-sided α 0.05)",
        [
            html.P(
                "The smallest true KP − VP difference the current numbers of patients would "
                "detect 4 times out of 5. Smaller true differences may well exist: a "
                "non-significant result is not proof of no difference.",
                className="small text-muted",
            ),
            data_grid(
                fig.mdd_table(mdd),
                "comparison-mdd",
                "comparison-mdd",
                flex={"Outcome": 1.6, "Reference": 1.4},
                min_widths={"Outcome": 170},
            ),
            html.P(
                fig.mdd_summary(mdd), id="comparison-mdd-summary", className="small text-muted mb-0"
            ),
        ],
        "comparison-mdd-card",
    )


def notes_card() -> dbc.Card:
    def items(notes):
        return html.Ul(
            [html.Li([html.Strong(f"{title}. "), text]) for title, text in notes],
            className="small mb-2",
        )

    return _card(
        "How to read these statistics",
        [
            html.H3("What each method means", className="h6"),
            items(fig.METHOD_NOTES),
            html.H3("Limits", className="h6"),
            items(fig.LIMIT_NOTES),
            html.P(
                [
                    "Formulas and sources: ",
                    html.A("Methods", href="/methods#methods-adjustment"),
                    ".",
                ],
                className="small mb-0",
            ),
        ],
        "comparison-notes",
    )


# --------------------------------------------------------------------------------------------
# Callbacks
# --------------------------------------------------------------------------------------------


@callback(Output("comparison-mdd", "children"), Input("filter-state", "data"))
@safe_callback()
def update_mdd(state):
    records = filtered_records(RecordFilter.from_dict(state))
    return empty_state() if records.empty else mdd_section(fig.mdd_analysis(records))


@callback(
    Output("comparison-table-one", "children"),
    Output("comparison-diagnostics", "children"),
    Input("filter-state", "data"),
    Input("comparison-table-one-p", "value"),
    background=True,
    manager=MANAGER,
    interval=500,
    running=[
        (Output("comparison-baseline-status", "children"), BASELINE_RUNNING, ""),
        (Output("comparison-table-one", "style"), DIMMED, {}),
        (Output("comparison-diagnostics", "style"), DIMMED, {}),
    ],
)
@safe_callback(2)
def update_baseline(state, p_values=False):
    prepare_forked_job()
    result = baseline(RecordFilter.from_dict(state))
    if result is None:
        return empty_state(), None
    return table_one_section(result, bool(p_values)), diagnostics_section(result)


@callback(
    Output("comparison-effects", "children"),
    Input("filter-state", "data"),
    Input("comparison-level", "value"),
    Input("comparison-cluster", "value"),
    background=True,
    manager=MANAGER,
    interval=500,
    running=[
        (Output("comparison-level", "disabled"), True, False),
        (Output("comparison-cluster", "disabled"), True, False),
        (Output("comparison-effects-status", "children"), EFFECTS_RUNNING, ""),
        (Output("comparison-effects", "style"), DIMMED, {}),
    ],
)
@safe_callback()
def update_effects(state, level, clustered=True):
    prepare_forked_job()
    level = _level(level)
    table = comparison(RecordFilter.from_dict(state), level, clustered is not False)
    return empty_state() if table is None else effects_section(table, level)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


@register_report("/comparison", "VP vs KP statistics")
def comparison_report(selection: RecordFilter, settings: dict | None = None) -> list[ReportSection]:
    """The page's report with its settings (confidence level, clustering, Table 1 p-values)."""
    settings = settings or settings_from_query("/comparison", None)
    result = baseline(selection)
    if result is None:
        return [ReportSection("No records", "No records match the filters.")]
    level = _level(settings["level"])
    table = comparison(selection, level, settings["cluster"] is not False)
    mdd = fig.mdd_analysis(filtered_records(selection))
    sections = [
        ReportSection(
            "Baseline characteristics by procedure (Table 1)",
            fig.table_one_summary(result.table_one, result.table_one_weighted),
            table=fig.table_one_display(result.table_one, result.table_one_weighted,
                                        bool(settings["p"])),
        ),
        ReportSection(
            "Effects of KP compared with VP",
            fig.forest_summary(table, level),
            figure=fig.forest_figure(table, level),
            table=fig.effects_table(table, level),
        ),
    ]
    if result.ps_error:
        sections.append(
            ReportSection(
                "Balance and overlap", f"Not available: {fig.redact_counts(result.ps_error)}."
            )
        )
    else:
        hidden = fig.hidden_covariates(result.balance, result.table_one)
        sections += [
            ReportSection(
                "Covariate balance before and after IPTW",
                fig.love_summary(result.balance, hidden),
                figure=fig.love_plot(result.balance, hidden),
                table=fig.balance_table(result.balance, hidden),
            ),
            ReportSection(
                "Propensity score overlap and weights",
                fig.overlap_summary(result)
                + ("" if result.positivity_warning else " No positivity warning."),
                figure=fig.overlap_figure(result.histogram),
                table=fig.weight_summary_table(result.weight_summary),
            ),
        ]
    sections += [
        ReportSection(
            "Minimum detectable differences (80% power, two-sided α 0.05)",
            fig.mdd_summary(mdd),
            table=fig.mdd_table(mdd),
        ),
        ReportSection("How to read these statistics", fig.notes_text()),
    ]
    return sections
