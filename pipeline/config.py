"""The typed, validated run configuration: YAML presets plus ``--set key=value`` overrides.

Every field is checked before any Beam work starts; a problem raises ``ConfigError`` whose
message names the field, e.g. ``config field 'explain.batch_size': expected an int >= 1``.
"""

import dataclasses
import types
import typing

import yaml

from gbp_ops.choices import RANDOMIZATION_MODES, REDUCTIONS

SOURCE_KINDS = ("tfrecord", "tfds")
IMAGE_ENCODINGS = ("encoded", "raw")
RAW_DTYPES = ("uint8", "float32")
SCALINGS = ("unit", "symmetric", "imagenet", "caffe")
RESIZE_METHODS = ("bilinear", "nearest", "bicubic", "area")
MAP_DTYPES = ("float16", "float32", "uint8")
TARGET_POLICIES = ("predicted", "label")
CORRUPT_SHARD_POLICIES = ("dead_letter", "fail")


class ConfigError(ValueError):
    """A config value that cannot work; the message names the field."""


@dataclasses.dataclass(frozen=True)
class SourceConfig:
    """Where examples come from and which features hold what."""

    kind: str = "tfrecord"
    pattern: str = ""  # TFRecord file pattern (local or gs://)
    image_key: str = "image/encoded"
    image_encoding: str = "encoded"  # JPEG/PNG bytes, or raw tensor bytes
    raw_dtype: str = "uint8"
    raw_shape: tuple = ()  # (H, W, C) of raw tensors, when image_encoding == 'raw'
    label_key: str | None = "image/class/label"
    id_key: str | None = "image/id"
    box_key: str | None = None  # normalised (ymin, xmin, ymax, xmax) float list
    class_names: tuple = ()
    tfds_name: str = ""  # TFDS: dataset name (with tfds_data_dir) ...
    tfds_data_dir: str = ""
    tfds_dir: str = ""  # ... or a prepared dataset directory
    split: str = "test"
    on_corrupt_shard: str = "dead_letter"


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """How an image becomes a model input: size check, decode, resize, channel conversion,
    scaling."""

    scaling: str = "unit"
    resize_method: str = "bilinear"
    # Width x height read from the image header before decoding; a larger image becomes a
    # dead letter at stage 'decode' and is never decoded. 0 turns the check off.
    max_pixels: int = 50_000_000
    # JPEGs decode at 1/2, 1/4 or 1/8 scale (libjpeg DCT scaling) when that still covers the
    # model input, then resize; false decodes them at full size.
    scaled_jpeg_decode: bool = True


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which model and how it is rewritten."""

    path: str = ""
    safe_mode: bool = True
    strip_final_activation: bool = True
    allow_unguided: bool = False
    layer_name: str | None = None


@dataclasses.dataclass(frozen=True)
class ExplainConfig:
    """What is explained, and how it is batched and placed."""

    target: str = "predicted"  # 'predicted', 'label' or a class index like '3'
    batch_size: int = 32
    reduction: str = "max_abs"
    large_model: bool = False  # one model per machine instead of per worker process
    # TF intra-op threads per worker process; 0 keeps TF's default (all cores). Only worth
    # setting with several worker *processes* on one machine (multi_processing), so that
    # they do not oversubscribe the cores; local threads share one TF (see README, Performance).
    worker_intra_op_threads: int = 0


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """Where and in what form the results are written."""

    path: str = ""
    map_dtype: str = "float16"
    downsample: int = 1
    border_band_fraction: float = 0.1
    saliency_shards: int = 0  # 0 lets the runner decide
    report: bool = True  # write report.html + report/*.png at the end
    report_top_n: int = 8


@dataclasses.dataclass(frozen=True)
class SanityConfig:
    """The optional model-randomization sanity check (Adebayo et al. 2018) on a sample."""

    enabled: bool = False
    sample_size: int = 32
    mode: str = "reinitialize"
    depth: int | None = None  # how many layer groups to randomize from the top; None = all
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One audit run."""

    source: SourceConfig = dataclasses.field(default_factory=SourceConfig)
    preprocess: PreprocessConfig = dataclasses.field(default_factory=PreprocessConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    explain: ExplainConfig = dataclasses.field(default_factory=ExplainConfig)
    output: OutputConfig = dataclasses.field(default_factory=OutputConfig)
    sanity: SanityConfig = dataclasses.field(default_factory=SanityConfig)

    def to_dict(self):
        """Plain nested dict (JSON/YAML-ready)."""
        return jsonable(dataclasses.asdict(self))

    @property
    def fixed_target(self):
        """The class index when the target policy is a fixed class, else None."""
        return int(self.explain.target) if self.explain.target.lstrip("-").isdigit() else None


def jsonable(value):
    """Nested dicts/lists/tuples with numpy scalars and NaN -> JSON-ready Python values
    (tuples become lists, numpy scalars Python scalars, NaN None, keys strings)."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _coerce(field_path, annotation, value):
    """Converts a YAML value to the annotated type, or raises ConfigError naming the field."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        annotation = next(arg for arg in args if arg is not type(None))
    if annotation is tuple:
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config field '{field_path}': expected a list, got {value!r}")
        return tuple(value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config field '{field_path}': expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"config field '{field_path}': expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"config field '{field_path}': expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"config field '{field_path}': expected a string, got {value!r}")
    raise AssertionError(f"unhandled config type {annotation} for {field_path}")


def _section_from_dict(section_name, section_type, values):
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"config section '{section_name}': expected a mapping, got {values!r}")
    hints = typing.get_type_hints(section_type)
    known = {field.name for field in dataclasses.fields(section_type)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"config field '{section_name}.{unknown[0]}' is not a known field; "
            f"'{section_name}' has: {', '.join(sorted(known))}"
        )
    kwargs = {
        name: _coerce(f"{section_name}.{name}", hints[name], value)
        for name, value in values.items()
    }
    return section_type(**kwargs)


def config_from_dict(data):
    """Builds and validates a RunConfig from a nested dict.

    Raises:
        ConfigError: an unknown section or field, a wrong type, or an invalid value.
    """
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a mapping of sections, got {type(data).__name__}")
    sections = {field.name: field.type for field in dataclasses.fields(RunConfig)}
    hints = typing.get_type_hints(RunConfig)
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(
            f"config section '{unknown[0]}' is not known; sections are: {', '.join(sections)}"
        )
    config = RunConfig(**{
        name: _section_from_dict(name, hints[name], data.get(name)) for name in sections
    })
    validate(config)
    return config


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
    _require(bool(config.model.path), "model.path", "a .keras or .h5 model path is required")
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
    _require(explain.worker_intra_op_threads >= 0, "explain.worker_intra_op_threads",
             "expected an integer >= 0 (0: TensorFlow's default)")
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


def parse_override(text):
    """``'explain.batch_size=64'`` -> ``('explain', 'batch_size', 64)``; values parse as YAML."""
    key, sep, raw_value = text.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) != 2 or not all(parts):
        raise ConfigError(f"override '{text}' must look like section.field=value")
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"override '{text}': value is not valid YAML ({error})") from error
    return parts[0], parts[1], value


def load_config(path=None, overrides=(), base=None):
    """Loads a YAML preset (local or remote path), applies overrides, validates.

    Args:
        path: YAML file path or None for defaults only.
        overrides: iterable of ``section.field=value`` strings.
        base: optional dict applied before the file (used by tests to shrink presets).

    Returns:
        A validated RunConfig.

    Raises:
        ConfigError: unreadable YAML or any invalid field.
    """
    data = dict(base or {})
    if path:
        data = _merge(data, _read_yaml(path))
    for text in overrides:
        section, field, value = parse_override(text)
        data.setdefault(section, {})
        if not isinstance(data[section], dict):
            raise ConfigError(f"config section '{section}': expected a mapping")
        data[section][field] = value
    return config_from_dict(data)


def _merge(base, update):
    merged = {key: dict(value) if isinstance(value, dict) else value
              for key, value in base.items()}
    for key, value in (update or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path):
    from pipeline import paths

    try:
        text = paths.read_text(path)
    except FileNotFoundError as error:
        raise ConfigError(f"config file not found: {path}") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from error
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    return data or {}
