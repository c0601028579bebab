"""Independent numpy reference for guided backpropagation (GBP) on simple Keras 3 models.

Tests use this as ground truth for the TensorFlow GBP code in `gbp_ops`. All maths is done here in
float64 numpy; Keras is only used to read layer classes, configs and weights, so a bug in the TF
implementation (or in how it rewrites the model) cannot leak into the reference.

Guided ReLU rule (Springenberg et al. 2015): forward unchanged; backward
`dx = dy * (dy > 0) * f'(x)`, with `f'` the ReLU's own derivative. With `guided=False` the backward
is the plain gradient `dy * f'(x)`, which lets the reference itself be checked against
`tf.GradientTape`.

Gate rule (`rule='gate'`, `gbp_ops.gated_activation`): guided at every ReLU, and at every other
elementwise activation `f` of `numpy_activations.ACTIVATIONS` (and LeakyReLU/ELU layers) the
backward `dx = dy * f'(x) * (dy > 0) * (x > 0)`, except a squashing activation (sigmoid,
hard_sigmoid, tanh) on the model's last value-changing layer, which stays plain.
`rule='gate_without_slope'` is tf-keras-vis' literal variant `dy * (dy > 0) * (x > 0)` (no
`f'(x)`), kept so tests can show the two differ. Under `'plain'` those activations take their
plain derivative, which lets the closed forms be checked against `tf.GradientTape`; under
`'guided'`/`'deconvnet'` they raise, as before.

Also here: DeconvNet (`rule='deconvnet'`: backward `relu(dy)` at every ReLU site, whatever the
forward sign, threshold or cap), Grad-CAM (`numpy_gradcam`: plain gradients at a named layer,
then a numpy half-pixel bilinear upsampling) and Guided Grad-CAM (their product).
"""

import keras
import numpy as np

from tests.gbp_ops.numpy_activations import ACTIVATIONS, SQUASHING, elu, leaky_relu

# Layers that leave values untouched at inference, so a softmax followed only by these still counts
# as the model's final softmax.
_PASS_THROUGH = (keras.layers.Dropout, keras.layers.Flatten)


RULES = ("guided", "deconvnet", "plain", "gate", "gate_without_slope")
_GATE_RULES = ("gate", "gate_without_slope")


def numpy_guided_backprop(model, images, targets, guided=True):
    """`numpy_backprop` with the guided rule (or plain gradients with `guided=False`)."""
    return numpy_backprop(model, images, targets, "guided" if guided else "plain")


def numpy_backprop(model, images, targets, rule, stop_at=None):
    """Computes guided-backprop (or plain-gradient) maps of the target logits w.r.t. the images.

    Args:
        model: a keras `Sequential` or a *linear-chain* functional `keras.Model` built only from
            InputLayer, Conv2D (padding 'same'/'valid', any stride/kernel, with or without bias),
            BatchNormalization (inference mode: moving mean/variance, optional gamma/beta, config
            epsilon, any single axis), Activation('relu'/'relu6'/'linear'/'softmax'),
            `keras.layers.ReLU(max_value=..., threshold=..., negative_slope=0)`, MaxPool2D
            (any pool size/strides, padding 'same'/'valid'), Flatten, Dense and Dropout (identity).
            Conv2D/Dense activations may be linear/relu/relu6; softmax is accepted only as the
            model's final value-changing operation and is stripped.
        images: float array `(N, H, W, C)`; cast to float64.
        targets: int array `(N,)`, the class index explained for each example.
        rule: the backward at every ReLU: 'guided', 'deconvnet' or 'plain'; or 'gate' (guided
            ReLUs, gated other activations; see the module docstring) or 'gate_without_slope'.
        stop_at: None, or a layer name: then the backward stops at that layer's output and
            `(activations, gradients, logits)` of that layer are returned instead.

    Returns:
        `(maps, logits)`: `maps` float64 `(N, H, W, C)` is
        `d(sum_i logits[i, targets[i]]) / d(images)` under `rule`; `logits` float64 `(N, K)`
        are the pre-softmax scores.

    Raises:
        NotImplementedError: a layer, layer option or topology outside the list above.
        ValueError: images/targets of the wrong shape, or a model output that is not `(N, K)`.
    """
    x = np.asarray(images, dtype=np.float64)
    if x.ndim != 4:
        raise ValueError(f"numpy reference: images must be (N, H, W, C); got shape {x.shape}")
    if rule not in RULES:
        raise ValueError(f"numpy reference: unknown rule {rule!r}")
    layers = _chain_layers(model)
    _check_input_shape(model, x)
    stop_index, stopped = None, None
    final_index = _final_value_changing_index(layers)

    # Each forward step records its backward function: dy (shape of its output) -> dx.
    backward_fns = []
    for index, layer in enumerate(layers):
        x, backward = _forward_layer(layer, x, rule, allow_softmax=index == final_index)
        backward_fns.append(backward)
        if layer.name == stop_at:
            stop_index, stopped = index, x

    logits = x
    if logits.ndim != 2:
        raise ValueError(f"numpy reference: model output must be (N, K); got shape {logits.shape}")
    targets = np.asarray(targets)
    n, k = logits.shape
    if targets.shape != (n,) or not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(
            f"numpy reference: targets must be an int array of shape ({n},); "
            f"got {targets.dtype} {targets.shape}"
        )
    if np.any(targets < 0) or np.any(targets >= k):
        raise ValueError(f"numpy reference: targets must lie in [0, {k}); got {targets}")

    grad = np.zeros_like(logits)
    grad[np.arange(n), targets] = 1.0
    if stop_at is not None:
        if stop_index is None:
            raise ValueError(f"numpy reference: no layer named {stop_at!r}")
        for backward in reversed(backward_fns[stop_index + 1:]):
            grad = backward(grad)
        return stopped, grad, logits
    for backward in reversed(backward_fns):
        grad = backward(grad)
    return grad, logits


def numpy_bilinear_resize(maps, size):
    """Bilinear resize of float64 `(N, h, w)` to `(N, H, W)` with half-pixel centres: output
    pixel i reads input coordinate `(i + 0.5) * h / H - 0.5`, clamped to `[0, h - 1]`."""

    def weights(out_size, in_size):
        source = np.clip((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0, in_size - 1)
        low = np.floor(source).astype(int)
        high = np.minimum(low + 1, in_size - 1)
        matrix = np.zeros((out_size, in_size))
        matrix[np.arange(out_size), low] += 1.0 - (source - low)
        matrix[np.arange(out_size), high] += source - low
        return matrix

    rows, cols = weights(size[0], maps.shape[1]), weights(size[1], maps.shape[2])
    return np.einsum("Hh,nhw,Ww->nHW", rows, maps, cols)


def numpy_gradcam(model, images, targets, layer_name, rule="plain"):
    """Grad-CAM of `layer_name`: `relu(sum_k mean_hw(dS/dA^k) A^k)`, upsampled to the input.

    Args:
        model, images, targets: as `numpy_backprop`.
        layer_name: a layer of the chain with a `(N, h, w, k)` output.
        rule: the ReLU backward between the layer and the logits; Grad-CAM is 'plain'.

    Returns:
        float64 `(N, H, W)`.
    """
    activations, gradients, _ = numpy_backprop(model, images, targets, rule, stop_at=layer_name)
    alpha = gradients.mean(axis=(1, 2), keepdims=True)
    cam = np.maximum((alpha * activations).sum(axis=-1), 0.0)
    return numpy_bilinear_resize(cam, np.asarray(images).shape[1:3])


def numpy_guided_gradcam(model, images, targets, layer_name):
    """Guided Grad-CAM: the guided-backprop map times `numpy_gradcam`, float64 `(N, H, W, C)`."""
    guided, _ = numpy_backprop(model, images, targets, "guided")
    return guided * numpy_gradcam(model, images, targets, layer_name)[..., None]


def _unsupported(layer, detail=None):
    """Builds the NotImplementedError for a layer this reference cannot handle."""
    message = f"numpy reference: unsupported layer {layer.name} ({type(layer).__name__})"
    if detail:
        message += f": {detail}"
    return NotImplementedError(message)


def _chain_layers(model):
    """Returns the model's non-input layers in order, after checking they form a single chain."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if isinstance(model, keras.Sequential):
        return layers
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise NotImplementedError("numpy reference: only single-input, single-output models")
    previous = model.inputs[0]
    for layer in layers:
        if layer.input is not previous:
            raise NotImplementedError(
                f"numpy reference: model is not a linear chain at layer {layer.name}"
            )
        previous = layer.output
    # Catches a layer reused later in the chain, which model.layers lists only once.
    if model.outputs[0] is not previous:
        raise NotImplementedError("numpy reference: model is not a linear chain (output mismatch)")
    return layers


def _check_input_shape(model, x):
    """Raises ValueError if `x` (N, H, W, C) does not fit the model's declared input shape."""
    try:
        expected = tuple(model.inputs[0].shape[1:])
    except (AttributeError, ValueError, IndexError):
        return
    if len(expected) != x.ndim - 1 or any(
        want is not None and want != got for want, got in zip(expected, x.shape[1:])
    ):
        raise ValueError(
            f"numpy reference: images of shape {x.shape} do not fit model input {expected}"
        )


def _final_value_changing_index(layers):
    """Index of the last layer that is not a pure pass-through (Dropout, Flatten, linear)."""
    for index in range(len(layers) - 1, -1, -1):
        layer = layers[index]
        if isinstance(layer, _PASS_THROUGH):
            continue
        if isinstance(layer, keras.layers.Activation) and _activation_name(layer) == "linear":
            continue
        return index
    return -1


def _activation_name(layer):
    """The layer's activation as a string from its config (e.g. 'relu')."""
    name = layer.get_config().get("activation", "linear")
    if name is None:
        return "linear"
    if isinstance(name, dict) and str(name.get("config", "")).endswith(">gelu_approximate"):
        return "gelu_approximate"  # the registered name keras_hub (and the tests) use
    if not isinstance(name, str):
        raise _unsupported(layer, f"non-builtin activation {name!r}")
    return name


def _forward_layer(layer, x, rule, allow_softmax):
    """Runs one layer forward in float64.

    Args:
        layer: the keras layer.
        x: float64 input array.
        rule: the ReLU backward rule ('guided', 'deconvnet' or 'plain').
        allow_softmax: whether a softmax here is the model's final one (then stripped).

    Returns:
        `(y, backward)`: float64 output and a function mapping dL/dy to dL/dx (same shapes).
    """
    # Exact type checks: a subclass may override call() with maths this file does not model.
    if type(layer) is keras.layers.Conv2D:
        y, backward = _conv2d(layer, x)
        return _then_activation(layer, y, backward, rule, allow_softmax)
    if type(layer) is keras.layers.Dense:
        y, backward = _dense(layer, x)
        return _then_activation(layer, y, backward, rule, allow_softmax)
    if type(layer) is keras.layers.BatchNormalization:
        return _batch_norm(layer, x)
    if type(layer) is keras.layers.Activation:
        return _activation(layer, _activation_name(layer), x, rule, allow_softmax)
    if type(layer) is keras.layers.ReLU:
        config = layer.get_config()
        if config.get("negative_slope", 0.0) != 0.0:
            raise _unsupported(layer, "negative_slope != 0")
        return _relu(x, rule, threshold=config["threshold"], max_value=config["max_value"])
    if type(layer) is keras.layers.LeakyReLU:
        slope = float(layer.get_config()["negative_slope"])
        return _elementwise(lambda v: leaky_relu(v, slope), x, rule, gated=True)
    if type(layer) is keras.layers.ELU:
        alpha = float(layer.get_config()["alpha"])
        return _elementwise(lambda v: elu(v, alpha), x, rule, gated=True)
    if type(layer) is keras.layers.MaxPooling2D:
        return _max_pool2d(layer, x)
    if type(layer) is keras.layers.Flatten:
        if layer.get_config().get("data_format", "channels_last") != "channels_last":
            raise _unsupported(layer, "data_format must be channels_last")
        shape = x.shape
        return x.reshape(shape[0], -1), lambda dy: dy.reshape(shape)
    if type(layer) is keras.layers.Dropout:
        return x, lambda dy: dy
    raise _unsupported(layer)


def _then_activation(layer, y, backward, rule, allow_softmax):
    """Applies a Conv2D/Dense layer's fused activation after its affine part."""
    y_act, act_backward = _activation(layer, _activation_name(layer), y, rule, allow_softmax)
    return y_act, lambda dy: backward(act_backward(dy))


def _activation(layer, name, x, rule, allow_softmax):
    """Forward/backward of a named activation; a final softmax or sigmoid is treated as
    identity (stripped, as gbp_ops does)."""
    if name == "linear" or (name in ("softmax", "sigmoid") and allow_softmax):
        return x, lambda dy: dy
    relu_rule = "guided" if rule in _GATE_RULES else rule
    if name == "relu":
        return _relu(x, relu_rule)
    if name == "relu6":
        return _relu(x, relu_rule, max_value=6.0)
    if name == "softmax":
        raise _unsupported(layer, "softmax is only supported as the model's final activation")
    if name in ACTIVATIONS and rule in ("plain", *_GATE_RULES):
        gated = not (allow_softmax and name in SQUASHING)
        return _elementwise(ACTIVATIONS[name], x, rule, gated)
    raise _unsupported(layer, f"activation {name!r}")


def _elementwise(pair, x, rule, gated):
    """An elementwise activation with the plain or the gate-rule backward.

    Args:
        pair: ``x -> (f(x), f'(x))``.
        x: float64 input.
        rule: 'plain', 'gate' or 'gate_without_slope' ('guided'/'deconvnet' raise).
        gated: False keeps the plain backward under the gate rules (a final squashing unit).

    Returns:
        `(y, backward)`.
    """
    if rule not in ("plain", *_GATE_RULES):
        raise NotImplementedError(f"numpy reference: no {rule!r} rule for this activation")
    y, slope = pair(x)

    def backward(dy):
        if rule == "plain" or not gated:
            return dy * slope
        keep = (dy > 0) & (x > 0)
        return np.where(keep, dy * slope if rule == "gate" else dy, 0.0)

    return y, backward


def _relu(x, rule, threshold=0.0, max_value=None):
    """Keras ReLU (negative_slope=0) with a plain, guided or DeconvNet backward.

    Keras computes `where(x > threshold, x, 0)` and then, only if max_value is set,
    `clip(., 0, max_value)`; the derivative mask follows that composition.

    Args:
        x: float64 array, any shape.
        rule: 'plain' `dy * f'(x)`, 'guided' `dy * (dy > 0) * f'(x)`, 'deconvnet' `max(dy, 0)`.
        threshold: float >= 0.
        max_value: float or None.

    Returns:
        `(y, backward)` with `y` float64 of `x`'s shape.
    """
    threshold = float(threshold or 0.0)
    y = np.where(x > threshold, x, 0.0)
    passes = x > threshold
    if max_value is not None:
        max_value = float(max_value)
        y = np.clip(y, 0.0, max_value)
        passes &= (x > 0.0) & (x < max_value)

    def backward(dy):
        if rule == "deconvnet":
            return np.maximum(dy, 0.0)
        keep = passes & (dy > 0) if rule == "guided" else passes
        return np.where(keep, dy, 0.0)

    return y, backward


def _weights(layer):
    """The layer's weights as float64 arrays, in `get_weights()` order."""
    return [np.asarray(w, dtype=np.float64) for w in layer.get_weights()]


def _dense(layer, x):
    """Dense affine part `x @ W + b` on the last axis; x float64 `(..., D_in)`."""
    config = layer.get_config()
    weights = _weights(layer)
    if config.get("lora_rank") or config.get("quantization_config") or len(weights) != (
        2 if config["use_bias"] else 1
    ):
        raise _unsupported(layer, "LoRA/quantized Dense")
    kernel = weights[0]
    y = x @ kernel
    if config["use_bias"]:
        y = y + weights[1]
    return y, lambda dy: dy @ kernel.T


def _out_size_and_pads(size, window, stride, padding, layer):
    """Output length and (before, after) padding of one spatial axis, TF convention.

    Args:
        size: input length.
        window: kernel/pool length.
        stride: stride.
        padding: 'same' or 'valid'.
        layer: for error messages.

    Returns:
        `(out, pad_before, pad_after)` ints.
    """
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + window - size, 0)
        return out, total // 2, total - total // 2
    if padding == "valid":
        if size < window:
            raise ValueError(f"numpy reference: {layer.name}: input {size} < window {window}")
        return (size - window) // stride + 1, 0, 0
    raise _unsupported(layer, f"padding {padding!r}")


def _spatial_geometry(layer, x, window, strides, padding):
    """Output size, padded input slicing info for a 2D windowed op on channels_last `x`.

    Returns:
        `(out_h, out_w, pads)` with `pads` the `np.pad` spec for `x` (N, H, W, C).
    """
    out_h, top, bottom = _out_size_and_pads(x.shape[1], window[0], strides[0], padding, layer)
    out_w, left, right = _out_size_and_pads(x.shape[2], window[1], strides[1], padding, layer)
    return out_h, out_w, ((0, 0), (top, bottom), (left, right), (0, 0))


def _window_slices(i, j, out_h, out_w, strides):
    """Index selecting, for kernel offset (i, j), the input pixel each output pixel reads."""
    return (
        slice(None),
        slice(i, i + strides[0] * (out_h - 1) + 1, strides[0]),
        slice(j, j + strides[1] * (out_w - 1) + 1, strides[1]),
        slice(None),
    )


def _conv2d(layer, x):
    """Conv2D affine part (cross-correlation, as TF), x float64 `(N, H, W, C_in)`.

    Loops over kernel offsets only; each offset is one batched matmul over all pixels.
    """
    config = layer.get_config()
    if config.get("data_format", "channels_last") != "channels_last":
        raise _unsupported(layer, "data_format must be channels_last")
    if tuple(config.get("dilation_rate", (1, 1))) != (1, 1):
        raise _unsupported(layer, "dilation_rate != 1")
    if config.get("groups", 1) != 1:
        raise _unsupported(layer, "groups != 1")
    weights = _weights(layer)
    if len(weights) != (2 if config["use_bias"] else 1):
        raise _unsupported(layer, "unexpected weights (LoRA/quantized?)")
    kernel = weights[0]  # (kh, kw, C_in, C_out)
    strides = tuple(config["strides"])
    out_h, out_w, pads = _spatial_geometry(
        layer, x, kernel.shape[:2], strides, config["padding"].lower()
    )
    x_pad = np.pad(x, pads)
    y = np.zeros((x.shape[0], out_h, out_w, kernel.shape[3]))
    for i in range(kernel.shape[0]):
        for j in range(kernel.shape[1]):
            y += x_pad[_window_slices(i, j, out_h, out_w, strides)] @ kernel[i, j]
    if config["use_bias"]:
        y += weights[1]
    in_h, in_w = x.shape[1:3]
    top, left = pads[1][0], pads[2][0]

    def backward(dy):
        dx_pad = np.zeros(x_pad.shape)
        for i in range(kernel.shape[0]):
            for j in range(kernel.shape[1]):
                dx_pad[_window_slices(i, j, out_h, out_w, strides)] += dy @ kernel[i, j].T
        return dx_pad[:, top : top + in_h, left : left + in_w, :]

    return y, backward


def _max_pool2d(layer, x):
    """MaxPool2D on float64 `(N, H, W, C)`; backward routes dy to each window's first argmax."""
    config = layer.get_config()
    if config.get("data_format", "channels_last") != "channels_last":
        raise _unsupported(layer, "data_format must be channels_last")
    pool = tuple(config["pool_size"])
    strides = tuple(config["strides"] or pool)
    out_h, out_w, pads = _spatial_geometry(layer, x, pool, strides, config["padding"].lower())
    # -inf padding: a padded cell never wins a window, as in TF's SAME max-pool.
    x_pad = np.pad(x, pads, constant_values=-np.inf)
    offsets = [(i, j) for i in range(pool[0]) for j in range(pool[1])]
    windows = np.stack(
        [x_pad[_window_slices(i, j, out_h, out_w, strides)] for i, j in offsets]
    )  # (P, N, out_h, out_w, C), P in row-major window order
    winner = np.argmax(windows, axis=0)
    y = np.take_along_axis(windows, winner[None], axis=0)[0]
    in_h, in_w = x.shape[1:3]
    top, left = pads[1][0], pads[2][0]

    def backward(dy):
        dx_pad = np.zeros(x_pad.shape)
        for p, (i, j) in enumerate(offsets):
            dx_pad[_window_slices(i, j, out_h, out_w, strides)] += np.where(winner == p, dy, 0.0)
        return dx_pad[:, top : top + in_h, left : left + in_w, :]

    return y, backward


def _batch_norm(layer, x):
    """Inference-mode BatchNormalization on float64 `x`, a per-channel affine map."""
    config = layer.get_config()
    axis = config["axis"]
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            raise _unsupported(layer, f"multi-axis BatchNormalization {axis}")
        axis = axis[0]
    weights = _weights(layer)
    expected = 2 + bool(config["scale"]) + bool(config["center"])
    if len(weights) != expected:
        raise _unsupported(layer, f"expected {expected} weights, got {len(weights)}")
    gamma = weights.pop(0) if config["scale"] else 1.0
    beta = weights.pop(0) if config["center"] else 0.0
    moving_mean, moving_var = weights
    scale = gamma / np.sqrt(moving_var + float(config["epsilon"]))
    shift = beta - moving_mean * scale
    shape = [1] * x.ndim
    shape[axis] = -1
    scale = np.reshape(scale, shape)
    shift = np.reshape(shift, shape)
    return x * scale + shift, lambda dy: dy * scale
