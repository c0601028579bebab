"""load_model: round trips, safe mode, and clear errors for what is not supported."""

import hashlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from gbp_ops import GBPError, errors, load_model, model_sha256
from tests.gbp_ops.toy_models import random_cnn, random_images


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_round_trip_keeps_outputs(tmp_path, suffix):
    model = random_cnn(16)
    path = str(tmp_path / f"model{suffix}")
    model.save(path)
    images = random_images(2, 16)
    np.testing.assert_allclose(load_model(path)(images), model(images), rtol=1e-6)


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.keras")
    with pytest.raises(GBPError) as raised:
        load_model(path)
    assert str(raised.value) == errors.MODEL_NOT_FOUND.format(path=path)


def test_savedmodel_directory_needs_the_right_kind_and_a_signature(tmp_path):
    path = str(tmp_path / "saved")
    tf.saved_model.save(tf.Module(), path)
    with pytest.raises(GBPError) as raised:
        load_model(path, kind="keras")
    assert str(raised.value) == errors.SAVEDMODEL_IS_DIRECTORY.format(path=path)
    with pytest.raises(GBPError) as raised:
        load_model(path)  # auto: loaded as a SavedModel, which has no signature to explain
    assert str(raised.value) == errors.SAVEDMODEL_NO_SIGNATURE.format(
        path=path, signature="serving_default", names="(none)")


def test_unknown_suffix_and_corrupt_file(tmp_path):
    other = tmp_path / "model.onnx"
    other.write_bytes(b"x")
    with pytest.raises(GBPError, match="expected a Keras model file"):
        load_model(str(other))
    corrupt = tmp_path / "model.keras"
    corrupt.write_bytes(b"not a zip")
    with pytest.raises(GBPError, match="cannot load model"):
        load_model(str(corrupt))


def test_lambda_layer_needs_explicit_opt_out_of_safe_mode(tmp_path):
    inputs = keras.Input((4, 4, 1))
    hidden = keras.layers.Conv2D(2, 3, activation="relu")(inputs)
    features = keras.layers.Flatten()(hidden)
    dense = keras.layers.Dense(2)
    outputs = dense(keras.layers.Lambda(lambda t: t * 2.0)(features))
    model = keras.Model(inputs, outputs)
    path = str(tmp_path / "lambda.keras")
    model.save(path)
    with pytest.raises(GBPError) as raised:
        load_model(path)
    assert "safe mode" in str(raised.value) and "safe_mode=False" in str(raised.value)

    loaded = load_model(path, safe_mode=False)
    images = np.random.default_rng(0).normal(size=(3, 4, 4, 1)).astype("float32")
    np.testing.assert_allclose(loaded.predict(images, verbose=0),
                               model.predict(images, verbose=0), rtol=1e-6, atol=1e-6)
    # The Lambda really runs: the output is the Dense layer applied to twice the features.
    kernel, bias = dense.get_weights()
    doubled = 2.0 * np.asarray(keras.Model(inputs, features)(images)) @ kernel + bias
    assert np.abs(doubled - bias).max() > 1e-3  # the features are not all zero
    np.testing.assert_allclose(loaded.predict(images, verbose=0), doubled, rtol=1e-5,
                               atol=1e-6)


def test_sha256_matches_hashlib(tmp_path):
    path = tmp_path / "model.keras"
    random_cnn(8).save(str(path))
    assert model_sha256(str(path)) == hashlib.sha256(path.read_bytes()).hexdigest()
