"""Filter-change timings of every dashboard page, and the polars reference for the Overview.

Runs in its own process (``python -m bench.worker pages``). The app is created in-process and
each callback that takes ``Input("filter-state", "data")`` is called through the real Dash
endpoint ``POST /_dash-update-component`` with Flask's test client (no network, but the full
Dash dispatch: argument handling, the callback, JSON serialisation of the response).

* A page's **update** is every such callback whose outputs are in the page's layout, plus the
  shell's (``match-count``), which a filter change triggers on every page. Callbacks run one
  after the other in dependency order (an output of one that is an input of another, like the
  Quality page's CUSUM unit, is passed on), and the page's time is their **sum**: a
  single-worker server answering the whole update.
* **Cold** = a filter state not seen before in this process (a new ``date_from`` each run, a
  few days after the first record, so nearly all records stay selected); **warm** = the same
  state again right after. Medians over ``runs`` of each.
* **Bytes** = the sum of the response bodies of one page update (the warm run's).
* Background callbacks (Comparison page: Table 1 and diagnostics, adjusted effects) return a
  job id from the endpoint, so they are timed by calling their callback functions directly in
  an app context in this process: the cached analysis (``comparison.baseline`` /
  ``comparison.comparison``, on-disk cache of :mod:`dashboard.compute_cache`) plus the page
  components; the bytes are ``json.dumps`` of the returned components with Plotly's encoder.
  The background job's fork and polling interval (500 ms) are not included.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import statistics
import time

FILTER = ("filter-state", "data")
SHELL_OUTPUTS = {"match-count"}
# Background callbacks (endpoint answers with a job id): callback-map key -> function name in
# the page module, called directly.
BACKGROUND = {
    "..comparison-table-one.children...comparison-diagnostics.children..":
        ("dashboard.pages.comparison", "update_baseline"),
    "comparison-effects.children": ("dashboard.pages.comparison", "update_effects"),
}
REFERENCE_COUNTRY = "US"


class _Errors(logging.Handler):
    """Counts callbacks that failed (``safe_callback`` logs them and shows an alert)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _outputs(entry) -> list:
    output = entry["output"]
    return output if isinstance(output, list) else [output]


def _layout_values(layout, app=None) -> dict[tuple[str, str], object]:
    """(id, property) -> value for every component with a string id in a layout (built in
    ``app``'s context when given: a page layout may read the store, as in a request)."""
    from contextlib import nullcontext

    from dash.development.base_component import Component

    values: dict[tuple[str, str], object] = {}
    with app.server.app_context() if app is not None else nullcontext():
        root = layout() if callable(layout) else layout
    components = [root, *root._traverse()] if isinstance(root, Component) else []
    for component in components:
        component_id = getattr(component, "id", None)
        if not isinstance(component_id, str):
            continue
        for prop in component._prop_names:
            values[(component_id, prop)] = getattr(component, prop, None)
    return values


def _ordered(callbacks: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """Callbacks ordered so that one feeding another's input runs first."""
    remaining, done, produced = list(callbacks), [], set()
    outputs = {key: {(o.component_id, o.component_property) for o in _outputs(e)}
               for key, e in callbacks}
    while remaining:
        for item in remaining:
            key, entry = item
            needs = {(i["id"], i["property"]) for i in entry["inputs"]}
            upstream = set().union(*(outputs[k] for k, _ in remaining if k != key))
            if not needs & upstream:
                remaining.remove(item)
                done.append(item)
                produced |= outputs[key]
                break
        else:  # a cycle: keep the registry order
            done += remaining
            break
    return done


def page_callbacks(app, page: dict) -> list[tuple[str, dict]]:
    """The callbacks a filter change triggers on ``page``."""
    ids = {component_id for component_id, _ in _layout_values(page["layout"], app)}
    ids |= SHELL_OUTPUTS
    chosen = []
    for key, entry in app.callback_map.items():
        if "callback" not in entry:
            continue  # a clientside callback: runs in the browser, never on the server
        if not any((i["id"], i["property"]) == FILTER for i in entry["inputs"]):
            continue
        if any(o.component_id in ids for o in _outputs(entry)):
            chosen.append((key, entry))
    return _ordered(chosen)


def _payload(key: str, entry: dict, values: dict, state: dict) -> dict:
    def item(spec):
        ident = (spec["id"], spec["property"])
        value = state if ident == FILTER else values.get(ident)
        return {"id": spec["id"], "property": spec["property"], "value": value}

    outputs = [{"id": o.component_id, "property": o.component_property} for o in _outputs(entry)]
    return {
        "output": key,
        "outputs": outputs if isinstance(entry["output"], list) else outputs[0],
        "inputs": [item(spec) for spec in entry["inputs"]],
        "state": [item(spec) for spec in entry["state"]],
        "changedPropIds": ["filter-state.data"],
    }


def _call_background(app, key: str, entry: dict, values: dict, state: dict) -> int:
    import importlib

    import plotly.utils

    module_name, name = BACKGROUND[key]
    function = getattr(importlib.import_module(module_name), name)
    args = [state if (i["id"], i["property"]) == FILTER else values.get((i["id"], i["property"]))
            for i in entry["inputs"]]
    with app.server.app_context():
        output = function(*args)
    return len(json.dumps(output, cls=plotly.utils.PlotlyJSONEncoder).encode())


def update_page(app, client, callbacks, base_values: dict, state: dict) -> tuple[float, int]:
    """One page update for ``state``: (seconds, response bytes)."""
    values = dict(base_values)
    total_seconds, total_bytes = 0.0, 0
    for key, entry in callbacks:
        start = time.perf_counter()
        if key in BACKGROUND:
            total_bytes += _call_background(app, key, entry, values, state)
        else:
            response = client.post("/_dash-update-component",
                                   json=_payload(key, entry, values, state))
            if response.status_code == 204:  # PreventUpdate / no_update
                pass
            elif response.status_code != 200:
                raise RuntimeError(f"{key}: HTTP {response.status_code}: {response.data[:500]!r}")
            else:
                total_bytes += len(response.data)
                body = response.get_json()
                for component_id, props in body.get("response", {}).items():
                    for prop, value in props.items():
                        values[(component_id, prop)] = value
        total_seconds += time.perf_counter() - start
    return total_seconds, total_bytes


class _States:
    """Filter states never used before in this process: a new ``date_from`` each time."""

    def __init__(self, first_date: dt.date) -> None:
        self.first_date, self.count = first_date, 0

    def new(self, **extra) -> dict:
        self.count += 1
        day = self.first_date + dt.timedelta(days=self.count)
        return {"date_from": day.isoformat(), **extra}


# ------------------------------------------------------------------ polars reference (Overview)

def polars_frame(records):
    """The columns the Overview needs, as a polars frame (conversion not timed)."""
    import polars as pl

    columns = ["procedure_date", "country", "procedure", "cement_leakage", "pulmonary_embolism",
               "adjacent_fracture", "adjacent_fracture_days", "followup_days", "pain_baseline",
               "pain_month1", "duration_min", "cost", "currency"]
    frame = pl.from_pandas(records[columns])
    return frame.with_columns(pl.col("country", "procedure", "currency").cast(pl.Utf8))


def rates_frame():
    import polars as pl

    from analysis.costs import exchange_rates

    rates = exchange_rates()[["year", "currency", "units_per_usd"]]
    return pl.from_pandas(rates).with_columns(pl.col("year").cast(pl.Int32))


def reference_overview(frame, rates, state: dict):
    """Single pass over the selected records: per procedure the count, the responder (≥30 %
    at 1 month), leakage, embolism and 12-month new-fracture events and denominators, and the
    medians of duration and of cost in USD (exchange rate of the procedure year, clipped to
    the table's years). No confidence intervals, suppression or formatting: a lower bound."""
    import polars as pl

    low, high = rates["year"].min(), rates["year"].max()
    date_from = dt.date.fromisoformat(state["date_from"])
    baseline, month1 = pl.col("pain_baseline"), pl.col("pain_month1")
    followed = baseline.is_not_null() & month1.is_not_null()
    fracture = pl.col("adjacent_fracture") & (pl.col("adjacent_fracture_days") <= 365)
    fracture_known = fracture.fill_null(False) | (pl.col("followup_days") >= 365)
    return (
        frame.lazy()
        .filter(pl.col("country").is_in(state["countries"])
                & (pl.col("procedure_date") >= pl.lit(date_from)))
        .with_columns(pl.col("procedure_date").dt.year().clip(low, high).cast(pl.Int32)
                      .alias("year"))
        .join(rates.lazy(), on=["year", "currency"], how="left")
        .group_by("procedure")
        .agg(
            n=pl.len(),
            responder_n=followed.sum(),
            responder_events=(followed & (baseline > 0) & (baseline - month1 >= 0.3 * baseline))
            .sum(),
            leakage_n=pl.col("cement_leakage").is_not_null().sum(),
            leakage_events=pl.col("cement_leakage").sum(),
            embolism_n=pl.col("pulmonary_embolism").is_not_null().sum(),
            embolism_events=pl.col("pulmonary_embolism").sum(),
            fracture_n=fracture_known.sum(),
            fracture_events=fracture.fill_null(False).sum(),
            median_duration=pl.col("duration_min").median(),
            median_cost_usd=(pl.col("cost") / pl.col("units_per_usd")).median(),
        )
        .collect()
    )


# ------------------------------------------------------------------------------------ driver

def measure_pages(database: str, runs: int, only: list[str] | None = None) -> dict:
    import dash

    from dashboard import data_access
    from dashboard.app_factory import create_app

    errors = _Errors()
    logging.getLogger("dashboard").addHandler(errors)
    app = create_app(database)
    client = app.server.test_client()
    if client.get("/").status_code != 200:  # registers the pages' callbacks, loads the records
        raise RuntimeError("GET / failed")
    with app.server.app_context():
        records = data_access.all_records()
    states = _States(records["procedure_date"].min().date())

    result: dict = {"pages": {}, "errors": []}
    for page in dash.page_registry.values():
        if only and page["path"] not in only:
            continue
        callbacks = page_callbacks(app, page)
        own = [key for key, _ in callbacks if key != "match-count.children"]
        if not own:
            continue  # a page without filter-driven content (Methods)
        values = _layout_values(page["layout"], app)
        cold, warm, sizes = [], [], []
        for _ in range(runs):
            state = states.new()
            seconds, _ = update_page(app, client, callbacks, values, state)
            cold.append(seconds)
            seconds, size = update_page(app, client, callbacks, values, state)
            warm.append(seconds)
            sizes.append(size)
        result["pages"][page["path"]] = {
            "name": page["name"], "callbacks": own,
            "cold_seconds": statistics.median(cold), "warm_seconds": statistics.median(warm),
            "response_bytes": max(sizes), "cold_runs": cold, "warm_runs": warm,
        }

    overview = dash.page_registry.get("dashboard.pages.overview")
    if overview is not None and (not only or "/" in only):
        frame, rates = polars_frame(records), rates_frame()
        callbacks = page_callbacks(app, overview)
        values = _layout_values(overview["layout"], app)
        references, updates = [], []
        for _ in range(runs):
            state = states.new(countries=[REFERENCE_COUNTRY])
            start = time.perf_counter()
            reference_overview(frame, rates, state)
            references.append(time.perf_counter() - start)
            updates.append(update_page(app, client, callbacks, values, state)[0])
        reference, update = statistics.median(references), statistics.median(updates)
        result["reference"] = {"filter": f"country == {REFERENCE_COUNTRY}, new date_from",
                               "reference_seconds": reference, "overview_cold_seconds": update,
                               "ratio": update / reference}
    result["errors"] = errors.messages
    return result


# ------------------------------------------------------------------------------------ signals
SIGNALS_KEY = "..signals-list.children...signals-ack-key.options...signals-history.children.."
#: Input values of the Signals list callback that are not None.
SIGNALS_INPUT_VALUES = {("signals-reviewed", "data"): 0, ("filter-state", "data"): {}}


def measure_signals(database: str) -> dict:
    """The Signals page's list, cold then warm, in this fresh process: its callback
    (``update_signals``: every outcome's funnel and every unit's CUSUM for both unit types,
    :func:`analysis.signals.current_signals`) through the real Dash endpoint, with the
    page's default date. *Cold*: nothing computed yet (the result cache of this run's
    temporary folder is empty); *warm*: the same request again. Wall and CPU seconds
    (``time.process_time``) of each."""
    from dashboard.app_factory import create_app

    errors = _Errors()
    logging.getLogger("dashboard").addHandler(errors)
    app = create_app(database)
    client = app.server.test_client()
    if client.get("/").status_code != 200:  # registers the pages' callbacks, loads the records
        raise RuntimeError("GET / failed")
    entry = app.callback_map[SIGNALS_KEY]
    payload = {
        "output": SIGNALS_KEY,
        "outputs": [{"id": o.component_id, "property": o.component_property}
                    for o in _outputs(entry)],
        # The page's own inputs at their defaults (no since-date: the page's default; no
        # filter), whatever inputs the callback declares.
        "inputs": [{"id": i["id"], "property": i["property"],
                    "value": SIGNALS_INPUT_VALUES.get((i["id"], i["property"]))}
                   for i in entry["inputs"]],
        "state": [{"id": s["id"], "property": s["property"], "value": None}
                  for s in entry["state"]],
        "changedPropIds": ["signals-since.date"],
    }
    timings = {}
    for run in ("cold", "warm"):
        wall, cpu = time.perf_counter(), time.process_time()
        response = client.post("/_dash-update-component", json=payload)
        timings[run] = {"seconds": time.perf_counter() - wall,
                        "cpu_seconds": time.process_time() - cpu,
                        "response_bytes": len(response.data)}
        if response.status_code != 200:
            raise RuntimeError(f"signals: HTTP {response.status_code}: {response.data[:500]!r}")
    return {**timings, "errors": errors.messages}
