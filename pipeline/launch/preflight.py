"""Checks made before any Beam work: config, inputs, model, output. Each failure is one line."""

import dataclasses
import uuid

from gbp_ops.precision import PRECISION_BFLOAT16, PRECISION_FLOAT32
from gbp_ops.precision_choice import PRECISION_AUTO
from pipeline import paths
from pipeline.config import ConfigError

MAP_NOT_DIVISIBLE = "map size {height}x{width} is not divisible by output.downsample={factor}"
TARGET_TOO_LARGE = "explain.target={target} but the model has only {num_classes} classes"
OUTPUT_NOT_WRITABLE = "output path '{path}' is not writable: {reason}"
NOT_FAITHFUL = (
    "explain.precision={precision} is not faithful enough on this model: mean Spearman "
    "{mean_spearman:.3f} between its maps and float32 maps on {sample_size} examples, below "
    "explain.min_fidelity={min_fidelity:g}; use float32 or lower min_fidelity"
)
SANITY_NEEDS_KERAS = (
    "model '{path}' is a SavedModel, but the sanity check randomizes Keras layers, which a "
    "SavedModel does not have; set sanity.enabled=false"
)


class PreflightError(ValueError):
    """A set-up problem found before the pipeline starts; the message is the whole story."""


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What preflight learned, which the pipeline graph needs.

    Attributes:
        input_shape: the model input ``(H, W, C)``.
        map_shape: the stored map ``(h, w)`` after downsampling.
        class_names: label names (config, else TFDS ClassLabel, else empty).
        manifest_base: manifest fields known before the run (config, versions, model, the
            input scaling and how it was decided, the notes).
        notes: lines for the user (config fields dropped, warnings), also in the manifest.
    """

    config: object
    input_shape: tuple
    map_shape: tuple
    class_names: tuple
    manifest_base: dict
    notes: tuple = ()


def _check_input(config):
    """The source's class names (config, else TFDS ClassLabel, else empty) and the warnings
    about its keys, once it is known to be readable and to carry the configured keys."""
    from pipeline.launch import contract
    from pipeline.stages.read import ReadSource

    source = ReadSource(config.source)
    problem = source.problem()
    if problem:
        raise PreflightError(problem)
    try:
        warnings = contract.check_keys(config, source.records())
    except contract.ContractError as error:
        raise PreflightError(str(error)) from error
    return source.class_names(), warnings


def _check_contract(config, class_names, explainer):
    """The model against the config and the data: class names, channels, input scaling.

    Returns:
        The manifest's ``input_scaling`` field (``pipeline.launch.scaling_check.decide``).
    """
    from pipeline.launch import contract, scaling_check

    try:
        contract.check_channels(config, explainer.input_shape)
        contract.check_class_names(config, class_names, explainer)
        return scaling_check.decide(config, explainer)
    except (contract.ContractError, scaling_check.ScalingError) as error:
        raise PreflightError(str(error)) from error


def _check_output(path):
    from pipeline.outputs.sinks import STAGING_DIR

    probe = paths.join(path, STAGING_DIR, f".write-probe-{uuid.uuid4().hex}")
    try:
        paths.write_text(probe, "ok")
        paths.delete([probe])
    except Exception as error:
        raise PreflightError(OUTPUT_NOT_WRITABLE.format(
            path=path, reason=str(error).strip().splitlines()[0])) from error


def _check_fidelity(config, explainer):
    """None for float32; else the measured fidelity (``pipeline.launch.fidelity.measure``), which
    must reach ``explain.min_fidelity``."""
    if config.explain.precision == PRECISION_FLOAT32:
        return None
    from pipeline.launch import fidelity

    try:
        measured = fidelity.measure(config, explainer, explainer.input_shape)
    except fidelity.FidelityError as error:
        raise PreflightError(str(error)) from error
    if not measured["mean_spearman"] >= config.explain.min_fidelity:
        raise PreflightError(NOT_FAITHFUL.format(**measured))
    return measured


def _with_precision(config, precision):
    return dataclasses.replace(config, explain=dataclasses.replace(config.explain,
                                                                   precision=precision))


def _choose_auto_precision(config, savedmodel, build, host):
    """``explain.precision: auto`` settled (``gbp_ops.precision_choice``): bfloat16's fidelity
    is measured only on a host that computes it natively.

    Returns:
        ``(config with the chosen precision, the manifest's precision_choice, the measured
        fidelity or None)``.
    """
    from gbp_ops import precision_choice

    host = host or precision_choice.probe_host()
    fidelity = None
    if host.native_bf16 and not savedmodel:
        from pipeline.launch import fidelity as fidelity_check

        candidate = _with_precision(config, PRECISION_BFLOAT16)
        explainer = build(candidate)
        fidelity = fidelity_check.measure(candidate, explainer, explainer.input_shape)
    precision, reason = precision_choice.choose_precision(
        host, fidelity and fidelity["mean_spearman"], config.explain.min_fidelity,
        keras_model=not savedmodel)
    choice = {"requested": PRECISION_AUTO, "precision": precision,
              "reason": reason, "host": host.detail}
    return _with_precision(config, precision), choice, fidelity


def preflight(config, explainer_builder=None, host=None, notes=()):
    """Validates everything that can be checked before the pipeline starts.

    Args:
        config: a validated RunConfig.
        explainer_builder: ``config -> explainer``; defaults to
            ``pipeline.explainers.shared_explainer``, whose explainer a local run reuses.
        host: for ``explain.precision: auto``, a ``gbp_ops.precision_choice.HostPrecision``;
            None probes this host.
        notes: lines the config loader had for the user (``load_config(notes=...)``); kept
            in the plan and the manifest with preflight's own warnings.

    Returns:
        A RunPlan; its config has ``auto`` replaced by the chosen precision.

    Raises:
        PreflightError / ConfigError / gbp_ops.GBPError with a one-line message.
    """
    from gbp_ops import model_sha256
    from pipeline import explainers
    from pipeline.outputs import manifest

    if not isinstance(config.output.path, str) or not config.output.path:
        raise ConfigError("config field 'output.path': an output directory is required")
    class_names, warnings = _check_input(config)
    savedmodel = paths.is_savedmodel_dir(config.model.path)
    if not savedmodel and not paths.match(config.model.path):
        from gbp_ops import errors

        raise PreflightError(errors.MODEL_NOT_FOUND.format(path=config.model.path))
    if savedmodel and config.sanity.enabled:
        raise PreflightError(SANITY_NEEDS_KERAS.format(path=config.model.path))
    build = explainer_builder or explainers.shared_explainer
    requested, choice, fidelity = config, None, None
    if config.explain.precision == PRECISION_AUTO:
        config, choice, fidelity = _choose_auto_precision(config, savedmodel, build, host)
    explainer = build(config)
    input_scaling = _check_contract(config, class_names, explainer)
    height, width, _ = explainer.input_shape
    factor = config.output.downsample
    if height % factor or width % factor:
        raise PreflightError(MAP_NOT_DIVISIBLE.format(height=height, width=width, factor=factor))
    if config.fixed_target is not None and config.fixed_target >= explainer.num_classes:
        raise PreflightError(TARGET_TOO_LARGE.format(target=config.fixed_target,
                                                     num_classes=explainer.num_classes))
    _check_output(config.output.path)
    map_shape = (height // factor, width // factor)
    manifest_base = manifest.base_fields(
        requested, explainer, class_names, map_shape,
        model_sha256(paths.local_copy(config.model.path)),
        fidelity=fidelity if choice else _check_fidelity(config, explainer),
        precision_choice=choice)
    notes = (*notes, *warnings)
    manifest_base["input_scaling"] = input_scaling
    manifest_base["notes"] = list(notes)
    return RunPlan(config, tuple(explainer.input_shape), map_shape, tuple(class_names),
                   manifest_base, notes)
