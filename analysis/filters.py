"""Record selection shared by the dashboard and notebooks: one filter object, one function.

Examples
--------
>>> from analysis.filters import RecordFilter, apply_filter
>>> selection = RecordFilter(procedures=("kyphoplasty",), age_bands=("75-84",))
>>> selection.is_empty
False
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
import pandas as pd

# Age bands used by filters and tables (upper bound inclusive; 90 is the top-coded age).
AGE_BANDS: dict[str, tuple[int, int]] = {
    "18-64": (18, 64), "65-74": (65, 74), "75-84": (75, 84), "85+": (85, 200),
}
LEVEL_GROUPS: dict[str, tuple[int, int]] = {"1": (1, 1), "2": (2, 2), "3+": (3, 1000)}

# Filter field -> records column, for the fields that are plain "value in list" filters.
MEMBERSHIP_COLUMNS: dict[str, str] = {
    "countries": "country", "regions": "region", "facilities": "facility_id",
    "operators": "operator_id", "procedures": "procedure", "etiologies": "etiology",
    "sexes": "sex",
}


@dataclasses.dataclass(frozen=True)
class RecordFilter:
    """Which records to analyse. Empty tuples and ``None`` dates mean "no restriction".

    Attributes
    ----------
    date_from, date_to : str or None
        Inclusive ISO dates (``YYYY-MM-DD``) on ``procedure_date``.
    countries, regions, facilities, operators, procedures, etiologies, sexes : tuple of str
        Allowed values of the corresponding column.
    age_bands : tuple of str
        Keys of :data:`AGE_BANDS`.
    levels : tuple of str
        Keys of :data:`LEVEL_GROUPS` (levels treated: ``"1"``, ``"2"``, ``"3+"``).
    """

    date_from: str | None = None
    date_to: str | None = None
    countries: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    facilities: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()
    procedures: tuple[str, ...] = ()
    etiologies: tuple[str, ...] = ()
    age_bands: tuple[str, ...] = ()
    sexes: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name.startswith("date"):
                if value is not None:
                    object.__setattr__(self, field.name, pd.Timestamp(value).strftime("%Y-%m-%d"))
            else:
                # Sorted tuples make equal selections compare (and cache) equal.
                object.__setattr__(self, field.name, tuple(sorted({str(v) for v in value or ()})))
        unknown = set(self.age_bands) - set(AGE_BANDS)
        if unknown:
            raise ValueError(f"unknown age band(s) {sorted(unknown)}; use {list(AGE_BANDS)}")
        unknown = set(self.levels) - set(LEVEL_GROUPS)
        if unknown:
            raise ValueError(f"unknown level group(s) {sorted(unknown)}; use {list(LEVEL_GROUPS)}")

    @property
    def is_empty(self) -> bool:
        """True when the filter keeps every record."""
        return self == RecordFilter()

    def to_dict(self) -> dict:
        """JSON-friendly form (lists for tuples); the inverse of :meth:`from_dict`."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict | None) -> RecordFilter:
        """Build from a dict, ignoring unknown keys and empty values."""
        names = {field.name for field in dataclasses.fields(cls)}
        clean = {}
        for key, value in (values or {}).items():
            if key not in names or value in (None, "", []):
                continue
            clean[key] = value if key.startswith("date") else tuple(_as_list(value))
        return cls(**clean)

    def describe(self) -> str:
        """The selection in words, for reports and captions."""
        parts = []
        if self.date_from or self.date_to:
            parts.append(f"procedures {self.date_from or 'start'} to {self.date_to or 'latest'}")
        labels = {"countries": "country", "regions": "region", "facilities": "facility",
                  "operators": "operator", "procedures": "procedure", "etiologies": "etiology",
                  "age_bands": "age", "sexes": "sex", "levels": "levels treated"}
        for name, label in labels.items():
            values = getattr(self, name)
            if values:
                parts.append(f"{label}: {', '.join(values)}")
        return "; ".join(parts) if parts else "all records"


def _as_list(value) -> list[str]:
    if isinstance(value, str):
        return [part for part in value.split(",") if part]
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    return [str(value)]


def filter_mask(records: pd.DataFrame, selection: RecordFilter) -> np.ndarray:
    """Boolean array: which rows of ``records`` the filter keeps."""
    keep = np.ones(len(records), dtype=bool)
    if selection.date_from:
        keep &= (records["procedure_date"] >= pd.Timestamp(selection.date_from)).to_numpy(dtype=bool)
    if selection.date_to:
        keep &= (records["procedure_date"] <= pd.Timestamp(selection.date_to)).to_numpy(dtype=bool)
    for name, column in MEMBERSHIP_COLUMNS.items():
        allowed = getattr(selection, name)
        if allowed:
            keep &= records[column].astype(object).isin(allowed).to_numpy(dtype=bool)
    for name, bands, column in (("age_bands", AGE_BANDS, "age"), ("levels", LEVEL_GROUPS, "levels_treated")):
        chosen = getattr(selection, name)
        if chosen:
            values = records[column].astype("float64").to_numpy()
            inside = np.zeros(len(records), dtype=bool)
            for key in chosen:
                low, high = bands[key]
                inside |= (values >= low) & (values <= high)
            keep &= inside
    return keep


def apply_filter(records: pd.DataFrame, selection: RecordFilter) -> pd.DataFrame:
    """The records the filter keeps (the same frame when the filter is empty).

    Parameters
    ----------
    records : pandas.DataFrame
        Records with data-dictionary columns.
    selection : RecordFilter
        The selection.

    Returns
    -------
    pandas.DataFrame
    """
    if selection.is_empty:
        return records
    return records[filter_mask(records, selection)]


def age_band(ages: pd.Series) -> pd.Series:
    """Age band label of each age (categorical, in :data:`AGE_BANDS` order)."""
    edges = [17.5] + [high + 0.5 for _low, high in AGE_BANDS.values()]
    return pd.cut(ages.astype("float64"), bins=edges, labels=list(AGE_BANDS))
