"""gbp_ops: guided-backpropagation maths on TensorFlow and numpy. Never imports Beam."""

from gbp_ops.errors import GBPError
from gbp_ops.explainer import TARGET_PREDICTED, Explanation, GuidedBackprop
from gbp_ops.guided_relu import GuidedReLU, make_guided_relu
from gbp_ops.loading import load_model, model_sha256
from gbp_ops.maps import normalize_mass, normalize_max_abs, reduce_channels
from gbp_ops.rewrite import GuidedSite, RewriteResult, guide_model

__all__ = [
    "Explanation",
    "GBPError",
    "GuidedBackprop",
    "GuidedReLU",
    "GuidedSite",
    "RewriteResult",
    "TARGET_PREDICTED",
    "guide_model",
    "load_model",
    "make_guided_relu",
    "model_sha256",
    "normalize_mass",
    "normalize_max_abs",
    "reduce_channels",
]
