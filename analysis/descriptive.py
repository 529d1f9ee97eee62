"""Simple descriptive tables of records."""

from __future__ import annotations

import numpy as np
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

    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        data = values[~np.isnan(values)]  # the common case: no pandas round trip
    else:
        data = pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy(dtype=float)
    n = len(data)
    if n == 0:
        return (float("nan"),) * 3
    alpha = 1 - level
    # Largest r with P(B ≤ r - 1) ≤ alpha/2, B ~ Binomial(n, 1/2); the interval is x_(r)..x_(n-r+1).
    r = int(stats.binom.ppf(alpha / 2, n, 0.5))
    if stats.binom.cdf(r, n, 0.5) <= alpha / 2:
        r += 1
    r = max(r, 1)
    # Only four order statistics are needed: a partition instead of a full sort.
    middle = ((n - 1) // 2, n // 2)
    part = np.partition(data, sorted({r - 1, n - r, *middle}))
    median = (part[middle[0]] + part[middle[1]]) / 2.0
    return float(median), float(part[r - 1]), float(part[n - r])


#: Flags recorded only up to the last contact (or a death): not proportions of the records.
_TIME_TO_EVENT_FLAGS = frozenset({"adjacent_fracture", "adjacent_fracture_12m", "died",
                                  "death_30d"})


def trend_by_period(records: pd.DataFrame, outcomes: tuple[str, ...] = ("cement_leakage",),
                    freq: str = "Q", level: float = 0.95) -> pd.DataFrame:
    """Volume and event rates per calendar period and procedure.

    Parameters
    ----------
    records : pandas.DataFrame
        Records with ``procedure_date``, ``procedure`` and the boolean outcome columns.
    outcomes : tuple of str
        Boolean columns whose rates are tracked. Time-to-event flags (new fracture, death)
        are refused with a ValueError: their share ignores censoring.
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

    time_to_event = [name for name in outcomes if name in _TIME_TO_EVENT_FLAGS]
    if time_to_event:
        # A share of records with the flag ignores censoring: use the cumulative incidence.
        raise ValueError(
            f"{', '.join(time_to_event)} is a time-to-event outcome: a per-period proportion "
            "would ignore censoring; use analysis.outcomes.complication_rates(..., by=<period "
            "column>) for its cumulative incidence by period")
    columns = ["period", "period_start", "procedure", "procedures", "outcome", "n", "events",
               "rate", "low", "high"]
    if records.empty:
        return pd.DataFrame(columns=columns)
    # Counts by integer keys (period ordinal x procedure code) with bincount: one pass per
    # outcome instead of a pandas groupby over a million rows.
    ordinals, valid_period = _period_ordinals(records["procedure_date"], freq)
    procedure = records["procedure"]
    if isinstance(procedure.dtype, pd.CategoricalDtype):
        proc_codes = procedure.cat.codes.to_numpy().astype(np.int64)
        proc_labels = np.asarray(procedure.cat.categories.astype(object))
    else:
        proc_codes, proc_labels = pd.factorize(procedure, use_na_sentinel=True)
        proc_codes = proc_codes.astype(np.int64)
        proc_labels = np.asarray(proc_labels, dtype=object)
    rows = valid_period & (proc_codes >= 0)
    if not rows.any():
        return pd.DataFrame(columns=columns)
    # Every record keeps its place (no boolean selection: slow on a random mask of a million
    # rows); the rest get the key `size`, one past the groups, by arithmetic.
    outside = ~rows
    first = int((ordinals * rows + np.iinfo(np.int64).max * outside).min())
    n_proc = max(len(proc_labels), 1)
    key = ((ordinals - first) * n_proc + proc_codes) * rows
    size = int(key.max()) + 1
    key += size * outside
    volume = np.bincount(key, minlength=size + 1)[:size]
    present = np.flatnonzero(volume)  # observed (period, procedure) groups only
    periods = pd.PeriodIndex.from_ordinals(present // n_proc + first, freq=freq)
    labels = [str(proc_labels[code]) for code in present % n_proc]
    frames = []
    for outcome in outcomes:
        values = records[outcome].astype("boolean")
        # 0 known false, 1 known true, 2 missing: one bincount gives n and events.
        status = (values.to_numpy(dtype=bool, na_value=False).view(np.uint8)
                  + 2 * values.isna().to_numpy(dtype=bool).view(np.uint8))
        table = np.bincount(3 * key + status, minlength=3 * (size + 1)).reshape(-1, 3)
        n = (table[present, 0] + table[present, 1]).astype(np.int64)
        k = table[present, 1].astype(np.int64)
        low, high = proportion_ci(k, n, level=level)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)
        frames.append(pd.DataFrame({
            "period": periods.astype(str), "period_start": periods.start_time,
            "procedure": labels, "procedures": volume[present].astype(np.int64),
            "outcome": outcome, "n": n, "events": k, "rate": rate, "low": low, "high": high,
        }))
    table = pd.concat(frames, ignore_index=True)
    return table[columns].sort_values(["outcome", "period_start", "procedure"]).reset_index(drop=True)


def _months(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Months since 1970-01 of datetime64 values (anything where not `valid`).

    Through the day number and a table of the few thousand days spanned: numpy's own
    conversion to months works out the calendar for each of a million dates.
    """
    days = values.astype("datetime64[D]").astype(np.int64)
    if not valid.any():
        return days
    invalid = ~valid
    days *= valid  # NaT (the least int64) becomes 0, then the first day
    low = int((days + np.iinfo(np.int64).max * invalid).min())
    days += low * invalid
    high = int(days.max())
    if high - low > 1_000_000:  # dates spread over millennia: the direct conversion
        return values.astype("datetime64[M]").astype(np.int64)
    table = np.arange(low, high + 1).astype("datetime64[D]").astype("datetime64[M]")
    return table.astype(np.int64)[days - low]


def _period_ordinals(dates: pd.Series, freq: str) -> tuple[np.ndarray, np.ndarray]:
    """Period ordinals (pandas' numbering) of each date, and which dates are not missing."""
    if dates.dtype.kind != "M":  # to_datetime on a datetime column is slow (it inspects values)
        dates = pd.to_datetime(dates)
    values = dates.to_numpy(dtype="datetime64[ns]")
    valid = ~np.isnat(values)
    months = _months(values, valid)  # months since 1970-01
    if freq in ("M", "ME"):
        return months, valid
    if freq in ("Q", "QE", "Q-DEC", "QE-DEC"):
        return months // 3, valid
    if freq in ("Y", "YE", "A", "Y-DEC", "YE-DEC"):
        return months // 12, valid
    periods = pd.Series(values).dt.to_period(freq)  # other frequencies: pandas does it
    return periods.array.asi8.astype(np.int64), valid
