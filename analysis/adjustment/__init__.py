"""Confounding adjustment for KP vs VP: propensity scores, IPTW, g-computation, balance (SMD).

Modules: :mod:`~analysis.adjustment.design` (treatment indicator, covariate coding),
:mod:`~analysis.adjustment.balance` (SMDs), :mod:`~analysis.adjustment.propensity`
(scores, weights, diagnostics), :mod:`~analysis.adjustment.iptw` (the weighted effect) and
:mod:`~analysis.adjustment.gcomputation` (standardised risks); the numerical solvers are in
:mod:`analysis._kernels`. Every public name is importable from ``analysis.adjustment``.

Kyphoplasty (KP) is compared with vertebroplasty (VP, the reference) throughout: the
treatment indicator is ``kp = 1`` for kyphoplasty, differences are KP − VP and ratios KP / VP.

Methods
-------
* **Propensity score** (Rosenbaum & Rubin 1983 [13]_; Austin 2011 [2]_): logistic regression of
  ``kp`` on the baseline covariates. Weights for the average treatment effect (ATE), the
  effect on the treated (ATT) or overlap weights (Li, Morgan & Zaslavsky 2018 [5]_).
* **Balance**: standardised mean differences (SMD) before and after weighting, |SMD| < 0.1
  counted as balanced (Austin 2009 [1]_). Weighted SMDs use weighted means and the weighted
  variances of Austin & Stuart (2015) [3]_ (see :func:`standardised_difference`); multi-level
  categorical variables also get the Mahalanobis-type SMD of Yang & Dalton (2012) [6]_.
* **IPTW effect**: weighted difference in risks (or means) from
  ``smf.glm('y ~ kp', var_weights=w).fit(cov_type='HC0')``, a sandwich standard error that
  ignores the estimation of the propensity score (conservative for the ATE; Austin & Stuart
  2015 [3]_). ``var_weights``, not ``freq_weights`` (statsmodels #2829).
* **Standardised risks (g-computation)**: a logistic outcome model ``y ~ kp + covariates``,
  predicted risks for every patient with ``kp`` set to 1 and to 0, averaged (Snowden, Rose &
  Mortimer 2011 [7]_); the risk difference and ratio get a Wald CI from the influence-
  function (sandwich) variance of the stacked estimating equations, which accounts for the
  estimation of the model and of the covariate distribution and has no Monte-Carlo error
  (Stefanski & Boos 2002 [14]_; as R's stdReg, Sjölander 2016 [15]_), or on request a
  nonparametric bootstrap CI of the whole pipeline with its Monte-Carlo error reported.

Covariate coding (:func:`covariate_design`)
-------------------------------------------
Numeric covariates enter linearly (centred and scaled internally, which changes nothing but
the numerical conditioning). A numeric covariate with missing values is imputed with its
median among the modelled records and gets a missing-value indicator
(``<name>_missing``): the "missing-indicator" method, adequate for confounding adjustment of
a propensity or outcome model when missingness is modest, not a substitute for multiple
imputation (Groenwold et al. 2012 [8]_). Categorical, text and boolean covariates enter as
indicators of every observed level but the first; records with a missing categorical value
are left out (counted in ``n_dropped_missing``). Covariates with a single observed value are
dropped automatically, as are indicator columns that are exactly collinear with earlier
columns (e.g. two missing-value indicators that always coincide); the result says which.

Speed
-----
Model fits use the numpy solvers of :mod:`analysis._kernels` (Newton–Raphson and normal
equations over row blocks, a subsample warm start above 200,000 records; checked against
statsmodels and :func:`analysis.survival.cox_model` to 1e-8): statsmodels' IRLS took 7–8 s
per logistic fit on 1,000,000 records. Bootstrap replicates start from the full-sample
estimate.

References
----------
.. [1] Austin PC. Balance diagnostics for comparing the distribution of baseline covariates
   between treatment groups in propensity-score matched samples. Stat Med 2009;28:3083-3107.
.. [2] Austin PC. An introduction to propensity score methods for reducing the effects of
   confounding in observational studies. Multivariate Behav Res 2011;46:399-424.
.. [3] Austin PC, Stuart EA. Moving towards best practice when using inverse probability of
   treatment weighting (IPTW) using the propensity score to estimate causal treatment
   effects in observational studies. Stat Med 2015;34:3661-3679.
.. [4] Kish L. Survey Sampling. Wiley 1965 (effective sample size (Σw)²/Σw²).
.. [5] Li F, Morgan KL, Zaslavsky AM. Balancing covariates via propensity score weighting.
   J Am Stat Assoc 2018;113:390-400.
.. [6] Yang D, Dalton JE. A unified approach to measuring the effect size between two groups
   using SAS. SAS Global Forum 2012, paper 335.
.. [7] Snowden JM, Rose S, Mortimer KM. Implementation of G-computation on a simulated data
   set: demonstration of a causal inference technique. Am J Epidemiol 2011;173:731-738.
.. [8] Groenwold RHH, White IR, Donders ART, et al. Missing covariate data in clinical
   research: when and when not to use the missing-indicator method for analysis. CMAJ
   2012;184:1265-1269.
.. [9] Bickel PJ, Götze F, van Zwet WR. Resampling fewer than n observations: gains, losses,
   and remedies for losses. Stat Sin 1997;7:1-31 (m-out-of-n bootstrap).
.. [10] Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall 1993.
.. [11] Stürmer T, Rothman KJ, Avorn J, Glynn RJ. Treatment effects in the presence of
   unmeasured confounding: dealing with observations in the tails of the propensity score
   distribution. Am J Epidemiol 2010;172:843-854.
.. [12] Xu S, Ross C, Raebel MA, et al. Use of stabilized inverse propensity scores as weights
   to directly estimate relative risk and its confidence intervals. Value Health
   2010;13:273-277.
.. [13] Rosenbaum PR, Rubin DB. The central role of the propensity score in observational
   studies for causal effects. Biometrika 1983;70:41-55.
.. [14] Stefanski LA, Boos DD. The calculus of M-estimation. Am Stat 2002;56:29-38.
.. [15] Sjölander A. Regression standardization with the R package stdReg. Eur J Epidemiol
   2016;31:563-574.
"""

from __future__ import annotations

from analysis.adjustment.balance import SMD_THRESHOLD, smd_categorical, standardised_difference
from analysis.adjustment.design import (
    DEFAULT_COVARIATES,
    KP,
    OPTIONAL_COVARIATES,
    VP,
    CovariateDesign,
    covariate_design,
    default_covariates,
    treatment_indicator,
)
from analysis.adjustment.gcomputation import BOOTSTRAP_MAX_N, StandardisedRisks, standardised_risks
from analysis.adjustment.iptw import IPTWEffect, iptw_effect
from analysis.adjustment.propensity import PropensityResult, propensity_weights

__all__ = [
    "BOOTSTRAP_MAX_N",
    "DEFAULT_COVARIATES",
    "KP",
    "SMD_THRESHOLD",
    "VP",
    "CovariateDesign",
    "IPTWEffect",
    "OPTIONAL_COVARIATES",
    "PropensityResult",
    "StandardisedRisks",
    "covariate_design",
    "default_covariates",
    "iptw_effect",
    "propensity_weights",
    "smd_categorical",
    "standardised_difference",
    "standardised_risks",
    "treatment_indicator",
]
