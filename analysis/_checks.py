"""Argument checks shared by the estimators (internal).

One home for the checks every result-producing function applies to its arguments, so that the
rule and its message are the same whichever function a user calls.
"""

from __future__ import annotations


def check_level(level: float) -> float:
    """A confidence level as a float strictly between 0 and 1, or ValueError.

    Examples
    --------
    >>> check_level(0.95)
    0.95
    >>> check_level(95)
    Traceback (most recent call last):
    ...
    ValueError: level must be between 0 and 1 (exclusive), got 95.0
    """
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (exclusive), got {level}")
    return level
