"""Grad-CAM (Selvaraju et al. 2017) for Guided Grad-CAM: the class-activation map of one layer.

``cam = ReLU(sum_k alpha_k A^k)`` with ``A`` the ``(B, h, w, k)`` output of the Grad-CAM layer
and ``alpha_k`` the spatial mean of the *plain* gradient of the target score w.r.t. ``A^k``
(as in the paper and captum's ``GuidedGradCam``), upsampled bilinearly (half-pixel centres,
``tf.image.resize``) to the input's ``(H, W)``.
"""

import keras
import tensorflow as tf

from gbp_ops import errors


def default_gradcam_layer(model):
    """The name of ``model``'s last top-level layer with a 4-D output (the last feature map
    before the head); a nested model counts as one layer.

    Raises:
        GBPError: no such layer.
    """
    candidates = [layer.name for layer in model.layers
                  if not isinstance(layer, keras.layers.InputLayer)
                  and len(layer.output.shape) == 4]
    if not candidates:
        raise errors.GBPError(errors.NO_GRADCAM_LAYER.format(model=model.name))
    return candidates[-1]


def activations_and_outputs_model(model, layer_name):
    """``keras.Model`` mapping the input to ``[A, outputs]``; ``layer_name`` is top-level.

    Raises:
        GBPError: unknown layer, or one whose output is not ``(N, h, w, k)``.
    """
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise errors.GBPError(errors.UNKNOWN_LAYER.format(layer=layer_name, names=names))
    activations = model.get_layer(layer_name).output
    if len(activations.shape) != 4:
        raise errors.GBPError(errors.BAD_GRADCAM_LAYER.format(layer=layer_name,
                                                              shape=tuple(activations.shape)))
    return keras.Model(model.inputs, [activations, model.outputs[0]])


def class_activation_map(activations, gradients, size):
    """Grad-CAM heat map from a layer's activations and the target's gradient w.r.t. them.

    Args:
        activations: float32 ``(B, h, w, k)``.
        gradients: float32 ``(B, h, w, k)``, d(target score) / d(activations).
        size: ``(H, W)`` of the input.

    Returns:
        float32 ``(B, H, W)``, >= 0.
    """
    alpha = tf.reduce_mean(gradients, axis=[1, 2], keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(alpha * activations, axis=-1, keepdims=True))
    return tf.image.resize(cam, size, method="bilinear")[..., 0]
