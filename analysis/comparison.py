"""Kyphoplasty compared with vertebroplasty: the outcome table, fracture survival, pain over time.

Kyphoplasty (KP) is compared with vertebroplasty (VP, the reference) throughout: differences
are KP − VP, ratios KP / VP.

* :func:`compare_procedures` — one row per outcome with the unadjusted and the adjusted
  effect, their intervals and p-values, Benjamini–Hochberg p-values over the outcome family
  and a note whenever a method was skipped.
* :func:`fracture_survival` — Kaplan–Meier curves with the number-at-risk table, log-rank
  test, adjusted Cox model and the Aalen–Johansen cumulative incidence with death as a
  competing risk.
* :func:`pain_mixed_model` — linear mixed model of pain over the follow-up visits with KP − VP
  contrasts per visit and the procedure × visit interaction test.
* :func:`minimum_detectable_differences` — the smallest differences the current numbers of
  patients can detect.

Confounding adjustment (propensity scores, IPTW, g-computation, balance) lives in
:mod:`analysis.adjustment`; Table 1 in :mod:`analysis.table_one`.

References
----------
.. [1] Newcombe RG. Interval estimation for the difference between independent proportions:
   comparison of eleven methods. Stat Med 1998;17:873-890.
.. [2] Vickers AJ, Altman DG. Analysing controlled trials with baseline and follow up
   measurements. BMJ 2001;323:1123-1124 (ANCOVA).
.. [3] Snowden JM, Rose S, Mortimer KM. Implementation of G-computation on a simulated data
   set. Am J Epidemiol 2011;173:731-738.
.. [4] Austin PC, Stuart EA. Moving towards best practice when using IPTW. Stat Med
   2015;34:3661-3679.
.. [5] Manning WG, Mullahy J. Estimating log models: to transform or not to transform?
   J Health Econ 2001;20:461-494.
.. [6] Thompson SG, Barber JA. How should cost data in pragmatic randomised trials be
   analysed? BMJ 2000;320:1197-1200.
.. [7] Efron B. The efficiency of Cox's likelihood function for censored data. J Am Stat
   Assoc 1977;72:557-565.
.. [8] Aalen OO, Johansen S. An empirical transition matrix for non-homogeneous Markov chains
   based on censored observations. Scand J Stat 1978;5:141-150.
.. [9] Laird NM, Ware JH. Random-effects models for longitudinal data. Biometrics
   1982;38:963-974.
.. [10] Benjamini Y, Hochberg Y. Controlling the false discovery rate. J R Stat Soc B
   1995;57:289-300.
.. [11] MacKinnon JG, White H. Some heteroskedasticity-consistent covariance matrix estimators
   with improved finite sample properties. J Econom 1985;29:305-325 (HC3).
.. [12] Bickel PJ, Götze F, van Zwet WR. Resampling fewer than n observations. Stat Sin
   1997;7:1-31 (m-out-of-n bootstrap).
.. [13] Zou G. A modified Poisson regression approach to prospective studies with binary
   data. Am J Epidemiol 2004;159:702-706.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats as st
from numpy.typing import NDArray

from analysis._checks import check_level
from analysis._kernels import _fit_cox_efron, _fit_gamma_log, _fit_logistic, _fit_ols, _floats
from analysis._results import Result
from analysis.adjustment import (
    BOOTSTRAP_MAX_N,
    DEFAULT_COVARIATES,
    KP,
    VP,
    CovariateDesign,
    covariate_design,
    default_covariates,
    iptw_effect,
    treatment_indicator,
)
from analysis.adjustment.gcomputation import _gcomp, _standardise
from analysis.adjustment.propensity import _propensity
from analysis.cluster_variance import (
    cluster_bootstrap_mean_difference,
    cluster_codes,
    cluster_quantile,
    cluster_sums,
    cox_cluster_cov,
    cr1_factor,
    cr1_sandwich,
    gamma_log_cluster_cov,
    gcomp_cluster_se,
    ols_cluster_cov,
)
from analysis.costs import CostOptions, adjusted_cost_ratio, normalise_costs
from analysis.errors import AnalysisError, InsufficientDataError
from analysis.horizon import (
    HORIZON_OUTCOMES,
    cluster_jackknife_cumulative_incidence,
    compare_cumulative_incidence,
    fracture_competing_times,
    horizon_groups,
    horizon_time_event,
    iptw_cumulative_incidence,
)
from analysis.means import compare_means
from analysis.multiplicity import adjust_pvalues
from analysis.outcomes import COMPLICATION_OUTCOMES, ResponderDefinition
from analysis.outcomes import _complication_status as _outcome_status
from analysis.power import minimum_detectable_difference, minimum_detectable_mean_difference
from analysis.proportions import compare_proportions
from analysis.survival import cox_model, cumulative_incidence, kaplan_meier, logrank_test
from data.dictionary import PAIN_VISITS

__all__ = [
    "COMPARISON_COLUMNS",
    "DEFAULT_OUTCOMES",
    "FractureSurvival",
    "PainMixedModel",
    "compare_procedures",
    "fracture_survival",
    "fracture_time_event",
    "minimum_detectable_differences",
    "pain_mixed_model",
]

#: Outcomes of :func:`compare_procedures` by default, in display order.
DEFAULT_OUTCOMES: tuple[str, ...] = (
    "pain_responder",
    "pain_month1",
    "cement_leakage",
    "pulmonary_embolism",
    "adjacent_fracture_12m",
    "duration_min",
    "cost",
    "time_to_fracture",
)

#: Columns of :func:`compare_procedures`, in order.
COMPARISON_COLUMNS: tuple[str, ...] = (
    "outcome", "kind", "definition", "n_vp", "n_kp", "estimate_vp", "estimate_kp",
    "effect_measure", "unadjusted", "unadjusted_low", "unadjusted_high", "p_unadjusted",
    "unadjusted_method", "adjusted", "adjusted_low", "adjusted_high", "p_adjusted",
    "adjusted_method", "p_bh", "note", "unadjusted_measure",
    "rr_unadjusted", "rr_unadjusted_low", "rr_unadjusted_high",
    "rr_adjusted", "rr_adjusted_low", "rr_adjusted_high",
    "iptw", "iptw_low", "iptw_high", "p_iptw", "clustered", "n_clusters",
)

#: Minimum events (and non-events) per procedure for an adjusted model.
MIN_EVENTS_ADJUSTED = 10
#: Minimum records per procedure for an adjusted model of a continuous outcome.
MIN_RECORDS_ADJUSTED = 10
#: Up to this many records the Cox models of :func:`compare_procedures` use
#: :func:`analysis.survival.cox_model`; above it the vectorised Efron fitter of
#: :mod:`analysis.adjustment` (the same estimator, checked against ``cox_model`` in the tests).
COX_MODEL_MAX_N = 200_000
#: Up to this many costed records the adjusted cost ratio is
#: :func:`analysis.costs.adjusted_cost_ratio`; above it a numpy IRLS fit of the same gamma GLM.
COST_RATIO_MAX_N = 200_000
#: Bootstrap resamples of the unadjusted difference in mean costs.
COST_BOOTSTRAP_RESAMPLES = 2000
#: Column whose records are correlated (cluster-robust intervals by default).
DEFAULT_CLUSTER = "facility_id"
#: Days of the number-at-risk table of :func:`fracture_survival`.
AT_RISK_DAYS: tuple[int, ...] = (0, 90, 180, 365, 730)
#: Visits with fewer observations than this in either procedure are left out of the mixed model.
MIN_VISIT_OBSERVATIONS = 10

_CONTINUOUS_LABELS = {
    "duration_min": "Procedure duration (minutes)",
    "cement_volume_ml": "Cement volume (mL)",
    "length_of_stay_days": "Length of stay (days)",
}


def _z(level: float) -> float:
    return float(st.norm.isf((1.0 - level) / 2.0))


def _nan_row(outcome: str, kind: str, definition: str) -> dict[str, Any]:
    row: dict[str, Any] = {c: math.nan for c in COMPARISON_COLUMNS}
    row.update(outcome=outcome, kind=kind, definition=definition, unadjusted_method="",
               adjusted_method="", note="", effect_measure="", unadjusted_measure="",
               clustered=False, n_clusters=0)
    return row


@dataclasses.dataclass(frozen=True)
class _Clusters:
    """Cluster codes of every record (a record without a label is a cluster of its own)."""

    column: str
    codes: NDArray[np.intp]

    def text(self, n_clusters: int) -> str:
        return (f"SE clustered by {self.column} ({n_clusters} clusters), t with "
                f"{n_clusters - 1} df (Cameron & Miller 2015)")


def _clusters_of(records: pd.DataFrame, column: str | None) -> tuple[_Clusters | None, str]:
    """The clusters of `column`, or None and the reason the intervals are model-based."""
    if column is None:
        return None, ""
    if column not in records.columns:
        return None, (f"intervals not clustered: no column {column!r} in the records "
                      "(model-based SEs assume independent records)")
    codes, n_clusters = cluster_codes(records[column].astype(object).to_numpy())
    if n_clusters < 2:
        return None, (f"intervals not clustered: the records come from {n_clusters} "
                      f"{column} value(s) (model-based SEs)")
    return _Clusters(column, codes), ""


def _mark_clustered(row: dict[str, Any], n_clusters: int) -> None:
    row["clustered"] = True
    row["n_clusters"] = max(int(row.get("n_clusters") or 0), int(n_clusters))


def _wald(est: float, se: float, q: float, df: int) -> tuple[float, float, float]:
    """Limits ``est ± q·se`` and the two-sided t(df) p-value."""
    if not (se > 0 and math.isfinite(se)):
        return math.nan, math.nan, math.nan
    return est - q * se, est + q * se, float(2 * st.t.sf(abs(est / se), df))


def _add_note(row: dict[str, Any], text: str) -> None:
    row["note"] = f"{row['note']}; {text}" if row["note"] else text


def _events(count: int, word: str = "event") -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _skip_reason(exc: Exception) -> str:
    if isinstance(exc, InsufficientDataError):
        return exc.reason
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc)


# --------------------------------------------------------------------------------------------
# Outcome definitions
# --------------------------------------------------------------------------------------------


def _complication_status(records: pd.DataFrame, name: str) -> NDArray[np.float64]:
    """1/0/NaN per record for a complication outcome as defined in :mod:`analysis.outcomes`.

    Uses the per-record status behind :func:`analysis.outcomes.complication_rates` so that
    the definitions (e.g. ``adjacent_fracture_12m``: a new fracture within 365 days; records
    without one and with less follow-up are excluded) are the same everywhere.
    """
    event, non_event, _ = _outcome_status(records, name)
    y = np.full(len(records), np.nan)
    y[non_event] = 0.0
    y[event] = 1.0
    return y


def _binary_outcome(
    records: pd.DataFrame, name: str, responder: Any
) -> tuple[NDArray[np.float64], str] | None:
    if name == "pain_responder":
        return _floats(responder.is_responder(records)), f"Pain responder ({responder.label})"
    if name in COMPLICATION_OUTCOMES:
        return _complication_status(records, name), COMPLICATION_OUTCOMES[name]
    if name in records.columns and pd.api.types.is_bool_dtype(records[name].dtype):
        return _floats(records[name]), name
    return None


def _kind(records: pd.DataFrame, name: str) -> str:
    if name == "cost":
        return "cost"
    if name == "time_to_fracture":
        return "time_to_event"
    if name == "pain_responder" or name in COMPLICATION_OUTCOMES:
        return "binary"
    if name not in records.columns:
        raise ValueError(f"unknown outcome {name!r}: not a built-in outcome "
                         f"({', '.join(DEFAULT_OUTCOMES)}) nor a column of the records")
    column = records[name]
    if pd.api.types.is_bool_dtype(column.dtype):
        return "binary"
    if pd.api.types.is_numeric_dtype(column.dtype):
        values = _floats(column)
        finite = values[~np.isnan(values)]
        if finite.size and np.isin(finite, (0.0, 1.0)).all():
            return "binary"
        return "continuous"
    raise ValueError(f"outcome {name!r} is neither boolean nor numeric")


def fracture_time_event(records: pd.DataFrame) -> pd.DataFrame:
    """Time to a new vertebral fracture and the event codes of every record.

    Returns
    -------
    pandas.DataFrame
        Indexed like `records`: ``time`` (days; the fracture day for a fracture, else
        ``followup_days``; NaN when unknown), ``event`` (1 fracture, 0 censored — deaths are
        censored at the last contact, as in a cause-specific analysis), ``cr_time`` and
        ``cr_code`` for competing risks (0 censored at ``followup_days``, 1 fracture at
        ``adjacent_fracture_days``, 2 death at ``death_days`` for a death without a
        preceding fracture on or before the last contact). New fractures are ascertained
        only up to the last contact, so a death **after** ``followup_days`` (e.g. found by
        registry linkage), or a death without its day, is censored at ``followup_days``
        (code 0), not kept at risk until the death (:mod:`analysis.horizon`).

    Examples
    --------
    >>> rows = pd.DataFrame({"adjacent_fracture": [True, False, False, False],
    ...                      "adjacent_fracture_days": [100, None, None, None],
    ...                      "followup_days": [400, 200, 300, 150],
    ...                      "died": [False, True, False, True],
    ...                      "death_days": [None, 200, None, 250]})
    >>> fracture_time_event(rows)[["time", "event", "cr_time", "cr_code"]].to_numpy().tolist()
    [[100.0, 1.0, 100.0, 1.0], [200.0, 0.0, 200.0, 2.0], [300.0, 0.0, 300.0, 0.0], [150.0, 0.0, 150.0, 0.0]]
    """
    # Copied into the frame: without deaths the competing-risk columns are the same arrays.
    return pd.DataFrame(_fracture_arrays(records), index=records.index, copy=True)


# --------------------------------------------------------------------------------------------
# Shared adjustment design
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Shared:
    """Model matrix shared by the adjusted models: [1, covariates, kp, pain_baseline]."""

    design: CovariateDesign
    t: NDArray[np.float64]  # kp of the modelled rows
    kp_col: int
    pain_col: int | None
    pain_ok: NDArray[np.bool_]
    weights: pd.Series | None = None
    positivity: str | None = None
    ps_error: str | None = None

    @property
    def x(self) -> NDArray[np.float64]:
        return self.design.matrix

    def standard(self) -> NDArray[np.float64]:
        """[1, covariates, kp] (a view)."""
        return self.x[:, : self.kp_col + 1]

    def covariate_text(self) -> str:
        return ", ".join(self.design.covariates) if self.design.covariates else "none"


def _shared_design(records: pd.DataFrame, t_all: NDArray, covariates: Sequence[str]) -> _Shared:
    extra = {"kp": t_all}
    has_pain = "pain_baseline" in records.columns
    if has_pain:
        extra["pain_baseline"] = _floats(records["pain_baseline"])
    design = covariate_design(records, covariates, ~np.isnan(t_all), intercept=True,
                              extra=extra)
    kp_col = design.matrix.shape[1] - len(extra)
    pain_ok = np.zeros(design.rows.size, dtype=bool)
    if has_pain:
        pain_ok = ~np.isnan(_floats(records["pain_baseline"]))[design.rows]
    return _Shared(design=design, t=design.matrix[:, kp_col].copy(), kp_col=kp_col,
                   pain_col=kp_col + 1 if has_pain else None, pain_ok=pain_ok)


def _ensure_weights(records: pd.DataFrame, shared: _Shared) -> None:
    """ATE stabilised IPTW weights from the shared design (computed once)."""
    if shared.weights is not None or shared.ps_error is not None:
        return
    t = shared.t
    if min(int((t == 1).sum()), int((t == 0).sum())) < 2:
        shared.ps_error = "propensity model skipped: fewer than 2 records in a procedure"
        return
    e, w, _, notes = _propensity(shared.x[:, : shared.kp_col], t, "ATE", True, None)
    series = pd.Series(np.nan, index=records.index, name="weight")
    series.iloc[shared.design.rows] = w
    shared.weights = series
    shared.positivity = "; ".join(notes) if notes else None


# --------------------------------------------------------------------------------------------
# Outcome rows
# --------------------------------------------------------------------------------------------


def _binary_row(
    records: pd.DataFrame,
    name: str,
    y_all: NDArray[np.float64],
    definition: str,
    t_all: NDArray[np.float64],
    shared: _Shared | None,
    adjust: bool,
    level: float,
    seed: int,
    n_boot: int,
    use_baseline: bool,
    with_iptw: bool,
    clusters: _Clusters | None = None,
) -> dict[str, Any]:
    row = _nan_row(name, "binary", definition)
    row["effect_measure"] = row["unadjusted_measure"] = "RD"
    have = ~np.isnan(y_all)
    kp, vp = have & (t_all == 1), have & (t_all == 0)
    n_kp, n_vp = int(kp.sum()), int(vp.sum())
    x_kp, x_vp = int(y_all[kp].sum()), int(y_all[vp].sum())
    row.update(n_vp=n_vp, n_kp=n_kp)
    try:
        cmp = compare_proportions(x_kp, n_kp, x_vp, n_vp, level=level)
    except InsufficientDataError as exc:
        _add_note(row, f"unadjusted comparison skipped: {exc.reason}")
        return row
    test = "Pearson chi-square" if cmp.test == "pearson_chi2" else "Fisher exact"
    row.update(
        estimate_vp=cmp.p2, estimate_kp=cmp.p1, unadjusted=cmp.risk_difference,
        unadjusted_low=cmp.rd_low, unadjusted_high=cmp.rd_high, p_unadjusted=cmp.p_value,
        unadjusted_method=(f"risk difference KP − VP ({x_kp}/{n_kp} vs {x_vp}/{n_vp}), "
                           f"Newcombe hybrid score CI; {test} test; RR with Katz log CI"
                           + ("; 0.5 added to every cell for the RR (zero cell)"
                              if cmp.zero_cell_correction else "")),
        rr_unadjusted=cmp.risk_ratio, rr_unadjusted_low=cmp.rr_low,
        rr_unadjusted_high=cmp.rr_high,
    )
    if clusters is not None:
        _clustered_proportions(row, y_all, t_all, clusters, level, (x_kp, n_kp, x_vp, n_vp))
    if not adjust:
        return row
    if shared is None:
        _add_note(row, "adjusted model skipped: no adjustment design")
        return row
    rows = shared.design.rows
    y = y_all[rows]
    obs = ~np.isnan(y)
    x = shared.standard()
    kp_col = shared.kp_col
    text_extra = ""
    if use_baseline and shared.pain_col is not None:
        obs &= shared.pain_ok
        x = shared.x
        text_extra = " + pain_baseline"
    t = shared.t
    counts = {
        KP: (int((y[obs & (t == 1)] == 1).sum()), int((y[obs & (t == 1)] == 0).sum())),
        VP: (int((y[obs & (t == 0)] == 1).sum()), int((y[obs & (t == 0)] == 0).sum())),
    }
    for label, (events, non_events) in counts.items():
        if events < MIN_EVENTS_ADJUSTED:
            _add_note(row, f"adjusted model skipped: {_events(events)} in {label}, at least "
                      f"{MIN_EVENTS_ADJUSTED} needed")
            return row
        if non_events < MIN_EVENTS_ADJUSTED:
            _add_note(row, f"adjusted model skipped: {_events(non_events, 'non-event')} in "
                      f"{label}, at least {MIN_EVENTS_ADJUSTED} needed")
            return row
    n_events = sum(c[0] for c in counts.values())
    if min(n_events, int(obs.sum()) - n_events) < x.shape[1]:
        _add_note(row, f"adjusted model skipped: {n_events} events for {x.shape[1]} model "
                  "coefficients")
        return row
    if clusters is not None:
        return _clustered_gcomp(records, row, name, x, np.nan_to_num(y), obs, shared,
                                clusters, level, text_extra, with_iptw, y_all)
    try:
        gc = _gcomp(x, np.nan_to_num(y), obs, outcome=name,
                    covariates=list(shared.design.covariates) + (
                        ["pain_baseline"] if text_extra else []),
                    imputed=bool(shared.design.imputed), n_boot=n_boot, seed=seed,
                    level=level, kp=kp_col, dummies=shared.design.indicator_columns())
    except (AnalysisError, np.linalg.LinAlgError, ValueError) as exc:
        _add_note(row, f"adjusted model skipped: {_skip_reason(exc)}")
        return row
    row.update(adjusted=gc.risk_difference, adjusted_low=gc.rd_low, adjusted_high=gc.rd_high,
               p_adjusted=gc.p_value, adjusted_method=gc.method + "; p from the bootstrap SE"
               if gc.n_boot else gc.method,
               rr_adjusted=gc.risk_ratio, rr_adjusted_low=gc.rr_low,
               rr_adjusted_high=gc.rr_high)
    if not with_iptw:
        return row
    return _iptw_columns(records, row, name, y_all, shared, level, None)


def _iptw_columns(
    records: pd.DataFrame, row: dict[str, Any], name: str, y_all: NDArray, shared: _Shared,
    level: float, clusters: _Clusters | None,
) -> dict[str, Any]:
    """IPTW (ATE, stabilised) as a second adjusted estimate."""
    _ensure_weights(records, shared)
    if shared.weights is None:
        _add_note(row, shared.ps_error or "IPTW skipped")
        return row
    try:
        ip = iptw_effect(records, pd.Series(y_all, index=records.index, name=name),
                         shared.weights, level=level,
                         cluster=None if clusters is None else clusters.codes)
    except (AnalysisError, ValueError, np.linalg.LinAlgError) as exc:
        _add_note(row, f"IPTW skipped: {_skip_reason(exc)}")
        return row
    row.update(iptw=ip.difference, iptw_low=ip.low, iptw_high=ip.high, p_iptw=ip.p_value)
    if clusters is not None:
        _mark_clustered(row, ip.n_clusters)
        _add_note(row, f"IPTW: {ip.method}")
    if shared.positivity:
        _add_note(row, f"IPTW positivity warning: {shared.positivity}")
    return row


def _clustered_proportions(
    row: dict[str, Any], y_all: NDArray, t_all: NDArray, clusters: _Clusters, level: float,
    counts: tuple[int, int, int, int],
) -> None:
    """Unadjusted RD and RR with facility-clustered SEs (replacing Newcombe / Katz).

    RD: the KP coefficient of the saturated linear probability model ``y ~ kp`` with the CR1
    sandwich (R ``vcovCL(glm(y ~ kp, family = gaussian), type = "HC1")``); RR: the KP
    coefficient of the saturated Poisson model ``y ~ kp`` (log link; Zou 2004) with the CR1
    sandwich. Both estimates equal the crude ones; only the SEs change.
    """
    x_kp, n_kp, x_vp, n_vp = counts
    use = ~np.isnan(y_all) & ~np.isnan(t_all)
    t = np.where(use, t_all, 0.0)
    y = np.where(use, y_all, 0.0)
    p1, p0 = x_kp / n_kp, x_vp / n_vp
    x = np.column_stack([np.ones(t.size), t])
    cov, g = ols_cluster_cov(x, y, np.array([p0, p1 - p0]), clusters.codes, use)
    if g < 2:
        _add_note(row, "unadjusted interval not clustered: all records in one cluster")
        return
    q = cluster_quantile(level, g)
    rd = p1 - p0
    low, high, p = _wald(rd, math.sqrt(cov[1, 1]), q, g - 1)
    rr_low = rr_high = math.nan
    rr_text = "RR not estimable with a zero risk"
    if p1 > 0 and p0 > 0:
        mu = np.where(use, np.where(t == 1, p1, p0), 0.0)
        n1_mu, all_mu = n_kp * p1, n_kp * p1 + n_vp * p0
        bread = np.linalg.inv(np.array([[all_mu, n1_mu], [n1_mu, n1_mu]]))
        sums = cluster_sums(x, y - mu, clusters.codes, int(clusters.codes.max()) + 1)
        cov_log = cr1_sandwich(bread, sums, cr1_factor(g, n_kp + n_vp, 2))
        se_log = math.sqrt(cov_log[1, 1])
        rr = p1 / p0
        rr_low, rr_high = rr * math.exp(-q * se_log), rr * math.exp(q * se_log)
        row["rr_unadjusted"] = rr
        rr_text = "RR from the saturated Poisson model y ~ kp (log link; Zou 2004), same SE"
    row.update(unadjusted_low=low, unadjusted_high=high, p_unadjusted=p,
               rr_unadjusted_low=rr_low, rr_unadjusted_high=rr_high,
               unadjusted_method=(
                   f"risk difference KP − VP ({x_kp}/{n_kp} vs {x_vp}/{n_vp}), Wald CI and "
                   "test from the saturated linear probability model y ~ kp with the "
                   f"cluster-robust CR1 sandwich SE; {clusters.text(g)}; {rr_text}"))
    _mark_clustered(row, g)


def _clustered_gcomp(
    records: pd.DataFrame, row: dict[str, Any], name: str, x: NDArray, y: NDArray,
    obs: NDArray[np.bool_], shared: _Shared, clusters: _Clusters, level: float,
    text_extra: str, with_iptw: bool, y_all: NDArray,
) -> dict[str, Any]:
    """G-computation RD and RR with cluster-robust SEs from the stacked estimating
    equations (:func:`analysis.cluster_variance.gcomp_cluster_se`): a closed form, so no
    bootstrap."""
    codes = clusters.codes[shared.design.rows]
    xo, yo, co = (x[obs], y[obs], codes[obs]) if obs.mean() < 0.6 else (x, y, codes)
    wo = None if xo is not x else obs.astype(float)
    kp = shared.kp_col
    try:
        fit = _fit_logistic(xo, yo, wo)
        r1, r0 = _standardise(xo, fit.params, wo, kp)
        se_rd, se_log, g = gcomp_cluster_se(xo, yo, fit.params, co, kp,
                                            None if wo is None else obs)
    except (AnalysisError, np.linalg.LinAlgError, ValueError) as exc:
        _add_note(row, f"adjusted model skipped: {_skip_reason(exc)}")
        return row
    q = cluster_quantile(level, g)
    rd = r1 - r0
    low, high, p = _wald(rd, se_rd, q, g - 1)
    rr = r1 / r0 if r0 > 0 else math.nan
    rr_low = rr_high = math.nan
    if math.isfinite(se_log) and r1 > 0 and r0 > 0:
        rr_low, rr_high = rr * math.exp(-q * se_log), rr * math.exp(q * se_log)
    covs = ", ".join(list(shared.design.covariates) + (["pain_baseline"] if text_extra else []))
    text = (f"g-computation: logistic model {name} ~ kp + {covs or 'none'}; predicted risks "
            "with everyone KP and everyone VP averaged over all modelled records (Snowden, "
            "Rose & Mortimer 2011); CI: Wald with the cluster-robust CR1 SE of the stacked "
            "estimating equations (logistic scores + the two mean risks, summed by cluster: the "
            "influence-function (sandwich) variance, which has no Monte-Carlo error; "
            f"Stefanski & Boos 2002), RR on the log scale; {clusters.text(g)}")
    if shared.design.imputed:
        text += "; missing numeric covariates: median + indicator"
    if not fit.converged:
        text += "; WARNING: the outcome model did not converge (separation?)"
    row.update(adjusted=rd, adjusted_low=low, adjusted_high=high, p_adjusted=p,
               adjusted_method=text, rr_adjusted=rr, rr_adjusted_low=rr_low,
               rr_adjusted_high=rr_high)
    _mark_clustered(row, g)
    if not with_iptw:
        return row
    return _iptw_columns(records, row, name, y_all, shared, level, clusters)


def _by_procedure(
    row: dict[str, Any], values: NDArray[np.float64], t_all: NDArray, what: str
) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
    """KP and VP values (missing dropped), with n and means recorded in ``row``; ``None`` (and
    a note) when either group has fewer than 2 values."""
    have = ~np.isnan(values)
    a, b = values[have & (t_all == 1)], values[have & (t_all == 0)]
    row.update(n_vp=int(b.size), n_kp=int(a.size),
               estimate_vp=float(b.mean()) if b.size else math.nan,
               estimate_kp=float(a.mean()) if a.size else math.nan)
    if min(a.size, b.size) < 2:
        _add_note(row, f"comparison skipped: {a.size} kyphoplasty and {b.size} vertebroplasty "
                  f"{what}, at least 2 each needed")
        return None
    return a, b


def _continuous_row(
    records: pd.DataFrame,
    name: str,
    t_all: NDArray[np.float64],
    shared: _Shared | None,
    adjust: bool,
    level: float,
    clusters: _Clusters | None = None,
) -> dict[str, Any]:
    suffix = name.removeprefix("pain_")
    is_pain = name.startswith("pain_") and suffix in PAIN_VISITS
    definition = (f"Pain at {PAIN_VISITS[suffix][0].lower()} (0–10)" if is_pain
                  else _CONTINUOUS_LABELS.get(name, name))
    row = _nan_row(name, "continuous", definition)
    row["effect_measure"] = row["unadjusted_measure"] = "MD"
    y_all = _floats(records[name])
    groups = _by_procedure(row, y_all, t_all, "values")
    if groups is None:
        return row
    a, b = groups
    if is_pain:
        # Welch t on the follow-up score (scipy; the adjusted ANCOVA is the primary analysis).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
            res = st.ttest_ind(a, b, equal_var=False)
        ci = res.confidence_interval(confidence_level=level)
        row.update(unadjusted=float(a.mean() - b.mean()), unadjusted_low=float(ci.low),
                   unadjusted_high=float(ci.high), p_unadjusted=float(res.pvalue),
                   unadjusted_method="difference in means KP − VP, Welch t interval and test")
    else:
        try:
            cm = compare_means(a, b, level=level)
        except InsufficientDataError as exc:
            _add_note(row, f"comparison skipped: {exc.reason}")
            return row
        row.update(unadjusted=cm.mean_difference, unadjusted_low=cm.md_low,
                   unadjusted_high=cm.md_high, p_unadjusted=cm.p_welch,
                   unadjusted_method=(
                       "difference in means KP − VP, Welch t interval and test; Hodges–"
                       f"Lehmann shift {cm.hodges_lehmann:.3g} ({cm.hl_low:.3g} to "
                       f"{cm.hl_high:.3g}, {cm.hl_method}), Mann–Whitney p = "
                       f"{cm.p_mannwhitney:.3g}"))
    if clusters is not None:
        _clustered_mean_difference(row, y_all, t_all, clusters, level)
    if not adjust:
        return row
    if shared is None:
        _add_note(row, "adjusted model skipped: no adjustment design")
        return row
    y = y_all[shared.design.rows]
    obs = ~np.isnan(y)
    x = shared.standard()
    cov_type = "HC3"
    if is_pain:
        if shared.pain_col is None:
            _add_note(row, "adjusted model skipped: no pain_baseline column")
            return row
        obs &= shared.pain_ok
        x = shared.x
        cov_type = "nonrobust"
    t = shared.t
    n1, n0 = int((obs & (t == 1)).sum()), int((obs & (t == 0)).sum())
    if min(n1, n0) < MIN_RECORDS_ADJUSTED or n1 + n0 <= x.shape[1] + MIN_RECORDS_ADJUSTED:
        _add_note(row, f"adjusted model skipped: {n1} kyphoplasty and {n0} vertebroplasty "
                  f"records with complete data, at least {MIN_RECORDS_ADJUSTED} each needed")
        return row
    beta, cov, df = _fit_ols(x, np.nan_to_num(y), cov_type, obs)
    j = shared.kp_col
    if np.isnan(beta[j]):
        _add_note(row, "adjusted model skipped: the procedure is collinear with the covariates "
                  "on the records with this outcome")
        return row
    est, se = float(beta[j]), float(math.sqrt(cov[j, j]))
    tq = float(st.t.isf((1 - level) / 2, df))
    covs = shared.covariate_text()
    if is_pain:
        text = (f"ANCOVA: OLS {name} ~ kp + pain_baseline + {covs}; KP coefficient = adjusted "
                f"difference in means, t-based CI (df = {df}) (Vickers & Altman 2001)")
    else:
        text = (f"OLS {name} ~ kp + {covs}; KP coefficient = adjusted difference in means, "
                f"HC3 robust SE (MacKinnon & White 1985), t-based CI (df = {df}); linear "
                "rather than gamma model so that the adjusted effect is in minutes like the "
                "unadjusted one")
    if clusters is not None:
        # Aliased columns (NaN) were not estimated: they contribute nothing to the residuals.
        cov, g = ols_cluster_cov(x, np.nan_to_num(y), np.nan_to_num(beta),
                                 clusters.codes[shared.design.rows], obs)
        se, df, tq = float(math.sqrt(cov[j, j])), g - 1, cluster_quantile(level, g)
        model = (f"ANCOVA: OLS {name} ~ kp + pain_baseline + {covs}" if is_pain
                 else f"OLS {name} ~ kp + {covs}")
        text = (f"{model}; KP coefficient = adjusted difference in means, Wald CI and test with "
                f"the cluster-robust CR1 sandwich SE; {clusters.text(g)}")
        _mark_clustered(row, g)
    aliased = [shared.design.names[i] for i in np.flatnonzero(np.isnan(beta))]
    if aliased:
        text += ("; not estimable on the records with this outcome (all zero or collinear "
                 f"there, not counted in the df): {', '.join(aliased)}")
    if shared.design.imputed:
        text += "; missing numeric covariates: median + indicator"
    row.update(adjusted=est, adjusted_low=est - tq * se, adjusted_high=est + tq * se,
               p_adjusted=float(2 * st.t.sf(abs(est / se), df)), adjusted_method=text)
    return row


def _clustered_mean_difference(
    row: dict[str, Any], y_all: NDArray, t_all: NDArray, clusters: _Clusters, level: float
) -> None:
    """Unadjusted difference in means with the CR1 SE of the saturated OLS ``y ~ kp``
    (replacing Welch's interval; the estimate is the same)."""
    use = ~np.isnan(y_all) & ~np.isnan(t_all)
    t = np.where(use, t_all, 0.0)
    y = np.where(use, y_all, 0.0)
    m1, m0 = float(row["estimate_kp"]), float(row["estimate_vp"])
    x = np.column_stack([np.ones(t.size), t])
    cov, g = ols_cluster_cov(x, y, np.array([m0, m1 - m0]), clusters.codes, use)
    low, high, p = _wald(m1 - m0, math.sqrt(cov[1, 1]), cluster_quantile(level, g), g - 1)
    row.update(unadjusted_low=low, unadjusted_high=high, p_unadjusted=p,
               unadjusted_method=("difference in means KP − VP, Wald CI and test from OLS "
                                  f"y ~ kp with the cluster-robust CR1 sandwich SE; "
                                  f"{clusters.text(g)}"))
    _mark_clustered(row, g)


def _cost_difference_ci(
    a: NDArray, b: NDArray, level: float, seed: int
) -> tuple[float, float, str]:
    """Bootstrap CI of mean(a) − mean(b): BCa, or rescaled m-out-of-n for large groups."""
    diff = float(a.mean() - b.mean())
    alpha = 1 - level
    if max(a.size, b.size) <= BOOTSTRAP_MAX_N:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = st.bootstrap(
                (a, b), lambda u, v, axis=-1: u.mean(axis=axis) - v.mean(axis=axis),
                n_resamples=COST_BOOTSTRAP_RESAMPLES, method="BCa", vectorized=True,
                confidence_level=level, batch=max(1, 2_000_000 // (a.size + b.size)),
                rng=np.random.default_rng(seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            return low, high, (f"BCa bootstrap ({COST_BOOTSTRAP_RESAMPLES} resamples, seed "
                               f"{seed})")
    # m-out-of-n, per group: deviations of each resampled mean scaled by sqrt(m_g / n_g).
    rng = np.random.default_rng(seed)
    dev = np.zeros(COST_BOOTSTRAP_RESAMPLES)
    ms = []
    for sign, values in ((1.0, a), (-1.0, b)):
        m = min(values.size, BOOTSTRAP_MAX_N)
        ms.append(m)
        means = np.empty(COST_BOOTSTRAP_RESAMPLES)
        for start in range(0, COST_BOOTSTRAP_RESAMPLES, 200):
            stop = min(COST_BOOTSTRAP_RESAMPLES, start + 200)
            idx = rng.integers(0, values.size, size=(stop - start, m))
            means[start:stop] = values[idx].mean(axis=1)
        dev += sign * (means - values.mean()) * math.sqrt(m / values.size)
    q = np.quantile(dev, [alpha / 2, 1 - alpha / 2])
    return diff + float(q[0]), diff + float(q[1]), (
        f"m-out-of-n percentile bootstrap ({COST_BOOTSTRAP_RESAMPLES} resamples of m = "
        f"{ms[0]:,} KP and {ms[1]:,} VP costs, deviations scaled by sqrt(m/n); Bickel, Götze "
        f"& van Zwet 1997; seed {seed})")


def _fast_cost_ratio(
    records: pd.DataFrame, cost: NDArray, t_all: NDArray, covariates: Sequence[str],
    level: float,
    clusters: _Clusters | None = None,
    n_clusters_out: list[int] | None = None,
) -> tuple[float, float, float, float, str]:
    """Gamma GLM (log link) ratio of mean costs on the same records and coding as
    :func:`analysis.costs.adjusted_cost_ratio` (complete cases, cost > 0); with `clusters`
    the CR1 sandwich SE (at every size: one code path for the clustered interval)."""
    eligible = ~np.isnan(t_all) & (np.nan_to_num(cost) > 0)
    design = covariate_design(records, covariates, eligible, intercept=True,
                              extra={"kp": t_all}, impute=False)
    x = design.matrix
    y = cost[design.rows]
    t = x[:, -1]
    if min(int((t == 1).sum()), int((t == 0).sum())) < 2:
        raise InsufficientDataError("gamma GLM (log link)", "fewer than 2 costed records in a "
                                    "procedure")
    beta, cov, scale, df, converged = _fit_gamma_log(x, y)
    b, se = float(beta[-1]), float(math.sqrt(cov[-1, -1]))
    tq = float(st.t.isf((1 - level) / 2, df))
    text = ("gamma GLM with log link, ratio of mean costs KP / VP = exp(coefficient), t-based "
            f"{level:.0%} CI and p-value (df = {df}), dispersion by Pearson X²/df (Manning & "
            "Mullahy 2001; Barber & Thompson 2004); "
            + (f"adjusted for {', '.join(design.covariates)}" if design.covariates
               else "unadjusted")
            + f"; numpy IRLS fit of the model of analysis.costs.adjusted_cost_ratio (used above "
              f"{COST_RATIO_MAX_N:,} records for run time)")
    if design.dropped:
        text += f"; dropped: {', '.join(design.dropped)}"
    if clusters is not None:
        cov, g = gamma_log_cluster_cov(x, y, beta, clusters.codes[design.rows])
        se, df, tq = float(math.sqrt(cov[-1, -1])), g - 1, cluster_quantile(level, g)
        if n_clusters_out is not None:
            n_clusters_out.append(g)
        text = ("gamma GLM with log link, ratio of mean costs KP / VP = exp(coefficient) "
                "(Manning & Mullahy 2001; Barber & Thompson 2004); "
                + (f"adjusted for {', '.join(design.covariates)}" if design.covariates
                   else "unadjusted")
                + "; numpy IRLS fit of the model of analysis.costs.adjusted_cost_ratio; Wald "
                  f"CI and test with the cluster-robust CR1 sandwich SE; {clusters.text(g)}")
        if design.dropped:
            text += f"; dropped: {', '.join(design.dropped)}"
    if not converged:
        text += "; WARNING: the fit did not converge"
    return (math.exp(b), math.exp(b - tq * se), math.exp(b + tq * se),
            float(2 * st.t.sf(abs(b / se), df)), text)


def _cost_row(
    records: pd.DataFrame,
    t_all: NDArray[np.float64],
    adjust: bool,
    cost_options: Any,
    covariates: Sequence[str] | None,
    level: float,
    seed: int,
    clusters: _Clusters | None = None,
) -> dict[str, Any]:
    options = cost_options if cost_options is not None else CostOptions()
    row = _nan_row("cost", "cost", f"Procedure cost ({options.reporting_currency})")
    row["unadjusted_measure"] = "MD"
    row["effect_measure"] = "ratio of means"
    if "cost" not in records.columns:
        _add_note(row, "no cost column")
        return row
    converted = normalise_costs(records, options)
    cost = converted["cost_reporting"].to_numpy(dtype=float)
    for text in converted.attrs.get("notes", ()):
        _add_note(row, text)
    groups = _by_procedure(row, cost, t_all, "costs")
    if groups is None:
        return row
    a, b = groups
    low, high, how = _cost_difference_ci(a, b, level, seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        p = float(st.ttest_ind(a, b, equal_var=False).pvalue)
    row.update(unadjusted=float(a.mean() - b.mean()), unadjusted_low=low, unadjusted_high=high,
               p_unadjusted=p,
               unadjusted_method=(f"difference in mean costs KP − VP ({options.reporting_currency})"
                                  f", {how}; Welch t-test p-value (Thompson & Barber 2000)"))
    if clusters is not None:
        use = ~np.isnan(cost) & ~np.isnan(t_all)
        low, high, se, g = cluster_bootstrap_mean_difference(
            cost[use], t_all[use] == 1, clusters.codes[use], COST_BOOTSTRAP_RESAMPLES, level, seed)
        diff = float(a.mean() - b.mean())
        row.update(unadjusted_low=low, unadjusted_high=high,
                   p_unadjusted=_wald(diff, se, 0.0, g - 1)[2],
                   unadjusted_method=(
                       f"difference in mean costs KP − VP ({options.reporting_currency}), "
                       f"percentile cluster bootstrap ({COST_BOOTSTRAP_RESAMPLES} resamples of "
                       f"whole {clusters.column} clusters, seed {seed}; Field & Welsh 2007); "
                       f"p from the bootstrap SE, t with {g - 1} df ({g} clusters)"))
        _mark_clustered(row, g)
    if not adjust:
        return row
    covs = tuple(c for c in DEFAULT_COVARIATES if c in records.columns) if covariates is None \
        else tuple(covariates)
    n1 = int((a > 0).sum())
    n0 = int((b > 0).sum())
    if min(n1, n0) < MIN_RECORDS_ADJUSTED:
        _add_note(row, f"adjusted cost ratio skipped: {n1} kyphoplasty and {n0} vertebroplasty "
                  f"positive costs, at least {MIN_RECORDS_ADJUSTED} each needed")
        return row
    try:
        if clusters is not None:
            used: list[int] = []
            ratio, r_low, r_high, p_adj, text = _fast_cost_ratio(records, cost, t_all, covs,
                                                                 level, clusters, used)
            _mark_clustered(row, used[0])
        elif n1 + n0 <= COST_RATIO_MAX_N:
            r = adjusted_cost_ratio(records, covariates=covs, options=options, level=level)
            ratio, r_low, r_high, p_adj, text = r.ratio, r.low, r.high, r.p_value, r.method
        else:
            ratio, r_low, r_high, p_adj, text = _fast_cost_ratio(records, cost, t_all, covs,
                                                                 level)
    except (AnalysisError, ValueError, np.linalg.LinAlgError) as exc:
        _add_note(row, f"adjusted cost ratio skipped: {_skip_reason(exc)}")
        return row
    row.update(adjusted=ratio, adjusted_low=r_low, adjusted_high=r_high, p_adjusted=p_adj,
               adjusted_method=text)
    return row


def _cox_kp(
    time: NDArray, event: NDArray, x: NDArray, level: float,
    clusters: _Clusters | None = None, rows: NDArray[np.intp] | None = None,
) -> tuple[float, float, float, float, str]:
    """HR of the last column of `x` (kp) from cox_model, or the vectorised fitter.

    `time` and `event` may hold NaN for records that are not modelled. With `clusters`
    (codes of the records `rows` of `x`, all records if None) the SE is the Lin–Wei robust
    one, summed by cluster, on both paths, and the interval uses t with G − 1 df.
    """
    ok = ~np.isnan(time)
    codes = None
    if clusters is not None:
        codes = clusters.codes if rows is None else clusters.codes[rows]
    if int(ok.sum()) <= COX_MODEL_MAX_N:
        safe = [f"x{j}" for j in range(x.shape[1])]
        frame = pd.DataFrame(x[ok], columns=safe)
        frame["time"], frame["event"] = time[ok], event[ok]
        if codes is not None:
            frame["cluster"] = codes[ok]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = cox_model(frame, "time", "event", safe, level=level,
                              cluster=None if codes is None else "cluster")
        last = table.iloc[-1]
        how = "analysis.survival.cox_model (statsmodels PHReg)"
        if any("converge" in str(w.message) for w in caught):
            how += ("; WARNING: the fit did not converge (a covariate level without events?)")
        if codes is None:
            return (float(last.hazard_ratio), float(last.low), float(last.high),
                    float(last.p_value), how)
        b, se = float(last.coef), float(last.se)
        g = int(np.unique(codes[ok]).size)
    else:
        # Records without a time get time -1: censored before the first event, so they are
        # dropped by the fitter without copying the design here.
        fit = _fit_cox_efron(np.where(ok, time, -1.0), np.where(ok, event, 0.0), x)
        b, se = float(fit.params[-1]), float(math.sqrt(fit.cov[-1, -1]))
        how = (f"vectorised Efron Newton fit (the estimator of analysis.survival.cox_model, "
               f"used above {COX_MODEL_MAX_N:,} records for run time)")
        if not fit.converged:
            how += "; WARNING: did not converge"
        if codes is None:
            z = _z(level)
            return (math.exp(b), math.exp(b - z * se), math.exp(b + z * se),
                    float(2 * st.norm.sf(abs(b / se))), how)
        robust, g = cox_cluster_cov(time, event, x, fit.params, fit.cov, codes)
        se = float(math.sqrt(robust[-1, -1]))
    low, high, p = _wald(b, se, cluster_quantile(level, g), g - 1)
    how += (f"; Lin–Wei robust SE from Efron score residuals summed by {clusters.column} "
            f"(Lin & Wei 1989; R coxph(..., cluster = {clusters.column})), {g} clusters, t with "
            f"{g - 1} df")
    return math.exp(b), math.exp(low), math.exp(high), p, how


def _time_row(
    records: pd.DataFrame,
    t_all: NDArray[np.float64],
    shared: _Shared | None,
    adjust: bool,
    level: float,
    clusters: _Clusters | None = None,
) -> dict[str, Any]:
    row = _nan_row("time_to_fracture", "time_to_event",
                   "Time to a new vertebral fracture (days)")
    row["effect_measure"] = row["unadjusted_measure"] = "HR"
    try:
        te = fracture_time_event(records)
    except ValueError as exc:
        _add_note(row, f"skipped: {exc}")
        return row
    time, event = te["time"].to_numpy(), te["event"].to_numpy()
    have = ~np.isnan(time) & ~np.isnan(t_all)
    kp, vp = have & (t_all == 1), have & (t_all == 0)
    row.update(n_vp=int(vp.sum()), n_kp=int(kp.sum()))
    competing = "died" in records.columns
    for key, sel in (("estimate_kp", kp), ("estimate_vp", vp)):
        if sel.sum() == 0:
            continue
        cif = cumulative_incidence(te["cr_time"].to_numpy()[sel], te["cr_code"].to_numpy()[sel],
                                   level=level)
        before = cif[cif["time"] <= 365]
        row[key] = float(before["cumulative_incidence"].iloc[-1]) if len(before) else 0.0
    events = {KP: int(event[kp].sum()), VP: int(event[vp].sum())}
    _add_note(row, "estimates: cumulative incidence of a new fracture at 365 days ("
              + ("Aalen–Johansen, death as a competing risk" if competing
                 else "1 − Kaplan–Meier") + ")")
    if min(events.values()) == 0:
        _add_note(row, f"Cox model skipped: {events[KP]} events in kyphoplasty and "
                  f"{events[VP]} in vertebroplasty")
        return row
    hr, low, high, p, how = _cox_kp(np.where(have, time, np.nan), event,
                                    np.nan_to_num(t_all)[:, None], level, clusters)
    row.update(unadjusted=hr, unadjusted_low=low, unadjusted_high=high, p_unadjusted=p,
               unadjusted_method=(f"Cox proportional hazards, kp only, Efron ties (Efron 1977); "
                                  f"deaths censored at last contact (cause-specific); {how}"))
    if clusters is not None:
        _mark_clustered(row, int(np.unique(clusters.codes[have]).size))
    if not adjust:
        return row
    if shared is None:
        _add_note(row, "adjusted model skipped: no adjustment design")
        return row
    for label, count in events.items():
        if count < MIN_EVENTS_ADJUSTED:
            _add_note(row, f"adjusted model skipped: {_events(count)} in {label}, at least "
                      f"{MIN_EVENTS_ADJUSTED} needed")
            return row
    rows = shared.design.rows
    try:
        # Covariates and kp: a view of the shared design (no intercept, no pain column).
        hr, low, high, p, how = _cox_kp(time[rows], event[rows],
                                        shared.x[:, 1: shared.kp_col + 1], level, clusters, rows)
    except (AnalysisError, np.linalg.LinAlgError, ValueError) as exc:
        _add_note(row, f"adjusted model skipped: {_skip_reason(exc)}")
        return row
    text = (f"Cox proportional hazards, kp + {shared.covariate_text()}, Efron ties; deaths "
            f"censored (cause-specific hazard ratio); {how}")
    if shared.design.imputed:
        text += "; missing numeric covariates: median + indicator"
    row.update(adjusted=hr, adjusted_low=low, adjusted_high=high, p_adjusted=p,
               adjusted_method=text)
    return row


#: Bootstrap replicates of the IPTW cumulative incidence when ``n_boot`` is 0 (it has no
#: analytic variance here): the SE's Monte-Carlo error is about 1/sqrt(2 * 200) = 5% of it.
HORIZON_N_BOOT = 200


def _horizon_row(
    records: pd.DataFrame,
    name: str,
    t_all: NDArray[np.float64],
    shared: _Shared | None,
    adjust: bool,
    level: float,
    seed: int,
    n_boot: int,
    clusters: _Clusters | None = None,
) -> dict[str, Any]:
    """An outcome "by day N" (new fracture by 12 months, death by 30 days): cumulative
    incidences at the horizon (:mod:`analysis.horizon`), their KP − VP difference and ratio
    (delta method; with `clusters` a grouped jackknife over the clusters), and the
    IPTW-weighted difference as the adjusted estimate (bootstrap of records; with `clusters`
    of whole clusters)."""
    spec = HORIZON_OUTCOMES[name]
    competing = "died" in records.columns and bool(records["died"].notna().any())
    estimand = spec.estimand(competing)
    row = _nan_row(name, "binary", f"{COMPLICATION_OUTCOMES[name]}: {estimand}")
    row["effect_measure"] = row["unadjusted_measure"] = "RD"
    time, code = horizon_time_event(records, name)
    groups = np.where(np.isnan(t_all), -1, t_all).astype(np.intp)
    out = horizon_groups(time, code, spec.horizon_days, groups, 2, level)
    n_vp, n_kp = int(out["n"][0]), int(out["n"][1])
    row.update(n_vp=n_vp, n_kp=n_kp, estimate_vp=float(out["estimate"][0]),
               estimate_kp=float(out["estimate"][1]))
    day = spec.horizon_days
    counts = (f"events by day {day} {int(out['events'][1])}/{n_kp} KP vs "
              f"{int(out['events'][0])}/{n_vp} VP; still at risk at day {day}: "
              f"{int(out['at_risk'][1])} patients KP, {int(out['at_risk'][0])} patients VP")
    try:
        cmp = compare_cumulative_incidence(out["estimate"][1], out["se"][1],
                                           out["estimate"][0], out["se"][0], level=level)
    except InsufficientDataError as exc:
        _add_note(row, f"unadjusted comparison skipped: {exc.reason}")
        return row
    row.update(unadjusted=cmp.difference, unadjusted_low=cmp.diff_low,
               unadjusted_high=cmp.diff_high, p_unadjusted=cmp.p_value,
               unadjusted_method=(f"difference in {estimand}, KP − VP; {cmp.method} ({counts})"),
               rr_unadjusted=cmp.ratio, rr_unadjusted_low=cmp.ratio_low,
               rr_unadjusted_high=cmp.ratio_high)
    if clusters is not None and not _clustered_horizon(
            row, time, code, groups, spec.horizon_days, clusters, level,
            f"difference in {estimand}, KP − VP ({counts})"):
        clusters = None  # one "clustered" flag per row: the adjusted interval follows
    if not adjust:
        return row
    _add_note(row, "g-computation not used: a model of the status at the horizon would drop "
              "the patients censored before it; adjusted = IPTW-weighted cumulative incidence")
    if shared is None:
        _add_note(row, "adjusted model skipped: no adjustment design")
        return row
    for label, events in ((KP, int(out["events"][1])), (VP, int(out["events"][0]))):
        if events < MIN_EVENTS_ADJUSTED:
            _add_note(row, f"adjusted model skipped: {_events(events)} in {label}, at least "
                      f"{MIN_EVENTS_ADJUSTED} needed")
            return row
    _ensure_weights(records, shared)
    if shared.weights is None:
        _add_note(row, shared.ps_error or "IPTW skipped")
        return row
    rows = shared.design.rows

    def iptw(cluster_codes: NDArray[np.intp] | None) -> Any:
        return iptw_cumulative_incidence(
            time[rows], code[rows], shared.t, shared.x[:, : shared.kp_col], day,
            n_boot=n_boot if n_boot > 0 else HORIZON_N_BOOT, seed=seed, level=level,
            max_n=BOOTSTRAP_MAX_N, weights=shared.weights.to_numpy()[rows],
            clusters=cluster_codes)

    try:
        try:
            ip = iptw(None if clusters is None else clusters.codes[rows])
        except InsufficientDataError as exc:
            if clusters is None or exc.method != "IPTW cluster bootstrap":
                raise
            _add_note(row, f"intervals not clustered: {exc.reason} (the unadjusted one "
                      "neither, one label per row)")
            row["clustered"], row["n_clusters"] = False, 0
            row.update(unadjusted_low=cmp.diff_low, unadjusted_high=cmp.diff_high,
                       p_unadjusted=cmp.p_value, rr_unadjusted_low=cmp.ratio_low,
                       rr_unadjusted_high=cmp.ratio_high,
                       unadjusted_method=f"difference in {estimand}, KP − VP; {cmp.method} "
                       f"({counts})")
            ip = iptw(None)
    except (AnalysisError, np.linalg.LinAlgError, ValueError) as exc:
        _add_note(row, f"adjusted model skipped: {_skip_reason(exc)}")
        return row
    if ip.n_clusters:
        _mark_clustered(row, ip.n_clusters)
    text = ip.method + f"; propensity model: {shared.covariate_text()}"
    if shared.design.imputed:
        text += "; missing numeric covariates: median + indicator"
    row.update(adjusted=ip.difference, adjusted_low=ip.low, adjusted_high=ip.high,
               p_adjusted=ip.p_value, adjusted_method=text, rr_adjusted=ip.ratio,
               rr_adjusted_low=ip.ratio_low, rr_adjusted_high=ip.ratio_high)
    if shared.positivity:
        _add_note(row, f"IPTW positivity warning: {shared.positivity}")
    return row


def _clustered_horizon(
    row: dict[str, Any], time: NDArray, code: NDArray, groups: NDArray[np.intp],
    horizon: int, clusters: _Clusters, level: float, what: str,
) -> bool:
    """Unadjusted difference and ratio of the cumulative incidences with the grouped
    jackknife over the clusters (replacing the delta-method intervals); False (and a note)
    when it cannot be computed."""
    g_all = int(clusters.codes.max()) + 1
    try:
        jk = cluster_jackknife_cumulative_incidence(time, code, groups, horizon, clusters.codes,
                                                    g_all, level)
    except InsufficientDataError as exc:
        _add_note(row, f"intervals not clustered: {exc.reason} (delta method; the adjusted "
                  "interval follows, one label per row)")
        return False
    row.update(unadjusted=jk.difference, unadjusted_low=jk.low, unadjusted_high=jk.high,
               p_unadjusted=jk.p_value, rr_unadjusted=jk.ratio,
               rr_unadjusted_low=jk.ratio_low, rr_unadjusted_high=jk.ratio_high,
               unadjusted_method=(f"{what}; {jk.method}; clustered by {clusters.column}"))
    _mark_clustered(row, jk.n_clusters)
    return True


# --------------------------------------------------------------------------------------------
# compare_procedures
# --------------------------------------------------------------------------------------------


def compare_procedures(
    records: pd.DataFrame,
    outcomes: Sequence[str] | None = None,
    adjust: bool = True,
    responder: Any = None,
    cost_options: Any = None,
    level: float = 0.95,
    seed: int = 0,
    *,
    covariates: Sequence[str] | None = None,
    n_boot: int = 0,
    iptw_outcomes: Sequence[str] = ("cement_leakage",),
    cluster: str | None = DEFAULT_CLUSTER,
) -> pd.DataFrame:
    """KP compared with VP on every outcome: unadjusted and adjusted effects, one row each.

    Parameters
    ----------
    records : pandas.DataFrame
        Procedure records (columns of :data:`data.dictionary.FIELDS`).
    outcomes : sequence of str, optional
        Default :data:`DEFAULT_OUTCOMES`: ``pain_responder``, ``pain_month1``,
        ``cement_leakage``, ``pulmonary_embolism``, ``adjacent_fracture_12m``,
        ``duration_min``, ``cost``, ``time_to_fracture``. Also accepted: any outcome of
        :data:`analysis.outcomes.COMPLICATION_OUTCOMES`, any ``pain_<visit>``, and any
        boolean (binary) or numeric (continuous) column.
    adjust : bool, default True
        Fit the adjusted models. False leaves the adjusted columns NaN (fast).
    responder : analysis.outcomes.ResponderDefinition, optional
        Definition of ``pain_responder`` (default: ≥30% pain reduction at month 1).
    cost_options : analysis.costs.CostOptions, optional
        Currency conversion of costs (default: USD at market exchange rates).
    level : float, default 0.95
        Confidence level.
    seed : int, default 0
        Seed of every bootstrap.
    covariates : sequence of str, optional
        Adjustment covariates (keyword only). Default: age, sex, etiology, levels_treated,
        country, plus fracture_age_weeks and prior_fractures when recorded (median
        imputation + missing indicator, see :mod:`analysis.adjustment`); the cost model
        uses the same list without the two optional ones by default (complete cases, as
        :func:`analysis.costs.adjusted_cost_ratio`).
    n_boot : int, default 0
        g-computation CIs when `cluster` is None (keyword only): 0 for the analytic
        influence-function (sandwich) variance, which has no Monte-Carlo error; a positive
        number for a percentile bootstrap with that many replicates, whose Monte-Carlo error
        the method text states (about 0.19 SE at 200 replicates). The clustered
        g-computation interval is a closed form and takes no replicates. The IPTW cumulative
        incidences "by day N" always use a bootstrap: `n_boot` replicates, or
        :data:`HORIZON_N_BOOT` when it is 0.
    iptw_outcomes : sequence of str, default ("cement_leakage",)
        Binary outcomes that also get the IPTW risk difference (keyword only; methods note
        §1.4 asks for it on leakage). Each costs one weighted GLM over all records; for
        other outcomes call :func:`analysis.adjustment.iptw_effect` directly.
    cluster : str or None, default "facility_id"
        Column of the clusters whose records are correlated (keyword only). Every interval
        and p-value then uses a cluster-robust variance (see Notes) and the t distribution
        with G − 1 degrees of freedom (G clusters; Cameron & Miller 2015). None gives the
        model-based intervals, which assume independent records. Without the column, or
        with fewer than 2 clusters, the intervals are model-based and ``note`` says so.

    Returns
    -------
    pandas.DataFrame
        One row per outcome with :data:`COMPARISON_COLUMNS`:

        ``outcome, kind`` (binary | continuous | cost | time_to_event), ``definition``,
        ``n_vp, n_kp`` (records with the outcome), ``estimate_vp, estimate_kp`` (risks,
        means, mean costs in the reporting currency, or the 365-day cumulative incidence),
        ``effect_measure`` (of the adjusted columns: RD, MD, ratio of means, HR),
        ``unadjusted, unadjusted_low, unadjusted_high, p_unadjusted, unadjusted_method``,
        ``adjusted, adjusted_low, adjusted_high, p_adjusted, adjusted_method``, ``p_bh``
        (Benjamini–Hochberg over the rows, on ``p_adjusted`` where available, else
        ``p_unadjusted``), ``note`` (skipped methods and why, positivity warnings), then
        ``unadjusted_measure`` (the measure of the unadjusted columns: the same as
        ``effect_measure`` except for cost, whose unadjusted effect is the difference in
        mean costs), the risk ratios of binary outcomes (``rr_unadjusted…``,
        ``rr_adjusted…``) and the IPTW risk difference (``iptw, iptw_low, iptw_high,
        p_iptw``) of the binary outcomes named in `iptw_outcomes`, and ``clustered``
        (whether the row's intervals are cluster-robust) with ``n_clusters`` (G).

    Notes
    -----
    Methods per outcome kind (methods note §0–§1.5):

    * **outcomes "by day N"** (new fracture by 12 months, death by 30 days): the
      cumulative incidence at the horizon per procedure (Aalen–Johansen with death
      competing; 1 − KM for death; :mod:`analysis.horizon`), so that censored patients
      count for as long as they were followed; unadjusted KP − VP difference with SE
      ``sqrt(var_KP + var_VP)`` and ratio with a log-scale interval (delta method); adjusted
      difference and ratio from the IPTW-weighted cumulative incidence (ATE, stabilised
      weights of the shared propensity model, bootstrap SE refitting it; Cole & Hernán
      2004). g-computation is not used for them: a model of the status at the horizon would
      drop the censored patients. The 12-month estimates equal the 365-day cumulative
      incidences of the time-to-fracture row.
    * **binary** (responder, leakage, embolism): unadjusted
      RD with the Newcombe hybrid score CI and the chi-square/Fisher test
      (:func:`analysis.proportions.compare_proportions`); adjusted RD and RR by
      g-computation from a logistic model (:func:`analysis.adjustment.standardised_risks`;
      Snowden et al. 2011) with a Wald CI and p from the influence-function variance
      (no Monte-Carlo error; with ``n_boot > 0`` a bootstrap CI, m-out-of-n above 5,000
      records, with its Monte-Carlo error in the method text); for
      `iptw_outcomes` the IPTW RD (ATE, stabilised weights, HC0 sandwich;
      :func:`analysis.adjustment.iptw_effect`) as a second adjusted estimate. The pain
      responder model also adjusts for the baseline pain score.
    * **pain at a visit**: unadjusted Welch difference in means; adjusted by ANCOVA,
      ``pain_<visit> ~ kp + pain_baseline + covariates`` (Vickers & Altman 2001).
    * **other continuous** (duration): Welch difference in means with the Hodges–Lehmann
      shift and Mann–Whitney p in the method text (:func:`analysis.means.compare_means`);
      adjusted difference in means by OLS with HC3 robust standard errors (chosen over a
      gamma GLM so that both effects are in minutes).
    * **cost**: unadjusted difference in mean costs with a BCa bootstrap CI (Thompson &
      Barber 2000; m-out-of-n above 5,000 costs per group) and Welch p; adjusted ratio of
      mean costs from a gamma GLM with log link
      (:func:`analysis.costs.adjusted_cost_ratio`; Manning & Mullahy 2001).
    * **time to new fracture**: Cox model with Efron ties (Efron 1977), kp alone and
      adjusted; deaths censored (cause-specific HR).

    **Clustering** (default, ``cluster="facility_id"``): records of one facility are not
    independent, so each interval uses a variance from scores summed within facilities
    (Liang & Zeger 1986), with the CR1 factor G/(G−1)·(n−1)/(n−k) of R
    ``sandwich::vcovCL(type = "HC1")`` where a sandwich is used: risk difference and
    difference in means from the saturated models ``y ~ kp`` (replacing Newcombe and
    Welch), RR from the saturated Poisson model; g-computation RD/RR from the stacked
    estimating equations of the logistic model and the two mean risks (a closed form,
    replacing the bootstrap); IPTW from the weighted model ``y ~ kp``
    (:func:`analysis.adjustment.iptw_effect` with `cluster`); ANCOVA/OLS and the gamma GLM
    by their CR1 sandwich; Cox models by the Lin–Wei robust variance (Lin & Wei 1989; R
    ``coxph(..., cluster = )``, no small-sample factor). The only cluster bootstrap is the
    unadjusted difference in mean costs (skewed; percentile interval of 2,000 resamples
    of whole facilities, from per-facility sums).

    Adjusted models need at least 10 events and 10 non-events (binary, Cox: events) in
    each procedure, and 10 complete records per procedure (continuous); otherwise the
    adjusted columns are NaN and ``note`` says why. No exception escapes for small or
    empty groups, nor for an outcome whose columns are missing (its row says so). Unknown
    outcome names raise ``ValueError``.

    Run time: about 1–2 s for 5,000 records; the estimates always use every record, and
    only the bootstraps resample at most 5,000 records per replicate. Clustering costs no
    extra time: its variances are O(n p) sums by cluster, and the clustered g-computation
    needs no bootstrap (at 1,000,000 records, on the same loaded machine, 33 s clustered vs
    34 s model-based).

    Examples
    --------
    >>> from data import demo_records
    >>> table = compare_procedures(demo_records(1500, seed=4), outcomes=["cement_leakage"])
    >>> table.loc[0, "effect_measure"], bool(table.loc[0, "adjusted"] < 0)
    ('RD', True)
    """
    level = check_level(level)
    responder = responder if responder is not None else ResponderDefinition()
    names = list(DEFAULT_OUTCOMES if outcomes is None else
                 ([outcomes] if isinstance(outcomes, str) else outcomes))
    kinds = {name: _kind(records, name) for name in names}
    t_all = treatment_indicator(records)
    shared: _Shared | None = None
    design_note = ""
    if adjust:
        covs = default_covariates(records) if covariates is None else tuple(covariates)
        try:
            shared = _shared_design(records, t_all, covs)
            if min(int((shared.t == 1).sum()), int((shared.t == 0).sum())) < 2:
                design_note = "adjusted models skipped: fewer than 2 records in a procedure"
                shared = None
        except (AnalysisError, ValueError) as exc:
            design_note = f"adjusted models skipped: {_skip_reason(exc)}"
            shared = None
        if shared is not None and shared.design.dropped:
            design_note = "covariates dropped: " + ", ".join(shared.design.dropped)

    clusters, cluster_note = _clusters_of(records, cluster)
    rows = []
    for name in names:
        kind = kinds[name]
        try:
            if name in HORIZON_OUTCOMES:
                row = _horizon_row(records, name, t_all, shared, adjust, level, seed, n_boot,
                                   clusters)
            elif kind == "binary":
                resolved = _binary_outcome(records, name, responder)
                if resolved is None:
                    resolved = (_floats(records[name]), name)
                y_all, definition = resolved
                row = _binary_row(records, name, y_all, definition, t_all, shared, adjust,
                                  level, seed, n_boot, use_baseline=name == "pain_responder",
                                  with_iptw=name in iptw_outcomes, clusters=clusters)
            elif kind == "continuous":
                row = _continuous_row(records, name, t_all, shared, adjust, level, clusters)
            elif kind == "cost":
                row = _cost_row(records, t_all, adjust, cost_options, covariates, level, seed,
                                clusters)
            else:
                row = _time_row(records, t_all, shared, adjust, level, clusters)
        except (AnalysisError, ValueError, KeyError) as exc:
            # E.g. a column the outcome needs is missing from these records.
            row = _nan_row(name, kind, name)
            _add_note(row, f"skipped: {_skip_reason(exc)}")
        if design_note and adjust and kind != "cost":
            _add_note(row, design_note)
        if cluster_note:
            _add_note(row, cluster_note)
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    p_family = table["p_adjusted"].where(table["p_adjusted"].notna(), table["p_unadjusted"])
    table["p_bh"] = adjust_pvalues(p_family.to_numpy(dtype=float), method="fdr_bh")
    float_cols = [c for c in COMPARISON_COLUMNS if c not in (
        "outcome", "kind", "definition", "effect_measure", "unadjusted_method",
        "adjusted_method", "note", "unadjusted_measure", "n_vp", "n_kp", "clustered",
        "n_clusters")]
    table[float_cols] = table[float_cols].astype(float)
    table[["n_vp", "n_kp", "n_clusters"]] = table[["n_vp", "n_kp", "n_clusters"]].fillna(
        0).astype(int)
    table["clustered"] = table["clustered"].fillna(False).astype(bool)
    return table


# --------------------------------------------------------------------------------------------
# Fracture survival
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class FractureSurvival(Result):
    """Time to a new vertebral fracture by procedure.

    Attributes
    ----------
    km : pandas.DataFrame
        Kaplan–Meier estimate per procedure (:func:`analysis.survival.kaplan_meier` with a
        ``procedure`` column first): ``procedure, time, at_risk, events, censored, survival,
        se, low, high``. Deaths are censored at the last contact.
    at_risk_table : pandas.DataFrame
        ``procedure, time, at_risk, cumulative_events`` at days 0, 90, 180, 365 and 730: the
        number still followed and without a new fracture just before the day, and the
        fractures up to and including the day.
    logrank : analysis.survival.LogrankResult or None
        Log-rank test KP vs VP (``chi2, df, p_value``); None when it could not run.
    cox : pandas.DataFrame
        Adjusted Cox model (:func:`analysis.survival.cox_model`, Efron ties): ``term,
        hazard_ratio, low, high, p_value, coef, se``; the KP row is
        ``procedure[kyphoplasty]``. Empty when skipped (see `notes`).
    cumulative_incidence : pandas.DataFrame
        Aalen–Johansen cumulative incidence of a new fracture per procedure, with death as
        a competing risk when deaths are recorded: ``procedure, time, cumulative_incidence,
        low, high, at_risk`` (``at_risk``: still followed just before the time).
    competing_risk : bool
        Whether deaths were treated as a competing event.
    n_vp, n_kp, events_vp, events_kp : int
        Records with a known time and fractures, per procedure.
    notes : tuple of str
        Skipped analyses and why.
    level : float
        Confidence level.
    """

    km: pd.DataFrame
    at_risk_table: pd.DataFrame
    logrank: Any
    cox: pd.DataFrame
    cumulative_incidence: pd.DataFrame
    competing_risk: bool
    n_vp: int
    n_kp: int
    events_vp: int
    events_kp: int
    notes: tuple[str, ...]
    level: float


def _fracture_arrays(records: pd.DataFrame) -> dict[str, NDArray[np.float64]]:
    """The columns of :func:`fracture_time_event` as arrays (``time``, ``event``, ``cr_time``,
    ``cr_code``), without building its frame: stacking four million-row columns into one
    block costs more than computing them. Without a ``died`` column ``cr_time`` and ``cr_code``
    are the arrays ``time`` and ``event`` themselves."""
    for column in ("adjacent_fracture", "followup_days"):
        if column not in records.columns:
            raise ValueError(f"records need a {column!r} column")
    size = len(records)
    fracture = _floats(records["adjacent_fracture"])
    fdays = (_floats(records["adjacent_fracture_days"])
             if "adjacent_fracture_days" in records.columns else np.full(size, np.nan))
    followup = _floats(records["followup_days"])
    time = np.where(fracture == 1, fdays, followup)
    time[np.isnan(fracture)] = np.nan
    event = np.where(np.isnan(time), np.nan, (fracture == 1).astype(float))
    # Deaths compete only up to the last contact: fractures are ascertained up to
    # followup_days, so a later death (or one without its day) is censored there.
    cr_time, cr_code = fracture_competing_times(records, time, event)
    return {"time": time, "event": event, "cr_time": cr_time, "cr_code": cr_code}


def _at_risk_rows(label: str, km: pd.DataFrame) -> list[dict[str, Any]]:
    """The :data:`AT_RISK_DAYS` rows of one arm from its Kaplan–Meier table (one row per
    distinct time, ``at_risk`` = times at least that time): the same counts as comparing every
    record's time with each day, without another pass over the records."""
    times = km["time"].to_numpy()
    at_risk = km["at_risk"].to_numpy()
    events = np.concatenate([[0], np.cumsum(km["events"].to_numpy())])
    rows = []
    for day in AT_RISK_DAYS:
        first = int(np.searchsorted(times, day, side="left"))  # first time >= day
        rows.append({"procedure": label, "time": day,
                     "at_risk": int(at_risk[first]) if first < len(times) else 0,
                     "cumulative_events": int(events[np.searchsorted(times, day, side="right")])})
    return rows


def fracture_survival(
    records: pd.DataFrame,
    level: float = 0.95,
    covariates: Sequence[str] | None = None,
    *,
    models: bool = True,
) -> FractureSurvival:
    """Kaplan–Meier, number at risk, log-rank, adjusted Cox and cumulative incidence.

    Parameters
    ----------
    records : pandas.DataFrame
        Records with ``procedure``, ``adjacent_fracture``, ``adjacent_fracture_days``,
        ``followup_days`` and, when available, ``died`` / ``death_days``.
    level : float, default 0.95
        Confidence level.
    models : bool, default True
        Fit the log-rank test and the adjusted Cox model. ``False`` gives only the curves and
        the number-at-risk table (fast enough for an interactive page on a million records).
    covariates : sequence of str, optional
        Adjustment covariates of the Cox model; default age, sex, etiology, levels_treated,
        country (those present). Complete cases; covariates with one value are dropped.

    Returns
    -------
    FractureSurvival

    Notes
    -----
    Event times as :func:`fracture_time_event` (its arrays, from ``_fracture_arrays``).
    Kaplan–Meier with Greenwood SEs and
    log(-log) intervals; log-rank test (Mantel 1966); Cox proportional hazards with Efron
    ties (Efron 1977), deaths censored, i.e. a cause-specific hazard ratio; Aalen–Johansen
    cumulative incidence (Aalen & Johansen 1978) with codes 0 censored at
    ``followup_days``, 1 fracture at ``adjacent_fracture_days``, 2 death at ``death_days``
    for a death without a preceding fracture on or before the last contact (a death after
    the last contact is censored at ``followup_days``: fractures are only ascertained up
    to then). Because the elderly osteoporotic population
    dies often, 1 − KM overstates the fracture risk; show the cumulative incidence.

    Examples
    --------
    >>> from data import demo_records
    >>> fs = fracture_survival(demo_records(1000, seed=5))
    >>> fs.at_risk_table.columns.tolist()
    ['procedure', 'time', 'at_risk', 'cumulative_events']
    """
    level = check_level(level)
    t_all = treatment_indicator(records)
    te = _fracture_arrays(records)
    time, event = te["time"], te["event"]
    have = ~np.isnan(time) & ~np.isnan(t_all)
    competing = "died" in records.columns
    notes: list[str] = []
    km_parts, risk_rows, cif_parts = [], [], []
    counts = {}
    cr_time, cr_code = te["cr_time"], te["cr_code"]
    for label, code in ((VP, 0.0), (KP, 1.0)):
        # Row numbers, then take: far faster than a boolean mask per array at 1M records.
        rows = np.flatnonzero(have & (t_all == code))
        if rows.size == 0:
            counts[label] = (0, 0)
            risk_rows += [{"procedure": label, "time": day, "at_risk": 0, "cumulative_events": 0}
                          for day in AT_RISK_DAYS]
            notes.append(f"no {label} records with a follow-up time")
            continue
        km = kaplan_meier(time.take(rows), event.take(rows), level=level)
        counts[label] = (int(rows.size), int(km["events"].sum()))
        risk_rows += _at_risk_rows(label, km)
        km.insert(0, "procedure", label)
        km_parts.append(km)
        cif = cumulative_incidence(cr_time.take(rows), cr_code.take(rows), level=level,
                                   at_risk=True)
        cif.insert(0, "procedure", label)
        cif_parts.append(cif)
    km_frame = pd.concat(km_parts, ignore_index=True) if km_parts else pd.DataFrame(
        columns=["procedure", "time", "at_risk", "events", "censored", "survival", "se", "low",
                 "high"])
    cif_frame = pd.concat(cif_parts, ignore_index=True) if cif_parts else pd.DataFrame(
        columns=["procedure", "time", "cumulative_incidence", "low", "high", "at_risk"])
    logrank = None
    cox = pd.DataFrame(columns=["term", "hazard_ratio", "low", "high", "p_value", "coef", "se"])
    if not models:
        notes.append("log-rank test and Cox model not requested (models=False)")
    else:
        try:
            labels = np.where(t_all[have] == 1, KP, VP)
            logrank = logrank_test(time[have], event[have], labels)
        except (InsufficientDataError, ValueError) as exc:
            notes.append(f"log-rank test skipped: {_skip_reason(exc)}")
        covs = [c for c in (DEFAULT_COVARIATES if covariates is None else covariates)
                if c in records.columns]
        frame = pd.DataFrame({"time": time, "event": event,
                              "procedure": pd.Categorical(np.where(t_all == 1, KP, np.where(
                                  t_all == 0, VP, None)), categories=[VP, KP])},
                             index=records.index)
        for c in covs:
            col = records[c]
            if isinstance(col.dtype, pd.CategoricalDtype):
                frame[c] = col  # category order kept: the first observed level is the reference
            elif pd.api.types.is_bool_dtype(col.dtype) or not pd.api.types.is_numeric_dtype(
                    col.dtype):
                frame[c] = col.astype(object).where(col.notna(), None)
            else:
                frame[c] = _floats(col)
        frame = frame[have].dropna()
        used = []
        for c in covs:
            if frame[c].nunique() < 2:
                notes.append(f"Cox covariate {c} dropped (one value only)")
            else:
                used.append(c)
        try:
            if min(counts[VP][1], counts[KP][1]) < MIN_EVENTS_ADJUSTED:
                raise InsufficientDataError(
                    "Cox model", f"{counts[KP][1]} events in kyphoplasty and {counts[VP][1]} in "
                    f"vertebroplasty, at least {MIN_EVENTS_ADJUSTED} each needed")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                cox = cox_model(frame, "time", "event", ["procedure", *used], level=level)
            if any("converge" in str(w.message) for w in caught):
                notes.append("Cox model: the fit did not converge; a covariate level without "
                             "events gives an unbounded hazard ratio (see the rows with infinite "
                             "limits); the KP row is still estimable")
        except (InsufficientDataError, ValueError, np.linalg.LinAlgError) as exc:
            notes.append(f"adjusted Cox model skipped: {_skip_reason(exc)}")
    return FractureSurvival(
        km=km_frame,
        at_risk_table=pd.DataFrame(risk_rows, columns=["procedure", "time", "at_risk",
                                                       "cumulative_events"]),
        logrank=logrank,
        cox=cox,
        cumulative_incidence=cif_frame,
        competing_risk=competing,
        n_vp=counts[VP][0],
        n_kp=counts[KP][0],
        events_vp=counts[VP][1],
        events_kp=counts[KP][1],
        notes=tuple(notes),
        level=level,
    )


# --------------------------------------------------------------------------------------------
# Pain mixed model
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class PainMixedModel(Result):
    """Linear mixed model of pain over the follow-up visits, KP vs VP.

    Attributes
    ----------
    contrasts : pandas.DataFrame
        Per visit: ``visit, day, n_vp, n_kp, difference`` (KP − VP, adjusted), ``low, high,
        p_value`` (Wald z, as statsmodels' ``MixedLMResults.t_test``).
    interaction_p : float
        Wald test that the KP − VP difference is the same at every visit (all procedure ×
        visit interaction terms 0); NaN with a single visit.
    interaction_chi2 : float
        Its statistic.
    interaction_df : int
        Its degrees of freedom (visits − 1).
    fixed_effects : pandas.DataFrame
        ``term, coef, se, low, high, p_value`` of the fixed effects.
    formula : str
        The model formula.
    group_variance : float
        Variance of the random patient intercept.
    residual_variance : float
        Residual variance.
    n_patients, n_observations : int
        Patients (groups) and visit scores modelled.
    visits_dropped : tuple of str
        Visits left out (too few observations).
    converged : bool
        Whether the REML fit converged.
    notes : tuple of str
        Dropped visits and covariates, convergence warnings.
    level : float
        Confidence level.
    """

    contrasts: pd.DataFrame
    interaction_p: float
    interaction_chi2: float
    interaction_df: int
    fixed_effects: pd.DataFrame
    formula: str
    group_variance: float
    residual_variance: float
    n_patients: int
    n_observations: int
    visits_dropped: tuple[str, ...]
    converged: bool
    notes: tuple[str, ...]
    level: float


def _pain_long(
    records: pd.DataFrame, covariates: Sequence[str]
) -> tuple[pd.DataFrame, list[str], list[str]]:
    t_all = treatment_indicator(records)
    base = _floats(records["pain_baseline"]) if "pain_baseline" in records.columns else None
    if base is None:
        raise ValueError("records need a 'pain_baseline' column")
    if "patient_id" in records.columns:
        group = records["patient_id"].astype(object)
        if "record_id" in records.columns:
            group = group.where(group.notna(), "record:" + records["record_id"].astype(str))
        else:
            group = group.where(group.notna(), pd.Series(
                [f"row:{i}" for i in range(len(records))], index=records.index))
    elif "record_id" in records.columns:
        group = records["record_id"].astype(str)
    else:
        group = pd.Series([f"row:{i}" for i in range(len(records))], index=records.index)
    keep = ~np.isnan(t_all) & ~np.isnan(base)
    cov_values: dict[str, Any] = {}
    notes: list[str] = []
    used: list[str] = []
    for c in covariates:
        if c not in records.columns:
            notes.append(f"covariate {c} not in the data")
            continue
        col = records[c]
        if isinstance(col.dtype, pd.CategoricalDtype):
            values = col  # category order kept (first observed level = reference)
            keep &= values.notna().to_numpy()
        elif pd.api.types.is_bool_dtype(col.dtype) or not pd.api.types.is_numeric_dtype(
                col.dtype):
            values = col.astype(object).where(col.notna(), None).map(
                lambda v: None if v is None else str(v))
            keep &= values.notna().to_numpy()
        else:
            values = pd.Series(_floats(col), index=records.index)
            keep &= values.notna().to_numpy()
        cov_values[c] = values
    parts = []
    for suffix, (_label, day, _) in PAIN_VISITS.items():
        column = f"pain_{suffix}"
        if column not in records.columns:
            continue
        y = _floats(records[column])
        sel = keep & ~np.isnan(y)
        if not sel.any():
            continue
        part = pd.DataFrame({"pain": y[sel], "visit": suffix, "day": day,
                             "kp": t_all[sel], "pain_baseline": base[sel],
                             "group": group.to_numpy()[sel]})
        for c, values in cov_values.items():
            if isinstance(values.dtype, pd.CategoricalDtype):
                part[c] = pd.Categorical(values.to_numpy()[sel],
                                         categories=values.cat.categories)
            else:
                part[c] = values.to_numpy()[sel]
        parts.append(part)
    long = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    for c in cov_values:
        if len(long) and isinstance(long[c].dtype, pd.CategoricalDtype):
            long[c] = long[c].cat.remove_unused_categories()
        if len(long) and long[c].nunique() >= 2:
            used.append(c)
        elif len(long):
            notes.append(f"covariate {c} dropped (one value only)")
    return long, used, notes


def pain_mixed_model(
    records: pd.DataFrame,
    covariates: Sequence[str] = ("age", "sex", "etiology"),
    level: float = 0.95,
) -> PainMixedModel:
    """Linear mixed model of post-baseline pain with KP − VP contrasts at each visit.

    Parameters
    ----------
    records : pandas.DataFrame
        Records with ``procedure``, ``pain_baseline``, the ``pain_<visit>`` scores,
        ``patient_id`` (falling back to ``record_id`` where missing) and the covariates.
    covariates : sequence of str, default ("age", "sex", "etiology")
        Patient-level covariates besides the baseline score. Complete cases; covariates
        with one value are dropped.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    PainMixedModel

    Raises
    ------
    InsufficientDataError
        When no visit has enough scores in both procedures.

    Notes
    -----
    ``smf.mixedlm('pain ~ C(visit) * kp + pain_baseline + covariates', groups=patient,
    re_formula='1').fit(reml=True)`` on the long format of the post-baseline visits (Laird &
    Ware 1982): a random intercept per patient, REML, visits missing at random handled by
    the likelihood. The baseline score is a covariate, not an outcome (methods note §1.6).
    The contrast at visit v is ``b_kp + b_kp:visit[v]`` (``m.t_test``); the interaction
    test is the joint Wald test of the ``kp:visit`` terms. Visits with fewer than 10
    scores in either procedure are dropped. With balanced, complete data and
    patient-level covariates the fixed effects equal OLS (sanity property used in the
    tests).

    Examples
    --------
    >>> from data import demo_records
    >>> m = pain_mixed_model(demo_records(600, seed=6))
    >>> m.contrasts.columns.tolist()[:5]
    ['visit', 'day', 'n_vp', 'n_kp', 'difference']
    """
    import statsmodels.formula.api as smf
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    level = check_level(level)
    method = "Pain mixed model"
    long, used, notes = _pain_long(records, covariates)
    if long.empty:
        raise InsufficientDataError(method, "no post-baseline pain scores with a procedure and "
                                    "a baseline score")
    counts = long.groupby(["visit", "kp"]).size().unstack(fill_value=0)
    dropped = []
    visits = [v for v in dict.fromkeys(long["visit"])]
    for v in visits:
        n0 = int(counts.loc[v].get(0.0, 0)) if v in counts.index else 0
        n1 = int(counts.loc[v].get(1.0, 0)) if v in counts.index else 0
        if min(n0, n1) < MIN_VISIT_OBSERVATIONS:
            dropped.append(v)
            notes.append(f"visit {v} dropped: {n1} kyphoplasty and {n0} vertebroplasty scores, "
                         f"at least {MIN_VISIT_OBSERVATIONS} each needed")
    long = long[~long["visit"].isin(dropped)].reset_index(drop=True)
    kept = [v for v in visits if v not in dropped]
    if not kept:
        raise InsufficientDataError(method, "no visit has enough scores in both procedures")
    ref = kept[0]
    long["visit"] = pd.Categorical(long["visit"], categories=kept)
    visit_term = f"C(visit, Treatment(reference='{ref}'))"
    terms = [f"{visit_term} * kp" if len(kept) > 1 else "kp", "pain_baseline"]
    for c in used:
        categorical = long[c].dtype == object or isinstance(long[c].dtype, pd.CategoricalDtype)
        terms.append(f"C({c})" if categorical else c)
    formula = "pain ~ " + " + ".join(terms)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = smf.mixedlm(formula, long, groups=long["group"], re_formula="1")
        fit = model.fit(reml=True)
    for w in caught:
        if issubclass(w.category, ConvergenceWarning | RuntimeWarning | UserWarning):
            text = str(w.message).split("\n")[0]
            if text not in notes:
                notes.append(text)
    names = list(fit.model.exog_names)
    k_fe = int(fit.k_fe)
    z = _z(level)
    rows = []
    interaction_idx = []
    by_visit = long.groupby(["visit", "kp"], observed=True).size()
    for v in kept:
        vec = np.zeros((1, k_fe))
        vec[0, names.index("kp")] = 1.0
        if v != ref:
            j = names.index(f"{visit_term}[T.{v}]:kp")
            vec[0, j] = 1.0
            interaction_idx.append(j)
        res = fit.t_test(vec)
        est = float(np.squeeze(res.effect))
        se = float(np.squeeze(res.sd))
        rows.append({"visit": v, "day": int(long.loc[long["visit"] == v, "day"].iloc[0]),
                     "n_vp": int(by_visit.get((v, 0.0), 0)),
                     "n_kp": int(by_visit.get((v, 1.0), 0)),
                     "difference": est, "low": est - z * se, "high": est + z * se,
                     "p_value": float(2 * st.norm.sf(abs(est / se)))})
    chi2 = p_int = math.nan
    df_int = len(interaction_idx)
    if interaction_idx:
        r_matrix = np.zeros((df_int, len(fit.params)))  # fixed effects come first
        for i, j in enumerate(interaction_idx):
            r_matrix[i, j] = 1.0
        wald = fit.wald_test(r_matrix, scalar=True)
        chi2, p_int = float(wald.statistic), float(wald.pvalue)
    fe = fit.fe_params
    bse = fit.bse_fe
    fixed = pd.DataFrame({"term": list(fe.index), "coef": fe.to_numpy(),
                          "se": bse.to_numpy()})
    fixed["low"] = fixed["coef"] - z * fixed["se"]
    fixed["high"] = fixed["coef"] + z * fixed["se"]
    fixed["p_value"] = 2 * st.norm.sf(np.abs(fixed["coef"] / fixed["se"]))
    return PainMixedModel(
        contrasts=pd.DataFrame(rows, columns=["visit", "day", "n_vp", "n_kp", "difference",
                                              "low", "high", "p_value"]),
        interaction_p=p_int,
        interaction_chi2=chi2,
        interaction_df=df_int,
        fixed_effects=fixed,
        formula=formula + " + (1 | patient); REML",
        group_variance=float(np.asarray(fit.cov_re)[0, 0]),
        residual_variance=float(fit.scale),
        n_patients=int(long["group"].nunique()),
        n_observations=int(len(long)),
        visits_dropped=tuple(dropped),
        converged=bool(fit.converged),
        notes=tuple(notes),
        level=level,
    )


# --------------------------------------------------------------------------------------------
# Minimum detectable differences
# --------------------------------------------------------------------------------------------


def minimum_detectable_differences(
    records: pd.DataFrame,
    outcomes: Sequence[str] | None = None,
    power: float = 0.8,
    alpha: float = 0.05,
    responder: Any = None,
    cost_options: Any = None,
) -> pd.DataFrame:
    """Smallest KP − VP differences detectable with the current numbers of patients.

    Parameters
    ----------
    records : pandas.DataFrame
        Procedure records.
    outcomes : sequence of str, optional
        Default: pain_responder, cement_leakage, pulmonary_embolism, adjacent_fracture_12m,
        pain_month1, duration_min, cost. Binary outcomes and continuous columns as in
        :func:`compare_procedures` (time-to-event outcomes are not supported).
    power : float, default 0.8
        Target power.
    alpha : float, default 0.05
        Two-sided significance level.
    responder : analysis.outcomes.ResponderDefinition, optional
        Definition of ``pain_responder``.
    cost_options : analysis.costs.CostOptions, optional
        Currency conversion of costs.

    Returns
    -------
    pandas.DataFrame
        ``outcome, kind, n_vp, n_kp, reference, mdd_increase, mdd_decrease, unit, note``.
        Binary: ``reference`` is the VP risk, ``mdd_increase`` the smallest detectable
        rise of the KP risk above it and ``mdd_decrease`` the smallest detectable fall
        (risk-difference scale). Continuous: ``reference`` is the pooled SD and both mdd
        columns hold the smallest detectable difference in means.

    Notes
    -----
    Binary: :func:`analysis.power.minimum_detectable_difference` (pooled-variance normal
    approximation of R ``power.prop.test``); a fall from p is a rise from 1 − p of the
    complementary outcome. Continuous: :func:`analysis.power.minimum_detectable_mean_difference`
    (two-sample t, pooled SD).

    Examples
    --------
    >>> from data import demo_records
    >>> mdd = minimum_detectable_differences(demo_records(2000, seed=7), ["cement_leakage"])
    >>> bool(0 < mdd.loc[0, "mdd_increase"] < 0.1)
    True
    """
    responder = responder if responder is not None else ResponderDefinition()
    names = list(outcomes) if outcomes is not None else [
        "pain_responder", "cement_leakage", "pulmonary_embolism", "adjacent_fracture_12m",
        "pain_month1", "duration_min", "cost"]
    t_all = treatment_indicator(records)
    rows = []
    for name in names:
        kind = _kind(records, name)
        row: dict[str, Any] = {"outcome": name, "kind": kind, "n_vp": 0, "n_kp": 0,
                               "reference": math.nan, "mdd_increase": math.nan,
                               "mdd_decrease": math.nan, "unit": "", "note": ""}
        if kind == "time_to_event":
            row["note"] = "not available for time-to-event outcomes"
            rows.append(row)
            continue
        if kind == "binary":
            resolved = _binary_outcome(records, name, responder)
            y = resolved[0] if resolved is not None else _floats(records[name])
            unit = "risk difference"
        elif kind == "cost":
            options = cost_options if cost_options is not None else CostOptions()
            y = normalise_costs(records, options)["cost_reporting"].to_numpy(dtype=float)
            unit = options.reporting_currency
        else:
            y = _floats(records[name])
            unit = "points" if name.startswith("pain_") else (
                "minutes" if name == "duration_min" else "outcome units")
        have = ~np.isnan(y)
        a, b = y[have & (t_all == 1)], y[have & (t_all == 0)]
        row.update(n_vp=int(b.size), n_kp=int(a.size), unit=unit)
        try:
            if name in HORIZON_OUTCOMES:
                # The VP risk is its cumulative incidence at the horizon; n counts the
                # patients whose status at the horizon is known (conservative: the censored
                # ones add some information too).
                time, code = horizon_time_event(records, name)
                vp_rows = np.flatnonzero(t_all == 0)
                cif = horizon_groups(time[vp_rows], code[vp_rows],
                                     HORIZON_OUTCOMES[name].horizon_days,
                                     np.zeros(vp_rows.size, dtype=np.intp), 1)
                p_ref = float(cif["estimate"][0])
                row["note"] = ("reference: VP cumulative incidence at the horizon; n: patients "
                               "with a known status there (conservative)")
            elif kind == "binary":
                p_ref = float(b.mean()) if b.size else math.nan
                row["reference"] = p_ref
                if not 0.0 < p_ref < 1.0:
                    raise ValueError(f"the vertebroplasty risk is {p_ref:g}; it must be "
                                     "strictly between 0 and 1")
                row["mdd_increase"] = minimum_detectable_difference(
                    a.size, b.size, p_ref, power=power, alpha=alpha)
                row["mdd_decrease"] = minimum_detectable_difference(
                    a.size, b.size, 1.0 - p_ref, power=power, alpha=alpha)
            else:
                if min(a.size, b.size) < 2:
                    raise InsufficientDataError("Minimum detectable difference",
                                                "fewer than 2 values in a procedure")
                sd = math.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1))
                               / (a.size + b.size - 2))
                row["reference"] = sd
                mdd = minimum_detectable_mean_difference(a.size, b.size, sd, power=power,
                                                         alpha=alpha)
                row["mdd_increase"] = row["mdd_decrease"] = mdd
        except (InsufficientDataError, ValueError) as exc:
            row["note"] = _skip_reason(exc)
        rows.append(row)
    return pd.DataFrame(rows, columns=["outcome", "kind", "n_vp", "n_kp", "reference",
                                       "mdd_increase", "mdd_decrease", "unit", "note"])

