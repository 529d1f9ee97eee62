"""Meta-analysis of two-arm trials with a binary outcome (published VP/KP trial tables).

Conventions
-----------
Arm 1 is the experimental arm (KP) and arm 2 the reference (VP): RR = risk1 / risk2,
OR = odds1 / odds2 and RD = risk1 - risk2. Ratio measures are pooled on the log scale and
reported exponentiated.

References
----------
.. [1] DerSimonian R, Laird N. Meta-analysis in clinical trials. Control Clin Trials
   1986;7:177-188.
.. [2] Mantel N, Haenszel W. Statistical aspects of the analysis of data from retrospective
   studies of disease. J Natl Cancer Inst 1959;22:719-748.
.. [3] Greenland S, Robins JM. Estimation of a common effect parameter from sparse follow-up
   data. Biometrics 1985;41:55-68.
.. [4] Robins J, Breslow N, Greenland S. Estimators of the Mantel-Haenszel variance
   consistent in both sparse data and large-strata limiting models. Biometrics
   1986;42:311-323.
.. [5] Sato T, Greenland S, Robins JM. On the variance estimator for the Mantel-Haenszel
   risk difference. Biometrics 1989;45:1323-1324.
.. [6] Higgins JPT, Thompson SG. Quantifying heterogeneity in a meta-analysis. Stat Med
   2002;21:1539-1558.
.. [7] Viechtbauer W. Bias and efficiency of meta-analytic variance estimators in the
   random-effects model. J Educ Behav Stat 2005;30:261-293.
.. [8] Hartung J, Knapp G. A refined method for the meta-analysis of controlled clinical
   trials with binary outcome. Stat Med 2001;20:3875-3889.
.. [9] Sidik K, Jonkman JN. A simple confidence interval for meta-analysis. Stat Med
   2002;21:3153-3159.
.. [10] IntHout J, Ioannidis JPA, Borm GF. The Hartung-Knapp-Sidik-Jonkman method for random
   effects meta-analysis is straightforward and considerably outperforms the standard
   DerSimonian-Laird method. BMC Med Res Methodol 2014;14:25.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.stats as st
from numpy.typing import ArrayLike
from statsmodels.stats.contingency_tables import StratifiedTable
from statsmodels.stats.meta_analysis import combine_effects, effectsize_2proportions

from analysis._results import Result
from analysis.errors import InsufficientDataError

__all__ = ["PooledEstimate", "pool_studies"]

_MEASURES = {"RR": "risk-ratio", "OR": "odds-ratio", "RD": "diff"}
_METHODS = ("DL", "REML", "FE", "MH")
_RANDOM = ("DL", "REML")


@dataclasses.dataclass(frozen=True)
class PooledEstimate(Result):
    """Pooled effect across studies.

    Attributes
    ----------
    measure : str
        ``"RR"``, ``"OR"`` or ``"RD"``.
    method : str
        ``"DL"`` (DerSimonian–Laird random effects), ``"REML"`` (random effects, restricted
        maximum likelihood tau²), ``"FE"`` (inverse-variance fixed effect) or ``"MH"``
        (Mantel–Haenszel fixed effect).
    estimate, low, high : float
        Pooled effect and confidence limits (exponentiated for RR and OR).
    z, p_value : float
        Test of no effect (log scale for ratios): the Wald z, or with ``test == "t"`` the
        Hartung–Knapp t statistic on ``df`` degrees of freedom.
    tau2 : float
        Between-study variance (log scale for ratios): the REML estimate for REML, else
        the DerSimonian–Laird estimate truncated at 0 (reported for FE and MH as a
        heterogeneity summary; they do not use it in their weights).
    i2 : float
        Higgins' I² in percent, ``max(0, (Q - df) / Q) * 100``.
    q, q_df, q_p : float, int, float
        Cochran's Q with inverse-variance weights around the pooled estimate of `method`
        (around the fixed-effect estimate for FE and DL, the MH estimate for MH, as
        RevMan and metafor), its degrees of freedom and chi-square p-value.
    k : int
        Number of studies pooled.
    studies : pandas.DataFrame
        One row per input study: ``label, events1, n1, events2, n2, estimate, low, high,
        weight`` (percent, for `method`), ``zero_cell_correction`` and ``included``.
    se : float
        Standard error of the pooled estimate on the analysis (log for ratios) scale
        (the Hartung–Knapp one with ``test == "t"``).
    level : float
        Confidence level.
    test : str
        ``"z"`` (normal) or ``"t"`` (Hartung–Knapp–Sidik–Jonkman).
    df : float
        Degrees of freedom of the t test and interval (k − 1); infinite for ``"z"``.
    """

    measure: str
    method: str
    estimate: float
    low: float
    high: float
    z: float
    p_value: float
    tau2: float
    i2: float
    q: float
    q_df: int
    q_p: float
    k: int
    studies: pd.DataFrame = dataclasses.field(compare=False, repr=False)
    se: float = np.nan
    level: float = 0.95
    test: str = "z"
    df: float = math.inf


def _reml_tau2(y: np.ndarray, v: np.ndarray, start: float, tol: float = 1e-12) -> float:
    """REML estimate of tau² by Fisher scoring (Viechtbauer 2005), truncated at 0.

    Score ½[Σw²(y − μ̂)² − tr P] and information ½ tr P², with w = 1/(v + tau²) and
    P = W − ww'/Σw; a step that would go below 0 is halved (as metafor ``rma``).
    """
    tau2 = max(float(start), 0.0)
    for _ in range(500):
        w = 1.0 / (v + tau2)
        sw = w.sum()
        mu = float(np.sum(w * y) / sw)
        trace_p = sw - np.sum(w**2) / sw
        trace_p2 = np.sum(w**2) - 2.0 * np.sum(w**3) / sw + (np.sum(w**2) / sw) ** 2
        step = float((np.sum(w**2 * (y - mu) ** 2) - trace_p) / trace_p2)
        while tau2 + step < 0.0 and abs(step) > tol:
            step /= 2.0
        new = max(tau2 + step, 0.0)
        if abs(new - tau2) <= tol * max(1.0, tau2):
            return new
        tau2 = new
    raise ArithmeticError("REML estimate of tau² did not converge in 500 Fisher scoring steps")


def _mh_pooled(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, measure: str
) -> tuple[float, float, np.ndarray]:
    """Mantel–Haenszel estimate (log scale for ratios), its SE and the MH weights."""
    n1, n2 = a + b, c + d
    n = n1 + n2
    if measure == "OR":
        # Robins–Breslow–Greenland variance via statsmodels.
        tables = np.stack(
            [np.array([[ai, bi], [ci, di]]) for ai, bi, ci, di in zip(a, b, c, d, strict=True)],
            axis=2,
        )
        strat = StratifiedTable(tables)
        est = float(np.log(strat.oddsratio_pooled))
        se = float(strat.logodds_pooled_se)
        return est, se, b * c / n
    if measure == "RR":
        # Greenland & Robins (1985): R = sum a n2/N, S = sum c n1/N,
        # P = sum (n1 n2 (a + c) - a c N) / N^2, Var(log RR_MH) = P / (R S).
        r = np.sum(a * n2 / n)
        s = np.sum(c * n1 / n)
        p = np.sum((n1 * n2 * (a + c) - a * c * n) / n**2)
        return float(np.log(r / s)), float(np.sqrt(p / (r * s))), c * n1 / n
    # RD: Sato, Greenland & Robins (1989) variance, consistent for sparse and large strata.
    w = n1 * n2 / n
    rd = float(np.sum(a * n2 / n - c * n1 / n) / np.sum(w))
    p_term = np.sum((n1**2 * c - n2**2 * a + n1 * n2 * (n2 - n1) / 2) / n**2)
    q_term = np.sum((a * (n2 - c) + c * (n1 - a)) / (2 * n))
    var = (rd * p_term + q_term) / np.sum(w) ** 2
    return rd, float(np.sqrt(var)), w


def pool_studies(
    events1: ArrayLike,
    n1: ArrayLike,
    events2: ArrayLike,
    n2: ArrayLike,
    measure: str = "RR",
    method: str = "DL",
    level: float = 0.95,
    labels: Sequence[str] | None = None,
    *,
    hartung_knapp: bool = False,
) -> PooledEstimate:
    """Pool a binary outcome over studies: random effects (DerSimonian–Laird or REML, with
    an optional Hartung–Knapp interval), inverse-variance or Mantel–Haenszel fixed effect.

    Parameters
    ----------
    events1, n1 : array_like of int
        Events and patients in arm 1 (KP) of each study.
    events2, n2 : array_like of int
        Events and patients in arm 2 (VP, reference) of each study.
    measure : {"RR", "OR", "RD"}, default "RR"
        Effect measure.
    method : {"DL", "REML", "FE", "MH"}, default "DL"
        ``"DL"``: random effects with the DerSimonian–Laird moment estimator of tau²;
        ``"REML"``: random effects with the restricted maximum likelihood tau² (metafor's
        default); ``"FE"``: inverse-variance fixed effect; ``"MH"``: Mantel–Haenszel
        fixed effect.
    level : float, default 0.95
        Confidence level.
    labels : sequence of str, optional
        Study labels for the `studies` table.
    hartung_knapp : bool, default False
        Random effects only: Hartung–Knapp–Sidik–Jonkman standard error and a t interval
        and test on k − 1 df (metafor ``test="knha"``), recommended with few studies
        (IntHout et al. 2014).

    Returns
    -------
    PooledEstimate

    Raises
    ------
    InsufficientDataError
        If fewer than two informative studies remain.

    Notes
    -----
    * Per-study effects and variances come from
      :func:`statsmodels.stats.meta_analysis.effectsize_2proportions` (log RR, log OR, RD with
      the usual large-sample variances). A study with a zero cell gets 0.5 added to each of
      its four cells (metafor's ``add=1/2, to="only0"``); the correction is applied here
      because ``zero_correction=0.5`` in statsmodels 0.15 adds 0.5 to the events of every
      study. For RR and OR, studies with no
      events in either arm (and, for OR, with events in every patient of both arms) carry no
      information and are left out (``included`` is False).
    * DL uses ``combine_effects(..., method_re="chi2")`` (the statsmodels default,
      ``"iterated"``, is Paule–Mandel). statsmodels does not truncate the moment estimate:
      with Q < df it returns a negative tau² and a random-effects interval narrower than the
      fixed-effect one. Here tau² is truncated at 0 (DerSimonian & Laird 1986), which makes
      DL equal to FE in that case.
    * MH: OR via ``StratifiedTable`` (Robins–Breslow–Greenland variance); RR with the
      Greenland–Robins (1985) variance; RD with the Sato, Greenland & Robins (1989)
      variance (as metafor ``rma.mh``; Stata ``metan`` uses the 1985 Greenland–Robins RD
      variance, so its z differs slightly). MH pools the uncorrected counts.
    * Cochran's Q uses inverse-variance weights around the method's fixed estimate and
      I² = max(0, (Q − df)/Q) in percent (Higgins & Thompson 2002), for every method
      (metafor's REML I² is based on the REML tau² instead and can differ).
    * REML: tau² maximises the restricted likelihood, by Fisher scoring from the DL
      estimate, truncated at 0 (Viechtbauer 2005); checked against metafor
      ``rma(method="REML")``.
    * Hartung–Knapp: with w = 1/(v + tau²) and μ̂ the random-effects estimate,
      SE² = Σw(y − μ̂)² / ((k − 1) Σw) and the interval μ̂ ± t(k − 1) SE (Hartung & Knapp
      2001; Sidik & Jonkman 2002), without the ad hoc truncation of the scaling factor at 1
      (as metafor ``test="knha"``).

    Examples
    --------
    >>> r = pool_studies([4, 6, 3], [123, 306, 231], [11, 29, 11], [139, 303, 220],
    ...                  measure="RR", method="MH")
    >>> round(r.estimate, 3), r.k
    (0.259, 3)
    >>> hk = pool_studies([4, 6, 3], [123, 306, 231], [11, 29, 11], [139, 303, 220],
    ...                   method="REML", hartung_knapp=True)
    >>> hk.test, hk.df
    ('t', 2.0)
    """
    measure = measure.upper()
    method = method.upper()
    if measure not in _MEASURES:
        raise ValueError(f"measure must be one of {sorted(_MEASURES)}, got {measure!r}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {list(_METHODS)}, got {method!r}")
    if hartung_knapp and method not in _RANDOM:
        raise ValueError("the Hartung–Knapp adjustment applies to the random-effects methods "
                         f"{list(_RANDOM)}, not to {method!r}")
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (exclusive), got {level}")
    arrays = [np.asarray(v, dtype=float).ravel() for v in (events1, n1, events2, n2)]
    x1, m1, x2, m2 = arrays
    if len({v.size for v in arrays}) != 1:
        raise ValueError("events1, n1, events2 and n2 must have the same length")
    if labels is None:
        labels = [f"Study {i + 1}" for i in range(x1.size)]
    labels = list(labels)
    if len(labels) != x1.size:
        raise ValueError("labels must have one entry per study")
    if np.any(m1 <= 0) or np.any(m2 <= 0):
        raise InsufficientDataError("Meta-analysis", "a study arm has no patients")
    if np.any((x1 < 0) | (x1 > m1) | (x2 < 0) | (x2 > m2)):
        raise ValueError("events must lie between 0 and the number of patients")

    if measure == "RD":
        informative = np.ones(x1.size, dtype=bool)
    else:
        informative = (x1 + x2) > 0
        if measure == "OR":
            informative &= (x1 < m1) | (x2 < m2)
    k = int(informative.sum())
    if k < 2:
        raise InsufficientDataError(
            "Meta-analysis", f"{k} informative stud{'y' if k == 1 else 'ies'}; 2 are needed"
        )

    zero = np.minimum.reduce([x1, m1 - x1, x2, m2 - x2]) == 0
    # Correct the zero-cell studies ourselves: effectsize_2proportions(zero_correction=0.5)
    # adds 0.5 to the events of every study but 1 to n only where a cell is 0 (statsmodels
    # 0.15), which shifts all estimates (FE log RR -0.4298 instead of -0.4303 on dat.bcg).
    cc = np.where(zero, 0.5, 0.0)
    eff_all, var_all = effectsize_2proportions(
        x1 + cc, m1 + 2 * cc, x2 + cc, m2 + 2 * cc, statistic=_MEASURES[measure]
    )
    eff, var = eff_all[informative], var_all[informative]
    z_crit = st.norm.isf((1.0 - level) / 2.0)

    with np.errstate(divide="ignore", invalid="ignore"):
        # With Q < df statsmodels' untruncated tau2 is negative and its random-effects
        # branch produces NaN/inf (with warnings); that branch is not used then.
        res = combine_effects(eff, var, method_re="chi2", alpha=1.0 - level)
    q = float(res.q)
    q_df = k - 1
    tau2 = max(float(res.tau2), 0.0)
    w_fe = 1.0 / var

    if method == "MH":
        a, b = x1[informative], (m1 - x1)[informative]
        c, d = x2[informative], (m2 - x2)[informative]
        est, se, w = _mh_pooled(a, b, c, d, measure)
        # Q around the MH estimate with inverse-variance weights (RevMan, metafor rma.mh).
        q = float(np.sum(w_fe * (eff - est) ** 2))
    elif method == "FE" or (method == "DL" and tau2 == 0.0 and not hartung_knapp):
        est, se, w = float(res.mean_effect_fe), float(res.sd_eff_w_fe), w_fe
    else:
        if method == "REML":
            tau2 = _reml_tau2(eff, var, tau2)
        w = 1.0 / (var + tau2)
        est = float(np.sum(w * eff) / np.sum(w))
        se = float(np.sqrt(1.0 / np.sum(w)))

    df, crit = math.inf, z_crit
    if hartung_knapp:
        df = float(k - 1)
        se = float(np.sqrt(np.sum(w * (eff - est) ** 2) / ((k - 1) * np.sum(w))))
        crit = float(st.t.isf((1.0 - level) / 2.0, df))
    z = est / se if se > 0 else (math.nan if est == 0 else math.copysign(math.inf, est))
    low, high = est - crit * se, est + crit * se
    ratio = measure != "RD"
    back = np.exp if ratio else (lambda v: v)

    weight = np.full(x1.size, np.nan)
    weight[informative] = 100.0 * w / np.sum(w)
    se_all = np.sqrt(var_all)
    studies = pd.DataFrame(
        {
            "label": labels,
            "events1": x1.astype(int),
            "n1": m1.astype(int),
            "events2": x2.astype(int),
            "n2": m2.astype(int),
            "estimate": back(eff_all),
            "low": back(eff_all - z_crit * se_all),
            "high": back(eff_all + z_crit * se_all),
            "weight": weight,
            "zero_cell_correction": zero,
            "included": informative,
        }
    )
    return PooledEstimate(
        measure=measure,
        method=method,
        estimate=float(back(est)),
        low=float(back(low)),
        high=float(back(high)),
        z=float(z),
        p_value=float(2.0 * (st.t.sf(abs(z), df) if hartung_knapp else st.norm.sf(abs(z)))),
        tau2=tau2,
        i2=float(max(0.0, (q - q_df) / q) * 100.0) if q > 0 else 0.0,
        q=q,
        q_df=q_df,
        q_p=float(st.chi2.sf(q, q_df)),
        k=k,
        studies=studies,
        se=float(se),
        level=level,
        test="t" if hartung_knapp else "z",
        df=df,
    )
