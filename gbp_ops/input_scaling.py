"""What a Keras model says about its own input scaling: a ``Rescaling`` or ``Normalization``
layer that its input goes through first.

Such a model scales pixels itself. When that layer maps pixels in [0, 255] into a small range
(every output within ``PIXEL_OUTPUT_BOUND`` of zero, as ``Rescaling(1/255)``,
``Rescaling(1/127.5, offset=-1)`` or a ``Normalization`` adapted on 8-bit images do), the model
takes raw pixels, and any scaling before it would be applied twice. Any other scaling layer is
reported, but says nothing certain about the range it expects.
"""

import dataclasses

import keras
import numpy as np

from gbp_ops.model_graph import leaf_layers

# A scaling layer whose outputs for inputs in [0, 255] all lie within this bound of zero
# expects raw pixels (``Rescaling(1/255)`` gives [0, 1]; a mean/std normalization about +-3).
PIXEL_OUTPUT_BOUND = 5.0


@dataclasses.dataclass(frozen=True)
class InputScaling:
    """The model's own input scaling layer.

    Attributes:
        layer: the layer's path (``outer/inner/name`` for nested models).
        kind: ``Rescaling`` or ``Normalization``.
        detail: its parameters in words, e.g. ``scale 0.00392, offset 0``.
        takes_raw_pixels: whether it maps [0, 255] into +-``PIXEL_OUTPUT_BOUND``.
    """

    layer: str
    kind: str
    detail: str
    takes_raw_pixels: bool


def _affine(layer):
    """``(scale, offset, words)`` of the layer's per-channel map ``x * scale + offset``."""
    if isinstance(layer, keras.layers.Rescaling):
        scale = np.asarray(layer.scale, np.float64)
        offset = np.asarray(layer.offset, np.float64)
        return scale, offset, f"scale {_words(scale)}, offset {_words(offset)}"
    mean = np.asarray(keras.ops.convert_to_numpy(layer.mean), np.float64)
    std = np.sqrt(np.asarray(keras.ops.convert_to_numpy(layer.variance), np.float64))
    if layer.invert:
        return std, mean, f"inverted, mean {_words(mean)}, std {_words(std)}"
    std = np.maximum(std, keras.backend.epsilon())
    return 1.0 / std, -mean / std, f"mean {_words(mean)}, std {_words(std)}"


def _words(values):
    values = np.ravel(values)
    return ", ".join(f"{value:.3g}" for value in values[:3]) + (" ..." if len(values) > 3 else "")


def declared_input_scaling(model):
    """The ``InputScaling`` of a Keras model whose first layer after its input (nested models
    looked into) is a ``Rescaling`` or ``Normalization``; else None."""
    first = next(((path, layer) for path, layer in leaf_layers(model)
                  if not isinstance(layer, keras.layers.InputLayer)), None)
    if first is None:
        return None
    path, layer = first
    if not isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization)):
        return None
    try:
        scale, offset, detail = _affine(layer)
    except (AttributeError, TypeError, ValueError):  # a Normalization that was never adapted
        return InputScaling(path, type(layer).__name__, "parameters unknown", False)
    ends = np.abs(np.stack([offset + 0.0 * scale, offset + 255.0 * scale]))
    return InputScaling(path, type(layer).__name__, detail,
                        bool(np.all(np.isfinite(ends)) and ends.max() <= PIXEL_OUTPUT_BOUND))
