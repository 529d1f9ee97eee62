"""Table 1: baseline characteristics of vertebroplasty (VP) and kyphoplasty (KP) patients.

:func:`table_one` returns a tidy frame (one row per variable and per level) with formatted
summaries per procedure, standardised mean differences (SMD) and missing counts, unweighted
and, when weights are given (e.g. IPTW from :func:`analysis.adjustment.propensity_weights`),
weighted. Balance is judged by the SMD; baseline p-values are optional and off by default
(STROBE, Vandenbroucke et al. 2007, item 14a; tableone's ``test = FALSE``): they test a null
hypothesis about the population that is not the question, and with many records they are
small for trivial differences.

References
----------
.. [1] Austin PC. Balance diagnostics for comparing the distribution of baseline covariates
   between treatment groups in propensity-score matched samples. Stat Med 2009;28:3083-3107.
.. [2] Austin PC, Stuart EA. Moving towards best practice when using inverse probability of
   treatment weighting (IPTW). Stat Med 2015;34:3661-3679.
.. [3] Yang D, Dalton JE. A unified approach to measuring the effect size between two groups
   using SAS. SAS Global Forum 2012, paper 335.
.. [4] Welch BL. The generalization of "Student's" problem when several different population
   variances are involved. Biometrika 1947;34:28-35.
.. [5] Vandenbroucke JP, von Elm E, Altman DG, et al. Strengthening the Reporting of
   Observational Studies in Epidemiology (STROBE): explanation and elaboration. PLoS Med
   2007;4:e297 (item 14a: "significance tests should be avoided in descriptive tables").
.. [6] Yoshida K, Bartel A. tableone: Create 'Table 1' to describe baseline characteristics
   (R package; ``print(..., smd = TRUE, test = FALSE)`` for observational comparisons).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats as st
from numpy.typing import ArrayLike, NDArray

from analysis._kernels import _floats
from analysis.adjustment import (
    KP,
    VP,
    PropensityResult,
    smd_categorical,
    standardised_difference,
    treatment_indicator,
)
from analysis.adjustment.balance import _weighted_mean_var
from analysis.adjustment.design import _is_categorical

__all__ = ["DEFAULT_TABLE_ONE_VARIABLES", "index_region", "table_one"]

#: Variables of :func:`table_one` by default (``index_region`` is derived from
#: ``index_level``).
DEFAULT_TABLE_ONE_VARIABLES: tuple[str, ...] = (
    "age", "sex", "etiology", "levels_treated", "index_region", "fracture_age_weeks",
    "prior_fractures", "country", "pain_baseline", "setting",
)

#: Numeric variables summarised as median [IQR] by default (skewed counts and durations).
_SKEWED = frozenset({"fracture_age_weeks", "prior_fractures"})

_REGION_ORDER = ("thoracic", "thoracolumbar", "lumbar")


def index_region(index_level: pd.Series) -> pd.Series:
    """Spinal region of the index level: thoracic (T1–T10), thoracolumbar (T11–L2), lumbar
    (L3–L5 and S1).

    Examples
    --------
    >>> index_region(pd.Series(["T8", "T12", "L1", "L4", None])).tolist()
    ['thoracic', 'thoracolumbar', 'thoracolumbar', 'lumbar', nan]
    """
    text = index_level.astype(object)
    mapping = {f"T{i}": "thoracic" for i in range(1, 11)}
    mapping.update({"T11": "thoracolumbar", "T12": "thoracolumbar", "L1": "thoracolumbar",
                    "L2": "thoracolumbar", "L3": "lumbar", "L4": "lumbar", "L5": "lumbar",
                    "S1": "lumbar"})
    # Map each distinct level once (not every row): a million rows have ~20 distinct levels.
    codes, uniques = pd.factorize(text, use_na_sentinel=True)
    regions = np.array([mapping.get(str(v).strip().upper()) for v in uniques] + [None],
                       dtype=object)
    values = regions[codes]  # code -1 (missing) picks the trailing None
    return pd.Series(pd.Categorical(values, categories=list(_REGION_ORDER)),
                     index=index_level.index, name="index_region")


def _weights_array(records: pd.DataFrame, weights: Any) -> NDArray[np.float64] | None:
    if weights is None:
        return None
    if isinstance(weights, PropensityResult):
        weights = weights.weights
    if isinstance(weights, pd.Series):
        if weights.index.equals(records.index):
            return _floats(weights)
        if len(weights) != len(records):
            raise ValueError("weights must have one value per record")
        return _floats(weights.reset_index(drop=True))
    arr = np.asarray(weights, dtype=float)
    if arr.shape != (len(records),):
        raise ValueError("weights must have one value per record")
    return arr


def _weighted_quantiles(x: NDArray, w: NDArray, qs: Sequence[float]) -> list[float]:
    """Weighted Hazen quantiles: interpolate between the sorted values placed at the
    midpoints of their cumulative weight shares, ``(Σ_{j≤i} w_j − w_i/2) / Σw``; with equal
    weights this is ``numpy.quantile(method="hazen")`` (Hyndman & Fan type 5)."""
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    keep = ws > 0
    xs, ws = xs[keep], ws[keep]
    cw = np.cumsum(ws)
    positions = (cw - ws / 2) / cw[-1]
    return [float(np.interp(q, positions, xs)) for q in qs]


def _summary(x: NDArray, w: NDArray | None, style: str) -> str:
    if x.size == 0:
        return "–"
    if style == "median":
        if w is None:
            q1, med, q3 = np.quantile(x, [0.25, 0.5, 0.75], method="hazen")
        else:
            q1, med, q3 = _weighted_quantiles(x, w, (0.25, 0.5, 0.75))
        return f"{med:.1f} [{q1:.1f}, {q3:.1f}]"
    mean, var = _weighted_mean_var(x, w)
    sd = math.sqrt(var) if not math.isnan(var) else math.nan
    return f"{mean:.1f} ({sd:.1f})" if not math.isnan(sd) else f"{mean:.1f} (–)"


def _categorical_test(table: NDArray, seed: int = 0) -> tuple[float, str]:
    """Chi-square without continuity correction, or Fisher's exact test with small counts."""
    table = table[table.sum(axis=1) > 0]
    if table.shape[0] < 2 or np.any(table.sum(axis=0) == 0):
        return math.nan, ""
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    if np.all(expected >= 5):
        return float(st.chi2_contingency(table, correction=False).pvalue), "chi-square"
    if table.shape[0] == 2:
        return float(st.fisher_exact(table).pvalue), "Fisher exact"
    res = st.fisher_exact(table, method=st.MonteCarloMethod(
        n_resamples=9999, rng=np.random.default_rng(seed)))
    return float(res.pvalue), "Fisher exact (Monte Carlo, 9,999 tables)"


def table_one(
    records: pd.DataFrame,
    weights: pd.Series | ArrayLike | PropensityResult | None = None,
    variables: Sequence[str] | Mapping[str, str] | None = None,
    *,
    p_values: bool = False,
) -> pd.DataFrame:
    """Baseline characteristics by procedure with standardised differences (SMD) and,
    optionally, p-values.

    Parameters
    ----------
    records : pandas.DataFrame
        Procedure records with ``procedure`` and the variables. Records that are neither
        VP nor KP are ignored.
    weights : Series, array or PropensityResult, optional
        One weight per record (e.g. IPTW). Adds weighted summaries and ``smd_weighted``;
        records with a missing weight are left out of the weighted columns.
    variables : sequence of str or mapping, optional
        Default :data:`DEFAULT_TABLE_ONE_VARIABLES` (those present; ``index_region`` is
        derived from ``index_level``). A mapping gives the style of each variable:
        ``"mean"`` (mean (SD)), ``"median"`` (median [IQR]) or ``"categorical"``
        (n (%)); by default categorical/text/boolean columns are categorical,
        fracture_age_weeks and prior_fractures median [IQR], other numbers mean (SD).
    p_values : bool, default False
        Add the columns ``p_value`` and ``test`` (unweighted tables only). Off by default:
        imbalance is judged by the SMD, not by a test [5]_ [6]_.

    Returns
    -------
    pandas.DataFrame
        One row for the group sizes (``variable = "n"``), one per continuous variable, and
        per categorical variable one row (``level = ""``) followed by a row per observed
        level. Columns: ``variable, level, vertebroplasty, kyphoplasty`` (text: "n (%)",
        "mean (SD)" or "median [IQR]"; percentages of the non-missing values), ``smd``,
        with weights ``vertebroplasty_weighted, kyphoplasty_weighted, smd_weighted``, then
        ``missing_vp, missing_kp`` (on the variable rows) and, with ``p_values=True``,
        ``p_value`` and ``test``.

    Notes
    -----
    * **p-values** (only with ``p_values=True``; unweighted only, NaN when `weights` are given, because tests in the
      weighted pseudo-population are not meaningful): Welch's t-test for every numeric
      variable, also those shown as median [IQR]; for categorical variables Pearson's
      chi-square without continuity correction when every expected count is at least 5,
      otherwise Fisher's exact test (Monte Carlo with 9,999 tables and a fixed seed for
      tables larger than 2 x 2).
    * **SMD**, KP − VP (Austin 2009): continuous ``(x̄1 − x̄0) / sqrt((s1² + s0²)/2)``;
      each level of a categorical variable ``(p1 − p0) / sqrt((p1(1 − p1) + p0(1 − p0))/2)``
      (signed); on the variable row the multi-level SMD of Yang & Dalton (2012), which is
      unsigned and equals |binary SMD| for a two-level variable. |SMD| < 0.1 is the usual
      balance threshold.
    * **Weighted SD convention**: weighted means and proportions, and weighted variances
      per Austin & Stuart (2015), ``s_w² = Σw / ((Σw)² − Σw²) · Σw(x − x̄_w)²`` in each
      group, so the SMD denominator is recomputed in the weighted sample (R ``cobalt``
      keeps the unweighted denominator instead). Weighted counts are sums of weights.
    * **Quartiles**: Hazen's definition (Hyndman & Fan type 5, ``numpy.quantile(method=
      "hazen")``), whose weighted version interpolates at the midpoints of the cumulative
      weights, so unit weights give the unweighted values.

    Examples
    --------
    >>> rows = pd.DataFrame({"procedure": ["vertebroplasty"] * 3 + ["kyphoplasty"] * 2,
    ...                      "sex": ["F", "F", "M", "F", "M"], "age": [70, 80, 75, 72, 78]})
    >>> t1 = table_one(rows, variables=["age", "sex"])
    >>> t1[["variable", "level", "vertebroplasty", "kyphoplasty"]].to_numpy().tolist()[3]
    ['sex', 'F', '2 (66.7)', '1 (50.0)']
    >>> list(t1.columns[:5]), "p_value" in t1
    (['variable', 'level', 'vertebroplasty', 'kyphoplasty', 'smd'], False)
    """
    t_all = treatment_indicator(records)
    in_arms = ~np.isnan(t_all)
    w_all = _weights_array(records, weights)
    weighted = w_all is not None
    if variables is None:
        names = [v for v in DEFAULT_TABLE_ONE_VARIABLES
                 if v in records.columns or (v == "index_region" and "index_level" in records)]
        styles: dict[str, str] = {}
    elif isinstance(variables, Mapping):
        names, styles = list(variables), dict(variables)
    else:
        names, styles = list(variables), {}
    for name, style in styles.items():
        if style not in ("mean", "median", "categorical"):
            raise ValueError(f"style of {name!r} must be 'mean', 'median' or 'categorical', "
                             f"got {style!r}")
    t = t_all[in_arms]
    w = w_all[in_arms] if weighted else None
    g1, g0 = t == 1, t == 0
    wok = None if w is None else ~np.isnan(w)

    rows: list[dict[str, Any]] = []

    def base(variable: str, level: str) -> dict[str, Any]:
        row: dict[str, Any] = {"variable": variable, "level": level, VP: "", KP: "",
                               "missing_vp": math.nan, "missing_kp": math.nan,
                               "p_value": math.nan, "test": "", "smd": math.nan}
        if weighted:
            row.update({f"{VP}_weighted": "", f"{KP}_weighted": "", "smd_weighted": math.nan})
        return row

    head = base("n", "")
    head[VP], head[KP] = str(int(g0.sum())), str(int(g1.sum()))
    if weighted:
        head[f"{VP}_weighted"] = f"{np.nansum(w[g0]):.1f}"
        head[f"{KP}_weighted"] = f"{np.nansum(w[g1]):.1f}"
    rows.append(head)

    for name in names:
        if name == "index_region" and "index_region" not in records.columns:
            if "index_level" not in records.columns:
                raise ValueError("index_region needs an index_level column")
            column = index_region(records["index_level"])
        elif name not in records.columns:
            raise ValueError(f"records have no column {name!r}")
        else:
            column = records[name]
        column = column[in_arms]
        style = styles.get(name) or ("categorical" if _is_categorical(column) else
                                     "median" if name in _SKEWED else "mean")
        present = column.notna().to_numpy()
        miss_vp, miss_kp = int((~present & g0).sum()), int((~present & g1).sum())
        if style == "categorical":
            # Levels as small integers (text of each distinct value, computed once), so the
            # counts are bincounts and the comparisons integer ones, not a pass over a
            # million Python strings per level.
            codes, uniques = pd.factorize(column, use_na_sentinel=True)
            texts = [str(v) for v in np.asarray(uniques, dtype=object)]
            if isinstance(column.dtype, pd.CategoricalDtype):
                order = [str(c) for c in column.cat.categories]
            else:
                order = sorted(set(texts))
            position = {lv: i for i, lv in enumerate(order)}
            level = np.append(np.array([position[x] for x in texts], dtype=np.int64), -1)[codes]
            present = level >= 0
            totals = np.bincount(level[present], minlength=len(order))
            observed_index = [i for i in range(len(order)) if totals[i] > 0]
            observed = [order[i] for i in observed_index]
            by_group = [np.bincount(level[present & g], minlength=len(order))
                        for g in (g0, g1)]
            counts = np.array([[int(by_group[0][i]), int(by_group[1][i])]
                               for i in observed_index]).reshape(-1, 2)
            # smd_categorical orders levels by their text: rank codes in that order.
            text_rank = {lv: r for r, lv in enumerate(sorted(order))}
            ranked = np.array([text_rank[lv] for lv in order], dtype=float)
            rank_values = np.where(present, ranked[np.maximum(level, 0)], np.nan)
            var_row = base(name, "")
            var_row.update(missing_vp=miss_vp, missing_kp=miss_kp)
            if p_values and not weighted:
                var_row["p_value"], var_row["test"] = _categorical_test(counts)
            var_row["smd"] = smd_categorical(rank_values, t)
            if weighted:
                var_row["smd_weighted"] = smd_categorical(
                    np.where(present & wok, rank_values, np.nan), t, np.nan_to_num(w))
            rows.append(var_row)
            n0, n1 = counts.sum(axis=0) if counts.size else (0, 0)
            for i, lv in zip(observed_index, observed, strict=True):
                row = base(name, lv)
                c0, c1 = by_group[0][i], by_group[1][i]
                row[VP] = f"{c0} ({100 * c0 / n0:.1f})" if n0 else "–"
                row[KP] = f"{c1} ({100 * c1 / n1:.1f})" if n1 else "–"
                is_level = level == i
                indicator = np.where(present, is_level.astype(float), np.nan)
                row["smd"] = standardised_difference(indicator, t, binary=True)
                if weighted:
                    for key, sel in ((f"{VP}_weighted", g0), (f"{KP}_weighted", g1)):
                        use = sel & present & wok
                        total = float(w[use].sum())
                        part = float(w[use & is_level].sum())
                        row[key] = f"{part:.1f} ({100 * part / total:.1f})" if total > 0 \
                            else "–"
                    row["smd_weighted"] = standardised_difference(
                        np.where(wok, indicator, np.nan), t, np.nan_to_num(w), binary=True)
                rows.append(row)
        else:
            x = _floats(column)
            row = base(name, "")
            row.update(missing_vp=miss_vp, missing_kp=miss_kp)
            a, b = x[g1 & present], x[g0 & present]
            row[VP], row[KP] = _summary(b, None, style), _summary(a, None, style)
            if p_values and not weighted and min(a.size, b.size) >= 2:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    row["p_value"] = float(st.ttest_ind(a, b, equal_var=False).pvalue)
                row["test"] = "Welch t"
            row["smd"] = standardised_difference(x, t, binary=False)
            if weighted:
                for key, sel in ((f"{VP}_weighted", g0), (f"{KP}_weighted", g1)):
                    use = sel & present & wok
                    row[key] = _summary(x[use], w[use], style)
                row["smd_weighted"] = standardised_difference(
                    np.where(wok, x, np.nan), t, np.nan_to_num(w), binary=False)
            rows.append(row)
    columns = ["variable", "level", VP, KP, "smd"]
    if weighted:
        columns += [f"{VP}_weighted", f"{KP}_weighted", "smd_weighted"]
    columns += ["missing_vp", "missing_kp"]
    if p_values:
        columns += ["p_value", "test"]
    frame = pd.DataFrame(rows, columns=columns)
    for c in ("missing_vp", "missing_kp"):
        frame[c] = frame[c].astype("Int64")
    return frame
