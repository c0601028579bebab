"""GBP on SavedModels: Keras models exported with ``model.export`` give the Keras path's maps,
a Keras-free ``tf.Module`` matches a numpy guided backward written by hand, and every
nonlinearity the override cannot guide is refused by name."""

import logging
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import gbp_ops
from gbp_ops import errors
from tests.gbp_ops.toy_models import random_images

SIZE = 10


def _conv_head(x, activation=None):
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.layers.Dense(4, activation=activation)(x)


def _conv_relu():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu")(inputs)
    return keras.Model(inputs, _conv_head(keras.layers.Conv2D(6, 3, activation="relu")(x)))


def _conv_relu6():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu6")(inputs)
    return keras.Model(inputs, _conv_head(x))


def _relu_layer_max6():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.ReLU(max_value=6.0)(keras.layers.Conv2D(6, 3)(inputs))
    return keras.Model(inputs, _conv_head(x))


def _dense_tf_nn_relu():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Flatten()(keras.layers.Conv2D(2, 3, strides=2)(inputs))
    x = keras.layers.Dense(8, activation=tf.nn.relu)(x)
    return keras.Model(inputs, keras.layers.Dense(4)(x))


def _nested_backbone():
    backbone_in = keras.Input((SIZE, SIZE, 3))
    features = keras.layers.Conv2D(6, 3, activation="relu")(backbone_in)
    features = keras.layers.ReLU()(keras.layers.Conv2D(6, 3)(features))
    backbone = keras.Model(backbone_in, features, name="backbone")
    inputs = keras.Input((SIZE, SIZE, 3))
    return keras.Model(inputs, _conv_head(backbone(inputs), "softmax"))


def _softmax_head():
    inputs = keras.Input((SIZE, SIZE, 3))
    logits = _conv_head(keras.layers.Conv2D(6, 3, activation="relu")(inputs))
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    # The Keras path cannot strip a Softmax *layer* today (its clone is called with a mask),
    # so the Keras reference is the same layers up to the logits.
    model.keras_reference = keras.Model(inputs, logits)
    return model


def _activation_softmax_head():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Activation("softmax")(_conv_head(x)))


KERAS_MODELS = {"conv_relu": _conv_relu, "relu6": _conv_relu6, "relu_max6": _relu_layer_max6,
                "dense_tf_nn_relu": _dense_tf_nn_relu, "nested_backbone": _nested_backbone,
                "softmax_head": _softmax_head, "activation_softmax_head": _activation_softmax_head}


def _export(model, tmp_path, name="exported"):
    path = str(tmp_path / name)
    model.export(path, verbose=False)
    return path


@pytest.mark.parametrize("name", sorted(KERAS_MODELS))
def test_exported_keras_models_match_the_keras_path(name, tmp_path):
    keras.utils.set_random_seed(3)
    model = KERAS_MODELS[name]()
    source = gbp_ops.load_model(_export(model, tmp_path))
    images = random_images(7, SIZE, seed=1) * 20  # large enough to saturate ReLU6 units
    reference = getattr(model, "keras_reference", model)
    for method in ("guided_backprop", "deconvnet"):
        keras_side = gbp_ops.make_explainer(reference, method, batch_size=4)
        saved_side = gbp_ops.make_explainer(source, method, batch_size=4)
        assert type(saved_side).__module__ == "gbp_ops.savedmodel"
        want = keras_side.explain_with_outputs(images)
        got = saved_side.explain_with_outputs(images)
        scale = np.abs(want.maps).max()
        assert scale > 0
        np.testing.assert_allclose(got.maps, want.maps, rtol=0, atol=1e-5 * scale)
        np.testing.assert_array_equal(got.predicted, want.predicted)
        np.testing.assert_array_equal(saved_side.predict(images), want.predicted)
        np.testing.assert_allclose(got.probabilities, want.probabilities, rtol=1e-5, atol=1e-7)
        assert saved_side.num_traces == 1 and saved_side.num_steps == 2
    assert len(saved_side.guided_sites) == len(keras_side.guided_sites)
    assert {site.form for site in saved_side.guided_sites} <= {"Relu", "Relu6"}
    if reference is model:
        assert (saved_side.explained_space, saved_side.stripped_activation) == (
            keras_side.explained_space, keras_side.stripped_activation)
    else:
        assert (saved_side.explained_space, saved_side.stripped_activation) == (
            "logit", "softmax")


def test_thresholded_relu_is_refused_naming_selectv2(tmp_path, caplog):
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.ReLU(threshold=0.1)(keras.layers.Conv2D(4, 3, activation="relu")(inputs))
    path = _export(keras.Model(inputs, _conv_head(x)), tmp_path)
    source = gbp_ops.load_model(path)
    with pytest.raises(gbp_ops.GBPError) as raised:
        gbp_ops.make_explainer(source)
    message = str(raised.value)
    assert "SelectV2 fed by Greater: a thresholded ReLU x1" in message
    assert "re_lu" in message and "/SelectV2" in message and "allow_unguided" in message
    with caplog.at_level(logging.WARNING):
        explainer = gbp_ops.make_explainer(source, allow_unguided=True)
    assert [site.form for site in explainer.unguided_sites] == [
        "SelectV2 fed by Greater: a thresholded ReLU"]
    assert "SelectV2" in caplog.text


@pytest.mark.parametrize("activation, op_type", [("gelu", "Erfc"), ("leaky_relu", "LeakyRelu"),
                                                 ("silu", "Sigmoid"), ("tanh", "Tanh")])
def test_other_nonlinearities_are_refused_by_op_type(activation, op_type, tmp_path):
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, activation=activation)(
        keras.layers.Conv2D(4, 3, activation="relu")(inputs))
    source = gbp_ops.load_model(_export(keras.Model(inputs, _conv_head(x)), tmp_path))
    with pytest.raises(gbp_ops.GBPError, match=rf"{op_type} x\d+ \["):
        gbp_ops.make_explainer(source)
    if activation == "silu":  # the gate rule cannot help: no activation layer is left
        with pytest.raises(gbp_ops.GBPError) as raised:
            gbp_ops.make_explainer(source, nonlinearity_rule="gate")
        assert str(raised.value) == gbp_ops.errors.SAVEDMODEL_NO_GATE


class DenseReluDense(tf.Module):
    """A Keras-free classifier: flatten -> dense -> relu -> dense -> softmax."""

    def __init__(self, rng, shape, hidden=16, classes=5):
        super().__init__()
        features = int(np.prod(shape))
        self.w1 = tf.Variable(rng.normal(0, 0.5, (features, hidden)).astype("float32"))
        self.b1 = tf.Variable(rng.normal(0, 0.2, hidden).astype("float32"))
        self.w2 = tf.Variable(rng.normal(0, 0.5, (hidden, classes)).astype("float32"))
        self.b2 = tf.Variable(rng.normal(0, 0.2, classes).astype("float32"))
        self.shape = shape

    @tf.function(input_signature=[tf.TensorSpec((None, 4, 4, 2), tf.float32, name="pixels")])
    def __call__(self, pixels):
        flat = tf.reshape(pixels, (-1, int(np.prod(self.shape))))
        hidden = tf.nn.relu(flat @ self.w1 + self.b1)
        return {"probabilities": tf.nn.softmax(hidden @ self.w2 + self.b2)}


def _numpy_dense_relu_dense(module, images, rule):
    """Logits and the guided (or DeconvNet) input gradient of each predicted logit, by hand."""
    w1, b1, w2, b2 = (v.numpy().astype(np.float64) for v in (module.w1, module.b1, module.w2,
                                                             module.b2))
    flat = images.reshape(len(images), -1).astype(np.float64)
    pre = flat @ w1 + b1
    logits = np.maximum(pre, 0) @ w2 + b2
    predicted = logits.argmax(axis=1)
    upstream = w2[:, predicted].T  # d logit_t / d hidden, (N, hidden)
    if rule == "guided":
        upstream = upstream * (upstream > 0) * (pre > 0)
    else:
        upstream = np.maximum(upstream, 0)
    return logits, predicted, (upstream @ w1.T).reshape(images.shape)


@pytest.mark.parametrize("method, rule", [("guided_backprop", "guided"), ("deconvnet", "deconv")])
def test_keras_free_module_matches_a_numpy_reference(method, rule, tmp_path):
    module = DenseReluDense(np.random.default_rng(5), (4, 4, 2))
    path = str(tmp_path / "module")
    tf.saved_model.save(module, path, signatures=module.__call__)
    images = random_images(6, 4, channels=2, seed=2) - 0.5
    explainer = gbp_ops.make_explainer(gbp_ops.load_model(path), method, batch_size=4)
    got = explainer.explain_with_outputs(images)
    logits, predicted, maps = _numpy_dense_relu_dense(module, images, rule)
    np.testing.assert_allclose(got.scores, logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got.predicted, predicted)
    np.testing.assert_allclose(got.maps, maps, rtol=1e-5, atol=1e-6 * np.abs(maps).max())
    assert [site.form for site in explainer.guided_sites] == ["Relu"]
    assert explainer.stripped_activation == "softmax" and explainer.explained_space == "logit"


class TwoHeads(tf.Module):
    """A signature with two inputs and two outputs; only 'pixels' feeds 'scores'."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(np.linspace(-1, 1, 32 * 3).reshape(32, 3).astype("float32"))

    @tf.function(input_signature=[tf.TensorSpec((None, 4, 4, 2), tf.float32, name="pixels"),
                                  tf.TensorSpec((None, 3), tf.float32, name="bias")])
    def __call__(self, pixels, bias):
        scores = tf.nn.relu(tf.reshape(pixels, (-1, 32))) @ self.w
        return {"scores": scores, "shifted": scores + bias}


def test_signature_and_key_selection(tmp_path):
    module = TwoHeads()
    path = str(tmp_path / "two")
    tf.saved_model.save(module, path, signatures={"classify": module.__call__})
    with pytest.raises(gbp_ops.GBPError, match="has no signature 'serving_default'; it has: "
                                               "classify"):
        gbp_ops.load_model(path)
    with pytest.raises(gbp_ops.GBPError, match=r"has 2 inputs \(bias, pixels\); choose one "
                                               "with input_key"):
        gbp_ops.load_model(path, signature="classify")
    with pytest.raises(gbp_ops.GBPError, match="has 2 outputs"):
        gbp_ops.load_model(path, signature="classify", input_key="pixels")
    with pytest.raises(gbp_ops.GBPError, match="input 'bias' has dtype|no output 'nope'"):
        gbp_ops.load_model(path, signature="classify", input_key="pixels", output_key="nope")
    shifted = gbp_ops.load_model(path, signature="classify", input_key="pixels",
                                 output_key="shifted")
    with pytest.raises(gbp_ops.GBPError, match="also depends on input"):
        gbp_ops.make_explainer(shifted)
    source = gbp_ops.load_model(path, signature="classify", input_key="pixels",
                                output_key="scores")
    images = random_images(3, 4, channels=2, seed=4)
    got = gbp_ops.make_explainer(source, batch_size=2).explain_with_outputs(images)
    flat = images.reshape(3, 32)
    np.testing.assert_allclose(got.scores, np.maximum(flat, 0) @ module.w.numpy(), rtol=1e-5)


def test_guided_gradcam_on_a_named_op_matches_keras(tmp_path):
    keras.utils.set_random_seed(4)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu", name="features")(inputs)
    model = keras.Model(inputs, _conv_head(x, "softmax"))
    source = gbp_ops.load_model(_export(model, tmp_path))
    with pytest.raises(gbp_ops.GBPError, match="needs gradcam_layer naming an op"):
        gbp_ops.make_explainer(source, "guided_gradcam")
    relu_op = next(site.layer for site in gbp_ops.make_explainer(source).guided_sites
                   if "/features" in site.layer)
    images = random_images(5, SIZE, seed=6)
    want = gbp_ops.make_explainer(model, "guided_gradcam", gradcam_layer="features",
                                  batch_size=5).explain(images)
    got = gbp_ops.make_explainer(source, "guided_gradcam", gradcam_layer=relu_op,
                                    batch_size=5).explain(images)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_directory_hash_follows_content_not_location(tmp_path):
    module = DenseReluDense(np.random.default_rng(1), (4, 4, 2))
    first = str(tmp_path / "a")
    tf.saved_model.save(module, first, signatures=module.__call__)
    second = str(tmp_path / "b")
    shutil.copytree(first, second)
    assert gbp_ops.model_sha256(first) == gbp_ops.model_sha256(second)
    (tmp_path / "b" / "assets_extra.txt").write_bytes(b"x")
    assert gbp_ops.model_sha256(first) != gbp_ops.model_sha256(second)


def test_unknown_kind_and_non_savedmodel_directory(tmp_path):
    with pytest.raises(gbp_ops.GBPError, match="unknown model kind 'onnx'"):
        gbp_ops.load_model(str(tmp_path), kind="onnx")
    with pytest.raises(gbp_ops.GBPError) as raised:
        gbp_ops.load_model(str(tmp_path), kind="savedmodel")
    assert str(raised.value) == errors.SAVEDMODEL_NOT_A_SAVEDMODEL.format(path=str(tmp_path))


@pytest.mark.parametrize("method", gbp_ops.METHODS)
def test_savedmodel_explainers_are_built_by_the_base_init(tmp_path, monkeypatch, method):
    """A field the base ``__init__`` sets reaches the SavedModel explainers too (they override
    only the model and method steps), and they batch like the Keras ones."""
    source = gbp_ops.load_model(_export(_conv_relu(), tmp_path))
    # Guided Grad-CAM on a SavedModel names an op: the last guided ReLU's.
    layer = gbp_ops.make_explainer(source).guided_sites[-1].layer
    base_init = gbp_ops.GuidedBackprop.__init__
    built = []

    def recording_init(self, *args, **kwargs):
        built.append(type(self).__name__)
        base_init(self, *args, **kwargs)
        self.field_added_later = "set"

    monkeypatch.setattr(gbp_ops.GuidedBackprop, "__init__", recording_init)
    explainer = gbp_ops.make_explainer(source, method, batch_size=3, gradcam_layer=layer)
    assert built == [type(explainer).__name__] and explainer.field_added_later == "set"
    images = random_images(7, SIZE)
    maps = explainer.explain(images)
    assert maps.shape == (7, SIZE, SIZE, 3) and explainer.num_steps == 3  # 3 + 3 + 1 rows
    np.testing.assert_allclose(maps[5:], explainer.explain(images[5:]), rtol=1e-5, atol=1e-6)
