"""Base class for the small, frozen result objects returned by ``analysis`` functions."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd


@dataclasses.dataclass(frozen=True)
class Result:
    """A frozen result with named fields, in the spirit of statsmodels' result classes.

    Subclasses are ``@dataclasses.dataclass(frozen=True)`` and only declare fields.

    Examples
    --------
    >>> @dataclasses.dataclass(frozen=True)
    ... class Ci(Result):
    ...     low: float
    ...     high: float
    >>> Ci(0.1, 0.2).to_frame()
       low  high
    0  0.1   0.2
    """

    def to_dict(self) -> dict[str, Any]:
        """Fields as a plain ``dict`` (nested results are converted too)."""
        return dataclasses.asdict(self)

    def to_frame(self) -> pd.DataFrame:
        """One-row tidy :class:`pandas.DataFrame` with one column per scalar field."""
        row = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if not isinstance(getattr(self, field.name), (pd.DataFrame, pd.Series, list, dict))
        }
        return pd.DataFrame([row])
