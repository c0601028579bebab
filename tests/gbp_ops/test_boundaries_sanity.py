"""The sanity check's verdict bands at exactly their thresholds, and SSIM of maps narrower than
its 11-pixel window against a numpy SSIM written from Wang et al. (2004)."""

import numpy as np
import pytest
from scipy import signal

from gbp_ops import sanity, similarity
from gbp_ops.choices import CHECK_CLASS_SENSITIVITY


def _rows(values_by_depth):
    return [{"depth": depth, "randomized_layers": f"l{depth}", "example_index": i,
             "spearman": value, "ssim": value}
            for depth, values in values_by_depth.items() for i, value in enumerate(values)]


# (mean Spearman at depth TOP_DEPTH, expected opening): the bands are [0.5, 1], [0.3, 0.5) and
# below 0.3; 0.5 and 0.25 are binary exact, and the means below are exact (x + x) / 2 == x.
@pytest.mark.parametrize("value,opening", [
    (sanity.SIMILAR_SPEARMAN, "Maps changed little"),
    (sanity.SIMILAR_SPEARMAN - 2 ** -20, "Maps changed partly"),
    (sanity.PARTLY_SIMILAR_SPEARMAN, "Maps changed partly"),
    (0.25, "Maps changed substantially"),
])
def test_randomization_verdict_at_the_band_edges(value, opening):
    assert (value + value) / 2 == value
    rows = _rows({1: [0.9, 0.9], sanity.TOP_DEPTH: [value, value], 5: [0.0, 0.0]})
    summary = sanity.summary(rows)
    assert summary[sanity.TOP_DEPTH]["spearman_mean"] == value
    text = sanity.verdict(summary)
    assert text.startswith(opening), text
    assert f"at depth {sanity.TOP_DEPTH}," in text


@pytest.mark.parametrize("value,opening", [
    (sanity.SIMILAR_SPEARMAN, "Maps barely depend on the class explained"),
    (sanity.SIMILAR_SPEARMAN - 2 ** -20, "Maps depend partly on the class explained"),
    (sanity.PARTLY_SIMILAR_SPEARMAN, "Maps depend partly on the class explained"),
    (0.25, "Maps are class-specific"),
])
def test_class_sensitivity_verdict_at_the_band_edges(value, opening):
    rows = [{"check": CHECK_CLASS_SENSITIVITY, "depth": 0, "randomized_layers": "",
             "example_index": i, "spearman": value, "ssim": 0.5} for i in range(4)]
    entry = sanity.class_summary(rows)
    assert entry["spearman_mean"] == value and entry["count"] == 4
    text = sanity.verdict({}, entry)
    assert text.startswith(opening), text
    assert "over 4 examples" in text


def _numpy_ssim(x, y, size, sigma=1.5, k1=0.01, k2=0.03):
    """Mean SSIM of two [0, 1] maps with a size x size Gaussian window, valid positions only."""
    axis = np.arange(size) - (size - 1) / 2
    window = np.exp(-axis ** 2 / (2 * sigma ** 2))
    window = np.outer(window, window) / np.outer(window, window).sum()

    def blur(image):
        return signal.correlate2d(image, window, mode="valid")

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = k1 ** 2, k2 ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return index.mean()


@pytest.mark.parametrize("shape", [(16, 6), (6, 16), (8, 8), (24, 20)])
def test_ssim_of_small_and_narrow_maps_matches_numpy(shape):
    """The window shrinks to the map's smaller side (6 for a 16x6 map), as the docstring says."""
    rng = np.random.default_rng(shape[0] * 31 + shape[1])
    a = rng.random((2, *shape))
    b = a + rng.normal(scale=0.3, size=a.shape)
    b[1] = rng.random(shape)
    size = min(11, *shape)
    expected = [_numpy_ssim(np.abs(x) / np.abs(x).max(), np.abs(y) / np.abs(y).max(), size)
                for x, y in zip(a, b)]
    np.testing.assert_allclose(similarity.ssim(a, b), expected, atol=1e-5)
    np.testing.assert_allclose(similarity.ssim(a, a), 1.0, atol=1e-6)
