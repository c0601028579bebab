"""Cascading model randomization (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

Cascading randomization replaces the learned weights of a model from the top (output side)
down, one weighted layer more at each depth. TensorFlow/Keras + numpy only.

Cascade units and BatchNormalization: each weighted layer (Conv, Dense, ...) is one step of the
cascade, and a ``BatchNormalization`` layer whose input is that layer's output is randomized
together with it (it is an affine re-scaling of that layer's output, and reinitializing it on
its own would be deterministic: gamma=1, beta=0). A BatchNormalization not fed by a weighted
layer is a unit of its own. Layers outside the randomized units keep all their weights,
including BN moving statistics. Inside a randomized unit:

- ``reinitialize``: every weight, the BN moving statistics included, is redrawn from the
  layer's own initializers, i.e. set to the state of a freshly built model (moving mean 0,
  moving variance 1).
- ``permute``: every weight tensor's entries are permuted except BN moving statistics, kept
  because they are not learned by gradient descent and permuting mean and variance apart can
  blow up a channel's scale.
"""

import keras
import numpy as np

from gbp_ops.choices import MODE_REINITIALIZE, RANDOMIZATION_MODES
from gbp_ops.model_graph import assign_layer_weights, clone_with_weights, leaf_layers

# Layer types that hold data statistics rather than learned weights; never randomized.
_SKIPPED_LAYER_TYPES = ("Normalization", "Rescaling")
# BatchNormalization weights that are data statistics; ``permute`` keeps them.
_STATISTIC_WEIGHTS = ("moving_mean", "moving_variance")

UNKNOWN_MODE = "unknown randomization mode '{mode}'; expected one of: reinitialize, permute"
UNKNOWN_LAYERS = "depth_layers names layers the model does not have: {names}; weighted: {known}"
NO_WEIGHTED_LAYERS = "model '{model}' has no weighted layers to randomize"


def _producer(layer):
    """The layer whose output feeds ``layer`` (its first inbound tensor), or None."""
    nodes = getattr(layer, "_inbound_nodes", None) or []
    if not nodes or not nodes[0].input_tensors:
        return None
    history = getattr(nodes[0].input_tensors[0], "_keras_history", None)
    return getattr(history, "operation", None)


def randomization_units(model):
    """The cascade units of ``model``, top (output side) first.

    Args:
        model: a Functional or Sequential ``keras.Model``.

    Returns:
        list of tuples of layer paths (``outer/inner/layer`` for nested models); each tuple is
        one weighted layer plus the BatchNormalization layers it feeds.
    """
    heads = {}  # id(weighted layer) -> list of paths
    order = []
    for path, layer in leaf_layers(model):
        if not layer.weights or type(layer).__name__ in _SKIPPED_LAYER_TYPES:
            continue
        producer = _producer(layer)
        if isinstance(layer, keras.layers.BatchNormalization) and id(producer) in heads:
            heads[id(producer)].append(path)
            continue
        heads[id(layer)] = [path]
        order.append(heads[id(layer)])
    return [tuple(unit) for unit in reversed(order)]


def _select_units(model, depth_layers):
    units = randomization_units(model)
    if not units:
        raise ValueError(NO_WEIGHTED_LAYERS.format(model=model.name))
    if depth_layers is None:
        return units
    if isinstance(depth_layers, (int, np.integer)):
        return units[:int(depth_layers)]
    known = {path for unit in units for path in unit}
    selected = [(item,) if isinstance(item, str) else tuple(item) for item in depth_layers]
    unknown = [path for unit in selected for path in unit if path not in known]
    if unknown:
        raise ValueError(UNKNOWN_LAYERS.format(names=unknown, known=sorted(known)))
    return selected


def _initializer_for(layer, weight):
    """The layer's initializer of ``weight`` (``kernel`` -> ``kernel_initializer``), or None."""
    return getattr(layer, f"{_weight_name(weight)}_initializer", None)


def _seeded(initializer, seed):
    config = initializer.get_config()
    if "seed" in config:
        config["seed"] = seed
        return initializer.__class__.from_config(config)
    return initializer


def _reinitialized(layer, rng):
    """New values for every weight of ``layer`` from its initializers (list of numpy arrays)."""
    values = []
    for weight in layer.weights:
        original = np.asarray(weight.numpy())
        initializer = _initializer_for(layer, weight)
        seed = int(rng.integers(2**31 - 1))
        if initializer is None:
            std = float(original.std())
            fresh = np.random.default_rng(seed).normal(0.0, std, original.shape)
        else:
            fresh = np.asarray(_seeded(initializer, seed)(original.shape, dtype=weight.dtype))
        values.append(fresh.astype(original.dtype))
    return values


def _weight_name(weight):
    return weight.name.split("/")[-1].split(":")[0]


def _permuted(layer, rng):
    """``layer``'s weights with each tensor's entries permuted, BN moving statistics kept."""
    values = []
    for weight in layer.weights:
        original = np.asarray(weight.numpy())
        # By name, not weight.trainable: freezing a layer marks all its weights non-trainable.
        if _weight_name(weight) not in _STATISTIC_WEIGHTS:
            original = _shuffled(original, rng)
        values.append(original)
    return values


def _shuffled(values, rng, attempts=20):
    """``values`` with entries permuted; redrawn when the permutation happens to change nothing
    (likely for a tensor of 2 or 3 entries, such as a small output layer's bias)."""
    shuffled = values
    for _ in range(attempts):
        shuffled = rng.permutation(values.reshape(-1)).reshape(values.shape)
        if not np.array_equal(shuffled, values):
            break
    return shuffled


def _random_weights(model, units, mode, seed):
    """path -> list of new weight arrays, for every layer of ``units``; fixed per seed."""
    layers = dict(leaf_layers(model))
    draw = _reinitialized if mode == MODE_REINITIALIZE else _permuted
    weights = {}
    for unit_index, unit in enumerate(units):
        for layer_index, path in enumerate(unit):
            rng = np.random.default_rng([seed, unit_index, layer_index])
            weights[path] = draw(layers[path], rng)
    return weights


def cascade_weights(model, depth_layers=None, seed=0, mode=MODE_REINITIALIZE):
    """The random weights of each cascade depth, without building any model.

    A unit's random weights depend only on ``seed`` and its position, so depth d+1 randomizes
    the same way as depth d plus one more unit.

    Args:
        model: a Functional or Sequential ``keras.Model`` (read, never modified).
        depth_layers: None for every unit (see ``randomization_units``), an int D for the top D
            units, or a sequence of cascade steps, top first, each a layer path or a tuple of
            paths randomized together.
        seed: int seed of the random weights.
        mode: ``'reinitialize'`` (redraw from the layers' initializers) or ``'permute'``
            (permute each tensor's entries, BN moving statistics excepted).

    Returns:
        list of ``(depth, layer_names, weights)``: depth 1..D, the tuple of all layer paths
        randomized so far (top first), and dict path -> list of numpy arrays (the layer's
        ``get_weights`` order, the weights' dtypes) for every path of ``layer_names``; the other
        layers keep ``model``'s weights.

    Raises:
        ValueError: unknown mode, unknown layer names, or no weighted layer.
    """
    if mode not in RANDOMIZATION_MODES:
        raise ValueError(UNKNOWN_MODE.format(mode=mode))
    units = _select_units(model, depth_layers)
    weights = _random_weights(model, units, mode, seed)
    steps = []
    for depth in range(1, len(units) + 1):
        names = tuple(path for unit in units[:depth] for path in unit)
        steps.append((depth, names, {path: weights[path] for path in names}))
    return steps


def cascading_randomization(model, depth_layers=None, seed=0, mode=MODE_REINITIALIZE):
    """Copies of ``model`` with the top 1, 2, ..., D units randomized (cumulatively), with the
    weights of ``cascade_weights`` (same arguments).

    ``model`` is never modified: each depth is a fresh clone.

    Returns:
        An iterator of ``(depth, layer_names, randomized_model)``.

    Raises:
        ValueError (at the call, not at the first step): see ``cascade_weights``.
    """
    return _cascade(model, cascade_weights(model, depth_layers, seed, mode))


def _cascade(model, steps):
    for depth, names, weights in steps:
        clone = clone_with_weights(model)
        assign_layer_weights(clone, weights)
        yield depth, names, clone
