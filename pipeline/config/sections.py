"""The run configuration's sections: typed, frozen dataclasses with their defaults, and
the allowed values of their string fields."""

import dataclasses

from gbp_ops.choices import NONLINEARITY_GATE

SOURCE_KINDS = ("tfrecord", "tfds")
IMAGE_ENCODINGS = ("encoded", "raw")
RAW_DTYPES = ("uint8", "float32")
SCALINGS = ("unit", "symmetric", "imagenet", "caffe", "raw")
RESIZE_METHODS = ("bilinear", "nearest", "bicubic", "area")
MAP_DTYPES = ("float16", "float32", "uint8")
TARGET_POLICIES = ("predicted", "label")
CORRUPT_SHARD_POLICIES = ("dead_letter", "fail")
FILLS = ("mean", "blur")
# What `compare.fail_on` may list (pipeline.compare.verdict says when each holds).
FAIL_ON_CONDITIONS = ("new_finding", "persisting_finding", "drift")


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

    scaling: str = "unit"  # see pipeline.images.scale_pixels; raw: pixels in [0, 255] as they are
    # With labels, preflight measures the accuracy of the first prepared examples under every
    # scaling and refuses a clearly less accurate one (pipeline.launch.scaling_check).
    scaling_check: bool = True
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
    kind: str = "auto"  # auto: a directory with saved_model.pb is a SavedModel, else Keras
    signature: str = "serving_default"  # SavedModel only: signature, input and output
    input_key: str | None = None  # (the keys are needed only when there are several)
    output_key: str | None = None


@dataclasses.dataclass(frozen=True)
class ExplainConfig:
    """What is explained, and how it is batched and placed."""

    target: str = "predicted"  # 'predicted', 'label' or a class index like '3'
    method: str = "guided_backprop"  # guided_backprop, deconvnet or guided_gradcam
    gradcam_layer: str | None = None  # guided_gradcam: None = last layer with a 4-D output
    smoothgrad_samples: int = 0  # 0: off; else SmoothGrad's number of noisy copies
    smoothgrad_sigma: float = 0.15  # noise std as a fraction of each input's max - min
    batch_size: int = 32
    reduction: str = "max_abs"
    large_model: bool = False  # one model per machine instead of per worker process
    # TF intra-op threads per worker process; 0 keeps TF's default (all cores). Only worth
    # setting with several worker *processes* on one machine (multi_processing), so that
    # they do not oversubscribe the cores; local threads share one TF (see README, Performance).
    worker_intra_op_threads: int = 0
    # float32, mixed_bfloat16 (CPUs with AVX512_BF16/AMX, TPUs, recent GPUs) or mixed_float16
    # (GPUs); Keras models only. A reduced precision is checked against float32 on
    # fidelity_sample examples before the run, which fails if the mean per-image Spearman of
    # the two maps is below min_fidelity (see pipeline.launch.fidelity). auto: mixed_bfloat16 where
    # the launching host computes bf16 natively and that check passes, else float32; the
    # manifest's precision_choice says which and why (gbp_ops.precision_choice).
    precision: str = "float32"
    fidelity_sample: int = 64
    min_fidelity: float = 0.97
    # At activations other than ReLU (swish, GELU, hard-swish, ...): 'refuse' the model, naming
    # them, or 'gate': dy * f'(x) where dy > 0 and x > 0 (gbp_ops.gated_activation). 'gate'
    # turns the sanity checks on unless sanity.enabled is set (see SanityConfig).
    nonlinearity_rule: str = "refuse"


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
    """The optional sanity checks on a sample: model randomization (Adebayo et al. 2018) and
    class sensitivity.

    ``enabled`` left unset (None) resolves, in ``RunConfig``, to on when
    ``explain.nonlinearity_rule`` is 'gate' and off otherwise: positive-only backward rules
    are known to lose class sensitivity (Nie et al. 2018), so a run that opts in to the gate
    rule checks it unless the user says otherwise.
    """

    enabled: bool | None = None
    sample_size: int = 32
    mode: str = "reinitialize"
    depth: int | None = None  # how many layer groups to randomize from the top; None = all
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class FindingsConfig:
    """Strategy clusters per explained class, proved by occlusion (see ``pipeline.findings``)."""

    enabled: bool = True
    sample_per_class: int = 2000  # maps clustered per class, chosen by example-id hash
    image_sample_per_class: int = 512  # of those, the first by hash keep their input image
    map_size: int = 16  # side of the small maps that are clustered
    max_clusters: int = 6
    neighbors: int = 10  # k of the k-NN affinity graph and of the assignment vote
    occlusion_samples: int = 64  # members occluded per cluster
    occlusion_fill: str = "mean"  # 'mean' colour of each image or 'blur'
    min_flip_rate: float = 0.5
    min_flip_ratio: float = 3.0  # flip rate >= this x the control region's flip rate
    max_region_share: float = 0.25
    min_members: int = 5
    min_member_share: float = 0.02  # of the class
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """Comparison with an earlier run (``pipeline.compare``); README: Comparing runs."""

    baseline: str = ""  # output folder of the earlier run; empty: no comparison
    fail_on: tuple = ()  # of FAIL_ON_CONDITIONS: exit status 3 when one holds
    # drift: a class's statistic shifts with a Bonferroni-corrected p below drift_alpha and
    # a standardized effect |shift| / sd of at least drift_min_effect
    drift_alpha: float = 0.01
    drift_min_effect: float = 0.5
    sample_per_class: int = 5000  # examples per class the tests and medians use (by id hash)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One audit run."""

    source: SourceConfig = dataclasses.field(default_factory=SourceConfig)
    preprocess: PreprocessConfig = dataclasses.field(default_factory=PreprocessConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    explain: ExplainConfig = dataclasses.field(default_factory=ExplainConfig)
    output: OutputConfig = dataclasses.field(default_factory=OutputConfig)
    sanity: SanityConfig = dataclasses.field(default_factory=SanityConfig)
    findings: FindingsConfig = dataclasses.field(default_factory=FindingsConfig)
    compare: CompareConfig = dataclasses.field(default_factory=CompareConfig)

    def __post_init__(self):
        # Resolves the defaults that depend on another section: sanity.enabled (see
        # SanityConfig), so every RunConfig holds a bool there.
        if self.sanity.enabled is None:
            enabled = self.explain.nonlinearity_rule == NONLINEARITY_GATE
            object.__setattr__(self, "sanity", dataclasses.replace(self.sanity, enabled=enabled))

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
