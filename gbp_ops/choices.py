"""The option values gbp_ops accepts, in a module without TensorFlow, so that a config can be
validated against them before anything heavy is imported; and the one test of what a model path
holds (``is_savedmodel_dir``), shared with the pipeline's filesystem helpers."""

import os

# Channel reductions of a (N, H, W, C) map to (N, H, W); see ``gbp_ops.maps.reduce_channels``.
REDUCTIONS = ("max_abs", "l2", "sum", "abs_sum")

# How the sanity check randomizes a layer; see ``gbp_ops.randomization``.
MODE_REINITIALIZE = "reinitialize"
MODE_PERMUTE = "permute"
RANDOMIZATION_MODES = (MODE_REINITIALIZE, MODE_PERMUTE)

# Explanation methods; see ``gbp_ops.methods.make_explainer``.
METHOD_GUIDED_BACKPROP = "guided_backprop"
METHOD_DECONVNET = "deconvnet"
METHOD_GUIDED_GRADCAM = "guided_gradcam"
METHODS = (METHOD_GUIDED_BACKPROP, METHOD_DECONVNET, METHOD_GUIDED_GRADCAM)

# What ``model.path`` holds; see ``gbp_ops.loading.load_model``. 'auto': a directory with
# saved_model.pb is a SavedModel, anything else a Keras file.
MODEL_KIND_AUTO = "auto"
MODEL_KIND_KERAS = "keras"
MODEL_KIND_SAVEDMODEL = "savedmodel"
MODEL_KINDS = (MODEL_KIND_AUTO, MODEL_KIND_KERAS, MODEL_KIND_SAVEDMODEL)
SAVEDMODEL_MARKER = "saved_model.pb"


def is_savedmodel_dir(path, exists=os.path.isfile, join=os.path.join):
    """Whether ``path`` is a SavedModel directory: one holding ``SAVEDMODEL_MARKER``.

    Args:
        path: a directory, or an object-store prefix.
        exists, join: the filesystem's "does this file exist" and path join (local by
            default; ``tf.io.gfile`` in ``gbp_ops``, Beam ``FileSystems`` in
            ``pipeline.paths``).
    """
    return bool(exists(join(path, SAVEDMODEL_MARKER)))

# The two sanity checks, as named in the sanity rows' ``check`` field; see ``gbp_ops.sanity``.
CHECK_RANDOMIZATION = "randomization"
CHECK_CLASS_SENSITIVITY = "class_sensitivity"

# What guided backprop does at an activation other than ReLU (swish, GELU, ...); see
# ``gbp_ops.gated_activation``. 'refuse': the model is refused, naming them; 'gate': the gate
# rule ``dy * f'(x) * (dy > 0) * (x > 0)`` (opt-in: no paper defines GBP there).
NONLINEARITY_REFUSE = "refuse"
NONLINEARITY_GATE = "gate"
NONLINEARITY_RULES = (NONLINEARITY_REFUSE, NONLINEARITY_GATE)
