"""Validates the numpy GBP reference: plain gradients against tf.GradientTape, guided by hand."""

import keras
import numpy as np
import pytest

from demo.reference_model import build_reference_model
from tests.gbp_ops.numpy_reference import numpy_guided_backprop
from tests.gbp_ops.toy_models import plain_target_gradients

RTOL = 1e-4
ATOL = 1e-5


def _linear_output_copy(model):
    """Clones `model` with its last layer's activation set to linear, sharing weight values.

    Args:
        model: a keras model whose last layer has an `activation` config entry.

    Returns:
        A new keras model computing the pre-softmax logits of `model`.
    """
    last = model.layers[-1]

    def clone_layer(layer):
        config = layer.get_config()
        if layer is last:
            config["activation"] = "linear"
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(model, clone_function=clone_layer)
    twin.set_weights(model.get_weights())
    return twin


def _assert_maps_close(maps, logits, tf_grads, tf_logits):
    """Asserts reference maps/logits match TF's to RTOL/ATOL.

    Maps are also compared after dividing both by TF's largest |gradient|: gradient scale is
    arbitrary (these random models give maxima around 1e-3), so a bare ATOL could pass anything.
    """
    np.testing.assert_allclose(logits, tf_logits, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(maps, tf_grads, rtol=RTOL, atol=ATOL)
    scale = np.abs(tf_grads).max()
    assert scale > 0
    np.testing.assert_allclose(maps / scale, tf_grads / scale, rtol=RTOL, atol=ATOL)


def _randomise_batch_norms(model, rng):
    """Gives every BatchNormalization layer random gamma/beta and moving mean/variance."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            (channels,) = layer.get_weights()[0].shape
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, channels),  # gamma
                    rng.normal(0.0, 0.1, channels),  # beta
                    rng.normal(0.0, 0.2, channels),  # moving_mean
                    rng.uniform(0.5, 2.0, channels),  # moving_variance
                ]
            )


def _check_against_tf(model, images, targets):
    """Asserts the reference's plain gradients and logits match TF on `model`'s logit copy."""
    logit_model = _linear_output_copy(model)
    tf_grads, tf_logits = plain_target_gradients(logit_model, images, targets)
    maps, logits = numpy_guided_backprop(model, images, targets, guided=False)

    assert maps.dtype == np.float64 and maps.shape == images.shape
    assert logits.dtype == np.float64 and logits.shape == tf_logits.shape
    _assert_maps_close(maps, logits, tf_grads, tf_logits)
    # The softmax model's probabilities are the softmax of the reference's logits.
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, model(images, training=False).numpy(), rtol=RTOL, atol=ATOL)
    # Stripping the final softmax gives the same result as a model built without it.
    twin_maps, twin_logits = numpy_guided_backprop(logit_model, images, targets, guided=False)
    np.testing.assert_array_equal(twin_maps, maps)
    np.testing.assert_array_equal(twin_logits, logits)

    # Guard against a vacuous pass through an all-dead network; guided must differ from plain.
    assert np.count_nonzero(maps) > 0.5 * maps.size
    guided_maps, guided_logits = numpy_guided_backprop(model, images, targets)
    np.testing.assert_array_equal(guided_logits, logits)
    assert not np.allclose(guided_maps, maps)


def _small_cnn(final_activation):
    """A 16x16x3 CNN covering every supported layer kind and option the reference handles."""
    return keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(6, 3, padding="same"),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(max_value=6.0),
            # Stride 2, 'same', odd kernel height: TF pads 0 rows above and 1 below.
            keras.layers.Conv2D(8, (3, 2), strides=2, padding="same", use_bias=False),
            keras.layers.Activation("relu"),
            keras.layers.MaxPool2D(pool_size=3, strides=2, padding="same"),
            keras.layers.Conv2D(8, 3, padding="valid", activation="relu6"),
            keras.layers.MaxPool2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(4, activation=final_activation),
        ]
    )


def test_small_cnn_plain_gradients_match_tensorflow():
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    model = _small_cnn("softmax")
    _randomise_batch_norms(model, rng)
    images = rng.normal(0.0, 1.0, (3, 16, 16, 3)).astype(np.float32)
    _check_against_tf(model, images, np.array([0, 3, 2]))


def test_reference_model_plain_gradients_match_tensorflow():
    model = build_reference_model(input_size=32, width_divisor=4, seed=0)
    rng = np.random.default_rng(0)
    _randomise_batch_norms(model, rng)
    images = rng.uniform(0.0, 1.0, (2, 32, 32, 3)).astype(np.float32)
    _check_against_tf(model, images, np.array([1, 0]))


def test_final_activation_softmax_layer_is_stripped():
    keras.utils.set_random_seed(2)
    rng = np.random.default_rng(2)
    linear = _small_cnn("linear")
    _randomise_batch_norms(linear, rng)
    # Shares the layers (and so the weights) of `linear`.
    with_layer = keras.Sequential(
        [keras.Input((16, 16, 3)), *linear.layers, keras.layers.Activation("softmax")]
    )
    images = rng.normal(0.0, 1.0, (2, 16, 16, 3)).astype(np.float32)
    targets = np.array([1, 2])
    tf_grads, tf_logits = plain_target_gradients(linear, images, targets)
    maps, logits = numpy_guided_backprop(with_layer, images, targets, guided=False)
    _assert_maps_close(maps, logits, tf_grads, tf_logits)


@pytest.mark.parametrize(
    "relu_kwargs",
    [{}, {"max_value": 6.0}, {"max_value": 1.5, "threshold": 0.4}, {"threshold": 0.3}],
    ids=["plain", "max6", "max1.5_thr0.4", "thr0.3"],
)
def test_relu_layer_variants_match_tensorflow(relu_kwargs):
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    model = keras.Sequential(
        [
            keras.Input((4, 4, 2)),
            keras.layers.Conv2D(12, 3, padding="same"),
            keras.layers.ReLU(**relu_kwargs),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ]
    )
    # Pre-activations spread over roughly [-15, 15] so every ReLU region (below 0, below the
    # threshold, linear, above the max) holds a few percent or more of the units.
    images = rng.normal(0.0, 8.0, (4, 4, 4, 2)).astype(np.float32)
    targets = np.array([0, 1, 2, 0])
    tf_grads, tf_logits = plain_target_gradients(model, images, targets)
    maps, logits = numpy_guided_backprop(model, images, targets, guided=False)
    _assert_maps_close(maps, logits, tf_grads, tf_logits)


def test_guided_dense_relu_closed_form():
    model = keras.Sequential(
        [
            keras.Input((1, 1, 2)),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.layers[1].set_weights([np.array([[1.0, -1.0, 1.0], [1.0, 1.0, -1.0]]), np.zeros(3)])
    model.layers[2].set_weights([np.array([[2.0], [-3.0], [5.0]]), np.array([0.5])])
    images = np.array([1.0, 2.0]).reshape(1, 1, 1, 2)
    # Hidden pre-activations h = [3, 1, -1]; upstream dL/dh = w2 = [2, -3, 5].
    # Unit 0: active, positive upstream -> passes in both modes.
    # Unit 1: active, negative upstream -> passes plain, blocked by guided.
    # Unit 2: inactive (positive upstream) -> blocked in both modes.
    # logit = 2*3 - 3*1 + 0.5 = 3.5
    # plain  = W1 @ [2, -3, 0] = [2 + 3, 2 - 3] = [5, -1]
    # guided = W1 @ [2,  0, 0] = [2, 2]
    guided_map, logits = numpy_guided_backprop(model, images, np.array([0]))
    plain_map, _ = numpy_guided_backprop(model, images, np.array([0]), guided=False)
    np.testing.assert_allclose(logits, [[3.5]])
    np.testing.assert_allclose(guided_map.reshape(2), [2.0, 2.0])
    np.testing.assert_allclose(plain_map.reshape(2), [5.0, -1.0])


def test_guided_relu_threshold_max_value_closed_form():
    model = keras.Sequential(
        [
            keras.Input((1, 1, 5)),
            keras.layers.Flatten(),
            keras.layers.ReLU(max_value=2.0, threshold=0.5),
            keras.layers.Dense(1, use_bias=False),
        ]
    )
    model.layers[2].set_weights([np.array([[1.0], [1.0], [1.0], [1.0], [-1.0]])])
    # x = -1: below 0; 0.3: between 0 and the threshold; 1.0: passes; 2.5: clipped at the
    # max (y = 2, zero derivative); 1.2: passes but with negative upstream weight.
    images = np.array([-1.0, 0.3, 1.0, 2.5, 1.2]).reshape(1, 1, 1, 5)
    guided_map, logits = numpy_guided_backprop(model, images, np.array([0]))
    plain_map, _ = numpy_guided_backprop(model, images, np.array([0]), guided=False)
    np.testing.assert_allclose(logits, [[1.0 + 2.0 - 1.2]])
    np.testing.assert_allclose(plain_map.reshape(5), [0.0, 0.0, 1.0, 0.0, -1.0])
    np.testing.assert_allclose(guided_map.reshape(5), [0.0, 0.0, 1.0, 0.0, 0.0])


def test_unsupported_layer_raises():
    model = keras.Sequential(
        [
            keras.Input((4, 4, 1)),
            keras.layers.AveragePooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(2),
        ]
    )
    with pytest.raises(NotImplementedError, match=r"unsupported layer .*AveragePooling2D"):
        numpy_guided_backprop(model, np.zeros((1, 4, 4, 1)), np.array([0]))


def test_non_final_softmax_raises():
    model = keras.Sequential(
        [
            keras.Input((2, 2, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
            keras.layers.Dense(2),
        ]
    )
    with pytest.raises(NotImplementedError, match="softmax"):
        numpy_guided_backprop(model, np.zeros((1, 2, 2, 1)), np.array([0]))
