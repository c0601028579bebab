"""Tests of the cascading model-randomization sanity check (gbp_ops.sanity)."""

import keras
import numpy as np
import pytest
import scipy.stats

from gbp_ops import GuidedBackprop, randomization, reduce_channels, sanity, similarity
from gbp_ops.model_graph import clone_with_weights
from tests.gbp_ops.toy_models import random_images, reference_cnn_with_biases

SIZE = 32
REFERENCE_UNITS = [
    ("predictions",), ("fc2",), ("fc1", "fc1_bn"), ("conv6", "bn6"), ("conv5", "bn5"),
    ("conv4", "bn4"), ("conv3", "bn3"), ("conv2", "bn2"), ("conv1", "bn1"), ("conv0", "bn0"),
]


@pytest.fixture(scope="module")
def model():
    """The reference CNN (1/4 width) with non-trivial biases and BN parameters/statistics, so
    that reinitializing any weight tensor changes it."""
    return reference_cnn_with_biases(SIZE)


@pytest.fixture(scope="module")
def images():
    return random_images(6, SIZE, seed=1)


def _weights_by_layer(model):
    return {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model.layers}


def test_units_group_batchnorm_with_its_weighted_layer_top_first(model):
    assert randomization.randomization_units(model) == REFERENCE_UNITS


@pytest.mark.parametrize("mode", ["reinitialize", "permute"])
def test_randomized_layers_differ_and_the_rest_are_identical(model, mode):
    original = _weights_by_layer(model)
    seen = []
    cascade = randomization.cascading_randomization(model, 4, seed=0, mode=mode)
    for depth, names, randomized in cascade:
        assert names == sum(REFERENCE_UNITS[:depth], ())
        assert randomized is not model
        seen.append(_weights_by_layer(randomized))
        for layer in randomized.layers:
            old, new = original[layer.name], seen[-1][layer.name]
            if layer.name not in names:
                assert all(np.array_equal(a, b) for a, b in zip(old, new)), layer.name
                continue
            for weight, a, b in zip(layer.weights, old, new):
                if mode == "permute" and weight.name in ("moving_mean", "moving_variance"):
                    np.testing.assert_array_equal(a, b)  # statistics are kept when permuting
                    continue
                assert not np.array_equal(a, b), f"{layer.name}/{weight.name} unchanged"
                if mode == "permute":
                    np.testing.assert_array_equal(np.sort(a, axis=None), np.sort(b, axis=None))
    assert len(seen) == 4
    # Cascading: a unit randomized at depth 1 has the same random weights at every depth.
    for later in seen[1:]:
        for a, b in zip(seen[0]["predictions"], later["predictions"]):
            np.testing.assert_array_equal(a, b)


def test_reinitialize_resets_batchnorm_to_its_initial_state(model):
    *_, (_, names, randomized) = randomization.cascading_randomization(model, 3)
    assert "fc1_bn" in names
    gamma, beta, mean, variance = randomized.get_layer("fc1_bn").get_weights()
    np.testing.assert_array_equal(gamma, 1.0)
    np.testing.assert_array_equal(beta, 0.0)
    np.testing.assert_array_equal(mean, 0.0)
    np.testing.assert_array_equal(variance, 1.0)


def test_same_seed_same_weights_other_seed_other_weights(model):
    def top_kernel(seed):
        _, _, randomized = next(randomization.cascading_randomization(model, 1, seed=seed))
        return randomized.get_layer("predictions").get_weights()[0]

    np.testing.assert_array_equal(top_kernel(3), top_kernel(3))
    assert not np.array_equal(top_kernel(3), top_kernel(4))


def test_explicit_depth_layers_and_errors(model):
    steps = list(randomization.cascading_randomization(model, ["fc2", ("conv6", "bn6")]))
    assert [names for _, names, _ in steps] == [("fc2",), ("fc2", "conv6", "bn6")]
    with pytest.raises(ValueError, match="does not have"):
        randomization.cascading_randomization(model, ["no_such_layer"])
    with pytest.raises(ValueError, match="unknown randomization mode"):
        randomization.cascading_randomization(model, mode="shuffle")


def test_spearman_hand_examples():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])[None]
    # Ranks differ by d = (0, 1, 1, 0): rho = 1 - 6 * 2 / (4 * 15) = 0.8.
    np.testing.assert_allclose(similarity.spearman_rank_correlation(a, [[[1.0, 3.0], [2.0, 4.0]]]),
                               [0.8])
    # Ties get average ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4): 4.5 / sqrt(4.5 * 5).
    np.testing.assert_allclose(
        similarity.spearman_rank_correlation([[[1.0, 2.0], [2.0, 3.0]]], a), [4.5 / np.sqrt(22.5)]
    )
    # Absolute values are ranked: the sign of a map does not matter.
    np.testing.assert_allclose(similarity.spearman_rank_correlation(-a, a), [1.0])
    np.testing.assert_allclose(similarity.spearman_rank_correlation(a, 1.0 / a), [-1.0])
    assert np.isnan(similarity.spearman_rank_correlation(a, np.zeros_like(a)))[0]


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    a = np.round(rng.normal(size=(5, 12, 12)), 1)  # rounding makes many ties
    b = np.round(a + rng.normal(scale=0.8, size=a.shape), 1)
    expected = [scipy.stats.spearmanr(np.abs(x).ravel(), np.abs(y).ravel())[0]
                for x, y in zip(a, b)]
    np.testing.assert_allclose(similarity.spearman_rank_correlation(a, b), expected, rtol=1e-12)


def test_ssim_identical_is_one_and_unrelated_is_lower():
    yy, xx = np.mgrid[0:32, 0:32]
    blob = np.exp(-((yy - 12.0) ** 2 + (xx - 20.0) ** 2) / 40.0)[None]
    noise = np.random.default_rng(0).random((1, 32, 32))
    np.testing.assert_allclose(similarity.ssim(blob, blob), [1.0], atol=1e-6)
    np.testing.assert_allclose(similarity.ssim(blob, 5.0 * blob), [1.0], atol=1e-6)  # max-scaled
    assert similarity.ssim(blob, noise)[0] < 0.3
    assert similarity.ssim(np.ones((1, 8, 8)), np.ones((1, 8, 8)))[0] == pytest.approx(1.0)


def test_trained_maps_correlate_perfectly_with_themselves(model, images):
    maps = reduce_channels(GuidedBackprop(model, batch_size=8).explain(images))
    assert np.abs(maps).max() > 0
    np.testing.assert_allclose(similarity.spearman_rank_correlation(maps, maps), 1.0)
    np.testing.assert_allclose(similarity.ssim(maps, maps), 1.0, atol=1e-6)
    # A plain clone explains exactly like the original: depth 0 has nothing random.
    clone_maps = reduce_channels(
        GuidedBackprop(clone_with_weights(model), batch_size=8).explain(images)
    )
    np.testing.assert_allclose(similarity.spearman_rank_correlation(maps, clone_maps), 1.0)


def test_run_sanity_check_leaves_the_model_alone_and_gives_valid_rows(model, images):
    before = [np.array(w) for w in model.get_weights()]
    rows = sanity.run_sanity_check(
        model, images, explainer_for=lambda m: GuidedBackprop(m, batch_size=8), depth_layers=2,
        seed=0)
    after = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert len(rows) == 2 * len(images)
    assert {row["depth"] for row in rows} == {1, 2}
    assert {row["randomized_layers"] for row in rows} == {"predictions", "predictions,fc2"}
    assert sorted({row["example_index"] for row in rows}) == list(range(len(images)))
    spearman = np.array([row["spearman"] for row in rows])
    ssim_values = np.array([row["ssim"] for row in rows])
    assert np.all((spearman >= -1) & (spearman <= 1))
    assert np.all((ssim_values >= -1) & (ssim_values <= 1.0 + 1e-6))
    assert spearman.std() > 0  # the randomization changed the maps

    table = sanity.summary(rows)
    assert list(table) == [1, 2]
    assert table[2]["last_layer"] == "fc2" and table[2]["count"] == len(images)
    assert table[1]["spearman_mean"] == pytest.approx(spearman[:len(images)].mean())
    assert "Adebayo" in sanity.verdict(table)


def _rows(values_by_depth):
    return [{"depth": depth, "randomized_layers": f"l{depth}", "example_index": i,
             "spearman": value, "ssim": value}
            for depth, values in values_by_depth.items() for i, value in enumerate(values)]


def test_verdict_reads_the_top_depths():
    similar = sanity.verdict(sanity.summary(_rows({1: [0.9, 0.95], 3: [0.8, 0.86],
                                                   5: [0.2, 0.1]})))
    assert similar.startswith("Maps changed little")
    assert "0.83 at depth 3, down to l3" in similar and "0.15" in similar
    changed = sanity.verdict(sanity.summary(_rows({1: [0.4, 0.2], 2: [0.1, 0.0]})))
    assert changed.startswith("Maps changed substantially") and "depth 2" in changed
    undefined = sanity.verdict(sanity.summary(_rows({1: [0.9, float("nan")]})))
    assert "1 of 2 maps" in undefined
    assert sanity.verdict({}) == "No sanity-check results to judge."


def test_nested_models_are_randomized_by_path():
    backbone = keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="conv"),
        keras.layers.BatchNormalization(name="bn"), keras.layers.ReLU(),
    ], name="backbone")
    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    nested = keras.Model(inputs, keras.layers.Dense(3, name="head")(pooled))
    assert randomization.randomization_units(nested) == [
        ("head",), ("backbone/conv", "backbone/bn")]
    *_, (_, names, randomized) = randomization.cascading_randomization(nested)
    assert names == ("head", "backbone/conv", "backbone/bn")
    original = nested.get_layer("backbone").get_layer("conv").get_weights()[0]
    changed = randomized.get_layer("backbone").get_layer("conv").get_weights()[0]
    assert not np.array_equal(original, changed)
    np.testing.assert_array_equal(original, backbone.get_layer("conv").get_weights()[0])


def test_outcome_fields_band_each_check_by_the_verdicts_thresholds():
    by_depth = {1: {"spearman_mean": 0.9}, 2: {"spearman_mean": 0.6},
                3: {"spearman_mean": 0.4}, 5: {"spearman_mean": 0.1}}
    fields = sanity.outcome_fields(by_depth, {"spearman_mean": 0.2})
    assert fields["randomization"] == {"depth": 3, "spearman_mean": 0.4,
                                       "band": "partly_similar"}
    assert fields["class_sensitivity"]["band"] == "different"
    assert fields["outcome"] == "warn"
    assert fields["thresholds"] == {"similar_spearman": sanity.SIMILAR_SPEARMAN,
                                    "partly_similar_spearman": sanity.PARTLY_SIMILAR_SPEARMAN,
                                    "top_depth": sanity.TOP_DEPTH}
    assert sanity.outcome_fields({3: {"spearman_mean": 0.5}})["outcome"] == "fail"
    assert sanity.outcome_fields({3: {"spearman_mean": 0.29}})["outcome"] == "pass"
    assert sanity.outcome_fields({3: {"spearman_mean": float("nan")}})["randomization"][
        "band"] == "undefined"
    assert sanity.outcome_fields({})["outcome"] == "undefined"
