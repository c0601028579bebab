"""Reduced-precision explainers: a copy of a Keras model whose layers compute in bfloat16 or
float16 (Keras mixed precision: float32 variables, low-precision compute).

The policy is set per layer in the copy's layer configs, never globally, so other models and
explainers in the same process stay float32. The explainer's step still takes float32 images
and returns float32 logits and maps (``GuidedBackprop`` casts the outputs; the input gradient
has the input's dtype). No TensorFlow at import, so config validation can read the choices.
"""

from gbp_ops import errors

PRECISION_FLOAT32 = "float32"
# mixed_bfloat16: CPUs with AVX512_BF16/AMX and TPUs/GPUs; mixed_float16: GPUs with tensor cores.
PRECISION_BFLOAT16 = "mixed_bfloat16"
PRECISIONS = (PRECISION_FLOAT32, PRECISION_BFLOAT16, "mixed_float16")

UNKNOWN_PRECISION = "unknown precision '{precision}'; expected one of: {precisions}"
SAVEDMODEL_PRECISION = (
    "precision '{precision}' needs a Keras model (its layers are rebuilt under a Keras dtype "
    "policy); a SavedModel is explained in float32 only"
)


def check_precision(precision):
    """Raises GBPError unless ``precision`` is one of ``PRECISIONS``."""
    if precision not in PRECISIONS:
        raise errors.GBPError(UNKNOWN_PRECISION.format(
            precision=precision, precisions=", ".join(PRECISIONS)))


def _layer_under_policy(layer, precision):
    """A fresh copy of ``layer`` that computes under ``precision``; layers whose policy is not
    plain float32 (integer or already mixed layers) keep it."""
    config = layer.get_config()
    if layer.dtype_policy.name == PRECISION_FLOAT32:
        config["dtype"] = precision
    return layer.__class__.from_config(config)


def model_under_precision(model, precision):
    """``model`` itself for float32, else a copy (nested models too, weights copied) whose
    float32 layers compute under the Keras dtype policy ``precision``.

    Args:
        model: a Functional or Sequential ``keras.Model``.
        precision: one of ``PRECISIONS``.

    Returns:
        A ``keras.Model`` with float32 variables; its input stays float32 (the first layer
        casts it) and its output has the last layer's compute dtype.

    Raises:
        GBPError: an unknown precision.
    """
    check_precision(precision)
    if precision == PRECISION_FLOAT32:
        return model
    from gbp_ops.model_graph import clone_with_weights

    return clone_with_weights(model, lambda layer: _layer_under_policy(layer, precision))
