"""Checks made before any Beam work: config, inputs, model, output. Each failure is one line."""

import dataclasses
import platform
import uuid

from pipeline import paths
from pipeline.config import ConfigError

NO_INPUT_FILES = "input pattern '{pattern}' matches no files"
TFDS_NOT_PREPARED = "TFDS dataset {name} is not usable: {reason}"
MODEL_INPUT_CHANNELS = "model input has {channels} channels; gbp-audit supports 1 or 3"
MAP_NOT_DIVISIBLE = "map size {height}x{width} is not divisible by output.downsample={factor}"
TARGET_TOO_LARGE = "explain.target={target} but the model has only {num_classes} classes"
OUTPUT_NOT_WRITABLE = "output path '{path}' is not writable: {reason}"


class PreflightError(ValueError):
    """A set-up problem found before the pipeline starts; the message is the whole story."""


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What preflight learned, which the pipeline graph needs.

    Attributes:
        input_shape: the model input ``(H, W, C)``.
        map_shape: the stored map ``(h, w)`` after downsampling.
        class_names: label names (config, else TFDS ClassLabel, else empty).
        manifest_base: manifest fields known before the run (config, versions, model).
    """

    config: object
    input_shape: tuple
    map_shape: tuple
    num_classes: int
    class_names: tuple
    explained_space: str
    manifest_base: dict


def versions():
    """Versions of the stack, for the manifest."""
    import importlib.metadata as metadata

    found = {"python": platform.python_version()}
    for package in ("gbp-audit", "tensorflow", "keras", "apache-beam", "numpy", "pyarrow",
                    "tensorflow-datasets"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def _check_input(config):
    source = config.source
    if source.kind == "tfrecord":
        if not paths.match(source.pattern):
            raise PreflightError(NO_INPUT_FILES.format(pattern=source.pattern))
        return tuple(source.class_names)
    from pipeline.read import tfds_builder, tfds_class_names

    name = source.tfds_dir or source.tfds_name
    try:
        builder = tfds_builder(source)
        splits = builder.info.splits
        split_name = source.split.split("[")[0]
        if split_name not in splits:
            raise PreflightError(TFDS_NOT_PREPARED.format(
                name=name, reason=f"no split '{split_name}' (has {', '.join(splits)})"))
    except PreflightError:
        raise
    except Exception as error:
        raise PreflightError(TFDS_NOT_PREPARED.format(
            name=name, reason=str(error).strip().splitlines()[0])) from error
    return tuple(source.class_names) or tfds_class_names(source)


def _check_output(path):
    probe = paths.join(path, "_staging", f".write-probe-{uuid.uuid4().hex}")
    try:
        paths.write_text(probe, "ok")
        paths.delete([probe])
    except Exception as error:
        raise PreflightError(OUTPUT_NOT_WRITABLE.format(
            path=path, reason=str(error).strip().splitlines()[0])) from error


def preflight(config, explainer_builder=None):
    """Validates everything that can be checked before the pipeline starts.

    Args:
        config: a validated RunConfig.
        explainer_builder: ``config -> GuidedBackprop``; defaults to the model handler's loader.

    Returns:
        A RunPlan.

    Raises:
        PreflightError / ConfigError / gbp_ops.GBPError with a one-line message.
    """
    from gbp_ops import model_sha256
    from pipeline import model_handler

    if not isinstance(config.output.path, str) or not config.output.path:
        raise ConfigError("config field 'output.path': an output directory is required")
    class_names = _check_input(config)
    if not paths.match(config.model.path):
        from gbp_ops import errors

        raise PreflightError(errors.MODEL_NOT_FOUND.format(path=config.model.path))
    explainer = (explainer_builder or model_handler.build_explainer)(config)
    height, width, channels = explainer.input_shape
    if channels not in (1, 3):
        raise PreflightError(MODEL_INPUT_CHANNELS.format(channels=channels))
    factor = config.output.downsample
    if height % factor or width % factor:
        raise PreflightError(MAP_NOT_DIVISIBLE.format(height=height, width=width, factor=factor))
    if config.fixed_target is not None and config.fixed_target >= explainer.num_classes:
        raise PreflightError(TARGET_TOO_LARGE.format(target=config.fixed_target,
                                                     num_classes=explainer.num_classes))
    _check_output(config.output.path)
    manifest_base = {
        "config": config.to_dict(),
        "versions": versions(),
        "method": "guided_backprop",
        "model_sha256": model_sha256(model_handler.localize_model(config.model.path)),
        "guided_sites": [f"{site.layer}: {site.form}" for site in explainer.guided_sites],
        "unguided_sites": [site.layer for site in explainer.unguided_sites],
        "explained_space": explainer.explained_space,
        "input_shape": list(explainer.input_shape),
        "map_shape": [height // factor, width // factor],
        "class_names": list(class_names),
    }
    return RunPlan(config, tuple(explainer.input_shape), (height // factor, width // factor),
                   explainer.num_classes, tuple(class_names), explainer.explained_space,
                   manifest_base)
