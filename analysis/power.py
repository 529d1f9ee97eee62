"""Power, sample size and minimum detectable differences for two-group comparisons.

All tests are two-sided. Group 1 is kyphoplasty (KP) and group 2 vertebroplasty (VP, the
reference); ``ratio = n2 / n1``.

References
----------
.. [1] Fleiss JL, Levin B, Paik MC. Statistical Methods for Rates and Proportions, 3rd ed.
   Wiley 2003, §4.2 (normal approximation with pooled variance under H0).
.. [2] Cohen J. Statistical Power Analysis for the Behavioral Sciences, 2nd ed. Erlbaum 1988.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq
from statsmodels.stats.power import TTestIndPower
from statsmodels.stats.proportion import (
    power_proportions_2indep,
    samplesize_proportions_2indep_onetail,
)

from analysis._results import CountedText
from analysis.errors import InsufficientDataError

__all__ = [
    "minimum_detectable_difference",
    "minimum_detectable_mean_difference",
    "sample_size_means",
    "sample_size_proportions",
]


def _check_power_alpha(power: float, alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not alpha < power < 1.0:
        raise ValueError(f"power must be in (alpha, 1), got {power}")


def _check_groups(n1: float, n2: float, method: str) -> None:
    for label, n in (("group 1", n1), ("group 2", n2)):
        if n < 2:
            raise InsufficientDataError(method, CountedText.of(
                "{label} has {n} patient(s); 2 are needed", label=label, n=n))


def minimum_detectable_difference(
    n1: float, n2: float, p_reference: float, power: float = 0.8, alpha: float = 0.05
) -> float:
    """Smallest increase ``p1 - p2 > 0`` over a reference proportion detectable with power.

    Parameters
    ----------
    n1, n2 : float
        Patients in group 1 (KP) and group 2 (VP, reference).
    p_reference : float
        Event proportion in the reference group, ``p2``.
    power : float, default 0.8
        Target power.
    alpha : float, default 0.05
        Two-sided significance level.

    Returns
    -------
    float
        The difference ``d`` such that the z-test has the target power at
        ``p1 = p_reference + d``; NaN if even ``p1 = 1`` is not detectable with these sizes.

    Notes
    -----
    Power from :func:`statsmodels.stats.proportion.power_proportions_2indep`: pooled
    variance under H0, unpooled under H1, the approach of R ``power.prop.test`` (which it
    equals for ``n1 == n2``, apart from the negligible opposite tail that statsmodels
    includes). Solved for ``d`` with Brent's method. A decrease of the same size is slightly
    easier or harder to detect because the binomial variance is not symmetric.

    Examples
    --------
    >>> round(minimum_detectable_difference(50, 50, 0.5, power=0.7402), 3)
    0.25
    """
    _check_power_alpha(power, alpha)
    _check_groups(n1, n2, "Minimum detectable difference")
    if not 0.0 < p_reference < 1.0:
        raise ValueError(f"p_reference must be in (0, 1), got {p_reference}")

    def gap(d: float) -> float:
        res = power_proportions_2indep(d, p_reference, n1, ratio=n2 / n1, alpha=alpha)
        return float(res.power) - power

    upper = 1.0 - p_reference - 1e-12
    if gap(upper) < 0:
        return float("nan")
    return float(brentq(gap, 1e-12, upper, xtol=1e-12))


def minimum_detectable_mean_difference(
    n1: float, n2: float, sd: float, power: float = 0.8, alpha: float = 0.05
) -> float:
    """Smallest difference in means detectable by a two-sample t-test with given power.

    Parameters
    ----------
    n1, n2 : float
        Group sizes.
    sd : float
        Common standard deviation of the outcome.
    power : float, default 0.8
        Target power.
    alpha : float, default 0.05
        Two-sided significance level.

    Returns
    -------
    float
        Difference in outcome units (Cohen's d times `sd`).

    Notes
    -----
    ``TTestIndPower().solve_power(nobs1=n1, ratio=n2/n1, ...)`` (noncentral t, pooled
    variance), which reproduces R ``power.t.test`` for equal groups.

    Examples
    --------
    >>> round(minimum_detectable_mean_difference(20, 20, sd=1.0, power=0.8689528), 4)
    1.0
    """
    _check_power_alpha(power, alpha)
    _check_groups(n1, n2, "Minimum detectable difference in means")
    if not sd > 0:
        raise ValueError(f"sd must be positive, got {sd}")
    d = TTestIndPower().solve_power(
        effect_size=None,
        nobs1=n1,
        alpha=alpha,
        power=power,
        ratio=n2 / n1,
        alternative="two-sided",
    )
    return float(np.squeeze(d)) * sd


def sample_size_proportions(
    p1: float, p2: float, power: float = 0.8, alpha: float = 0.05, ratio: float = 1.0
) -> int:
    """Patients needed in group 1 to detect ``p1`` vs ``p2`` with a two-sided z-test.

    Parameters
    ----------
    p1, p2 : float
        Expected proportions in group 1 (KP) and group 2 (VP).
    power : float, default 0.8
        Target power.
    alpha : float, default 0.05
        Two-sided significance level.
    ratio : float, default 1
        ``n2 / n1``; group 2 then needs ``ceil(ratio * n1)`` patients.

    Returns
    -------
    int
        Group 1 size, rounded up (per group when ``ratio == 1``).

    Notes
    -----
    :func:`statsmodels.stats.proportion.samplesize_proportions_2indep_onetail` with
    ``alternative="two-sided"`` (pooled variance under H0), which reproduces R
    ``power.prop.test``; the Cohen's h (arcsine) version gives slightly different sizes.
    Example: leakage 30% vs 20%, 80% power: R gives n = 293.15, so 294 per group.

    Examples
    --------
    >>> sample_size_proportions(0.30, 0.20)
    294
    """
    _check_power_alpha(power, alpha)
    for label, p in (("p1", p1), ("p2", p2)):
        if not 0.0 < p < 1.0:
            raise ValueError(f"{label} must be in (0, 1), got {p}")
    if p1 == p2:
        raise ValueError("p1 and p2 must differ")
    if not ratio > 0:
        raise ValueError(f"ratio must be positive, got {ratio}")
    n = samplesize_proportions_2indep_onetail(
        diff=p1 - p2,
        prop2=p2,
        power=power,
        ratio=ratio,
        alpha=alpha,
        alternative="two-sided",
    )
    return math.ceil(float(n) - 1e-9)  # guard against 293.0000000001-type rounding


def sample_size_means(
    difference: float, sd: float, power: float = 0.8, alpha: float = 0.05, ratio: float = 1.0
) -> int:
    """Patients needed in group 1 to detect a difference in means with a two-sample t-test.

    Parameters
    ----------
    difference : float
        Difference in means to detect (its sign does not matter).
    sd : float
        Common standard deviation.
    power : float, default 0.8
        Target power.
    alpha : float, default 0.05
        Two-sided significance level.
    ratio : float, default 1
        ``n2 / n1``.

    Returns
    -------
    int
        Group 1 size, rounded up (per group when ``ratio == 1``).

    Notes
    -----
    ``TTestIndPower().solve_power(effect_size=|difference|/sd, ...)`` (noncentral t), which
    reproduces R ``power.t.test`` (d = 1, power 0.9: n = 22.02, so 23 per group).

    Examples
    --------
    >>> sample_size_means(1.0, 1.0, power=0.9)
    23
    """
    _check_power_alpha(power, alpha)
    if not sd > 0:
        raise ValueError(f"sd must be positive, got {sd}")
    if difference == 0:
        raise ValueError("difference must be non-zero")
    if not ratio > 0:
        raise ValueError(f"ratio must be positive, got {ratio}")
    n = TTestIndPower().solve_power(
        effect_size=abs(difference) / sd,
        nobs1=None,
        alpha=alpha,
        power=power,
        ratio=ratio,
        alternative="two-sided",
    )
    return math.ceil(float(np.squeeze(n)) - 1e-9)
