"""DeconvNet and Guided Grad-CAM against the independent numpy reference, their parts and the
rules that set them apart from guided backprop; ``make_explainer``'s errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from demo.reference_model import build_reference_model
from gbp_ops import Deconvnet, GBPError, GuidedBackprop, GuidedGradCAM, make_explainer
from tests.gbp_ops.numpy_reference import (
    numpy_backprop,
    numpy_bilinear_resize,
    numpy_gradcam,
    numpy_guided_gradcam,
)
from tests.gbp_ops.test_relu_caps import COUNT, _pre_activations
from tests.gbp_ops.test_relu_caps import TARGETS as CAP_TARGETS
from tests.gbp_ops.test_relu_caps import _images as cap_images
from tests.gbp_ops.test_relu_caps import _model as capped_model
from tests.gbp_ops.test_relu_forms import REFERENCE_FORMS, SIZE, TARGETS, _model
from tests.gbp_ops.toy_models import (
    assert_eager_safe,
    random_cnn,
    random_images,
    randomize_batchnorm,
)

RTOL, ATOL = 1e-4, 1e-6  # the tolerances of the GBP tests (test_explainer.py)


@pytest.fixture(scope="module")
def reference_model():
    return randomize_batchnorm(build_reference_model(32, seed=3), np.random.default_rng(1))


def _assert_matches(maps, expected):
    assert np.abs(expected).max() > 1e-7  # not zero maps; the scaled comparison is the strict one
    np.testing.assert_allclose(maps, expected, rtol=RTOL, atol=ATOL)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(maps / scale, expected / scale, rtol=RTOL, atol=ATOL)


# --- the numpy reference's own new parts -------------------------------------------------

def test_numpy_bilinear_resize_hand_example():
    # 2 -> 4 with half-pixel centres reads coordinates -0.25 (clamped to 0), 0.25, 0.75, 1.25
    # (clamped to 1).
    maps = np.array([[[0.0, 4.0], [8.0, 12.0]]])
    along = np.array([0.0, 1.0, 3.0, 4.0])
    expected = along[None, :] + 2.0 * along[:, None]
    np.testing.assert_allclose(numpy_bilinear_resize(maps, (4, 4))[0], expected)


def test_numpy_layer_gradients_match_tf_gradient_tape():
    model = random_cnn(16)
    images = random_images(3, 16, seed=5)
    targets = np.array([1, 3, 0])
    layer = model.layers[6].name  # the stride-2 convolution
    activations, gradients, _ = numpy_backprop(model, images, targets, "plain", stop_at=layer)
    last = model.layers[-1]
    logits_head = keras.layers.Dense.from_config(last.get_config() | {"activation": "linear"})
    logits = logits_head(model.layers[-2].output)
    logits_head.set_weights(last.get_weights())
    probe = keras.Model(model.inputs, [model.get_layer(layer).output, logits])
    assert_eager_safe(probe)
    with tf.GradientTape() as tape:
        tf_activations, tf_logits = probe(images, training=False)
        score = tf.reduce_sum(tf.gather(tf_logits, targets, batch_dims=1))
    tf_gradients = tape.gradient(score, tf_activations).numpy()
    np.testing.assert_allclose(activations, tf_activations.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gradients, tf_gradients, rtol=1e-4, atol=1e-7)
    assert np.abs(tf_gradients).max() > 1e-3


# --- DeconvNet -----------------------------------------------------------------------------

def test_deconvnet_random_cnn_matches_numpy_reference():
    model = random_cnn(16)
    images = random_images(5, 16)
    targets = np.array([0, 1, 2, 3, 4])
    explanation = Deconvnet(model, batch_size=4).explain_with_outputs(images, targets)
    expected, logits = numpy_backprop(model, images, targets, "deconvnet")
    np.testing.assert_allclose(explanation.scores, logits, rtol=RTOL, atol=1e-5)
    _assert_matches(explanation.maps, expected)
    # The rule matters here: the guided rule gives another map.
    guided, _ = numpy_backprop(model, images, targets, "guided")
    assert not np.allclose(expected, guided, rtol=RTOL, atol=ATOL)


def test_deconvnet_reference_model_matches_numpy_reference(reference_model):
    images = random_images(3, 32, seed=1)
    explanation = make_explainer(reference_model, "deconvnet",
                                 batch_size=3).explain_with_outputs(images)
    expected, _ = numpy_backprop(reference_model, images, explanation.targets, "deconvnet")
    _assert_matches(explanation.maps, expected)
    guided, _ = numpy_backprop(reference_model, images, explanation.targets, "guided")
    assert not np.allclose(expected, guided, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("form", sorted(REFERENCE_FORMS))
def test_deconvnet_every_relu_form_matches_numpy(form):
    model = _model(*REFERENCE_FORMS[form]())
    images = random_images(4, SIZE, seed=7)
    maps = Deconvnet(model, batch_size=4).explain(images, TARGETS)
    expected, _ = numpy_backprop(model, images, TARGETS, "deconvnet")
    _assert_matches(maps, expected)


def test_deconvnet_ignores_the_cap_of_a_saturated_relu():
    """Documented choice: DeconvNet's backward at ReLU(max_value) is relu(dy) even where the
    forward is saturated, so with one ReLU the map does not depend on the image at all."""
    model = capped_model([keras.layers.ReLU(max_value=6.0)], "linear", 12.0)
    images = cap_images()
    pre = _pre_activations(model, images)
    assert np.mean(pre > 6.0) > 0.2
    maps = Deconvnet(model, batch_size=COUNT).explain(images, CAP_TARGETS)

    kernel = np.asarray(model.layers[0].get_weights()[0], np.float64)
    dense_kernel = np.asarray(model.layers[-1].get_weights()[0], np.float64)
    dy = np.maximum(dense_kernel[:, CAP_TARGETS].T.reshape(pre.shape), 0.0)
    out = SIZE_CAP = images.shape[1] - 2
    expected = np.zeros(images.shape)
    for i in range(3):
        for j in range(3):
            expected[:, i:i + out, j:j + SIZE_CAP, :] += np.einsum("nhwd,cd->nhwc", dy,
                                                                   kernel[i, j])
    _assert_matches(maps, expected)
    gated = np.zeros(images.shape)
    for i in range(3):
        for j in range(3):
            gated[:, i:i + out, j:j + out, :] += np.einsum("nhwd,cd->nhwc", dy * (pre < 6.0),
                                                           kernel[i, j])
    assert np.abs(gated - expected).max() > 0.1 * np.abs(expected).max()


def test_deconvnet_nested_model_equals_flat_model():
    inner = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.ReLU(threshold=0.1)], name="backbone")
    inputs = keras.Input((SIZE, SIZE, 3))
    outputs = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(8, activation="relu"),
                                keras.layers.Dense(3)], name="head")(inner(inputs))
    nested = keras.Model(inputs, outputs)
    flat = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(4, 3),
                             keras.layers.ReLU(threshold=0.1), keras.layers.Flatten(),
                             keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    flat.set_weights(nested.get_weights())
    explainer = Deconvnet(nested, batch_size=4)
    paths = [site.layer for site in explainer.guided_sites]
    assert len(paths) == 2 and paths[0].startswith("backbone/") and paths[1].startswith("head/")
    images = random_images(4, SIZE, seed=8)
    expected, _ = numpy_backprop(flat, images, TARGETS, "deconvnet")
    _assert_matches(explainer.explain(images, TARGETS), expected)


# --- Guided Grad-CAM -----------------------------------------------------------------------

def _last_feature_map_layer(model):
    return [layer.name for layer in model.layers if len(layer.output.shape) == 4][-1]


def test_guided_gradcam_random_cnn_matches_numpy_reference():
    model = random_cnn(16)
    images = random_images(5, 16, seed=2)
    targets = np.array([0, 1, 2, 3, 4])
    explainer = GuidedGradCAM(model, batch_size=4)
    layer = _last_feature_map_layer(model)
    assert explainer.gradcam_layer == layer
    assert explainer.method_fields()["gradcam_layer"] == layer
    maps = explainer.explain(images, targets)
    expected = numpy_guided_gradcam(model, images, targets, layer)
    _assert_matches(maps, expected)
    # Grad-CAM weights from guided gradients give another map: the test sees the rule.
    guided_weights, _ = numpy_backprop(model, images, targets, "guided")
    wrong = guided_weights * numpy_gradcam(model, images, targets, layer, rule="guided")[..., None]
    assert not np.allclose(wrong, expected, rtol=RTOL, atol=ATOL)


def test_guided_gradcam_reference_model_matches_numpy_reference(reference_model):
    images = random_images(3, 32, seed=1)
    explainer = make_explainer(reference_model, "guided_gradcam", batch_size=3)
    assert explainer.gradcam_layer == "relu6"  # the last Conv-BN-ReLU block, 2x2 at 32 px
    explanation = explainer.explain_with_outputs(images)
    expected = numpy_guided_gradcam(reference_model, images, explanation.targets, "relu6")
    _assert_matches(explanation.maps, expected)
    other = numpy_guided_gradcam(reference_model, images, explanation.targets, "relu5")
    assert not np.allclose(other, expected, rtol=RTOL, atol=ATOL)


def test_guided_gradcam_named_layer_matches_numpy_reference(reference_model):
    images = random_images(3, 32, seed=4)
    targets = np.array([0, 1, 1])
    maps = make_explainer(reference_model, "guided_gradcam", gradcam_layer="relu5",
                          batch_size=3).explain(images, targets)
    _assert_matches(maps, numpy_guided_gradcam(reference_model, images, targets, "relu5"))


def test_guided_gradcam_is_the_product_of_its_two_parts():
    model = random_cnn(16)
    images = random_images(4, 16, seed=6)
    targets = np.array([4, 2, 0, 1])
    combined = GuidedGradCAM(model, batch_size=4).explain(images, targets)
    guided = GuidedBackprop(model, batch_size=4).explain(images, targets)

    layer = _last_feature_map_layer(model)
    last = model.layers[-1]
    head = keras.layers.Dense.from_config(last.get_config() | {"activation": "linear"})
    probe = keras.Model(model.inputs, [model.get_layer(layer).output,
                                       head(model.layers[-2].output)])
    head.set_weights(last.get_weights())
    assert_eager_safe(probe)
    with tf.GradientTape() as tape:
        activations, logits = probe(images, training=False)
        score = tf.reduce_sum(tf.gather(logits, targets, batch_dims=1))
    alpha = tf.reduce_mean(tape.gradient(score, activations), axis=[1, 2])
    cam = tf.nn.relu(tf.einsum("nhwk,nk->nhw", activations, alpha))
    cam = tf.image.resize(cam[..., None], (16, 16), method="bilinear").numpy()
    assert cam.max() > 0 and cam.min() == 0.0  # the ReLU both passes and cuts
    np.testing.assert_allclose(combined, guided * cam, rtol=1e-5, atol=1e-9)


# --- make_explainer ------------------------------------------------------------------------

def test_make_explainer_picks_the_class_and_passes_options():
    model = random_cnn(16)
    assert type(make_explainer(model)) is GuidedBackprop
    explainer = make_explainer(model, "deconvnet", batch_size=2, reduction="l2",
                               smoothgrad_samples=3, smoothgrad_sigma=0.1)
    assert isinstance(explainer, Deconvnet) and explainer.batch_size == 2
    assert explainer.method_fields() == {"method": "deconvnet", "smoothgrad_samples": 3,
                                         "smoothgrad_sigma": 0.1, "nonlinearity_rule": "refuse"}
    assert explainer.explain(random_images(3, 16)).shape == (3, 16, 16)


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "gradcam"}, "unknown explanation method 'gradcam'"),
    ({"method": "guided_gradcam", "gradcam_layer": "nope"}, "no layer named 'nope'"),
    ({"method": "guided_gradcam", "gradcam_layer": "FLATTEN"}, "output shape \\(None, 128\\)"),
    ({"smoothgrad_samples": -1}, "smoothgrad_samples >= 0"),
    ({"smoothgrad_sigma": -0.5}, "smoothgrad_sigma >= 0"),
])
def test_make_explainer_errors_name_the_problem(kwargs, message):
    model = random_cnn(16)
    if kwargs.get("gradcam_layer") == "FLATTEN":
        kwargs = kwargs | {"gradcam_layer": model.layers[9].name}
    with pytest.raises(GBPError, match=message):
        make_explainer(model, **kwargs)


def test_guided_gradcam_without_a_feature_map_layer_raises():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                              keras.layers.Dense(2)])
    with pytest.raises(GBPError, match="no top-level layer with a 4-D"):
        GuidedGradCAM(keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Reshape((4,)),
                                        model]))
