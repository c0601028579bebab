"""model_under_precision on a model whose layers are not all float32: a float64 layer and an
already mixed_float16 layer keep their own policies (the docstring's "integer or already mixed
layers keep it"); every float32 layer computes under the requested policy."""

import keras
import numpy as np

from gbp_ops.precision import model_under_precision


def _mixed_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv32")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", dtype="mixed_float16", name="conv16")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(6, activation="relu", dtype="float64", name="dense64")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    return keras.Model(inputs, outputs)


def _policies(model):
    return {layer.name: layer.dtype_policy.name for layer in model.layers
            if not isinstance(layer, keras.layers.InputLayer)}


def test_layers_that_are_not_float32_keep_their_policy():
    model = _mixed_model()
    before = _policies(model)
    assert before["conv16"] == "mixed_float16" and before["dense64"] == "float64"
    reduced = model_under_precision(model, "mixed_bfloat16")
    after = _policies(reduced)
    expected = {name: "mixed_bfloat16" if policy == "float32" else policy
                for name, policy in before.items()}
    assert after == expected
    # the caller's model is untouched, the copy keeps its weights and still computes
    assert _policies(model) == before
    for name in before:
        for original, copied in zip(model.get_layer(name).get_weights(),
                                    reduced.get_layer(name).get_weights()):
            np.testing.assert_array_equal(original, copied)
    images = np.random.default_rng(0).random((2, 8, 8, 3)).astype("float32")
    expected_logits = model(images).numpy()
    got = np.asarray(reduced(images), np.float64)
    np.testing.assert_allclose(got, expected_logits, atol=0.05 * np.abs(expected_logits).max())
