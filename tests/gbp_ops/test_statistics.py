"""Per-example statistics against values computed by hand on tiny maps."""

import numpy as np
import pytest

from gbp_ops import statistics as st


def _one_hot_map(size, y, x, value=5.0):
    grid = np.zeros((1, size, size))
    grid[0, y, x] = value
    return grid


def test_single_pixel_map():
    grid = _one_hot_map(10, 0, 9)  # top-right corner pixel
    stats = st.per_example_statistics(grid, border_band_fraction=0.1)
    assert stats[st.TOTAL_MASS][0] == 5.0
    assert stats[st.TOP1_SHARE][0] == 1.0
    assert stats[st.TOP5_SHARE][0] == 1.0
    assert stats[st.ENTROPY][0] == 0.0
    assert stats[st.BORDER_SHARE][0] == 1.0
    assert stats[st.CENTER_Y][0] == pytest.approx(0.05)
    assert stats[st.CENTER_X][0] == pytest.approx(0.95)


def test_uniform_map():
    grid = np.full((1, 10, 10), 2.0)
    stats = st.per_example_statistics(grid, border_band_fraction=0.1)
    assert stats[st.TOTAL_MASS][0] == 200.0
    assert stats[st.TOP1_SHARE][0] == pytest.approx(0.01)  # 1 of 100 pixels
    assert stats[st.TOP5_SHARE][0] == pytest.approx(0.05)
    assert stats[st.ENTROPY][0] == pytest.approx(1.0)
    assert stats[st.BORDER_SHARE][0] == pytest.approx(36 / 100)  # 100 - 8*8 interior
    assert stats[st.CENTER_Y][0] == pytest.approx(0.5)
    assert stats[st.CENTER_X][0] == pytest.approx(0.5)


def test_two_equal_pixels_entropy_and_signed_values():
    grid = np.zeros((1, 4, 4))
    grid[0, 1, 1], grid[0, 2, 2] = 1.0, -1.0  # mass uses |value|
    assert st.normalized_entropy(grid)[0] == pytest.approx(np.log(2) / np.log(16))
    assert st.center_of_mass(grid)[0] == pytest.approx([0.5, 0.5])


def test_zero_map_is_defined():
    stats = st.per_example_statistics(np.zeros((1, 4, 4)))
    assert stats[st.TOP1_SHARE][0] == 0.0 and stats[st.BORDER_SHARE][0] == 0.0
    assert np.isnan(stats[st.ENTROPY][0]) and np.isnan(stats[st.CENTER_Y][0])


def test_box_share_pointing_game():
    grid = np.zeros((2, 10, 10))
    grid[:, 0, 0] = 3.0  # inside the top-left box
    grid[:, 9, 9] = 1.0  # outside it
    boxes = np.array([[0.0, 0.0, 0.2, 0.2], [np.nan] * 4])
    shares = st.per_example_statistics(grid, boxes=boxes)[st.BOX_SHARE]
    assert shares[0] == pytest.approx(0.75)
    assert np.isnan(shares[1])


def test_batch_is_vectorised_like_a_loop():
    rng = np.random.default_rng(0)
    batch = rng.random((6, 12, 12))
    together = st.per_example_statistics(batch)
    for index in range(6):
        alone = st.per_example_statistics(batch[index:index + 1])
        for name, values in together.items():
            assert values[index] == pytest.approx(alone[name][0])
