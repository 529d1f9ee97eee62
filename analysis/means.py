"""Two-group comparisons of continuous outcomes (pain scores, duration, cost).

Conventions
-----------
Pass kyphoplasty (KP) as group 1 and vertebroplasty (VP, the reference) as group 2:
differences are ``group1 - group2``, i.e. KP minus VP.

References
----------
.. [1] Welch BL. The generalization of "Student's" problem when several different population
   variances are involved. Biometrika 1947;34:28-35.
.. [2] Mann HB, Whitney DR. On a test of whether one of two random variables is
   stochastically larger than the other. Ann Math Stat 1947;18:50-60.
.. [3] Hodges JL, Lehmann EL. Estimates of location based on rank tests. Ann Math Stat
   1963;34:598-611.
.. [4] Bauer DF. Constructing confidence sets using rank statistics. J Am Stat Assoc
   1972;67:687-690.
.. [5] Hollander M, Wolfe DA. Nonparametric Statistical Methods, 2nd ed. Wiley 1999, §4.3.
.. [6] Monahan JF. Fast computation of the Hodges-Lehmann location estimator. ACM Trans
   Math Softw 1984;10:265-270 (randomised selection on an implicitly sorted matrix).
.. [7] Schuirmann DJ. A comparison of the two one-sided tests procedure and the power
   approach for assessing the equivalence of average bioavailability. J Pharmacokinet
   Biopharm 1987;15:657-680.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import scipy.stats as st
from numpy.typing import ArrayLike, NDArray
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttost_ind

from analysis._checks import check_level
from analysis._results import Result
from analysis.errors import InsufficientDataError

__all__ = [
    "EquivalenceTest",
    "MeanComparison",
    "compare_means",
    "equivalence_means",
]

# R's wilcox.test rule: exact distribution when both groups have fewer than 50 values and
# there are no ties; otherwise the normal approximation.
_EXACT_MAX_N = 50
# Largest number of pairwise differences materialised at once (8 MB of float64). Above it
# the order statistics are found by randomised selection without the m x n matrix.
_MAX_BLOCK = 1_000_000


def _clean(values: ArrayLike, label: str, method: str, minimum: int = 2) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=float).ravel()
    arr = arr[~np.isnan(arr)]
    if np.any(np.isinf(arr)):
        raise ValueError(f"{label} contains infinite values")
    if arr.size < minimum:
        raise InsufficientDataError(
            method,
            f"{label} has {arr.size} non-missing value(s); at least {minimum} are needed",
        )
    return arr


# --------------------------------------------------------------------------------------------
# Order statistics of the pairwise differences x_i - y_j without the m x n matrix
# --------------------------------------------------------------------------------------------


def _count_le(x: NDArray, y_desc: NDArray, pivot: float, strict: bool) -> NDArray[np.intp]:
    """Per row i, the number of j with ``x[i] - y_desc[j] <= pivot`` (``<`` if strict).

    Row i of the implicit matrix, ``x[i] - y_desc[j]``, is non-decreasing in j because
    floating-point subtraction is monotone, so a vectorised bisection over the columns
    counts exactly the entries that the materialised matrix would compare as ``<=``.
    """
    lo = np.zeros(x.size, dtype=np.intp)
    hi = np.full(x.size, y_desc.size, dtype=np.intp)
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        vals = x - y_desc[np.minimum(mid, y_desc.size - 1)]
        ok = (vals < pivot) if strict else (vals <= pivot)
        lo = np.where(active & ok, mid + 1, lo)
        hi = np.where(active & ~ok, mid, hi)


def _kth_difference(
    x: NDArray, y: NDArray, k: int, rng: np.random.Generator, max_block: int = _MAX_BLOCK
) -> float:
    """k-th smallest (1-based) of the m*n differences ``x_i - y_j``.

    Randomised selection over the implicitly row-sorted matrix (Monahan 1984): keep, per
    row, the window of columns that can still hold the answer, split on a random candidate
    and recount. Expected O(log(mn)) rounds of O(m log n) work and O(m + n) memory; once at
    most `max_block` candidates remain they are materialised and `np.partition` finishes.
    """
    x = np.sort(x)
    y_desc = np.sort(y)[::-1]
    m, n = x.size, y_desc.size
    left = np.zeros(m, dtype=np.intp)  # columns < left[i] are known to rank below k
    right = np.full(m, n, dtype=np.intp)  # columns >= right[i] are known to rank above k
    while True:
        widths = right - left
        n_cand = int(widths.sum())
        below = int(left.sum())
        if n_cand <= max_block:
            rows = np.repeat(np.arange(m), widths)
            starts = np.repeat(np.cumsum(widths) - widths, widths)
            cols = left[rows] + (np.arange(n_cand) - starts)
            cand = x[rows] - y_desc[cols]
            return float(np.partition(cand, k - below - 1)[k - below - 1])
        # Pivot drawn uniformly among the candidates: expected geometric shrinkage.
        cum = np.cumsum(widths)
        pick = int(rng.integers(n_cand))
        row = int(np.searchsorted(cum, pick, side="right"))
        col = int(left[row] + pick - (cum[row] - widths[row]))
        pivot = x[row] - y_desc[col]
        n_lt = _count_le(x, y_desc, pivot, strict=True)
        n_le = _count_le(x, y_desc, pivot, strict=False)
        if k <= n_lt.sum():
            right = np.minimum(right, n_lt)
        elif k > n_le.sum():
            left = np.maximum(left, n_le)
        else:
            return float(pivot)


def _difference_selector(
    x: NDArray, y: NDArray, rng: np.random.Generator, max_block: int = _MAX_BLOCK
) -> Callable[[int], float]:
    """A function k -> k-th smallest (1-based) of the m*n differences ``x_i - y_j``.

    Tied data (durations in whole minutes) has few distinct values: the differences then
    take at most (distinct x) * (distinct y) values, which are computed and sorted once with
    their multiplicities, and every order statistic is read from the running count. The
    numbers are the same floats the full matrix would hold. Otherwise
    :func:`_kth_difference` selects each order statistic.
    """
    if x.size * y.size > max_block:
        values_x, counts_x = np.unique(x, return_counts=True)
        values_y, counts_y = np.unique(y, return_counts=True)
        if values_x.size * values_y.size <= max_block:
            differences = np.subtract.outer(values_x, values_y).ravel()
            order = np.argsort(differences, kind="stable")
            differences = differences[order]
            running = np.cumsum(np.multiply.outer(counts_x, counts_y).ravel()[order])
            return lambda k: float(differences[np.searchsorted(running, k, side="left")])
    return lambda k: _kth_difference(x, y, k, rng)


@lru_cache(maxsize=64)
def _mann_whitney_counts(m: int, n: int) -> tuple[int, ...]:
    """Exact null frequencies of U = #{x_i > y_j}, u = 0..mn, for untied samples.

    They are the coefficients of the Gaussian binomial [m+n choose m]_q, built as
    prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i) in exact integer arithmetic.
    """
    size = m * n + 1
    poly = [0] * size
    poly[0] = 1
    for i in range(1, m + 1):
        shift = n + i
        for j in range(size - 1, shift - 1, -1):  # multiply by (1 - q^shift)
            poly[j] -= poly[j - shift]
        for j in range(i, size):  # divide by (1 - q^i)
            poly[j] += poly[j - i]
    return tuple(poly)


def _exact_k(m: int, n: int, level: float) -> tuple[int, float]:
    """Rank k of the exact lower limit and the coverage it achieves.

    k - 1 is the largest c with P(U <= c) <= alpha/2 (Bauer 1972). When even c = 0 fails
    (very small groups) k = 1 is returned: [min, max] of the differences, whose smaller
    coverage is reported.
    """
    counts = _mann_whitney_counts(m, n)
    total = sum(counts)
    limit = (1.0 - level) / 2.0 * total
    c, cdf_c = 0, counts[0]  # cdf_c = P(U <= c) * total
    if cdf_c <= limit:
        while cdf_c + counts[c + 1] <= limit:
            c += 1
            cdf_c += counts[c]
    # Coverage of [d_(k), d_(mn+1-k)] is 1 - 2 P(U <= k - 1), here with k - 1 = c.
    return c + 1, float(1 - 2 * cdf_c / total)


def _hodges_lehmann(
    a: ArrayLike, b: ArrayLike, level: float = 0.95, method: str = "auto"
) -> tuple[float, float, float, str, float]:
    """Hodges–Lehmann shift estimate of ``a - b`` with its distribution-free interval.

    Parameters
    ----------
    a, b : array_like
        The two samples (NaN dropped).
    level : float, default 0.95
        Confidence level.
    method : {"auto", "exact", "normal approximation"}
        ``"auto"`` follows R ``wilcox.test``: exact when both groups have fewer than 50
        values and there are no ties in the pooled sample, otherwise the normal
        approximation. ``"exact"`` with ties is refused.

    Returns
    -------
    estimate, low, high : float
        Median of the m*n differences ``a_i - b_j`` and the interval limits.
    method : str
        ``"exact"`` or ``"normal approximation"``.
    achieved_level : float
        Coverage of the exact interval (>= `level` unless the groups are too small to
        reach it); equal to `level` for the normal approximation.

    Notes
    -----
    The interval is ``[d_(k), d_(mn+1-k)]`` from the ordered differences (Hodges & Lehmann
    1963; Bauer 1972). Exact: k - 1 is the largest c with P(U <= c) <= alpha/2 under the
    null Mann–Whitney distribution, computed exactly. Normal approximation (Hollander &
    Wolfe 1999, §4.3) with continuity and tie correction:
    ``k = floor(mn/2 - 0.5 - z * sigma) + 1``,
    ``sigma^2 = mn/12 * (N + 1 - sum(t^3 - t) / (N(N - 1)))``. R inverts the asymptotic
    test by root finding instead, so its normal-approximation limits can differ slightly.
    Order statistics are found without building the m x n matrix when it would exceed
    one million entries: from the distinct differences with their multiplicities when the
    data have many ties, else by randomised selection (Monahan 1984), so memory stays
    O(m + n).

    Examples
    --------
    >>> est, low, high, how, cover = _hodges_lehmann([1.1, 2.3, 3.2, 4.8], [0.5, 1.9, 2.2])
    >>> round(est, 2), round(low, 2), round(high, 2), how, round(cover, 3)
    (1.15, -1.1, 4.3, 'exact', 0.943)
    """
    method_name = "Hodges-Lehmann estimate"
    level = check_level(level)
    x = _clean(a, "group 1", method_name, minimum=1)
    y = _clean(b, "group 2", method_name, minimum=1)
    m, n = x.size, y.size
    mn = m * n
    pooled = np.concatenate([x, y])
    _, tie_sizes = np.unique(pooled, return_counts=True)
    has_ties = bool(np.any(tie_sizes > 1))
    if method == "auto":
        exact = m < _EXACT_MAX_N and n < _EXACT_MAX_N and not has_ties
    elif method == "exact":
        if has_ties:
            raise ValueError("the exact Hodges-Lehmann interval needs data without ties")
        exact = True
    elif method == "normal approximation":
        exact = False
    else:
        raise ValueError(f"unknown method {method!r}")

    rng = np.random.default_rng(20240601)  # the result does not depend on the seed
    kth = _difference_selector(x, y, rng)

    estimate = kth((mn + 1) // 2) if mn % 2 else 0.5 * (kth(mn // 2) + kth(mn // 2 + 1))
    if exact:
        k, achieved = _exact_k(m, n, level)
    else:
        big_n = m + n
        sigma = np.sqrt(
            mn / 12.0 * (big_n + 1 - np.sum(tie_sizes**3 - tie_sizes) / (big_n * (big_n - 1)))
        )
        z = st.norm.isf((1.0 - level) / 2.0)
        k = max(int(np.floor(mn / 2.0 - 0.5 - z * sigma)) + 1, 1)
        achieved = level
    low, high = kth(k), kth(mn + 1 - k)
    return estimate, low, high, "exact" if exact else "normal approximation", achieved


@dataclasses.dataclass(frozen=True)
class MeanComparison(Result):
    """Comparison of a continuous outcome between group 1 (KP) and group 2 (VP).

    Attributes
    ----------
    n1, n2 : int
        Non-missing values per group.
    mean1, mean2 : float
        Arithmetic means.
    mean_difference, md_low, md_high : float
        ``mean1 - mean2`` with the Welch (unequal variances) t interval.
    p_welch : float
        Two-sided Welch t-test p-value.
    hodges_lehmann, hl_low, hl_high : float
        Hodges–Lehmann shift (median of all pairwise differences group1 - group2) and its
        distribution-free interval.
    hl_method : str
        ``"exact"`` or ``"normal approximation"``; the Mann–Whitney p-value uses the same.
    p_mannwhitney : float
        Two-sided Mann–Whitney (Wilcoxon rank-sum) p-value.
    level : float
        Confidence level.
    hl_achieved_level : float
        Actual coverage of the exact HL interval (it can exceed `level`, or fall short of it
        when the groups are too small); `level` under the normal approximation.
    """

    n1: int
    n2: int
    mean1: float
    mean2: float
    mean_difference: float
    md_low: float
    md_high: float
    p_welch: float
    hodges_lehmann: float
    hl_low: float
    hl_high: float
    hl_method: str
    p_mannwhitney: float
    level: float
    hl_achieved_level: float


def compare_means(a: ArrayLike, b: ArrayLike, level: float = 0.95) -> MeanComparison:
    """Welch t and Mann–Whitney/Hodges–Lehmann comparison of two groups.

    Pass kyphoplasty as `a` and vertebroplasty (the reference) as `b`: differences are
    KP minus VP.

    Parameters
    ----------
    a, b : array_like
        Values of group 1 and group 2. NaNs are dropped.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    MeanComparison

    Raises
    ------
    InsufficientDataError
        If a group has fewer than 2 non-missing values.

    Notes
    -----
    * Welch t (``scipy.stats.ttest_ind(equal_var=False)``) is used because it does not assume
      equal variances (Ruxton 2006). If both groups are constant the t statistic is
      undefined and the Welch fields are NaN.
    * Mann–Whitney: exact p-value when both groups have fewer than 50 values and there are
      no ties, otherwise the normal approximation with continuity and tie correction; this
      is R ``wilcox.test``'s default rule (scipy's ``method="auto"`` uses a different one).
    * Hodges–Lehmann: see :func:`_hodges_lehmann` (exact or normal approximation, chosen
      by the same rule; no m x n matrix for large groups).

    Examples
    --------
    >>> kp = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    >>> vp = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    >>> r = compare_means(kp, vp)
    >>> round(r.mean_difference, 2), round(r.md_low, 4), round(r.md_high, 4)
    (-1.58, -3.3655, 0.2055)
    >>> r.hl_method
    'normal approximation'
    """
    method = "Comparison of means"
    level = check_level(level)
    x = _clean(a, "group 1", method)
    y = _clean(b, "group 2", method)

    if x.var() == 0 and y.var() == 0:
        # Two constant groups: the t statistic is undefined (scipy would report p = 0).
        p_welch, md_low, md_high = np.nan, np.nan, np.nan
    else:
        with warnings.catch_warnings():
            # scipy warns of "catastrophic cancellation" when one group is constant; its
            # variance is then exactly 0 and the Welch result is still well defined.
            warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
            welch = st.ttest_ind(x, y, equal_var=False)
        p_welch = welch.pvalue
        md_low, md_high = welch.confidence_interval(confidence_level=level)

    hl, hl_low, hl_high, hl_method, achieved = _hodges_lehmann(x, y, level=level)
    mw_method = "exact" if hl_method == "exact" else "asymptotic"
    p_mw = st.mannwhitneyu(
        x, y, alternative="two-sided", method=mw_method, use_continuity=True
    ).pvalue

    return MeanComparison(
        n1=int(x.size),
        n2=int(y.size),
        mean1=float(x.mean()),
        mean2=float(y.mean()),
        mean_difference=float(x.mean() - y.mean()),
        md_low=float(md_low),
        md_high=float(md_high),
        p_welch=float(p_welch),
        hodges_lehmann=float(hl),
        hl_low=float(hl_low),
        hl_high=float(hl_high),
        hl_method=hl_method,
        p_mannwhitney=float(p_mw),
        level=level,
        hl_achieved_level=float(achieved),
    )


@dataclasses.dataclass(frozen=True)
class EquivalenceTest(Result):
    """Two one-sided tests (TOST) for equivalence of two means.

    Attributes
    ----------
    n1, n2 : int
        Non-missing values per group.
    mean_difference : float
        ``mean1 - mean2``.
    margin_low, margin_high : float
        Equivalence margins for the difference.
    t_low, p_low : float
        Test of H0: difference <= margin_low.
    t_upp, p_upp : float
        Test of H0: difference >= margin_high.
    df : float
        Degrees of freedom (Welch–Satterthwaite when ``usevar="unequal"``).
    p_value : float
        TOST p-value, ``max(p_low, p_upp)``.
    ci_low, ci_high : float
        The ``1 - 2*alpha`` interval for the difference; equivalence at level alpha holds
        exactly when it lies inside the margins.
    alpha : float
        Significance level of each one-sided test.
    equivalent : bool
        ``p_value < alpha``.
    usevar : str
        ``"unequal"`` (Welch) or ``"pooled"``.
    """

    n1: int
    n2: int
    mean_difference: float
    margin_low: float
    margin_high: float
    t_low: float
    p_low: float
    t_upp: float
    p_upp: float
    df: float
    p_value: float
    ci_low: float
    ci_high: float
    alpha: float
    equivalent: bool
    usevar: str


def equivalence_means(
    a: ArrayLike,
    b: ArrayLike,
    low: float,
    upp: float,
    alpha: float = 0.05,
    usevar: str = "unequal",
) -> EquivalenceTest:
    """Equivalence of two means by two one-sided t-tests (Schuirmann 1987).

    Parameters
    ----------
    a, b : array_like
        Group 1 (KP) and group 2 (VP) values; NaNs dropped.
    low, upp : float
        Equivalence margins for ``mean(a) - mean(b)``, ``low < upp``.
    alpha : float, default 0.05
        Level of each one-sided test.
    usevar : {"unequal", "pooled"}, default "unequal"
        Welch or pooled-variance t statistics.

    Returns
    -------
    EquivalenceTest

    Notes
    -----
    Computed with :func:`statsmodels.stats.weightstats.ttost_ind`; the interval comes from
    ``CompareMeans.tconfint_diff(alpha=2*alpha)``.

    Examples
    --------
    >>> r = equivalence_means([3.1, 2.8, 3.5, 3.0, 2.9], [3.0, 3.2, 2.9, 3.1, 3.3], -0.5, 0.5)
    >>> r.equivalent
    True
    """
    method = "Equivalence test of means"
    if not low < upp:
        raise ValueError(f"need low < upp, got low={low}, upp={upp}")
    if usevar not in ("unequal", "pooled"):
        raise ValueError(f"usevar must be 'unequal' or 'pooled', got {usevar!r}")
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    x = _clean(a, "group 1", method)
    y = _clean(b, "group 2", method)
    if x.var() == 0 and y.var() == 0:
        raise InsufficientDataError(method, "both groups are constant; t statistics are undefined")
    p, (t_low, p_low, df), (t_upp, p_upp, _) = ttost_ind(x, y, low, upp, usevar=usevar)
    ci_low, ci_high = CompareMeans(DescrStatsW(x), DescrStatsW(y)).tconfint_diff(
        alpha=2 * alpha, usevar=usevar
    )
    return EquivalenceTest(
        n1=int(x.size),
        n2=int(y.size),
        mean_difference=float(x.mean() - y.mean()),
        margin_low=float(low),
        margin_high=float(upp),
        t_low=float(t_low),
        p_low=float(p_low),
        t_upp=float(t_upp),
        p_upp=float(p_upp),
        df=float(df),
        p_value=float(p),
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        alpha=float(alpha),
        equivalent=bool(p < alpha),
        usevar=usevar,
    )
