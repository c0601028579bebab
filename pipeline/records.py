"""Element types that flow through the pipeline, and the dead-letter record."""

import dataclasses

import numpy as np

# Pipeline stages that can fail per record; each is a dead-letter `stage` value and a counter.
STAGE_READ = "read"
STAGE_PARSE = "parse"
STAGE_DECODE = "decode"
STAGE_PREPROCESS = "preprocess"
STAGE_EXPLAIN = "explain"
STAGE_NON_FINITE = "non_finite"


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


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """An input that could not be processed, with the stage that failed and why."""

    example_id: str
    position: str
    stage: str
    error: str
