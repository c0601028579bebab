"""Error types and message templates for gbp_ops; tests assert these texts."""


class GBPError(ValueError):
    """A model, input or option that guided backprop cannot handle; the message says why."""


UNGUIDABLE_ACTIVATIONS = (
    "model '{model}' has activations that guided backprop does not define (it guides ReLUs "
    "only): {groups}. {remedy}"
)
# The remedies UNGUIDABLE_ACTIVATIONS ends with: both spell the pipeline's config key and the
# gbp_ops argument, since the one message serves the gbp-audit command and the library.
GATE_REMEDY = (
    "To explain it anyway, opt in to the gate rule, which passes the gradient at those "
    "activations only where it and their input are both positive (explain.nonlinearity_rule: "
    "gate; gbp_ops: nonlinearity_rule='gate'), or pass plain gradients there "
    "(model.allow_unguided: true; gbp_ops: allow_unguided=True)"
)
NOT_GATEABLE_REMEDY = (
    "The gate rule does not cover {names} (not an elementwise activation); to pass plain "
    "gradients there, set model.allow_unguided: true (gbp_ops: allow_unguided=True){also}"
)
NOT_GATEABLE_ALSO = ", and explain.nonlinearity_rule: gate (nonlinearity_rule='gate') for the rest"
UNKNOWN_NONLINEARITY_RULE = "unknown nonlinearity_rule '{rule}'; expected one of: {rules}"
GATE_NEEDS_GUIDED = (
    "nonlinearity_rule 'gate' carries guided backprop's rule to other activations; it is not "
    "defined for the {rule} rule (use guided_backprop or guided_gradcam)"
)
SAVEDMODEL_NO_GATE = (
    "nonlinearity_rule 'gate' needs a Keras model: a SavedModel's frozen graph has no "
    "activation layers to gate (swish, for one, is frozen as x * sigmoid(x))"
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
BAD_SEEDS_SHAPE = "seeds must be one int per image, shape ({count},); got shape {got}"
BAD_SMOOTHGRAD = (
    "SmoothGrad needs smoothgrad_samples >= 0 and smoothgrad_sigma >= 0; got {samples} and {sigma}"
)
UNKNOWN_METHOD = "unknown explanation method '{method}'; expected one of: {methods}"
NO_GRADCAM_LAYER = (
    "model '{model}' has no top-level layer with a 4-D (N, h, w, k) output before its head; "
    "Guided Grad-CAM needs one: name it with gradcam_layer"
)
BAD_GRADCAM_LAYER = "gradcam_layer '{layer}' has output shape {shape}; Grad-CAM needs (N, h, w, k)"
TARGET_OUT_OF_RANGE = "target class {target} is out of range for a model with {num_classes} outputs"
BAD_TARGETS_SHAPE = "targets must be one int per image, shape ({count},); got shape {got}"
UNKNOWN_LAYER = "model has no layer named '{layer}'; top-level layers are: {names}"
MODEL_NOT_FOUND = "model file not found: {path}"
UNSUPPORTED_MODEL_FORMAT = (
    "cannot load '{path}': expected a Keras model file ending in .keras, .h5 or .hdf5"
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
SAVEDMODEL_NOT_A_SAVEDMODEL = (
    "'{path}' is not a TensorFlow SavedModel directory (no saved_model.pb)"
)
SAVEDMODEL_IS_DIRECTORY = (
    "'{path}' is a TensorFlow SavedModel directory but the model kind is 'keras'; set the kind "
    "to 'savedmodel' or 'auto'"
)
SAVEDMODEL_NO_SIGNATURE = "SavedModel '{path}' has no signature '{signature}'; it has: {names}"
SAVEDMODEL_NO_KEY = (
    "SavedModel '{path}' signature '{signature}' has no {role} '{key}'; it has: {keys}"
)
SAVEDMODEL_MANY_KEYS = (
    "SavedModel '{path}' signature '{signature}' has {count} {role}s ({keys}); choose one with "
    "{role}_key"
)
SAVEDMODEL_INPUT_DTYPE = (
    "SavedModel '{path}' input '{key}' has dtype {dtype}; guided backprop needs a float image "
    "input"
)
SAVEDMODEL_OTHER_INPUTS = (
    "SavedModel '{path}': the explained output also depends on input(s) {names}; only "
    "input '{key}' can be fed"
)
SAVEDMODEL_UNGUIDABLE = (
    "SavedModel '{path}' has ops that guided backprop cannot guide (only Relu and Relu6 are "
    "guided): {ops}; pass allow_unguided=True to leave them unguided with a warning"
)
SAVEDMODEL_NO_RELU = (
    "SavedModel '{path}' has no Relu or Relu6 op between its input and output, so guided "
    "backprop would equal plain gradients; guided backprop needs a ReLU network"
)
SAVEDMODEL_UNKNOWN_OP = "SavedModel '{path}' has no op named '{name}' between its input and output"
SAVEDMODEL_NO_GRADCAM_LAYER = (
    "Guided Grad-CAM on SavedModel '{path}' needs gradcam_layer naming an op of the frozen "
    "graph with a 4-D (N, h, w, k) output, e.g. one of: {candidates}"
)
SAVEDMODEL_LOAD_FAILED = "cannot load SavedModel '{path}': {reason}"
FROZEN_WEIGHTS = (
    "this explainer computes with a frozen graph (a SavedModel), so its weights cannot be "
    "replaced; the randomization check needs a Keras model"
)
