"""gbp_ops.statistics at its boundaries, against loops written from the docstrings: top-share
counts that are not whole pixels, a one-pixel map, box edges that fall exactly on pixel
centres (1/8, 3/8, 5/8 on a 4x4 map: binary exact), and boxes with a missing coordinate."""

import numpy as np
import pytest

from gbp_ops import statistics as st


def _loop_top_share(grid, fraction):
    """Mass of the ceil(fraction * pixels) largest |values| (at least one) over the total."""
    values = sorted(np.abs(np.asarray(grid, np.float64)).ravel().tolist(), reverse=True)
    count = max(1, -(-len(values) * fraction // 1))
    total = sum(values)
    return sum(values[:int(count)]) / total if total > 0 else 0.0


@pytest.mark.parametrize("shape", [(5, 6), (7, 9), (3, 3), (10, 10)])
def test_top_shares_take_the_ceiling_of_a_fractional_pixel_count(shape):
    """5x6 = 30 pixels: the top 5% is ceil(1.5) = 2 pixels; 7x9: ceil(3.15) = 4."""
    rng = np.random.default_rng(shape[0])
    grid = rng.permutation(np.arange(1, shape[0] * shape[1] + 1)).reshape(1, *shape)
    top1, top5 = st.top_shares(grid.astype(np.float32), (0.01, 0.05))
    assert top1[0] == pytest.approx(_loop_top_share(grid[0], 0.01), rel=1e-12)
    assert top5[0] == pytest.approx(_loop_top_share(grid[0], 0.05), rel=1e-12)
    if shape == (5, 6):
        assert top5[0] == pytest.approx((30 + 29) / 465, rel=1e-12)


def test_a_one_pixel_map_has_entropy_zero_and_a_zero_one_is_undefined():
    grid = np.array([[[5.0]], [[0.0]]], np.float32)
    stats = st.per_example_statistics(grid)
    assert stats[st.ENTROPY][0] == 0.0
    assert np.isnan(stats[st.ENTROPY][1])
    assert stats[st.TOP1_SHARE].tolist() == [1.0, 0.0]
    assert stats[st.CENTER_Y][0] == 0.5 and stats[st.CENTER_X][0] == 0.5


def _loop_box_mask(box, height, width):
    """Pixel (y, x) is inside when its centre ((y + 0.5) / H, (x + 0.5) / W) lies in the
    closed box [ymin, ymax] x [xmin, xmax]."""
    ymin, xmin, ymax, xmax = box
    return np.array([[ymin <= (y + 0.5) / height <= ymax and xmin <= (x + 0.5) / width <= xmax
                      for x in range(width)] for y in range(height)])


@pytest.mark.parametrize("box", [
    (0.375, 0.125, 0.625, 0.875),  # every edge exactly on a pixel centre
    (0.125, 0.375, 0.125, 0.375),  # a box that is exactly one pixel centre
    (0.0, 0.0, 0.375, 0.125),
    (0.5, 0.5, 1.0, 1.0),  # edges between centres
])
def test_box_mask_includes_pixel_centres_on_the_edges(box):
    expected = _loop_box_mask(box, 4, 4)
    assert expected.any()
    np.testing.assert_array_equal(st.box_masks(np.array([box]), 4, 4)[0], expected)
    grid = np.arange(1.0, 17.0).reshape(1, 4, 4)
    share = st.per_example_statistics(grid, boxes=np.array([box]))[st.BOX_SHARE][0]
    assert share == pytest.approx(grid[0][expected].sum() / grid.sum(), rel=1e-12)


def test_box_mask_on_a_non_square_map_edges_on_centres():
    # 4 rows (centres 1/8, 3/8, ...) and 8 columns (centres 1/16, 3/16, ...)
    box = (0.125, 0.1875, 0.625, 0.8125)
    np.testing.assert_array_equal(st.box_masks(np.array([box]), 4, 8)[0],
                                  _loop_box_mask(box, 4, 8))


@pytest.mark.parametrize("box", [
    [np.nan, 0.0, 0.5, 0.5], [0.0, 0.0, np.nan, 0.5], [np.nan] * 4])
def test_a_box_with_any_missing_coordinate_is_no_box(box):
    grid = np.ones((2, 4, 4))
    boxes = np.array([box, [0.0, 0.0, 0.5, 0.5]])
    shares = st.per_example_statistics(grid, boxes=boxes)[st.BOX_SHARE]
    assert np.isnan(shares[0])
    assert shares[1] == 0.25  # the 2x2 top-left pixels of 16
