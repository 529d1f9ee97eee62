"""Methods: the definitions, estimators, tests and rules behind every number of the dashboard.

Written for hospital quality teams and checkable by a biostatistician: each section names the
method, the formula or rule where it matters, and its source (author and year; the full list
is under References). The text is built here from the analysis package's own constants (visit
windows, horizons, covariates, thresholds), so it cannot drift from the code, and
``docs/methods.md`` is generated from the same text (:func:`methods_markdown`).

Nothing here reads files at run time.
"""

from __future__ import annotations

import re

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html

from analysis.adjustment import (
    BOOTSTRAP_MAX_N,
    DEFAULT_COVARIATES,
    OPTIONAL_COVARIATES,
    SMD_THRESHOLD,
)
from analysis.comparison import MIN_EVENTS_ADJUSTED, MIN_VISIT_OBSERVATIONS
from analysis.filters import RecordFilter
from analysis.outcomes import COMPLICATION_OUTCOMES, DEATH_HORIZON_DAYS, FRACTURE_HORIZON_DAYS
from analysis.quality import FUNNEL_LEVELS
from dashboard.components import page_header
from dashboard.report import ReportSection, register_report
from dashboard.suppression import DEFAULT_THRESHOLD, threshold
from data.dictionary import PAIN_VISITS

dash.register_page(__name__, path="/methods", name="Methods", title="Methods", order=9)

# Plain tuples, not dataclasses: Dash executes page modules before they are in sys.modules.
Section = tuple[str, str, str]  # (anchor, title, Markdown body)


def _covariates() -> str:
    names = {"age": "age", "sex": "sex", "etiology": "etiology", "levels_treated": "levels treated",
             "country": "country", "fracture_age_weeks": "fracture age",
             "prior_fractures": "number of prior fractures"}
    required = ", ".join(names.get(c, c) for c in DEFAULT_COVARIATES)
    optional = " and ".join(names.get(c, c) for c in OPTIONAL_COVARIATES)
    return f"{required}; plus {optional} when they are recorded"


def _visit_table() -> str:
    lines = ["| Visit | Field | Nominal day | Window opens on day |", "|---|---|---|---|"]
    for suffix, (label, nominal, start) in PAIN_VISITS.items():
        lines.append(f"| {label} | `pain_{suffix}` | {nominal} | {start} |")
    return "\n".join(lines)


def _level(level: float) -> str:
    return f"{100 * level:g}%"


def methods_sections(limit: int | None = None) -> list[Section]:
    """The Methods text: (anchor, title, Markdown) per section, References last.

    ``limit`` is the suppression threshold to describe (default: the configured one).
    """
    limit = threshold() if limit is None else limit
    small = f"<{limit + 1}"
    alert, alarm = (_level(level) for level in FUNNEL_LEVELS)
    labels = COMPLICATION_OUTCOMES
    return [
        ("methods-about", "About these methods", """
This page defines the numbers the dashboard shows and how each is computed. The calculations
are in the project's `analysis` package; the sources are listed under
[References](#methods-references) and cited here by author and year.

- **Comparison.** Kyphoplasty (KP) is compared with vertebroplasty (VP, the reference):
  differences are KP − VP and ratios are KP / VP.
- **Unit of analysis.** One procedure record: a patient's procedure, whatever the number of
  levels treated. Rates are per procedure record, not per treated level. A patient treated
  twice has two records (linked by `patient_id`).
- **Confidence level.** Intervals are two-sided 95% intervals and p-values are two-sided.
- **Missing data are counted, never imputed.** A patient without the value an outcome needs
  is left out of that outcome's denominator and counted as missing. (Adjusted models are the
  one exception, for covariates: see [Adjusted comparisons](#methods-adjustment).)
- **Filters.** Every figure is recomputed for the records the filters select.
"""),
        ("methods-responders", "Pain responders", f"""
Pain is recorded on a 0–10 visual analogue or numeric rating scale (VAS/NRS) before the
procedure (`pain_baseline`) and at the follow-up visits below.

**Default definition.** A *responder* has a pain reduction of **at least 30% from baseline at
the month-1 visit**: (baseline − month 1) / baseline ≥ 0.30. This is the relative criterion
of the Cochrane review CD006349 (Buchbinder et al.). The denominator is the patients with
both a baseline and a month-1 score; a patient without a month-1 score is neither a
responder nor a non-responder and is counted as missing. A patient with a baseline score of
0 cannot improve and counts as a non-responder, on every page (the quality monitoring's
pain non-response included). Comparisons allow a rounding tolerance of 10⁻⁹, so that
7.3 → 5.3 counts as a 2-point reduction.

**Deaths before the visit.** A patient who died before the visit's nominal day has no
score. By default (complete case) such a patient is missing, like any other patient without
a score; the Pain relief page and the analysis package also offer the **composite**, in
which a death before the visit counts as non-response, so the rate is the share of patients
alive and relieved. Read the two together: a complete-case rate can look better only
because the sickest patients died (informative missingness).

**Alternative definitions** (selectable on the Pain relief page), with their sources:

| Definition | Rule | Source |
|---|---|---|
| Default | reduction ≥ 30% of the baseline score at month 1 | Cochrane CD006349 (Buchbinder et al.) |
| Cochrane, absolute | reduction ≥ 2.5 points | Cochrane CD006349: "improvement in pain of 2.5 units or 30% or more from baseline" |
| VERTOS II | reduction ≥ 3 points | Klazen et al. 2010 (clinically significant relief: VAS decrease ≥ 3) |
| VERTOS IV | reduction ≥ 1.5 points | Firanescu et al. 2018 (clinically significant relief: VAS decrease ≥ 1.5) |

The Cochrane outcome accepts either criterion (2.5 points *or* 30%); the dashboard applies
one criterion at a time, so the two Cochrane rows bracket it. Any visit can replace month 1.

### Visit windows

The visit windows come from the data dictionary (`PAIN_VISITS` in `data/dictionary.py`). A
follow-up score is accepted on import only when `followup_days` has reached the start of its
window (cross-field rule `pain_beyond_followup`).

{_visit_table()}

### Pain over time, function and opioids

Mean pain per visit is shown with a t interval; each visit describes the patients still
followed with a score, so later visits are smaller and possibly selected samples. Inference
across visits uses a linear mixed model (see [Adjusted comparisons](#methods-adjustment)).
Oswestry Disability Index (ODI, 0–100) change is summarised the same way. Opioid use before
and at month 1 is compared within the same patients with McNemar's test (McNemar 1947).
"""),
        ("methods-complications", "Complications", f"""
Complication rates are **per procedure record** (per patient), not per treated level; trials
that count leakage per level (for example on CT) report higher numbers that are not
comparable. A complication known at the procedure (leakage, embolism, infection, deficit) is a
**proportion**: events / records with the status known, the rest counted as missing. An
outcome **"by day N"** (new fracture by 12 months, death by 30 days) is a **cumulative
incidence at the horizon**, because patients are followed for different lengths of time: see
below.

| Outcome | Event | Denominator and rules |
|---|---|---|
| {labels["cement_leakage"]} | any leakage on post-procedure imaging (`cement_leakage`) | records with the field recorded |
| {labels["leakage_symptomatic"]} | leakage that caused symptoms | **all** records whose status is known: a record without leakage counts as a non-event; a leakage with unknown symptom status is missing, not asymptomatic |
| {labels["pulmonary_embolism"]} | pulmonary cement embolism, including incidental findings | records with the field recorded |
| {labels["embolism_symptomatic"]} | symptomatic cement embolism | as for symptomatic leakage |
| {labels["adjacent_fracture_12m"]} | new vertebral fracture diagnosed by day {FRACTURE_HORIZON_DAYS} | **Aalen–Johansen cumulative incidence at day {FRACTURE_HORIZON_DAYS} with death as a competing risk**; every record with a follow-up time counts, censored records for as long as they were followed; a fracture without its day is missing |
| {labels["death_30d"]} | death by day {DEATH_HORIZON_DAYS} | **1 − Kaplan–Meier** of death-free survival at day {DEATH_HORIZON_DAYS} (censored at the last contact without a recorded death); a death without its day is missing |
| {labels["infection"]}; {labels["new_neurologic_deficit"].lower()} | the recorded field | records with the field recorded |

### Outcomes "by day N": cumulative incidence at the horizon

Patients are followed for different lengths of time. The share of patients "followed a year
or with a fracture" keeps every early fracture but drops the patients whose follow-up ended
earlier, so it is **biased upwards** (on the 5,000-record demo data it gave 31.9% (VP) and
28.5% (KP) where the cumulative incidence is 20.5% and 18.4%; the demo is calibrated to 20%
and 18%). The dashboard therefore never shows that share: new fracture by 12 months is the
**Aalen–Johansen cumulative incidence at day {FRACTURE_HORIZON_DAYS} with death as a competing
risk** (Aalen & Johansen 1978): each patient counts for as long as followed, and a patient who
died cannot have a fracture afterwards. In this elderly population many patients die before a
new fracture; 1 − Kaplan–Meier with deaths censored would overstate the risk. Without recorded
deaths the estimate is 1 − Kaplan–Meier and the label says so. Death by 30 days is 1 −
Kaplan–Meier (the same estimator with one event type). Each estimate comes with its
delta-method standard error (Collett 2015; Greenwood's with one event type), a **log(−log)
interval**, the events observed by the horizon and the **number still at risk at the horizon**
(followed and without the event), which is suppressed like any other count.

**Which times are used.** A new fracture counts at its day (`adjacent_fracture_days`). A death
without a preceding fracture competes at its day when it happened **on or before the last
contact** (`death_days ≤ followup_days`). New fractures are only ascertained up to the last
contact, so a patient who **died after the last contact** (for example a death found by
registry linkage) without a recorded fracture is **censored at the last contact**, not kept
at risk until the death — that would count fracture-free time nobody observed and bias the
cumulative incidence low (on the demo data by 2.5 and 1.1 points at 2 years for VP and KP).
A death without its day is censored at the last contact too. Everyone else is censored at
`followup_days`.

**KP compared with VP at the horizon.** The difference KP − VP of the two cumulative
incidences has the standard error √(var KP + var VP) (independent groups, delta method), a
Wald interval and a z test; the ratio KP / VP has an interval computed on the log scale
(SE² = var KP / F²KP + var VP / F²VP). The **adjusted** difference and ratio are the
**IPTW-weighted cumulative incidences** (the stabilised ATE weights of the propensity model of
[Adjusted comparisons](#methods-adjustment); Cole & Hernán 2004) with a bootstrap standard error
that refits the propensity model in every replicate (m-out-of-n above {BOOTSTRAP_MAX_N:,}
records). g-computation from a logistic model is **not** used for these outcomes: a model of
the status at the horizon would have to drop the patients censored before it.

### New fracture over time

The whole curve is shown too: Kaplan–Meier estimates (deaths censored) and the Aalen–Johansen
cumulative incidence with death as a competing risk, with the number at risk; its value at
day {FRACTURE_HORIZON_DAYS} is the 12-month estimate above. Hazard ratios come from a
cause-specific Cox model (deaths censored at the last contact).
"""),
        ("methods-intervals", "Confidence intervals", """
| Quantity | Interval | Source |
|---|---|---|
| A rate (proportion) | Wilson score interval | Wilson 1927; recommended over the Wald interval by Newcombe 1998a and Brown, Cai & DasGupta 2001 |
| A rate with 0 or n events | Clopper–Pearson "exact" interval | Clopper & Pearson 1934 |
| Risk difference KP − VP | Newcombe hybrid score interval (method 10): the Wilson limits of each arm combined by square-and-add; never zero-corrected | Newcombe 1998b |
| Risk ratio KP / VP | Katz log interval, SE(log RR) = √(1/a − 1/n₁ + 1/c − 1/n₂) | Katz et al. 1978 |
| Odds ratio KP / VP | Woolf logit interval, SE(log OR) = √(1/a + 1/b + 1/c + 1/d) | Woolf 1955 |
| Mean | t interval, mean ± t(n−1)·SD/√n | — |
| Difference in means | Welch t interval (unequal variances) | Welch 1947; Ruxton 2006 |
| Median shift | Hodges–Lehmann estimate with its distribution-free interval (exact for small samples, else normal approximation) | Hodges & Lehmann 1963; Bauer 1972; Hollander & Wolfe 1999; Monahan 1984 |
| Median | distribution-free interval from order statistics (Binomial(n, ½)) | Conover 1999 |
| Survival (no new fracture) | Kaplan–Meier with Greenwood variance and log(−log) interval | Kaplan & Meier 1958; Greenwood 1926; Kalbfleisch & Prentice 2002 |
| Cumulative incidence (also "new fracture by 12 months", "death by 30 days") | Aalen–Johansen, delta-method variance, log(−log) interval; with one event type 1 − Kaplan–Meier with Greenwood's variance | Aalen & Johansen 1978; Collett 2015; Kalbfleisch & Prentice 2002 |
| Difference / ratio of two cumulative incidences | Wald interval with SE √(var₁ + var₂); ratio on the log scale (delta method) | Collett 2015 |
| Mean cost | nonparametric bootstrap (BCa, fixed seed); t interval above 5,000 costs per group | Efron & Tibshirani 1993; Thompson & Barber 2000 |
| Observed / expected ratio | exact Poisson below 10 observed events, Byar's approximation from 10 | Ulm 1990; Breslow & Day 1987 |

**Zero cells.** When any cell of the 2×2 table is 0, 0.5 is added to all four cells for the
risk ratio and the odds ratio only (the point estimates and the intervals), and the table says
so; the risk difference and its Newcombe interval are never corrected.
"""),
        ("methods-tests", "Tests and multiple comparisons", """
- **Two proportions (2×2).** Pearson χ² **without continuity correction** when every expected
  count is at least 5 (Cochran's rule); otherwise **Fisher's exact test** (two-sided, as in R).
  Each comparison states which test was used. Several groups (for example regions): Pearson χ²
  on the k×2 table, with the smallest expected count reported.
- **Two means.** Welch t test (Welch 1947). Mann–Whitney test (Mann & Whitney 1947): exact
  when both groups have fewer than 50 values and there are no ties, otherwise the normal
  approximation with continuity and tie correction (R's rule).
- **Equivalence.** Two one-sided tests (TOST; Schuirmann 1987): equivalence within ±margin
  when the 90% interval lies inside the margins.
- **Paired proportions** (opioid use before and after): McNemar 1947.
- **Time to new fracture.** Log-rank test (Mantel 1966).
- **Many outcomes.** The KP vs VP comparison table adjusts its p-values across the outcomes
  with the **Benjamini–Hochberg** false discovery rate (Benjamini & Hochberg 1995); funnel
  plot flags across facilities are adjusted the same way (Jones, Ohlssen & Spiegelhalter 2008).
  Holm's method (Holm 1979) is available for a few co-primary outcomes.
- **Power.** The smallest differences the current numbers of patients can detect (80% power,
  two-sided 5% level) use the normal approximation with pooled variance for proportions
  (Fleiss, Levin & Paik 2003) and Cohen's effect sizes for means (Cohen 1988).
"""),
        ("methods-adjustment", "Adjusted comparisons", f"""
Patients are not randomised: KP and VP patients differ (see [Limits](#methods-limits)).
Adjusted estimates compare the two procedures at an equal mix of recorded patient
characteristics.

**Covariates:** {_covariates()}. A numeric covariate with missing values is imputed with its
median and gets a missing-value indicator (adequate for confounding adjustment when
missingness is modest; Groenwold et al. 2012); records missing a categorical covariate are
left out and counted.

| Outcome | Adjusted method | Source |
|---|---|---|
| Binary (responder, leakage, embolism) | logistic outcome model, then **standardised risks by g-computation**: every patient's risk predicted as if treated with KP and with VP, averaged; adjusted risk difference and risk ratio with a Wald interval from the **influence-function (sandwich) variance** of the standardised risks, which counts the estimation of the model and of the patient mix and, being analytic, has no Monte-Carlo error (the limits do not change with a random seed; a 200-replicate bootstrap used before moved them by about 0.2 standard errors). A nonparametric bootstrap of the whole pipeline (m-out-of-n above {BOOTSTRAP_MAX_N:,} records) remains available in the analysis package and reports its Monte-Carlo error. The responder model also adjusts for baseline pain. | Snowden et al. 2011; Stefanski & Boos 2002; Sjölander 2016; Efron & Tibshirani 1993; Bickel et al. 1997 |
| New fracture by 12 months, death by 30 days | **IPTW-weighted cumulative incidence** at the horizon (Aalen–Johansen with weighted numbers at risk and events), stabilised ATE weights; difference and ratio with a bootstrap standard error refitting the propensity model (m-out-of-n above {BOOTSTRAP_MAX_N:,} records); clustered by facility: a cluster bootstrap of whole facilities (see below) | Cole & Hernán 2004; Aalen & Johansen 1978 |
| Binary, second estimate | **propensity score** (logistic model of KP on the covariates) and **inverse probability of treatment weighting** with **stabilised ATE weights** (P(KP)/e for KP, (1 − P(KP))/(1 − e) for VP); weighted risk difference with a sandwich (HC0) standard error, which ignores the estimation of the score and is conservative for the ATE | Rosenbaum & Rubin 1983; Austin 2011; Austin & Stuart 2015; Xu et al. 2010 |
| Pain at a visit | **ANCOVA**: pain at the visit ~ KP + baseline pain + covariates (OLS, t-based interval with residual df = n − rank on the records that have the score: a covariate column that is all zero or collinear on them is not estimated and not counted, as R's `lm()` does) | Vickers & Altman 2001 |
| Pain over all visits | linear mixed model, random intercept per patient, REML; KP − VP contrast at each visit and a joint test of the procedure × visit interaction; visits with fewer than {MIN_VISIT_OBSERVATIONS} scores in a procedure are left out | Laird & Ware 1982 |
| Procedure duration | OLS with HC3 robust standard errors (difference in minutes), df = n − rank as for the ANCOVA; a record with leverage 1 (the only one informing a column, e.g. the only record in a covariate level) has HC3 weight 0/0 and contributes 0, which leaves the KP effect's variance exactly that of the fit without the record | MacKinnon & White 1985 |
| Cost | **gamma GLM with log link**: exp(coefficient) is the ratio of mean costs, t-based inference | Manning & Mullahy 2001; Barber & Thompson 2004 |
| Time to new fracture | **Cox proportional hazards with Efron ties**, deaths censored (cause-specific hazard ratio); Lin–Wei robust standard errors when clustered | Cox 1972; Efron 1977; Lin & Wei 1989 |

**Intervals clustered by facility (default).** Patients treated at the same facility share
operators, equipment, case mix and follow-up routines, so their outcomes are correlated and
model-based standard errors, which assume independent patients, are too small (for leakage in
the demo data the facility-clustered standard error of the KP log-odds ratio is about 1.3 times
the model-based one). Every interval and p-value of the VP vs KP comparison therefore uses a
**cluster-robust variance by facility** (Liang & Zeger 1986): the scores of each model are summed
within facilities and the sandwich gets the CR1 factor G/(G − 1) · (n − 1)/(n − k) (G facilities,
k coefficients; R `sandwich::vcovCL(type = "HC1")`; Zeileis et al. 2020), and the intervals use
the t distribution with G − 1 degrees of freedom (Cameron & Miller 2015). Unadjusted risk
differences and differences in means come from the saturated models y ~ KP (a Wald interval
instead of Newcombe's or Welch's), the unadjusted risk ratio from the saturated Poisson model
(Zou 2004); the g-computation risk difference and risk ratio from the stacked estimating
equations of the logistic model and the two standardised risks (Stefanski & Boos 2002; a closed
form, so no bootstrap); IPTW from the weighted model y ~ KP; ANCOVA, OLS and the gamma GLM from
their sandwich; the Cox models from the **Lin–Wei robust variance** (Efron score residuals
summed by facility, as R `coxph(..., cluster = facility)`, which uses no small-sample factor).
A closed form is missing for the skewed **unadjusted difference in mean costs**, which
gets a percentile **cluster bootstrap** (2,000 resamples of whole facilities; Field & Welsh
2007), and for the cumulative incidences **"by day N"** (new fracture by 12 months, death by
30 days): their unadjusted difference and ratio get a **grouped jackknife** over facilities —
each facility is left out in turn, both cumulative incidences at the horizon are recomputed
(from per-facility tables of the daily event and censoring counts, so all facilities cost
one pass over the records), and Var = (G − 1)/G Σ(θ₋g − θ̄)² for the difference and for the
log ratio (Efron & Tibshirani 1993; Cameron & Miller 2015), with t(G − 1) intervals; the
IPTW-weighted difference gets a **cluster bootstrap** of whole facilities that refits the
propensity model in every replicate (up to {BOOTSTRAP_MAX_N:,} records; above, the weights
are held at the full-data propensity model, which for ATE weights is conservative, Lunceford
& Davidian 2004, and each replicate adds per-facility weighted count tables). If leaving out
one facility removes every record of a procedure, the row keeps its model-based interval and
its notes say so. The estimates are the same with and without clustering. The VP vs KP page has a switch
to turn clustering off (model-based intervals, as in the table above); a selection from a
single facility is never clustered, and the table notes say so.

**Balance.** The weighting is checked with standardised mean differences before and after
weighting; a covariate is balanced when **|SMD| < {SMD_THRESHOLD:g}** (Austin 2009), with weighted
variances as in Austin & Stuart 2015 and a multivariate SMD for categorical covariates with
more than two levels (Yang & Dalton 2012). The effective sample size is (Σw)²/Σw² (Kish 1965).

**Table 1** describes the two groups with their SMDs next to the summaries (unweighted and
IPTW-weighted). Baseline p-values are optional and off by default: they answer a question
about chance that is not the question (are the groups comparable?), and with many records
trivial differences get small p-values (STROBE item 14a, Vandenbroucke et al. 2007; the
tableone package, Yoshida & Bartel 2022). When switched on they are Welch's t-test for
numbers and the χ² or Fisher's exact test for categories.
Poor overlap is reported; trimming of extreme scores (Stürmer et al. 2010) or overlap weights
(Li, Morgan & Zaslavsky 2018) are available in the analysis package.

**When an adjusted estimate is not shown.** Adjusted models need at least
{MIN_EVENTS_ADJUSTED} events and {MIN_EVENTS_ADJUSTED} non-events in each procedure (Cox: events)
and at least {MIN_EVENTS_ADJUSTED} complete records per procedure for continuous outcomes;
otherwise the adjusted columns are empty and a note says why. A modified Poisson model (Zou 2004)
is a common alternative for an adjusted risk ratio; the dashboard uses the g-computation risk
ratio instead.
"""),
        ("methods-limits", "Limits of these analyses", """
- **Observational data.** The records come from routine care, not a randomised trial. The
  comparisons show associations; they can suggest, not prove, that one procedure causes better
  or worse outcomes.
- **Confounding by indication.** The choice between KP and VP depends on the patient and the
  fracture (malignant fractures, more levels, more kyphosis, older patients) and varies
  strongly between countries and facilities. Unadjusted differences mix the effect of the
  procedure with these differences.
- **Residual confounding.** Adjustment uses the recorded covariates only. Frailty, bone
  density, fracture morphology, cement type and viscosity, operator experience and the imaging
  used to look for leakage are not recorded and can still bias the adjusted estimates.
- **Missing follow-up.** Follow-up scores and late events exist only for patients who were
  still followed. If patients who did well (or badly) were more often lost, the rates are
  biased. Responder rates use the patients with a score; fixed-horizon rates leave censored
  patients out; the mixed model assumes scores are missing at random.
- **Detection.** Leakage and embolism depend on the imaging used (CT finds more than
  radiographs), so differences between facilities can reflect imaging practice.
- **Clustering.** Patients are clustered in facilities and operators, and some patients have
  two procedures. Intervals assume independent records unless a method says otherwise, so they
  can be too narrow.
- **Literature benchmarks** describe other populations, definitions and study designs: they are
  context, not targets.
"""),
        ("methods-quality", "Quality monitoring", f"""
### Funnel plots

Each facility's (or operator's) result is plotted against its volume, around a target θ₀: the
pooled value of the selected records or an external benchmark (the page says which). Limits
at **{alert}** ("alert") and **{alarm}** ("alarm") are exact quantiles with Spiegelhalter's
interpolation (Spiegelhalter 2005, Stat Med, Appendix A.1). Units with fewer than 10 cases are
shown but not tested; units are not ranked in a league table. Outcomes: cement leakage, cement
embolism and pain non-response (binary: not a responder by the default definition, complete
case), and new fracture (time to event, below). The unit table shows each unit's completeness:
for pain non-response the share of its patients with a baseline score who have a month-1 score.

**One distribution per funnel.** The limits, the z-score, the p-value and the flag of a unit
come from the same distribution of its event count O under the target. For a binary outcome
this is a binomial with the unit's volume n (crude), or, risk-adjusted, with its **effective
volume** E/θ₀ (E = Σ p̂, the sum of its expected risks), plotted as O/E × θ₀ against E/θ₀;
its variance is E(1 − θ₀). An intercept-only case-mix model (every expected risk θ₀) therefore
gives exactly the crude funnel (the true distribution of O, a Poisson-binomial with variance
Σp̂(1 − p̂), is approximated by a binomial with the same mean). The two-sided p-value is the
level of the funnel contour through the point, p = 2·min(F(O), 1 − F(O)) with F that
distribution's cdf, so a unit is outside the 95% (99.8%) limits exactly when p < 0.05
(0.002); z = Φ⁻¹(F(O)) is its normal score. Benjamini–Hochberg adjusts the p-values for the
number of units.

**New fracture: per person-time.** A new fracture is counted only while a patient is followed,
so the proportion "ever recorded" grows with follow-up and would flag units for following
patients longer or shorter. Each procedure's **time at risk** ends at the first new fracture,
at death or at the last contact (followup_days), whichever comes first; a death recorded after
the last contact (e.g. from a death register) does not extend it, because fractures are
ascertained only up to the last contact. Expected events come from a **Poisson model with log
person-time as offset** and a baseline rate that is constant within follow-up bands
(0–90, 90–180, 180–365, 365–730 and over 730 days; piecewise-exponential model, Holford 1980,
Laird & Olivier 1981): crude, the pooled rate of each band; risk-adjusted, times each
patient's case-mix rate ratio. A unit's O is compared with Poisson(E) (Spiegelhalter 2005,
Appendix A.1.2) and plotted as O/E × θ₀ (θ₀ = pooled events per person-year, shown per 100
person-years) against the effective person-years E/θ₀. The caterpillar plot and the table use
the same E.

**Risk adjustment.** The case-mix model (logistic for a binary outcome, Poisson as above for
new fracture) includes age, sex, etiology, levels treated and prior fractures. It is fitted
once on all records (the reference population) and applied to the selection with its
intercept shifted so that expected equals observed events. **Procedure (VP/KP) is not
adjusted for by default**, because the choice of technique is the unit's own and adjusting
would remove its effect from the unit's assessment; the option "Adjust for procedure" adds
it, to compare units as if they had used the same technique.

**Over-dispersion.** The Pearson z-scores (O − E)/√V (V of the distribution above) are
winsorised (10% at each end) and φ̂ = mean(z²) is tested against χ² with I − 1 degrees of
freedom. By default the **additive random-effects** model (τ² added to each unit's variance,
Spiegelhalter 2005 QSHC; Spiegelhalter et al. 2012) is applied **when the test shows
over-dispersion** (φ̂ > 1 and p < 0.05); the multiplicative model (limits widened by √φ̂) or
none can be chosen instead. The page says which model is active. With a model applied, the
limits, z (z/√φ̂, or (y − θ₀)/√(s² + τ²)) and the normal p-value again agree.

### Risk-adjusted CUSUM

Cases are taken in procedure order. Each adds the log-likelihood-ratio weight
W = y·log(R_A) − log(1 − p + R_A·p), where p is the case's predicted risk and y the outcome
(Steiner, Cook, Farewell & Treasure 2000). The upper chart (R_A = 2, a doubling of the odds)
signals deterioration, the lower chart (R_A = 0.5) improvement; a chart restarts at 0 after a
signal. For new fracture the chart follows the fixed-horizon indicator **"new fracture within
365 days"** among procedures whose status at 365 days is known (follow-up of at least 365
days, or death within follow-up before then, death being a competing event), so every case
has the same window; its expected risks come from a logistic case-mix model of that
indicator. Procedures of the last year enter the chart once their year has passed.

**Decision limits from the false-alarm probability.** The limit h of each chart is the
smallest value (to 0.001) for which, if the unit performed exactly on target, the probability
of **at least one false signal over its whole series of n cases** is at most half the chosen
level (5% by default for the two charts together; 1% or 10% can be chosen). The page shows
this probability for each chart next to the chart. It is computed with the **Markov-chain
approximation** of Brook & Evans (1972, Biometrika 59:539), as Steiner et al. did for the
average run length: with R the transition matrix of the chart among the non-signalling
states, P(signal within n cases) = 1 − e₀′Rⁿ1, the probability of absorption within n steps
from 0; a case's risk is drawn from the unit's own cases and its outcome from that risk. Rⁿ is
formed by repeated squaring of a 100-point chain (log₂ n matrix products, whatever n), whose
time scale is matched to the 1,000-point chain's average run length; the result agrees with
simulations of 20,000 series within their Monte-Carlo error in the tests. The average run
lengths at the chosen limits are reported too. The VLAD curve (cumulative expected minus
observed events; Lovegrove et al. 1997) is a display only; the unadjusted Bernoulli CUSUM is
the case of a constant p (Reynolds & Stoumbos 1999).

### Observed / expected ratios and control charts

O/E ratios use **exact Poisson limits** (Ulm 1990) below 10 observed events and Byar's
approximation (Breslow & Day 1987) from 10, as in PHE/Fingertips practice. Rates over time use
p-charts with 3σ limits; Laney's p′ chart (Laney 2002) widens them when large subgroups are
overdispersed.

### Signals and alerts

The Signals page lists, for every monitored outcome and for facilities and operators, each
unit currently beyond its funnel limits (alert {alert}, alarm {alarm}) and each risk-adjusted
CUSUM crossing since a chosen date, computed by exactly the functions and settings of the
Quality page (risk-adjusted, additive over-dispersion when significant, units with fewer than
10 cases not tested, CUSUM limits for a 5% false-alarm probability of the pair of charts over
the unit's series). Each row gives n, observed and expected events, O/E with its 95% CI and
the false-alarm probability of the chart that raised it: for a funnel flag the probability
that a unit on target falls beyond that limit (5% or 0.2%), for a CUSUM signal the in-control
probability of at least one false signal of that chart over the unit's series. To list them
quickly the page searches a chart's limit only when the chart may reach it: a chart whose
highest value lies below a **proven lower bound of its exact limit** cannot signal and is
passed over. The bound comes from the same chart with every weight rounded down to a lattice
of 100 points below that value; on every series of cases this chart stays at or below the
real one, so its probability of reaching the value (computed exactly on the lattice) is a
lower bound of the real chart's; when it exceeds the chart's share of the false-alarm level,
every limit up to that value is too low. The Quality page's CUSUM never keeps a limit at or
below such a value either, so both pages list the same signals; limits are also kept per case
mix and series length, so the two pages search each one once. Listing every
outcome and both unit types multiplies the chances: with 40 facilities, 120 operators and 4
outcomes about 32 units beyond their 95% limits are expected by chance alone, about 1.3 beyond
99.8%. Signals on units with small counts are listed with their counts hidden, by the small-unit
rule of the Quality page (see Small-cell suppression). After an import, signals not
seen before are sent to the configured recipients (e-mail, webhook) with their links, never
with record-level data or counts under the suppression threshold.
"""),
        ("methods-scorecard", "Facility scorecard", """
One facility against a peer group the user chooses — all other facilities, the same country,
the same region, the same volume tertile (of the facilities' procedures in the selection), or a
chosen list — for cement leakage, cement embolism, new fracture by 12 months (the 12-month
indicator among procedures whose status at 12 months is known) and non-response at 1 month.

- **O/E and risk-adjusted rate.** The logistic case-mix model of the Quality page is fitted on
  the facility and its peers; O/E is observed over expected events of the facility's patients
  (exact Poisson CI below 10 events, Byar from 10); the risk-adjusted rate is O/E × the peer
  set's rate (indirect standardisation).
- **Rank intervals.** Rank 1 is the lowest O/E. Each facility's log O/E is drawn 4,000 times from
  N(log((O + ½)/E), 1/(O + ½)), the facilities are ranked in each draw, and the 2.5% and 97.5%
  quantiles of a facility's ranks form its 95% rank interval (Goldstein 1996; Marshall 1998).
- **Shrunken estimates.** A random-intercept logistic model, logit p = case-mix offset + β₀ +
  u_facility with u ~ N(0, σ²), is fitted by maximum likelihood with the Laplace approximation,
  as lme4's `glmer` (Bates 2015), against whose results it is tested. The shrunken O/E is the
  facility's predicted over expected events (with u = 0), the approach CMS publishes for
  hospital profiling (Krumholz 2006; Ash 2012); its interval uses the conditional SD of û with
  β₀ and σ taken as known. Its reference is a typical peer facility, not the pooled rate.
- **Trend.** The facility's proportion per quarter (per year when most quarters have counts too
  small to show) on a Laney p′ chart (Laney 2002), centred on the facility's own proportion.
- **Restricted users** see their facility against peers labelled "Peer 1…N" only.
"""),
        ("methods-costs", "Costs", """
- **Price year first.** Costs are recorded in the prices of their procedure year (2021–2025
  in the demo, which inflates costs about 3% a year). Every cost is first brought to one
  **price year** (default: the latest year of the price-index table, 2024; a control on the
  Costs page, or "nominal" for no adjustment) with the consumer price index of its country in
  its own currency, `cost × index[price year] / index[procedure year]`, and only then converted
  to the reporting currency at the price year's exchange rate or PPP: the approach of the
  CCEMG–EPPI-Centre cost converter (Shemilt, Thomas & Morciano 2010). Indices shipped:
  US BLS CPI-U (CUUR0000SA0), UK ONS CPI (D7BT), Destatis VPI (61111-0001), France INSEE CPI
  and India CPI inflation (World Bank FP.CPI.TOTL.ZG) chained from annual changes, 2019–2024,
  entered by hand and to be verified before financial use (`data/reference/README.md`,
  `VA_PRICE_INDEX`). Years beyond the table use the nearest year's index (2025 costs are
  taken as 2024 prices) and the page counts those records.
- **Reporting currency.** Costs are recorded in each record's own currency (ISO 4217) and
  converted to one reporting currency, chosen on the Costs page (US dollars by default).
- **Exchange rates or PPP.** *Market exchange rates* (annual averages) convert money as a
  finance department would. *Purchasing power parities* (PPP) compare the real resources used
  across countries with different price levels; use them to compare countries, and exchange
  rates for budgets.
- **Rate tables shipped with the product.** Exchange rates: Board of Governors of the Federal
  Reserve System, statistical release G.5A *Foreign Exchange Rates (Annual)*, release dated
  1 February 2024, years 2020–2023. PPP: World Bank, World Development Indicators, indicator
  PA.NUS.PPP (PPP conversion factor, GDP), WDI update of 8 April 2026, year 2024. A record
  whose year is not in a table is converted at the nearest year, and the row says so. The
  tables are plain CSV files (`data/reference/`) that can be replaced (`VA_EXCHANGE_RATES`,
  `VA_PPP_FACTORS`); their values were transcribed and should be verified before financial use.
- **Mean, not median.** Budgets depend on the mean cost, so the mean is reported, with a
  nonparametric **bootstrap interval** (BCa, 2,000 resamples, fixed seed; above 5,000 costs per
  group a t interval) (Thompson & Barber 2000; Barber & Thompson 2004; Efron & Tibshirani
  1993). The difference KP − VP is a difference in means; the adjusted comparison is a gamma
  GLM ratio of means (Manning & Mullahy 2001).
- **Adjusted incremental cost and net benefit (the page's main estimate).** Pooled means
  confound procedure with country (in the demo 77% of US cases are KP and US costs are the
  highest, so the pooled KP − VP cost difference is larger than every within-country
  difference). The Costs page therefore estimates the difference in mean cost per patient and
  in the responder rate, KP − VP, at equal age, sex, etiology, levels treated and country, by
  **net-benefit regression** (Hoch, Briggs & Willan 2002): one linear model of cost and one
  of response (linear probability) on KP and those covariates, fitted once; the incremental
  net benefit at a willingness to pay λ per additional responder is INB(λ) = λ·Δresponse −
  Δcost with variance λ²Var(Δresponse) − 2λCov + Var(Δcost), exactly the KP coefficient of a
  regression of each patient's net benefit on the same design. Standard errors are
  cluster-robust by facility (sandwich, HC1 factor, t with clusters − 1 df). The
  **cost-effectiveness acceptability curve** (Fenwick, Claxton & Sculpher 2001) shows
  P(INB(λ) > 0) = F_t(INB/SE) over a range of λ. A point **ICER** (Δcost / Δresponse) is
  printed, with its Fieller interval, only when the CI of Δresponse excludes 0 and KP is not
  dominated or dominant; otherwise the page says why instead of printing a number.
- **Unadjusted ICER** (`analysis.costs.incremental_cost_per_responder`, for analysts; no
  longer on the Costs page because pooled means are confounded by country):
  (mean cost KP − mean cost VP) / (responder rate KP − responder rate VP) with a bootstrap
  that resamples patients within each procedure, keeping each patient's cost and response
  together; its interval is given only when the interval of the difference in response
  excludes 0, with the cost-effectiveness-plane quadrant shares (Briggs, O'Brien &
  Blackhouse 2002); tables built from it never print a point ICER that is undefined,
  unstable or negative.
- **Cost per responder, ranked** (`analysis.costs.ranked_cost_per_responder`, Costs page):
  per region (or country, or facility, following "Group by"), procedures pooled, mean cost ÷
  responder rate among patients with a known cost and responder status. Its 95% CI is
  Fieller's interval for a ratio of two correlated means (cost and the responder indicator
  of the same patients; Fieller 1954; Polsky, Glick, Willke & Schulman 1997). Units are
  ranked lowest first; the ranking is descriptive (case mix, procedure mix and prices
  differ). A unit is left unranked, with the reason, when suppressed (1–10 patients,
  responders or non-responders), without responders (undefined), or when its responder
  rate is not clearly above 0, so that Fieller's set is not a finite interval.
- **Adjusted cost ratio** KP/VP (gamma GLM with log link): shown on the VP vs KP page, in the
  table of effects, not on the Costs page.
"""),
        ("methods-benchmarks", "Literature benchmarks and pooled trials", """
Published figures shown beside a hospital's own rates were copied from the cited sources as
printed (no value is derived); they are context, not targets, because populations,
definitions (per patient or per level, imaging, follow-up) and designs differ.

Published two-arm trial tables are pooled on the log risk-ratio scale with a random-effects
model, the between-trial variance τ² estimated by the DerSimonian–Laird moment estimator
(DerSimonian & Laird 1986) or by restricted maximum likelihood (REML, the default of R's
metafor; Viechtbauer 2005), or with the Mantel–Haenszel fixed-effect estimate (Mantel &
Haenszel 1959) with the Greenland–Robins and Robins–Breslow–Greenland variances (Greenland &
Robins 1985; Robins, Breslow & Greenland 1986; Sato, Greenland & Robins 1989 for the risk
difference). With few trials the random-effects interval can use the Hartung–Knapp–Sidik–
Jonkman adjustment: a standard error from the weighted residuals and a t interval on k − 1
degrees of freedom (Hartung & Knapp 2001; Sidik & Jonkman 2002), which keeps its coverage
where the normal interval is too narrow (IntHout et al. 2014). Heterogeneity is reported as
I² (Higgins & Thompson 2002).
"""),
        ("methods-suppression", "Small-cell suppression", f"""
Aggregates of de-identified records can still single out a patient when a cell is small.
Therefore **any displayed count from 1 to {limit} is shown as "{small}"**, and **every rate,
percentage, mean or interval computed from a suppressed count is hidden** — in tables, chart
bars and points, hover text, CSV downloads and the downloadable HTML reports alike. Zero is
shown (it describes no one). The rule follows the cell-size suppression convention of the US
Centers for Medicare & Medicaid Services (no cell of 1 to 10).

- The threshold is configurable with the environment variable **`VA_SUPPRESSION_THRESHOLD`**
  (a whole number ≥ 1; the label becomes "<threshold + 1"). This installation uses
  **{limit}** (default {DEFAULT_THRESHOLD}).
- Counts of import batches (rows read, accepted, rejected) are counts of file rows, not of
  patients, and are not suppressed.
- **Secondary suppression (the documented rule).** A hidden count must not follow from the
  counts shown by subtraction. Three rules, applied where numbers become display text (the
  same helpers for pages, hovers, figure texts, legends, axis ranges, CSV downloads and
  reports):
  1. *Within a cell:* a row is hidden when its total minus its events (for example patients
     followed minus responders, cases minus events in a funnel plot) is 1 to {limit}.
  2. *Within a partition* (complementary suppression, as in the CMS cell-size policy): when
     one cell of a displayed partition is hidden (one procedure, one level of a Table 1
     variable, one kind of cost record), the next smallest cell is hidden too, shown as
     "≥{limit + 1}".
  3. *Totals of the selection* (rounding, as NHS Digital publishes counts): the number of
     matching records ("≈35 of ≈5,000 records match"), the Overview's procedures per
     procedure and the Costs page's records in the selection are shown rounded to the nearest
     5 ("{small}" when 1 to {limit}), because a viewer can difference them against any
     refinement of the selection (a facility alone, then with one procedure): the
     difference of a rounded total and a subgroup is then a range, never a count.
- **Quality monitoring and signals (one small-unit rule).** A unit with 1 to {limit} cases,
  events or non-events keeps its flag, listed with its counts hidden: the Quality table shows
  e.g. "Alarm high (counts hidden)" and the cards count it (saying how many flagged units are
  not drawn); the Signals page and alerts list its signal. Its n and events show as "{small}"
  (or "–"), and its rate, expected events, O/E, CI, z, p-value and CUSUM crossing date are
  hidden; it is not plotted and its CUSUM is not charted. The flag is withheld (listed as
  hidden, no signal) where it would give a count away: when the unit's number of cases is
  itself hidden (a unit is tested only from 10 cases), and on a crude funnel of proportions
  when a flag band over the possible hidden counts holds a single count (decided from n and
  the limits, never from the count). The funnel's limit curves span the volumes of the units
  drawn only. When the hidden units together have 1 to {limit} cases, events or non-events,
  the pooled target would give that small cell away (target × all cases − the events shown),
  so the hidden units are left out of the target, the case-mix recalibration and the limits
  (no flag, no signal), and the page says so; when every unit is hidden, no target is
  shown.
- Counts inside messages written by the analysis (a method that could not run) are masked
  at the configured threshold.
- **What remains.** Exact counts of the same subgroup in two nested selections (a table's n
  with and without a sex filter, or two adjacent date ranges) can still be subtracted; a
  complete defence would round every count. Keep sign-in and facility restriction on for
  data that warrant it, and take care when sharing several views of a very small selection.
"""),
        ("methods-data-handling", "Data handling", """
- **De-identified data only.** Records carry pseudonymous identifiers (record, patient,
  facility, operator); no names, medical record numbers, dates of birth, addresses or contact
  details are accepted.
- **PHI screen on import**, following the HIPAA Safe Harbor list of direct identifiers
  (45 CFR 164.514(b)(2)): a file with a column that names a direct identifier is refused whole
  (the message names the column, never its values); a value that looks like an e-mail address,
  a US social security number or a phone number rejects its row, and the value is never stored.
- **Ages above 89 are top-coded to 90** on import (Safe Harbor); each batch counts how many.
- **Dates** may have been shifted by the exporting system; event times are stored as days from
  the procedure, which a date shift does not change.
- **Validation.** Every row is checked against the data dictionary and the cross-field rules;
  rejected rows are quarantined with their reasons and can be exported for correction
  (`python -m data rejected BATCH --csv OUT`); identical rows are duplicates and a different
  row with a stored `record_id` is a conflict, never overwritten silently. The Data page
  lists every import batch and its rejection reasons.
- **Demonstration data** are synthetic, marked as such, and describe no real patient.
"""),
        ("methods-references", "References", _references()),
    ]


REFERENCES: tuple[str, ...] = (
    "Aalen OO, Johansen S. An empirical transition matrix for non-homogeneous Markov chains "
    "based on censored observations. Scand J Stat 1978;5:141-150.",
    "Ash AS, Fienberg SE, Louis TA, Normand SLT, Stukel TA, Utts J. Statistical issues in "
    "assessing hospital performance. COPSS-CMS White Paper, 2012.",
    "Austin PC. Balance diagnostics for comparing the distribution of baseline covariates "
    "between treatment groups in propensity-score matched samples. Stat Med 2009;28:3083-3107.",
    "Austin PC. An introduction to propensity score methods for reducing the effects of "
    "confounding in observational studies. Multivariate Behav Res 2011;46:399-424.",
    "Austin PC, Stuart EA. Moving towards best practice when using inverse probability of "
    "treatment weighting (IPTW) using the propensity score to estimate causal treatment effects "
    "in observational studies. Stat Med 2015;34:3661-3679.",
    "Barber J, Thompson S. Multiple regression of cost data: use of generalised linear models. "
    "J Health Serv Res Policy 2004;9:197-204.",
    "Bates D, Mächler M, Bolker B, Walker S. Fitting linear mixed-effects models using lme4. "
    "J Stat Softw 2015;67(1):1-48.",
    "Bauer DF. Constructing confidence sets using rank statistics. J Am Stat Assoc "
    "1972;67:687-690.",
    "Benjamini Y, Hochberg Y. Controlling the false discovery rate: a practical and powerful "
    "approach to multiple testing. J R Stat Soc B 1995;57:289-300.",
    "Bickel PJ, Götze F, van Zwet WR. Resampling fewer than n observations: gains, losses, and "
    "remedies for losses. Stat Sin 1997;7:1-31.",
    "Board of Governors of the Federal Reserve System. Statistical release G.5A, Foreign "
    "Exchange Rates (Annual), 1 February 2024. https://www.federalreserve.gov/releases/g5a/",
    "Breslow NE, Day NE. Statistical Methods in Cancer Research, vol. II. IARC 1987 (Byar's "
    "approximation).",
    "Briggs AH, O'Brien BJ, Blackhouse G. Thinking outside the box: recent advances in the "
    "analysis and presentation of uncertainty in cost-effectiveness studies. Annu Rev Public "
    "Health 2002;23:377-401.",
    "Brook D, Evans DA. An approach to the probability distribution of cusum run length. "
    "Biometrika 1972;59:539-549.",
    "Brown LD, Cai TT, DasGupta A. Interval estimation for a binomial proportion. Stat Sci "
    "2001;16:101.",
    "Buchbinder R et al. Percutaneous vertebroplasty for osteoporotic vertebral compression "
    "fracture. Cochrane Database Syst Rev, CD006349 (responder outcome: \"improvement in pain "
    "of 2.5 units or 30% or more from baseline\"). "
    "https://cochranelibrary.com/cdsr/doi/10.1002/14651858.CD006349.pub4/full",
    "Cameron AC, Miller DL. A practitioner's guide to cluster-robust inference. J Hum Resour "
    "2015;50:317-372.",
    "Centers for Medicare & Medicaid Services. Cell size suppression policy: no cell of 1 to 10 "
    "may be displayed.",
    "Clopper CJ, Pearson ES. The use of confidence or fiducial limits illustrated in the case of "
    "the binomial. Biometrika 1934;26:404-413.",
    "Cohen J. Statistical Power Analysis for the Behavioral Sciences, 2nd ed. Erlbaum 1988.",
    "Cole SR, Hernán MA. Adjusted survival curves with inverse probability weights. Comput "
    "Methods Programs Biomed 2004;75:45-49.",
    "Collett D. Modelling Survival Data in Medical Research, 3rd ed. CRC 2015, §12.2 (variance "
    "of the cumulative incidence; Marubini & Valsecchi 1995).",
    "Conover WJ. Practical Nonparametric Statistics, 3rd ed. Wiley 1999, §3.2.",
    "Cox DR. Regression models and life-tables. J R Stat Soc B 1972;34:187-220.",
    "DerSimonian R, Laird N. Meta-analysis in clinical trials. Control Clin Trials "
    "1986;7:177-188.",
    "Efron B. The efficiency of Cox's likelihood function for censored data. J Am Stat Assoc "
    "1977;72:557-565.",
    "Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall 1993.",
    "Fenwick E, Claxton K, Sculpher M. Representing uncertainty: the role of "
    "cost-effectiveness acceptability curves. Health Econ 2001;10:779-787.",
    "Field CA, Welsh AH. Bootstrapping clustered data. J R Stat Soc B 2007;69:369-390.",
    "Fieller EC. Some problems in interval estimation. J R Stat Soc B 1954;16:175-185.",
    "Firanescu CE et al. Vertebroplasty versus sham procedure for painful acute osteoporotic "
    "vertebral compression fractures (VERTOS IV). BMJ 2018;361:k1551 (clinically significant "
    "relief: VAS decrease of at least 1.5). https://www.bmj.com/content/361/bmj.k1551.full",
    "Fleiss JL, Levin B, Paik MC. Statistical Methods for Rates and Proportions, 3rd ed. Wiley "
    "2003, §4.2.",
    "Goldstein H, Spiegelhalter DJ. League tables and their limitations: statistical issues in "
    "comparisons of institutional performance. J R Stat Soc A 1996;159:385-443.",
    "Greenland S, Robins JM. Estimation of a common effect parameter from sparse follow-up data. "
    "Biometrics 1985;41:55-68.",
    "Greenwood M. The natural duration of cancer. Reports on Public Health and Medical Subjects "
    "33. London: HMSO, 1926.",
    "Groenwold RHH, White IR, Donders ART, et al. Missing covariate data in clinical research: "
    "when and when not to use the missing-indicator method for analysis. CMAJ "
    "2012;184:1265-1269.",
    "Hartung J, Knapp G. A refined method for the meta-analysis of controlled clinical trials "
    "with binary outcome. Stat Med 2001;20:3875-3889.",
    "Higgins JPT, Thompson SG. Quantifying heterogeneity in a meta-analysis. Stat Med "
    "2002;21:1539-1558.",
    "Hoch JS, Briggs AH, Willan AR. Something old, something new, something borrowed, "
    "something blue: a framework for the marriage of health econometrics and "
    "cost-effectiveness analysis. Health Econ 2002;11:415-430.",
    "Holford TR. The analysis of rates and of survivorship using log-linear models. "
    "Biometrics 1980;36:299-305.",
    "Hodges JL, Lehmann EL. Estimates of location based on rank tests. Ann Math Stat "
    "1963;34:598-611.",
    "Hollander M, Wolfe DA. Nonparametric Statistical Methods, 2nd ed. Wiley 1999, §4.3.",
    "Holm S. A simple sequentially rejective multiple test procedure. Scand J Stat "
    "1979;6:65-70.",
    "IntHout J, Ioannidis JPA, Borm GF. The Hartung-Knapp-Sidik-Jonkman method for random "
    "effects meta-analysis is straightforward and considerably outperforms the standard "
    "DerSimonian-Laird method. BMC Med Res Methodol 2014;14:25.",
    "Jones HE, Ohlssen DI, Spiegelhalter DJ. J Clin Epidemiol 2008;61:232.",
    "Kalbfleisch JD, Prentice RL. The Statistical Analysis of Failure Time Data, 2nd ed. Wiley "
    "2002 (log(-log) confidence intervals).",
    "Kaplan EL, Meier P. Nonparametric estimation from incomplete observations. J Am Stat Assoc "
    "1958;53:457-481.",
    "Katz D, Baptista J, Azen SP, Pike MC. Obtaining confidence intervals for the risk ratio in "
    "cohort studies. Biometrics 1978;34:469-474.",
    "Kish L. Survey Sampling. Wiley 1965.",
    "Klazen CAH et al. Vertebroplasty versus conservative treatment in acute osteoporotic "
    "vertebral compression fractures (VERTOS II). Lancet 2010;376:1085-1092 (PMID 20701962; "
    "clinically significant relief: VAS decrease of at least 3 from baseline).",
    "Krumholz HM et al. An administrative claims model suitable for profiling hospital "
    "performance based on 30-day mortality rates among patients with an acute myocardial "
    "infarction. Circulation 2006;113:1683-1692.",
    "Laird NM, Ware JH. Random-effects models for longitudinal data. Biometrics "
    "1982;38:963-974.",
    "Laird N, Olivier D. Covariance analysis of censored survival data using log-linear "
    "analysis techniques. J Am Stat Assoc 1981;76:231-240.",
    "Laney DB. Improved control charts for attributes. Quality Engineering 2002;14:531.",
    "Li F, Morgan KL, Zaslavsky AM. Balancing covariates via propensity score weighting. J Am "
    "Stat Assoc 2018;113:390-400.",
    "Liang KY, Zeger SL. Longitudinal data analysis using generalized linear models. "
    "Biometrika 1986;73:13-22.",
    "Lin DY, Wei LJ. The robust inference for the Cox proportional hazards model. J Am Stat "
    "Assoc 1989;84:1074-1078.",
    "Lovegrove J et al. Lancet 1997;350:1128 (VLAD).",
    "Lunceford JK, Davidian M. Stratification and weighting via the propensity score in "
    "estimation of causal treatment effects: a comparative study. Stat Med "
    "2004;23:2937-2960.",
    "MacKinnon JG, White H. Some heteroskedasticity-consistent covariance matrix estimators "
    "with improved finite sample properties. J Econom 1985;29:305-325.",
    "Mann HB, Whitney DR. On a test of whether one of two random variables is stochastically "
    "larger than the other. Ann Math Stat 1947;18:50-60.",
    "Manning WG, Mullahy J. Estimating log models: to transform or not to transform? J Health "
    "Econ 2001;20:461-494.",
    "Mantel N. Evaluation of survival data and two new rank order statistics arising in its "
    "consideration. Cancer Chemother Rep 1966;50:163-170.",
    "Mantel N, Haenszel W. Statistical aspects of the analysis of data from retrospective "
    "studies of disease. J Natl Cancer Inst 1959;22:719-748.",
    "Marshall EC, Spiegelhalter DJ. Reliability of league tables of in vitro fertilisation "
    "clinics: retrospective analysis of live birth rates. BMJ 1998;316:1701-1704.",
    "McNemar Q. Note on the sampling error of the difference between correlated proportions or "
    "percentages. Psychometrika 1947;12:153-157.",
    "Monahan JF. Fast computation of the Hodges-Lehmann location estimator. ACM Trans Math "
    "Softw 1984;10:265-270.",
    "Newcombe RG. Two-sided confidence intervals for the single proportion: comparison of seven "
    "methods. Stat Med 1998;17:857-872 (1998a).",
    "Newcombe RG. Interval estimation for the difference between independent proportions: "
    "comparison of eleven methods. Stat Med 1998;17:873-890 (1998b).",
    "Polsky D, Glick HA, Willke R, Schulman K. Confidence intervals for cost-effectiveness "
    "ratios: a comparison of four methods. Health Econ 1997;6:243-252.",
    "Reynolds MR, Stoumbos ZG. J Qual Technol 1999;31:87.",
    "Robins J, Breslow N, Greenland S. Estimators of the Mantel-Haenszel variance consistent in "
    "both sparse data and large-strata limiting models. Biometrics 1986;42:311-323.",
    "Rosenbaum PR, Rubin DB. The central role of the propensity score in observational studies "
    "for causal effects. Biometrika 1983;70:41-55.",
    "Ruxton GD. Behav Ecol 2006;17:688.",
    "Sato T, Greenland S, Robins JM. On the variance estimator for the Mantel-Haenszel risk "
    "difference. Biometrics 1989;45:1323-1324.",
    "Schuirmann DJ. A comparison of the two one-sided tests procedure and the power approach "
    "for assessing the equivalence of average bioavailability. J Pharmacokinet Biopharm "
    "1987;15:657-680.",
    "Shemilt I, Thomas J, Morciano M. A web-based tool for adjusting costs to a "
    "specific target currency and price year. Evid Policy 2010;6:51-59.",
    "Sidik K, Jonkman JN. A simple confidence interval for meta-analysis. Stat Med "
    "2002;21:3153-3159.",
    "Sjölander A. Regression standardization with the R package stdReg. Eur J Epidemiol "
    "2016;31:563-574.",
    "Snowden JM, Rose S, Mortimer KM. Implementation of G-computation on a simulated data set: "
    "demonstration of a causal inference technique. Am J Epidemiol 2011;173:731-738.",
    "Spiegelhalter DJ. Funnel plots for comparing institutional performance. Stat Med "
    "2005;24:1185.",
    "Spiegelhalter DJ. Handling over-dispersion of performance indicators. Qual Saf Health Care "
    "2005;14:347.",
    "Spiegelhalter DJ et al. Statistical methods for healthcare regulation. J R Stat Soc A "
    "2012;175:1.",
    "Stefanski LA, Boos DD. The calculus of M-estimation. Am Stat 2002;56:29-38.",
    "Steiner SH, Cook RJ, Farewell VT, Treasure T. Monitoring surgical performance using "
    "risk-adjusted cumulative sum charts. Biostatistics 2000;1:441.",
    "Stürmer T, Rothman KJ, Avorn J, Glynn RJ. Treatment effects in the presence of unmeasured "
    "confounding: dealing with observations in the tails of the propensity score distribution. "
    "Am J Epidemiol 2010;172:843-854.",
    "Thompson SG, Barber JA. How should cost data in pragmatic randomised trials be analysed? "
    "BMJ 2000;320:1197-1200.",
    "Ulm K. Am J Epidemiol 1990;131:373.",
    "US Department of Health and Human Services. HIPAA Privacy Rule, de-identification by the "
    "Safe Harbor method, 45 CFR 164.514(b)(2).",
    "Vandenbroucke JP, von Elm E, Altman DG, et al. Strengthening the Reporting of "
    "Observational Studies in Epidemiology (STROBE): explanation and elaboration. PLoS Med "
    "2007;4:e297.",
    "Vickers AJ, Altman DG. Analysing controlled trials with baseline and follow up "
    "measurements. BMJ 2001;323:1123-1124.",
    "Viechtbauer W. Bias and efficiency of meta-analytic variance estimators in the "
    "random-effects model. J Educ Behav Stat 2005;30:261-293.",
    "Welch BL. The generalization of \"Student's\" problem when several different population "
    "variances are involved. Biometrika 1947;34:28-35.",
    "Willan AR, O'Brien BJ. Confidence intervals for cost-effectiveness ratios: an "
    "application of Fieller's theorem. Health Econ 1996;5:297-305.",
    "Wilson EB. Probable inference, the law of succession, and statistical inference. J Am Stat "
    "Assoc 1927;22:209-212.",
    "Woolf B. On estimating the relation between blood group and disease. Ann Hum Genet "
    "1955;19:251-253.",
    "World Bank. World Development Indicators, PA.NUS.PPP (PPP conversion factor, GDP), WDI "
    "update of 8 April 2026. https://data.worldbank.org/indicator/PA.NUS.PPP",
    "Xu S, Ross C, Raebel MA, et al. Use of stabilized inverse propensity scores as weights to "
    "directly estimate relative risk and its confidence intervals. Value Health "
    "2010;13:273-277.",
    "Yang D, Dalton JE. A unified approach to measuring the effect size between two groups using "
    "SAS. SAS Global Forum 2012, paper 335.",
    "Yoshida K, Bartel A. tableone: Create 'Table 1' to describe baseline characteristics with "
    "or without propensity score weights. R package version 0.13.2, 2022. "
    "https://CRAN.R-project.org/package=tableone",
    "Zeileis A, Köll S, Graham N. Various versatile variances: an object-oriented implementation "
    "of clustered covariances in R. J Stat Softw 2020;95(1):1-36.",
    "Zou G. A modified Poisson regression approach to prospective studies with binary data. Am "
    "J Epidemiol 2004;159:702-706.",
)


def _references() -> str:
    def linked(text: str) -> str:
        return re.sub(r"(https?://\S+)", r"<\1>", text)

    return "\n".join(f"{i}. {linked(ref)}" for i, ref in enumerate(REFERENCES, start=1))


def methods_markdown() -> str:
    """The Methods text as one Markdown document (the content of ``docs/methods.md``)."""
    parts = ["# Methods", "",
             "Generated from `dashboard/pages/methods.py` (the dashboard's Methods page); do not "
             "edit by hand. The suppression threshold shown is the default.", "", "## Contents", ""]
    sections = methods_sections(DEFAULT_THRESHOLD)
    parts += [f"{i}. [{title}](#{anchor})" for i, (anchor, title, _) in enumerate(sections, 1)]
    for anchor, title, body in sections:
        parts += ["", f'<a id="{anchor}"></a>', "", f"## {title}", "", body.strip()]
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------------------------
# Page and report
# --------------------------------------------------------------------------------------------


_INLINE = re.compile(r"(`[^`]+`|\*\*[^*]+\*\*|\*[^*\s][^*]*\*|\[[^\]]+\]\([^)]+\))")


def _inline(text: str) -> list:
    """Inline Markdown (code, bold, italic, links) of a table cell as Dash components."""
    parts: list = []
    for token in _INLINE.split(text):
        if not token:
            continue
        if token.startswith("`"):
            parts.append(html.Code(token[1:-1]))
        elif token.startswith("**"):
            parts.append(html.Strong(token[2:-2]))
        elif token.startswith("*"):
            parts.append(html.Em(token[1:-1]))
        elif token.startswith("["):
            label, href = re.match(r"\[([^\]]+)\]\(([^)]+)\)", token).groups()
            external = {"target": "_blank", "rel": "noopener noreferrer"} \
                if href.startswith("http") else {}
            parts.append(html.A(label, href=href, **external))
        else:
            parts.append(token)
    return parts


def _html_table(block: str) -> dbc.Table:
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in block.strip().splitlines()]
    return dbc.Table([
        html.Thead(html.Tr([html.Th(_inline(cell), scope="col") for cell in rows[0]])),
        html.Tbody([html.Tr([html.Td(_inline(cell)) for cell in row]) for row in rows[2:]]),
    ], bordered=True, striped=True, size="sm", className="small align-middle")


def _render(body: str) -> list:
    """A section body as components: ### headings, Markdown paragraphs and lists, tables."""
    out: list = []
    chunks = re.split(r"^### (.+)$", body.strip(), flags=re.MULTILINE)
    for index, chunk in enumerate(chunks):
        if index % 2:
            out.append(html.H3(chunk.strip(), className="h6 fw-semibold mt-3"))
            continue
        text: list[str] = []
        for block in re.split(r"\n\s*\n", chunk.strip()):
            if block.lstrip().startswith("|"):
                if text:
                    out.append(dcc.Markdown("\n\n".join(text)))
                    text = []
                out.append(_html_table(block))
            elif block.strip():
                text.append(block)
        if text:
            out.append(dcc.Markdown("\n\n".join(text)))
    return out


def _section(anchor: str, title: str, body: str) -> html.Section:
    if anchor == "methods-references":
        content = [html.Ol([html.Li(_inline(re.sub(r"(https?://\S+)", r"[\1](\1)", ref)))
                            for ref in REFERENCES], className="small", id="methods-reference-list")]
    else:
        content = _render(body)
    return html.Section([html.H2(title, className="h4 mt-4 pt-2 border-top"), *content],
                        id=anchor, **{"aria-label": title})


def layout(**_query) -> html.Div:
    sections = methods_sections()
    contents = html.Nav([
        html.H2("Contents", className="h6"),
        html.Ol([html.Li(html.A(title, href=f"#{anchor}")) for anchor, title, _ in sections],
                className="small ps-3 mb-0"),
    ], id="methods-contents", className="sticky-top bg-white py-2", style={"top": "0.5rem"},
        **{"aria-label": "Contents of the methods page"})
    return html.Div([
        page_header("Methods", "How each number in the dashboard is defined and computed, with "
                    "its sources: for quality teams, and detailed enough for a biostatistician "
                    "to check."),
        dbc.Row([
            dbc.Col(contents, lg=3, className="d-none d-lg-block"),
            dbc.Col([
                html.Details([html.Summary("Contents"), contents.children[1]],
                             className="d-lg-none mb-2"),
                *[_section(*section) for section in sections],
            ], lg=9, id="methods-body", style={"maxWidth": "56rem"}),
        ]),
    ])


def _plain(markdown: str) -> str:
    """Markdown to plain report text: no emphasis marks or link syntax; bullets as •."""
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", markdown)
    text = re.sub(r"<(https?://[^>]+)>", r"\1", text)
    text = text.replace("**", "").replace("`", "")
    text = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?!\w)", r"\1", text)
    lines = [re.sub(r"^\s*- ", "• ", line) for line in text.splitlines()]
    return " ".join(line.strip() for line in lines if line.strip())


def _table(block: str) -> pd.DataFrame:
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in block.strip().splitlines()]
    header, body = rows[0], rows[2:]
    return pd.DataFrame(body, columns=header).map(_plain)


def report_sections(limit: int | None = None) -> list[ReportSection]:
    """The Methods text as report sections: one per section and ### subsection; Markdown
    tables become tables, the rest plain text."""
    out = []
    for _anchor, title, body in methods_sections(limit):
        chunks = re.split(r"^### (.+)$", body.strip(), flags=re.MULTILINE)
        named = [(title, chunks[0])] + [(f"{title}: {chunks[i]}", chunks[i + 1])
                                        for i in range(1, len(chunks), 2)]
        for name, chunk in named:
            blocks = [b for b in re.split(r"\n\s*\n", chunk.strip()) if b.strip()]
            tables = [b for b in blocks if b.lstrip().startswith("|")]
            texts = [b for b in blocks if not b.lstrip().startswith("|")]
            if title == "References":
                out.append(ReportSection(name, table=pd.DataFrame(
                    {"Reference": [_plain(ref) for ref in REFERENCES]})))
                continue
            if not texts and not tables:
                continue  # a section whose text is all in its subsections
            out.append(ReportSection(name, " ".join(_plain(t) for t in texts),
                                     table=_table(tables[0]) if tables else None))
            for extra in tables[1:]:
                out.append(ReportSection(f"{name} (table)", table=_table(extra)))
    return out


@register_report("/methods", "Methods")
def methods_report(_selection: RecordFilter, _settings: dict | None = None) -> list[ReportSection]:
    return report_sections()
