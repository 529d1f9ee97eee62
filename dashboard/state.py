"""Filter state and page settings in the URL query string, so a reload or a shared link
restores the view (the global filters, and every page control declared with
:func:`register_settings`)."""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

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


# --------------------------------------------------------------------------------------------
# Page settings: every control of a page that changes what it shows, kept in the URL
# --------------------------------------------------------------------------------------------
#: Longest free-text setting value kept from a link (e.g. a unit id); longer values are dropped.
MAX_FREE_VALUE = 64


def setting_text(value: Any) -> str:
    """The URL form of a control value: ``True`` -> ``"on"``, ``0.95`` -> ``"0.95"``.

    >>> setting_text(True), setting_text(0.95), setting_text(30.0), setting_text("EUR")
    ('on', '0.95', '30', 'EUR')
    >>> setting_text(["FAC-001", "FAC-002"])  # a multi-choice control
    'FAC-001,FAC-002'
    """
    if isinstance(value, (list, tuple)):
        return ",".join(setting_text(item) for item in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


@dataclasses.dataclass(frozen=True)
class PageSetting:
    """One URL-backed control of a page.

    Parameters
    ----------
    control : the component id of the control (its ``prop`` holds the value).
    key : the short query-string key (``?cur=INR``); unique within the page and never a filter key.
    default : the control's value when the link does not set it (kept out of the URL).
    choices : the control's allowed values, or a function returning them (choices read from a
        file or the data); ``None`` accepts any short text (the page checks it, e.g. a unit id).
    prop : the control property holding the value.
    label : the setting's name in a report ("Reporting currency").
    names : how a report names each value (``{"operator_id": "Operators"}``); the URL text
        otherwise.
    multiple : a multi-choice control (its value a list): the URL holds the values joined by
        commas, and each is checked as a single value would be (unknown ones dropped).
    aliases : other URL texts accepted for a value (older links, e.g. ``{"yes": True}``).

    Examples
    --------
    >>> currency = PageSetting("costs-currency", "cur", "USD", ("USD", "EUR", "INR"))
    >>> currency.parse("INR"), currency.parse("XYZ"), currency.parse(None)
    ('INR', 'USD', 'USD')
    >>> PageSetting("peers", "peer_list", (), multiple=True).parse("FAC-001,,FAC-002")
    ('FAC-001', 'FAC-002')
    """

    control: str
    key: str
    default: Any
    choices: tuple | Callable[[], Iterable] | None = None
    prop: str = "value"
    label: str = ""
    names: Mapping | None = None
    multiple: bool = False
    aliases: Mapping[str, Any] | None = None

    def describe(self, value: Any) -> str:
        """The value as a report prints it (its name, else its URL text, else "automatic")."""
        if self.multiple:
            return ", ".join(self.describe_one(item) for item in value or ()) or "none"
        return self.describe_one(value)

    def describe_one(self, value: Any) -> str:
        name = (self.names or {}).get(value) if not isinstance(value, list) else None
        return str(name) if name is not None else setting_text(value) or "automatic"

    def allowed(self) -> tuple | None:
        choices = self.choices() if callable(self.choices) else self.choices
        return None if choices is None else tuple(choices)

    def parse(self, text: str | None) -> Any:
        """The control value for the URL text ``text``; the default when absent or not allowed
        (for a multi-choice control: the tuple of its allowed values)."""
        if self.multiple:
            if text is None or text == "":
                return self.default
            missing = object()
            values = (self._parse_one(item, missing) for item in text.split(",") if item)
            return tuple(dict.fromkeys(v for v in values if v is not missing))
        return self._parse_one(text, self.default)

    def _parse_one(self, text: str | None, default: Any) -> Any:
        if text is None or text == "":
            return default
        if self.aliases and text in self.aliases:
            return self.aliases[text]
        allowed = self.allowed()
        if allowed is None:
            return text if len(text) <= MAX_FREE_VALUE and text.isprintable() else default
        by_text = {setting_text(choice): choice for choice in allowed}
        return by_text.get(text, default)


#: page path -> its URL-backed controls (filled by :func:`register_settings` from page modules).
PAGE_SETTINGS: dict[str, tuple[PageSetting, ...]] = {}


def register_settings(path: str, *settings: PageSetting) -> tuple[PageSetting, ...]:
    """Declare the URL-backed controls of the page at ``path`` (the shell keeps them in the URL,
    restores them from it and hands them to the page's report builder)."""
    keys = [setting.key for setting in settings]
    clash = set(keys) & set(FIELD_OF_KEY)
    if len(set(keys)) != len(keys) or clash:
        raise ValueError(f"page settings of {path} need unique non-filter keys: {keys}")
    PAGE_SETTINGS[path] = tuple(settings)
    return PAGE_SETTINGS[path]


def settings_from_query(path: str, search: str | Mapping[str, str] | None) -> dict[str, Any]:
    """The page's setting values (query key -> control value) from a query string or from the
    keyword arguments Dash hands a page layout; unknown keys and bad values give the defaults.

    >>> _ = register_settings("/doc", PageSetting("doc-level", "level", 0.95, (0.9, 0.95, 0.99)))
    >>> settings_from_query("/doc", "?country=US&level=0.9"), settings_from_query("/doc", "level=x")
    ({'level': 0.9}, {'level': 0.95})
    """
    params = page_parameters(search) if not isinstance(search, Mapping) else {
        key: str(value) for key, value in search.items()}
    return {setting.key: setting.parse(params.get(setting.key))
            for setting in PAGE_SETTINGS.get(path or "/", ())}


def query_with_settings(search: str | None, path: str, values: Sequence[Any]) -> str:
    """``search`` with the page's settings replaced by ``values`` (in declaration order);
    defaults are left out, so a link holds only what differs from the page as first opened.

    >>> _ = register_settings("/doc", PageSetting("doc-cur", "cur", "USD", ("USD", "INR")))
    >>> query_with_settings("?country=US&cur=INR", "/doc", ["USD"])
    '?country=US'
    >>> query_with_settings("?country=US", "/doc", ["INR"])
    '?country=US&cur=INR'
    """
    settings = PAGE_SETTINGS.get(path or "/", ())
    extra = {key: value for key, value in page_parameters(search).items()
             if key not in {setting.key for setting in settings}}
    for setting, value in zip(settings, values, strict=True):
        parsed = setting.parse(setting_text(value))
        if parsed != setting.default:
            extra[setting.key] = setting_text(parsed)
    return query_from_filter(filter_from_query(search), extra)


def describe_settings(path: str, values: Mapping[str, Any]) -> str:
    """The page's settings as a sentence for a report header ("Reporting currency: INR; …").

    >>> _ = register_settings("/doc", PageSetting("doc-cur", "cur", "USD", label="Currency"))
    >>> describe_settings("/doc", {"cur": "INR"})
    'Currency: INR'
    """
    return "; ".join(
        f"{setting.label or setting.key}: "
        f"{setting.describe(values.get(setting.key, setting.default))}"
        for setting in PAGE_SETTINGS.get(path or "/", ()))
