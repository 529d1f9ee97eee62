"""Covariate coding of the adjustment models: the treatment indicator and the design matrix
(see the package docstring, "Covariate coding")."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from analysis._kernels import (
    _floats,
    _gram,
    _independent_columns,
    _xtv,
)

VP = "vertebroplasty"
KP = "kyphoplasty"

#: Covariates of the propensity-score and outcome models (always used when present).
DEFAULT_COVARIATES: tuple[str, ...] = ("age", "sex", "etiology", "levels_treated", "country")
#: Added to the defaults when the records have at least one value for them.
OPTIONAL_COVARIATES: tuple[str, ...] = ("fracture_age_weeks", "prior_fractures")


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def treatment_indicator(records: pd.DataFrame) -> NDArray[np.float64]:
    """1.0 for kyphoplasty, 0.0 for vertebroplasty, NaN for anything else (or missing).

    Examples
    --------
    >>> treatment_indicator(pd.DataFrame({"procedure": ["kyphoplasty", "vertebroplasty",
    ...                                                  None]})).tolist()
    [1.0, 0.0, nan]
    """
    if "procedure" not in records.columns:
        raise ValueError("records need a 'procedure' column")
    proc = records["procedure"]
    if isinstance(proc.dtype, pd.CategoricalDtype):
        cats = list(proc.cat.categories)
        codes = proc.cat.codes.to_numpy()
        lookup = np.full(len(cats) + 1, np.nan)
        for i, name in enumerate(cats):
            if name == KP:
                lookup[i] = 1.0
            elif name == VP:
                lookup[i] = 0.0
        return lookup[codes]  # code -1 (missing) picks the trailing NaN
    values = proc.astype(object).to_numpy()
    out = np.full(values.size, np.nan)
    out[values == KP] = 1.0
    out[values == VP] = 0.0
    return out


def _is_categorical(series: pd.Series) -> bool:
    dtype = series.dtype
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_bool_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
    )


def _codes(series: pd.Series) -> tuple[NDArray[np.intp], list[str]]:
    """Integer codes (-1 missing) and level labels; categorical order kept, else sorted."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.codes.to_numpy().astype(np.intp), [str(c) for c in
                                                            series.cat.categories]
    codes, uniques = pd.factorize(series.astype(object), sort=True)
    return codes.astype(np.intp), [str(u) for u in uniques]


# --------------------------------------------------------------------------------------------
# Covariate design
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CovariateDesign:
    """Model matrix of the modelled records (see the module notes on the coding).

    Attributes
    ----------
    matrix : ndarray, shape (n_used, n_columns)
        C-ordered model matrix: the intercept (if requested), the covariate columns (numeric
        ones centred and scaled), then the extra columns (e.g. the treatment indicator).
    names : tuple of str
        Column names: ``Intercept``, ``age``, ``sex[M]``, ``fracture_age_weeks_missing``,
        ..., ``kp``.
    rows : ndarray of int
        Positions (0-based, into the records) of the modelled records.
    n_lead : int
        1 with an intercept column, else 0.
    n_extra : int
        Number of trailing extra columns.
    covariates : tuple of str
        Covariates actually used.
    dropped : tuple of str
        Covariates (or collinear columns) dropped, each with the reason.
    imputed : dict
        Numeric covariate → number of records whose missing value was imputed.
    n_dropped_missing : int
        Eligible records left out for a missing categorical covariate.
    terms : tuple of str
        Covariate terms in statsmodels notation (``C(sex)``, ``age``, ...), for display.
    levels : dict
        Categorical covariate → (reference level, other levels) as used.
    """

    matrix: NDArray[np.float64]
    names: tuple[str, ...]
    rows: NDArray[np.intp]
    n_lead: int
    n_extra: int
    covariates: tuple[str, ...]
    dropped: tuple[str, ...]
    imputed: dict[str, int]
    n_dropped_missing: int
    terms: tuple[str, ...]
    levels: dict[str, tuple[str, tuple[str, ...]]]

    @property
    def covariate_matrix(self) -> NDArray[np.float64]:
        """The covariate columns only (a view)."""
        return self.matrix[:, self.n_lead:self.matrix.shape[1] - self.n_extra]

    @property
    def covariate_names(self) -> tuple[str, ...]:
        return self.names[self.n_lead:len(self.names) - self.n_extra]

    def indicator_columns(self) -> NDArray[np.intp]:
        """Positions in `matrix` of the 0/1 covariate columns (levels, missing flags)."""
        names = self.covariate_names
        return np.array([self.n_lead + j for j, name in enumerate(names)
                         if name.endswith("]") or name.endswith("_missing")], dtype=np.intp)


def default_covariates(records: pd.DataFrame) -> tuple[str, ...]:
    """:data:`DEFAULT_COVARIATES` present in `records`, plus the optional ones
    (:data:`OPTIONAL_COVARIATES`) that have at least one value.

    Examples
    --------
    >>> default_covariates(pd.DataFrame({"age": [70], "sex": ["F"],
    ...                                  "prior_fractures": [None]}))
    ('age', 'sex')
    """
    chosen = [c for c in DEFAULT_COVARIATES if c in records.columns]
    chosen += [c for c in OPTIONAL_COVARIATES
               if c in records.columns and bool(records[c].notna().any())]
    return tuple(chosen)


def covariate_design(
    records: pd.DataFrame,
    covariates: Sequence[str],
    eligible: NDArray[np.bool_] | None = None,
    *,
    intercept: bool = False,
    extra: dict[str, NDArray[np.float64]] | None = None,
    impute: bool = True,
) -> CovariateDesign:
    """Build the model matrix for the eligible records (see module notes for the coding).

    Parameters
    ----------
    records : pandas.DataFrame
        Procedure records.
    covariates : sequence of str
        Columns to code. Absent or all-missing columns are dropped (and listed).
    eligible : ndarray of bool, optional
        Records to model (e.g. those with a treatment and an outcome). Default: all.
    intercept : bool, default False
        Put a column of ones first.
    extra : dict of name → ndarray, optional
        Numeric columns (one value per record) placed last as they are, with NaN set to 0
        (give those records weight 0 when fitting), e.g. ``{"kp": treatment}``. Not
        checked for collinearity.
    impute : bool, default True
        Median + missing indicator for numeric covariates. False: records with a missing
        numeric covariate are left out too (complete cases).

    Returns
    -------
    CovariateDesign

    Examples
    --------
    >>> frame = pd.DataFrame({"age": [70, 80, None, 75], "sex": ["F", "M", "F", "F"]})
    >>> design = covariate_design(frame, ["age", "sex"])
    >>> design.names
    ('age', 'age_missing', 'sex[M]')
    """
    n = len(records)
    mask = np.ones(n, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    extra = dict(extra or {})
    dropped: list[str] = []
    categorical: dict[str, tuple[NDArray[np.intp], list[str]]] = {}
    numeric: dict[str, NDArray[np.float64]] = {}
    order: list[str] = []
    for name in dict.fromkeys(covariates):
        if name not in records.columns:
            dropped.append(f"{name} (not in the data)")
            continue
        col = records[name]
        if _is_categorical(col):
            categorical[name] = _codes(col)
        else:
            numeric[name] = _floats(col)
        order.append(name)
    # Records with a missing categorical covariate are left out (and numeric ones too
    # when not imputing).
    complete = mask.copy()
    for codes, _ in categorical.values():
        complete &= codes >= 0
    if not impute:
        for values in numeric.values():
            complete &= ~np.isnan(values)
    n_dropped = int(mask.sum() - complete.sum())
    rows = np.flatnonzero(complete)

    everyone = rows.size == n

    def take(values: NDArray) -> NDArray:
        return values if everyone else values[rows]

    # First pass: decide the columns; each is a function filling its slot of the matrix.
    fillers: list[Any] = []
    names: list[str] = []
    terms: list[str] = []
    used: list[str] = []
    imputed: dict[str, int] = {}
    levels: dict[str, tuple[str, tuple[str, ...]]] = {}
    for name in order:
        if name in categorical:
            codes, labels = categorical[name]
            sub = take(codes)
            counts = np.bincount(sub, minlength=len(labels)) if sub.size else np.zeros(0, int)
            observed = np.flatnonzero(counts)
            if observed.size < 2:
                dropped.append(f"{name} (one value only)")
                continue
            ref, others = observed[0], observed[1:]
            for level in others:
                fillers.append(lambda out, sub=sub, level=level: np.equal(sub, level, out=out))
                names.append(f"{name}[{labels[level]}]")
            levels[name] = (labels[ref], tuple(labels[i] for i in others))
            terms.append(f"C({name})")
            used.append(name)
        else:
            values = take(numeric[name])
            miss = np.isnan(values)
            if miss.all():
                dropped.append(f"{name} (all values missing)")
                continue
            filled = values
            if miss.any():
                filled = np.where(miss, float(np.median(values[~miss])), values)
            sd = float(filled.std())
            if not sd > 0 and not miss.any():
                dropped.append(f"{name} (one value only)")
                continue
            if sd > 0:
                centre = float(filled.mean())
                fillers.append(lambda out, f=filled, c=centre, d=sd: np.divide(
                    np.subtract(f, c, out=out), d, out=out))
                names.append(name)
                terms.append(name)
            if miss.any():
                fillers.append(lambda out, m=miss: np.copyto(out, m))
                names.append(f"{name}_missing")
                terms.append(f"{name}_missing")
                imputed[name] = int(miss.sum())
            used.append(name)
    lead = 1 if intercept else 0
    extra_values = [take(np.asarray(v, dtype=float)) for v in extra.values()]
    width = lead + len(fillers) + len(extra_values)
    matrix = np.empty((rows.size, width))
    column = np.empty(rows.size)
    if intercept:
        matrix[:, 0] = 1.0
    for j, fill in enumerate(fillers):
        fill(column)
        matrix[:, lead + j] = column
    for j, values in enumerate(extra_values):
        matrix[:, lead + len(fillers) + j] = np.nan_to_num(values, nan=0.0)
    # Drop covariate columns collinear with the intercept or with earlier columns.
    if fillers:
        block = matrix[:, lead:lead + len(fillers)]
        gram = np.empty((len(fillers) + 1, len(fillers) + 1))
        gram[0, 0] = rows.size
        gram[0, 1:] = gram[1:, 0] = _xtv(block, np.ones(rows.size))
        gram[1:, 1:] = _gram(block)
        keep = _independent_columns(gram, 1)
        if not keep.all():
            for j in np.flatnonzero(~keep):
                dropped.append(f"{names[j]} (collinear with other columns)")
            matrix = np.delete(matrix, lead + np.flatnonzero(~keep), axis=1)
            names = [nm for nm, k in zip(names, keep, strict=True) if k]
    lead_names = ["Intercept"] if intercept else []
    return CovariateDesign(
        matrix=matrix,
        names=tuple(lead_names + names + list(extra)),
        rows=rows,
        n_lead=len(lead_names),
        n_extra=len(extra_values),
        covariates=tuple(used),
        dropped=tuple(dropped),
        imputed=imputed,
        n_dropped_missing=n_dropped,
        terms=tuple(terms),
        levels=levels,
    )
