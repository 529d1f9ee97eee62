"""Confidence intervals and tests for proportions (single arm and two-group comparisons).

Conventions
-----------
Two-group functions take kyphoplasty (KP) as group 1 and vertebroplasty (VP, the
reference) as group 2 when the caller passes them in that order: differences are
``group1 - group2`` and ratios ``group1 / group2``, i.e. KP compared with VP.

References
----------
.. [1] Wilson EB. Probable inference, the law of succession, and statistical inference.
   J Am Stat Assoc 1927;22:209-212.
.. [2] Clopper CJ, Pearson ES. The use of confidence or fiducial limits illustrated in the
   case of the binomial. Biometrika 1934;26:404-413.
.. [3] Newcombe RG. Two-sided confidence intervals for the single proportion: comparison of
   seven methods. Stat Med 1998;17:857-872.
.. [4] Newcombe RG. Interval estimation for the difference between independent proportions:
   comparison of eleven methods. Stat Med 1998;17:873-890.
.. [5] Katz D, Baptista J, Azen SP, Pike MC. Obtaining confidence intervals for the risk ratio
   in cohort studies. Biometrics 1978;34:469-474.
.. [6] Woolf B. On estimating the relation between blood group and disease. Ann Hum Genet
   1955;19:251-253.
"""

from __future__ import annotations

import dataclasses
from typing import overload

import numpy as np
import scipy.stats as st
from numpy.typing import ArrayLike, NDArray
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from analysis._checks import check_level
from analysis._results import Result
from analysis.errors import InsufficientDataError

__all__ = [
    "KProportionsTest",
    "ProportionComparison",
    "compare_k_proportions",
    "compare_proportions",
    "proportion_ci",
]

# statsmodels' names for the interval methods we expose.
_CI_METHODS = {"wilson": "wilson", "exact": "beta"}


@overload
def proportion_ci(
    x: float, n: float, level: float = ..., method: str = ...
) -> tuple[float, float]: ...


@overload
def proportion_ci(
    x: ArrayLike, n: ArrayLike, level: float = ..., method: str = ...
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...


def proportion_ci(x, n, level=0.95, method="wilson"):
    """Confidence interval for a binomial proportion ``x / n``.

    Parameters
    ----------
    x : int or array_like
        Number of events.
    n : int or array_like
        Number of trials (patients). Broadcast against `x`.
    level : float, default 0.95
        Confidence level.
    method : {"wilson", "exact"}, default "wilson"
        ``"wilson"`` is the Wilson (1927) score interval, recommended by Newcombe (1998a) and
        Brown, Cai & DasGupta (2001). ``"exact"`` is the Clopper–Pearson (1934) interval
        obtained from beta quantiles; it is conservative and is the usual choice when
        ``x = 0`` or ``x = n``.

    Returns
    -------
    (low, high) : tuple of float, or tuple of ndarray
        Floats when `x` and `n` are scalars; arrays of the broadcast shape otherwise. The
        limits are clipped to ``[0, 1]``.

    Raises
    ------
    InsufficientDataError
        If a scalar `n` is 0. For array input, entries with ``n == 0`` give NaN limits so
        that one empty unit does not stop a vectorised call.
    ValueError
        If ``x < 0``, ``x > n`` or `method` is unknown.

    Notes
    -----
    Computed with :func:`statsmodels.stats.proportion.proportion_confint`
    (``method="wilson"`` or ``"beta"``).

    Examples
    --------
    >>> low, high = proportion_ci(81, 263)
    >>> round(low, 4), round(high, 4)
    (0.2553, 0.3662)
    >>> low, high = proportion_ci([0, 29], [20, 29], method="exact")
    >>> low.round(4).tolist(), high.round(4).tolist()
    ([0.0, 0.8806], [0.1684, 1.0])
    """
    level = check_level(level)
    if method not in _CI_METHODS:
        raise ValueError(f"method must be one of {sorted(_CI_METHODS)}, got {method!r}")
    scalar = np.ndim(x) == 0 and np.ndim(n) == 0
    x_arr, n_arr = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(n, dtype=float))
    if np.any(np.isnan(x_arr)) or np.any(np.isnan(n_arr)):
        raise ValueError("x and n must not contain NaN")
    if np.any(x_arr < 0) or np.any(x_arr > n_arr):
        raise ValueError("each x must satisfy 0 <= x <= n")
    empty = n_arr == 0
    if scalar and empty:
        raise InsufficientDataError("Confidence interval for a proportion", "n is 0")
    # Compute on a safe denominator, then blank the empty entries.
    low, high = proportion_confint(
        x_arr, np.where(empty, 1.0, n_arr), alpha=1.0 - level, method=_CI_METHODS[method]
    )
    # Both methods give exactly 0 at x = 0 and 1 at x = n; Wilson's formula can miss by
    # rounding (2.8e-17), which would put the estimate outside its interval.
    low = np.where(x_arr == 0, 0.0, np.clip(low, 0.0, 1.0))
    high = np.where(x_arr == n_arr, 1.0, np.clip(high, 0.0, 1.0))
    low = np.where(empty, np.nan, low)
    high = np.where(empty, np.nan, high)
    if scalar:
        return float(low), float(high)
    return low, high


@dataclasses.dataclass(frozen=True)
class ProportionComparison(Result):
    """Comparison of two independent proportions (group 1 vs group 2).

    Attributes
    ----------
    x1, n1, x2, n2 : int
        Events and patients in group 1 (KP) and group 2 (VP, reference).
    p1, p2 : float
        Observed proportions.
    risk_difference, rd_low, rd_high : float
        ``p1 - p2`` with the Newcombe (1998b) hybrid score interval (method 10).
    risk_ratio, rr_low, rr_high : float
        ``p1 / p2`` with the Katz (1978) log interval.
    odds_ratio, or_low, or_high : float
        Sample odds ratio with the Woolf (1955) logit interval.
    zero_cell_correction : bool
        True when a cell of the 2x2 table is 0, in which case 0.5 was added to every cell
        for the risk ratio and the odds ratio (point estimates and intervals). The risk
        difference is never corrected.
    p_chi2 : float
        Pearson chi-square p-value without continuity correction (NaN when a margin is 0).
    p_fisher : float
        Two-sided Fisher exact p-value (sum of table probabilities <= the observed, as R).
    p_value : float
        p-value of the primary test, named in `test`.
    test : str
        ``"pearson_chi2"`` when all expected counts are >= 5, otherwise ``"fisher_exact"``.
    level : float
        Confidence level of the intervals.
    chi2 : float
        Pearson chi-square statistic (1 df), NaN when a margin is 0.
    """

    x1: int
    n1: int
    x2: int
    n2: int
    p1: float
    p2: float
    risk_difference: float
    rd_low: float
    rd_high: float
    risk_ratio: float
    rr_low: float
    rr_high: float
    odds_ratio: float
    or_low: float
    or_high: float
    zero_cell_correction: bool
    p_chi2: float
    p_fisher: float
    p_value: float
    test: str
    level: float
    chi2: float


def _check_counts(x: int, n: int, label: str, method: str) -> tuple[int, int]:
    if x != int(x) or n != int(n):
        raise ValueError(f"{label}: counts must be whole numbers, got x={x}, n={n}")
    x, n = int(x), int(n)
    if n <= 0:
        raise InsufficientDataError(method, f"{label} has no patients (n = {n})")
    if not 0 <= x <= n:
        raise ValueError(f"{label}: events must satisfy 0 <= x <= n, got x={x}, n={n}")
    return x, n


def compare_proportions(
    x1: int, n1: int, x2: int, n2: int, level: float = 0.95
) -> ProportionComparison:
    """Compare two independent proportions: risk difference, risk ratio, odds ratio, tests.

    Pass kyphoplasty as group 1 and vertebroplasty (the reference) as group 2 to get KP
    compared with VP: ``RD = p1 - p2``, ``RR = p1 / p2``, ``OR = odds1 / odds2``.

    Parameters
    ----------
    x1, n1 : int
        Events and patients in group 1.
    x2, n2 : int
        Events and patients in group 2 (reference).
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    ProportionComparison

    Raises
    ------
    InsufficientDataError
        If a group has no patients.

    Notes
    -----
    * Risk difference: Newcombe's hybrid score interval (method 10 of Newcombe 1998b), the
      Wilson limits of each arm combined by square-and-add,
      ``confint_proportions_2indep(..., method="newcomb", compare="diff")``. It behaves well
      with zero cells. statsmodels' ``method="score"`` is not used for the difference
      because of a known error in its Miettinen–Nurminen coefficient (statsmodels #10269).
    * Risk ratio: log interval, SE(log RR) = sqrt(1/a - 1/n1 + 1/c - 1/n2) (Katz 1978).
    * Odds ratio: logit interval, SE(log OR) = sqrt(1/a + 1/b + 1/c + 1/d) (Woolf 1955).
    * With any zero cell, 0.5 is added to all four cells for RR and OR (Haldane–Anscombe,
      as metafor's ``add=1/2, to="only0"``) and `zero_cell_correction` is set; show this in
      the UI. (statsmodels' ``Table2x2(shift_zeros=True)`` adds 0.5 to the zero cells only,
      statsmodels #7011, so it is not used.)
    * Primary test: Pearson chi-square without continuity correction when every expected
      count is at least 5 (Cochran's rule), otherwise Fisher's exact test.

    Examples
    --------
    >>> r = compare_proportions(56, 70, 48, 80)
    >>> round(r.risk_difference, 4), round(r.rd_low, 4), round(r.rd_high, 4)
    (0.2, 0.0524, 0.3339)
    >>> r.test
    'pearson_chi2'
    >>> compare_proportions(0, 10, 0, 20).zero_cell_correction
    True
    """
    level = check_level(level)
    method = "Comparison of two proportions"
    x1, n1 = _check_counts(x1, n1, "group 1", method)
    x2, n2 = _check_counts(x2, n2, "group 2", method)
    a, b, c, d = x1, n1 - x1, x2, n2 - x2
    p1, p2 = x1 / n1, x2 / n2
    z = st.norm.isf((1.0 - level) / 2.0)

    rd_low, rd_high = confint_proportions_2indep(
        x1, n1, x2, n2, method="newcomb", compare="diff", alpha=1.0 - level
    )

    zero = min(a, b, c, d) == 0
    ca, cb, cc, cd = (v + 0.5 for v in (a, b, c, d)) if zero else (a, b, c, d)
    rr = (ca / (ca + cb)) / (cc / (cc + cd))
    se_log_rr = np.sqrt(1 / ca - 1 / (ca + cb) + 1 / cc - 1 / (cc + cd))
    odds_ratio = (ca * cd) / (cb * cc)
    se_log_or = np.sqrt(1 / ca + 1 / cb + 1 / cc + 1 / cd)

    table = np.array([[a, b], [c, d]])
    # Expected counts under independence; a zero margin makes chi-square undefined.
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    if np.all(expected > 0):
        chi2, p_chi2, _, _ = st.chi2_contingency(table, correction=False)
    else:
        chi2, p_chi2 = np.nan, np.nan
    p_fisher = st.fisher_exact(table, alternative="two-sided").pvalue
    use_chi2 = bool(np.all(expected >= 5))

    return ProportionComparison(
        x1=x1,
        n1=n1,
        x2=x2,
        n2=n2,
        p1=p1,
        p2=p2,
        risk_difference=p1 - p2,
        # Truncate rounding overshoot (statsmodels returns -1.0000000000000002 for 0/1 vs n/n).
        rd_low=float(max(rd_low, -1.0)),
        rd_high=float(min(rd_high, 1.0)),
        risk_ratio=float(rr),
        rr_low=float(np.exp(np.log(rr) - z * se_log_rr)),
        rr_high=float(np.exp(np.log(rr) + z * se_log_rr)),
        odds_ratio=float(odds_ratio),
        or_low=float(np.exp(np.log(odds_ratio) - z * se_log_or)),
        or_high=float(np.exp(np.log(odds_ratio) + z * se_log_or)),
        zero_cell_correction=zero,
        p_chi2=float(p_chi2),
        p_fisher=float(p_fisher),
        p_value=float(p_chi2 if use_chi2 else p_fisher),
        test="pearson_chi2" if use_chi2 else "fisher_exact",
        level=level,
        chi2=float(chi2),
    )


@dataclasses.dataclass(frozen=True)
class KProportionsTest(Result):
    """Pearson chi-square test that k proportions are equal.

    Attributes
    ----------
    chi2 : float
        Pearson statistic (no continuity correction).
    df : int
        Degrees of freedom, ``k - 1``.
    p_value : float
        Upper-tail chi-square p-value.
    k : int
        Number of groups.
    min_expected : float
        Smallest expected count; below 5 the chi-square approximation is doubtful.
    """

    chi2: float
    df: int
    p_value: float
    k: int
    min_expected: float


def compare_k_proportions(counts: ArrayLike, nobs: ArrayLike) -> KProportionsTest:
    """Pearson chi-square test of equal proportions across k groups (e.g. regions).

    Parameters
    ----------
    counts : array_like of int
        Events in each group.
    nobs : array_like of int
        Patients in each group.

    Returns
    -------
    KProportionsTest

    Raises
    ------
    InsufficientDataError
        If fewer than two groups have patients, or there are no events or no non-events at
        all (the test is then undefined).

    Notes
    -----
    The k x 2 table is tested with ``scipy.stats.chi2_contingency(correction=False)``,
    which equals R ``prop.test`` for k > 2 (and ``prop.test(correct=FALSE)`` for k = 2).
    Groups with no patients are dropped.

    Examples
    --------
    >>> r = compare_k_proportions([83, 90, 129, 70], [86, 93, 136, 82])
    >>> round(r.chi2, 2), r.df, round(r.p_value, 4)
    (12.6, 3, 0.0056)
    """
    method = "Chi-square test of k proportions"
    counts = np.asarray(counts, dtype=float)
    nobs = np.asarray(nobs, dtype=float)
    if counts.shape != nobs.shape or counts.ndim != 1:
        raise ValueError("counts and nobs must be 1-d arrays of the same length")
    if np.any(counts < 0) or np.any(counts > nobs):
        raise ValueError("each count must satisfy 0 <= count <= nobs")
    keep = nobs > 0
    counts, nobs = counts[keep], nobs[keep]
    if counts.size < 2:
        raise InsufficientDataError(method, f"{counts.size} group(s) with patients; 2 are needed")
    table = np.column_stack([counts, nobs - counts])
    if np.any(table.sum(axis=0) == 0):
        raise InsufficientDataError(method, "all patients have the same outcome")
    chi2, p, df, expected = st.chi2_contingency(table, correction=False)
    return KProportionsTest(
        chi2=float(chi2),
        df=int(df),
        p_value=float(p),
        k=int(counts.size),
        min_expected=float(expected.min()),
    )
