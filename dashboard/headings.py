"""Human column headings: the one mapping from a table's column names to what a reader sees.

Every display grid (:func:`dashboard.components.data_grid`) and every HTML report table
(:func:`dashboard.report.render_report`) names its columns through :func:`heading`, so a raw
field name such as ``ci_95`` or ``p_value`` never reaches the screen or a report. A page may
still pass its own labels (e.g. with the reporting currency); they win over this mapping.
"""

from __future__ import annotations

#: Column names with a heading that the general rule (:func:`heading`) would not produce.
COLUMN_HEADINGS: dict[str, str] = {
    "ci_95": "95% CI",
    "ci": "95% CI",
    "p_value": "p",
    "p_adjusted": "BH-adjusted p",
    "oe": "O/E",
    "oe_ci": "O/E 95% CI",
    "n": "n",
    "z": "z",
    "outpatient_share": "Outpatient share",
    "rate_pct": "Rate (%)",
    "n_followed": "Followed",
    "n_missing": "Missing",
    "mean_ci": "Mean (95% CI)",
    "median_iqr": "Median [IQR]",
    "cost_per_responder": "Cost per responder",
    "cost_per_responder_ci": "Cost per responder, 95% CI",
    "responder_rate": "Responder rate",
    "mean_cost": "Mean cost",
    "vertebroplasty": "VP",
    "kyphoplasty": "KP",
}

#: Leading words that stay lower case (statistical symbols: "n (with a value)", "p (test)").
_SYMBOLS = {"n", "p", "z", "pp"}


def heading(name: object) -> str:
    """The heading of a column: its entry in :data:`COLUMN_HEADINGS`, else the name with
    underscores as spaces and a capital first letter (statistical symbols such as ``n`` and
    ``p`` stay lower case).

    Examples
    --------
    >>> heading("ci_95"), heading("mean cost (USD)"), heading("n (with a value)")
    ('95% CI', 'Mean cost (USD)', 'n (with a value)')
    >>> heading("KP − VP, percentage points (95% CI)")
    'KP − VP, percentage points (95% CI)'
    """
    text = str(name)
    if text in COLUMN_HEADINGS:
        return COLUMN_HEADINGS[text]
    text = text.replace("_", " ").strip()
    first = text.split(" ", 1)[0]
    if not text or first in _SYMBOLS or not text[0].islower():
        return text
    return text[0].upper() + text[1:]


def headings(names) -> list[str]:
    """:func:`heading` of each name, in order."""
    return [heading(name) for name in names]
