"""Value checks of a ``RunConfig``: each problem raises ``ConfigError`` naming the field."""

from gbp_ops.choices import (
    METHOD_DECONVNET,
    METHODS,
    MODEL_KINDS,
    NONLINEARITY_GATE,
    NONLINEARITY_RULES,
    RANDOMIZATION_MODES,
    REDUCTIONS,
)
from gbp_ops.precision import PRECISIONS
from gbp_ops.precision_choice import PRECISION_AUTO
from pipeline.config.sections import (
    CORRUPT_SHARD_POLICIES,
    FAIL_ON_CONDITIONS,
    FILLS,
    IMAGE_ENCODINGS,
    MAP_DTYPES,
    RAW_DTYPES,
    RESIZE_METHODS,
    SCALINGS,
    SOURCE_KINDS,
    TARGET_POLICIES,
    ConfigError,
)


def _require(condition, field_path, message):
    if not condition:
        raise ConfigError(f"config field '{field_path}': {message}")


def _one_of(value, choices, field_path):
    _require(value in choices, field_path, f"expected one of {', '.join(choices)}; got {value!r}")


def validate(config):
    """Checks the values of a RunConfig; raises ConfigError naming the first bad field."""
    source, explain, output = config.source, config.explain, config.output
    _one_of(source.kind, SOURCE_KINDS, "source.kind")
    if source.kind == "tfrecord":
        _require(bool(source.pattern), "source.pattern", "a TFRecord file pattern is required")
        _one_of(source.image_encoding, IMAGE_ENCODINGS, "source.image_encoding")
        if source.image_encoding == "raw":
            _one_of(source.raw_dtype, RAW_DTYPES, "source.raw_dtype")
            _require(
                len(source.raw_shape) == 3 and all(
                    isinstance(d, int) and d > 0 for d in source.raw_shape),
                "source.raw_shape", "raw images need a shape [H, W, C] of positive integers",
            )
    else:
        _require(bool(source.tfds_name) != bool(source.tfds_dir), "source.tfds_name",
                 "give exactly one of tfds_name (with tfds_data_dir) or tfds_dir")
        _require(bool(source.split), "source.split", "a split such as 'test' is required")
    _one_of(source.on_corrupt_shard, CORRUPT_SHARD_POLICIES, "source.on_corrupt_shard")
    _one_of(config.preprocess.scaling, SCALINGS, "preprocess.scaling")
    _one_of(config.preprocess.resize_method, RESIZE_METHODS, "preprocess.resize_method")
    _require(config.preprocess.max_pixels >= 0, "preprocess.max_pixels",
             "expected an integer >= 0 (0 turns the size check off)")
    _require(bool(config.model.path), "model.path",
             "a .keras, .h5 or .hdf5 model path or a SavedModel directory is required")
    _one_of(config.model.kind, MODEL_KINDS, "model.kind")  # sanity vs SavedModel: preflight
    _require(
        explain.target in TARGET_POLICIES or config.fixed_target is not None,
        "explain.target", f"expected predicted, label or a class index; got {explain.target!r}",
    )
    _require(config.fixed_target is None or config.fixed_target >= 0, "explain.target",
             "a class index must be >= 0")
    _require(explain.target != "label" or bool(source.label_key) or source.kind == "tfds",
             "explain.target", "target 'label' needs source.label_key")
    _require(explain.batch_size >= 1, "explain.batch_size", "expected an integer >= 1")
    _one_of(explain.reduction, REDUCTIONS, "explain.reduction")
    _one_of(explain.method, METHODS, "explain.method")
    _one_of(explain.nonlinearity_rule, NONLINEARITY_RULES, "explain.nonlinearity_rule")
    _require(explain.nonlinearity_rule != NONLINEARITY_GATE or explain.method != METHOD_DECONVNET,
             "explain.nonlinearity_rule", "the gate rule carries guided backprop's rule to other "
             "activations; deconvnet has none (use guided_backprop or guided_gradcam)")
    _validate_precision(config)
    # 0 turns SmoothGrad off; 0 threads keeps TensorFlow's default.
    for name in ("smoothgrad_samples", "smoothgrad_sigma", "worker_intra_op_threads"):
        _require(getattr(explain, name) >= 0, f"explain.{name}", "expected a number >= 0")
    _require(bool(output.path), "output.path", "an output directory is required")
    _one_of(output.map_dtype, MAP_DTYPES, "output.map_dtype")
    _require(output.downsample >= 1, "output.downsample", "expected an integer >= 1")
    _require(output.map_dtype != "uint8" or explain.reduction != "sum", "output.map_dtype",
             "uint8 maps need a non-negative reduction (max_abs, l2 or abs_sum)")
    _require(0.0 < output.border_band_fraction < 0.5, "output.border_band_fraction",
             "expected a fraction in (0, 0.5)")
    _require(output.saliency_shards >= 0, "output.saliency_shards", "expected an integer >= 0")
    _require(output.report_top_n >= 0, "output.report_top_n", "expected an integer >= 0")
    sanity = config.sanity
    _require(sanity.sample_size >= 1, "sanity.sample_size", "expected an integer >= 1")
    _one_of(sanity.mode, RANDOMIZATION_MODES, "sanity.mode")
    _require(sanity.depth is None or sanity.depth >= 1, "sanity.depth",
             "expected null (all layers) or an integer >= 1")
    _validate_findings(config.findings)
    validate_compare(config.compare)
    _require(config.compare.baseline.rstrip("/") != output.path.rstrip("/"), "compare.baseline",
             "the baseline must be another run's output folder than output.path")


def _validate_precision(config):
    explain = config.explain
    _one_of(explain.precision, (*PRECISIONS, PRECISION_AUTO), "explain.precision")
    _require(isinstance(explain.fidelity_sample, int) and explain.fidelity_sample >= 1,
             "explain.fidelity_sample", "expected an integer >= 1")
    # Above 1 is allowed: no map agrees that well, so the run always fails (a deliberate check).
    _require(isinstance(explain.min_fidelity, (int, float))
             and -1.0 <= explain.min_fidelity < float("inf"), "explain.min_fidelity",
             "expected a mean Spearman threshold >= -1, e.g. 0.97")


def _validate_findings(findings):
    for name in ("sample_per_class", "image_sample_per_class", "map_size", "max_clusters",
                 "neighbors", "occlusion_samples", "min_members"):
        _require(getattr(findings, name) >= 1, f"findings.{name}", "expected an integer >= 1")
    _one_of(findings.occlusion_fill, FILLS, "findings.occlusion_fill")
    for name in ("min_flip_rate", "max_region_share", "min_member_share"):
        _require(0.0 <= getattr(findings, name) <= 1.0, f"findings.{name}",
                 "expected a fraction in [0, 1]")
    _require(findings.min_flip_ratio >= 0.0, "findings.min_flip_ratio", "expected a number >= 0")


def validate_compare(compare):
    """Checks the ``compare`` section (also ``gbp-audit compare``'s only section)."""
    for condition in compare.fail_on:
        _one_of(condition, FAIL_ON_CONDITIONS, "compare.fail_on")
    _require(compare.baseline or not compare.fail_on, "compare.fail_on",
             "needs compare.baseline (or the gbp-audit compare command)")
    _require(0.0 < compare.drift_alpha < 1.0, "compare.drift_alpha",
             "expected a significance level in (0, 1)")
    _require(compare.drift_min_effect >= 0.0, "compare.drift_min_effect",
             "expected a number >= 0")
    _require(compare.sample_per_class >= 2, "compare.sample_per_class",
             "expected an integer >= 2")
