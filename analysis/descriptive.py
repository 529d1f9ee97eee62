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


def median_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """Median with a distribution-free confidence interval from order statistics.

    Method: the interval ``[x_(r), x_(s)]`` of order statistics whose coverage follows from the
    Binomial(n, 1/2) distribution of the number of observations below the median (Conover 1999,
    *Practical Nonparametric Statistics*, §3.2; the same interval as R's
    ``DescTools::MedianCI(method="exact")``). Its coverage is at least ``level``.

    Parameters
    ----------
    values : array-like
        Observations; missing values are dropped.
    level : float
        Confidence level.

    Returns
    -------
    tuple of float
        ``(median, low, high)``; NaNs when there are no values. With fewer than 6 values the
        interval at 95% is the sample range, which cannot reach the level: it is returned
        anyway, and is conservative only in that it is the widest interval available.

    Examples
    --------
    >>> median_ci([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    (5.5, 2.0, 9.0)
    """
    import numpy as np
    from scipy import stats

    data = np.sort(pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy(dtype=float))
    n = len(data)
    if n == 0:
        return (float("nan"),) * 3
    alpha = 1 - level
    # Largest r with P(B ≤ r - 1) ≤ alpha/2, B ~ Binomial(n, 1/2); the interval is x_(r)..x_(n-r+1).
    r = int(stats.binom.ppf(alpha / 2, n, 0.5))
    if stats.binom.cdf(r, n, 0.5) <= alpha / 2:
        r += 1
    r = max(r, 1)
    return float(np.median(data)), float(data[r - 1]), float(data[n - r])


def trend_by_period(records: pd.DataFrame, outcomes: tuple[str, ...] = ("cement_leakage",),
                    freq: str = "Q", level: float = 0.95) -> pd.DataFrame:
    """Volume and event rates per calendar period and procedure.

    Parameters
    ----------
    records : pandas.DataFrame
        Records with ``procedure_date``, ``procedure`` and the boolean outcome columns.
    outcomes : tuple of str
        Boolean columns whose rates are tracked.
    freq : str
        Pandas period frequency (``"Q"`` quarters, ``"M"`` months, ``"Y"`` years).
    level : float
        Confidence level of the Wilson intervals.

    Returns
    -------
    pandas.DataFrame
        One row per (period, procedure, outcome): ``period`` (text, e.g. ``"2024Q1"``),
        ``period_start`` (timestamp), ``procedure``, ``procedures`` (volume), ``outcome``,
        ``n`` (records with the outcome known), ``events``, ``rate``, ``low``, ``high``.
    """
    from analysis.proportions import proportion_ci

    columns = ["period", "period_start", "procedure", "procedures", "outcome", "n", "events",
               "rate", "low", "high"]
    if records.empty:
        return pd.DataFrame(columns=columns)
    period = records["procedure_date"].dt.to_period(freq)
    frames = []
    grouped = records.assign(_period=period).groupby(["_period", "procedure"], observed=True)
    volume = grouped.size().rename("procedures")
    for outcome in outcomes:
        values = records[outcome].astype("boolean")
        summary = pd.DataFrame({
            "n": values.notna().groupby([period, records["procedure"]], observed=True).sum(),
            "events": values.fillna(False).astype(int).groupby([period, records["procedure"]],
                                                                observed=True).sum(),
        })
        summary.index.names = ["_period", "procedure"]
        summary = summary.join(volume).reset_index()
        low, high = proportion_ci(summary["events"].to_numpy(), summary["n"].to_numpy(), level=level)
        summary["rate"] = summary["events"] / summary["n"].where(summary["n"] > 0)
        summary["low"], summary["high"] = low, high
        summary["outcome"] = outcome
        frames.append(summary)
    table = pd.concat(frames, ignore_index=True)
    table["period_start"] = table["_period"].dt.start_time
    table["period"] = table["_period"].astype(str)
    table["procedure"] = table["procedure"].astype(str)
    return table[columns].sort_values(["outcome", "period_start", "procedure"]).reset_index(drop=True)
