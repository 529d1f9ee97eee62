"""Group numbers of records from integer codes, without a pandas groupby (internal).

Used by :mod:`analysis.outcomes` and :mod:`analysis.costs`: several times faster than
``groupby(...).ngroup()`` at a million records.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def group_codes(records: pd.DataFrame, by: tuple[str, ...]) -> tuple[np.ndarray, pd.DataFrame]:
    """Number the observed combinations of the `by` columns as ``groupby`` would.

    Groups are numbered in the order of ``groupby(list(by), sort=True, dropna=False,
    observed=True)``: categoricals in category order, other columns by sorted value, missing
    values last.

    Parameters
    ----------
    records : pandas.DataFrame
        At least one row, with every column of `by`.
    by : tuple of str
        At least one column name.

    Returns
    -------
    tuple of (numpy.ndarray, pandas.DataFrame)
        The group number of each row (``intp``) and one row of grouping values per group, in
        group order, with a default index.

    Examples
    --------
    >>> frame = pd.DataFrame({"g": ["b", "a", None, "b"]})
    >>> codes, keys = group_codes(frame, ("g",))
    >>> codes.tolist(), keys["g"].tolist()
    ([1, 0, 2, 1], ['a', 'b', None])
    """
    n = len(records)
    combined = np.zeros(n, dtype=np.int64)
    radix = 1
    for name in by:
        column = records[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes = column.cat.codes.to_numpy().astype(np.int64)
            k = len(column.cat.categories)
        else:
            codes, uniques = pd.factorize(column, sort=True)
            codes = codes.astype(np.int64)
            k = len(uniques)
        codes[codes < 0] = k  # missing values sort last, as groupby(dropna=False)
        combined = combined * (k + 1) + codes
        radix *= k + 1
        if radix > 2**31:  # keep the mixed-radix code small; np.unique keeps the order
            _, combined = np.unique(combined, return_inverse=True)
            combined = combined.astype(np.int64)
            radix = int(combined.max()) + 1
    if radix <= max(4 * n, 1 << 20):
        present = np.bincount(combined, minlength=radix) > 0
        group = (np.cumsum(present) - 1)[combined]
    else:
        _, group = np.unique(combined, return_inverse=True)
    group = group.astype(np.intp)
    representative = np.empty(int(group.max()) + 1, dtype=np.intp)
    representative[group] = np.arange(n)  # any row of a group carries its keys
    return group, records.iloc[representative][list(by)].reset_index(drop=True)
