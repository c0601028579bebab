"""Mergeable accumulators for audit aggregates: count, mean/std per statistic, mean map,
histograms. Pure numpy, bounded in size (independent of the number of examples).

Sums are kept exactly, in fixed point (Python ints for the statistics, int64 for the maps),
so merging is associative: the results are bit-identical however a runner splits, orders
and merges the partial accumulators. That is what makes re-runs reproduce ``stats``.
"""

import dataclasses

import numpy as np

from gbp_ops.maps import normalize_max_abs

STAT_FRACTION_BITS = 48  # statistics are summed in units of 2**-48 (Python ints: no overflow)
MAP_FRACTION_BITS = 32  # normalised maps in [0, 1] in units of 2**-32 (int64: 2**31 maps)


@dataclasses.dataclass
class StatsAccumulator:
    """Exact running sums of a group of examples.

    Attributes:
        count: number of examples.
        stat_count: list of S ints, non-NaN values seen per statistic.
        stat_sum: list of S Python ints, sum of values in units of 2**-48.
        stat_sum_squares: list of S Python ints, sum of squared fixed-point values.
        map_sum: int64 ``(H, W)`` sum of max-abs-normalised maps in units of 2**-32.
        histograms: int64 ``(S, B)`` counts over ``histogram_edges`` per statistic.
    """

    count: int
    stat_count: list
    stat_sum: list
    stat_sum_squares: list
    map_sum: np.ndarray
    histograms: np.ndarray


def histogram_edges(histogram_bins):
    """Bin edges over [0, 1] shared by all histograms (the statistics are shares/positions)."""
    return np.linspace(0.0, 1.0, histogram_bins + 1)


def _fixed_point(values):
    """float64 ``(N,)`` without NaNs -> list of Python ints in units of 2**-48."""
    return [int(v) for v in np.round(np.ldexp(values, STAT_FRACTION_BITS))]


def fixed_point_maps(maps):
    """Max-abs-normalised maps in fixed point: float ``(N, H, W)`` -> int64 ``(N, H, W)``.

    Computing this once per batch lets several groups share it (see ``accumulate``).
    Sums of these are exact, so a group's sum may be assembled from its subgroups' sums.
    """
    normalised = np.abs(normalize_max_abs(maps))
    return np.rint(np.ldexp(normalised, MAP_FRACTION_BITS)).astype(np.int64)


def accumulate(values, maps, histogram_bins, map_sum=None):
    """An accumulator over a batch.

    Args:
        values: float64 ``(N, S)`` per-example statistics (NaN = undefined, skipped).
        maps: float ``(N, H, W)`` reduced maps (unused when ``map_sum`` is given).
        histogram_bins: B; values outside [0, 1] are clipped into the end bins.
        map_sum: optional int64 ``(H, W)``: ``fixed_point_maps(maps).sum(axis=0)``, precomputed
            (groups of one batch can then share partial sums).

    Returns:
        StatsAccumulator.
    """
    values = np.asarray(values, np.float64)
    stat_count, stat_sum, stat_sum_squares, histograms = [], [], [], []
    edges = histogram_edges(histogram_bins)
    for column in values.T:
        present = column[~np.isnan(column)]
        fixed = _fixed_point(present)
        stat_count.append(len(fixed))
        stat_sum.append(sum(fixed))
        stat_sum_squares.append(sum(q * q for q in fixed))
        histograms.append(np.histogram(np.clip(present, 0.0, 1.0), bins=edges)[0])
    if map_sum is None:
        map_sum = fixed_point_maps(maps).sum(axis=0)
    return StatsAccumulator(
        len(values), stat_count, stat_sum, stat_sum_squares, map_sum,
        np.array(histograms, np.int64).reshape(values.shape[1], histogram_bins))


def merge(accumulators):
    """Sums accumulators exactly. Returns a new StatsAccumulator."""
    accumulators = list(accumulators)
    first = accumulators[0]
    return StatsAccumulator(
        sum(acc.count for acc in accumulators),
        [sum(column) for column in zip(*(acc.stat_count for acc in accumulators))],
        [sum(column) for column in zip(*(acc.stat_sum for acc in accumulators))],
        [sum(column) for column in zip(*(acc.stat_sum_squares for acc in accumulators))],
        first.map_sum + sum(acc.map_sum for acc in accumulators[1:]),
        first.histograms + sum(acc.histograms for acc in accumulators[1:]),
    )


def extract(accumulator):
    """Final aggregates of an accumulator.

    Returns:
        dict with ``count`` (int), ``mean`` and ``std`` (float64 ``(S,)``; std is the sample
        std, ddof=1 as in pandas, NaN below two values), ``mean_map`` (float32 ``(H, W)``) and
        ``histograms`` (int64 ``(S, B)``).
    """
    from fractions import Fraction

    unit = 2 ** STAT_FRACTION_BITS
    means, stds = [], []
    for count, total, squares in zip(accumulator.stat_count, accumulator.stat_sum,
                                     accumulator.stat_sum_squares):
        means.append(float(Fraction(total, count * unit)) if count else np.nan)
        if count > 1:
            # Exact: n * sum(q^2) - sum(q)^2 is computed in integers before one rounding.
            variance = Fraction(count * squares - total * total, count * (count - 1) * unit ** 2)
            stds.append(float(variance) ** 0.5)
        else:
            stds.append(np.nan)
    mean_map = np.ldexp(accumulator.map_sum.astype(np.float64), -MAP_FRACTION_BITS)
    return {
        "count": int(accumulator.count),
        "mean": np.array(means, np.float64),
        "std": np.array(stds, np.float64),
        "mean_map": (mean_map / max(accumulator.count, 1)).astype(np.float32),
        "histograms": accumulator.histograms.copy(),
    }
