"""A search for small counts a signed-in user can recover (issue 13, item 1).

For random small selections (facility × procedure × sex × age band ...), on every page and for
every role, every callback response, the page's HTML report and (for analysts and admins) the
CSV download of every grid are collected through the Flask test client, and the test fails
when

* a displayed count (see :mod:`tests.integration.disclosure_search` for what is read as one)
  is from 1 to the suppression threshold, or a shown "part of total" leaves a complement from 1
  to the threshold (primary suppression and the within-cell complement);
* the documented secondary-suppression rule is broken: for a selection S and any refinement
  R = S ∧ (procedure or sex = one level), the exact total of S and the exact total of R are
  both displayed as selection totals (the match count, the Overview's and the Costs page's
  "records in the selection", per procedure) in the responses to S and R, while
  count(S) − count(R) is from 1 to the threshold (the issue's "FAC-005 alone 27, FAC-005 + KP
  26, so VP = 1"). Exact counts of the same subgroup in two nested selections (a table's n)
  are outside the documented rule (see docs/security.md) and not searched for;
* the funnel plot's geometry or pooled target depends on a hidden unit: its limit lines run
  beyond the shown units' range (1.1 × the largest shown volume, half the smallest), or the
  target printed is the pooled rate of all units while the hidden units' own pool is a small
  cell;
* the Quality cards count flags of units that are not drawn.

The ground truth (cell counts) comes from the records with plain pandas, not from the
dashboard. The expected failures on the code before the fix are listed in the commit message.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import time

import numpy as np
import pandas as pd
import pytest

from analysis.filters import AGE_BANDS, RecordFilter, apply_filter
from dashboard.app_factory import create_app
from dashboard.auth.config import load_config
from dashboard.suppression import threshold
from data import import_dataframe, load_records, store
from data.demo import demo_records
from tests.auth_support import auth_dir, callback_payload, sign_in
from tests.integration.disclosure_search import (
    Displayed,
    csv_counts,
    displayed_counts,
    grids,
    report_counts,
    small,
)

RESTRICTED = ["FAC-005", "FAC-015", "FAC-032", "FAC-023", "FAC-020"]
ACCOUNTS = {"vic": ("viewer", None), "ana": ("analyst", None), "adm": ("admin", None),
            "north": ("analyst", RESTRICTED)}
ROLES = tuple(ACCOUNTS)
#: Pages with aggregates (the records grid shows single records to analysts by design, and the
#: users page holds no patient data).
PAGES = ("/", "/pain", "/complications", "/durations", "/costs", "/comparison", "/quality",
         "/scorecard",
         "/data", "/signals")
#: Pages whose aggregates do not follow the filters (Signals lists every signal of the user's
#: records): their callbacks that run when the page loads are collected instead.
UNFILTERED = ("/signals",)
#: Refinement dimensions of the secondary-suppression check: RecordFilter field -> column.
REFINEMENTS = {"procedures": ("procedure", ("vertebroplasty", "kyphoplasty")),
               "sexes": ("sex", ("F", "M", "X"))}
SELECTIONS = 10


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The 5,000-record demo (default seed) behind sign-in with one account per role."""
    store.dispose_engines()
    folder = tmp_path_factory.mktemp("leaks")
    database = f"sqlite:///{folder / 'store.db'}"
    import_dataframe(demo_records(5000), "demo", database, synthetic=True)
    app = create_app(database, load_config(auth_dir(folder / "auth", ACCOUNTS)))
    clients = {}
    for name in ACCOUNTS:
        client = app.server.test_client()
        assert sign_in(client, name).status_code == 302
        assert client.get("/").status_code == 200  # Dash registers the pages' callbacks
        clients[name] = client
    yield app, clients, load_records(database)
    store.dispose_engines()


# ----------------------------------------------------------------------- calling the pages
def _component_values(component, found: dict) -> dict:
    """``{(id, prop): value}`` of every component with an id in a layout (its defaults)."""
    if isinstance(component, (list, tuple)):
        for item in component:
            _component_values(item, found)
        return found
    if component is None or isinstance(component, (str, int, float)):
        return found
    ident = getattr(component, "id", None)
    if ident is not None and not isinstance(ident, dict):
        for prop in getattr(component, "_prop_names", []):
            if prop not in ("children", "id"):
                value = getattr(component, prop, None)
                if value is not None:
                    found[(ident, prop)] = value
        found.setdefault((ident, "__present__"), True)
    _component_values(getattr(component, "children", None), found)
    return found


def _page_callbacks(app, path: str) -> tuple[list[str], dict]:
    import dash

    page = next(p for p in dash.page_registry.values() if p["path"] == path)
    import flask

    from dashboard.auth import LOCAL_USER

    # The layout as an admin's request builds it (it may read the store and the user): the
    # callbacks it lists are those of every role.
    with app.server.test_request_context("/"):
        flask.g.va_user = LOCAL_USER
        defaults = _component_values(page["layout"](), {})
    ids = {key[0] for key in defaults}
    # Callbacks the browser calls when the page loads (not prevent_initial_call).
    initial = {spec["output"] for spec in app._callback_list + dash._callback.GLOBAL_CALLBACK_LIST
               if not spec.get("prevent_initial_call")}
    outputs = []
    for output, entry in app.callback_map.items():
        names = [part.rsplit(".", 1)[0] for part in
                 (output[2:-2].split("...") if output.startswith("..") else [output])]
        # A filter change triggers the callbacks with the filter as an input; one reading it
        # only as a state runs on a user action (e.g. saving a review) unless it runs on load.
        reads_filters = (any(spec["id"] == "filter-state" for spec in entry["inputs"])
                         or (output in initial and any(spec["id"] == "filter-state"
                                                       for spec in entry["state"])))
        on_load = (path in UNFILTERED and output in initial
                   and all(spec["id"] in ids for spec in entry["inputs"]))
        if (reads_filters or on_load) and all(name in ids for name in names):
            outputs.append(output)
    return outputs, defaults


def page_responses(app, client, path: str, selection: RecordFilter,
                   downloads: bool = False) -> list[tuple[str, object]]:
    """Every page callback's response for ``selection`` (chained outputs feed later inputs,
    e.g. the Quality page's chosen CUSUM unit), then the page's HTML report."""
    outputs, values = _page_callbacks(app, path)
    values = dict(values)
    values[("filter-state", "data")] = selection.to_dict()
    responses = []
    for output in outputs:
        payload = callback_payload(app, output, values)
        response = client.post("/_dash-update-component", json=payload)
        assert response.status_code in (200, 204), (path, output, response.status_code)
        if response.status_code == 204:  # nothing to update (PreventUpdate)
            continue
        body = response.get_json()
        if "cacheKey" in body:  # a background callback: poll its job as the browser does
            body = _background_result(client, payload, body)
        assert "response" in body, (path, output, str(body)[:300])
        body = body["response"]
        responses.append((f"{path} {output[:60]}", body))
        for ident, props in body.items():
            for prop, value in props.items():
                if prop in ("value",):
                    values[(ident, prop)] = value
    if downloads:  # analysts and admins: every grid's "Download CSV", as the browser posts it
        for _where, body in list(responses):
            for grid in grids(body):
                responses.append((f"{path} csv {grid['id']['name']}",
                                  _csv(client, grid, selection, path)))
    report = callback_payload(app, "report-download.data", {
        ("report-button", "n_clicks"): 1, ("url", "pathname"): path,
        ("filter-state", "data"): selection.to_dict()})
    response = client.post("/_dash-update-component", json=report)
    if response.status_code == 204 or (response.status_code == 200 and "report-download" not in
                                       response.get_json().get("response", {})):
        pass  # the page has no report (no_update)
    elif response.status_code == 200:
        document = response.get_json()["response"]["report-download"]["data"]["content"]
        responses.append((f"{path} report", document))
    else:  # found by this search: a report of an unsupported selection was a server error
        responses.append((f"{path} report", f"report failed: {response.status_code}"))
    match = client.post("/_dash-update-component", json=callback_payload(
        app, "match-count.children", {("filter-state", "data"): selection.to_dict()}))
    responses.append(("match count", match.get_json()["response"]))
    return responses


CSV_KEY = '{"name":["MATCH"],"type":"csv-file"}.data'


def _csv(client, grid: dict, selection: RecordFilter, path: str) -> str:
    name = grid["id"]["name"]
    button = {"type": "csv-export", "name": name}
    payload = {
        "output": CSV_KEY, "outputs": {"id": {"type": "csv-file", "name": name},
                                       "property": "data"},
        "inputs": [{"id": button, "property": "n_clicks", "value": 1}],
        "state": [{"id": grid["id"], "property": "virtualRowData", "value": grid["rowData"]},
                  {"id": grid["id"], "property": "rowData", "value": grid["rowData"]},
                  {"id": grid["id"], "property": "columnDefs", "value": grid.get("columnDefs")},
                  {"id": grid["id"], "property": "csvExportParams",
                   "value": grid.get("csvExportParams")},
                  {"id": button, "property": "id", "value": button},
                  {"id": "filter-state", "property": "data", "value": selection.to_dict()},
                  {"id": "url", "property": "pathname", "value": path}],
        "changedPropIds": [f"{json.dumps(button, separators=(',', ':'))}.n_clicks"],
    }
    response = client.post("/_dash-update-component", json=payload)
    assert response.status_code == 200, (path, name, response.status_code)
    return "CSV\n" + next(iter(response.get_json()["response"].values()))["data"]["content"]


def _background_result(client, payload, job: dict, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        poll = client.post(f"/_dash-update-component?cacheKey={job['cacheKey']}"
                           f"&job={job['job']}", json=payload)
        assert poll.status_code == 200
        body = poll.get_json()
        if body and "response" in body:
            return body
        time.sleep(0.2)
    raise AssertionError("the background job did not answer")


def counts_of(responses) -> list[Displayed]:
    found = []
    for where, body in responses:
        if isinstance(body, str) and body.startswith("CSV\n"):
            found.extend(csv_counts(body[4:], where))
        elif isinstance(body, str):
            found.extend(report_counts(body, where))
        else:
            found.extend(displayed_counts(body, where))
    return found


# ----------------------------------------------------------------------------- selections
def random_selections(records: pd.DataFrame, count: int, seed: int) -> list[RecordFilter]:
    """Small selections: one facility (the small ones more often), and at random a procedure,
    a sex or an age band; the issue's own examples come first."""
    rng = np.random.default_rng(seed)
    sizes = records["facility_id"].value_counts()
    facilities = sizes.index.astype(str).to_numpy()
    weights = 1.0 / sizes.to_numpy(dtype=float)
    chosen = [RecordFilter(facilities=("FAC-005",)),
              RecordFilter(facilities=("FAC-023",), procedures=("kyphoplasty",))]
    while len(chosen) < count:
        fields = {"facilities": (str(rng.choice(facilities, p=weights / weights.sum())),)}
        if rng.random() < 0.4:
            fields["procedures"] = (str(rng.choice(["vertebroplasty", "kyphoplasty"])),)
        if rng.random() < 0.3:
            fields["sexes"] = (str(rng.choice(["F", "M"])),)
        if rng.random() < 0.3:
            fields["age_bands"] = (str(rng.choice(list(AGE_BANDS))),)
        chosen.append(RecordFilter(**fields))
    return chosen


def refinements(selection: RecordFilter) -> list[tuple[RecordFilter, str]]:
    """S ∧ (dimension = level) for the dimensions S does not restrict yet."""
    out = []
    for field, (_column, levels) in REFINEMENTS.items():
        if getattr(selection, field):
            continue
        for level in levels:
            out.append((dataclasses.replace(selection, **{field: (level,)}), f"{field}={level}"))
    return out


# -------------------------------------------------------------------------------- checks
def failures(responses) -> list[str]:
    return [body for _where, body in responses
            if isinstance(body, str) and body.startswith("report failed")]


def primary_leaks(found: list[Displayed], limit: int) -> list[str]:
    return [f"{d.where}: {d.value} in …{d.context}…" for d in small(found, limit)]


def differencing_leaks(records, selection, scope, shown: dict, limit: int) -> list[str]:
    """Secondary suppression: count(S) and count(S ∧ d=l) both shown, difference small."""
    total = len(apply_filter(scope, selection))
    leaks = []
    if total not in shown[selection]:
        return leaks
    for refined, name in refinements(selection):
        part = len(apply_filter(scope, refined))
        where = shown.get(refined, {}).get(part) or shown[selection].get(part)
        if part and 1 <= total - part <= limit and where:
            leaks.append(f"{selection.describe()}: total {total} and {name} {part} both shown "
                         f"(difference {total - part}): total in {shown[selection][total]}; "
                         f"part in {where}")
    return leaks


def funnel_leaks(responses, scope: pd.DataFrame, selection: RecordFilter, limit: int) -> list:
    """The Quality funnel's geometry, pooled target and cards against its shown units."""
    leaks = []
    for where, body in responses:
        if not where.startswith("/quality") or isinstance(body, str):
            continue
        text = json.dumps(body)
        for figure in _figures(body):
            markers = [t for t in figure["data"] if t.get("mode") == "markers"]
            lines = [t for t in figure["data"] if t.get("mode") == "lines"
                     and "limits" in str(t.get("name", ""))]
            if not lines:
                continue
            xs = [x for t in markers for x in _numbers(t.get("x"))]
            line_x = [x for t in lines for x in _numbers(t.get("x"))]
            if not xs and line_x:
                leaks.append(f"{where}: limit lines drawn with no unit shown "
                             f"(x from {min(line_x):.3g} to {max(line_x):.3g})")
            elif line_x and (max(line_x) > 1.1 * max(xs) * (1 + 1e-9)
                             or min(line_x) < 0.5 * min(xs) * (1 - 1e-9)):
                leaks.append(f"{where}: limit lines span {min(line_x):.4g}–{max(line_x):.4g}, "
                             f"beyond the shown units' {min(xs):.4g}–{max(xs):.4g}")
            drawn = {name: sum(len(_numbers(t.get("x"))) for t in markers
                               if str(t.get("name", "")).startswith(name))
                     for name in ("Alarm", "Alert")}
            cards = _card_values(body)
            for name, card in (("Alarm", "quality-alarms"), ("Alert", "quality-alerts")):
                if card in cards and cards[card].isdigit() and int(cards[card]) != drawn[name]:
                    leaks.append(f"{where}: card {card} says {cards[card]}, "
                                 f"{drawn[name]} drawn")
        # The pooled target of all units, printed while the hidden units form a small cell.
        target = re.search(r"Target \(pooled rate\).*?(\d+\.\d)%", text)
        outcome = "cement_leakage"
        if target and "cement leakage" in text.lower() and outcome in scope:
            pool = _pool(scope, selection, outcome, limit)
            if pool is not None:
                all_rate, hidden_n, hidden_events = pool
                if (hidden_n and (1 <= hidden_n <= limit or 1 <= hidden_events <= limit
                                  or 1 <= hidden_n - hidden_events <= limit)
                        and target.group(1) == f"{100 * all_rate:.1f}"):
                    leaks.append(f"{where}: pooled target {target.group(1)}% includes hidden "
                                 f"units with n {hidden_n}, events {hidden_events}")
    return leaks


def _pool(scope, selection, outcome, limit):
    selected = apply_filter(scope, selection)
    values = selected[[outcome, "facility_id"]].dropna()
    if values.empty:
        return None
    per_unit = values.groupby("facility_id", observed=True)[outcome].agg(["size", "sum"])
    hidden = ((per_unit["size"].between(1, limit)) | (per_unit["sum"].between(1, limit)))
    return (float(values[outcome].astype(float).mean()), int(per_unit.loc[hidden, "size"].sum()),
            int(per_unit.loc[hidden, "sum"].sum()))


def _figures(node):
    if isinstance(node, dict):
        if isinstance(node.get("data"), list) and isinstance(node.get("layout"), dict):
            yield node
            return
        for value in node.values():
            yield from _figures(value)
    elif isinstance(node, list):
        for item in node:
            yield from _figures(item)


def _numbers(value) -> list[float]:
    from tests.integration.disclosure_search import _values

    return [float(v) for v in _values(value) if isinstance(v, (int, float))]


def _card_values(node, found=None) -> dict:
    found = {} if found is None else found
    if isinstance(node, dict):
        props = node.get("props") or {}
        if isinstance(props.get("id"), str) and props["id"].startswith("quality-") \
                and isinstance(props.get("children"), str):
            found[props["id"]] = props["children"]
        for value in node.values():
            _card_values(value, found)
    elif isinstance(node, list):
        for item in node:
            _card_values(item, found)
    return found


def scope_of(records: pd.DataFrame, role: str) -> pd.DataFrame:
    facilities = ACCOUNTS[role][1]
    return records if facilities is None else records[records["facility_id"].isin(facilities)]


COLLECTED: collections.Counter = collections.Counter()


def search(site, selections: list[RecordFilter], pages=PAGES) -> list[str]:
    app, clients, records = site
    limit = threshold()
    leaks = []
    for index, base in enumerate(selections):
        role = ROLES[index % len(ROLES)]
        client, scope = clients[role], scope_of(records, role)
        shown: dict[RecordFilter, dict[int, str]] = {}
        family = [base] + [refined for refined, _ in refinements(base)]
        for selection in family:
            responses = []
            for path in pages if selection is base else ("/",):
                responses.extend(page_responses(app, client, path, selection,
                                                downloads=role != "vic"))
            COLLECTED.update(where.split(" ")[1] if where.split(" ")[1:2] and
                             where.split(" ")[1] in ("csv", "report") else "callback"
                             for where, _ in responses)
            found = counts_of(responses)
            leaks += [f"[{role}] {selection.describe()} {failure}"
                      for failure in failures(responses)]
            shown[selection] = {}
            for d in found:
                if d.is_selection_total:
                    shown[selection].setdefault(d.value, f"{d.where}: …{d.context}…")
            leaks += [f"[{role}] {selection.describe()} {leak}"
                      for leak in primary_leaks(found, limit)]
            if selection is base:
                leaks += [f"[{role}] {selection.describe()} {leak}"
                          for leak in funnel_leaks(responses, scope, selection, limit)]
        leaks += [f"[{role}] {leak}"
                  for leak in differencing_leaks(records, base, scope, shown, limit)]
    return leaks


def test_no_small_count_can_be_recovered_from_any_page_or_report(site):
    _app, _clients, records = site
    COLLECTED.clear()
    leaks = search(site, random_selections(records, SELECTIONS, seed=13))
    assert not leaks, "\n".join(dict.fromkeys(leaks))
    # The search did look: callbacks, reports and CSV downloads were all collected.
    assert COLLECTED["callback"] > 100 and COLLECTED["report"] >= 8 * SELECTIONS
    assert COLLECTED["csv"] > 10, COLLECTED


def test_no_small_count_leaks_at_a_threshold_above_ten(site, monkeypatch):
    """The threshold is configurable: counts 11..15 must go too (the message masks of the
    code before matched 1–10 only)."""
    monkeypatch.setenv("VA_SUPPRESSION_THRESHOLD", "15")
    _app, _clients, records = site
    leaks = search(site, random_selections(records, 4, seed=29))
    assert not leaks, "\n".join(dict.fromkeys(leaks))


def test_the_search_finds_a_leak_when_there_is_one():
    """The detector itself: a planted small count, a planted complement and a planted
    differencing pair are found; percentages, years, CI limits and thresholds are not."""
    planted = {"props": {"children": ["Kyphoplasty (KP): 26 procedures; VP 1 procedures",
                                      "Pain relief 37.5% (95% CI 12.3–68.1%), 2021Q3, "
                                      "fewer than 11 events, at least 10 values, <11 records"]},
               "type": "Div", "namespace": "dash_html_components"}
    found = displayed_counts(planted, "planted")
    assert [d.value for d in small(found, 10)] == [1]
    assert {d.value for d in found} == {26, 1}
    complement = displayed_counts({"props": {"children": "95 of 100 responders"},
                                   "type": "Div", "namespace": "dash_html_components"}, "c")
    assert [d.value for d in small(complement, 10)] == [95]
