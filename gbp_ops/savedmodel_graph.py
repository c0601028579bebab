"""Load a TensorFlow SavedModel as a frozen GraphDef and find every nonlinearity in it.

Loading runs no Python from the SavedModel (there are no Lambda layers): it restores graph
functions and variables. Those graph ops can still do anything TF ops can (read or write files
through ``tf.io`` ops, allocate memory, run for long), so load only SavedModels you trust.
"""

import collections
import dataclasses
import logging
import os

import tensorflow as tf

from gbp_ops import errors
from gbp_ops.choices import is_savedmodel_dir
from gbp_ops.rewrite import GuidedSite

GUIDED_OP_TYPES = ("Relu", "Relu6")
# Nonlinear ops guided backprop has no rule for; on the explained path they are refused.
UNGUIDABLE_OP_TYPES = frozenset({
    "LeakyRelu", "Elu", "Selu", "Softplus", "Softsign", "Erf", "Erfc", "Tanh", "Sigmoid",
    "Softmax", "LogSoftmax", "Minimum", "Maximum", "ClipByValue", "Select", "SelectV2", "Abs",
    "Sign",
})
# Calls whose bodies were not inlined: their ops can be neither checked nor guided.
OPAQUE_OP_TYPES = frozenset({
    "PartitionedCall", "StatefulPartitionedCall", "While", "StatelessWhile", "If",
    "StatelessIf", "Case", "StatelessCase",
})
COMPARISON_OP_TYPES = frozenset({"Greater", "GreaterEqual", "Less", "LessEqual"})
STRIPPABLE_OP_TYPES = {"Softmax": "softmax", "Sigmoid": "sigmoid"}
PASS_THROUGH_OP_TYPES = frozenset({"Identity", "IdentityN"})


@dataclasses.dataclass(frozen=True)
class SavedModelSource:
    """A loaded SavedModel signature, frozen, for the explainers of ``gbp_ops.savedmodel``.

    Attributes:
        path: the SavedModel directory.
        loaded: the ``tf.saved_model.load`` object; kept referenced so the signature's
            variables stay alive.
        signature: the signature name.
        input_key: the explained input of the signature; output_key: its explained output.
        graph_def: the frozen signature (variables as constants, functions inlined).
        input_name: ``'op:0'`` of the input placeholder in ``graph_def``.
        output_name: ``'op:0'`` of the output tensor in ``graph_def``.
        input_shape: the input's ``(H, W, C)`` (entries may be None if the model is unsized).
    """

    path: str
    loaded: object
    signature: str
    input_key: str
    output_key: str
    graph_def: object
    input_name: str
    output_name: str
    input_shape: tuple

    @property
    def name(self):
        return os.path.basename(self.path.rstrip("/"))


def _pick_key(keys, wanted, role, path, signature):
    if wanted is not None:
        if wanted not in keys:
            raise errors.GBPError(errors.SAVEDMODEL_NO_KEY.format(
                path=path, signature=signature, role=role, key=wanted, keys=", ".join(keys)))
        return wanted
    if len(keys) != 1:
        raise errors.GBPError(errors.SAVEDMODEL_MANY_KEYS.format(
            path=path, signature=signature, count=len(keys), role=role, keys=", ".join(keys)))
    return keys[0]


def load_savedmodel(path, signature="serving_default", input_key=None, output_key=None):
    """Loads and freezes one signature of a SavedModel.

    Args:
        path: a local SavedModel directory.
        signature: the signature name.
        input_key, output_key: the signature's image input and explained output; needed only
            when it has several.

    Returns:
        A ``SavedModelSource``.

    Raises:
        GBPError: not a SavedModel, a load failure, an unknown signature or key, or a
            non-float input.
    """
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    if not is_savedmodel_dir(path, tf.io.gfile.exists):
        raise errors.GBPError(errors.SAVEDMODEL_NOT_A_SAVEDMODEL.format(path=path))
    try:
        loaded = tf.saved_model.load(path)
    except Exception as error:  # TF raises many types for a damaged or foreign SavedModel
        raise errors.GBPError(errors.SAVEDMODEL_LOAD_FAILED.format(
            path=path, reason=str(error).strip().splitlines()[0])) from error
    names = sorted(loaded.signatures.keys())
    if signature not in names:
        raise errors.GBPError(errors.SAVEDMODEL_NO_SIGNATURE.format(
            path=path, signature=signature, names=", ".join(names) or "(none)"))
    function = loaded.signatures[signature]
    input_specs = function.structured_input_signature[1]
    input_keys = sorted(input_specs)
    key = _pick_key(input_keys, input_key, "input", path, signature)
    output_keys = sorted(function.structured_outputs)
    out_key = _pick_key(output_keys, output_key, "output", path, signature)
    spec = input_specs[key]
    if not spec.dtype.is_floating:
        raise errors.GBPError(errors.SAVEDMODEL_INPUT_DTYPE.format(
            path=path, key=key, dtype=spec.dtype.name))
    frozen = convert_variables_to_constants_v2(function)
    # Flattening a dict follows its sorted keys, as the frozen inputs and outputs do.
    input_tensor = frozen.inputs[input_keys.index(key)]
    output_tensor = frozen.outputs[output_keys.index(out_key)]
    return SavedModelSource(
        path=path, loaded=loaded, signature=signature, input_key=key, output_key=out_key,
        graph_def=frozen.graph.as_graph_def(), input_name=input_tensor.name,
        output_name=output_tensor.name, input_shape=tuple(spec.shape[1:]),
    )


def _op_name(tensor_name):
    return tensor_name.lstrip("^").split(":")[0]


class GraphIndex:
    """The frozen graph's ops by name, with their data inputs."""

    def __init__(self, graph_def):
        self.nodes = {node.name: node for node in graph_def.node}
        self.inputs = {node.name: [_op_name(name) for name in node.input
                                   if not name.startswith("^")] for node in graph_def.node}

    def ancestors(self, op_name):
        """Every op ``op_name`` reads from, directly or not, itself included."""
        seen, stack = set(), [op_name]
        while stack:
            name = stack.pop()
            if name not in seen:
                seen.add(name)
                stack.extend(self.inputs.get(name, ()))
        return seen

    def producer(self, tensor_name):
        """The op producing a tensor, looking through Identity ops (data input 0)."""
        node = self.nodes[_op_name(tensor_name)]
        while node.op in PASS_THROUGH_OP_TYPES and self.inputs[node.name]:
            node = self.nodes[self.inputs[node.name][0]]
        return node

    def path_ops(self, input_op, output_op):
        """Names of the ops on some path from ``input_op`` to ``output_op`` (both included)."""
        consumers = collections.defaultdict(list)
        for name, inputs in self.inputs.items():
            for source in inputs:
                consumers[source].append(name)
        downstream, stack = set(), [input_op]
        while stack:
            name = stack.pop()
            if name not in downstream:
                downstream.add(name)
                stack.extend(consumers[name])
        return downstream & self.ancestors(output_op)

    def topological(self, names):
        """``names`` in the GraphDef's order (for stable reports)."""
        order = {name: index for index, name in enumerate(self.nodes)}
        return sorted(names, key=order.__getitem__)


@dataclasses.dataclass(frozen=True)
class GraphPlan:
    """What the explainer does to the frozen graph.

    Attributes:
        logit_name: the tensor that is explained (the output, or the input of a stripped
            final softmax/sigmoid).
        stripped_activation: ``'softmax'``/``'sigmoid'`` or None.
        guided_sites: a ``GuidedSite(op name, op type)`` per Relu/Relu6 op.
        unguided_sites: a ``GuidedSite(op name, description)`` per unguidable op (only with
            ``allow_unguided``).
    """

    logit_name: str
    stripped_activation: str | None
    guided_sites: tuple
    unguided_sites: tuple


def _describe(index, node):
    """The op type, with the known pattern it belongs to when there is one."""
    if node.op in ("Select", "SelectV2"):
        condition = index.nodes.get(index.inputs[node.name][0])
        if condition is not None and condition.op in COMPARISON_OP_TYPES:
            return f"{node.op} fed by {condition.op}: a thresholded ReLU"
    if node.op in OPAQUE_OP_TYPES:
        return f"{node.op}: a function call that was not inlined"
    return node.op


def _format_unguided(sites):
    by_type = collections.defaultdict(list)
    for site in sites:
        by_type[site.form].append(site.layer)
    parts = []
    for form, names in sorted(by_type.items()):
        shown = ", ".join(names[:5]) + (f", ... ({len(names) - 5} more)" if len(names) > 5 else "")
        parts.append(f"{form} x{len(names)} [{shown}]")
    return "; ".join(parts)


def plan_graph(source, strip_final_activation=True, allow_unguided=False, output_name=None):
    """Finds the explained tensor and classifies every op between the input and it.

    Args:
        source: a ``SavedModelSource``.
        strip_final_activation: explain the input of a final Softmax/Sigmoid op.
        allow_unguided: log unguidable ops instead of raising.
        output_name: explain this tensor (``'op'`` or ``'op:0'``) instead of the output;
            nothing is stripped then.

    Returns:
        A ``GraphPlan``.

    Raises:
        GBPError: an unknown op name, other inputs feeding the output, an unguidable op
            (naming each type and op), or no Relu/Relu6 at all.
    """
    index = GraphIndex(source.graph_def)
    input_op = _op_name(source.input_name)
    stripped, exempt = None, None
    if output_name is not None:
        if _op_name(output_name) not in index.nodes:
            raise errors.GBPError(errors.SAVEDMODEL_UNKNOWN_OP.format(
                path=source.path, name=output_name))
        logit_name = output_name if ":" in output_name else f"{output_name}:0"
    else:
        final = index.producer(source.output_name)
        logit_name = source.output_name
        if final.op in STRIPPABLE_OP_TYPES and strip_final_activation:
            stripped = STRIPPABLE_OP_TYPES[final.op]
            logit_name = final.input[0] if ":" in final.input[0] else f"{final.input[0]}:0"
        elif final.op in STRIPPABLE_OP_TYPES:
            exempt = final.name  # the explained output itself, kept on request
    logit_op = _op_name(logit_name)
    upstream = index.ancestors(logit_op)
    if input_op not in upstream:
        raise errors.GBPError(errors.SAVEDMODEL_UNKNOWN_OP.format(
            path=source.path, name=logit_name))
    others = sorted(name for name in upstream
                    if index.nodes[name].op == "Placeholder" and name != input_op)
    if others:
        raise errors.GBPError(errors.SAVEDMODEL_OTHER_INPUTS.format(
            path=source.path, names=", ".join(others), key=source.input_key))
    path_ops = index.topological(index.path_ops(input_op, logit_op) - {input_op, exempt})
    guided, unguided = [], []
    for name in path_ops:
        node = index.nodes[name]
        if node.op in GUIDED_OP_TYPES:
            guided.append(GuidedSite(name, node.op))
        elif node.op in UNGUIDABLE_OP_TYPES or node.op in OPAQUE_OP_TYPES:
            unguided.append(GuidedSite(name, _describe(index, node)))
    if unguided:
        message = errors.SAVEDMODEL_UNGUIDABLE.format(path=source.path,
                                                      ops=_format_unguided(unguided))
        if not allow_unguided:
            raise errors.GBPError(message)
        logging.warning("gbp_ops: leaving ops unguided as requested: %s", message)
    if not guided:
        raise errors.GBPError(errors.SAVEDMODEL_NO_RELU.format(path=source.path))
    return GraphPlan(logit_name, stripped, tuple(guided), tuple(unguided))

