"""An independent guided backprop for the real-model tests: a Keras model's layers replayed
with ``tf.nn`` ops from its config and weights alone (nothing of ``gbp_ops``), and where such
a map is *fragile*, i.e. decided by float32 rounding.

The replay reads ``model.get_config()`` (each layer's class, settings and inbound layers) and
``layer.get_weights()``, then rebuilds the forward pass from ``tf.nn`` ops: convolution,
depthwise + pointwise convolution, batch normalization in inference (the textbook
``(x - mean) / sqrt(var + eps) * gamma + beta``), max pooling, addition, global average
pooling, flatten, dense. At every ReLU the backward is the guided rule of Springenberg et al.
(2015), ``dy`` where ``dy > 0`` and ``x > 0``, through ``tf.custom_gradient``. A final softmax
is not applied: the explained score is the logit of the arg-max class. The step runs inside a
``tf.function``: TF 2.21 with oneDNN can crash in *eager* mode on a 1x1 stride-2 convolution's
gradients (README, "Where maps depend on the machine").

Fragile pixels. Two float32 computations of the same network (gbp_ops' compiled step and this
replay) round differently, by about 1e-7 of a layer's values. Where that decides a choice, the
maps may differ legitimately: a max-pooling window whose two largest inputs are that close
sends the gradient to either (on flat image regions they tie exactly). ``ReplayResult.fragile``
marks every input pixel in the receptive field of such a window (one that passes a nonzero
backward signal), found by replaying the model once more with every weight 1, no bias, no
normalization, identity activations and average pooling, so that the gradient of the marked
windows is positive exactly on their receptive field. A ReLU whose input is as close to 0 could
flip its gate too; on the real models of the tests none did, so none is marked.
"""

import dataclasses

import numpy as np
import tensorflow as tf

# Within this fraction of the pooled tensor's largest |value| (per example), a window's two
# largest inputs count as tied: a hundred times the ~1e-7 by which float32 replays differ.
NEAR = 1e-5
SUPPORTED = ("InputLayer", "Conv2D", "SeparableConv2D", "BatchNormalization", "Activation",
             "MaxPooling2D", "Add", "GlobalAveragePooling2D", "Flatten", "Dense", "Dropout")


@dataclasses.dataclass(frozen=True)
class ReplayResult:
    """The replay's explanation of N images.

    Attributes:
        maps: float32 ``(N, H, W)``, max over channels of |d logit / d image| (gbp_ops'
            ``max_abs`` reduction) for the arg-max class.
        logits: float32 ``(N, K)``.
        predicted: int64 ``(N,)``, the arg-max class.
        fragile: bool ``(N, H, W)``, pixels where rounding may decide the map (module doc).
    """

    maps: np.ndarray
    logits: np.ndarray
    predicted: np.ndarray
    fragile: np.ndarray


@tf.custom_gradient
def _guided_relu(x):
    def backward(dy):
        return tf.where((dy > 0) & (x > 0), dy, tf.zeros_like(dy))

    return tf.maximum(x, tf.zeros_like(x)), backward


def _inbound_names(layer_config):
    names = []
    for node in layer_config.get("inbound_nodes", []):
        for arg in node["args"]:
            for tensor in arg if isinstance(arg, list) else [arg]:
                names.append(tensor["config"]["keras_history"][0])
    return names


def _graph(model):
    """``[(name, class name, config, inbound names, weights)]`` in the config's order; a
    Sequential model's layers each take the previous one."""
    config = model.get_config()
    layers, previous = [], None
    for layer_config in config["layers"]:
        kind, settings = layer_config["class_name"], layer_config["config"]
        if kind not in SUPPORTED:
            raise ValueError(f"the replay has no {kind} layer")
        inbound = _inbound_names(layer_config) or ([previous] if previous else [])
        # eager tensors: a tf.function captures them as inputs, not as graph constants
        weights = ([] if kind == "InputLayer"
                   else [tf.constant(w, tf.float32)
                         for w in model.get_layer(settings["name"]).get_weights()])
        layers.append((settings["name"], kind, settings, inbound, weights))
        previous = settings["name"]
    if layers[0][1] != "InputLayer":  # a Sequential config without its input entry
        layers.insert(0, ("input", "InputLayer", {}, [], []))
        layers[1] = layers[1][:3] + (["input"],) + layers[1][4:]
    return layers


def _activation(name, x, final, field):
    if field or name == "linear" or (name == "softmax" and final):
        return x  # the final softmax is stripped: logits are explained
    if name == "relu":
        return _guided_relu(x)
    raise ValueError(f"the replay has no activation {name!r}")


def _linear_part(kind, settings, weights, inputs, field):
    """A layer's output before its activation; ``field``: the receptive-field variant."""
    if field:
        weights = [tf.ones_like(w) for w in weights]
    x = inputs[0]
    if kind in ("Conv2D", "SeparableConv2D", "Dense"):
        for key in ("dilation_rate", "groups"):
            if settings.get(key, 1) not in (1, (1, 1), [1, 1]):
                raise ValueError(f"the replay has no {kind} with {key}={settings[key]}")
        strides = [1, *settings.get("strides", (1, 1)), 1]
        padding = settings.get("padding", "valid").upper()
        if kind == "Conv2D":
            out = tf.nn.conv2d(x, weights[0], strides, padding)
        elif kind == "SeparableConv2D":
            out = tf.nn.depthwise_conv2d(x, weights[0], strides, padding)
            out = tf.nn.conv2d(out, weights[1], 1, "VALID")
        else:
            out = tf.matmul(x, weights[0])
        return out + weights[-1] if settings.get("use_bias") and not field else out
    if kind == "BatchNormalization":
        if settings["axis"] not in (-1, 3, [-1], [3]):
            raise ValueError("the replay normalizes the last axis only")
        if field:
            return x
        gamma = weights.pop(0) if settings["scale"] else 1.0
        beta = weights.pop(0) if settings["center"] else 0.0
        mean, variance = weights
        return (x - mean) / tf.sqrt(variance + settings["epsilon"]) * gamma + beta
    if kind == "MaxPooling2D":
        pool = tf.nn.avg_pool2d if field else tf.nn.max_pool2d
        return pool(x, settings["pool_size"], settings["strides"], settings["padding"].upper())
    if kind == "Add":
        return tf.add_n(inputs)
    if kind == "GlobalAveragePooling2D":
        return tf.reduce_mean(x, axis=[1, 2])
    if kind == "Flatten":
        return tf.reshape(x, [tf.shape(x)[0], -1])
    return x  # Activation (applied by the caller), Dropout (identity at inference)


def _near_ties(pool_input, settings, upstream):
    """bool, shaped like the pooling output: windows whose two largest inputs are within
    ``NEAR`` of the input's scale and whose output carries a backward signal."""
    size, strides = settings["pool_size"], settings["strides"]
    # Shifted to >= 1, so that the zeros extract_patches pads with are never a window's top.
    shifted = pool_input - tf.reduce_min(pool_input) + 1.0
    patches = tf.image.extract_patches(shifted, [1, *size, 1], [1, *strides, 1], [1, 1, 1, 1],
                                       settings["padding"].upper())
    n, h, w, _ = patches.shape
    windows = tf.transpose(tf.reshape(patches, [n, h, w, size[0] * size[1], -1]),
                           [0, 1, 2, 4, 3])
    top = tf.math.top_k(windows, 2).values
    scale = tf.reduce_max(tf.abs(pool_input), axis=[1, 2, 3], keepdims=True)
    return (top[..., 0] - top[..., 1] <= NEAR * scale) & (upstream != 0)


class Replay:
    """Guided backprop of a Keras model (``SUPPORTED`` layers; ReLU, linear and a final
    softmax as activations) by replaying its layers; see the module doc."""

    def __init__(self, model):
        self._layers = _graph(model)
        self._final = self._layers[-1][0]

    def _forward(self, images, field=False):
        """The output and every layer's output by name."""
        values = {}
        for name, kind, settings, inbound, weights in self._layers:
            if kind == "InputLayer":
                values[name] = images
                continue
            linear = _linear_part(kind, settings, list(weights),
                                  [values[source] for source in inbound], field)
            values[name] = _activation(settings.get("activation", "linear"), linear,
                                       name == self._final, field)
        return values[self._final], values

    @tf.function
    def _explain(self, images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            logits, values = self._forward(images)
            predicted = tf.argmax(logits, axis=1)
            score = tf.reduce_sum(tf.gather(logits, predicted, batch_dims=1))
        pools = [(name, inbound[0], settings) for name, kind, settings, inbound, _
                 in self._layers if kind == "MaxPooling2D"]
        # and the backward signal arriving at each pooling output
        grads = tape.gradient(score, [images, *(values[name] for name, _, _ in pools)],
                              unconnected_gradients="zero")
        ties = [_near_ties(values[source], settings, grad)
                for (_, source, settings), grad in zip(pools, grads[1:])]
        with tf.GradientTape() as tape:
            blank = tf.zeros_like(images)
            tape.watch(blank)
            _, field_values = self._forward(blank, field=True)
            marked = tf.add_n([tf.constant(0.0)] + [
                tf.reduce_sum(tf.cast(mask, tf.float32) * field_values[name])
                for (name, _, _), mask in zip(pools, ties)])
        field = tape.gradient(marked, blank, unconnected_gradients="zero")
        return grads[0], logits, predicted, field

    def explain(self, images):
        """float32 ``(N, H, W, C)`` model inputs -> ``ReplayResult``."""
        grads, logits, predicted, field = self._explain(tf.constant(images, tf.float32))
        return ReplayResult(
            maps=np.abs(grads.numpy()).max(axis=-1),
            logits=logits.numpy(),
            predicted=predicted.numpy().astype(np.int64),
            fragile=field.numpy().max(axis=-1) > 0,
        )
