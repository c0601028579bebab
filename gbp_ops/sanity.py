"""Model-randomization sanity check for saliency maps (Adebayo et al. 2018, "Sanity Checks for
Saliency Maps").

Cascading randomization replaces the learned weights of a model from the top (output side)
down, one weighted layer more at each depth, and compares the guided-backprop maps of each
randomized model with the maps of the trained model. Maps that barely change when the weights
are destroyed cannot be telling us much about what the model learned. TensorFlow + numpy only.

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
import tensorflow as tf

from gbp_ops.explainer import GuidedBackprop
from gbp_ops.maps import reduce_channels

MODE_REINITIALIZE = "reinitialize"
MODE_PERMUTE = "permute"
MODES = (MODE_REINITIALIZE, MODE_PERMUTE)

# SSIM window (Wang et al. 2004, as tf.image.ssim): 11x11 Gaussian, sigma 1.5, valid padding.
SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5

# The verdict reads the mean Spearman correlation after the top TOP_DEPTH units are
# randomized; at or above SIMILAR_SPEARMAN the maps are called "changed little".
TOP_DEPTH = 3
SIMILAR_SPEARMAN = 0.5
PARTLY_SIMILAR_SPEARMAN = 0.3

# Layer types that hold data statistics rather than learned weights; never randomized.
_SKIPPED_LAYER_TYPES = ("Normalization", "Rescaling")
# BatchNormalization weights that are data statistics; ``permute`` keeps them.
_STATISTIC_WEIGHTS = ("moving_mean", "moving_variance")

UNKNOWN_MODE = "unknown randomization mode '{mode}'; expected one of: reinitialize, permute"
UNKNOWN_LAYERS = "depth_layers names layers the model does not have: {names}; weighted: {known}"
NO_WEIGHTED_LAYERS = "model '{model}' has no weighted layers to randomize"


def _leaf_layers(model, prefix=""):
    """Yields ``(path, layer)`` for every non-model layer in graph order, nested models inlined."""
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer, prefix=f"{path}/")
        else:
            yield path, layer


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
    for path, layer in _leaf_layers(model):
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
    layers = dict(_leaf_layers(model))
    draw = _reinitialized if mode == MODE_REINITIALIZE else _permuted
    weights = {}
    for unit_index, unit in enumerate(units):
        for layer_index, path in enumerate(unit):
            rng = np.random.default_rng([seed, unit_index, layer_index])
            weights[path] = draw(layers[path], rng)
    return weights


def clone_with_weights(model):
    """A clone of ``model`` (nested models included) with a copy of its weights."""
    clone = keras.models.clone_model(
        model, clone_function=lambda layer: layer.__class__.from_config(layer.get_config()),
        recursive=True,
    )
    clone.set_weights(model.get_weights())
    return clone


def cascading_randomization(model, depth_layers=None, seed=0, mode=MODE_REINITIALIZE):
    """Copies of ``model`` with the top 1, 2, ..., D units randomized (cumulatively).

    ``model`` is never modified: each depth is a fresh clone. A unit's random weights depend
    only on ``seed`` and its position, so depth d+1 randomizes the same way as depth d plus one
    more unit.

    Args:
        model: a Functional or Sequential ``keras.Model``.
        depth_layers: None for every unit (see ``randomization_units``), an int D for the top D
            units, or a sequence of cascade steps, top first, each a layer path or a tuple of
            paths randomized together.
        seed: int seed of the random weights.
        mode: ``'reinitialize'`` (redraw from the layers' initializers) or ``'permute'``
            (permute each tensor's entries, BN moving statistics excepted).

    Returns:
        An iterator of ``(depth, layer_names, randomized_model)``: depth 1..D, the tuple of all
        layer paths randomized so far (top first), and the randomized clone.

    Raises:
        ValueError (at the call, not at the first step): unknown mode, unknown layer names, or
        no weighted layer.
    """
    if mode not in MODES:
        raise ValueError(UNKNOWN_MODE.format(mode=mode))
    units = _select_units(model, depth_layers)
    return _cascade(model, units, _random_weights(model, units, mode, seed))


def _cascade(model, units, weights):
    for depth in range(1, len(units) + 1):
        names = tuple(path for unit in units[:depth] for path in unit)
        clone = clone_with_weights(model)
        clone_layers = dict(_leaf_layers(clone))
        for path in names:
            clone_layers[path].set_weights(weights[path])
        yield depth, names, clone


def _average_ranks(values):
    """float64 ranks 1..n of a 1-D array, ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    ordered = values[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    dense = np.cumsum(starts)[inverse]
    bounds = np.r_[np.flatnonzero(starts), len(starts)]
    return 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


def spearman_rank_correlation(a, b):
    """Spearman rank correlation of ``|a|`` and ``|b|``, per example.

    Args:
        a: float ``(N, H, W)`` maps.
        b: float ``(N, H, W)`` maps.

    Returns:
        float64 ``(N,)`` in [-1, 1]; NaN where either map is constant (no ranking).
    """
    a = np.abs(np.asarray(a, np.float64)).reshape(len(a), -1)
    b = np.abs(np.asarray(b, np.float64)).reshape(len(b), -1)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape} vs {b.shape}")
    result = np.full(len(a), np.nan)
    for index, (x, y) in enumerate(zip(a, b)):
        rx = _average_ranks(x) - (len(x) + 1) / 2
        ry = _average_ranks(y) - (len(y) + 1) / 2
        denominator = np.sqrt((rx * rx).sum() * (ry * ry).sum())
        if denominator > 0:
            result[index] = np.clip((rx * ry).sum() / denominator, -1.0, 1.0)
    return result


def _unit_range(maps):
    """``|maps|`` divided by each map's max, float32 ``(N, H, W, 1)``; zero maps stay zero."""
    mass = np.abs(np.asarray(maps, np.float32))
    peak = mass.reshape(len(mass), -1).max(axis=1) if mass.size else np.zeros(len(mass))
    return (mass / np.where(peak > 0, peak, 1.0)[:, None, None])[..., None]


def ssim(a, b):
    """Structural similarity of ``|a|`` and ``|b|``, each scaled by its max into [0, 1].

    Uses ``tf.image.ssim`` with max_val=1 and its standard window: an 11x11 Gaussian with
    sigma 1.5 (shrunk to the map side for maps smaller than 11), K1=0.01, K2=0.03.

    Args:
        a: float ``(N, H, W)`` maps.
        b: float ``(N, H, W)`` maps.

    Returns:
        float64 ``(N,)``; 1 for identical maps.
    """
    a, b = _unit_range(a), _unit_range(b)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape[:-1]} vs {b.shape[:-1]}")
    filter_size = min(SSIM_FILTER_SIZE, a.shape[1], a.shape[2])
    values = tf.image.ssim(tf.constant(a), tf.constant(b), max_val=1.0,
                           filter_size=filter_size, filter_sigma=SSIM_FILTER_SIGMA)
    return np.asarray(values, np.float64)


def run_sanity_check(
    model,
    images,
    targets=None,
    batch_size=32,
    mode=MODE_REINITIALIZE,
    seed=0,
    reduction="max_abs",
    explainer_kwargs=None,
    depth_layers=None,
):
    """Compares the trained model's GBP maps with those of each cascade depth.

    Args:
        model: the trained ``keras.Model`` (not modified).
        images: float ``(N, H, W, C)`` preprocessed for the model.
        targets: None to explain the trained model's predicted classes, or int ``(N,)``; the
            same targets are explained at every depth.
        batch_size: the explainer's batch size.
        mode: ``'reinitialize'`` or ``'permute'`` (see ``cascading_randomization``).
        seed: seed of the random weights.
        reduction: channel reduction of the maps (see ``gbp_ops.maps.reduce_channels``).
        explainer_kwargs: extra keyword arguments for ``GuidedBackprop``.
        depth_layers: passed to ``cascading_randomization``.

    Returns:
        list of dicts, one per (depth, example): ``depth`` (int), ``randomized_layers``
        (comma-joined paths), ``example_index`` (int), ``spearman`` and ``ssim`` (float).
    """
    kwargs = dict(explainer_kwargs or {})
    trained = GuidedBackprop(model, batch_size=batch_size, **kwargs)
    explanation = trained.explain_with_outputs(images, targets)
    targets = explanation.targets
    reference = reduce_channels(explanation.maps, reduction)
    rows = []
    for depth, names, randomized in cascading_randomization(model, depth_layers, seed, mode):
        explainer = GuidedBackprop(randomized, batch_size=batch_size, **kwargs)
        maps = reduce_channels(explainer.explain(images, targets), reduction)
        spearman = spearman_rank_correlation(reference, maps)
        similarity = ssim(reference, maps)
        joined = ",".join(names)
        rows += [
            {"depth": depth, "randomized_layers": joined, "example_index": index,
             "spearman": float(spearman[index]), "ssim": float(similarity[index])}
            for index in range(len(reference))
        ]
    return rows


def summary(rows):
    """Per-depth mean and std (ddof=1) of the rows of ``run_sanity_check``; NaNs skipped.

    Returns:
        dict depth -> dict with ``randomized_layers`` (str), ``last_layer`` (the unit's top
        path added at that depth), ``count``, ``spearman_undefined`` (examples whose map is
        constant, typically all zero because the randomized model's ReLUs are all off for
        them; left out of the Spearman mean), ``spearman_mean``, ``spearman_std``,
        ``ssim_mean``, ``ssim_std``; ordered by depth.
    """
    by_depth = {}
    for row in rows:
        by_depth.setdefault(row["depth"], []).append(row)
    result = {}
    previous = []
    for depth in sorted(by_depth):
        group = by_depth[depth]
        names = group[0]["randomized_layers"].split(",")
        entry = {"randomized_layers": group[0]["randomized_layers"],
                 "last_layer": next((n for n in names if n not in previous), names[-1]),
                 "count": len(group),
                 "spearman_undefined": sum(bool(np.isnan(row["spearman"])) for row in group)}
        for key in ("spearman", "ssim"):
            values = np.array([row[key] for row in group], np.float64)
            values = values[~np.isnan(values)]
            entry[f"{key}_mean"] = float(values.mean()) if len(values) else float("nan")
            entry[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
        result[depth] = entry
        previous = names
    return result


def verdict(summary_by_depth):
    """A plain-language reading of ``summary(rows)``.

    The reading uses the mean Spearman correlation once the top ``TOP_DEPTH`` units (or all,
    if fewer) are randomized: at least ``SIMILAR_SPEARMAN`` means the maps changed little,
    below ``PARTLY_SIMILAR_SPEARMAN`` that they changed substantially, in between partly.

    Returns:
        str; empty summary gives a sentence saying there is nothing to judge.
    """
    if not summary_by_depth:
        return "No sanity-check results to judge."
    depths = sorted(summary_by_depth)
    top = max(d for d in depths if d <= max(TOP_DEPTH, depths[0]))
    deepest = depths[-1]
    entry = summary_by_depth[top]
    value = entry["spearman_mean"]
    at_top = f"mean Spearman {value:.2f} at depth {top}, down to {entry['last_layer']}"
    tail = ""
    if entry.get("spearman_undefined"):
        tail += (f" {entry['spearman_undefined']} of {entry['count']} maps at depth {top} were "
                 "constant (usually all zero) and are left out of that mean.")
    if deepest != top:
        tail += (f" With all {deepest} units randomized the mean Spearman is "
                f"{summary_by_depth[deepest]['spearman_mean']:.2f}.")
    if np.isnan(value):
        return f"The maps could not be compared at depth {top} (constant maps).{tail}"
    if value >= SIMILAR_SPEARMAN:
        return (f"Maps changed little when the top layers were randomized ({at_top}): like the "
                "GBP weakness reported by Adebayo et al. 2018, they may reflect image structure "
                f"more than what the model learned.{tail}")
    if value >= PARTLY_SIMILAR_SPEARMAN:
        return (f"Maps changed partly when the top layers were randomized ({at_top}): they "
                "depend on the learned weights, but much of their structure survives "
                f"randomization (compare Adebayo et al. 2018).{tail}")
    return (f"Maps changed substantially when the top layers were randomized ({at_top}): they "
            f"depend on what the model learned, as a saliency method should.{tail}")
