"""Fixtures shared by the analysis tests."""

from __future__ import annotations

import pytest

from tests.reference import load_cases


@pytest.fixture(scope="session")
def cases() -> dict[str, dict]:
    """The statistical reference cases by name (see tests/reference.py)."""
    return load_cases()
