"""Channel reductions, normalisation, downsampling and uint8 quantisation by hand."""

import numpy as np
import pytest

from gbp_ops import maps


def test_reductions_by_hand():
    pixel = np.array([3.0, -4.0, 1.0], np.float32).reshape(1, 1, 1, 3)
    assert maps.reduce_channels(pixel, "max_abs")[0, 0, 0] == 4.0
    assert maps.reduce_channels(pixel, "l2")[0, 0, 0] == pytest.approx(np.sqrt(26.0))
    assert maps.reduce_channels(pixel, "sum")[0, 0, 0] == 0.0
    assert maps.reduce_channels(pixel, "abs_sum")[0, 0, 0] == 8.0
    with pytest.raises(ValueError, match="unknown reduction 'median'"):
        maps.reduce_channels(pixel, "median")


def test_normalize_max_abs_per_map_and_zero_map():
    batch = np.array([[[2.0, -4.0]], [[0.0, 0.0]]], np.float32)
    np.testing.assert_array_equal(maps.normalize_max_abs(batch), [[[0.5, -1.0]], [[0.0, 0.0]]])


def test_downsample_averages_blocks():
    grid = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    np.testing.assert_array_equal(maps.downsample(grid, 2)[0], [[2.5, 4.5], [10.5, 12.5]])
    with pytest.raises(ValueError, match="not divisible"):
        maps.downsample(np.zeros((1, 5, 5)), 2)


def test_quantize_round_trip_within_half_step():
    rng = np.random.default_rng(0)
    batch = rng.random((3, 5, 5)).astype(np.float32) * np.array([1.0, 10.0, 0.0])[:, None, None]
    codes, scales = maps.quantize_uint8(batch)
    assert codes.dtype == np.uint8 and scales.shape == (3,)
    restored = maps.dequantize_uint8(codes, scales)
    step = scales[:, None, None] / 255.0
    assert (np.abs(restored - batch) <= step / 2 + 1e-7).all()
    with pytest.raises(ValueError, match="non-negative"):
        maps.quantize_uint8(-batch - 1)


def test_scale_to_unit_round_trip_and_zero_map():
    batch = np.array([[[2e-6, -4e-6]], [[0.0, 0.0]]], np.float32)
    unit, scales = maps.scale_to_unit(batch)
    np.testing.assert_allclose(unit, [[[0.5, -1.0]], [[0.0, 0.0]]])
    np.testing.assert_allclose(scales, [4e-6, 0.0])
    np.testing.assert_allclose(maps.unscale(unit, scales), batch)


def test_round_mantissa_equals_float16_rounding_at_every_exponent():
    """Reference: numpy's float16 cast (round to nearest even) of each value shifted into
    float16's normal range by an exact power of two, shifted back."""
    from gbp_ops.maps import round_mantissa

    rng = np.random.default_rng(0)
    values = (rng.standard_normal(20000) * rng.choice([1e-12, 1e-6, 1e-3, 1.0, 1e4], 20000))
    values = values.astype(np.float32)
    exponents = np.floor(np.log2(np.abs(values)))
    shift = np.ldexp(np.float32(1.0), (-exponents).astype(int)).astype(np.float32)
    expected = np.float16(values * shift).astype(np.float32) / shift
    rounded = round_mantissa(values)
    np.testing.assert_array_equal(rounded, expected)
    assert np.max(np.abs(rounded - values) / np.abs(values)) <= 2.0 ** -11
    ties = np.array([1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11], np.float32)  # halfway: to even
    np.testing.assert_array_equal(round_mantissa(ties), [1.0, 1 + 2 * 2.0 ** -10])
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.finfo(np.float32).max], np.float32)
    kept = round_mantissa(special)
    np.testing.assert_array_equal(kept[:4], special[:4])
    assert np.isfinite(kept[4]) and np.isnan(round_mantissa(np.array([np.nan], np.float32)))[0]
