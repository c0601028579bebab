"""Aggregate accumulators: equal to numpy on the whole data, and independent of merge order."""

import numpy as np
import pytest

from gbp_ops import aggregates


def _data(seed=0, count=37):
    rng = np.random.default_rng(seed)
    values = rng.random((count, 3)) * np.array([1.0, 1.0, 250.0])
    values[rng.random(count) < 0.2, 1] = np.nan
    maps = rng.random((count, 4, 5)) * rng.random((count, 1, 1)) * 10
    return values, maps


def test_matches_numpy_on_the_whole_data():
    values, maps = _data()
    result = aggregates.extract(aggregates.accumulate(values, maps, histogram_bins=5))
    assert result["count"] == len(values)
    np.testing.assert_allclose(result["mean"], np.nanmean(values, axis=0), rtol=1e-12)
    np.testing.assert_allclose(result["std"], np.nanstd(values, axis=0, ddof=1), rtol=1e-9)
    expected_map = (maps / maps.max(axis=(1, 2), keepdims=True)).mean(axis=0)
    np.testing.assert_allclose(result["mean_map"], expected_map, rtol=1e-6)
    expected_hist = np.histogram(values[:, 0], bins=np.linspace(0, 1, 6))[0]
    np.testing.assert_array_equal(result["histograms"][0], expected_hist)
    assert result["histograms"][2].sum() == len(values)  # out-of-range values clip into bins


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_split_and_merge_order_is_bit_identical(seed):
    values, maps = _data()
    whole = aggregates.extract(aggregates.accumulate(values, maps, 5))
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, len(values)), size=4, replace=False))
    parts = [aggregates.accumulate(v, m, 5) for v, m in zip(np.split(values, cuts),
                                                            np.split(maps, cuts))]
    order = rng.permutation(len(parts))
    merged = aggregates.merge([aggregates.merge([parts[i] for i in order[:2]]),
                               *[parts[i] for i in order[2:]]])
    result = aggregates.extract(merged)
    for key in ("mean", "std", "mean_map", "histograms"):
        np.testing.assert_array_equal(result[key], whole[key])


def test_single_value_has_nan_std():
    result = aggregates.extract(aggregates.accumulate(np.array([[0.5]]), np.ones((1, 2, 2)), 4))
    assert result["mean"][0] == 0.5 and np.isnan(result["std"][0])
