"""Key figures of a selection, VP and KP side by side: what the Overview shows.

One call gives, per procedure, the number of procedures, the headline rates (pain relief at
one month, cement leakage, cement embolism, new fracture by 12 months as a cumulative
incidence) and the medians of procedure duration and cost (in US dollars), each with its
interval and the counts it rests on. Display and small-cell suppression are the caller's.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from analysis._results import Result
from analysis.costs import CostOptions, converted_costs
from analysis.descriptive import median_ci
from analysis.outcomes import ResponderDefinition, outcome_summary

#: The procedures compared, reference first.
PROCEDURES: tuple[str, ...] = ("vertebroplasty", "kyphoplasty")
#: The rates among the key figures (outcome names of :func:`analysis.outcomes.outcome_summary`).
KEY_OUTCOMES: tuple[str, ...] = ("responder", "cement_leakage", "pulmonary_embolism",
                                 "adjacent_fracture_12m")
#: Every measure, in display order.
MEASURES: tuple[str, ...] = ("procedures", *KEY_OUTCOMES, "median_duration_min",
                             "median_cost_usd")
COLUMNS = ("procedure", "measure", "estimate", "low", "high", "n", "events", "at_risk")


@dataclasses.dataclass(frozen=True)
class KeyFigures(Result):
    """The key figures of a selection (see :func:`key_figures`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per procedure and measure (:data:`MEASURES` order, VP first): ``procedure,
        measure, estimate, low, high, n, events, at_risk``. ``procedures``: ``n`` records
        (no estimate). Rates: the estimate, its 95% interval, ``n`` and ``events`` as
        :func:`analysis.outcomes.outcome_summary` gives them, and for
        ``adjacent_fracture_12m`` (a cumulative incidence at 365 days) the number ``at_risk``
        at 12 months. ``median_duration_min`` and ``median_cost_usd``: the median with its
        distribution-free 95% interval (:func:`analysis.descriptive.median_ci`) and ``n``
        values. A rate of a procedure with no records has no row data (NaN).
    sizes : dict
        Records per procedure.
    """

    table: pd.DataFrame
    sizes: dict[str, int]

    def to_frame(self) -> pd.DataFrame:
        """The table (a copy)."""
        return self.table.copy()

    def row(self, procedure: str, measure: str) -> pd.Series | None:
        """The row of one procedure and measure, or None when the selection has none."""
        match = self.table[(self.table["procedure"] == procedure)
                           & (self.table["measure"] == measure)]
        return None if match.empty else match.iloc[0]


def key_figures(records: pd.DataFrame, responder: ResponderDefinition | None = None
                ) -> KeyFigures:
    """The key figures of ``records`` per procedure (the Overview's cards and table).

    Parameters
    ----------
    records : pandas.DataFrame
        Procedure records.
    responder : ResponderDefinition, optional
        Default ``ResponderDefinition()`` (≥ 30% pain reduction at one month).

    Returns
    -------
    KeyFigures

    Notes
    -----
    Rates with 95% Wilson intervals (Clopper–Pearson at 0 or n events); new fracture by 12
    months is the Aalen–Johansen cumulative incidence at 365 days with death as a competing
    risk and a log(−log) interval; medians with the order-statistic interval (Conover 1999).
    Costs are converted to US dollars (:func:`analysis.costs.converted_costs`, default
    options); records without a convertible cost are left out of the median.

    Examples
    --------
    >>> from data import demo_records
    >>> figures = key_figures(demo_records(800, seed=2))
    >>> figures.table["measure"].unique().tolist()[:3]
    ['procedures', 'responder', 'cement_leakage']
    >>> int(figures.row("kyphoplasty", "procedures")["n"]) == figures.sizes["kyphoplasty"]
    True
    """
    summary = outcome_summary(records, by=("procedure",),
                              responder=responder or ResponderDefinition(),
                              outcomes=KEY_OUTCOMES)
    masks = _procedure_masks(records["procedure"])
    sizes = {procedure: int(mask.sum()) for procedure, mask in masks.items()}
    durations = records["duration_min"].to_numpy(dtype=float, na_value=np.nan)
    costs_usd = converted_costs(records, CostOptions(reporting_currency="USD"))
    by_outcome = {(str(p), o): row for p, o, row in zip(
        summary["procedure"], summary["outcome"], summary.itertuples(index=False), strict=True)}
    rows = []
    for procedure in PROCEDURES:
        rows.append(_row(procedure, "procedures", n=sizes[procedure]))
        for outcome in KEY_OUTCOMES:
            found = by_outcome.get((procedure, outcome))
            if found is None:
                continue
            rows.append(_row(procedure, outcome, estimate=found.estimate, low=found.low,
                             high=found.high, n=found.n, events=found.events,
                             at_risk=getattr(found, "at_risk", np.nan)))
        for measure, values in (("median_duration_min", durations),
                                ("median_cost_usd", costs_usd)):
            values = values[masks[procedure]]
            values = values[~np.isnan(values)]
            median, low, high = median_ci(values)
            rows.append(_row(procedure, measure, estimate=median, low=low, high=high,
                             n=len(values)))
    return KeyFigures(table=pd.DataFrame(rows, columns=list(COLUMNS)), sizes=sizes)


def _row(procedure: str, measure: str, *, estimate: float = np.nan, low: float = np.nan,
         high: float = np.nan, n: float = np.nan, events: float = np.nan,
         at_risk: float = np.nan) -> dict:
    return {"procedure": procedure, "measure": measure, "estimate": estimate, "low": low,
            "high": high, "n": n, "events": events, "at_risk": at_risk}


def _procedure_masks(procedure: pd.Series) -> dict[str, np.ndarray]:
    """A boolean mask per procedure (integer codes of a categorical: no string compares)."""
    if isinstance(procedure.dtype, pd.CategoricalDtype):
        codes, categories = procedure.cat.codes.to_numpy(), list(procedure.cat.categories)
        return {p: (codes == categories.index(p)) if p in categories
                else np.zeros(len(procedure), dtype=bool) for p in PROCEDURES}
    values = procedure.astype(object).to_numpy()
    return {p: values == p for p in PROCEDURES}
