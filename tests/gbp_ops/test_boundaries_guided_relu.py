"""The guided ReLU exactly at its kinks (x equal to the threshold, the cap or 0; all binary
exact) against the numpy reference's mask, and away from them against TensorFlow's own plain
gradient of ``keras.activations.relu`` gated by ``dy > 0``, including a capped ReLU with a
negative threshold (reachable through ``make_guided_relu``, not through ``layers.ReLU``)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gbp_ops.guided_relu import make_guided_relu
from tests.gbp_ops.numpy_reference import _relu as numpy_relu

SETTINGS = [(None, 0.0), (6.0, 0.0), (None, 0.5), (4.0, 0.5), (6.0, -1.0), (4.0, 0.0)]


def _guided(max_value, threshold, x, dy):
    x = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = make_guided_relu(max_value, threshold)(x)
    return y.numpy(), tape.gradient(y, x, output_gradients=tf.constant(dy, tf.float32)).numpy()


@pytest.mark.parametrize("max_value,threshold", SETTINGS)
def test_at_the_kinks_the_mask_is_the_numpy_references(max_value, threshold):
    kinks = sorted({threshold, 0.0, *(() if max_value is None else (max_value,))})
    x = np.array(kinks, np.float64)
    dy = np.ones_like(x)
    expected_y, backward = numpy_relu(x, "guided", threshold=threshold, max_value=max_value)
    y, grad = _guided(max_value, threshold, x, dy)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(grad, backward(dy))
    assert not grad.any()  # every kink is outside the open interval where the ReLU passes


@pytest.mark.parametrize("max_value,threshold", SETTINGS)
def test_away_from_the_kinks_guided_is_tfs_gradient_where_dy_is_positive(max_value,
                                                                          threshold):
    x = np.array([-1.5, -0.5, -0.25, 0.25, 0.75, 3.0, 5.0, 7.0], np.float32)
    dy = np.array([1.0, 2.0, 1.0, -1.0, 0.5, 1.0, -2.0, 1.0], np.float32)
    tensor = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        plain_y = keras.activations.relu(tensor, max_value=max_value, threshold=threshold)
    plain = tape.gradient(plain_y, tensor, output_gradients=tf.constant(dy)).numpy()
    y, grad = _guided(max_value, threshold, x, dy)
    np.testing.assert_array_equal(y, plain_y.numpy())
    np.testing.assert_array_equal(grad, np.where(dy > 0, plain, 0.0))
    expected_y, backward = numpy_relu(x.astype(np.float64), "guided", threshold=threshold,
                                      max_value=max_value)
    np.testing.assert_array_equal(grad, backward(dy.astype(np.float64)))
