"""Clone a Keras model and guide every ReLU in the clone; the caller's model is never touched.

Guided forms: ``Activation('relu'|'relu6')``, ``activation='relu'|'relu6'`` (or ``tf.nn.relu``)
on any layer, ``layers.ReLU`` with any ``max_value``/``threshold`` and ``negative_slope == 0``,
and all of these inside nested models.

Other activations (swish, GELU, LeakyReLU, ...) are refused by default, all named in one
message; with ``nonlinearity_rule='gate'`` the ones ``gbp_ops.gated_activation`` lists get the
gate rule instead, in the same forms (``activation=``, ``Activation(...)``, dedicated layers,
nested models), and are reported apart from the guided ReLUs.
"""

import dataclasses
import logging

import keras

from gbp_ops import errors
from gbp_ops.choices import NONLINEARITY_GATE, NONLINEARITY_REFUSE, NONLINEARITY_RULES
from gbp_ops.gated_activation import (
    GATED_ACTIVATIONS,
    GATED_LAYER_TYPES,
    GATED_SQUASHING_ACTIVATIONS,
    GatedActivationLayer,
    make_gated_activation,
)
from gbp_ops.guided_relu import RELU_FACTORIES, RULE_GUIDED, GuidedReLU
from gbp_ops.model_graph import clone_with_weights, copy_layer, leaf_layers

# Activations with a kink that guided backprop has no rule for; they raise unless allowed.
UNSUPPORTED_ACTIVATIONS = frozenset(
    {"leaky_relu", "elu", "selu", "gelu", "gelu_approximate", "silu", "swish", "hard_silu",
     "hard_swish", "mish", "celu", "softplus", "glu", "relu_with_negative_slope"}
)
# Final activations that are stripped so the pre-activation score (the logit) is explained.
STRIPPABLE_FINAL_ACTIVATIONS = frozenset({"softmax", "sigmoid"})
# How many layers of one activation the refusal names before it counts the rest.
NAMED_LAYERS_PER_ACTIVATION = 5

SPACE_LOGIT = "logit"
SPACE_OUTPUT = "output"
# ``guide_model(rule=RULE_PLAIN)`` leaves every ReLU as it is (plain gradients), e.g. for the
# Grad-CAM weights; only the final activation is stripped.
RULE_PLAIN = "plain"


@dataclasses.dataclass(frozen=True)
class GuidedSite:
    """One ReLU the rewrite guided (or activation it gated): its layer path
    (``outer/inner/layer``) and its form."""

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
        gated_sites: every other activation that got the gate rule (only with
            ``nonlinearity_rule='gate'``).
    """

    model: keras.Model
    guided_sites: tuple
    unguided_sites: tuple
    explained_space: str
    stripped_activation: str | None
    gated_sites: tuple = ()


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


def _display_name(name):
    return {"silu": "silu (swish)", "hard_silu": "hard_silu (hard_swish)"}.get(name, name)


def _gateable(name):
    return (name in GATED_ACTIVATIONS or name in GATED_SQUASHING_ACTIVATIONS
            or name in GATED_LAYER_TYPES)


def unsupported_message(model_name, sites, nonlinearity_rule):
    """The one-line refusal: every unsupported activation with its layers, grouped by
    activation in order of first appearance, and what the user can do.

    Args:
        model_name: the model's name.
        sites: ``GuidedSite(layer path, activation or layer type)`` of every refused site.
        nonlinearity_rule: the rule in force (the remedy offers the gate rule only when it
            is not already on and would cover every site).
    """
    by_name = {}
    for site in sites:
        by_name.setdefault(site.form, []).append(site.layer)
    groups = []
    for name, layers in by_name.items():
        named = ", ".join(layers[:NAMED_LAYERS_PER_ACTIVATION])
        more = len(layers) - NAMED_LAYERS_PER_ACTIVATION
        plural = "s" if len(layers) > 1 else ""
        groups.append(f"{_display_name(name)} at {len(layers)} layer{plural}: {named}"
                      + (f" and {more} more" if more > 0 else ""))
    not_gateable = [name for name in by_name
                    if not _gateable(name) or nonlinearity_rule == NONLINEARITY_GATE]
    if not not_gateable:
        remedy = errors.GATE_REMEDY
    else:
        also = (errors.NOT_GATEABLE_ALSO if len(not_gateable) < len(by_name) else "")
        remedy = errors.NOT_GATEABLE_REMEDY.format(names=", ".join(not_gateable), also=also)
    return errors.UNGUIDABLE_ACTIVATIONS.format(model=model_name, groups="; ".join(groups),
                                                 remedy=remedy)


class _LayerPlan:
    """Decides, per layer of the original model, how the clone's copy is built."""

    def __init__(self, model, strip_final_activation, rule=RULE_GUIDED,
                 nonlinearity_rule=NONLINEARITY_REFUSE):
        self.rule = rule
        self.gate = nonlinearity_rule == NONLINEARITY_GATE
        self.replacements = {}
        self.guided_sites = []
        self.gated_sites = []
        self.refused_sites = []
        self.stripped_activation = None
        final_layer = _output_layer(model)
        for path, layer in leaf_layers(model):
            final = layer is final_layer
            self._plan_layer(path, layer, strip_final_activation and final, final)

    def _other_activation(self, path, layer, name, form, replacement):
        """An activation that is not a ReLU: gated (``replacement`` builds the clone's layer)
        when the gate rule is on and covers it, else refused."""
        if not (self.gate and _gateable(name)):
            self.refused_sites.append(GuidedSite(path, name))
            return
        self.gated_sites.append(GuidedSite(path, form))
        if self.rule != RULE_PLAIN:
            self.replacements[id(layer)] = replacement

    def _plan_layer(self, path, layer, strip, final):
        kind = type(layer).__name__
        if kind in GATED_LAYER_TYPES:  # unsupported by GBP: refused, or gated on request
            self._other_activation(path, layer, kind, kind, lambda: GatedActivationLayer(layer))
            return
        if isinstance(layer, keras.layers.ReLU):
            self._plan_relu_layer(path, layer)
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
        elif name in UNSUPPORTED_ACTIVATIONS or (
                self.gate and name in GATED_SQUASHING_ACTIVATIONS and not final):
            self._other_activation(
                path, layer, name, f"{kind}(activation={name})",
                _with_activation(layer, make_gated_activation(layer.activation)))

    def _plan_relu_layer(self, path, layer):
        if float(layer.negative_slope) != 0.0:
            self._other_activation(
                path, layer, "relu_with_negative_slope",
                f"ReLU(negative_slope={float(layer.negative_slope)})",
                lambda: GatedActivationLayer(layer))
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


def guide_model(model, strip_final_activation=True, allow_unguided=False, rule=RULE_GUIDED,
                nonlinearity_rule=NONLINEARITY_REFUSE):
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
        nonlinearity_rule: ``'refuse'`` (default): activations other than ReLU raise (unless
            ``allow_unguided``); ``'gate'``: those of ``gbp_ops.gated_activation`` get the gate
            rule (with ``rule='guided'``; with ``RULE_PLAIN`` they are listed and left as
            they are).

    Returns:
        A ``RewriteResult``; ``model`` itself is not modified.

    Raises:
        GBPError: subclassed or multi-input/output model, unsupported activations (all of
            them named, grouped by activation), the gate rule with the DeconvNet rule, or
            neither a ReLU nor a gated activation at all.
    """
    if nonlinearity_rule not in NONLINEARITY_RULES:
        raise errors.GBPError(errors.UNKNOWN_NONLINEARITY_RULE.format(
            rule=nonlinearity_rule, rules=", ".join(NONLINEARITY_RULES)))
    if nonlinearity_rule == NONLINEARITY_GATE and rule not in (RULE_GUIDED, RULE_PLAIN):
        raise errors.GBPError(errors.GATE_NEEDS_GUIDED.format(rule=rule))
    _check_supported_model(model)
    plan = _LayerPlan(model, strip_final_activation, rule, nonlinearity_rule)
    if plan.refused_sites and not allow_unguided:
        raise errors.GBPError(unsupported_message(model.name, plan.refused_sites,
                                                  nonlinearity_rule))
    if plan.refused_sites:
        logging.warning("gbp_ops: leaving these activations unguided as requested: %s",
                        "; ".join(f"{site.layer} ({site.form})" for site in plan.refused_sites))
    if not plan.guided_sites and not plan.gated_sites:
        raise errors.GBPError(errors.NO_RELU.format(model=model.name))

    def clone_layer(layer):
        build = plan.replacements.get(id(layer))
        return build() if build is not None else copy_layer(layer)

    clone = clone_with_weights(model, clone_layer)
    return RewriteResult(
        model=clone,
        guided_sites=tuple(plan.guided_sites),
        unguided_sites=tuple(plan.refused_sites),
        explained_space=SPACE_LOGIT if plan.stripped_activation else SPACE_OUTPUT,
        stripped_activation=plan.stripped_activation,
        gated_sites=tuple(plan.gated_sites),
    )
