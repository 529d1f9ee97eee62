"""The leak search behind ``test_disclosure_leak_search.py``: what a signed-in user receives for
a selection (every page callback and the page's HTML report, posted through the Flask test
client like a browser would), and the displayed counts found in it.

What counts as a *displayed count* (the rules are deliberately narrow, so a percentage, a year,
a CI limit, a z-score or a count of facilities is never mistaken for a count of patients):

* a number directly followed by a person noun in any text: ``"26 procedures"``,
  ``"3 events"``, ``"27 of 5,000 records"`` (both numbers), ``"n 33"`` / ``"n = 33"``;
  ``"fewer than 11"``, ``"at least 10"``, ``"≥11"`` and ``"<11"`` are thresholds, not counts;
* ``a/b`` and ``a of b`` pairs before a person noun (events of a total, both counts);
* the count fields of data-grid rows (``n``, ``events``, ``observed``, ``responders`` ... );
* the bar heights of a figure whose hover template says the bars are procedures.

Text pieces are joined with a space before matching, so a card's value ``"27"`` followed by its
detail ``"records in the selection"`` is read as ``"27 records"``, as a person reads it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable

PERSON_NOUNS = (r"(?:procedures?|records?|events?|non-events?|patients?|cases?|responders?|"
                r"non-responders?|deaths?|fractures?|new fractures?|values?|observations?|"
                r"kyphoplast\w*|vertebroplast\w*|followed|costed)")
_NUMBER = r"(\d{1,3}(?:,\d{3})+|\d+)"
_END = r"(?!\.\d|,\d|\d|\s*%)"  # not a decimal, a longer number or a percentage
#: A number not preceded by a threshold word or sign, nor part of a decimal/percent/date.
_FREE = r"(?<![\w.,/<>≥≤−–-])(?<!than )(?<!least )(?<!most )(?<!per )(?<!every )(?<!to )"
COUNT_BEFORE_NOUN = re.compile(_FREE + _NUMBER + _END + r"(?=\s+(?:of\s+[\d,]+\s+)?"
                               + PERSON_NOUNS + r"\b)")
COUNT_OF_TOTAL = re.compile(
    _FREE + _NUMBER + r"(?:/" + _NUMBER + _END + r"(?!/)|\s+of\s+" + _NUMBER
    + _END + r"(?=\)?\s+" + PERSON_NOUNS + r"\b))")
COUNT_AFTER_N = re.compile(r"(?<![\w.-])n(?:\s*[=:]\s*|\s+)" + _NUMBER + _END + r"")
SELECTION_TOTAL = re.compile(r"records match|records in the selection", re.I)
COUNT_FIELDS = {"n", "events", "observed", "responders", "non_events", "n_followed", "count",
                "procedures", "records", "patients", "deaths", "n_vp", "n_kp", "events_vp",
                "events_kp", "n_events"}


@dataclasses.dataclass(frozen=True)
class Displayed:
    """One displayed count: its value, where it was found and the text around it."""

    value: int
    where: str
    context: str
    total: int | None = None  # for "a of b": the b

    @property
    def is_selection_total(self) -> bool:
        """A count of the whole selection (or of one procedure in it): the match count, the
        Overview's and the Costs page's "records in the selection"."""
        return bool(SELECTION_TOTAL.search(self.context))


def _int(text: str) -> int:
    return int(text.replace(",", ""))


#: Published figures quoted with their source (the literature benchmarks: "VP 11/532 PVs ...
#: https://doi.org/...") are counts of other studies, not of these records.
CITATION = re.compile(r"doi\.org/|et al\.", re.I)


def counts_in_text(text: str, where: str) -> list[Displayed]:
    found = [d for d in _counts_in_text(text, where) if not CITATION.search(d.context)]
    return found


def _counts_in_text(text: str, where: str) -> list[Displayed]:
    found = []
    for match in COUNT_BEFORE_NOUN.finditer(text):
        found.append(Displayed(_int(match.group(1)), where, _around(text, match)))
    for match in COUNT_OF_TOTAL.finditer(text):
        part, total = _int(match.group(1)), _int(match.group(2) or match.group(3))
        found.append(Displayed(part, where, _around(text, match), total=total))
        found.append(Displayed(total, where, _around(text, match)))
    for match in COUNT_AFTER_N.finditer(text):
        found.append(Displayed(_int(match.group(1)), where, _around(text, match)))
    return found


def _around(text: str, match: re.Match) -> str:
    return text[max(0, match.start() - 60):match.end() + 40]


def _is_figure(node: dict) -> bool:
    return isinstance(node.get("data"), list) and isinstance(node.get("layout"), dict)


def _figure_counts(figure: dict, where: str) -> tuple[list[str], list[Displayed]]:
    texts, found = [], []
    for trace in figure["data"]:
        for key in ("name", "hovertext", "text"):
            texts.extend(_strings(trace.get(key)))
        template = str(trace.get("hovertemplate") or "")
        texts.extend(_rendered_hovers(trace, template))
        if trace.get("type") == "bar" and re.search(r"\}\s*procedures", template):
            axis = "x" if trace.get("orientation") == "h" else "y"
            for value in _values(trace.get(axis)):
                if value is not None and float(value).is_integer():
                    found.append(Displayed(int(value), where + ":bar", template[:60]))
    layout = figure["layout"]
    for annotation in layout.get("annotations") or []:
        texts.extend(_strings(annotation.get("text")))
    for key, value in layout.items():
        if key.startswith(("xaxis", "yaxis")) and isinstance(value, dict):
            texts.extend(_strings((value.get("title") or {}).get("text")))
            texts.extend(_strings(value.get("ticktext")))
    texts.extend(_strings((layout.get("title") or {}).get("text")))
    return texts, found


def _rendered_hovers(trace: dict, template: str) -> list[str]:
    """The hover text of every point, as plotly renders its template from ``customdata``
    (only the ``%{customdata}`` fields: the others are axis values, not counts)."""
    customdata = _values(trace.get("customdata"))
    if not template or not customdata:
        return []
    rendered = []
    for point in customdata:
        text = template.replace("<extra>", " ").replace("</extra>", " ")
        if isinstance(point, list):
            for index, value in enumerate(point):
                text = re.sub(r"%\{customdata\[" + str(index) + r"\](?::[^}]*)?\}", str(value), text)
        else:
            text = re.sub(r"%\{customdata(?::[^}]*)?\}", str(point), text)
        rendered.append(re.sub(r"%\{[^}]*\}", " ", text))
    return rendered


def _values(value) -> list:
    if isinstance(value, dict) and "bdata" in value:  # plotly's typed-array encoding
        import base64

        import numpy as np

        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return data.tolist()
    return list(value) if isinstance(value, list) else []


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def displayed_counts(payload, where: str) -> list[Displayed]:
    """Every displayed count in a callback response (or any JSON-like value)."""
    texts: list[str] = []
    found: list[Displayed] = []

    def walk(node, path: str) -> None:
        if isinstance(node, str):
            texts.append(node)
        elif isinstance(node, list):
            for item in node:
                walk(item, path)
        elif isinstance(node, dict):
            if _is_figure(node):
                figure_texts, figure_counts = _figure_counts(node, path)
                texts.append(" | ".join(figure_texts))
                found.extend(figure_counts)
                return
            props = node.get("props") if "namespace" in node else None
            if props is not None:
                if isinstance(props.get("rowData"), list):
                    for row in props["rowData"]:
                        for key, value in (row or {}).items():
                            if str(key).lower() in COUNT_FIELDS:
                                number = _grid_number(value)
                                if number is not None:
                                    found.append(Displayed(number, path + ":grid",
                                                           f"{key}={value} in {row}"[:160]))
                for key, value in props.items():
                    if key not in ("rowData", "id", "style", "className", "columnDefs"):
                        walk(value, path)
                return
            for value in node.values():
                walk(value, path)

    walk(payload, where)
    joined = " ".join(texts)
    found.extend(counts_in_text(joined, where))
    return found


def _grid_number(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\d{1,3}(?:,\d{3})+|\d+", value.strip()):
        return _int(value.strip())
    return None


def report_text(html_document: str) -> str:
    """A report's visible text and figure JSON, without the embedded plotly.js."""
    start = html_document.find("<script>")
    end = html_document.find("</script>", start)
    if start < 0 or end < 0:
        return html_document
    return html_document[:start] + html_document[end + len("</script>"):]


def report_counts(html_document: str, where: str) -> list[Displayed]:
    """Displayed counts of an HTML report: its text, table cells and figure hover texts."""
    body = report_text(html_document)
    found: list[Displayed] = []
    decoder = json.JSONDecoder()
    for start in re.finditer(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*", body):
        data, end = decoder.raw_decode(body, start.end())
        end = body.index(",", end) + 1
        while body[end].isspace():
            end += 1
        layout, _ = decoder.raw_decode(body, end)
        texts, counts = _figure_counts({"data": data, "layout": layout}, where + ":figure")
        found.extend(counts)
        found.extend(counts_in_text(" ".join(texts), where + ":figure"))
    visible = re.sub(r"<script.*?</script>", " ", body, flags=re.S)
    import html as html_module

    cells = [html_module.unescape(c) for c in re.split(r"<[^>]+>", visible) if c.strip()]
    found.extend(counts_in_text(" ".join(cells), where + ":text"))
    found.extend(_report_table_counts(visible, where + ":table"))
    return found


def _report_table_counts(visible: str, where: str) -> list[Displayed]:
    import html as html_module

    found = []
    for table in re.findall(r"<table.*?</table>", visible, flags=re.S):
        headers = [html_module.unescape(re.sub(r"<[^>]+>", "", h)).strip().lower()
                   for h in re.findall(r"<th[^>]*>(.*?)</th>", table, flags=re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", table, flags=re.S):
            cells = [html_module.unescape(re.sub(r"<[^>]+>", "", c)).strip()
                     for c in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)]
            for header, cell in zip(headers, cells, strict=False):
                if header.replace(" ", "_") in COUNT_FIELDS:
                    number = _grid_number(cell)
                    if number is not None:
                        found.append(Displayed(number, where, f"{header}={cell} in {cells}"))
    return found


def small(found: Iterable[Displayed], limit: int) -> list[Displayed]:
    """Displayed counts from 1 to ``limit`` (primary disclosure), and totals whose complement
    ``total − part`` is from 1 to ``limit`` (``"95 of 100 responders"`` gives 5 non-responders)."""
    leaks = [d for d in found if 1 <= d.value <= limit]
    leaks += [d for d in found if d.total is not None and 1 <= d.total - d.value <= limit]
    return leaks


def csv_counts(text: str, where: str) -> list[Displayed]:
    """Displayed counts of a CSV download: its count columns and its text cells."""
    import csv
    import io

    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return []
    headers = [h.strip().lower().replace(" ", "_") for h in rows[0]]
    found = []
    for row in rows[1:]:
        for header, cell in zip(headers, row, strict=False):
            if header in COUNT_FIELDS:
                number = _grid_number(cell)
                if number is not None:
                    found.append(Displayed(number, where, f"{header}={cell} in {row}"[:160]))
    found.extend(counts_in_text(" ".join(" ".join(r) for r in rows[1:]), where))
    return found


def grids(node, found=None) -> list[dict]:
    """The display grids (``{"type": "data-grid"}`` ids) in a callback response."""
    found = [] if found is None else found
    if isinstance(node, dict):
        props = node.get("props") if "namespace" in node else None
        if props and isinstance(props.get("id"), dict) \
                and props["id"].get("type") == "data-grid":
            found.append(props)
        for value in node.values():
            grids(value, found)
    elif isinstance(node, list):
        for item in node:
            grids(item, found)
    return found
