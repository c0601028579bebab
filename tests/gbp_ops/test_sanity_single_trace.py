"""The randomization check explains every cascade depth with one explainer traced once, and its
maps equal (bit for bit) those of the straightforward path it replaced: per depth a randomized
clone of the model (``randomization.cascading_randomization``) and a fresh explainer built on
it."""

import keras
import numpy as np
import pytest

from gbp_ops import GBPError, make_explainer, randomization, sanity
from gbp_ops.choices import METHODS, RANDOMIZATION_MODES
from gbp_ops.maps import reduced_maps
from gbp_ops.similarity import spearman_rank_correlation, ssim
from tests.gbp_ops.toy_models import (
    random_cnn,
    random_images,
    randomize_batchnorm,
    reference_cnn_with_biases,
)

SIZE = 32
TOY_SIZE = 16
SEED = 5


@pytest.fixture(scope="module")
def model():
    """The reference CNN (1/4 width) with non-trivial biases and BN statistics, so that every
    randomized unit changes the maps."""
    return reference_cnn_with_biases(SIZE)


@pytest.fixture(scope="module")
def images():
    return random_images(6, SIZE, seed=1)


@pytest.fixture(scope="module")
def toy():
    """A small CNN with every ReLU form, BN, dropout and a final softmax (6 cascade units), so
    the per-depth reference stays cheap for every method and mode."""
    model = random_cnn(TOY_SIZE)
    rng = np.random.default_rng(4)
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0.0, 0.1, bias.shape).astype("float32")])
    return model


class CountingFactory:
    """``keras.Model -> explainer`` through ``make_explainer`` (the audit's mapping), keeping
    every explainer it built so the test can count them and their traces."""

    def __init__(self, method, **options):
        self.method = method
        self.options = options
        self.built = []

    def __call__(self, candidate):
        explainer = make_explainer(candidate, self.method, batch_size=4, reduction="max_abs",
                                   **self.options)
        self.built.append(explainer)
        return explainer

    @property
    def traces(self):
        return sum(explainer.num_traces for explainer in self.built)


def reference_maps(model, images, seeds, explainer_for, mode, depth_layers=None):
    """The replaced path: the trained maps and targets, then per depth a randomized clone and a
    fresh explainer. Returns ``(trained maps, targets, [(depth, names, maps), ...])``."""
    trained = explainer_for(model).explain_with_outputs(images, None, seeds)
    per_depth = [
        (depth, names, explainer_for(randomized).explain(images, trained.targets, seeds))
        for depth, names, randomized in randomization.cascading_randomization(
            model, depth_layers, SEED, mode)
    ]
    return trained.maps, trained.targets, per_depth


CASES = [(method, mode, {}) for method in METHODS for mode in RANDOMIZATION_MODES] + [
    # Reduced precision copies the model once more, and SmoothGrad adds a graph loop.
    ("guided_gradcam", "reinitialize",
     {"precision": "mixed_bfloat16", "smoothgrad_samples": 2}),
]


@pytest.mark.parametrize("method, mode, options", CASES)
def test_single_trace_maps_equal_the_per_depth_explainers(toy, method, mode, options):
    model = toy
    images = random_images(6, TOY_SIZE, seed=1)
    seeds = np.arange(100, 100 + len(images), dtype=np.int64)
    old = CountingFactory(method, **options)
    trained_maps, targets, expected = reference_maps(model, images, seeds, old, mode)
    units = len(randomization.randomization_units(model))
    assert len(expected) == units and len(old.built) == units + 1
    assert old.traces == units + 1  # the replaced path traced one step per depth, plus one

    new = CountingFactory(method, **options)
    explainer = new(model)
    steps = randomization.cascade_weights(model, None, SEED, mode)
    got = list(sanity.randomized_maps(explainer, model, steps, images, targets, seeds))
    assert len(new.built) == 1 and new.traces == 1
    assert [(d, n) for d, n, _ in got] == [(d, n) for d, n, _ in expected]
    for (depth, _, maps), (_, _, reference) in zip(got, expected):
        # Same graph, same variable values: the maps are bit for bit those of the old path.
        np.testing.assert_array_equal(maps, reference, err_msg=f"depth {depth}")
    # The depths really differ (the check compares something), and the explainer has its
    # trained weights back afterwards.
    assert not np.allclose(got[0][2], got[-1][2])
    np.testing.assert_array_equal(explainer.explain(images, targets, seeds), trained_maps)
    assert new.traces == 1


@pytest.mark.parametrize("mode", RANDOMIZATION_MODES)
def test_run_sanity_check_rows_come_from_the_reference_maps(model, images, mode):
    """The rows of the one-trace check equal Spearman and SSIM of the replaced path's maps."""
    old = CountingFactory("guided_backprop")
    trained_maps, _, expected = reference_maps(model, images, None, old, mode, depth_layers=2)
    new = CountingFactory("guided_backprop")
    rows = sanity.run_sanity_check(model, images, explainer_for=new, mode=mode, seed=SEED,
                                   depth_layers=2)
    assert len(new.built) == 1 and new.traces == 1
    by_depth = {}
    for row in rows:
        by_depth.setdefault(row["depth"], []).append(row)
    reference = reduced_maps(trained_maps, "max_abs")
    for depth, names, maps in expected:
        group = sorted(by_depth[depth], key=lambda row: row["example_index"])
        assert {row["randomized_layers"] for row in group} == {",".join(names)}
        maps = reduced_maps(maps, "max_abs")
        np.testing.assert_allclose([row["spearman"] for row in group],
                                   spearman_rank_correlation(reference, maps), atol=1e-6)
        np.testing.assert_allclose([row["ssim"] for row in group], ssim(reference, maps),
                                   atol=1e-6)


def test_nested_layers_are_assigned_by_path():
    backbone = keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="conv"),
        keras.layers.BatchNormalization(name="bn"), keras.layers.ReLU(),
    ], name="backbone")
    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    nested = keras.Model(inputs, keras.layers.Dense(3, name="head")(pooled))
    randomize_batchnorm(nested, np.random.default_rng(2))
    images = random_images(3, 8, seed=3)
    old = CountingFactory("guided_gradcam")
    _, targets, expected = reference_maps(nested, images, None, old, "reinitialize")
    new = CountingFactory("guided_gradcam")
    steps = randomization.cascade_weights(nested, None, SEED, "reinitialize")
    got = list(sanity.randomized_maps(new(nested), nested, steps, images, targets))
    assert [names for _, names, _ in got] == [("head",), ("head", "backbone/conv", "backbone/bn")]
    for (_, _, maps), (_, _, reference) in zip(got, expected):
        np.testing.assert_array_equal(maps, reference)
    assert new.traces == 1


def test_unknown_layer_paths_are_refused(model):
    explainer = make_explainer(model, batch_size=4)
    with pytest.raises(ValueError, match="has no layers"):
        explainer.assign_layer_weights({"no_such_layer": []})


def test_a_frozen_savedmodel_explainer_refuses_new_weights(tmp_path, model):
    from gbp_ops import load_model

    model.export(str(tmp_path / "saved"), verbose=False)
    explainer = make_explainer(load_model(str(tmp_path / "saved")), batch_size=4)
    with pytest.raises(GBPError, match="frozen graph"):
        explainer.assign_layer_weights({"fc2": model.get_layer("fc2").get_weights()})
