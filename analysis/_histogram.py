"""Per-group statistics from histograms of values on a decimal grid (internal).

A column whose values all lie on a grid of step ``1 / scale`` (pain scores to 0.1, whole
minutes, whole days) holds few distinct values. Numbering the grid points and counting each
group's records per point gives one histogram per group, from which counts, quartiles, minima
and maxima follow exactly (the recorded values themselves, interpolated as
:func:`numpy.quantile` does) and means and SDs up to the order of summation: a few passes over
the values however many groups there are, instead of a selection and partition per group.

Used by :mod:`analysis.outcomes` (pain and ODI on the 0.1 grid, resource variables on grids of
step 1, 0.1, 0.01 or 0.001).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

#: Quartile probabilities, in the order q1, median, q3.
QUARTILES = (0.25, 0.5, 0.75)
_QUARTILE_NAMES = ("q1", "median", "q3")
#: Below this magnitude every multiple of 1/scale rounds (``np.rint``) exactly.
_EXACT_MAGNITUDE = 2.0**52


@dataclasses.dataclass(frozen=True)
class GridCodes:
    """Values as grid codes: code j stands for ``(low + j) / scale``.

    ``codes[i]`` is value i's code, ``size`` (one past the last point) where it is missing.
    """

    codes: np.ndarray
    low: float
    size: int
    scale: int

    @property
    def points(self) -> np.ndarray:
        """The value of each code, increasing."""
        return (self.low + np.arange(self.size)) / self.scale

    def histogram(self, group_codes: np.ndarray, n_groups: int,
                  mask: np.ndarray | None = None) -> np.ndarray:
        """Values per group (rows) and grid point (columns), only those in `mask` if given.

        Examples
        --------
        >>> coded = grid_codes(np.array([1.0, 2.0, np.nan, 2.0]), (1,), 10)
        >>> coded.histogram(np.array([0, 0, 0, 1]), 2).tolist()
        [[1, 1], [0, 1]]
        """
        width = self.size + 1
        codes = self.codes if mask is None else blend(self.codes, mask, self.size)
        flat = np.bincount(group_codes * width + codes, minlength=n_groups * width)
        return flat.reshape(n_groups, width)[:, :self.size]


def blend(values: np.ndarray, keep: np.ndarray, fill: int) -> np.ndarray:
    """``np.where(keep, values, fill)`` for integers, by arithmetic: where a random tenth of a
    million values is dropped, the branch-free form is several times faster.

    Examples
    --------
    >>> blend(np.array([3, 4, 5]), np.array([True, False, True]), 9).tolist()
    [3, 9, 5]
    """
    out = values * keep
    out += (~keep).view(np.uint8) * values.dtype.type(fill)
    return out


def grid_codes(values: np.ndarray, scales: Sequence[int], max_points: int) -> GridCodes | None:
    """`values` (NaN = missing) as :class:`GridCodes` on the first grid of step ``1 / scale``
    that holds them all exactly, or None (use the general path).

    Each scale of `scales` (increasing) is tried in turn; it is taken when every present value
    is ``k / scale`` exactly (so each statistic read from the codes is a recorded value), and
    None is returned as soon as a grid would need more than `max_points` points (a finer one
    would need more still), or when no value is present, one is infinite or too large to be
    rounded exactly.

    Examples
    --------
    >>> coded = grid_codes(np.array([0.3, np.nan, 1.2]), (1, 10), 100)
    >>> coded.scale, coded.codes.tolist(), coded.points[[0, -1]].tolist()
    (10, [0, 10, 9], [0.3, 1.2])
    >>> grid_codes(np.array([0.5, 1 / 3]), (1, 10, 100, 1000), 10**6) is None
    True
    """
    present = ~np.isnan(values)
    if not present.any():
        return None
    low, high = float(np.fmin.reduce(values)), float(np.fmax.reduce(values))  # NaN ignored
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    complete = bool(present.all())
    for scale in scales:
        if max(abs(low), abs(high)) * scale > _EXACT_MAGNITUDE:
            return None
        first = float(np.rint(low * scale))  # rint is monotonic: the least scaled value
        size = int(np.rint(high * scale) - first) + 1
        if size > max_points:
            return None
        scaled = values * scale
        np.rint(scaled, out=scaled)
        if not np.array_equal(scaled / scale == values, present):  # NaN == NaN is False
            continue
        scaled -= first
        with np.errstate(invalid="ignore"):  # NaN casts to an arbitrary integer, replaced next
            codes = scaled.astype(np.int32)
        return GridCodes(codes if complete else blend(codes, present, size), first, size, scale)
    return None


def lerp(lower: np.ndarray, upper: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """Linear interpolation exactly as :func:`numpy.quantile` does it (from the upper value
    when ``fraction >= 0.5``), so histogram quartiles equal ``np.quantile`` bit for bit.

    Examples
    --------
    >>> lerp(np.array([1.0]), np.array([2.0]), np.array([0.75])).tolist()
    [1.75]
    """
    difference = upper - lower
    return np.where(fraction >= 0.5, upper - difference * (1 - fraction),
                    lower + difference * fraction)


def fence_limits(q1: np.ndarray, q3: np.ndarray,
                 whisker: float) -> tuple[np.ndarray, np.ndarray]:
    """Tukey's fences: ``whisker`` IQR below the first and above the third quartile.

    Examples
    --------
    >>> [v.tolist() for v in fence_limits(np.array([2.0]), np.array([4.0]), 1.5)]
    [[-1.0], [7.0]]
    """
    iqr = q3 - q1
    return q1 - whisker * iqr, q3 + whisker * iqr


def histogram_stats(counts: np.ndarray, points: np.ndarray, *,
                    totals: np.ndarray | None = None, count_first: bool = False,
                    fences: float | None = None) -> dict[str, np.ndarray]:
    """Statistics per row of a histogram (groups × grid points with values `points`).

    Parameters
    ----------
    counts : numpy.ndarray
        Integer counts, one row per group.
    points : numpy.ndarray
        The increasing value of each column.
    totals : numpy.ndarray, optional
        Each group's sum of values, as the caller added them (e.g. in record order, to keep
        the mean it has always shown to the last bit); default: summed over the histogram.
    count_first : bool, default False
        Sum the squared deviations as ``count · d · d`` rather than ``count · d²``: the same
        up to rounding; each caller keeps the form its numbers have always been computed in.
    fences : float, optional
        Also ``lowerfence`` / ``upperfence``: the least / largest value within ``fences`` IQR
        below the first / above the third quartile (the ends of box-plot whiskers).

    Returns
    -------
    dict of numpy.ndarray
        ``n, mean, sd`` (ddof 1, two-pass; NaN below 2 values) and ``q1, median, q3, min,
        max`` (NaN where ``n`` is 0), and the fences if asked for. Counts, quartiles, minima,
        maxima and fences are those of the values exactly.

    Examples
    --------
    >>> stats = histogram_stats(np.array([[1, 0, 2], [0, 0, 0]]), np.array([1.0, 2.0, 3.0]))
    >>> stats["n"].tolist(), stats["median"].tolist(), stats["max"].tolist()
    ([3, 0], [3.0, nan], [3.0, nan])
    """
    n = counts.sum(axis=1)
    size, width = counts.shape
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (counts.astype(float) @ points if totals is None else totals) / n
        deviation = points[None, :] - mean[:, None]
        if count_first:
            squares = (counts * deviation * deviation).sum(axis=1)
        else:
            squares = (counts.astype(float) * deviation ** 2).sum(axis=1)
        sd = np.where(n >= 2, np.sqrt(squares / np.maximum(n - 1, 1)), np.nan)
    out = {"n": n, "mean": mean, "sd": sd}
    names = (*_QUARTILE_NAMES, "min", "max")
    out.update({name: np.full(size, np.nan) for name in names})
    if fences is not None:
        out.update(lowerfence=np.full(size, np.nan), upperfence=np.full(size, np.nan))
    rows = np.flatnonzero(n > 0)
    if rows.size == 0:
        return out
    # The value of rank r (0-based) in a group is the first grid point whose running count
    # exceeds r. Each group's running counts are shifted above the previous group's, so one
    # searchsorted over all groups finds every rank at once.
    shift = np.arange(rows.size, dtype=np.int64) * (int(n.sum()) + 1)
    running = (np.cumsum(counts[rows], axis=1) + shift[:, None]).ravel()
    starts = np.arange(rows.size, dtype=np.int64) * width

    def order_statistic(rank: np.ndarray) -> np.ndarray:
        return points[np.searchsorted(running, shift + rank, side="right") - starts]

    m = n[rows]
    out["min"][rows] = order_statistic(np.zeros(rows.size, dtype=np.int64))
    out["max"][rows] = order_statistic(m - 1)
    for name, q in zip(_QUARTILE_NAMES, QUARTILES, strict=True):
        position = (m - 1) * q  # numpy's "linear" virtual index
        below = np.floor(position).astype(np.int64)
        upper = order_statistic(np.minimum(below + 1, m - 1))
        out[name][rows] = lerp(order_statistic(below), upper, position - below)
    if fences is not None:
        lows, highs = fence_limits(out["q1"][rows], out["q3"][rows], fences)
        present = counts[rows] > 0
        inside = present & (points[None, :] >= lows[:, None])
        out["lowerfence"][rows] = np.where(inside.any(axis=1),
                                           points[np.argmax(inside, axis=1)], np.nan)
        inside = present & (points[None, :] <= highs[:, None])
        last = width - 1 - np.argmax(inside[:, ::-1], axis=1)
        out["upperfence"][rows] = np.where(inside.any(axis=1), points[last], np.nan)
    return out
