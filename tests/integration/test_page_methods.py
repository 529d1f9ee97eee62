"""Methods page: every method the analysis package uses is named, defined and cited."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pandas as pd
import pytest

from analysis.filters import RecordFilter
from analysis.outcomes import COMPLICATION_OUTCOMES
from dashboard.app_factory import create_app
from data import store
from data.dictionary import PAIN_VISITS
from tests.dash_tree import texts

ROOT = Path(__file__).resolve().parents[2]
ANALYSIS_MODULES = ("adjustment", "comparison", "costs", "means", "meta", "multiplicity",
                    "outcomes", "power", "proportions", "quality", "survival", "table_one")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    store.dispose_engines()
    database = f"sqlite:///{tmp_path_factory.mktemp('methods') / 'store.db'}"
    yield create_app(database)
    store.dispose_engines()


@pytest.fixture(scope="module")
def methods(app):
    from dashboard.pages import methods

    return methods


def walk_components(component):
    yield component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if child is not None and not isinstance(child, str):
            yield from walk_components(child)


@pytest.fixture(scope="module")
def page_text(app, methods) -> str:
    with app.server.app_context():
        page = methods.layout()
    return " ".join(texts(page))


@pytest.mark.parametrize("name", [
    "Newcombe", "Wilson", "Clopper", "Katz", "Woolf", "Welch", "Hodges", "Greenwood", "log(−log)",
    "Aalen–Johansen", "Benjamini", "Fisher", "Pearson χ²", "Spiegelhalter", "Steiner", "Efron",
    "g-computation", "stabilised ATE weights", "|SMD| < 0.1", "ANCOVA", "gamma GLM", "Cox",
    "Ulm", "exact Poisson", "99.8%", "CD006349", "VERTOS II", "VERTOS IV", "2.5 points",
    "confounding by indication", "Residual confounding", "Missing follow-up", "<11",
    "VA_SUPPRESSION_THRESHOLD", "PPP", "G.5A", "bootstrap", "ICER", "top-coded to 90",
    "45 CFR 164.514(b)(2)", "competing risk"])
def test_page_names_every_method(page_text, name):
    assert name.lower() in page_text.lower()


def _docstring_first_authors() -> set[str]:
    """First-author surnames of the references in the analysis modules' docstrings."""
    names = set()
    for module in ANALYSIS_MODULES:
        path = ROOT / "analysis" / f"{module}.py"
        if not path.exists():  # a package: its references are in its __init__
            path = ROOT / "analysis" / module / "__init__.py"
        source = path.read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(source)) or ""
        for entry in re.findall(r"^\.\. \[\d+\] (.+)$", doc, flags=re.MULTILINE):
            names.add(entry.split(",")[0].split(" ")[0])
    # quality.py names its sources inline.
    names |= {"Spiegelhalter", "Ulm", "Breslow", "Steiner", "Lovegrove", "Laney"}
    return names


def test_every_reference_of_the_analysis_package_is_listed(methods):
    authors = _docstring_first_authors()
    assert len(authors) > 40
    listed = " ".join(methods.REFERENCES)
    missing = sorted(name for name in authors if name not in listed)
    assert not missing, f"add to the Methods references: {missing}"


def test_every_citation_in_the_text_has_a_reference(methods):
    body = " ".join(text for anchor, _, text in methods.methods_sections()
                    if anchor != "methods-references")
    citations = re.findall(r"([A-Z][A-Za-zü'-]+)(?: et al\.)? ((?:19|20)\d\d)[ab]?\b", body)
    assert len(citations) > 40
    for name, year in citations:
        assert any(name in ref and year in ref for ref in methods.REFERENCES), (name, year)


def test_definitions_follow_the_code(page_text):
    for suffix, (label, nominal, window) in PAIN_VISITS.items():
        assert f"{label} pain_{suffix} {nominal} {window}" in page_text  # a row of the table
    for label in COMPLICATION_OUTCOMES.values():
        assert label.split(" ")[0] in page_text
    assert "by day 365" in page_text and "by day 30" in page_text
    assert "cumulative incidence at day 365 with death as a competing risk" in page_text


def test_contents_links_match_the_sections(app, methods):
    with app.server.app_context():
        page = methods.layout()
    components = list(walk_components(page))
    section_ids = {c.id for c in components if type(c).__name__ == "Section"}
    links = {c.href for c in components if type(c).__name__ == "A" and c.href.startswith("#")}
    assert len(section_ids) == 14
    assert {f"#{anchor}" for anchor in section_ids} <= links
    assert links <= {f"#{anchor}" for anchor in section_ids}
    assert [c.id for c in components if type(c).__name__ == "Section"][-1] == "methods-references"


def test_threshold_follows_the_environment(app, methods, monkeypatch):
    monkeypatch.setenv("VA_SUPPRESSION_THRESHOLD", "5")
    with app.server.app_context():
        shown = " ".join(texts(methods.layout()))
    assert 'from 1 to 5 is shown as "<6"' in shown and "This installation uses" in shown


def test_docs_file_is_generated_from_the_page(methods):
    expected = methods.methods_markdown()
    path = ROOT / "docs" / "methods.md"
    assert path.read_text(encoding="utf-8") == expected, (
        "docs/methods.md is out of date; regenerate it with: python -c \"from dashboard."
        "app_factory import create_app; create_app(); from dashboard.pages.methods import "
        "methods_markdown; open('docs/methods.md', 'w', encoding='utf-8')"
        ".write(methods_markdown())\"")


def test_report_is_plain_text_and_tables(app, methods):
    from dashboard.layout import download_report

    sections = methods.methods_report(RecordFilter())
    assert sections[0].title == "About these methods"
    assert sections[-1].title == "References"
    assert len(sections[-1].table) == len(methods.REFERENCES)
    for section in sections:
        assert "**" not in section.text and "|---" not in section.text and "](#" not in section.text
        if section.table is not None:
            assert isinstance(section.table, pd.DataFrame) and len(section.table)
    intervals = next(s for s in sections if s.title == "Confidence intervals")
    assert "Newcombe 1998b" in " ".join(intervals.table["Source"])
    with app.server.app_context():
        sent = download_report(1, "/methods", RecordFilter().to_dict())
    assert sent["filename"].startswith("methods-report-") and "Clopper" in sent["content"]
