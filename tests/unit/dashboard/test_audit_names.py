"""Audit events name tables the server knows, never what a browser sent (issue 13 item 4)."""

from __future__ import annotations


def test_every_display_grid_of_the_pages_is_listed_for_the_audit():
    """Download audit events name a grid only when the server lists it (issue 13 item 4)."""
    import re
    from pathlib import Path

    from dashboard.exports import GRID_NAMES

    pages = Path(__file__).resolve().parents[3] / "dashboard" / "pages"
    used = set()
    for path in pages.glob("*.py"):
        used |= set(re.findall(r"data_grid\(\s*[^\"]*?,\s*\"([^\"]+)\"", path.read_text(),
                               flags=re.S))
    assert len(used) >= 20 and used <= GRID_NAMES, used - GRID_NAMES
