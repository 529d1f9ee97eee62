"""Adjustment of p-values for multiple testing.

References
----------
.. [1] Benjamini Y, Hochberg Y. Controlling the false discovery rate: a practical and
   powerful approach to multiple testing. J R Stat Soc B 1995;57:289-300.
.. [2] Holm S. A simple sequentially rejective multiple test procedure. Scand J Stat
   1979;6:65-70.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from statsmodels.stats.multitest import multipletests

__all__ = ["adjust_pvalues"]

# Methods of statsmodels.stats.multitest.multipletests that return adjusted p-values.
_METHODS = (
    "bonferroni",
    "sidak",
    "holm-sidak",
    "holm",
    "simes-hochberg",
    "hommel",
    "fdr_bh",
    "fdr_by",
)


def adjust_pvalues(p: ArrayLike, method: str = "fdr_bh") -> NDArray[np.float64]:
    """Adjust a family of p-values; NaN entries pass through and are not in the family.

    Parameters
    ----------
    p : array_like
        p-values in [0, 1], any shape. NaN marks a test that was not run (e.g. skipped for
        insufficient data); it stays NaN and does not count towards the family size.
    method : str, default "fdr_bh"
        ``"fdr_bh"`` (Benjamini–Hochberg false discovery rate) for secondary outcomes and
        institution flags; ``"holm"`` for a few co-primary outcomes; also ``"bonferroni"``,
        ``"sidak"``, ``"holm-sidak"``, ``"simes-hochberg"``, ``"hommel"``, ``"fdr_by"``.

    Returns
    -------
    numpy.ndarray
        Adjusted p-values, same shape as `p`, capped at 1. Same values as R ``p.adjust``.

    Notes
    -----
    Uses :func:`statsmodels.stats.multitest.multipletests` on the non-missing values.

    Examples
    --------
    >>> adjust_pvalues([0.01, 0.04, float("nan"), 0.03]).round(3).tolist()
    [0.03, 0.04, nan, 0.04]
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {list(_METHODS)}, got {method!r}")
    arr = np.asarray(p, dtype=float)
    out = np.full(arr.shape, np.nan)
    present = ~np.isnan(arr)
    values = arr[present]
    if np.any((values < 0) | (values > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    if values.size:
        out[present] = multipletests(values, method=method)[1]
    return out
