"""gbp_ops: guided-backpropagation maths on TensorFlow and numpy. Never imports Beam.

The public names below are imported lazily (PEP 562), so ``import gbp_ops.maps`` or
``gbp_ops.statistics`` stays numpy-only; TensorFlow loads on first use of a TF-backed name.
"""

import importlib

_EXPORTS = {
    "Explanation": "gbp_ops.explainer",
    "GuidedBackprop": "gbp_ops.explainer",
    "TARGET_PREDICTED": "gbp_ops.explainer",
    "GBPError": "gbp_ops.errors",
    "Deconvnet": "gbp_ops.methods",
    "GuidedGradCAM": "gbp_ops.methods",
    "make_explainer": "gbp_ops.methods",
    "PRECISIONS": "gbp_ops.precision",
    "model_under_precision": "gbp_ops.precision",
    "METHODS": "gbp_ops.choices",
    "seed_from_id": "gbp_ops.smoothgrad",
    "seeds_from_ids": "gbp_ops.smoothgrad",
    "GuidedReLU": "gbp_ops.guided_relu",
    "make_guided_relu": "gbp_ops.guided_relu",
    "GuidedSite": "gbp_ops.rewrite",
    "RewriteResult": "gbp_ops.rewrite",
    "guide_model": "gbp_ops.rewrite",
    "load_model": "gbp_ops.loading",
    "SavedModelSource": "gbp_ops.savedmodel_graph",
    "model_sha256": "gbp_ops.loading",
    "normalize_max_abs": "gbp_ops.maps",
    "reduce_channels": "gbp_ops.maps",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gbp_ops' has no attribute '{name}'")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
