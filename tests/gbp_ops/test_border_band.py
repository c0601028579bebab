"""border_share's band width, on non-square maps, against a loop-based numpy definition.

The band is ``max(1, int(round(fraction * min(H, W))))`` pixels wide on every side; the share
is the |map| mass inside the band over the total |map| mass (0 for an all-zero map). The
sizes and fractions below never hit a .5 tie, so Python's rounding is unambiguous.
"""

import numpy as np
import pytest

from gbp_ops import statistics

SHAPES = [(24, 40), (40, 24), (37, 53), (53, 37), (16, 9)]
FRACTIONS = [0.1, 0.2, 0.25, 0.3]


def _band_width(fraction, height, width):
    product = fraction * min(height, width)
    assert abs(product - np.floor(product) - 0.5) > 1e-6, "avoid .5 ties in this test"
    return max(1, int(round(product)))


def _loop_border_share(grid, fraction):
    """One map ``(H, W)``: mass of the pixels within ``band`` of any edge over the total."""
    height, width = grid.shape
    band = _band_width(fraction, height, width)
    in_band = total = 0.0
    for y in range(height):
        for x in range(width):
            mass = abs(float(grid[y, x]))
            total += mass
            if min(y, x, height - 1 - y, width - 1 - x) < band:
                in_band += mass
    return in_band / total if total > 0 else 0.0


def _random_maps(shape, seed):
    rng = np.random.default_rng(seed)
    maps = rng.standard_normal((3, *shape)) * rng.random((3, 1, 1))
    maps[2] = 0.0  # an all-zero map has share 0
    return maps.astype(np.float32)


@pytest.mark.parametrize("fraction", FRACTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_border_share_matches_loop_definition(shape, fraction):
    maps = _random_maps(shape, seed=shape[0] * 100 + shape[1])
    expected = np.array([_loop_border_share(grid, fraction) for grid in maps])
    assert expected[2] == 0.0 and 0.0 < expected[0] < 1.0

    np.testing.assert_allclose(statistics.border_share(maps, fraction), expected, rtol=1e-6)
    per_example = statistics.per_example_statistics(maps, fraction)
    np.testing.assert_allclose(per_example[statistics.BORDER_SHARE], expected, rtol=1e-6)


@pytest.mark.parametrize("fraction", FRACTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_rings_just_inside_and_outside_the_band_edge(shape, fraction):
    """Mass only on the last ring inside the band (map 0) or the first ring outside it
    (map 1): a band one pixel too wide or too narrow flips the share between 0 and 1."""
    height, width = shape
    band = _band_width(fraction, height, width)
    assert height - 2 * band >= 3 and width - 2 * band >= 3  # an interior exists

    def ring(depth, value):
        grid = np.zeros(shape, np.float32)
        grid[depth:height - depth, depth:width - depth] = value
        grid[depth + 1:height - depth - 1, depth + 1:width - depth - 1] = 0.0
        return grid

    maps = np.stack([ring(band - 1, 2.0), ring(band, -3.0)])
    np.testing.assert_array_equal([_loop_border_share(grid, fraction) for grid in maps],
                                  [1.0, 0.0])

    np.testing.assert_allclose(statistics.border_share(maps, fraction), [1.0, 0.0], atol=1e-12)
    per_example = statistics.per_example_statistics(maps, fraction)
    np.testing.assert_allclose(per_example[statistics.BORDER_SHARE], [1.0, 0.0], atol=1e-12)

    # Both rings together: the share is the inner ring's mass share, known in closed form.
    both = maps.sum(axis=0, keepdims=True)
    inside_ring = 2.0 * (2 * (height - 2 * (band - 1)) + 2 * (width - 2 * (band - 1)) - 4)
    outside_ring = 3.0 * (2 * (height - 2 * band) + 2 * (width - 2 * band) - 4)
    np.testing.assert_allclose(statistics.border_share(both, fraction),
                               [inside_ring / (inside_ring + outside_ring)], rtol=1e-6)


def test_band_is_at_least_one_pixel():
    grid = np.zeros((1, 9, 14), np.float32)
    grid[0, 0, 5] = 1.0  # top edge
    grid[0, 4, 7] = 3.0  # centre
    # 0.04 * 9 = 0.36 rounds to 0 pixels; the band is still one pixel wide.
    assert _loop_border_share(grid[0], 0.04) == pytest.approx(0.25)
    assert statistics.border_share(grid, 0.04)[0] == pytest.approx(0.25)
