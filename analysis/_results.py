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


class CountedText(str):
    """A message with the counts it quotes kept as data (a ``str`` for every other use).

    Analysis messages name counts ("kyphoplasty has 3 modelled records"); a display must be
    able to suppress them without parsing prose. The text is ``template`` formatted with
    ``counts``; :func:`dashboard.suppression.display_text` formats the counts itself.

    Examples
    --------
    >>> note = CountedText.of("{label} has {count} record(s)", count=3, label="kyphoplasty")
    >>> str(note), note.counts, note.words
    ('kyphoplasty has 3 record(s)', {'count': 3}, {'label': 'kyphoplasty'})
    """

    template: str
    counts: dict[str, int]
    words: dict[str, str]

    @classmethod
    def of(cls, template: str, words: dict[str, Any] | None = None,
           **counts: int) -> CountedText:
        """``template`` with ``{name}`` fields: integer keyword arguments are counts, string
        ones (or ``words``) are plain words."""
        plain = {key: value for key, value in counts.items() if isinstance(value, str)}
        plain.update({key: str(value) for key, value in (words or {}).items()})
        numbers = {key: int(value) for key, value in counts.items() if key not in plain}
        text = cls(template.format(**plain, **numbers))
        text.template, text.counts, text.words = template, numbers, plain
        return text

    def formatted(self, count_text) -> str:
        """The message with each count written by ``count_text(count)``."""
        return self.template.format(**self.words,
                                    **{key: count_text(value) for key, value in
                                       self.counts.items()})
