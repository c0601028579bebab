"""The shared vocabulary of the pipeline: the elements that flow between stages, the dead-letter
stages and their error, and the few rules several packages apply to them (which rows a table
keeps, which examples a sample takes). Stages, findings, outputs and the launcher import these
from here, never from each other. numpy (and ``gbp_ops.statistics``, numpy-only) alone."""

import dataclasses
import hashlib

import numpy as np

from gbp_ops.statistics import AGGREGATED_STATISTICS

# Pipeline stages that can fail per record; each is a dead-letter `stage` value and a counter.
STAGE_READ = "read"
STAGE_PARSE = "parse"
STAGE_DECODE = "decode"
STAGE_PREPROCESS = "preprocess"
STAGE_EXPLAIN = "explain"
STAGE_NON_FINITE = "non_finite"
# The tagged output that carries DeadLetters out of a stage.
DEAD_LETTERS = "dead_letters"

# What preprocessing did to the inputs, counted per example (the stage's tagged output
# ``CONVERSIONS`` and Beam counters ``<METRICS_NAMESPACE>:converted_<kind>``; the manifest's
# counts ``converted_<kind>``). Channels are told by count (a grey image stored as RGB is
# colour); a resize counts when the model input is more than ``RESIZE_FACTOR`` times larger
# (upscaled) or smaller (downscaled) than the image at full size on either side.
CONVERSIONS = "conversions"
CONVERTED_PREFIX = "converted_"
COLOUR_TO_GREY = "colour_to_grey"
GREY_TO_COLOUR = "grey_to_colour"
ALPHA_DROPPED = "alpha_dropped"
UPSCALED = "upscaled"
DOWNSCALED = "downscaled"
CONVERSION_KINDS = (COLOUR_TO_GREY, GREY_TO_COLOUR, ALPHA_DROPPED, UPSCALED, DOWNSCALED)
RESIZE_FACTOR = 2.0

# Beam metrics the stages report (namespace ``METRICS_NAMESPACE``) and the launcher reads: the
# progress counters, and each batch step's start and end (unix ms distributions, whose min and
# max give the run's batch window: ``pipeline.outputs.summary.batch_window``).
METRICS_NAMESPACE = "gbp_audit"
EXAMPLES_DONE = "examples_done"
DEAD_LETTERS_SEEN = "dead_letters"
BATCH_STARTED_MS = "batch_started_unix_ms"
BATCH_FINISHED_MS = "batch_finished_unix_ms"


class StageError(ValueError):
    """A per-record failure at a named stage; becomes a dead letter."""

    def __init__(self, stage, message, example_id=None):
        super().__init__(message)
        self.stage = stage
        self.example_id = example_id


@dataclasses.dataclass(frozen=True)
class SourceRecord:
    """One input record as read, before parsing.

    Attributes:
        position: ``<shard file name>:<record index>`` (TFRecord) or the TFDS id.
        payload: serialized ``tf.train.Example`` bytes, or a dict of TFDS numpy features.
    """

    position: str
    payload: object


@dataclasses.dataclass(frozen=True)
class RawExample:
    """A parsed record whose image is not decoded yet.

    Attributes:
        example_id: the record's id feature, else its position.
        position: where it came from (see SourceRecord).
        image: encoded JPEG/PNG bytes, raw tensor bytes, or a decoded numpy array.
        label: int class label or None.
        box: float32 ``(4,)`` normalised (ymin, xmin, ymax, xmax) or None.
    """

    example_id: str
    position: str
    image: object
    label: int | None
    box: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class PreparedExample:
    """A model-ready example.

    Attributes:
        image: float32 ``(H, W, C)`` model input.
        display: uint8 ``(H, W, 3)`` the resized image before scaling, for report overlays.
        target: the class to explain, or -1 for "the predicted class".
    """

    example_id: str
    position: str
    image: np.ndarray
    display: np.ndarray
    label: int | None
    box: np.ndarray | None
    target: int


class ExplainedBatch:
    """The examples of one batch with their explanation (RunInference's output).

    Attributes:
        examples: the PreparedExamples that were explained, in order.
        explanation: a ``gbp_ops.Explanation`` for exactly those examples (None if empty).
        dead_letters: DeadLetters for examples of the batch that could not be explained.
    """

    def __init__(self, examples, explanation, dead_letters):
        self.examples = examples
        self.explanation = explanation
        self.dead_letters = dead_letters


@dataclasses.dataclass
class AuditBatch:
    """Columns of explained rows, as numpy arrays of length N.

    Attributes:
        columns: column name -> ``(N,)`` array (object arrays for strings / nullable ints).
        maps: float32 ``(N, h, w)`` reduced (and downsampled) maps, before storage dtype.
        statistics: float64 ``(N, S)`` in ``gbp_ops.statistics.AGGREGATED_STATISTICS`` order.
        displays: uint8 ``(N, H, W, 3)`` input images (for report overlays; not written).
    """

    columns: dict
    maps: np.ndarray
    statistics: np.ndarray
    displays: np.ndarray

    def __len__(self):
        return len(self.maps)

    def statistic(self, name):
        """float64 ``(N,)`` values of one statistic of ``AGGREGATED_STATISTICS``."""
        return self.statistics[:, AGGREGATED_STATISTICS.index(name)]


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """An input that could not be processed, with the stage that failed and why."""

    example_id: str
    position: str
    stage: str
    error: str


def finite_rows(maps, target_scores):
    """bool ``(N,)``: the rows the saliency table keeps, whose ``(N, h, w)`` map and target
    score are all finite (the others become dead letters)."""
    return (np.isfinite(maps).reshape(len(maps), -1).all(axis=1)
            & np.isfinite(target_scores))


def sample_key(example_id):
    """A stable pseudo-random key of an example id (hex str), so the same inputs give the same
    sample: the sanity stage and findings sample the smallest (or largest) keys."""
    return hashlib.sha1(example_id.encode("utf-8")).hexdigest()


def class_name(index, class_names):
    """The name of class ``index`` in ``class_names`` (a tuple, may be empty), or None when
    there is no index or no name for it."""
    if index is None or not 0 <= index < len(class_names):
        return None
    return class_names[index]


UNDEFINED = "–"  # how every output shows a value that is not defined (no label, no class)


def class_label(index, name=None):
    """How every output names a class: its name (``'stripes'``), or ``'class 1'`` without one
    (``name`` None, empty or not a string, e.g. a missing value read back from Parquet; a float
    index such as 3.0 from a nullable column is still ``'class 3'``), or ``UNDEFINED`` without
    an index either (None or NaN)."""
    if isinstance(name, str) and name:
        return name
    if _missing(index):
        return UNDEFINED
    return f"class {int(index)}"


def _missing(value):
    """None, NaN (the one value unequal to itself) or pandas' NA (whose comparisons are NA)."""
    if value is None:
        return True
    try:
        return bool(value != value)
    except TypeError:
        return True
