"""Capped ReLUs (relu6, ReLU(max_value=...)) driven well past their cap.

With small random weights no pre-activation reaches 6, so a guided ReLU6 that forgot its cap
(forward or backward) would still agree with every reference. Here the first convolution is
scaled so that a large share of the pre-activations lies above the cap and another share
inside (0, cap); the guided maps are then checked against the numpy reference in
``numpy_reference.py`` and against a hand-written numpy GBP of the tiny model below.
"""

import keras
import numpy as np
import pytest

from gbp_ops import GuidedBackprop
from tests.gbp_ops.numpy_reference import numpy_guided_backprop

SIZE = 6
CHANNELS = 4
CLASSES = 3
COUNT = 4
TARGETS = np.array([0, 1, 2, 1])


def _images(seed=3):
    return np.random.default_rng(seed).random((COUNT, SIZE, SIZE, 3)).astype(np.float32)


def _conv_weights(scale, seed=5):
    """A 3x3 kernel (3 -> CHANNELS) with a positive bias, so that ``scale`` sets how far past
    the cap the pre-activations go; values spread over both sides of 0 and of the cap."""
    rng = np.random.default_rng(seed)
    kernel = rng.normal(0.0, 1.0, (3, 3, 3, CHANNELS)) * scale / 9.0
    bias = rng.normal(0.2, 0.5, CHANNELS) * scale
    return [kernel.astype(np.float32), bias.astype(np.float32)]


def _model(activation_layers, conv_activation, scale):
    """Input -> Conv2D(valid) [-> activation layers] -> Flatten -> Dense(CLASSES)."""
    model = keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Conv2D(CHANNELS, 3, activation=conv_activation),
        *activation_layers,
        keras.layers.Flatten(),
        keras.layers.Dense(CLASSES),
    ])
    model.layers[0].set_weights(_conv_weights(scale))
    dense = model.layers[-1]
    rng = np.random.default_rng(11)
    dense.set_weights([rng.normal(0.0, 1.0, w.shape).astype(np.float32)
                       for w in dense.get_weights()])
    return model


def _pre_activations(model, images):
    """The conv's affine output in float64 numpy (cross-correlation, 'valid' padding)."""
    kernel, bias = (np.asarray(w, np.float64) for w in model.layers[0].get_weights())
    x = np.asarray(images, np.float64)
    out = SIZE - 2
    pre = np.zeros((len(x), out, out, CHANNELS))
    for i in range(3):
        for j in range(3):
            pre += np.einsum("nhwc,cd->nhwd", x[:, i:i + out, j:j + out, :], kernel[i, j])
    return pre + bias


def _hand_guided_backprop(model, images, targets, cap):
    """Independent GBP of Conv2D -> ReLU(cap) -> Flatten -> Dense, written out by hand.

    Backward at the capped ReLU: ``dy * (dy > 0) * (0 < x < cap)``; ``cap=None`` is a plain
    ReLU (``x > 0``).
    """
    kernel = np.asarray(model.layers[0].get_weights()[0], np.float64)
    dense_kernel = np.asarray(model.layers[-1].get_weights()[0], np.float64)
    pre = _pre_activations(model, images)
    passes = pre > 0 if cap is None else (pre > 0) & (pre < cap)
    dy = dense_kernel[:, targets].T.reshape(pre.shape)  # d logit_t / d relu output
    dpre = dy * (dy > 0) * passes
    out = SIZE - 2
    maps = np.zeros(np.shape(images))
    for i in range(3):
        for j in range(3):
            maps[:, i:i + out, j:j + out, :] += np.einsum("nhwd,cd->nhwc", dpre, kernel[i, j])
    return maps


def _assert_exercises_cap(pre, cap):
    """The test is only meaningful if many values are above the cap and many inside it."""
    above = np.mean(pre > cap)
    inside = np.mean((pre > 0) & (pre < cap))
    assert above > 0.2, f"only {above:.0%} of pre-activations exceed the cap {cap}"
    assert inside > 0.1, f"only {inside:.0%} of pre-activations lie in (0, {cap})"


CAPPED_FORMS = {
    # name: (activation layers, conv activation, cap, weight scale)
    "Activation(relu6)": (lambda: [keras.layers.Activation("relu6")], "linear", 6.0, 12.0),
    "Conv2D(activation=relu6)": (lambda: [], "relu6", 6.0, 12.0),
    "ReLU(max_value=6)": (lambda: [keras.layers.ReLU(max_value=6.0)], "linear", 6.0, 12.0),
    "ReLU(max_value=1.5)": (lambda: [keras.layers.ReLU(max_value=1.5)], "linear", 1.5, 3.0),
}


@pytest.mark.parametrize("form", sorted(CAPPED_FORMS))
def test_capped_relu_above_the_cap_matches_numpy(form):
    layers, conv_activation, cap, scale = CAPPED_FORMS[form]
    model = _model(layers(), conv_activation, scale)
    images = _images()
    pre = _pre_activations(model, images)
    _assert_exercises_cap(pre, cap)

    maps = GuidedBackprop(model, batch_size=COUNT).explain(images, TARGETS)

    expected = _hand_guided_backprop(model, images, TARGETS, cap)
    reference, _ = numpy_guided_backprop(model, images, TARGETS)
    np.testing.assert_allclose(reference, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-5)
    # The cap must matter for these inputs: the uncapped guided map is clearly different.
    uncapped = _hand_guided_backprop(model, images, TARGETS, None)
    assert np.abs(uncapped - expected).max() > 0.1 * np.abs(expected).max()


@pytest.mark.parametrize("form", sorted(CAPPED_FORMS))
def test_capped_relu_forward_saturates_at_the_cap(form):
    layers, conv_activation, cap, scale = CAPPED_FORMS[form]
    model = _model(layers(), conv_activation, scale)
    images = _images(seed=4)
    pre = _pre_activations(model, images)
    _assert_exercises_cap(pre, cap)
    dense_kernel, dense_bias = (np.asarray(w, np.float64)
                                for w in model.layers[-1].get_weights())
    expected = np.clip(pre, 0.0, cap).reshape(COUNT, -1) @ dense_kernel + dense_bias

    scores = GuidedBackprop(model, batch_size=COUNT).explain_with_outputs(images, TARGETS).scores

    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)
