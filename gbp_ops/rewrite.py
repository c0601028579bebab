"""Clone a Keras model and guide every ReLU in the clone; the caller's model is never touched.

Guided forms: ``Activation('relu'|'relu6')``, ``activation='relu'|'relu6'`` (or ``tf.nn.relu``)
on any layer, ``layers.ReLU`` with any ``max_value``/``threshold`` and ``negative_slope == 0``,
and all of these inside nested models.
"""

import dataclasses
import logging

import keras

from gbp_ops import errors
from gbp_ops.guided_relu import RELU_FACTORIES, RULE_GUIDED, GuidedReLU
from gbp_ops.model_graph import clone_with_weights, copy_layer, leaf_layers

# Activations with a kink that guided backprop has no rule for; they raise unless allowed.
UNSUPPORTED_ACTIVATIONS = frozenset(
    {"leaky_relu", "elu", "selu", "gelu", "silu", "swish", "hard_silu", "hard_swish", "mish",
     "celu", "softplus", "glu", "relu_with_negative_slope"}
)
UNSUPPORTED_LAYER_TYPES = ("LeakyReLU", "ELU", "PReLU")
# Final activations that are stripped so the pre-activation score (the logit) is explained.
STRIPPABLE_FINAL_ACTIVATIONS = frozenset({"softmax", "sigmoid"})

SPACE_LOGIT = "logit"
SPACE_OUTPUT = "output"
# ``guide_model(rule=RULE_PLAIN)`` leaves every ReLU as it is (plain gradients), e.g. for the
# Grad-CAM weights; only the final activation is stripped.
RULE_PLAIN = "plain"


@dataclasses.dataclass(frozen=True)
class GuidedSite:
    """One ReLU the rewrite guided: its layer path (``outer/inner/layer``) and its form."""

    layer: str
    form: str


@dataclasses.dataclass(frozen=True)
class RewriteResult:
    """The guided clone and what was done to make it.

    Attributes:
        model: the guided clone; same inputs, outputs before the stripped final activation.
        guided_sites: every ReLU that was guided.
        unguided_sites: unsupported activations left as they were (only with allow_unguided).
        explained_space: ``'logit'`` when a final softmax/sigmoid was stripped, else ``'output'``.
        stripped_activation: the stripped final activation's name, or None.
    """

    model: keras.Model
    guided_sites: tuple
    unguided_sites: tuple
    explained_space: str
    stripped_activation: str | None


def activation_name(fn):
    """The canonical name of an activation callable, e.g. ``'relu'`` for ``tf.nn.relu``."""
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return {"swish": "silu", "hard_swish": "hard_silu", "relu_6": "relu6"}.get(name, name)


def _relu_params(name):
    """(max_value, threshold) of a ReLU-family activation name, or None if not a plain ReLU."""
    return {"relu": (None, 0.0), "relu6": (6.0, 0.0)}.get(name)


def _output_layer(model):
    """The innermost layer that produces the model's (single) output."""
    layer = model.outputs[0]._keras_history.operation
    while isinstance(layer, keras.Model):
        layer = layer.outputs[0]._keras_history.operation
    return layer


def _check_supported_model(model):
    if not isinstance(model, keras.Model) or not (
        isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)
        or type(model).__name__ == "Functional"
    ):
        raise errors.GBPError(errors.SUBCLASSED_MODEL.format(model=getattr(model, "name", model)))
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise errors.GBPError(
            errors.MULTI_IO_MODEL.format(
                model=model.name, inputs=len(model.inputs), outputs=len(model.outputs)
            )
        )


class _LayerPlan:
    """Decides, per layer of the original model, how the clone's copy is built."""

    def __init__(self, model, strip_final_activation, allow_unguided, rule=RULE_GUIDED):
        self.rule = rule
        self.replacements = {}
        self.guided_sites = []
        self.unguided_sites = []
        self.stripped_activation = None
        final_layer = _output_layer(model)
        for path, layer in leaf_layers(model):
            strip = strip_final_activation and layer is final_layer
            self._plan_layer(path, layer, strip, allow_unguided)

    def _unsupported(self, path, name, allow_unguided):
        if not allow_unguided:
            raise errors.GBPError(errors.UNSUPPORTED_ACTIVATION.format(layer=path, activation=name))
        logging.warning("gbp_ops: leaving layer '%s' (%s) unguided as requested", path, name)
        self.unguided_sites.append(GuidedSite(path, name))

    def _plan_layer(self, path, layer, strip, allow_unguided):
        kind = type(layer).__name__
        if kind in UNSUPPORTED_LAYER_TYPES:
            self._unsupported(path, kind, allow_unguided)
            return
        if isinstance(layer, keras.layers.ReLU):
            self._plan_relu_layer(path, layer, allow_unguided)
            return
        if kind == "Softmax" and strip:
            self.stripped_activation = "softmax"
            self.replacements[id(layer)] = lambda: StrippedSoftmax(name=layer.name)
            return
        if not hasattr(layer, "activation") or not callable(layer.activation):
            return
        name = activation_name(layer.activation)
        if strip and name in STRIPPABLE_FINAL_ACTIVATIONS:
            self.stripped_activation = name
            self.replacements[id(layer)] = _with_activation(layer, "linear")
        elif _relu_params(name) is not None:
            max_value, threshold = _relu_params(name)
            self.guided_sites.append(GuidedSite(path, f"{kind}(activation={name})"))
            if self.rule != RULE_PLAIN:
                self.replacements[id(layer)] = _with_activation(
                    layer, RELU_FACTORIES[self.rule](max_value, threshold)
                )
        elif name in UNSUPPORTED_ACTIVATIONS:
            self._unsupported(path, name, allow_unguided)

    def _plan_relu_layer(self, path, layer, allow_unguided):
        if float(layer.negative_slope) != 0.0:
            self._unsupported(path, "relu_with_negative_slope", allow_unguided)
            return
        max_value = None if layer.max_value is None else float(layer.max_value)
        threshold = float(layer.threshold)
        self.guided_sites.append(
            GuidedSite(path, f"ReLU(max_value={max_value}, threshold={threshold})")
        )
        if self.rule == RULE_PLAIN:
            return
        self.replacements[id(layer)] = lambda: GuidedReLU(
            max_value=max_value, threshold=threshold, rule=self.rule, name=layer.name,
            dtype=layer.dtype_policy
        )


def _with_activation(layer, activation):
    """A factory for a fresh copy of ``layer`` (from its config) with another activation."""

    def build():
        config = layer.get_config()
        config["activation"] = activation
        return layer.__class__.from_config(config)

    return build


class StrippedSoftmax(keras.layers.Layer):
    """The identity, standing in for a stripped final ``keras.layers.Softmax`` layer. Unlike
    ``Activation('linear')`` it accepts the ``mask`` argument that the clone passes on from
    the Softmax call."""

    def call(self, inputs, mask=None):
        return inputs


def guide_model(model, strip_final_activation=True, allow_unguided=False, rule=RULE_GUIDED):
    """Clones ``model``, copies its weights and guides every ReLU of the clone.

    Args:
        model: a Functional or Sequential ``keras.Model`` with one input and one output.
        strip_final_activation: replace a final softmax/sigmoid with linear so the logit is
            explained.
        allow_unguided: leave unsupported activations (LeakyReLU, GELU, swish, ...) unguided with
            a warning instead of raising.
        rule: the backward rule at every ReLU site: ``'guided'`` (guided backprop),
            ``'deconvnet'`` (``relu(dy)``) or ``RULE_PLAIN`` (ReLUs left as they are; the
            sites are still listed).

    Returns:
        A ``RewriteResult``; ``model`` itself is not modified.

    Raises:
        GBPError: subclassed or multi-input/output model, an unsupported activation (naming
            the layer), or no ReLU at all.
    """
    _check_supported_model(model)
    plan = _LayerPlan(model, strip_final_activation, allow_unguided, rule)
    if not plan.guided_sites:
        raise errors.GBPError(errors.NO_RELU.format(model=model.name))

    def clone_layer(layer):
        build = plan.replacements.get(id(layer))
        return build() if build is not None else copy_layer(layer)

    clone = clone_with_weights(model, clone_layer)
    return RewriteResult(
        model=clone,
        guided_sites=tuple(plan.guided_sites),
        unguided_sites=tuple(plan.unguided_sites),
        explained_space=SPACE_LOGIT if plan.stripped_activation else SPACE_OUTPUT,
        stripped_activation=plan.stripped_activation,
    )
