"""Simple descriptive tables of records."""

from __future__ import annotations

import pandas as pd

PROCEDURES = ("vertebroplasty", "kyphoplasty")


def procedure_counts(records: pd.DataFrame) -> pd.DataFrame:
    """Number of records per procedure, both procedures always listed.

    Parameters
    ----------
    records : pandas.DataFrame
        Records with a ``procedure`` column.

    Returns
    -------
    pandas.DataFrame
        Columns ``procedure, records`` in the order vertebroplasty, kyphoplasty.

    Examples
    --------
    >>> import pandas as pd
    >>> procedure_counts(pd.DataFrame({"procedure": ["kyphoplasty", "kyphoplasty"]}))
            procedure  records
    0  vertebroplasty        0
    1     kyphoplasty        2
    """
    counts = records["procedure"].astype(object).value_counts()
    return pd.DataFrame({"procedure": list(PROCEDURES),
                         "records": [int(counts.get(name, 0)) for name in PROCEDURES]})
