"""Guided ReLU: forward unchanged, backward gated on both the upstream gradient and f'(x).

Springenberg et al. 2015: the backward pass is ``dy * (dy > 0) * f'(x)``. Gating only on
``dy`` is DeconvNet, and gating only on ``x`` is the plain gradient; both are common bugs.

The same sites can carry the DeconvNet rule instead (Zeiler & Fergus 2014): backward
``relu(dy)``, whatever the forward pass did. DeconvNet's backward uses no forward activation
at all (only max-pool switches), so at a thresholded or capped ReLU neither the threshold nor
the cap gates it either: a unit saturated at ``max_value`` still passes positive signal.
"""

import keras
import tensorflow as tf


def relu_derivative_mask(x, max_value=None, threshold=0.0):
    """Where Keras's ReLU has derivative 1, as a bool tensor shaped like ``x``.

    Keras computes ``y = where(x > threshold, x, 0)`` and, only when ``max_value`` is set,
    ``clip(y, 0, max_value)``; the mask mirrors that exactly.
    """
    mask = tf.greater(x, tf.cast(threshold, x.dtype))
    if max_value is not None:
        mask = tf.logical_and(mask, tf.greater(x, tf.zeros([], x.dtype)))
        mask = tf.logical_and(mask, tf.less(x, tf.cast(max_value, x.dtype)))
    return mask


def make_guided_relu(max_value=None, threshold=0.0):
    """Returns a guided version of ``keras.activations.relu(x, 0, max_value, threshold)``.

    Args:
        max_value: optional saturation value (6.0 gives ReLU6).
        threshold: values at or below it map to zero.

    Returns:
        A callable ``f(x) -> y`` (same shape and dtype as ``x``) with a guided gradient.
    """

    @tf.custom_gradient
    def guided_relu(x):
        y = keras.activations.relu(x, max_value=max_value, threshold=threshold)

        def backward(dy):
            gate = tf.logical_and(tf.greater(dy, 0), relu_derivative_mask(x, max_value, threshold))
            # Cast to dy's dtype so float16 / mixed-precision graphs keep their dtype.
            return dy * tf.cast(gate, dy.dtype)

        return y, backward

    return guided_relu


def make_deconvnet_relu(max_value=None, threshold=0.0):
    """Returns ``keras.activations.relu(x, 0, max_value, threshold)`` with the DeconvNet
    backward ``relu(dy)`` (no gate from ``x``, its threshold or its cap)."""

    @tf.custom_gradient
    def deconvnet_relu(x):
        y = keras.activations.relu(x, max_value=max_value, threshold=threshold)

        def backward(dy):
            return tf.nn.relu(dy)

        return y, backward

    return deconvnet_relu


RULE_GUIDED = "guided"
RULE_DECONVNET = "deconvnet"
RELU_FACTORIES = {RULE_GUIDED: make_guided_relu, RULE_DECONVNET: make_deconvnet_relu}


@keras.saving.register_keras_serializable(package="gbp_ops")
class GuidedReLU(keras.layers.Layer):
    """Drop-in replacement for ``keras.layers.ReLU`` (with ``negative_slope == 0``), guided
    (``rule='guided'``) or with the DeconvNet backward (``rule='deconvnet'``).

    Input and output: any shape, float dtype; the forward values equal ``layers.ReLU``.
    """

    def __init__(self, max_value=None, threshold=0.0, rule=RULE_GUIDED, **kwargs):
        super().__init__(**kwargs)
        self.max_value = None if max_value is None else float(max_value)
        self.threshold = float(threshold)
        self.rule = rule
        self._guided = RELU_FACTORIES[rule](self.max_value, self.threshold)

    def call(self, inputs):
        return self._guided(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(max_value=self.max_value, threshold=self.threshold, rule=self.rule)
        return config
