"""Small models without (or with few) ReLUs for the gate-rule tests, built in code with seeded
weights: a swish CNN, a GELU CNN (both GELU forms) and a zoo of every other gated activation.
"""

import keras
import numpy as np

from tests.gbp_ops.toy_models import randomize_batchnorm

SIZE = 12
CLASSES = 4


@keras.saving.register_keras_serializable(package="gbp_tests")
def gelu_approximate(x):
    """GELU's tanh form, under the name keras_hub registers it with."""
    return keras.activations.gelu(x, approximate=True)


def seeded_weights(model, seed):
    """Sets every weight from a seeded generator (Glorot-like scale), so models do not depend
    on Keras' global seed, then gives BatchNormalization non-trivial statistics."""
    rng = np.random.default_rng(seed)
    weights = []
    for weight in model.get_weights():
        fan_in = int(np.prod(weight.shape[:-1])) if weight.ndim > 1 else weight.shape[0]
        weights.append((rng.normal(0.0, 1.0, weight.shape) / np.sqrt(max(fan_in, 1)) * 1.3)
                       .astype("float32"))
    model.set_weights(weights)
    return randomize_batchnorm(model, rng)


def swish_cnn(seed=0):
    """Conv(swish) -> BN -> Activation(silu) -> Conv(relu, stride 2) -> pool -> Dense(swish)
    -> Dense(softmax): three gated sites (one per form) and one guided ReLU."""
    model = keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Conv2D(6, 3, padding="same", activation="swish", name="conv_swish"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.Activation("silu", name="act_silu"),
        keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv_relu"),
        keras.layers.MaxPool2D(2, name="pool"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(10, activation="swish", name="dense_swish"),
        keras.layers.Dense(CLASSES, activation="softmax", name="logits"),
    ], name="swish_cnn")
    return seeded_weights(model, seed)


def gelu_cnn(seed=1):
    """Conv(gelu) -> Conv -> Activation(gelu, tanh form) -> pool -> Dense(gelu) -> Dense
    (linear logits): three gated sites, no ReLU at all."""
    model = keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Conv2D(6, 3, activation="gelu", name="conv_gelu"),
        keras.layers.Conv2D(8, 3, padding="same", name="conv_linear"),
        keras.layers.Activation(gelu_approximate, name="act_gelu_tanh"),
        keras.layers.MaxPool2D(2, name="pool"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(10, activation="gelu", name="dense_gelu"),
        keras.layers.Dense(CLASSES, name="logits"),
    ], name="gelu_cnn")
    return seeded_weights(model, seed)


# Every other activation the gate rule covers, in the forms a model holds them, in order.
ZOO = (
    ("dense_hard_silu", "hard_silu"), ("dense_mish", "mish"), ("dense_elu", "elu"),
    ("dense_selu", "selu"), ("dense_celu", "celu"), ("dense_softplus", "softplus"),
    ("dense_leaky", "leaky_relu"), ("dense_sigmoid", "sigmoid"),
    ("dense_hard_sigmoid", "hard_sigmoid"), ("dense_tanh", "tanh"),
)


def activation_zoo(seed=2):
    """Dense layers with each ``ZOO`` activation, a LeakyReLU and an ELU layer, a guided ReLU,
    and a final tanh (the output's own transform: not gated)."""
    layers = [keras.Input((4, 4, 2)), keras.layers.Flatten(name="flatten"),
              keras.layers.Dense(16, activation="relu", name="dense_relu")]
    for name, activation in ZOO:
        layers.append(keras.layers.Dense(16, activation=activation, name=name))
    layers += [keras.layers.Dense(16, name="dense_linear_a"),
               keras.layers.LeakyReLU(negative_slope=0.25, name="leaky_layer"),
               keras.layers.Dense(16, name="dense_linear_b"),
               keras.layers.ELU(alpha=0.7, name="elu_layer"),
               keras.layers.Dense(CLASSES, activation="tanh", name="logits_tanh")]
    return seeded_weights(keras.Sequential(layers, name="activation_zoo"), seed)
