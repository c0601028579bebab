"""gbp_ops.maps on the inputs the other tests never reach: a map whose width alone is not a
multiple of the downsample factor, non-square block means against a loop, and uint8 codes
decoded to binary-exact values."""

import numpy as np
import pytest

from gbp_ops import maps


@pytest.mark.parametrize("shape,factor", [((1, 6, 5), 2), ((1, 4, 6), 4), ((2, 9, 12), 5)])
def test_downsample_refuses_a_side_that_is_not_a_multiple(shape, factor):
    """Shapes where only one side (here, at least the width) is not a multiple: the error names
    the sizes, not a reshape failure."""
    with pytest.raises(ValueError, match=f"map size {shape[1]}x{shape[2]} is not divisible by "
                                         f"downsample factor {factor}"):
        maps.downsample(np.zeros(shape, np.float32), factor)


def test_downsample_of_a_non_square_map_equals_a_loop_over_blocks():
    rng = np.random.default_rng(0)
    grid = rng.random((2, 6, 9)).astype(np.float32)
    expected = np.zeros((2, 2, 3))
    for n in range(2):
        for i in range(2):
            for j in range(3):
                expected[n, i, j] = grid[n, 3 * i:3 * i + 3, 3 * j:3 * j + 3].astype(
                    np.float64).mean()
    np.testing.assert_allclose(maps.downsample(grid, 3), expected, rtol=1e-6)
    assert maps.downsample(grid, 1) is not None and maps.downsample(grid, 1).shape == (2, 6, 9)


def test_uint8_codes_decode_to_code_over_255_times_scale():
    """Codes 0, 51, 255 (51/255 = 0.2) with scales 2 and 0.5: code / 255 * scale per row."""
    codes = np.array([[[0, 51, 255]], [[255, 0, 51]]], np.uint8)
    scales = np.array([2.0, 0.5], np.float32)
    expected = [[[c / 255 * s for c in row[0]]] for row, s in zip(codes.tolist(), [2.0, 0.5])]
    np.testing.assert_allclose(maps.dequantize_uint8(codes, scales), expected, rtol=1e-7)
    # the largest code is the map's own peak exactly
    assert maps.dequantize_uint8(codes, scales)[0, 0, 2] == 2.0
