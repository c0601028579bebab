"""The gate rule: guided backprop's backward carried over to activations other than ReLU.

Guided backprop is defined for ReLUs only (Springenberg et al. 2015). For swish, GELU,
hard-swish and the other elementwise activations listed below, the opt-in gate rule
(``nonlinearity_rule='gate'``) keeps the forward pass and, at each such activation ``f`` with
input ``x``, passes back

    dx = dy * f'(x) * (dy > 0) * (x > 0)

For a ReLU this is exactly the guided ReLU (``f'(x) = 1`` where ``x > 0``). tf-keras-vis
(``GuidedBackpropagation(target_activations=[...])``) gates on the same two conditions but
passes ``dy`` itself, without ``f'(x)``; here the local slope is kept, so that a unit where
``f`` is flat (a saturated sigmoid) passes little, as the plain gradient would. Where
``x > 0`` every activation below has ``f'(x) > 0``, so the rule passes only positive signal,
like guided backprop; no paper defines GBP for these activations, which is why it is opt-in.
"""

import keras
import tensorflow as tf

# Activation functions the gate rule covers, by canonical name (``rewrite.activation_name``):
# ReLU-like ones with a smooth or leaky negative side. ``gelu`` is Keras' default erf form;
# ``gelu_approximate`` is the tanh form under the name keras_hub registers it with (a Keras
# model can hold only a serializable function, so a ``functools.partial`` cannot occur).
GATED_ACTIVATIONS = frozenset({
    "silu", "gelu", "gelu_approximate", "hard_silu", "mish", "elu", "selu", "celu", "softplus",
    "leaky_relu", "relu_with_negative_slope",
})
# Squashing activations, gated too except on the model's output layer (there they are the
# explained score's own transform, stripped or kept, never a hidden unit to gate).
GATED_SQUASHING_ACTIVATIONS = frozenset({"sigmoid", "hard_sigmoid", "tanh"})
# Dedicated activation layers the gate rule covers; ``layers.ReLU`` with a negative slope is
# the form ``relu_with_negative_slope`` above.
GATED_LAYER_TYPES = ("LeakyReLU", "ELU", "PReLU")


def make_gated_activation(activation):
    """``activation`` with the gate rule as its backward.

    Args:
        activation: an elementwise callable ``x -> y`` (a Keras activation, or a Keras layer
            such as ``PReLU``); it is run again inside the backward pass to get ``f'(x)``.

    Returns:
        A callable ``x -> y`` (same shape and dtype as ``activation``'s output) whose
        gradient is ``dy * f'(x)`` where ``dy > 0`` and ``x > 0``, and 0 elsewhere. Weights
        that ``activation`` reads (``PReLU``'s slope) get zero gradients.
    """

    @tf.custom_gradient
    def gated(x):
        def backward(dy, variables=None):
            keep = tf.logical_and(tf.greater(dy, 0), tf.greater(x, 0))
            with tf.GradientTape() as tape:
                tape.watch(x)
                again = activation(x)
            # Elementwise f: the vector-Jacobian product with a masked dy is dy * f'(x) * mask.
            dx = tape.gradient(again, x, output_gradients=dy * tf.cast(keep, dy.dtype))
            if variables:
                return dx, [tf.zeros_like(variable) for variable in variables]
            return dx

        return activation(x), backward

    return gated


@keras.saving.register_keras_serializable(package="gbp_ops")
class GatedActivationLayer(keras.layers.Layer):
    """Stands in for a dedicated activation layer (``LeakyReLU``, ``ELU``, ``PReLU``, a
    ``ReLU`` with a negative slope): the same forward and weights, the gate rule backward.

    Args:
        layer: the layer replaced; a fresh copy from its config is kept as ``inner``.

    Input and output: those of ``layer``.
    """

    def __init__(self, layer, **kwargs):
        if isinstance(layer, dict):  # from get_config
            layer = keras.saving.deserialize_keras_object(layer)
        kwargs.setdefault("name", layer.name)
        kwargs.setdefault("dtype", layer.dtype_policy)
        super().__init__(**kwargs)
        self.inner = layer.__class__.from_config(layer.get_config())
        self._gated = make_gated_activation(self.inner)

    def build(self, input_shape):
        self.inner.build(input_shape)

    def call(self, inputs):
        return self._gated(inputs)

    def compute_output_shape(self, input_shape):
        return self.inner.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config["layer"] = keras.saving.serialize_keras_object(self.inner)
        return config
