"""The shared statistical reference cases (tests/fixtures/stats-reference-cases.json) and the
tolerance checks used with them.

The JSON is a copy of ``shared/reference/stats-reference-cases.json``: worked cases with inputs,
expected values to 4 decimals, a tolerance and a source each (R documentation examples,
Newcombe 1998, metafor's tests, Spiegelhalter 2005, ...). Values in scientific notation are
compared with a relative tolerance of 1e-3, as the methods note prescribes.
"""

from __future__ import annotations

import json
from pathlib import Path

REFERENCE_CASES_PATH = Path(__file__).resolve().parent / "fixtures" / "stats-reference-cases.json"


def load_cases() -> dict[str, dict]:
    """Reference cases by name."""
    data = json.loads(REFERENCE_CASES_PATH.read_text())
    return {case["name"]: case for case in data["cases"]}


def close(got: float, expected: float, tol: float) -> None:
    """Assert ``|got - expected| <= tol`` with a readable message."""
    assert abs(got - expected) <= tol, f"{got} vs {expected} (tol {tol})"


def close_rel(got: float, expected: float, rel: float = 1e-3) -> None:
    """Assert a relative tolerance (p-values in scientific notation)."""
    assert abs(got - expected) <= rel * abs(expected), f"{got} vs {expected} (rel {rel})"
