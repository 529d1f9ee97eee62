"""Typed errors raised by ``analysis`` when data cannot support a method."""

from __future__ import annotations


class AnalysisError(ValueError):
    """Base class for analysis errors that carry a message meant for users."""


class InsufficientDataError(AnalysisError):
    """A group is empty or too small for the requested method.

    Parameters
    ----------
    method : str
        The method that could not run (e.g. ``"Welch t-test"``).
    reason : str
        Why, in plain words (e.g. ``"kyphoplasty group has 1 value; 2 are needed"``).
    """

    def __init__(self, method: str, reason: str) -> None:
        self.method = method
        self.reason = reason
        super().__init__(f"{method} skipped: {reason}")
