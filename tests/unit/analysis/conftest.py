"""Fixtures shared by the analysis tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.reference import load_cases

RESULTS = Path(__file__).resolve().parents[2] / "results"


@pytest.fixture(scope="session")
def cases() -> dict[str, dict]:
    """The statistical reference cases by name (see tests/reference.py)."""
    return load_cases()


@pytest.fixture(scope="session")
def clustered_cohort() -> pd.DataFrame:
    """The fixed-seed cohort of 40 facilities the R references of clustered inference were
    computed on (``tests/results/clustered_cohort.csv``); read-only in the tests."""
    cohort = pd.read_csv(RESULTS / "clustered_cohort.csv")
    for column in ("cement_leakage", "adjacent_fracture", "died"):
        cohort[column] = cohort[column].astype("boolean")
    return cohort
