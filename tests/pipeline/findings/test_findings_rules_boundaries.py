"""The findings' flag rule, its sentence and the hot region exactly at their boundaries, with
binary-exact numbers (0.5, 0.25, 0.75 = 3 x 0.25, 10 = 0.125 x 80), and the place words at
exactly 1/3 and 2/3 (2/3 is 2 x 1/3 in floating point, so the centre of [0, 2/3] is 1/3)."""

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from pipeline.config import FindingsConfig
from pipeline.findings import regions, rules

DEFAULTS = FindingsConfig()  # min_flip_rate 0.5, ratio 3, max share 0.25, 5 members, 2%
QUARTER = [0.0, 0.0, 0.5, 0.5]  # share exactly 0.25
LARGER = [0.0, 0.0, 0.5, 0.5625]  # share 0.28125


def _flag(count=20, class_count=100, region=QUARTER, flip=0.75, control=0.0, occluded=10,
          settings=DEFAULTS):
    return rules.is_flagged(settings, count, class_count, region, flip, control, occluded)


def test_the_defaults_are_the_documented_thresholds():
    assert (DEFAULTS.min_flip_rate, DEFAULTS.min_flip_ratio, DEFAULTS.max_region_share,
            DEFAULTS.min_members, DEFAULTS.min_member_share) == (0.5, 3.0, 0.25, 5, 0.02)


@pytest.mark.parametrize("changes,expected", [
    ({}, True),
    ({"count": 5}, True),  # exactly min_members (2% of 100 is 2)
    ({"count": 4}, False),
    ({"region": QUARTER}, True),  # share exactly max_region_share
    ({"region": LARGER}, False),
    ({"flip": 0.5}, True),  # exactly min_flip_rate, zero control
    ({"flip": 0.4375}, False),
    ({"flip": 0.75, "control": 0.25}, True),  # exactly 3 x the control (all binary exact)
    ({"flip": 0.75, "control": 0.28125}, False),
    ({"flip": 0.5, "control": 0.125}, True),  # 0.5 >= 0.375 and >= min_flip_rate
    ({"occluded": 0}, False),  # nothing occluded: nothing proved
])
def test_flag_rule_exactly_at_each_bound(changes, expected):
    assert _flag(**changes) is expected


@pytest.mark.parametrize("count,expected", [(10, True), (9, False)])
def test_member_share_bound_exactly(count, expected):
    """min_member_share 1/8 of a class of 80 is exactly 10 members (above min_members)."""
    settings = dataclasses.replace(DEFAULTS, min_member_share=0.125, min_members=2)
    assert 0.125 * 80 == 10.0
    assert _flag(count=count, class_count=80, settings=settings) is expected


@pytest.mark.parametrize("region,size", [(QUARTER, "a small region"),
                                         (LARGER, "a large region")])
def test_reason_calls_a_quarter_of_the_image_small(region, size):
    text = rules.reason("cat", 20, 80, region, 0.75, 0.25, 16)
    assert text == (f"cat: 20 of 80 examples (25%) rely on {size} at the upper left; covering "
                    "it changes 75% of their predictions, a control region 25% "
                    "(16 examples tested)")


def _flood_region(mean_map, margin):
    """Bounding box (+ margin, cut at the edges) of the 4-connected cells >= half the peak that
    hold the peak, by breadth-first search."""
    height, width = mean_map.shape
    start = np.unravel_index(np.argmax(mean_map), mean_map.shape)
    half = mean_map.max() / 2
    seen, queue = {start}, [start]
    while queue:
        y, x = queue.pop()
        for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
            if (0 <= ny < height and 0 <= nx < width and (ny, nx) not in seen
                    and mean_map[ny, nx] >= half):
                seen.add((ny, nx))
                queue.append((ny, nx))
    rows, cols = zip(*seen)
    return [max(min(rows) - margin, 0) / height, max(min(cols) - margin, 0) / width,
            min(max(rows) + 1 + margin, height) / height,
            min(max(cols) + 1 + margin, width) / width]


@pytest.mark.parametrize("margin", [0, 1])
def test_a_cell_at_exactly_half_the_peak_belongs_to_the_hot_region(margin):
    mean_map = np.zeros((8, 8))
    mean_map[3, 3] = 1.0
    mean_map[3, 4] = 0.5  # exactly half: in
    mean_map[4, 3] = 0.4375  # below half: out
    mean_map[2, 3] = 0.5
    mean_map[1, 3] = 0.5  # connected through (2, 3): in
    expected = _flood_region(mean_map, margin)
    assert expected == [(1 - margin) / 8, (3 - margin) / 8, (4 + margin) / 8, (5 + margin) / 8]
    assert regions.hot_region(mean_map, margin=margin).tolist() == expected


def test_hot_region_matches_the_flood_fill_on_random_maps():
    rng = np.random.default_rng(2)
    for _ in range(20):
        mean_map = ndimage.uniform_filter(rng.random((12, 12)), 3)
        assert regions.hot_region(mean_map).tolist() == _flood_region(mean_map, 1)


@pytest.mark.parametrize("region,words", [
    ([0.0, 0.0, 2 / 3, 2 / 3], "the centre"),  # centre exactly (1/3, 1/3): middle
    ([0.0, 0.0, 0.625, 0.625], "the upper left"),  # 0.3125 < 1/3
    ([2 / 3, 2 / 3, 2 / 3, 2 / 3], "the centre"),  # exactly 2/3: still middle
    ([0.75, 0.75, 0.75, 0.75], "the lower right"),
    ([0.0, 0.5, 0.25, 1.0], "the upper right"),
    ([0.5, 0.0, 1.0, 0.25], "the lower left"),
    ([0.25, 0.0, 0.75, 0.25], "the middle left"),
    ([0.0, 0.25, 0.25, 0.75], "the upper centre"),
])
def test_place_words_at_the_thirds(region, words):
    assert (2 / 3) / 2 == 1 / 3
    assert regions.place_words(region) == words


def _box_blur(image, size=9):
    """Mean of the size x size window around each pixel, edges repeated, channel by channel."""
    pad = size // 2
    padded = np.pad(image.astype(np.float64), ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    height, width = image.shape[:2]
    return np.array([[padded[y:y + size, x:x + size].mean(axis=(0, 1)) for x in range(width)]
                     for y in range(height)])


def test_blur_fill_is_a_9x9_box_blur_of_each_channel_inside_the_region():
    rng = np.random.default_rng(7)
    images = rng.random((2, 12, 10, 3)).astype(np.float32)
    images[1, :, :, 0] = 0.0  # channels that differ a lot: mixing them would show
    images[1, :, :, 2] = 1.0
    region = [0.25, 0.2, 0.75, 0.9]  # rows 3..8, columns 2..8
    covered = regions.occlude(images, region, "blur")
    inside = np.zeros((12, 10), bool)
    inside[3:9, 2:9] = True
    for image, result in zip(images, covered):
        np.testing.assert_allclose(result[inside], _box_blur(image)[inside], rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_array_equal(result[~inside], image[~inside])
