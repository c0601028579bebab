"""The option values gbp_ops accepts, in a module without TensorFlow, so that a config can be
validated against them before anything heavy is imported."""

# Channel reductions of a (N, H, W, C) map to (N, H, W); see ``gbp_ops.maps.reduce_channels``.
REDUCTIONS = ("max_abs", "l2", "sum", "abs_sum")

# How the sanity check randomizes a layer; see ``gbp_ops.randomization``.
MODE_REINITIALIZE = "reinitialize"
MODE_PERMUTE = "permute"
RANDOMIZATION_MODES = (MODE_REINITIALIZE, MODE_PERMUTE)
