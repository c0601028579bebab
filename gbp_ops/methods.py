"""The GBP family behind one interface: guided backprop, DeconvNet and Guided Grad-CAM, each
optionally under SmoothGrad; ``make_explainer`` picks one by name."""

import tensorflow as tf

from gbp_ops import errors
from gbp_ops.choices import (
    METHOD_DECONVNET,
    METHOD_GUIDED_BACKPROP,
    METHOD_GUIDED_GRADCAM,
    METHODS,
    NONLINEARITY_REFUSE,
)
from gbp_ops.explainer import GuidedBackprop, scoring_model
from gbp_ops.gradcam import (
    activations_and_outputs_model,
    class_activation_map,
    default_gradcam_layer,
)
from gbp_ops.guided_relu import RULE_DECONVNET
from gbp_ops.precision import (
    PRECISION_FLOAT32,
    SAVEDMODEL_PRECISION,
    check_precision,
    model_under_precision,
)
from gbp_ops.rewrite import RULE_PLAIN, guide_model
from gbp_ops.savedmodel import SAVEDMODEL_CLASSES
from gbp_ops.savedmodel_graph import SavedModelSource


class Deconvnet(GuidedBackprop):
    """DeconvNet (Zeiler & Fergus 2014): at every ReLU site GBP guides, the backward is
    ``relu(dy)`` whatever the forward pass did (see ``gbp_ops.guided_relu``)."""

    method = METHOD_DECONVNET
    relu_rule = RULE_DECONVNET


class GuidedGradCAM(GuidedBackprop):
    """Guided Grad-CAM (Selvaraju et al. 2017): the GBP map times the upsampled Grad-CAM map.

    The Grad-CAM part runs on a plain clone (ReLUs untouched, same stripped final activation),
    so its weights use plain gradients; both backward passes are in the one compiled step.

    Args (beyond ``GuidedBackprop``'s):
        gradcam_layer: a top-level layer with a ``(N, h, w, k)`` output; None picks the last
            one (``gradcam.default_gradcam_layer``). The choice is in ``self.gradcam_layer``.
    """

    method = METHOD_GUIDED_GRADCAM

    def __init__(self, model, *args, gradcam_layer=None, **kwargs):
        self.gradcam_layer = gradcam_layer
        super().__init__(model, *args, **kwargs)

    def _build_method(self, model, strip_final_activation, allow_unguided):
        plain = guide_model(model, strip_final_activation, allow_unguided, rule=RULE_PLAIN,
                            nonlinearity_rule=self.nonlinearity_rule)
        self._weight_models.append(plain.model)
        scorer = scoring_model(plain.model, self.layer_name)
        if self.gradcam_layer is None:
            self.gradcam_layer = default_gradcam_layer(scorer)
        self._cam_model = activations_and_outputs_model(scorer, self.gradcam_layer)

    def method_fields(self):
        return {**super().method_fields(), "gradcam_layer": self.gradcam_layer}

    def _method_maps(self, images, targets):
        guided, scored = super()._method_maps(images, targets)
        with tf.GradientTape() as tape:
            activations, outputs = self._cam_model(images, training=False)
            total = tf.reduce_sum(self._target_scores(outputs, scored[2])[3])
        gradients = tape.gradient(total, activations)
        cam = class_activation_map(activations, gradients, self.input_shape[:2])
        return guided * cam[..., None], scored


_CLASSES = {METHOD_GUIDED_BACKPROP: GuidedBackprop, METHOD_DECONVNET: Deconvnet,
            METHOD_GUIDED_GRADCAM: GuidedGradCAM}


def make_explainer(model, method=METHOD_GUIDED_BACKPROP, *, gradcam_layer=None,
                   smoothgrad_samples=0, smoothgrad_sigma=0.15, batch_size=32,
                   precision=PRECISION_FLOAT32, nonlinearity_rule=NONLINEARITY_REFUSE,
                   **options):
    """An explainer of ``model`` with the ``GuidedBackprop`` interface, for ``method``.

    Args:
        model: a Functional or Sequential ``keras.Model`` with one image input, or a
            ``SavedModelSource`` (``gbp_ops.load_model`` of a SavedModel directory), explained
            by ``gbp_ops.savedmodel`` with op names for ``gradcam_layer`` and ``layer_name``.
        method: one of ``gbp_ops.choices.METHODS``.
        gradcam_layer: Guided Grad-CAM's layer (None: the last 4-D one); other methods ignore
            it.
        smoothgrad_samples: 0 (off) or the number of noisy copies SmoothGrad averages.
        smoothgrad_sigma: SmoothGrad's noise std as a fraction of each image's range.
        batch_size: the compiled batch.
        precision: one of ``gbp_ops.precision.PRECISIONS``; reduced precision rebuilds the
            model's layers under that Keras dtype policy (Keras models only). Inputs, logits
            and maps stay float32.
        nonlinearity_rule: ``'refuse'`` (default) or ``'gate'`` (Keras models; guided backprop
            and Guided Grad-CAM): see ``gbp_ops.gated_activation``.
        **options: ``GuidedBackprop``'s other arguments (``strip_final_activation``,
            ``allow_unguided``, ``layer_name``, ``compile``, ``reduction``).

    Raises:
        GBPError: an unknown method or precision, reduced precision or the gate rule for a
            SavedModel, or what the explainer raises.
    """
    check_precision(precision)
    classes = _CLASSES
    if isinstance(model, SavedModelSource):
        if precision != PRECISION_FLOAT32:
            raise errors.GBPError(SAVEDMODEL_PRECISION.format(precision=precision))
        if nonlinearity_rule != NONLINEARITY_REFUSE:
            raise errors.GBPError(errors.SAVEDMODEL_NO_GATE)
        classes = SAVEDMODEL_CLASSES
    else:
        model = model_under_precision(model, precision)
    if method not in classes:
        raise errors.GBPError(errors.UNKNOWN_METHOD.format(method=method,
                                                           methods=", ".join(METHODS)))
    if method == METHOD_GUIDED_GRADCAM:
        options["gradcam_layer"] = gradcam_layer
    if not isinstance(model, SavedModelSource):
        options["nonlinearity_rule"] = nonlinearity_rule
    return classes[method](model, batch_size=batch_size, smoothgrad_samples=smoothgrad_samples,
                           smoothgrad_sigma=smoothgrad_sigma, **options)
