"""Facility scorecard: one facility against a chosen peer group.

For each monitored outcome the scorecard gives the facility's risk-adjusted rate, its
observed/expected (O/E) ratio with a confidence interval, the distribution of the peers'
O/E ratios, the facility's rank among facility + peers with a rank interval, a shrunken
(random-intercept) estimate that pulls low-volume facilities towards the peer mean, and the
facility's quarterly trend as a Laney p′ chart. It reuses :mod:`analysis.quality` for the
case-mix model, the O/E intervals and the p-chart.

Estimands
---------
* **O/E ratio** (indirect standardisation): observed events of the facility over the events
  expected of its own patients by the case-mix model fitted on the facility and its peers
  (:func:`analysis.quality.risk_model`; crude ``n × pooled rate`` when no model can be fitted).
  CI: exact Poisson below 10 events, Byar from 10 (:func:`analysis.quality.oe_ratio`).
* **Risk-adjusted rate**: ``O/E × the pooled rate of facility + peers`` — the rate the facility
  would have with the peer set's average case mix, for the records with the outcome recorded.
* **Rank**: 1 = lowest O/E (fewest events relative to expectation) among the facility and its
  peers. The rank interval follows Goldstein H, Spiegelhalter DJ. League tables and their
  limitations: statistical issues in comparisons of institutional performance. JRSS-A
  1996;159:385–443 (§3.3): each unit's log O/E is drawn from its approximate sampling
  distribution, ``N(log((O + ½)/E), 1/(O + ½))``, the units are ranked in every draw, and the
  interval is the 2.5% and 97.5% quantiles of the unit's simulated ranks (fixed seed). The
  expected rank has the closed form of the pairwise-comparison method
  ``1 + Σ_j Φ((m_i - m_j)/√(s_i² + s_j²))`` (:func:`expected_ranks`).
* **Shrunken estimate**: a random-intercept logistic model with the case-mix linear predictor
  as offset, ``logit P(y_ij = 1) = offset_ij + β0 + u_i``, ``u_i ~ N(0, σ²)``, fitted by maximum
  likelihood with the Laplace approximation (the default of R's lme4 ``glmer``: Bates D et al.
  J Stat Softw 2015;67(1)), against which it is tested. The facility's shrunken ratio is
  ``Σ_j expit(offset_ij + β0 + û_i) / Σ_j expit(offset_ij + β0)`` ("predicted over expected")
  and its shrunken rate that ratio × the pooled rate. Its reference is a *typical* facility of
  the peer set (u = 0), not the pooled rate of the O/E, so with few peers, one of them large
  and extreme, the shrunken ratio can lie further from 1 than the O/E. This is the approach
  CMS publishes for its hospital outcome measures (Krumholz HM et al. Circulation 2006;113:1683–92; Ash AS et al.
  Statistical issues in assessing hospital performance, COPSS-CMS White Paper, 2012). Its
  interval is from the conditional mode ± z × the conditional SD of û_i (β0 and σ taken as
  known, so it is somewhat narrow for facilities with few records).

Examples
--------
>>> from data import demo_records
>>> records = demo_records(2000, seed=3)
>>> profile = facility_profile(records)
>>> peers = peer_group(profile, "FAC-009", "country")
>>> peers.kind, "FAC-009" in peers.members
('country', False)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.stats as st
from scipy import optimize, special

from analysis._results import Result
from analysis.errors import InsufficientDataError
from analysis.quality import (
    caterpillar,
    horizon_outcome,
    outcome_values,
    p_chart,
    risk_model,
)

__all__ = [
    "PEER_GROUP_KINDS",
    "SCORECARD_OUTCOMES",
    "PeerGroup",
    "PeerSetFit",
    "RandomInterceptFit",
    "ScorecardResult",
    "expected_ranks",
    "facility_profile",
    "fit_peer_set",
    "peer_group",
    "quarterly_p_chart",
    "random_intercept_logit",
    "rank_intervals",
    "scorecard",
    "volume_bands",
]

#: Peer groups a user can choose: every other facility, the same country, the same region
#: (country and region), the same volume band, or a given list of facilities.
PEER_GROUP_KINDS: tuple[str, ...] = ("all", "country", "region", "volume", "list")
#: Outcomes on the scorecard (all binary: new fracture as its 12-month indicator, among the
#: procedures whose status at 365 days is known; see :func:`analysis.quality.horizon_outcome`).
SCORECARD_OUTCOMES: tuple[str, ...] = (
    "cement_leakage",
    "pulmonary_embolism",
    horizon_outcome("adjacent_fracture"),
    "non_response",
)
#: Number of volume bands (tertiles of the facilities' procedure counts).
VOLUME_BANDS = 3
#: Draws of the rank simulation.
RANK_DRAWS = 4000


# ---------------------------------------------------------------------------------------------
# Peer groups
# ---------------------------------------------------------------------------------------------
def volume_bands(volumes: pd.Series, n_bands: int = VOLUME_BANDS) -> pd.Series:
    """Volume band of each facility: quantile groups of its number of procedures.

    Parameters
    ----------
    volumes : Series
        Procedures per facility (index: facility id).
    n_bands : int
        Number of bands (3 = tertiles). Facilities are ordered by volume (ties by id) and cut
        into ``n_bands`` groups of (nearly) equal size, so every band has facilities even when
        many share a volume.

    Returns
    -------
    Series
        ``"band k of n (a–b procedures)"`` per facility, k = 1 the lowest volumes.

    Examples
    --------
    >>> volume_bands(pd.Series({"A": 5, "B": 50, "C": 500, "D": 60, "E": 7, "F": 900})).tolist()
    ['band 1 of 3 (5–7)', 'band 2 of 3 (50–60)', 'band 3 of 3 (500–900)', \
'band 2 of 3 (50–60)', 'band 1 of 3 (5–7)', 'band 3 of 3 (500–900)']
    """
    if n_bands < 1:
        raise ValueError("n_bands must be at least 1")
    if volumes.empty:
        return pd.Series(dtype=object)
    order = pd.DataFrame({"id": volumes.index.astype(str), "n": volumes.to_numpy()})
    order = order.sort_values(["n", "id"], kind="mergesort")
    position = np.arange(len(order))
    band = np.minimum(position * n_bands // len(order), n_bands - 1) + 1
    order["band"] = band
    ranges = order.groupby("band")["n"].agg(["min", "max"])
    names = {b: f"band {b} of {n_bands} ({int(r['min'])}–{int(r['max'])})"
             for b, r in ranges.iterrows()}
    labels = pd.Series([names[b] for b in order["band"]], index=order.index)
    return pd.Series(labels.sort_index().to_numpy(), index=volumes.index)


def facility_profile(records: pd.DataFrame, n_bands: int = VOLUME_BANDS) -> pd.DataFrame:
    """One row per facility: ``facility_id, country, region, n, volume_band``.

    Country and region are the most frequent values of the facility's records; ``n`` counts
    its procedures in ``records`` (the volume of the bands, :func:`volume_bands`).
    """
    if "facility_id" not in records:
        raise KeyError("records lack the column 'facility_id'")
    rows = records[records["facility_id"].notna()]
    if rows.empty:
        raise InsufficientDataError("Facility profile", "no records with a facility")
    facility = rows["facility_id"].astype(str)

    def mode(column: str) -> pd.Series:
        if column not in rows:
            return pd.Series(pd.NA, index=sorted(facility.unique()), dtype=object)
        values = rows[column].astype(object)
        pairs = pd.DataFrame({"f": facility.to_numpy(), "v": values.to_numpy()}).dropna()
        counts = pairs.groupby(["f", "v"]).size().reset_index(name="k")
        counts = counts.sort_values(["f", "k", "v"], ascending=[True, False, True])
        return counts.drop_duplicates("f").set_index("f")["v"]

    n = facility.value_counts().sort_index()
    table = pd.DataFrame({"facility_id": n.index, "n": n.to_numpy()})
    table["country"] = table["facility_id"].map(mode("country"))
    table["region"] = table["facility_id"].map(mode("region"))
    table["volume_band"] = volume_bands(n, n_bands).to_numpy()
    return table[["facility_id", "country", "region", "n", "volume_band"]]


@dataclasses.dataclass(frozen=True)
class PeerGroup(Result):
    """The facility and the peers it is compared with."""

    facility: str
    kind: str
    members: tuple[str, ...]
    description: str

    def to_frame(self) -> pd.DataFrame:
        """``facility_id, role`` (``"facility"`` first, then the peers)."""
        return pd.DataFrame({"facility_id": (self.facility, *self.members),
                             "role": ["facility"] + ["peer"] * len(self.members)})


def peer_group(profile: pd.DataFrame, facility: str, kind: str = "all",
               members: Sequence[str] | None = None) -> PeerGroup:
    """The peers of ``facility`` of the chosen kind.

    Parameters
    ----------
    profile : DataFrame
        :func:`facility_profile` of the records.
    facility : str
        The facility profiled.
    kind : {"all", "country", "region", "volume", "list"}
        Every other facility; those of the same country; of the same country and region; of
        the same volume band; or ``members``.
    members : sequence of str, optional
        The peers for ``kind="list"`` (the facility itself and unknown ids are dropped).

    Returns
    -------
    PeerGroup
        ``members`` sorted; ``description`` says in words who the peers are.

    Raises
    ------
    InsufficientDataError
        When the group has no peer.

    Examples
    --------
    >>> profile = pd.DataFrame({"facility_id": ["A", "B", "C"], "country": ["US", "US", "GB"],
    ...                         "region": ["W", "E", "L"], "n": [10, 20, 30],
    ...                         "volume_band": ["1", "1", "2"]})
    >>> peer_group(profile, "A", "country").members
    ('B',)
    """
    if kind not in PEER_GROUP_KINDS:
        raise ValueError(f"kind must be one of {', '.join(PEER_GROUP_KINDS)}")
    ids = profile["facility_id"].astype(str)
    if facility not in set(ids):
        raise InsufficientDataError("Peer group", f"facility {facility} has no records")
    own = profile[ids == facility].iloc[0]
    others = profile[ids != facility]
    if kind == "all":
        chosen, description = others, "all other facilities"
    elif kind == "country":
        chosen = others[others["country"] == own["country"]]
        description = f"facilities in the same country ({own['country']})"
    elif kind == "region":
        chosen = others[(others["country"] == own["country"])
                        & (others["region"] == own["region"])]
        description = f"facilities in the same region ({own['region']}, {own['country']})"
    elif kind == "volume":
        chosen = others[others["volume_band"] == own["volume_band"]]
        description = f"facilities in the same volume {own['volume_band']} procedures"
    else:
        wanted = {str(m) for m in (members or ())}
        chosen = others[others["facility_id"].astype(str).isin(wanted)]
        description = "a chosen list of facilities"
    peers = tuple(sorted(chosen["facility_id"].astype(str)))
    if not peers:
        raise InsufficientDataError("Peer group", f"no peer facility for {description}")
    return PeerGroup(facility, kind, peers, description)


# ---------------------------------------------------------------------------------------------
# Ranks
# ---------------------------------------------------------------------------------------------
def _log_oe_normal(observed: np.ndarray, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    o = np.asarray(observed, dtype=float) + 0.5
    e = np.asarray(expected, dtype=float)
    if np.any(~np.isfinite(e)) or np.any(e <= 0):
        raise ValueError("expected counts must be positive")
    return np.log(o / e), 1.0 / np.sqrt(o)


def expected_ranks(observed: Sequence[float] | np.ndarray,
                   expected: Sequence[float] | np.ndarray) -> np.ndarray:
    """Expected rank of each unit (1 = lowest O/E) by the pairwise-comparison method.

    With ``log O/E ~ N(m_i, s_i²)``, ``m_i = log((O_i + ½)/E_i)``, ``s_i² = 1/(O_i + ½)``, the
    expected rank is ``1 + Σ_{j≠i} P(θ_j < θ_i) = 1 + Σ_{j≠i} Φ((m_i - m_j)/√(s_i² + s_j²))``
    (Goldstein & Spiegelhalter 1996, JRSS-A 159:385).

    Examples
    --------
    >>> expected_ranks([0, 50], [10.0, 10.0]).round(2).tolist()
    [1.0, 2.0]
    """
    m, s = _log_oe_normal(np.asarray(observed), np.asarray(expected))
    z = (m[:, None] - m[None, :]) / np.sqrt(s[:, None] ** 2 + s[None, :] ** 2)
    prob = st.norm.cdf(z)
    np.fill_diagonal(prob, 0.0)
    return 1.0 + prob.sum(axis=1)


def rank_intervals(observed: Sequence[float] | np.ndarray,
                   expected: Sequence[float] | np.ndarray, level: float = 0.95,
                   draws: int = RANK_DRAWS, seed: int = 20260101) -> pd.DataFrame:
    """Rank of each unit's O/E with a rank interval by simulation.

    Parameters
    ----------
    observed, expected : array_like
        Observed and expected events per unit (expected > 0).
    level : float
        Coverage of the rank interval.
    draws : int
        Simulation draws.
    seed : int
        Seed of the simulation (fixed: the same data give the same intervals).

    Returns
    -------
    DataFrame
        ``rank`` (of the point O/E; ties get the lowest rank), ``rank_low``, ``rank_high``
        (equal-tailed quantiles of the simulated ranks), ``mean_rank`` (simulated) and
        ``expected_rank`` (:func:`expected_ranks`), one row per unit in input order; ``units``
        is the number ranked.

    Notes
    -----
    Each draw takes ``log O/E_i ~ N(log((O_i + ½)/E_i), 1/(O_i + ½))`` independently (the delta-
    method variance of a log Poisson count, with ½ added so units without events have a finite
    estimate) and ranks the units (1 = lowest). Goldstein H, Spiegelhalter DJ. JRSS-A
    1996;159:385–443; Marshall EC, Spiegelhalter DJ. BMJ 1998;316:1701.

    Examples
    --------
    >>> table = rank_intervals([0, 10, 40], [10.0, 10.0, 10.0])
    >>> table[["rank", "rank_low", "rank_high"]].to_numpy().tolist()
    [[1, 1, 1], [2, 2, 2], [3, 3, 3]]
    """
    if not 0.0 < level < 1.0:
        raise ValueError("level must be between 0 and 1")
    m, s = _log_oe_normal(np.asarray(observed), np.asarray(expected))
    k = m.size
    if k == 0:
        raise InsufficientDataError("Rank intervals", "no units")
    oe = (np.asarray(observed, dtype=float)) / np.asarray(expected, dtype=float)
    point = st.rankdata(oe, method="min").astype(int)
    rng = np.random.default_rng(seed)
    simulated = m[None, :] + s[None, :] * rng.standard_normal((int(draws), k))
    ranks = simulated.argsort(axis=1).argsort(axis=1) + 1
    alpha = 1.0 - level
    low = np.quantile(ranks, alpha / 2.0, axis=0, method="inverted_cdf")
    high = np.quantile(ranks, 1.0 - alpha / 2.0, axis=0, method="inverted_cdf")
    return pd.DataFrame({"rank": point, "rank_low": low.astype(int),
                         "rank_high": high.astype(int), "mean_rank": ranks.mean(axis=0),
                         "expected_rank": expected_ranks(observed, expected), "units": k})


# ---------------------------------------------------------------------------------------------
# Random-intercept logistic model (Laplace)
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RandomInterceptFit(Result):
    """Random-intercept logistic model ``logit p = offset + β0 + u_unit``, ``u ~ N(0, σ²)``.

    ``to_frame()`` returns ``effects``: ``unit, n, observed, mode, mode_sd, predicted,
    expected, ratio, ratio_low, ratio_high``.
    """

    intercept: float
    sigma: float
    log_likelihood: float
    effects: pd.DataFrame
    n: int
    converged: bool
    method: str = "maximum likelihood, Laplace approximation (as lme4::glmer, nAGQ = 1)"

    def to_frame(self) -> pd.DataFrame:
        return self.effects.copy()


def _modes(y_sum: np.ndarray, group: np.ndarray, k: int, eta0: np.ndarray, sigma: float,
           start: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Conditional modes û (Newton, vectorised over units), Σ p(1-p) at û and Σ log-lik."""
    u = start.copy()
    s2 = sigma * sigma
    for _ in range(100):
        p = special.expit(eta0 + u[group])
        score = y_sum - np.bincount(group, weights=p, minlength=k)
        w = np.bincount(group, weights=p * (1.0 - p), minlength=k)
        step = (score * s2 - u) / (w * s2 + 1.0)  # Newton step of score - u/σ², stable at σ=0
        u = u + step
        if np.max(np.abs(step)) < 1e-11:
            break
    eta = eta0 + u[group]
    p = special.expit(eta)
    w = np.bincount(group, weights=p * (1.0 - p), minlength=k)
    return u, w, eta


def random_intercept_logit(y: Sequence[float] | np.ndarray, unit: Sequence | pd.Series,
                           offset: Sequence[float] | np.ndarray | None = None,
                           level: float = 0.95) -> RandomInterceptFit:
    """Fit ``logit P(y = 1) = offset + β0 + u_unit``, ``u_unit ~ N(0, σ²)`` (Laplace ML).

    Parameters
    ----------
    y : array_like
        0/1 outcomes (no missing values).
    unit : array_like
        The unit (facility) of each record.
    offset : array_like, optional
        Known linear predictor per record (the case-mix model's logit of the expected risk);
        default 0 (``glmer(y ~ 1 + (1 | unit), family = binomial)``).
    level : float
        Level of the interval of each unit's shrunken ratio.

    Returns
    -------
    RandomInterceptFit
        ``intercept`` β0, ``sigma`` σ, the Laplace ``log_likelihood`` and per unit the
        conditional mode ``mode`` (û, lme4's ``ranef``), its conditional SD ``mode_sd``
        (``1/√(Σ p(1-p) + 1/σ²)``, lme4's ``condVar``), ``predicted = Σ expit(offset + β0 + û)``,
        ``expected = Σ expit(offset + β0)`` and their ``ratio`` (the CMS "predicted over
        expected" ratio) with ``ratio_low, ratio_high`` from ``û ± z·mode_sd``.

    Notes
    -----
    The log-likelihood ``Σ_i [ℓ_i(û_i) - û_i²/(2σ²) - ½ log(1 + σ² W_i)]`` with ``W_i = Σ p(1-p)``
    at the mode is maximised over (β0, σ ≥ 0) with L-BFGS-B, warm-starting the modes. It is the
    Laplace approximation of lme4 (Bates et al. J Stat Softw 2015;67(1)); CMS profiles
    hospitals with this hierarchical logistic model (Krumholz HM et al. Circulation
    2006;113:1683).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> unit = np.repeat(np.arange(20), 50)
    >>> y = (rng.random(1000) < special.expit(-1 + rng.normal(0, 0.5, 20)[unit])).astype(float)
    >>> fit = random_intercept_logit(y, unit)
    >>> fit.converged, 0 < fit.sigma < 1.5
    (True, True)
    """
    y_arr = np.asarray(y, dtype=float)
    if y_arr.ndim != 1 or np.any(~np.isin(y_arr, (0.0, 1.0))):
        raise ValueError("y must be a 1-d array of 0/1 values without missing values")
    labels = pd.Series(np.asarray(unit, dtype=object))
    if len(labels) != y_arr.size or labels.isna().any():
        raise ValueError("unit must have one non-missing value per outcome")
    off = np.zeros(y_arr.size) if offset is None else np.asarray(offset, dtype=float)
    if off.shape != y_arr.shape or not np.all(np.isfinite(off)):
        raise ValueError("offset must be finite, one value per outcome")
    codes, names = pd.factorize(labels, sort=True)
    k = names.size
    if k < 2:
        raise InsufficientDataError("Random-intercept model", f"{k} unit; 2 are needed")
    events = y_arr.sum()
    if events == 0 or events == y_arr.size:
        raise InsufficientDataError("Random-intercept model", "no events or no non-events")
    y_sum = np.bincount(codes, weights=y_arr, minlength=k)
    state = {"u": np.zeros(k)}

    def negative_loglik(params: np.ndarray) -> float:
        beta0, sigma = float(params[0]), float(params[1])
        u, w, eta = _modes(y_sum, codes, k, off + beta0, sigma, state["u"])
        state["u"] = u
        loglik = float(np.sum(y_arr * eta - np.logaddexp(0.0, eta)))
        penalty = float(np.sum(u * u)) / (2.0 * sigma * sigma) if sigma > 0 else 0.0
        return -(loglik - penalty - 0.5 * float(np.sum(np.log1p(sigma * sigma * w))))

    pooled = math.log(events / (y_arr.size - events))
    beta_start = pooled - float(np.mean(off))
    best = None
    for sigma_start in (0.5,):
        state["u"] = np.zeros(k)
        fit = optimize.minimize(negative_loglik, np.array([beta_start, sigma_start]),
                                method="L-BFGS-B", bounds=[(None, None), (0.0, 20.0)],
                                options={"ftol": 1e-14, "gtol": 1e-9, "maxiter": 500})
        if best is None or fit.fun < best.fun:
            best = fit
    beta0, sigma = float(best.x[0]), float(best.x[1])
    u, w, _ = _modes(y_sum, codes, k, off + beta0, sigma, np.zeros(k))
    loglik = -negative_loglik(best.x)
    sd = np.sqrt(sigma * sigma / (1.0 + sigma * sigma * w))
    z = st.norm.ppf(0.5 + level / 2.0)
    base = off + beta0

    def ratio(shift: np.ndarray) -> np.ndarray:
        predicted = np.bincount(codes, weights=special.expit(base + shift[codes]), minlength=k)
        return predicted

    expected = np.bincount(codes, weights=special.expit(base), minlength=k)
    predicted = ratio(u)
    effects = pd.DataFrame({
        "unit": np.asarray(names, dtype=object),
        "n": np.bincount(codes, minlength=k).astype(np.int64),
        "observed": np.rint(y_sum).astype(np.int64),
        "mode": u, "mode_sd": sd, "predicted": predicted, "expected": expected,
        "ratio": predicted / expected,
        "ratio_low": ratio(u - z * sd) / expected,
        "ratio_high": ratio(u + z * sd) / expected,
    })
    return RandomInterceptFit(beta0, sigma, loglik, effects, int(y_arr.size), bool(best.success))


# ---------------------------------------------------------------------------------------------
# Trend
# ---------------------------------------------------------------------------------------------
def quarterly_p_chart(records: pd.DataFrame, outcome: str, method: str = "laney",
                      period: str = "Q") -> pd.DataFrame:
    """Quarterly proportions of ``outcome`` with a p-chart or Laney p′ chart.

    Parameters
    ----------
    records : DataFrame
        The facility's records (``procedure_date`` and the outcome's columns).
    outcome : str
        A binary outcome of :func:`analysis.quality.outcome_values`.
    method : {"laney", "p"}
        Laney p′ (default; Laney DB. Quality Engineering 2002;14:531) or the classical 3σ chart,
        by :func:`analysis.quality.p_chart`; the centre line is the facility's own proportion
        over the quarters shown.
    period : {"Q", "Y"}
        Quarters (default) or calendar years (for facilities whose quarterly counts are too
        small to show).

    Returns
    -------
    DataFrame
        ``quarter`` (the period, e.g. ``"2024Q1"`` or ``"2024"``) plus the columns of :func:`analysis.quality.p_chart`,
        one row per quarter with at least one record with the outcome.
    """
    if "procedure_date" not in records:
        raise KeyError("records lack the column 'procedure_date'")
    y = outcome_values(records, outcome)
    dates = pd.to_datetime(records["procedure_date"], errors="coerce")
    keep = y.notna() & dates.notna()
    if not keep.any():
        raise InsufficientDataError("p-chart", f"no dated records with {outcome}")
    if period not in ("Q", "Y"):
        raise ValueError("period must be 'Q' or 'Y'")
    quarter = dates[keep].dt.to_period(period)
    grouped = y[keep].groupby(quarter.to_numpy()).agg(["sum", "size"]).sort_index()
    chart = p_chart(grouped["sum"].to_numpy(), grouped["size"].to_numpy(), method=method)
    chart.insert(0, "quarter", [str(q) for q in grouped.index])
    return chart


# ---------------------------------------------------------------------------------------------
# Scorecard
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ScorecardResult(Result):
    """A facility's scorecard against a peer group.

    ``outcomes``: one row per outcome (see :func:`scorecard`); ``units``: every unit's O/E,
    rank and shrunken estimate per outcome (``role`` "facility" or "peer"); ``trends``: the
    facility's quarterly chart per outcome. ``to_frame()`` returns ``outcomes``.
    """

    facility: str
    peers: PeerGroup
    outcomes: pd.DataFrame
    units: pd.DataFrame
    trends: dict[str, pd.DataFrame]
    level: float
    notes: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        return self.outcomes.copy()


def _outcome_units(records: pd.DataFrame, outcome: str, level: float,
                   notes: list[str]) -> tuple[pd.DataFrame, float, bool]:
    """Per unit O, E, O/E with CI, rank interval and shrunken ratio for one outcome."""
    y = outcome_values(records, outcome)
    keep = y.notna().to_numpy() & records["facility_id"].notna().to_numpy()
    rows = records[keep]
    y_kept = y.to_numpy()[keep]
    if rows.empty or y_kept.sum() == 0:
        raise InsufficientDataError("Scorecard", f"no events of {outcome} among the peers")
    pooled = float(y_kept.mean())
    try:
        model = risk_model(rows, outcome)
        offset = model.linear_predictor.to_numpy()
        adjusted = bool(np.all(np.isfinite(offset)))
    except InsufficientDataError:
        adjusted = False
    if not adjusted:
        notes.append(f"{outcome}: the case-mix model could not be fitted; crude expected counts")
        model = None
        offset = np.full(y_kept.size, special.logit(pooled))
    table = caterpillar(rows, "facility_id", outcome, adjust=adjusted, level=level, model=model)
    table = table.sort_values("unit", kind="mergesort").reset_index(drop=True)
    ranks = rank_intervals(table["observed"], table["expected"], level=level)
    table = pd.concat([table, ranks.drop(columns=["units"])], axis=1)
    table["units_ranked"] = len(table)
    table["adjusted_rate"] = table["oe"] * pooled
    try:
        fit = random_intercept_logit(y_kept, rows["facility_id"].astype(str), offset, level)
        shrunk = fit.effects.set_index("unit")
        table["shrunken_oe"] = table["unit"].map(shrunk["ratio"])
        table["shrunken_low"] = table["unit"].map(shrunk["ratio_low"])
        table["shrunken_high"] = table["unit"].map(shrunk["ratio_high"])
        table["sigma"] = fit.sigma
    except InsufficientDataError as error:
        notes.append(f"{outcome}: no shrunken estimate ({error})")
        for column in ("shrunken_oe", "shrunken_low", "shrunken_high", "sigma"):
            table[column] = np.nan
    table["shrunken_rate"] = table["shrunken_oe"] * pooled
    table.insert(0, "outcome", outcome)
    return table, pooled, adjusted


@dataclasses.dataclass(frozen=True)
class PeerSetFit(Result):
    """Every unit's O/E, rank interval and shrunken estimate per outcome for one set of
    facilities (the facility and its peers): the same for every facility of that set, so a
    run over many facilities fits it once. ``to_frame()`` stacks the per-outcome tables."""

    members: tuple[str, ...]
    tables: dict[str, pd.DataFrame]
    pooled: dict[str, float]
    adjusted: dict[str, bool]
    level: float
    notes: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        if not self.tables:
            return pd.DataFrame()
        return pd.concat(list(self.tables.values()), ignore_index=True)


def fit_peer_set(records: pd.DataFrame, members: Sequence[str],
                 outcomes: Sequence[str] = SCORECARD_OUTCOMES,
                 level: float = 0.95) -> PeerSetFit:
    """Fit the case-mix and random-intercept models of ``outcomes`` on the records of
    ``members`` (see :func:`scorecard`); outcomes that cannot be fitted are noted and left out.
    """
    chosen = tuple(sorted({str(m) for m in members}))
    subset = records[records["facility_id"].astype(object).isin(chosen).to_numpy()]
    notes: list[str] = []
    tables, pooled, adjusted = {}, {}, {}
    for outcome in outcomes:
        try:
            table, rate, fitted = _outcome_units(subset, outcome, level, notes)
        except InsufficientDataError as error:
            notes.append(f"{outcome}: {error}")
            continue
        tables[outcome], pooled[outcome], adjusted[outcome] = table, rate, fitted
    return PeerSetFit(chosen, tables, pooled, adjusted, level, tuple(notes))


def scorecard(records: pd.DataFrame, facility: str, peers: PeerGroup,
              outcomes: Sequence[str] = SCORECARD_OUTCOMES, level: float = 0.95,
              trend_method: str = "laney", trend_period: str = "Q",
              fitted: PeerSetFit | None = None) -> ScorecardResult:
    """Scorecard of ``facility`` against ``peers`` for each outcome.

    Parameters
    ----------
    records : DataFrame
        Records of at least the facility and its peers (others are ignored).
    facility : str
        The facility profiled (``peers.facility``).
    peers : PeerGroup
        From :func:`peer_group`.
    outcomes : sequence of str
        Binary outcomes (default :data:`SCORECARD_OUTCOMES`).
    level : float
        Level of the O/E, rank and shrinkage intervals.
    trend_method : {"laney", "p"}
        The quarterly chart (:func:`quarterly_p_chart`).
    trend_period : {"Q", "Y"}
        Its period (quarters, or years).
    fitted : PeerSetFit, optional
        :func:`fit_peer_set` of these records for the facility and its peers (reused, e.g. for
        every facility compared with all the others); fitted here when not given.

    Returns
    -------
    ScorecardResult
        ``outcomes`` has per outcome: ``outcome, n, observed, expected, oe, oe_low, oe_high,
        pooled_rate, adjusted_rate, peer_oe_median, peer_oe_q1, peer_oe_q3, peer_units, rank,
        rank_low, rank_high, units_ranked, shrunken_oe, shrunken_low, shrunken_high,
        shrunken_rate, sigma, adjusted`` (σ: the between-facility SD of the random intercept,
        0 when the peers show no variation beyond chance; ``adjusted``: the case-mix model fitted on facility + peers; False: crude).
        Outcomes the facility has no records of are left out, with a note.

    Examples
    --------
    >>> from data import demo_records
    >>> records = demo_records(3000, seed=5)
    >>> peers = peer_group(facility_profile(records), "FAC-009", "all")
    >>> card = scorecard(records, "FAC-009", peers, outcomes=["cement_leakage"])
    >>> card.to_frame()[["outcome", "rank", "units_ranked"]].shape
    (1, 3)
    """
    if facility != peers.facility:
        raise ValueError("peers were chosen for another facility")
    members = tuple(sorted({facility, *peers.members}))
    if fitted is None:
        fitted = fit_peer_set(records, members, outcomes, level)
    elif fitted.members != members or fitted.level != level:
        raise ValueError("fitted is for another set of facilities or level")
    ids = records["facility_id"].astype(object)
    own_records = records[(ids == facility).to_numpy()]
    notes: list[str] = list(fitted.notes)
    rows, unit_tables, trends = [], [], {}
    for outcome in outcomes:
        if outcome not in fitted.tables:
            continue
        table = fitted.tables[outcome].copy()
        table["role"] = np.where(table["unit"] == facility, "facility", "peer")
        own = table[table["role"] == "facility"]
        if own.empty:
            notes.append(f"{outcome}: {facility} has no records with this outcome")
            continue
        unit_tables.append(table)
        peer_oe = table.loc[table["role"] == "peer", "oe"]
        r = own.iloc[0]
        rows.append({
            "outcome": outcome, "n": int(r["n"]), "observed": int(r["observed"]),
            "expected": float(r["expected"]), "oe": float(r["oe"]), "oe_low": float(r["low"]),
            "oe_high": float(r["high"]), "pooled_rate": fitted.pooled[outcome],
            "adjusted_rate": float(r["adjusted_rate"]),
            "peer_oe_median": float(peer_oe.median()) if len(peer_oe) else math.nan,
            "peer_oe_q1": float(peer_oe.quantile(0.25)) if len(peer_oe) else math.nan,
            "peer_oe_q3": float(peer_oe.quantile(0.75)) if len(peer_oe) else math.nan,
            "peer_units": int(len(peer_oe)),
            "rank": int(r["rank"]), "rank_low": int(r["rank_low"]),
            "rank_high": int(r["rank_high"]), "units_ranked": int(r["units_ranked"]),
            "shrunken_oe": float(r["shrunken_oe"]), "shrunken_low": float(r["shrunken_low"]),
            "shrunken_high": float(r["shrunken_high"]),
            "shrunken_rate": float(r["shrunken_rate"]), "sigma": float(r["sigma"]),
            "adjusted": fitted.adjusted[outcome],
        })
        try:
            trends[outcome] = quarterly_p_chart(own_records, outcome, trend_method,
                                                trend_period)
        except (InsufficientDataError, KeyError) as error:
            notes.append(f"{outcome}: no quarterly chart ({error})")
    if not rows:
        raise InsufficientDataError("Scorecard", f"no outcome could be profiled for {facility}")
    units = pd.concat(unit_tables, ignore_index=True)
    return ScorecardResult(facility, peers, pd.DataFrame(rows), units, trends, level,
                           tuple(notes))
