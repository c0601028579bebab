"""Mergeable accumulators for audit aggregates: count, mean/std per statistic, mean map,
histograms. Pure numpy, bounded in size (independent of the number of examples).

Means and variances merge with Chan et al.'s parallel algorithm, so partial results from
any split of the data combine to the same values a single pass would give.
"""

import dataclasses

import numpy as np

from gbp_ops.maps import normalize_max_abs


@dataclasses.dataclass
class StatsAccumulator:
    """Running aggregates of a group of examples.

    Attributes:
        count: number of examples.
        stat_count: int64 ``(S,)`` non-NaN values seen per statistic.
        stat_mean: float64 ``(S,)`` running mean per statistic.
        stat_m2: float64 ``(S,)`` sum of squared deviations per statistic.
        map_sum: float64 ``(H, W)`` sum of max-abs-normalised maps.
        histograms: int64 ``(S, B)`` counts over ``histogram_edges`` per statistic.
    """

    count: int
    stat_count: np.ndarray
    stat_mean: np.ndarray
    stat_m2: np.ndarray
    map_sum: np.ndarray
    histograms: np.ndarray


def empty_accumulator(num_statistics, map_shape, histogram_bins):
    return StatsAccumulator(
        0, np.zeros(num_statistics, np.int64), np.zeros(num_statistics), np.zeros(num_statistics),
        np.zeros(map_shape), np.zeros((num_statistics, histogram_bins), np.int64))


def histogram_edges(histogram_bins):
    """Bin edges over [0, 1] shared by all histograms (the statistics are shares/positions)."""
    return np.linspace(0.0, 1.0, histogram_bins + 1)


def accumulate(values, maps, histogram_bins):
    """An accumulator over a batch.

    Args:
        values: float64 ``(N, S)`` per-example statistics (NaN = undefined, skipped).
        maps: float ``(N, H, W)`` reduced maps.
        histogram_bins: B; values outside [0, 1] are clipped into the end bins.

    Returns:
        StatsAccumulator.
    """
    values = np.asarray(values, np.float64)
    valid = ~np.isnan(values)
    stat_count = valid.sum(axis=0)
    sums = np.where(valid, values, 0.0).sum(axis=0)
    stat_mean = np.divide(sums, stat_count, out=np.zeros_like(sums), where=stat_count > 0)
    deviations = np.where(valid, values - stat_mean, 0.0)
    edges = histogram_edges(histogram_bins)
    histograms = np.stack([
        np.histogram(np.clip(column[~np.isnan(column)], 0.0, 1.0), bins=edges)[0]
        for column in values.T
    ]).astype(np.int64) if values.shape[1] else np.zeros((0, histogram_bins), np.int64)
    normalised = np.abs(normalize_max_abs(maps)).astype(np.float64)
    return StatsAccumulator(len(values), stat_count, stat_mean, (deviations ** 2).sum(axis=0),
                            normalised.sum(axis=0), histograms)


def merge(accumulators):
    """Merges accumulators (Chan et al. for mean/M2). Returns a new StatsAccumulator."""
    accumulators = list(accumulators)
    result = dataclasses.replace(accumulators[0])
    for other in accumulators[1:]:
        total = result.stat_count + other.stat_count
        delta = other.stat_mean - result.stat_mean
        safe_total = np.where(total > 0, total, 1)
        mean = result.stat_mean + delta * other.stat_count / safe_total
        m2 = result.stat_m2 + other.stat_m2 + delta ** 2 * result.stat_count * other.stat_count / (
            safe_total)
        result = StatsAccumulator(
            result.count + other.count, total, mean, m2, result.map_sum + other.map_sum,
            result.histograms + other.histograms)
    return result


def extract(accumulator):
    """Final aggregates of an accumulator.

    Returns:
        dict with ``count`` (int), ``mean`` and ``std`` (float64 ``(S,)``; std is the sample
        std, ddof=1 as in pandas, NaN below two values), ``mean_map`` (float32 ``(H, W)``) and
        ``histograms`` (int64 ``(S, B)``).
    """
    counts = accumulator.stat_count
    mean = np.where(counts > 0, accumulator.stat_mean, np.nan)
    variance = np.divide(accumulator.stat_m2, counts - 1, out=np.full(counts.shape, np.nan),
                         where=counts > 1)
    mean_map = accumulator.map_sum / max(accumulator.count, 1)
    return {
        "count": int(accumulator.count),
        "mean": mean,
        "std": np.sqrt(variance),
        "mean_map": mean_map.astype(np.float32),
        "histograms": accumulator.histograms.copy(),
    }
