"""Overview: record count per procedure (the full overview arrives with the dashboard issue)."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import html

from analysis.descriptive import procedure_counts
from dashboard.context import database
from data import load_records

dash.register_page(__name__, path="/", name="Overview", title="Overview", order=0)


def layout(**_query) -> html.Div:
    counts = procedure_counts(load_records(database()))
    cards = [
        dbc.Col(dbc.Card(dbc.CardBody([
            html.H2(f"{row.records:,}", className="card-title", id=f"count-{row.procedure}"),
            html.P(row.procedure.capitalize(), className="card-text"),
        ])), md=3)
        for row in counts.itertuples(index=False)
    ]
    return html.Div([
        html.H1("Procedures in the store", className="h3"),
        dbc.Row(cards, className="g-3"),
        html.P(f"{int(counts.records.sum()):,} records in total.", id="total-records",
               className="mt-3"),
    ])
