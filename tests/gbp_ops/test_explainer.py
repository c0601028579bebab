"""GuidedBackprop against the independent numpy reference, closed forms and its own invariants."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from demo.reference_model import build_reference_model
from gbp_ops import GBPError, GuidedBackprop, errors
from tests.gbp_ops.numpy_reference import numpy_guided_backprop
from tests.gbp_ops.toy_models import (
    assert_eager_safe,
    plain_target_gradients,
    random_cnn,
    random_images,
    randomize_batchnorm,
)

RTOL, ATOL = 1e-4, 1e-6


class NegativeSquare(keras.layers.Layer):
    """y = -x**2: after a ReLU, every upstream gradient is <= 0, so guided maps are zero."""

    def call(self, inputs):
        return -tf.square(inputs)


def test_closed_form_relu_then_negative_square_gives_zero_guided_map():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(3, activation="relu", name="hidden")(inputs)
    squared = NegativeSquare()(hidden)
    outputs = keras.layers.Dense(2, use_bias=False, name="readout")(squared)
    model = keras.Model(inputs, outputs)
    model.get_layer("hidden").set_weights([np.eye(3, dtype="float32"), np.ones(3, "float32")])
    model.get_layer("readout").set_weights([np.ones((3, 2), "float32")])
    x = np.array([[0.5, 1.0, 2.0]], np.float32)

    explainer = GuidedBackprop(keras.Sequential([keras.Input((1, 1, 3)),
                                                 keras.layers.Reshape((3,)), model]),
                               batch_size=1)
    guided = explainer.explain(x.reshape(1, 1, 1, 3), targets=np.array([0]))

    plain = -2.0 * (x + 1.0)  # d/dx of sum(-(x+1)^2) where x + 1 > 0
    np.testing.assert_allclose(guided.reshape(1, 3), 0.0)
    assert np.abs(plain).min() > 0


def test_random_cnn_matches_numpy_reference():
    model = random_cnn(16)
    images = random_images(5, 16)
    targets = np.array([0, 1, 2, 3, 4])
    explanation = GuidedBackprop(model, batch_size=4).explain_with_outputs(images, targets)
    expected_maps, expected_logits = numpy_guided_backprop(model, images, targets)
    np.testing.assert_allclose(explanation.scores, expected_logits, rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(explanation.maps, expected_maps, rtol=RTOL, atol=ATOL)
    assert np.abs(expected_maps).max() > 1e-3  # the comparison is not between zero maps


def test_reference_model_matches_numpy_reference_on_predicted_class():
    model = randomize_batchnorm(build_reference_model(32, seed=3), np.random.default_rng(1))
    images = random_images(3, 32, seed=1)
    explanation = GuidedBackprop(model, batch_size=3).explain_with_outputs(images)
    expected_maps, expected_logits = numpy_guided_backprop(model, images, explanation.targets)
    np.testing.assert_array_equal(explanation.targets, expected_logits.argmax(axis=1))
    np.testing.assert_allclose(explanation.scores, expected_logits, rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(explanation.maps, expected_maps, rtol=RTOL, atol=ATOL)
    guided_plain, _ = numpy_guided_backprop(model, images, explanation.targets, guided=False)
    assert not np.allclose(expected_maps, guided_plain, atol=1e-6)


@pytest.mark.parametrize("compile", [True, False])
def test_forward_only_predict_equals_the_reference_argmax(compile):
    model = randomize_batchnorm(build_reference_model(32, seed=4), np.random.default_rng(2))
    images = random_images(7, 32, seed=5)
    explainer = GuidedBackprop(model, batch_size=3, compile=compile)
    _, logits = numpy_guided_backprop(model, images, np.zeros(7, np.int64))
    predicted = explainer.predict(images)  # chunks of 3 + 3 + 1, unpadded
    assert predicted.dtype == np.int64
    if compile:  # one trace serves every chunk size
        assert explainer._forward.experimental_get_tracing_count() == 1
    np.testing.assert_array_equal(predicted, logits.argmax(axis=1))
    np.testing.assert_array_equal(predicted, explainer.explain_with_outputs(images).predicted)
    assert explainer.predict(images[:0]).shape == (0,)


def test_batched_equals_per_example_and_partial_batch_equals_full():
    model = random_cnn(16)
    images = random_images(7, 16, seed=2)
    explainer = GuidedBackprop(model, batch_size=4)
    batched = explainer.explain(images)
    one_by_one = np.concatenate([explainer.explain(images[i:i + 1]) for i in range(7)])
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-5, atol=1e-7)
    assert explainer.num_traces == 1  # one trace serves every batch size


def test_a_partial_batch_computes_only_its_own_rows():
    model = random_cnn(16)
    explainer = GuidedBackprop(model, batch_size=4)
    step, rows_per_call = explainer._step, []

    def counting_step(images, targets, seeds):
        rows_per_call.append(int(images.shape[0]))
        return step(images, targets, seeds)

    explainer._step = counting_step
    explainer.explain(random_images(7, 16, seed=2))
    assert rows_per_call == [4, 3]
    assert explainer.num_traces == 1


def test_tracing_ahead_in_another_thread_traces_once_and_changes_nothing():
    import threading

    model = random_cnn(16)
    images = random_images(5, 16, seed=3)
    expected = GuidedBackprop(model, batch_size=4).explain(images)
    explainer = GuidedBackprop(model, batch_size=4)
    thread = threading.Thread(target=explainer.trace)
    thread.start()
    maps = explainer.explain(images)  # may wait for the trace; never traces again
    thread.join()
    np.testing.assert_array_equal(maps, expected)
    assert explainer.num_traces == 1
    assert_eager_safe(model)
    eager = GuidedBackprop(model, batch_size=4, compile=False)
    eager.trace()
    assert eager.num_traces == 0


def test_eager_equals_tf_function():
    model = random_cnn(16)
    images = random_images(4, 16, seed=3)
    compiled = GuidedBackprop(model, batch_size=4).explain(images)
    assert_eager_safe(model)
    eager = GuidedBackprop(model, batch_size=4, compile=False).explain(images)
    np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-7)


def test_one_step_per_batch():
    explainer = GuidedBackprop(random_cnn(16), batch_size=4)
    explainer.explain(random_images(10, 16))
    assert explainer.num_steps == 3


def test_callers_model_is_unchanged_and_clone_logits_match():
    model = random_cnn(16)
    images = random_images(3, 16, seed=4)
    weights_before = [w.copy() for w in model.get_weights()]
    activations_before = [getattr(layer, "activation", None) for layer in model.layers]
    output_before = model(images, training=False).numpy()
    targets = np.array([0, 1, 2])
    plain_before = plain_target_gradients(model, images, targets)[0]

    explanation = GuidedBackprop(model, batch_size=3).explain_with_outputs(images)

    for before, after in zip(weights_before, model.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert activations_before == [getattr(layer, "activation", None) for layer in model.layers]
    np.testing.assert_array_equal(output_before, model(images, training=False).numpy())
    np.testing.assert_allclose(plain_before, plain_target_gradients(model, images, targets)[0])
    np.testing.assert_allclose(explanation.probabilities, output_before, rtol=1e-5, atol=1e-6)


def test_keep_final_softmax_explains_probability_space():
    model = random_cnn(16)
    explainer = GuidedBackprop(model, batch_size=2, strip_final_activation=False)
    assert explainer.explained_space == "output"
    images = random_images(2, 16)
    scores = explainer.explain_with_outputs(images).scores
    np.testing.assert_allclose(scores, model(images, training=False).numpy(), rtol=1e-5)


def test_intermediate_layer_channel_is_explained():
    model = random_cnn(16)
    conv = model.layers[5]  # the stride-2 conv, before its ReLU(max_value=6)
    explainer = GuidedBackprop(model, batch_size=2, layer_name=conv.name)
    images = random_images(2, 16, seed=5)
    targets = np.array([1, 3])
    explanation = explainer.explain_with_outputs(images, targets)
    assert explainer.explained_space == f"layer:{conv.name}"
    assert explanation.probabilities is None

    # Reference: the prefix up to that conv, then a Dense that sums each channel spatially.
    height, width, channels = conv.output.shape[1:]
    summing = keras.layers.Dense(channels, use_bias=False)
    reference = keras.Sequential([keras.Input((16, 16, 3)), *model.layers[:6],
                                  keras.layers.Flatten(), summing])
    summing.set_weights([np.tile(np.eye(channels, dtype="float32"), (height * width, 1))])
    expected_maps, expected_scores = numpy_guided_backprop(reference, images, targets)
    np.testing.assert_allclose(explanation.scores, expected_scores, rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(explanation.maps, expected_maps, rtol=RTOL, atol=ATOL)
    assert np.abs(expected_maps).max() > 0


@pytest.mark.parametrize(
    "layer, activation",
    [
        (lambda: keras.layers.LeakyReLU(), "LeakyReLU"),
        (lambda: keras.layers.Activation("gelu"), "gelu"),
        (lambda: keras.layers.Activation("swish"), "silu (swish)"),
        (lambda: keras.layers.ELU(), "ELU"),
        (lambda: keras.layers.ReLU(negative_slope=0.1), "relu_with_negative_slope"),
    ],
)
def test_unsupported_activation_names_the_layer(layer, activation):
    model = keras.Sequential([
        keras.Input((4, 4, 1)),
        keras.layers.Conv2D(2, 3, activation="relu"),
        layer(),
        keras.layers.Flatten(),
        keras.layers.Dense(2),
    ], name="one_bad")
    bad_layer = model.layers[1].name
    with pytest.raises(GBPError) as raised:
        GuidedBackprop(model)
    assert str(raised.value) == errors.UNGUIDABLE_ACTIVATIONS.format(
        model="one_bad", groups=f"{activation} at 1 layer: {bad_layer}",
        remedy=errors.GATE_REMEDY)


def test_allow_unguided_leaves_unsupported_layer_with_warning(caplog):
    model = keras.Sequential([
        keras.Input((4, 4, 1)),
        keras.layers.Conv2D(2, 3, activation="relu"),
        keras.layers.LeakyReLU(name="leaky"),
        keras.layers.Flatten(),
        keras.layers.Dense(2),
    ])
    explainer = GuidedBackprop(model, allow_unguided=True, batch_size=1)
    assert [site.layer for site in explainer.unguided_sites] == ["leaky"]
    assert "leaky" in caplog.text


def test_model_without_relu_is_an_error():
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")], name="linear_net")
    with pytest.raises(GBPError, match="model 'linear_net' has no ReLU"):
        GuidedBackprop(model)


def test_bad_image_shape_and_targets_are_errors():
    explainer = GuidedBackprop(random_cnn(16), batch_size=2)
    with pytest.raises(GBPError) as raised:
        explainer.explain(np.zeros((2, 8, 8, 3), np.float32))
    assert str(raised.value) == errors.BAD_IMAGE_SHAPE.format(expected="16, 16, 3",
                                                             got=(2, 8, 8, 3))
    with pytest.raises(GBPError) as raised:
        explainer.explain(random_images(2, 16), targets=np.array([0, 5]))
    assert str(raised.value) == errors.TARGET_OUT_OF_RANGE.format(target=5, num_classes=5)
    with pytest.raises(GBPError, match="one int per image"):
        explainer.explain(random_images(2, 16), targets=np.array([0]))


def test_subclassed_model_is_an_error():
    class Custom(keras.Model):
        def call(self, inputs):
            return tf.nn.relu(inputs)

    with pytest.raises(GBPError, match="subclassed"):
        GuidedBackprop(Custom())


@pytest.mark.parametrize("reduction", ["max_abs", "l2", "sum", "abs_sum"])
def test_in_graph_reduction_equals_numpy_reduction(reduction):
    from gbp_ops.maps import reduce_channels

    model = random_cnn(16)
    images = random_images(3, 16, seed=6)
    full = GuidedBackprop(model, batch_size=4).explain(images)
    reduced = GuidedBackprop(model, batch_size=4, reduction=reduction).explain(images)
    assert reduced.shape == (3, 16, 16)
    np.testing.assert_allclose(reduced, reduce_channels(full, reduction), rtol=1e-5, atol=1e-8)


def test_a_final_softmax_layer_is_stripped_like_a_softmax_activation():
    # keras.layers.Softmax is called with a mask argument; its stand-in must accept it.
    keras.utils.set_random_seed(5)
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu")(inputs))
    logits = keras.layers.Dense(3)(features)
    with_layer = keras.Model(inputs, keras.layers.Softmax()(logits))
    logits_only = keras.Model(inputs, logits)  # the same layers and weights
    images = np.random.default_rng(5).random((4, 8, 8, 3), dtype=np.float32)
    targets = np.array([0, 1, 2, 1])
    explainer = GuidedBackprop(with_layer, batch_size=4)
    assert (explainer.explained_space, explainer.stripped_activation) == ("logit", "softmax")
    maps = explainer.explain(images, targets)
    expected, _ = numpy_guided_backprop(logits_only, images, targets)
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


def test_strided_pointwise_convs_are_found_for_the_eager_guard():
    from gbp_ops.model_graph import strided_pointwise_convs

    inner = keras.Sequential([keras.Input((8, 8, 4)),
                              keras.layers.DepthwiseConv2D(1, strides=2, name="dw_1x1_s2")],
                             name="inner")
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 1, strides=2, padding="same", name="c_1x1_s2")(inputs)
    x = keras.layers.Conv2D(4, 1, name="c_1x1_s1")(x)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="c_3x3_s2")(
        keras.layers.UpSampling2D(2)(x))
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(inner(x)))
    model = keras.Model(inputs, outputs)
    assert strided_pointwise_convs(model) == ["c_1x1_s2", "inner/dw_1x1_s2"]
    assert strided_pointwise_convs(random_cnn(16)) == []
    with pytest.raises(AssertionError, match="c_1x1_s2"):
        assert_eager_safe(model)
