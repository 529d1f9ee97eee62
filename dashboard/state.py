"""Filter state in the URL query string, so a reload or a shared link restores the view."""

from __future__ import annotations

import urllib.parse

from analysis.filters import RecordFilter

# Query-string key per filter field (short, readable links).
QUERY_KEYS: dict[str, str] = {
    "date_from": "from", "date_to": "to", "countries": "country", "regions": "region",
    "facilities": "facility", "operators": "operator", "procedures": "procedure",
    "etiologies": "etiology", "age_bands": "age", "sexes": "sex", "levels": "levels",
}
FIELD_OF_KEY = {key: field for field, key in QUERY_KEYS.items()}


def filter_from_query(search: str | None) -> RecordFilter:
    """Parse ``?country=US,GB&from=2023-01-01`` into a filter; unknown keys and bad values are
    ignored rather than failing the page."""
    params = urllib.parse.parse_qs((search or "").lstrip("?"), keep_blank_values=False)
    values: dict = {}
    for key, items in params.items():
        field = FIELD_OF_KEY.get(key)
        if field is None:
            continue
        joined = ",".join(items)
        values[field] = joined if field.startswith("date") else [v for v in joined.split(",") if v]
    try:
        return RecordFilter.from_dict(values)
    except (ValueError, TypeError):
        # A hand-edited link with a bad date or band: drop the offending keys one by one.
        kept = {}
        for field, value in values.items():
            try:
                RecordFilter.from_dict({**kept, field: value})
            except (ValueError, TypeError):
                continue
            kept[field] = value
        return RecordFilter.from_dict(kept)


def page_parameters(search: str | None) -> dict[str, str]:
    """Query parameters that are not filters (a page's own settings, e.g. ``tp=month3``)."""
    params = urllib.parse.parse_qs((search or "").lstrip("?"), keep_blank_values=False)
    return {key: ",".join(values) for key, values in params.items() if key not in FIELD_OF_KEY}


def query_from_filter(selection: RecordFilter, extra: dict[str, str] | None = None) -> str:
    """The query string (with ``?``, or empty) for a filter plus page-specific parameters."""
    pairs = []
    for field, key in QUERY_KEYS.items():
        value = getattr(selection, field)
        if isinstance(value, tuple):
            if value:
                pairs.append((key, ",".join(value)))
        elif value:
            pairs.append((key, value))
    pairs += sorted((extra or {}).items())
    return "?" + urllib.parse.urlencode(pairs, safe=",") if pairs else ""
