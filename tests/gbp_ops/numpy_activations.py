"""Elementwise activations and their derivatives in closed form, float64 numpy, for the numpy
reference's gate rule (``numpy_reference``). Written from the formulas, not from Keras' code:
each pair is checked against TF's own gradients in ``test_numpy_reference``.
"""

import math

import numpy as np

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + e^-x), without overflow


def _softplus(x):
    return np.logaddexp(0.0, x)


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _silu(x):
    s = _sigmoid(x)
    return x * s, s * (1.0 + x * (1.0 - s))


def _gelu(x):
    """The exact GELU ``x * Phi(x)``."""
    cdf = 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return x * cdf, cdf + x * pdf


def _gelu_approximate(x):
    """GELU's tanh form ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    t = np.tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x ** 3))
    inner_slope = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_CUBIC * x * x)
    return 0.5 * x * (1.0 + t), 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * inner_slope


def _hard_sigmoid(x):
    """``relu6(x + 3) / 6``."""
    return np.clip(x + 3.0, 0.0, 6.0) / 6.0, np.where((x > -3.0) & (x < 3.0), 1.0 / 6.0, 0.0)


def _hard_silu(x):
    h, dh = _hard_sigmoid(x)
    return x * h, h + x * dh


def _sigmoid_pair(x):
    s = _sigmoid(x)
    return s, s * (1.0 - s)


def _tanh(x):
    t = np.tanh(x)
    return t, 1.0 - t * t


def elu(x, alpha=1.0):
    """ELU with slope ``alpha`` scale on the negative side; ``(y, dy/dx)``."""
    negative = alpha * np.expm1(np.minimum(x, 0.0))
    return np.where(x > 0, x, negative), np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))


def _selu(x):
    y, dy = elu(x, SELU_ALPHA)
    return SELU_SCALE * y, SELU_SCALE * dy


def _celu(x, alpha=1.0):
    negative = np.minimum(x, 0.0)
    return (np.maximum(x, 0.0) + alpha * np.expm1(negative / alpha),
            np.where(x > 0, 1.0, np.exp(negative / alpha)))


def _softplus_pair(x):
    return _softplus(x), _sigmoid(x)


def leaky_relu(x, negative_slope=0.2):
    """``x`` where positive, else ``negative_slope * x``; ``(y, dy/dx)``."""
    return np.where(x > 0, x, negative_slope * x), np.where(x > 0, 1.0, negative_slope)


def _mish(x):
    sp = _softplus(x)
    t = np.tanh(sp)
    return x * t, t + x * (1.0 - t * t) * _sigmoid(x)


# name -> x -> (f(x), f'(x)), with the names Keras' configs use (and their aliases).
ACTIVATIONS = {
    "silu": _silu,
    "swish": _silu,
    "gelu": _gelu,
    "gelu_approximate": _gelu_approximate,
    "hard_silu": _hard_silu,
    "hard_swish": _hard_silu,
    "hard_sigmoid": _hard_sigmoid,
    "sigmoid": _sigmoid_pair,
    "tanh": _tanh,
    "elu": elu,
    "selu": _selu,
    "celu": _celu,
    "softplus": _softplus_pair,
    "leaky_relu": leaky_relu,
    "mish": _mish,
}
# Squashing activations: the reference's gate rule leaves them plain on the output layer.
SQUASHING = frozenset({"sigmoid", "hard_sigmoid", "tanh"})
