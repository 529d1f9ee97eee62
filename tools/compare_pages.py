"""Record every page's answers on fixed demo data, and compare two recordings.

A refactoring must not change what users see. ``dump`` builds a store from the seeded demo
records, opens every page as an admin in local mode, sends each page's filter-change callbacks
for a few fixed selections through Dash's real endpoint (the background VP vs KP callbacks are
called directly, as the benchmark does), and renders each page's report; it writes the
answers as JSON. ``compare`` reads two such files and lists every difference: texts, tables
and counts must be equal and numbers equal to a relative tolerance (default 1e-9).

Usage::

    python -m tools.compare_pages dump before.json      # on the old commit
    python -m tools.compare_pages dump after.json       # on the new one
    python -m tools.compare_pages compare before.json after.json

``compare`` exits 1 when the recordings differ, 0 when they agree.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

#: The selections each page is opened with (a global filter state each).
SELECTIONS: dict[str, dict] = {
    "all": {},
    "us": {"countries": ["US"]},
    "kyphoplasty": {"procedures": ["kyphoplasty"]},
    "facility": {"facilities": ["FAC-005"]},
    "women-2023": {"sexes": ["F"], "date_from": "2023-01-01"},
}
#: Volatile text in reports (time stamps, data versions, temporary paths), replaced before
#: comparing.
VOLATILE = [
    (re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?( ?UTC)?"), "<time>"),
    (re.compile(r"b\d+-n\d+-[0-9a-f]{12}-\d{8}T\d{6,}"), "<data version>"),
    (re.compile(r"/tmp/[^\s\"'<]+"), "<path>"),
    (re.compile(r"[0-9a-f]{16}/"), "<store>/"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"graph-[0-9a-f]{8}\b"), "graph-<id>"),
]


def _normalise(text: str) -> str:
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def dump(out: Path, n_records: int, seed: int) -> None:
    """Write every page's answers for :data:`SELECTIONS` to ``out``."""
    folder = Path(tempfile.mkdtemp(prefix="compare-pages-"))
    os.environ["VA_CACHE_DIR"] = str(folder / "cache")
    import dash

    from bench import pages as bench_pages
    from dashboard.app_factory import create_app
    from data.demo import demo_records
    from data.importer import import_dataframe

    database = f"sqlite:///{folder / 'store.db'}"
    import_dataframe(demo_records(n_records, seed=seed), "demo", database, synthetic=True)
    app = create_app(database)
    client = app.server.test_client()
    assert client.get("/").status_code == 200
    answers: dict[str, Any] = {}
    for page in sorted(dash.page_registry.values(), key=lambda p: p["path"]):
        callbacks = bench_pages.page_callbacks(app, page)
        if not callbacks:
            continue
        base = bench_pages._layout_values(page["layout"], app)
        for name, state in SELECTIONS.items():
            values = dict(base)
            for key, entry in callbacks:
                where = f"{page['path']} [{name}] {key}"
                if key in bench_pages.BACKGROUND:
                    answers[where] = _background(app, key, entry, values, state)
                    continue
                response = client.post("/_dash-update-component",
                                       json=bench_pages._payload(key, entry, values, state))
                if response.status_code != 200:
                    answers[where] = f"HTTP {response.status_code}"
                    continue
                body = response.get_json().get("response", {})
                answers[where] = json.loads(_normalise(json.dumps(body, sort_keys=True)))
                for component_id, props in body.items():
                    for prop, value in props.items():
                        values[(component_id, prop)] = value
            answers[f"{page['path']} [{name}] report"] = _report(app, page["path"], state)
    out.write_text(json.dumps(answers, indent=1, sort_keys=True), encoding="utf-8")
    print(f"{len(answers)} answers written to {out}")


def _background(app, key: str, entry: dict, values: dict, state: dict) -> Any:
    import importlib

    import plotly.utils

    from bench import pages as bench_pages

    module_name, name = bench_pages.BACKGROUND[key]
    function = getattr(importlib.import_module(module_name), name)
    args = [state if (i["id"], i["property"]) == bench_pages.FILTER
            else values.get((i["id"], i["property"])) for i in entry["inputs"]]
    with app.server.test_request_context("/"), app.server.app_context():
        output = function(*args)
    return json.loads(_normalise(json.dumps(output, cls=plotly.utils.PlotlyJSONEncoder,
                                            sort_keys=True)))


def _report(app, path: str, state: dict) -> dict | None:
    from analysis.filters import RecordFilter
    from dashboard.report import REPORT_BUILDERS, report_for_url
    from dashboard.state import query_from_filter

    if path not in REPORT_BUILDERS:
        return None
    query = query_from_filter(RecordFilter.from_dict(state))
    with app.server.test_request_context("/"), app.server.app_context():
        text = report_for_url(path, query)
    # Static images (PDF-ready figures) are re-encoded each time: compare the text around
    # them; interactive figures are compared as JSON, not as text (key order may differ).
    text = re.sub(r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=]+", "<image>", text)
    text, figures = _figures_of(text)
    return {"html": _normalise(text), "figures": json.loads(_normalise(json.dumps(figures)))}


def _figures_of(html: str) -> tuple[str, list]:
    """``html`` with each ``Plotly.newPlot(id, data, layout`` call's JSON taken out, and the
    figures taken out (data and layout parsed)."""
    decoder = json.JSONDecoder()
    figures, parts, position = [], [], 0
    marker = "Plotly.newPlot("
    while (start := html.find(marker, position)) >= 0:
        cursor = start + len(marker)
        try:
            values = []
            for _ in range(3):  # the element id, data, layout
                while html[cursor].isspace() or (values and html[cursor] == ","):
                    cursor += 1
                value, cursor = decoder.raw_decode(html, cursor)
                values.append(value)
                if len(values) < 3:
                    cursor = html.index(",", cursor)
            values = values[1:]
        except ValueError:
            parts.append(html[position:start + len(marker)])
            position = start + len(marker)
            continue
        figures.append({"data": values[0], "layout": values[1]})
        parts.append(html[position:start] + f"Plotly.newPlot(<figure {len(figures)}>")
        position = cursor
    parts.append(html[position:])
    return "".join(parts), figures


def differences(before: Any, after: Any, where: str, tolerance: float,
                found: list[str], limit: int = 200) -> None:
    """Append to ``found`` each place where ``after`` differs from ``before``."""
    if len(found) >= limit:
        return
    if isinstance(before, bool) or isinstance(after, bool):
        if before is not after:
            found.append(f"{where}: {before!r} -> {after!r}")
    elif isinstance(before, (int, float)) and isinstance(after, (int, float)):
        if not _close(float(before), float(after), tolerance):
            found.append(f"{where}: {before!r} -> {after!r}")
    elif isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            if key not in before or key not in after:
                found.append(f"{where}.{key}: only {'after' if key in after else 'before'}")
            else:
                differences(before[key], after[key], f"{where}.{key}", tolerance, found)
    elif isinstance(before, list) and isinstance(after, list):
        if len(before) != len(after):
            found.append(f"{where}: {len(before)} items -> {len(after)}")
        for index, (a, b) in enumerate(zip(before, after, strict=False)):
            differences(a, b, f"{where}[{index}]", tolerance, found)
    elif isinstance(before, str) and isinstance(after, str) and \
            _normalise(before) != _normalise(after):
        if not _same_numbers_in_text(_normalise(before), _normalise(after), tolerance):
            found.append(f"{where}: text differs: "
                         f"{_first_change(_normalise(before), _normalise(after))}")
    elif type(before) is not type(after) or (not isinstance(before, str) and before != after):
        found.append(f"{where}: {before!r} -> {after!r}")


def _close(a: float, b: float, tolerance: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= tolerance * max(abs(a), abs(b))


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _same_numbers_in_text(a: str, b: str, tolerance: float) -> bool:
    """Texts that differ only in the digits of floats printed at full precision."""
    if _NUMBER.sub("#", a) != _NUMBER.sub("#", b):
        return False
    return all(_close(float(x), float(y), tolerance)
               for x, y in zip(_NUMBER.findall(a), _NUMBER.findall(b), strict=True))


def _first_change(a: str, b: str) -> str:
    start = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                 min(len(a), len(b)))
    return f"…{a[max(0, start - 40):start + 60]!r} -> …{b[max(0, start - 40):start + 60]!r}"


def compare(before_path: Path, after_path: Path, tolerance: float) -> int:
    before = json.loads(before_path.read_text(encoding="utf-8"))
    after = json.loads(after_path.read_text(encoding="utf-8"))
    found: list[str] = []
    differences(before, after, "", tolerance, found)
    for line in found:
        print(line)
    print(f"{len(before)} answers before, {len(after)} after: "
          + ("identical within tolerance" if not found else f"{len(found)} difference(s)"))
    return 1 if found else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.compare_pages", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    dumping = commands.add_parser("dump", help="record every page's answers")
    dumping.add_argument("out", type=Path)
    dumping.add_argument("--records", type=int, default=3000)
    dumping.add_argument("--seed", type=int, default=11)
    comparing = commands.add_parser("compare", help="compare two recordings")
    comparing.add_argument("before", type=Path)
    comparing.add_argument("after", type=Path)
    comparing.add_argument("--tolerance", type=float, default=1e-9)
    args = parser.parse_args(argv)
    if args.command == "dump":
        dump(args.out, args.records, args.seed)
        return 0
    return compare(args.before, args.after, args.tolerance)


if __name__ == "__main__":
    sys.exit(main())
