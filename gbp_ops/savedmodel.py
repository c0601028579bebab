"""Guided backprop (and DeconvNet, Guided Grad-CAM) on a TensorFlow SavedModel's graph.

The frozen signature (``gbp_ops.savedmodel_graph``) is imported into a TF1-style graph under
``gradient_override_map``, which maps every ``Relu``/``Relu6`` op to a registered guided (or
DeconvNet) gradient; ``tf.gradients`` of the target scores there gives the maps, and
``tf.compat.v1.wrap_function`` turns that graph into a callable. (In TF2 eager code an override
map is silently ignored; inside a wrapped graph it is honoured.) The explainers are
``GuidedBackprop``s built by its own ``__init__`` (only ``_build_model`` and ``_build_method``
differ), so they share its batching, padding, checks, SmoothGrad and in-graph reduction.
"""

import tensorflow as tf

from gbp_ops import errors
from gbp_ops.choices import (
    METHOD_DECONVNET,
    METHOD_GUIDED_BACKPROP,
    METHOD_GUIDED_GRADCAM,
    NONLINEARITY_REFUSE,
)
from gbp_ops.explainer import GuidedBackprop
from gbp_ops.gradcam import class_activation_map
from gbp_ops.guided_relu import RULE_DECONVNET, RULE_GUIDED
from gbp_ops.rewrite import SPACE_LOGIT, SPACE_OUTPUT
from gbp_ops.savedmodel_graph import plan_graph

IMPORT_SCOPE = "savedmodel"
PLAIN_SCOPE = "savedmodel_plain"


@tf.RegisterGradient("GbpAuditGuidedRelu")
def _guided_relu_gradient(op, grad):
    gate = tf.logical_and(grad > 0, op.inputs[0] > 0)
    return grad * tf.cast(gate, grad.dtype)


@tf.RegisterGradient("GbpAuditGuidedRelu6")
def _guided_relu6_gradient(op, grad):
    features = op.inputs[0]
    gate = tf.logical_and(grad > 0, tf.logical_and(features > 0, features < 6))
    return grad * tf.cast(gate, grad.dtype)


@tf.RegisterGradient("GbpAuditDeconvnetRelu")
def _deconvnet_relu_gradient(op, grad):
    return tf.nn.relu(grad)


GRADIENT_OVERRIDES = {
    RULE_GUIDED: {"Relu": "GbpAuditGuidedRelu", "Relu6": "GbpAuditGuidedRelu6"},
    RULE_DECONVNET: {"Relu": "GbpAuditDeconvnetRelu", "Relu6": "GbpAuditDeconvnetRelu"},
}


class SavedModelGuidedBackprop(GuidedBackprop):
    """Guided backprop for a SavedModel signature, with ``GuidedBackprop``'s interface.

    Args:
        model: a ``gbp_ops.savedmodel_graph.SavedModelSource`` (``gbp_ops.load_model`` of a
            SavedModel directory), kept as ``self.source``.
        batch_size, strip_final_activation, allow_unguided, compile, reduction,
        smoothgrad_samples, smoothgrad_sigma: as for ``GuidedBackprop``.
        layer_name: explain a channel of this op's output (spatial sum) instead of a class
            score: an op name of the frozen graph.

    Attributes (beyond ``GuidedBackprop``'s): ``guided_sites`` lists one
    ``GuidedSite(op name, op type)`` per Relu/Relu6 op; ``unguided_sites`` the unguidable ops
    left as they are (only with ``allow_unguided``).

    Raises:
        GBPError: see ``gbp_ops.savedmodel_graph.plan_graph``, and an input without a fixed
            height, width and channels.
    """

    def _build_model(self, source, strip_final_activation, allow_unguided):
        """``GuidedBackprop._build_model`` from the frozen graph instead of a Keras rewrite."""
        self.source = source
        self._plan = plan_graph(source, strip_final_activation, allow_unguided, self.layer_name)
        self.guided_sites = self._plan.guided_sites
        self.gated_sites = ()
        self.unguided_sites = self._plan.unguided_sites
        self.nonlinearity_rule = NONLINEARITY_REFUSE  # make_explainer refuses 'gate' here
        self.stripped_activation = self._plan.stripped_activation
        self.explained_space = (f"layer:{self.layer_name}" if self.layer_name is not None else
                                SPACE_LOGIT if self.stripped_activation else SPACE_OUTPUT)
        self._set_input_shape(source.input_shape)

    def _step_batch(self):
        """``batch_size``: the graph is wrapped for a fixed batch, so a partial one is padded."""
        return self.batch_size

    def _build_method(self, source, strip_final_activation, allow_unguided):
        """The method's checks, then the wrapped graph (which also sets the output count)."""
        self._check_method()
        self._build_graph()

    def _check_method(self):
        """Hook for methods with settings to check before the graph is wrapped."""

    def _build_graph(self):
        """Wraps the guided graph once: ``(images, targets) -> (maps, scores, predicted,
        chosen, target_scores)`` and ``images -> explained outputs``."""
        images_spec = tf.TensorSpec((self.batch_size, *self.input_shape), tf.float32)
        targets_spec = tf.TensorSpec((self.batch_size,), tf.int32)
        probe = tf.compat.v1.wrap_function(self._import_outputs, [images_spec])
        self._set_num_outputs(int(probe.outputs[0].shape[-1]))
        self._maps_fn = tf.compat.v1.wrap_function(self._graph_maps, [images_spec, targets_spec])
        self._outputs_fn = probe

    def _import(self, images, rule, scope, extra=()):
        """Imports the frozen graph reading ``images``; returns the explained tensor (and the
        ``extra`` tensors)."""
        graph = tf.compat.v1.get_default_graph()
        overrides = GRADIENT_OVERRIDES.get(rule, {})
        with graph.gradient_override_map(overrides):
            found = tf.graph_util.import_graph_def(
                self.source.graph_def, input_map={self.source.input_name: images},
                return_elements=[self._plan.logit_name, *extra], name=scope)
        return [tf.cast(tensor, tf.float32) for tensor in found]

    def _import_outputs(self, images):
        return self._import(images, None, PLAIN_SCOPE)[0]

    def _graph_maps(self, images, targets):
        outputs = self._import(images, self.relu_rule, IMPORT_SCOPE)[0]
        scored = self._target_scores(outputs, targets)
        maps = tf.gradients(tf.reduce_sum(scored[3]), images)[0]
        return (self._combine(images, maps, scored), *scored)

    def _combine(self, images, maps, scored):
        """Hook for methods that combine the guided maps with more of the graph."""
        return maps

    def _scorer(self, images, training=False):
        return self._outputs_fn(images)

    def _method_maps(self, images, targets):
        maps, *scored = self._maps_fn(images, targets)
        return maps, tuple(scored)


class SavedModelDeconvnet(SavedModelGuidedBackprop):
    """DeconvNet on a SavedModel: the backward at every Relu/Relu6 op is ``relu(dy)``."""

    method = METHOD_DECONVNET
    relu_rule = RULE_DECONVNET


class SavedModelGuidedGradCAM(SavedModelGuidedBackprop):
    """Guided Grad-CAM on a SavedModel: the guided map times the Grad-CAM map of the op that
    ``gradcam_layer`` names (its first output must be ``(N, h, w, k)``); the Grad-CAM weights
    use plain gradients, from a second, unguided import of the graph in the same step."""

    method = METHOD_GUIDED_GRADCAM

    def __init__(self, source, *args, gradcam_layer=None, **kwargs):
        self.gradcam_layer = gradcam_layer
        super().__init__(source, *args, **kwargs)

    def _check_method(self):
        op_names = {node.name for node in self.source.graph_def.node}
        if self.gradcam_layer is None or self.gradcam_layer.split(":")[0] not in op_names:
            candidates = ", ".join(site.layer for site in self.guided_sites[-3:])
            raise errors.GBPError(errors.SAVEDMODEL_NO_GRADCAM_LAYER.format(
                path=self.source.path, candidates=candidates))

    def method_fields(self):
        return {**super().method_fields(), "gradcam_layer": self.gradcam_layer}

    def _combine(self, images, maps, scored):
        name = self.gradcam_layer if ":" in self.gradcam_layer else f"{self.gradcam_layer}:0"
        outputs, activations = self._import(images, None, "gradcam", extra=[name])
        if activations.shape.rank != 4:
            raise errors.GBPError(errors.BAD_GRADCAM_LAYER.format(
                layer=self.gradcam_layer, shape=tuple(activations.shape)))
        target_scores = self._target_scores(outputs, scored[2])[3]
        gradients = tf.gradients(tf.reduce_sum(target_scores), activations)[0]
        cam = class_activation_map(activations, gradients, self.input_shape[:2])
        return maps * cam[..., None]


# ``gbp_ops.make_explainer`` picks from this table for a ``SavedModelSource``.
SAVEDMODEL_CLASSES = {METHOD_GUIDED_BACKPROP: SavedModelGuidedBackprop,
                      METHOD_DECONVNET: SavedModelDeconvnet,
                      METHOD_GUIDED_GRADCAM: SavedModelGuidedGradCAM}
