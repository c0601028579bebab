"""Parse, decode and preprocess records into model inputs; failures become dead letters."""

import apache_beam as beam
import numpy as np
import tensorflow as tf

from pipeline.images import scale_pixels
from pipeline.records import (
    ALPHA_DROPPED,
    COLOUR_TO_GREY,
    CONVERSIONS,
    CONVERTED_PREFIX,
    DEAD_LETTERS,
    DOWNSCALED,
    GREY_TO_COLOUR,
    METRICS_NAMESPACE,
    RESIZE_FACTOR,
    STAGE_PARSE,
    STAGE_PREPROCESS,
    UPSCALED,
    DeadLetter,
    PreparedExample,
    RawExample,
    StageError,
)
from pipeline.stages.decode import decode_pixels_and_size

RGB_TO_GRAY = np.array([0.2989, 0.5870, 0.1140], np.float32)


def _feature_values(feature):
    kind = feature.WhichOneof("kind")
    return list(getattr(feature, kind).value) if kind else []


def parse_tf_example(position, serialized, source):
    """Parses a serialized ``tf.train.Example`` into a RawExample using the configured keys.

    Raises:
        StageError(parse): not an Example, or a required feature is missing or malformed.
    """
    try:
        features = tf.train.Example.FromString(serialized).features.feature
    except Exception as error:  # protobuf raises DecodeError, a private type
        raise StageError(STAGE_PARSE, f"not a tf.train.Example: {error}") from error
    if source.image_key not in features:
        raise StageError(STAGE_PARSE, f"missing image feature '{source.image_key}'")
    image_values = _feature_values(features[source.image_key])
    if len(image_values) != 1 or not isinstance(image_values[0], bytes):
        raise StageError(STAGE_PARSE, f"feature '{source.image_key}' must hold one bytes value")
    label = None
    if source.label_key and source.label_key in features:
        values = _feature_values(features[source.label_key])
        if len(values) != 1 or not isinstance(values[0], int):
            raise StageError(STAGE_PARSE, f"feature '{source.label_key}' must hold one int")
        label = int(values[0])
    example_id = position
    if source.id_key and source.id_key in features:
        values = _feature_values(features[source.id_key])
        if values and isinstance(values[0], bytes):
            example_id = values[0].decode("utf-8", errors="replace")
    box = None
    if source.box_key and source.box_key in features:
        values = _feature_values(features[source.box_key])
        if len(values) != 4:
            raise StageError(STAGE_PARSE, f"feature '{source.box_key}' must hold 4 floats")
        box = np.asarray(values, np.float32)
    return RawExample(example_id, position, image_values[0], label, box)


def tfds_features_to_raw(position, features, source):
    """Maps a TFDS numpy feature dict to a RawExample (the image is already decoded)."""
    if source.image_key not in features:
        raise StageError(STAGE_PARSE, f"missing image feature '{source.image_key}'")
    label = features.get(source.label_key) if source.label_key else None
    example_id = position
    if source.id_key and source.id_key in features:
        raw_id = features[source.id_key]
        example_id = raw_id.decode("utf-8") if isinstance(raw_id, bytes) else str(raw_id)
    box = features.get(source.box_key) if source.box_key else None
    return RawExample(example_id, position, np.asarray(features[source.image_key]),
                      None if label is None else int(label),
                      None if box is None else np.asarray(box, np.float32).reshape(4))


def to_pixel_range(image):
    """float32 ``(H, W, C)`` in [0, 255]: uint8 as is, float images taken as [0, 1]."""
    if image.dtype == np.uint8:
        return image.astype(np.float32)
    return np.asarray(image, np.float32) * 255.0


def convert_channels(image, channels):
    """``(H, W, 1|3|4)`` float -> ``(H, W, channels)``: gray repeats, alpha drops, RGB->gray."""
    if image.shape[-1] == 4:
        image = image[..., :3]
    if image.shape[-1] == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=-1)
    if channels == 1:
        return (image @ RGB_TO_GRAY)[..., None]
    raise StageError(STAGE_PREPROCESS, f"cannot convert {image.shape[-1]} channels to {channels}")


def preprocess_image(image, input_shape, preprocess):
    """Decoded image (numpy, or the uint8 ``tf.Tensor`` of ``decode_pixels``) -> float32 model
    input ``input_shape`` = ``(H, W, C)``.

    Raises:
        StageError(preprocess): non-finite pixels or an impossible channel conversion.
    """
    return preprocess_with_display(image, input_shape, preprocess)[0]


def resize_uint8(image, size, method):
    """uint8 ``(H, W, C)`` numpy array or tf.Tensor -> float32 numpy ``(*size, C)`` in
    [0, 255], equal to resizing the image as float32, without ever holding it as float32 at
    full size.

    TensorFlow's resize kernels read uint8 directly and interpolate in float32, so this is
    bit-identical to ``tf.image.resize(image.astype(np.float32), size, method)``.
    """
    return np.asarray(tf.image.resize(image, size, method=method), np.float32)


def preprocess_with_display(image, input_shape, preprocess):
    """Like ``preprocess_image``, also returning the resized uint8 ``(H, W, 3)`` image that
    reports draw maps on.

    Returns:
        (float32 ``input_shape`` model input, uint8 ``(H, W, 3)`` display image).
    """
    height, width, channels = input_shape
    exact = False
    if image.dtype == np.uint8 and tuple(image.shape[:2]) != (height, width):
        # A large photo becomes float32 only at the model's size: dropping alpha and resizing
        # first keeps the full-size image at 1 byte per sample.
        if image.shape[-1] == 4:
            image = image[..., :3]
        pixels = resize_uint8(image, (height, width), preprocess.resize_method)
        pixels = convert_channels(pixels, channels)
    else:
        image = np.asarray(image)
        # uint8 pixels that are only copied (no resize, no RGB->gray) stay finite whole
        # numbers: the checks and rounding below would be wasted work on every example.
        exact = image.dtype == np.uint8 and (channels == 3 or image.shape[-1] == 1)
        pixels = to_pixel_range(image)
        if not exact and not np.isfinite(pixels).all():
            raise StageError(STAGE_PREPROCESS, "image has non-finite (NaN or inf) pixel values")
        pixels = convert_channels(pixels, channels)
        if pixels.shape[:2] != (height, width):
            pixels = tf.image.resize(pixels, (height, width),
                                     method=preprocess.resize_method).numpy()
    display = (pixels.astype(np.uint8) if exact
               else np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    if display.shape[-1] == 1:
        display = np.repeat(display, 3, axis=-1)
    return scale_pixels(pixels, preprocess.scaling).astype(np.float32), display


def resolve_target(policy, fixed_target, label):
    """The class to explain: -1 (predicted), the label, or the fixed index."""
    if fixed_target is not None:
        return fixed_target
    if policy == "label":
        if label is None:
            raise StageError(STAGE_PREPROCESS, "target policy 'label' but the record has no label")
        return label
    return -1


def conversions(channels, full_size, input_shape):
    """What preparing an image for the model does to it (``records.CONVERSION_KINDS``).

    Args:
        channels: the decoded image's channels (1, 3 or 4).
        full_size: ``(height, width)`` of the image at full size.
        input_shape: the model input ``(H, W, C)``.

    Returns:
        A tuple of kinds, in ``CONVERSION_KINDS`` order; empty when the image is only scaled.
    """
    height, width, model_channels = input_shape
    kinds = []
    if channels in (3, 4) and model_channels == 1:
        kinds.append(COLOUR_TO_GREY)
    if channels == 1 and model_channels == 3:
        kinds.append(GREY_TO_COLOUR)
    if channels == 4:
        kinds.append(ALPHA_DROPPED)
    if height > RESIZE_FACTOR * full_size[0] or width > RESIZE_FACTOR * full_size[1]:
        kinds.append(UPSCALED)
    if full_size[0] > RESIZE_FACTOR * height or full_size[1] > RESIZE_FACTOR * width:
        kinds.append(DOWNSCALED)
    return tuple(kinds)


def prepare_example(record, config, input_shape):
    """SourceRecord -> PreparedExample; the one place the per-record steps are chained.

    Raises:
        StageError: the stage that failed and why.
    """
    return prepare_and_convert(record, config, input_shape)[0]


def prepare_and_convert(record, config, input_shape):
    """``prepare_example``, and what it did to the image (``conversions``).

    Raises:
        StageError: the stage that failed and why.
    """
    source = config.source
    if isinstance(record.payload, bytes):
        raw = parse_tf_example(record.position, record.payload, source)
    else:
        raw = tfds_features_to_raw(record.position, record.payload, source)
    try:
        decoded, full_size = decode_pixels_and_size(raw.image, source, config.preprocess,
                                                    input_shape[:2])
        image, display = preprocess_with_display(decoded, input_shape, config.preprocess)
        target = resolve_target(config.explain.target, config.fixed_target, raw.label)
    except StageError as error:
        error.example_id = raw.example_id  # known once parsed; name the dead letter by it
        raise
    return (PreparedExample(raw.example_id, raw.position, image, display, raw.label, raw.box,
                            target),
            conversions(int(decoded.shape[-1]), full_size, input_shape))


class PrepareExamplesDoFn(beam.DoFn):
    """SourceRecord -> PreparedExample, or a DeadLetter (tagged ``DEAD_LETTERS``) naming the
    failed stage; and, tagged ``CONVERSIONS``, one ``records.CONVERSION_KINDS`` string per
    conversion the example went through (also the counters ``converted_<kind>``)."""

    def __init__(self, config, input_shape):
        self._config = config
        self._input_shape = tuple(input_shape)

    def setup(self):
        self._prepared = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "examples_prepared")
        self._failed = {}

    def _count_failure(self, stage):
        if stage not in self._failed:
            self._failed[stage] = beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"failed_{stage}")
        self._failed[stage].inc()

    def process(self, record):
        try:
            example, kinds = prepare_and_convert(record, self._config, self._input_shape)
        except StageError as error:
            self._count_failure(error.stage)
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTERS, DeadLetter(error.example_id or record.position, record.position,
                                         error.stage, str(error)))
            return
        self._prepared.inc()
        for kind in kinds:
            beam.metrics.Metrics.counter(METRICS_NAMESPACE, CONVERTED_PREFIX + kind).inc()
            yield beam.pvalue.TaggedOutput(CONVERSIONS, kind)
        yield example


class PrepareWantedDoFn(beam.DoFn):
    """SourceRecord -> ``(key, (value, example_id, model input))`` for each ``(key, value)``
    the side input ``wanted`` (example id -> ``[(key, value)]``) holds for the record's
    example, which is decoded only then (run comparison: the members of a baseline finding,
    re-read to be occluded on the current model). Records that fail to prepare are skipped:
    the run that read them first has them in its errors table.

    Args:
        config: the RunConfig (source, preprocessing).
        input_shape: the model's input ``(H, W, C)``.
    """

    def __init__(self, config, input_shape):
        self._config = config
        self._input_shape = tuple(input_shape)

    def process(self, record, wanted):
        if isinstance(record.payload, bytes):
            try:
                example_id = parse_tf_example(record.position, record.payload,
                                              self._config.source).example_id
            except StageError:
                return
            if not list(wanted[example_id]):
                return
        try:
            example = prepare_example(record, self._config, self._input_shape)
        except StageError:
            return
        for index, key in wanted[example.example_id]:
            yield index, (key, example.example_id, example.image)
