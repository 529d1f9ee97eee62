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
0 cannot improve and counts as a non-responder. Comparisons allow a rounding tolerance of
10⁻⁹, so that 7.3 → 5.3 counts as a 2-point reduction.

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
comparable. Every table gives the denominator `n`, the events, and the records left out as
missing (status unknown) or censored (follow-up too short).

| Outcome | Event | Denominator and rules |
|---|---|---|
| {labels["cement_leakage"]} | any leakage on post-procedure imaging (`cement_leakage`) | records with the field recorded |
| {labels["leakage_symptomatic"]} | leakage that caused symptoms | **all** records whose status is known: a record without leakage counts as a non-event; a leakage with unknown symptom status is missing, not asymptomatic |
| {labels["pulmonary_embolism"]} | pulmonary cement embolism, including incidental findings | records with the field recorded |
| {labels["embolism_symptomatic"]} | symptomatic cement embolism | as for symptomatic leakage |
| {labels["adjacent_fracture_12m"]} | new vertebral fracture diagnosed within {FRACTURE_HORIZON_DAYS} days | non-event: no new fracture and follow-up ≥ {FRACTURE_HORIZON_DAYS} days, or a first new fracture after day {FRACTURE_HORIZON_DAYS}; no fracture and shorter follow-up (including earlier deaths) is censored; a fracture without its day is missing |
| {labels["death_30d"]} | death within {DEATH_HORIZON_DAYS} days | non-event: follow-up ≥ {DEATH_HORIZON_DAYS} days or a later death; shorter follow-up without a death is censored |
| {labels["infection"]}; {labels["new_neurologic_deficit"].lower()} | the recorded field | records with the field recorded |

### New fracture as a time-to-event outcome

The fixed-horizon proportion above is simple but drops censored patients and ignores death.
Time to a new fracture is therefore also analysed as a time-to-event outcome: Kaplan–Meier
estimates (deaths censored), and the **Aalen–Johansen cumulative incidence with death as a
competing risk** (Aalen & Johansen 1978). In this elderly population many patients die before
a new fracture; 1 − Kaplan–Meier then overstates the fracture risk, so the cumulative
incidence is the estimate of risk to read. Hazard ratios come from a cause-specific Cox model
(deaths censored).
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
| Cumulative incidence | Aalen–Johansen, delta-method variance, log(−log) interval | Aalen & Johansen 1978; Collett 2015 |
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
| Binary (responder, leakage, embolism, new fracture by 12 months) | logistic outcome model, then **standardised risks by g-computation**: every patient's risk predicted as if treated with KP and with VP, averaged; adjusted risk difference and risk ratio with a nonparametric bootstrap interval of the whole pipeline (m-out-of-n bootstrap above {BOOTSTRAP_MAX_N:,} records). The responder model also adjusts for baseline pain. | Snowden et al. 2011; Efron & Tibshirani 1993; Bickel et al. 1997 |
| Binary, second estimate | **propensity score** (logistic model of KP on the covariates) and **inverse probability of treatment weighting** with **stabilised ATE weights** (P(KP)/e for KP, (1 − P(KP))/(1 − e) for VP); weighted risk difference with a sandwich (HC0) standard error, which ignores the estimation of the score and is conservative for the ATE | Rosenbaum & Rubin 1983; Austin 2011; Austin & Stuart 2015; Xu et al. 2010 |
| Pain at a visit | **ANCOVA**: pain at the visit ~ KP + baseline pain + covariates (OLS, t-based interval) | Vickers & Altman 2001 |
| Pain over all visits | linear mixed model, random intercept per patient, REML; KP − VP contrast at each visit and a joint test of the procedure × visit interaction; visits with fewer than {MIN_VISIT_OBSERVATIONS} scores in a procedure are left out | Laird & Ware 1982 |
| Procedure duration | OLS with HC3 robust standard errors (difference in minutes) | MacKinnon & White 1985 |
| Cost | **gamma GLM with log link**: exp(coefficient) is the ratio of mean costs, t-based inference | Manning & Mullahy 2001; Barber & Thompson 2004 |
| Time to new fracture | **Cox proportional hazards with Efron ties**, deaths censored (cause-specific hazard ratio); Lin–Wei robust standard errors when clustered | Cox 1972; Efron 1977; Lin & Wei 1989 |

**Balance.** The weighting is checked with standardised mean differences before and after
weighting; a covariate is balanced when **|SMD| < {SMD_THRESHOLD:g}** (Austin 2009), with weighted
variances as in Austin & Stuart 2015 and a multivariate SMD for categorical covariates with
more than two levels (Yang & Dalton 2012). The effective sample size is (Σw)²/Σw² (Kish 1965).
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

Each facility's (or operator's) rate is plotted against its number of cases, around a target
θ₀: the pooled rate of the selected records or an external benchmark (the page says which).
Control limits are **exact binomial limits with interpolation** (Spiegelhalter 2005, Stat Med,
Appendix A.1.1) at **{alert}** (p = 0.025 and 0.975, "alert") and **{alarm}** (p = 0.001 and
0.999, "alarm"). Units with fewer than 10 cases are shown but not tested. Units are not ranked
in a league table. Outcomes monitored: cement leakage, cement embolism, a new fracture during
follow-up (as recorded) and pain non-response (not a responder by the default definition).

**Risk adjustment.** A logistic case-mix model gives each patient a predicted risk; a unit's
expected count is E = Σ p̂ and the plotted point is O/E × θ₀ against exact Poisson limits
(Appendix A.1.2).

**Overdispersion.** The z-scores are winsorised (10% at each end) and φ̂ = mean(z²) is tested
against χ² with I − 1 degrees of freedom. Only when φ̂ > 1 and the test is significant are the
limits widened, multiplicatively (√φ̂) or with an additive random effect τ² (Spiegelhalter
2005, QSHC; Spiegelhalter et al. 2012). The p-values of the flags are adjusted with
Benjamini–Hochberg.

### Risk-adjusted CUSUM

Cases are taken in procedure order. Each adds the log-likelihood-ratio weight
W = y·log(R_A) − log(1 − p + R_A·p), where p is the case's predicted risk and y the outcome
(Steiner, Cook, Farewell & Treasure 2000). The upper chart (R_A = 2, a doubling of the odds)
signals deterioration, the lower chart (R_A = 0.5) improvement; a chart restarts at 0 after a
signal. The decision limit h is chosen from the unit's own case mix so that the **in-control
average run length** (ARL: cases to a false signal when the unit performs as expected)
reaches max(1,000, 5 × the unit's cases). The ARL is computed with the **Markov-chain
approximation** of Brook & Evans (1972, Biometrika 59:539), as Steiner et al. did: the chart
is discretised on 1,000 grid points of [0, h], the transitions follow the distribution of W
when a case's risk is drawn from the unit's cases and its outcome from that risk, and the ARL
is the first entry of (I − R)⁻¹1. This is the quantity a simulation of the in-control run
length estimates, without Monte-Carlo error. The VLAD curve (cumulative expected minus
observed events; Lovegrove et al. 1997) is a display only; the unadjusted Bernoulli CUSUM is
the case of a constant p (Reynolds & Stoumbos 1999).

### Observed / expected ratios and control charts

O/E ratios use **exact Poisson limits** (Ulm 1990) below 10 observed events and Byar's
approximation (Breslow & Day 1987) from 10, as in PHE/Fingertips practice. Rates over time use
p-charts with 3σ limits; Laney's p′ chart (Laney 2002) widens them when large subgroups are
overdispersed.
"""),
        ("methods-costs", "Costs", """
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
- **Incremental cost per additional responder (ICER)** = (mean cost KP − mean cost VP) /
  (responder rate KP − responder rate VP). Its interval comes from a bootstrap that resamples
  patients within each procedure, keeping each patient's cost and response together; it is
  shown only when the interval of the difference in response excludes 0 (otherwise the ratio
  has no finite variance), and the share of replicates in each quadrant of the
  cost-effectiveness plane is always shown (Briggs, O'Brien & Blackhouse 2002).
"""),
        ("methods-benchmarks", "Literature benchmarks and pooled trials", """
Published figures shown beside a hospital's own rates were copied from the cited sources as
printed (no value is derived); they are context, not targets, because populations,
definitions (per patient or per level, imaging, follow-up) and designs differ.

Published two-arm trial tables are pooled on the log risk-ratio scale with the
DerSimonian–Laird random-effects model (DerSimonian & Laird 1986) or the Mantel–Haenszel
fixed-effect estimate (Mantel & Haenszel 1959) with the Greenland–Robins and
Robins–Breslow–Greenland variances (Greenland & Robins 1985; Robins, Breslow & Greenland 1986;
Sato, Greenland & Robins 1989 for the risk difference). Heterogeneity is reported as I²
(Higgins & Thompson 2002).
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
- **Quality monitoring.** A unit with 1 to {limit} cases, events or non-events is hidden: not
  plotted, not tested on the page, its flag not counted on the cards, and listed as hidden
  in the table. The funnel's limit curves span the volumes of the units shown only. When the
  hidden units together have 1 to {limit} cases, events or non-events, the pooled target
  would give that small cell away (target × all cases − the events shown), so the hidden
  units are left out of the target, the case-mix recalibration and the limits, and the page
  says so; when every unit is hidden, no target is shown.
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
    "Austin PC. Balance diagnostics for comparing the distribution of baseline covariates "
    "between treatment groups in propensity-score matched samples. Stat Med 2009;28:3083-3107.",
    "Austin PC. An introduction to propensity score methods for reducing the effects of "
    "confounding in observational studies. Multivariate Behav Res 2011;46:399-424.",
    "Austin PC, Stuart EA. Moving towards best practice when using inverse probability of "
    "treatment weighting (IPTW) using the propensity score to estimate causal treatment effects "
    "in observational studies. Stat Med 2015;34:3661-3679.",
    "Barber J, Thompson S. Multiple regression of cost data: use of generalised linear models. "
    "J Health Serv Res Policy 2004;9:197-204.",
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
    "Brown LD, Cai TT, DasGupta A. Interval estimation for a binomial proportion. Stat Sci "
    "2001;16:101.",
    "Buchbinder R et al. Percutaneous vertebroplasty for osteoporotic vertebral compression "
    "fracture. Cochrane Database Syst Rev, CD006349 (responder outcome: \"improvement in pain "
    "of 2.5 units or 30% or more from baseline\"). "
    "https://cochranelibrary.com/cdsr/doi/10.1002/14651858.CD006349.pub4/full",
    "Centers for Medicare & Medicaid Services. Cell size suppression policy: no cell of 1 to 10 "
    "may be displayed.",
    "Clopper CJ, Pearson ES. The use of confidence or fiducial limits illustrated in the case of "
    "the binomial. Biometrika 1934;26:404-413.",
    "Cohen J. Statistical Power Analysis for the Behavioral Sciences, 2nd ed. Erlbaum 1988.",
    "Collett D. Modelling Survival Data in Medical Research, 3rd ed. CRC 2015, §12.2 (variance "
    "of the cumulative incidence; Marubini & Valsecchi 1995).",
    "Conover WJ. Practical Nonparametric Statistics, 3rd ed. Wiley 1999, §3.2.",
    "Cox DR. Regression models and life-tables. J R Stat Soc B 1972;34:187-220.",
    "DerSimonian R, Laird N. Meta-analysis in clinical trials. Control Clin Trials "
    "1986;7:177-188.",
    "Efron B. The efficiency of Cox's likelihood function for censored data. J Am Stat Assoc "
    "1977;72:557-565.",
    "Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall 1993.",
    "Firanescu CE et al. Vertebroplasty versus sham procedure for painful acute osteoporotic "
    "vertebral compression fractures (VERTOS IV). BMJ 2018;361:k1551 (clinically significant "
    "relief: VAS decrease of at least 1.5). https://www.bmj.com/content/361/bmj.k1551.full",
    "Fleiss JL, Levin B, Paik MC. Statistical Methods for Rates and Proportions, 3rd ed. Wiley "
    "2003, §4.2.",
    "Greenland S, Robins JM. Estimation of a common effect parameter from sparse follow-up data. "
    "Biometrics 1985;41:55-68.",
    "Greenwood M. The natural duration of cancer. Reports on Public Health and Medical Subjects "
    "33. London: HMSO, 1926.",
    "Groenwold RHH, White IR, Donders ART, et al. Missing covariate data in clinical research: "
    "when and when not to use the missing-indicator method for analysis. CMAJ "
    "2012;184:1265-1269.",
    "Higgins JPT, Thompson SG. Quantifying heterogeneity in a meta-analysis. Stat Med "
    "2002;21:1539-1558.",
    "Hodges JL, Lehmann EL. Estimates of location based on rank tests. Ann Math Stat "
    "1963;34:598-611.",
    "Hollander M, Wolfe DA. Nonparametric Statistical Methods, 2nd ed. Wiley 1999, §4.3.",
    "Holm S. A simple sequentially rejective multiple test procedure. Scand J Stat "
    "1979;6:65-70.",
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
    "Laird NM, Ware JH. Random-effects models for longitudinal data. Biometrics "
    "1982;38:963-974.",
    "Laney DB. Improved control charts for attributes. Quality Engineering 2002;14:531.",
    "Li F, Morgan KL, Zaslavsky AM. Balancing covariates via propensity score weighting. J Am "
    "Stat Assoc 2018;113:390-400.",
    "Lin DY, Wei LJ. The robust inference for the Cox proportional hazards model. J Am Stat "
    "Assoc 1989;84:1074-1078.",
    "Lovegrove J et al. Lancet 1997;350:1128 (VLAD).",
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
    "McNemar Q. Note on the sampling error of the difference between correlated proportions or "
    "percentages. Psychometrika 1947;12:153-157.",
    "Monahan JF. Fast computation of the Hodges-Lehmann location estimator. ACM Trans Math "
    "Softw 1984;10:265-270.",
    "Newcombe RG. Two-sided confidence intervals for the single proportion: comparison of seven "
    "methods. Stat Med 1998;17:857-872 (1998a).",
    "Newcombe RG. Interval estimation for the difference between independent proportions: "
    "comparison of eleven methods. Stat Med 1998;17:873-890 (1998b).",
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
    "Snowden JM, Rose S, Mortimer KM. Implementation of G-computation on a simulated data set: "
    "demonstration of a causal inference technique. Am J Epidemiol 2011;173:731-738.",
    "Spiegelhalter DJ. Funnel plots for comparing institutional performance. Stat Med "
    "2005;24:1185.",
    "Spiegelhalter DJ. Handling over-dispersion of performance indicators. Qual Saf Health Care "
    "2005;14:347.",
    "Spiegelhalter DJ et al. Statistical methods for healthcare regulation. J R Stat Soc A "
    "2012;175:1.",
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
    "Vickers AJ, Altman DG. Analysing controlled trials with baseline and follow up "
    "measurements. BMJ 2001;323:1123-1124.",
    "Welch BL. The generalization of \"Student's\" problem when several different population "
    "variances are involved. Biometrika 1947;34:28-35.",
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
def methods_report(_selection: RecordFilter) -> list[ReportSection]:
    return report_sections()
