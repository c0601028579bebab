"""The model-randomization sanity check for saliency maps (Adebayo et al. 2018, "Sanity Checks
for Saliency Maps"): compare the trained model's maps with those of each cascade depth
(``gbp_ops.randomization``), summarise per depth, and read the result in plain words.

Maps that barely change when the weights are destroyed cannot be telling us much about what
the model learned. The rows of the class-sensitivity check (``gbp_ops.class_sensitivity``,
``check == 'class_sensitivity'``) travel with these rows; ``summary`` leaves them out,
``class_summary`` reads them, and ``verdict`` reads both checks.
"""

import numpy as np

from gbp_ops.choices import (
    CHECK_CLASS_SENSITIVITY,
    CHECK_RANDOMIZATION,
    MODE_REINITIALIZE,
    NONLINEARITY_GATE,
)
from gbp_ops.explainer import GuidedBackprop
from gbp_ops.maps import reduced_maps
from gbp_ops.model_graph import leaf_layers
from gbp_ops.randomization import cascade_weights
from gbp_ops.similarity import spearman_rank_correlation, ssim

# The verdict reads the mean Spearman correlation after the top TOP_DEPTH units are
# randomized; at or above SIMILAR_SPEARMAN the maps are called "changed little".
TOP_DEPTH = 3
SIMILAR_SPEARMAN = 0.5
PARTLY_SIMILAR_SPEARMAN = 0.3


def run_sanity_check(
    model,
    images,
    targets=None,
    explainer_for=None,
    mode=MODE_REINITIALIZE,
    seed=0,
    reduction="max_abs",
    depth_layers=None,
    seeds=None,
):
    """Compares the trained model's maps with those of each cascade depth.

    Args:
        model: the trained ``keras.Model`` (not modified).
        images: float ``(N, H, W, C)`` preprocessed for the model.
        targets: None to explain the trained model's predicted classes, or int ``(N,)``
            (``-1`` entries: predicted); the trained model's resolved targets are explained
            at every depth.
        explainer_for: ``keras.Model -> explainer`` (``GuidedBackprop`` interface), the same
            mapping the audit uses, so the check tests the explanation the audit writes;
            defaults to ``GuidedBackprop(model, batch_size=32)``. Called once, on ``model``:
            every depth assigns its random weights to that explainer
            (``assign_layer_weights``), which gets the trained weights back at the end.
        mode: ``'reinitialize'`` or ``'permute'`` (see ``randomization.cascade_weights``).
        seed: seed of the random weights.
        reduction: channel reduction for explainers that return ``(N, H, W, C)`` maps (see
            ``gbp_ops.maps.reduce_channels``); ``(N, H, W)`` maps are used as they are.
        depth_layers: passed to ``randomization.cascade_weights``.
        seeds: None or int64 ``(N,)`` SmoothGrad seeds (see ``GuidedBackprop``), the same at
            every depth so that only the weights differ.

    Returns:
        list of dicts, one per (depth, example): ``check`` (``'randomization'``), ``depth``
        (int), ``randomized_layers`` (comma-joined paths), ``example_index`` (int),
        ``spearman`` and ``ssim`` (float).
    """
    explainer_for = explainer_for or (lambda candidate: GuidedBackprop(candidate, batch_size=32))
    steps = cascade_weights(model, depth_layers, seed, mode)
    explainer = explainer_for(model)
    explanation = explainer.explain_with_outputs(images, targets, seeds)
    reference = reduced_maps(explanation.maps, reduction)
    rows = []
    for depth, names, maps in randomized_maps(explainer, model, steps, images,
                                              explanation.targets, seeds):
        maps = reduced_maps(maps, reduction)
        spearman = spearman_rank_correlation(reference, maps)
        similarity = ssim(reference, maps)
        joined = ",".join(names)
        rows += [
            {"check": CHECK_RANDOMIZATION, "depth": depth, "randomized_layers": joined,
             "example_index": index,
             "spearman": float(spearman[index]), "ssim": float(similarity[index])}
            for index in range(len(reference))
        ]
    return rows


def randomized_maps(explainer, model, steps, images, targets, seeds=None):
    """The explainer's maps at each cascade depth, from its one traced step: each depth
    assigns its random weights to the explainer's variables (``assign_layer_weights``), and
    the trained weights are assigned back at the end (also on an error).

    Args:
        explainer: an explainer built on ``model`` (``GuidedBackprop`` interface).
        model: the trained ``keras.Model`` (read, not modified).
        steps: ``randomization.cascade_weights(model, ...)``.
        images, targets, seeds: as for ``explainer.explain``.

    Yields:
        ``(depth, layer_names, maps)``, maps as ``explainer.explain`` returns them.
    """
    layers = dict(leaf_layers(model))
    trained = {path: layers[path].get_weights() for _, names, _ in steps[-1:] for path in names}
    try:
        for depth, names, weights in steps:
            explainer.assign_layer_weights(weights)
            yield depth, names, explainer.explain(images, targets, seeds)
    finally:
        if trained:
            explainer.assign_layer_weights(trained)


def _check_of(row):
    """A row's check; rows written before the class-sensitivity check have none."""
    check = row.get("check")
    return check if isinstance(check, str) and check else CHECK_RANDOMIZATION


def _similarity_stats(group):
    """``count``, ``spearman_undefined`` and mean/std (ddof=1, NaNs skipped) of a group's
    Spearman and SSIM."""
    entry = {"count": len(group),
             "spearman_undefined": sum(bool(np.isnan(row["spearman"])) for row in group)}
    for key in ("spearman", "ssim"):
        values = np.array([row[key] for row in group], np.float64)
        values = values[~np.isnan(values)]
        entry[f"{key}_mean"] = float(values.mean()) if len(values) else float("nan")
        entry[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return entry


def class_summary(rows):
    """The class-sensitivity rows' ``_similarity_stats`` (``count``, ``spearman_undefined``,
    ``spearman_mean``, ``spearman_std``, ``ssim_mean``, ``ssim_std``); {} without such rows."""
    group = [row for row in rows if _check_of(row) == CHECK_CLASS_SENSITIVITY]
    return _similarity_stats(group) if group else {}


def summary(rows):
    """Per-depth mean and std (ddof=1) of the rows of ``run_sanity_check``; NaNs skipped;
    class-sensitivity rows are left out.

    Returns:
        dict depth -> dict with ``randomized_layers`` (str), ``last_layer`` (the unit's top
        path added at that depth), ``count``, ``spearman_undefined`` (examples whose map is
        constant, typically all zero because the randomized model's ReLUs are all off for
        them; left out of the Spearman mean), ``spearman_mean``, ``spearman_std``,
        ``ssim_mean``, ``ssim_std``; ordered by depth.
    """
    by_depth = {}
    for row in rows:
        if _check_of(row) == CHECK_RANDOMIZATION:
            by_depth.setdefault(row["depth"], []).append(row)
    result = {}
    previous = []
    for depth in sorted(by_depth):
        group = by_depth[depth]
        names = group[0]["randomized_layers"].split(",")
        result[depth] = {"randomized_layers": group[0]["randomized_layers"],
                         "last_layer": next((n for n in names if n not in previous), names[-1]),
                         **_similarity_stats(group)}
        previous = names
    return result


def verdict(summary_by_depth, class_entry=None, method=None):
    """A plain-language reading of ``summary(rows)`` and, when given, ``class_summary(rows)``.

    The randomization reading uses the mean Spearman correlation once the top ``TOP_DEPTH``
    units (or all, if fewer) are randomized: at least ``SIMILAR_SPEARMAN`` means the maps
    changed little, below ``PARTLY_SIMILAR_SPEARMAN`` that they changed substantially, in
    between partly. The class-sensitivity reading uses the same bands on the mean Spearman
    between the explained class's map and another class's map.

    Args:
        summary_by_depth: ``summary(rows)``.
        class_entry: ``class_summary(rows)`` or None/{} (no class-sensitivity check).
        method: the method's name, e.g. ``'guided_gradcam'``, named first; None leaves it out.

    Returns:
        str; no results at all give a sentence saying there is nothing to judge.
    """
    if not summary_by_depth and not class_entry:
        return "No sanity-check results to judge."
    parts = [f"Method: {method}."] if method else []
    if summary_by_depth:
        parts.append(_randomization_verdict(summary_by_depth))
    if class_entry:
        parts.append(_class_verdict(class_entry))
    return " ".join(parts)


def _class_verdict(entry):
    value = entry["spearman_mean"]
    found = band(value)
    if found == BAND_UNDEFINED:
        return "The class-sensitivity check could not compare the maps (constant maps)."
    measured = (f"the map of a randomly drawn other class has mean Spearman {value:.2f} (SSIM "
                f"{entry['ssim_mean']:.2f}) with the explained class's map, over "
                f"{entry['count'] - entry['spearman_undefined']} examples")
    if found == BAND_SIMILAR:
        return (f"Maps barely depend on the class explained: {measured}, so per-class "
                "comparisons with this method can mislead (Nie et al. 2018 explain why "
                "guided backprop behaves so).")
    if found == BAND_PARTLY_SIMILAR:
        return (f"Maps depend partly on the class explained: {measured}; read per-class "
                "differences with care.")
    return f"Maps are class-specific: {measured}."


def method_description(method, settings=None):
    """The method in words, e.g. ``'guided_gradcam (Grad-CAM layer relu6) with SmoothGrad (16
    noisy copies, sigma 0.15 of the input range)'``; the gate rule
    (``nonlinearity_rule='gate'``) is named after the Grad-CAM layer.

    Args:
        method: the method's name.
        settings: the manifest's ``method_settings`` (``method_fields()`` without ``method``).
    """
    settings = settings or {}
    text = method
    if settings.get("gradcam_layer"):
        text += f" (Grad-CAM layer {settings['gradcam_layer']})"
    if settings.get("nonlinearity_rule") == NONLINEARITY_GATE:
        text += " with the gate rule at activations other than ReLU"
    if settings.get("smoothgrad_samples"):
        text += (f" with SmoothGrad ({settings['smoothgrad_samples']} noisy copies, sigma "
                 f"{settings.get('smoothgrad_sigma', 0):.2f} of the input range)")
    return text


def sanity_fields(rows, method=None):
    """The manifest's ``sanity`` entry: ``verdict``, ``by_depth`` and ``class_sensitivity``
    (``class_summary``; {} without that check); ``method`` as in ``verdict``."""
    by_depth = summary(rows)
    class_entry = class_summary(rows)
    return {"verdict": verdict(by_depth, class_entry, method), "by_depth": by_depth,
            "class_sensitivity": class_entry}


def _top_depth(depths):
    """The depth the randomization reading uses: ``TOP_DEPTH``, or the nearest below (the
    shallowest when every depth is deeper)."""
    depths = sorted(depths)
    return max(d for d in depths if d <= max(TOP_DEPTH, depths[0]))


def _randomization_verdict(summary_by_depth):
    depths = sorted(summary_by_depth)
    top = _top_depth(depths)
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
    found = band(value)
    if found == BAND_UNDEFINED:
        return f"The maps could not be compared at depth {top} (constant maps).{tail}"
    if found == BAND_SIMILAR:
        return (f"Maps changed little when the top layers were randomized ({at_top}): like the "
                "GBP weakness reported by Adebayo et al. 2018, they may reflect image structure "
                f"more than what the model learned.{tail}")
    if found == BAND_PARTLY_SIMILAR:
        return (f"Maps changed partly when the top layers were randomized ({at_top}): they "
                "depend on the learned weights, but much of their structure survives "
                f"randomization (compare Adebayo et al. 2018).{tail}")
    return (f"Maps changed substantially when the top layers were randomized ({at_top}): they "
            f"depend on what the model learned, as a saliency method should.{tail}")


# The bands of a mean Spearman between two maps, for both checks (``verdict`` words them).
BAND_SIMILAR = "similar"  # >= SIMILAR_SPEARMAN: the check fails
BAND_PARTLY_SIMILAR = "partly_similar"  # >= PARTLY_SIMILAR_SPEARMAN
BAND_DIFFERENT = "different"  # below: the check passes
BAND_UNDEFINED = "undefined"  # no defined Spearman (constant maps)
OUTCOMES = {BAND_SIMILAR: "fail", BAND_PARTLY_SIMILAR: "warn", BAND_UNDEFINED: "warn",
            BAND_DIFFERENT: "pass"}


def band(value):
    """The band of a mean Spearman (None or NaN: ``BAND_UNDEFINED``)."""
    if value is None or np.isnan(value):
        return BAND_UNDEFINED
    if value >= SIMILAR_SPEARMAN:
        return BAND_SIMILAR
    return BAND_PARTLY_SIMILAR if value >= PARTLY_SIMILAR_SPEARMAN else BAND_DIFFERENT


def outcome_fields(summary_by_depth, class_entry=None):
    """The verdict as data: per check the mean Spearman it reads and its ``band``, the
    thresholds, and ``outcome``: ``'fail'`` if a check's maps stay similar, ``'warn'`` if one
    is partly similar or undefined, else ``'pass'``.

    Args:
        summary_by_depth: ``summary(rows)`` (may be empty).
        class_entry: ``class_summary(rows)`` or None/{}.
    """
    fields = {"thresholds": {"similar_spearman": SIMILAR_SPEARMAN,
                             "partly_similar_spearman": PARTLY_SIMILAR_SPEARMAN,
                             "top_depth": TOP_DEPTH}}
    bands = []
    if summary_by_depth:
        top = _top_depth(summary_by_depth)
        value = summary_by_depth[top]["spearman_mean"]
        fields["randomization"] = {"depth": top, "spearman_mean": value, "band": band(value)}
        bands.append(band(value))
    if class_entry:
        value = class_entry["spearman_mean"]
        fields["class_sensitivity"] = {"spearman_mean": value, "band": band(value)}
        bands.append(band(value))
    found = [OUTCOMES[name] for name in bands]
    fields["outcome"] = next((word for word in ("fail", "warn") if word in found),
                             "pass" if found else "undefined")
    return fields
