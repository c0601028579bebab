"""Cascading randomization on layers the reference model does not have: an adapted
Normalization layer (data statistics, never randomized) and a two-entry bias, which a single
random permutation leaves unchanged half of the time."""

import keras
import numpy as np
import pytest

from gbp_ops import randomization


def _model_with_normalization():
    keras.utils.set_random_seed(0)
    normalization = keras.layers.Normalization(axis=-1, name="norm")
    normalization.adapt(np.random.default_rng(0).normal(3.0, 2.0, (64, 6)).astype("float32"))
    return keras.Sequential([keras.Input((6,)), normalization,
                             keras.layers.Dense(5, activation="relu", name="hidden"),
                             keras.layers.Dense(2, name="head")])


@pytest.mark.parametrize("mode", ["reinitialize", "permute"])
def test_an_adapted_normalization_layer_is_never_randomized(mode):
    model = _model_with_normalization()
    statistics = [np.array(w) for w in model.get_layer("norm").get_weights()]
    assert statistics and np.abs(statistics[0]).max() > 1.0  # adapted: mean near 3
    assert randomization.randomization_units(model) == [("head",), ("hidden",)]
    steps = list(randomization.cascading_randomization(model, mode=mode))
    assert [names for _, names, _ in steps] == [("head",), ("head", "hidden")]
    for _, _, randomized in steps:
        for kept, original in zip(randomized.get_layer("norm").get_weights(), statistics):
            np.testing.assert_array_equal(kept, original)


def test_a_permuted_two_entry_bias_always_changes():
    """The head's bias [1, 2] has two orders; the permutation is redrawn until it changes, so
    every seed's randomized bias is [2, 1]."""
    model = _model_with_normalization()
    kernel, _ = model.get_layer("head").get_weights()
    model.get_layer("head").set_weights([kernel, np.array([1.0, 2.0], np.float32)])
    for seed in range(24):
        _, _, randomized = next(randomization.cascading_randomization(model, 1, seed=seed,
                                                                      mode="permute"))
        np.testing.assert_array_equal(randomized.get_layer("head").get_weights()[1], [2.0, 1.0])
