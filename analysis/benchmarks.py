"""Published literature benchmarks for vertebroplasty (VP) and kyphoplasty (KP) outcomes.

The table ships inside the package as ``analysis/reference/literature_benchmarks.csv`` (see
``analysis/reference/README.md``). Every figure was copied from an entry tagged **[S]** (seen
verbatim in the cited source) of the project's clinical-evidence reference (§1 and §2); no
value is derived or computed, so rows without a published interval have empty ``low`` and
``high``. Percentages are stored as proportions (54.7% → 0.547, as the outcome tables report
rates); the ``reported`` column keeps the figure as printed.

Show these beside a hospital's own rates as context, not as targets: the populations,
definitions (per patient or per treated level, imaging used, follow-up) and study designs
differ from a registry's, and pooled estimates from meta-analyses mix trials and observational
studies.

Examples
--------
>>> table = literature_benchmarks()
>>> set(table.evidence_tag)
{'S'}
>>> benchmark_for("cement_leakage", "kp_vs_vp")[["measure", "estimate", "low", "high"]]
      measure  estimate   low  high
0  risk_ratio      0.62  0.47   0.8
"""

from __future__ import annotations

import functools
from importlib import resources

import pandas as pd

__all__ = ["BENCHMARK_COLUMNS", "MEASURES", "PROCEDURES", "benchmark_for", "literature_benchmarks"]

#: Columns of :func:`literature_benchmarks`, in order.
BENCHMARK_COLUMNS: tuple[str, ...] = (
    "outcome", "procedure", "measure", "estimate", "low", "high", "unit", "n_studies",
    "n_patients", "population", "source_key", "citation", "url", "evidence_tag", "reported",
    "notes",
)

#: Values of ``procedure``: one procedure, the KP vs VP comparison (VP reference: differences
#: KP − VP, ratios KP/VP), or ``vp_or_kp`` for a figure that covers both procedures together.
PROCEDURES: tuple[str, ...] = ("vertebroplasty", "kyphoplasty", "kp_vs_vp", "vp_or_kp")

#: Values of ``measure``. ``range`` rows give only ``low`` and ``high`` (the reported range).
MEASURES: tuple[str, ...] = (
    "proportion", "risk_ratio", "mean_difference", "mean", "mean_change", "range",
)

_DTYPES = {
    "estimate": "float64",
    "low": "float64",
    "high": "float64",
    "n_studies": "Int64",
    "n_patients": "Int64",
}


@functools.lru_cache(maxsize=1)
def _read() -> pd.DataFrame:
    source = resources.files("analysis").joinpath("reference", "literature_benchmarks.csv")
    with source.open("r", encoding="utf-8") as handle:
        table = pd.read_csv(handle, dtype=str, keep_default_na=False)
    if tuple(table.columns) != BENCHMARK_COLUMNS:
        raise RuntimeError(
            f"literature_benchmarks.csv has columns {list(table.columns)}; expected "
            f"{list(BENCHMARK_COLUMNS)}"
        )
    for column, dtype in _DTYPES.items():
        table[column] = pd.to_numeric(table[column].replace("", None)).astype(dtype)
    return table


def literature_benchmarks() -> pd.DataFrame:
    """All literature benchmarks.

    Returns
    -------
    pandas.DataFrame
        One row per published figure with columns ``outcome, procedure, measure, estimate,
        low, high, unit, n_studies, n_patients, population, source_key, citation, url,
        evidence_tag, reported, notes``:

        * ``outcome``: the analysis name where one exists (``cement_leakage``,
          ``pulmonary_embolism``, ``adjacent_fracture_12m``, ``duration_min`` as in
          :func:`analysis.outcomes.outcome_summary`), otherwise a descriptive key
          (``subsequent_fracture``, ``pain_change``, ``pain_vas``, ``odi``,
          ``kyphotic_angle``, ``kyphosis_reduction``, ``outpatient_share``);
        * ``procedure``: one of :data:`PROCEDURES`;
        * ``measure``: one of :data:`MEASURES`; proportions are in [0, 1];
        * ``estimate``, ``low``, ``high``: the published value and interval (or range), NaN
          when not published; ``n_studies``/``n_patients``: nullable integers;
        * ``evidence_tag``: ``"S"`` for every row (seen verbatim in the source);
        * ``reported``: the figure as printed; ``notes``: definition and caveats.

        A fresh copy each call (the file is read once).

    Examples
    --------
    >>> table = literature_benchmarks()
    >>> table.loc[table.source_key == "LUETMER", ["estimate", "low", "high", "n_patients"]]
        estimate   low  high  n_patients
    16     0.094  0.06  0.13         244
    """
    return _read().copy()


def benchmark_for(outcome: str, procedure: str | None = None) -> pd.DataFrame:
    """Benchmarks of one outcome, optionally of one procedure (or the KP vs VP comparison).

    Parameters
    ----------
    outcome : str
        Value of the ``outcome`` column, e.g. ``"cement_leakage"``.
    procedure : str, optional
        One of :data:`PROCEDURES`; exact match (``"kyphoplasty"`` does not return the
        ``"kp_vs_vp"`` rows).

    Returns
    -------
    pandas.DataFrame
        The matching rows with a fresh ``RangeIndex``; empty (same columns) when the
        literature table has no figure for the outcome.

    Raises
    ------
    ValueError
        If `procedure` is not one of :data:`PROCEDURES`.

    Examples
    --------
    >>> benchmark_for("adjacent_fracture_12m", "kyphoplasty")[["estimate", "n_patients"]]
       estimate  n_patients
    0     0.357         140
    >>> benchmark_for("infection").empty
    True
    """
    if procedure is not None and procedure not in PROCEDURES:
        raise ValueError(f"procedure must be one of {', '.join(PROCEDURES)}; got {procedure!r}")
    table = _read()
    mask = table["outcome"] == outcome
    if procedure is not None:
        mask &= table["procedure"] == procedure
    return table[mask].reset_index(drop=True)
