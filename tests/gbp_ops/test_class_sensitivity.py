"""The class-sensitivity check: a closed-form toy whose classes read disjoint input regions
(Spearman near 0, exactly as the rank formula says), a toy whose classes read the same
pixels (Spearman 1), the other-class draw, and the verdict over both sanity checks."""

import keras
import numpy as np
import pytest
import scipy.stats

from gbp_ops import make_explainer, sanity
from gbp_ops.choices import METHODS
from gbp_ops.class_sensitivity import other_classes, run_class_sensitivity_check

SIDE = 16
BLOCK = 4  # each class reads one BLOCK x BLOCK corner of the SIDE x SIDE image


def _region_model(shared=False):
    """Conv2D 1x1 identity (a 4-D layer for Grad-CAM) -> Flatten -> Dense(2, relu) -> identity.

    Hidden unit c sums the pixels of its own corner with positive weights (top-left for class
    0, bottom-right for class 1); with ``shared`` both units read the top-left corner, unit 1
    with twice unit 0's weights.
    """
    model = keras.Sequential([
        keras.Input((SIDE, SIDE, 1)),
        keras.layers.Conv2D(1, 1, use_bias=False, name="features"),
        keras.layers.Flatten(),
        keras.layers.Dense(2, activation="relu", use_bias=False, name="hidden"),
        keras.layers.Dense(2, use_bias=False, name="logits"),
    ])
    rng = np.random.default_rng(0)
    kernel = np.zeros((SIDE, SIDE, 2), np.float32)
    kernel[:BLOCK, :BLOCK, 0] = rng.uniform(0.5, 1.5, (BLOCK, BLOCK))
    if shared:
        kernel[:BLOCK, :BLOCK, 1] = 2.0 * kernel[:BLOCK, :BLOCK, 0]
    else:
        kernel[-BLOCK:, -BLOCK:, 1] = rng.uniform(0.5, 1.5, (BLOCK, BLOCK))
    model.get_layer("features").set_weights([np.ones((1, 1, 1, 1), np.float32)])
    model.get_layer("hidden").set_weights([kernel.reshape(SIDE * SIDE, 2)])
    model.get_layer("logits").set_weights([np.eye(2, dtype=np.float32)])
    return model


def _images(count=4):
    return np.random.default_rng(1).uniform(0.2, 1.0, (count, SIDE, SIDE, 1)).astype(np.float32)


def _disjoint_spearman(n, k):
    """Spearman of two maps over n cells, each non-zero (distinct values) on its own k cells
    and zero elsewhere: ties get their average rank, so the zero cells sit at -k/2 from the
    mean rank and the covariance sums to -n k^2 / 4."""
    mean = (n + 1) / 2
    high = np.arange(n - k + 1, n + 1) - mean
    return (-n * k * k / 4) / ((high ** 2).sum() + (n - k) * k * k / 4)


@pytest.mark.parametrize("method", METHODS)
def test_disjoint_class_regions_give_the_closed_form_spearman_near_zero(method):
    explainer = make_explainer(_region_model(), method, batch_size=4)
    images = _images()
    rows = run_class_sensitivity_check(explainer, images, targets=np.array([0, 1, 0, 1]))

    expected = _disjoint_spearman(SIDE * SIDE, BLOCK * BLOCK)
    assert -0.1 < expected < 0  # "near 0": the two maps share only their zeros
    assert [row["other_class"] for row in rows] == [1, 0, 1, 0]
    np.testing.assert_allclose([row["spearman"] for row in rows], expected, rtol=1e-9)
    # The maps really are the closed form: class c's map lives on corner c only.
    maps = explainer.explain(images, np.array([0, 1, 0, 1]))[..., 0]
    assert np.all(maps[0, :BLOCK, :BLOCK] != 0) and np.all(maps[0, BLOCK:, :] == 0)
    assert np.all(maps[1, -BLOCK:, -BLOCK:] != 0) and np.all(maps[1, :-BLOCK, :] == 0)
    other = explainer.explain(images, np.array([1, 0, 1, 0]))[..., 0]
    scipy_rho = scipy.stats.spearmanr(np.abs(maps[0]).ravel(), np.abs(other[0]).ravel())[0]
    assert rows[0]["spearman"] == pytest.approx(scipy_rho, rel=1e-9)
    # SSIM stays well above 0 here: most windows see the zero background both maps share.
    assert all(0.0 < row["ssim"] < 0.9 for row in rows)


def test_classes_reading_the_same_pixels_give_spearman_one():
    explainer = make_explainer(_region_model(shared=True), "guided_backprop", batch_size=4)
    rows = run_class_sensitivity_check(explainer, _images(), targets=np.array([0, 1, 0, 1]))
    np.testing.assert_allclose([row["spearman"] for row in rows], 1.0)
    np.testing.assert_allclose([row["ssim"] for row in rows], 1.0, atol=1e-5)


def test_other_classes_never_repeat_the_target_and_follow_the_seed():
    targets = np.arange(1000) % 7
    others = other_classes(targets, 7, seed=3)
    assert others.dtype == np.int64 and not np.any(others == targets)
    assert set(others) == set(range(7))
    np.testing.assert_array_equal(others, other_classes(targets, 7, seed=3))
    assert not np.array_equal(others, other_classes(targets, 7, seed=4))
    np.testing.assert_array_equal(other_classes([0, 1, 1], 2, seed=0), [1, 0, 0])


def _rows(check, values, depth=0):
    return [{"check": check, "depth": depth, "randomized_layers": "" if depth == 0 else "top",
             "example_index": i, "spearman": value, "ssim": value}
            for i, value in enumerate(values)]


def test_summary_and_verdict_keep_the_two_checks_apart():
    rows = (_rows("randomization", [0.9, 0.8], depth=1)
            + _rows("class_sensitivity", [0.97, 0.99]))
    by_depth = sanity.summary(rows)
    assert list(by_depth) == [1] and by_depth[1]["count"] == 2
    entry = sanity.class_summary(rows)
    assert entry["count"] == 2 and entry["spearman_mean"] == pytest.approx(0.98)
    fields = sanity.sanity_fields(rows, "guided_backprop")
    text = fields["verdict"]
    assert text.startswith("Method: guided_backprop. Maps changed little")
    assert "Maps barely depend on the class explained" in text and "Spearman 0.98" in text
    assert fields["class_sensitivity"] == entry
    specific = sanity.verdict({}, sanity.class_summary(_rows("class_sensitivity", [0.1, -0.1])),
                              "guided_gradcam")
    assert specific == ("Method: guided_gradcam. Maps are class-specific: the map of a randomly "
                        "drawn other class has mean Spearman 0.00 (SSIM 0.00) with the explained "
                        "class's map, over 2 examples.")
    partly = sanity.verdict({}, sanity.class_summary(_rows("class_sensitivity", [0.4, 0.4])))
    assert partly.startswith("Maps depend partly on the class explained")
    # Rows written before the class check (no 'check') are randomization rows.
    old = [{key: value for key, value in row.items() if key != "check"}
           for row in _rows("randomization", [0.2], depth=2)]
    assert list(sanity.summary(old)) == [2] and sanity.class_summary(old) == {}
