"""The guided ReLU's forward and backward passes against hand-computed values."""

import numpy as np
import pytest
import tensorflow as tf

from gbp_ops.guided_relu import make_guided_relu

X = np.array([-2.0, -0.5, 0.2, 0.7, 3.0, 6.5, 8.0], np.float32)
DY = np.array([1.0, 1.0, -1.0, 2.0, 0.5, 1.0, -3.0], np.float32)


def _forward_backward(fn, x, dy):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return y.numpy(), tape.gradient(y, x, output_gradients=tf.constant(dy)).numpy()


@pytest.mark.parametrize(
    "max_value, threshold, expected_y, expected_grad",
    [
        # plain ReLU: pass where x > 0 and dy > 0
        (None, 0.0, [0, 0, 0.2, 0.7, 3.0, 6.5, 8.0], [0, 0, 0, 2.0, 0.5, 1.0, 0]),
        # ReLU6: pass where 0 < x < 6 and dy > 0
        (6.0, 0.0, [0, 0, 0.2, 0.7, 3.0, 6.0, 6.0], [0, 0, 0, 2.0, 0.5, 0, 0]),
        # threshold 0.5: x > 0.5
        (None, 0.5, [0, 0, 0, 0.7, 3.0, 6.5, 8.0], [0, 0, 0, 2.0, 0.5, 1.0, 0]),
        # max 4, threshold 0.5
        (4.0, 0.5, [0, 0, 0, 0.7, 3.0, 4.0, 4.0], [0, 0, 0, 2.0, 0.5, 0, 0]),
    ],
)
def test_guided_relu_matches_hand_computed_values(max_value, threshold, expected_y, expected_grad):
    y, grad = _forward_backward(make_guided_relu(max_value, threshold), X, DY)
    np.testing.assert_allclose(y, expected_y, rtol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-6)


def test_guided_differs_from_deconvnet_and_plain_gradient():
    # x < 0 with dy > 0: DeconvNet would pass it; x > 0 with dy < 0: plain gradient would.
    x = np.array([-1.0, 1.0], np.float32)
    dy = np.array([1.0, -1.0], np.float32)
    _, grad = _forward_backward(make_guided_relu(), x, dy)
    np.testing.assert_array_equal(grad, [0.0, 0.0])


def test_gradient_keeps_float16_dtype():
    x = tf.constant(X.astype(np.float16))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = make_guided_relu()(x)
    grad = tape.gradient(y, x, output_gradients=tf.constant(DY.astype(np.float16)))
    assert grad.dtype == tf.float16
    np.testing.assert_allclose(grad.numpy(), [0, 0, 0, 2.0, 0.5, 1.0, 0])
