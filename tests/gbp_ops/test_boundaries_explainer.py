"""Branches of the explainer and the rewrite that the other tests never reach: a single
sigmoid output unit (class 1 is the logit, class 0 its negation; a logit of exactly 0 is class
0, as sigmoid(0) = 0.5 is not above 0.5), a sigmoid inside the model (only the final one is
stripped), and a PReLU layer (unsupported, named)."""

import keras
import numpy as np
import pytest

from gbp_ops import GBPError, GuidedBackprop


def _single_unit_model():
    """logit = relu(x0 + x2) - relu(x1 + x3) for a 2x2x1 image x, then a sigmoid."""
    inputs = keras.Input((2, 2, 1))
    hidden = keras.layers.Dense(2, activation="relu", name="hidden")(
        keras.layers.Flatten()(inputs))
    outputs = keras.layers.Dense(1, activation="sigmoid", name="out")(hidden)
    model = keras.Model(inputs, outputs)
    model.get_layer("hidden").set_weights([np.array([[1, 0], [0, 1], [1, 0], [0, 1]],
                                                    np.float32), np.zeros(2, np.float32)])
    model.get_layer("out").set_weights([np.array([[1.0], [-1.0]], np.float32),
                                        np.zeros(1, np.float32)])
    return model


IMAGES = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0.5, 0, 0, 0.5],
                   [0.25, 0.5, 0.5, 0]], np.float32).reshape(5, 2, 2, 1)


def _closed_form(images, targets):
    """Logits, predicted classes, target scores and guided maps by hand."""
    flat = images.reshape(len(images), 4).astype(np.float64)
    first, second = flat[:, 0] + flat[:, 2], flat[:, 1] + flat[:, 3]
    logits = np.maximum(first, 0) - np.maximum(second, 0)
    predicted = (logits > 0).astype(np.int64)
    chosen = np.where(np.asarray(targets) < 0, predicted, targets)
    scores = np.where(chosen == 1, logits, -logits)
    # class 1 passes the gradient through the first hidden unit (if on), class 0 the second
    maps = np.where((chosen == 1)[:, None], np.outer(first > 0, [1, 0, 1, 0]),
                    np.outer(second > 0, [0, 1, 0, 1])).reshape(len(images), 2, 2, 1)
    return logits, predicted, chosen, scores, maps


@pytest.mark.parametrize("targets", [[-1] * 5, [1, 1, 1, 1, 1], [0, 0, 0, 0, 0],
                                     [0, 1, -1, 1, 0]])
def test_a_single_sigmoid_unit_against_its_closed_form(targets):
    explainer = GuidedBackprop(_single_unit_model(), batch_size=4)
    assert (explainer.num_classes, explainer.stripped_activation) == (2, "sigmoid")
    result = explainer.explain_with_outputs(IMAGES, np.array(targets))
    logits, predicted, chosen, scores, maps = _closed_form(IMAGES, targets)
    assert predicted.tolist() == [1, 0, 0, 0, 1]  # logits 1, -1, 0, 0 (exactly), 0.25
    np.testing.assert_array_equal(result.scores[:, 0], logits)
    np.testing.assert_array_equal(result.predicted, predicted)
    np.testing.assert_array_equal(result.targets, chosen)
    np.testing.assert_array_equal(result.target_scores, scores)
    np.testing.assert_array_equal(result.maps, maps)
    positive = 1.0 / (1.0 + np.exp(-logits))
    np.testing.assert_allclose(result.probabilities, np.stack([1 - positive, positive], 1),
                               rtol=1e-6)
    np.testing.assert_allclose(result.target_probabilities,
                               np.where(chosen == 1, positive, 1 - positive), rtol=1e-6)
    np.testing.assert_array_equal(explainer.predict(IMAGES), predicted)


def test_only_the_final_sigmoid_is_stripped():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(3, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Dense(4, activation="sigmoid", name="gate")(keras.layers.Flatten()(x))
    x = keras.layers.Dense(5, activation="relu", name="mix")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="final")(x)
    model = keras.Model(inputs, outputs)
    images = np.random.default_rng(3).normal(size=(4, 6, 6, 1)).astype(np.float32)
    # reference logits: the model up to "mix", then the final layer's affine map in numpy
    features = keras.Model(inputs, model.get_layer("mix").output)(images).numpy()
    kernel, bias = model.get_layer("final").get_weights()
    logits = features.astype(np.float64) @ kernel + bias
    explainer = GuidedBackprop(model, batch_size=4)
    assert explainer.stripped_activation == "softmax"
    np.testing.assert_allclose(explainer.explain_with_outputs(images).scores, logits,
                               rtol=1e-5, atol=1e-6)


def test_a_prelu_layer_is_unsupported_and_named():
    model = keras.Sequential([keras.Input((4, 4, 1)),
                              keras.layers.Conv2D(2, 3, activation="relu"),
                              keras.layers.PReLU(name="learned_slope"),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(GBPError) as raised:
        GuidedBackprop(model)
    # the refusal groups the layers by activation and names the opt-in (gbp_ops.errors)
    assert "PReLU at 1 layer: learned_slope." in str(raised.value)
    assert "explain.nonlinearity_rule: gate" in str(raised.value)
