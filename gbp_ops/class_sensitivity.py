"""The class-sensitivity check (random-logit test): on the same images, compare the map of the
explained class with the map of another class drawn with a seed, as xplique's
``RandomLogitMetric`` and Quantus's random-logit test do. Maps that barely change with the
class cannot tell classes apart (Nie et al. 2018 explain why guided backprop often fails it).
"""

import numpy as np

from gbp_ops.choices import CHECK_CLASS_SENSITIVITY
from gbp_ops.maps import reduced_maps
from gbp_ops.similarity import spearman_rank_correlation, ssim


def other_classes(targets, num_classes, seed):
    """For each target, another class drawn uniformly from the ``num_classes - 1`` others.

    Args:
        targets: int ``(N,)`` explained classes in ``[0, num_classes)``.
        num_classes: int >= 2.
        seed: int; the same seed and targets give the same draw.

    Returns:
        int64 ``(N,)``, never equal to ``targets``.
    """
    targets = np.asarray(targets, np.int64)
    shift = np.random.default_rng(seed).integers(1, num_classes, size=len(targets))
    return (targets + shift) % num_classes


def run_class_sensitivity_check(explainer, images, targets=None, seeds=None, seed=0,
                                reduction="max_abs"):
    """Spearman and SSIM between the explained class's map and another class's map.

    Args:
        explainer: any explainer with the ``GuidedBackprop`` interface (the audit's).
        images: float ``(N, H, W, C)`` preprocessed for the model.
        targets: None (predicted classes) or int ``(N,)`` (-1: predicted).
        seeds: None or int64 ``(N,)`` SmoothGrad seeds, used for both maps so that only the
            class differs.
        seed: int seed of the other-class draw.
        reduction: channel reduction for ``(N, H, W, C)`` maps; ``(N, H, W)`` maps are used
            as they are.

    Returns:
        list of dicts, one per example: ``check`` (``'class_sensitivity'``), ``depth`` (0),
        ``randomized_layers`` (``''``), ``example_index``, ``target``, ``other_class`` (int),
        ``spearman`` and ``ssim`` (float).
    """
    explanation = explainer.explain_with_outputs(images, targets, seeds)
    others = other_classes(explanation.targets, explainer.num_classes, seed)
    other_maps = explainer.explain(images, others, seeds)
    reference = reduced_maps(explanation.maps, reduction)
    compared = reduced_maps(other_maps, reduction)
    spearman = spearman_rank_correlation(reference, compared)
    similarity = ssim(reference, compared)
    return [{"check": CHECK_CLASS_SENSITIVITY, "depth": 0, "randomized_layers": "",
             "example_index": index, "target": int(explanation.targets[index]),
             "other_class": int(others[index]), "spearman": float(spearman[index]),
             "ssim": float(similarity[index])}
            for index in range(len(reference))]

