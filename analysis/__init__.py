"""Statistics for vertebroplasty (VP) and kyphoplasty (KP) outcomes: pure functions, no Dash.

Convention everywhere: kyphoplasty is compared with vertebroplasty (the reference group), so
differences are KP − VP and ratios KP / VP. Functions take plain values or a records DataFrame
with data-dictionary columns, and return a frozen result object (named fields, ``.to_frame()``)
or a tidy DataFrame.
"""

from analysis.benchmarks import benchmark_for, literature_benchmarks
from analysis.descriptive import procedure_counts
from analysis.errors import AnalysisError, InsufficientDataError
from analysis.means import EquivalenceTest, MeanComparison, compare_means, equivalence_means
from analysis.meta import PooledEstimate, pool_studies
from analysis.multiplicity import adjust_pvalues
from analysis.outcomes import (
    COMPLICATION_OUTCOMES,
    ResponderDefinition,
    complication_rates,
    odi_change,
    opioid_use,
    outcome_summary,
    pain_trajectory,
    resource_summary,
    responder_rates,
    setting_mix,
)
from analysis.power import (
    minimum_detectable_difference,
    minimum_detectable_mean_difference,
    sample_size_means,
    sample_size_proportions,
)
from analysis.proportions import (
    KProportionsTest,
    ProportionComparison,
    compare_k_proportions,
    compare_proportions,
    proportion_ci,
)
from analysis.quality import (
    OUTCOMES,
    CusumResult,
    CusumThreshold,
    FunnelResult,
    OERatio,
    Overdispersion,
    RiskModelResult,
    alternative_risk,
    caterpillar,
    cusum,
    cusum_chart,
    cusum_threshold,
    estimate_overdispersion,
    funnel_data,
    funnel_limits,
    funnel_limits_oe,
    oe_ratio,
    outcome_values,
    p_chart,
    risk_model,
)
from analysis.survival import (
    LogrankResult,
    cox_model,
    cumulative_incidence,
    kaplan_meier,
    logrank_test,
)

__all__ = [
    "COMPLICATION_OUTCOMES",
    "ResponderDefinition",
    "benchmark_for",
    "complication_rates",
    "literature_benchmarks",
    "odi_change",
    "opioid_use",
    "outcome_summary",
    "pain_trajectory",
    "resource_summary",
    "responder_rates",
    "setting_mix",
    "OUTCOMES",
    "AnalysisError",
    "CusumResult",
    "CusumThreshold",
    "EquivalenceTest",
    "FunnelResult",
    "InsufficientDataError",
    "KProportionsTest",
    "LogrankResult",
    "MeanComparison",
    "OERatio",
    "Overdispersion",
    "PooledEstimate",
    "ProportionComparison",
    "RiskModelResult",
    "adjust_pvalues",
    "alternative_risk",
    "caterpillar",
    "compare_k_proportions",
    "compare_means",
    "compare_proportions",
    "cox_model",
    "cumulative_incidence",
    "cusum",
    "cusum_chart",
    "cusum_threshold",
    "equivalence_means",
    "estimate_overdispersion",
    "funnel_data",
    "funnel_limits",
    "funnel_limits_oe",
    "kaplan_meier",
    "logrank_test",
    "minimum_detectable_difference",
    "minimum_detectable_mean_difference",
    "oe_ratio",
    "outcome_values",
    "p_chart",
    "pool_studies",
    "procedure_counts",
    "proportion_ci",
    "risk_model",
    "sample_size_means",
    "sample_size_proportions",
]
