"""Error types and message templates for gbp_ops; tests assert these texts."""


class GBPError(ValueError):
    """A model, input or option that guided backprop cannot handle; the message says why."""


UNSUPPORTED_ACTIVATION = (
    "layer '{layer}' uses activation '{activation}', which guided backprop does not define "
    "(it is defined for ReLU-family activations only); pass allow_unguided=True to leave it "
    "unguided with a warning"
)
NO_RELU = (
    "model '{model}' has no ReLU activation to guide, so guided backprop would equal plain "
    "gradients; guided backprop needs a ReLU network"
)
SUBCLASSED_MODEL = (
    "model '{model}' is a subclassed keras.Model; only Functional and Sequential models can be "
    "cloned and rewritten"
)
MULTI_IO_MODEL = "model '{model}' has {inputs} inputs and {outputs} outputs; expected one of each"
BAD_IMAGE_SHAPE = "images must have shape (N, {expected}); got {got}"
TARGET_OUT_OF_RANGE = "target class {target} is out of range for a model with {num_classes} outputs"
BAD_TARGETS_SHAPE = "targets must be one int per image, shape ({count},); got shape {got}"
UNKNOWN_LAYER = "model has no layer named '{layer}'; top-level layers are: {names}"
MODEL_NOT_FOUND = "model file not found: {path}"
SAVEDMODEL_UNSUPPORTED = (
    "'{path}' is a TensorFlow SavedModel directory; gbp-audit loads Keras models saved as "
    ".keras or .h5 (re-save with model.save('model.keras'))"
)
UNSUPPORTED_MODEL_FORMAT = (
    "cannot load '{path}': expected a Keras model file ending in .keras or .h5"
)
UNSAFE_MODEL = (
    "model '{path}' could not be loaded in Keras safe mode: {reason}. It probably holds a "
    "Lambda layer with Python code; only if you trust the file, set safe_mode=False"
)
MODEL_LOAD_FAILED = "cannot load model '{path}': {reason}"
UNSIZED_INPUT = (
    "model input shape {shape} has no fixed height and width; guided backprop compiles for a "
    "fixed input, e.g. keras.Input((224, 224, 3))"
)
