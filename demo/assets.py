"""Demo assets: a synthetic circle-vs-square dataset with a planted shortcut, and a model for it.

The dataset exists to show what a guided-backprop audit finds. In a fraction of the "square"
images (and in no "circle" image) a small pure-white patch sits at a fixed place in the
top-left corner (`MARK_BOX`). A classifier trained on these images can learn the patch as a
shortcut for "square"; its saliency maps should then light up inside `MARK_BOX`.

In the demo's data the marked squares are also the ones whose shape is barely visible
(`hidden_contrast`), like the tagged horse photos of Lapuschkin et al. (2019) in which the
horse is hard to see. As many circles are drawn just as faintly, without a mark, so "faint"
is no cue for either class: on the marked squares the model can only be right through the
mark, and covering the mark changes its answer. That is the shortcut the findings stage must
find and prove.

Pixel values of the images other than the mark are clipped to `MAX_NON_MARK_VALUE` (< 255),
so a pure-white pixel in an image is always part of a mark.
"""

import dataclasses
import functools
import json
import logging
import math
import time

import keras
import numpy as np
import tensorflow as tf

from demo.reference_model import build_reference_model

logger = logging.getLogger(__name__)

CLASS_NAMES = ("circle", "square")

# Normalised (ymin, xmin, ymax, xmax) of the shortcut mark: a 6x6 patch at pixel (4, 4) for
# S=64, scaled with the image side (pixel bounds are rounded, see `mark_pixel_box`).
MARK_BOX = (0.0625, 0.0625, 0.15625, 0.15625)
MARK_VALUE = 255
MAX_NON_MARK_VALUE = 235

# tf.train.Example feature keys of the demo TFRecords.
IMAGE_KEY = "image/encoded"
LABEL_KEY = "image/class/label"
ID_KEY = "image/id"
MARK_BOX_KEY = "image/mark_box"

# Spec for `tf.io.parse_single_example` / `parse_example` on the demo TFRecords.
FEATURE_SPEC = {
    IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
    LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
    ID_KEY: tf.io.FixedLenFeature([], tf.string),
    MARK_BOX_KEY: tf.io.FixedLenFeature([4], tf.float32, default_value=[0.0] * 4),
}

SHARD_PREFIX = "shapes"
# Circle radius as a fraction of S (squares get the same area), and pixel noise std.
_RADIUS_RANGE = (0.14, 0.28)
_NOISE_STD = 4.0
# The demo's planted subgroup: the share of squares that are marked, and the contrast at which
# those squares (and as many unmarked circles) are drawn.
DEMO_SHORTCUT_FRACTION = 0.25
DEMO_HIDDEN_CONTRAST = 0.05
# Training: BatchNorm momentum 0.9 (not Keras' 0.99) so the moving statistics settle within
# the few hundred steps of a demo run; otherwise inference-mode accuracy stays near chance.
_BN_MOMENTUM = 0.9
_DEFAULT_EPOCHS = 16
_WIDTH_DIVISOR = 2
_STAMP_NAME = "assets.json"
_STAMP_VERSION = 2  # Bump when synthesis or training changes, to invalidate cached assets.


def mark_pixel_box(image_size):
    """Returns the integer pixel bounds `(y0, x0, y1, x1)` (end-exclusive) of the mark.

    Args:
        image_size: S, the square image side.

    Returns:
        A tuple of 4 ints; the mark covers `image[y0:y1, x0:x1]`.
    """
    y0, x0, y1, x1 = (int(v * image_size + 0.5) for v in MARK_BOX)
    return y0, x0, max(y1, y0 + 1), max(x1, x0 + 1)


def _draw_shape(image, label, background, rng, contrast=1.0):
    """Draws a filled circle (label 0) or axis-aligned square (label 1) in place.

    Both shapes of one size have the same area, so size is no cue for the class. With
    `contrast` < 1 the shape's colour is moved that far from the background towards its own.
    """
    size = image.shape[0]
    radius = rng.uniform(*_RADIUS_RANGE) * size
    half = radius * math.sqrt(math.pi) / 2 if label == 1 else radius
    cy, cx = rng.uniform(half + 1, size - half - 1, size=2)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    if label == 1:
        inside = (np.abs(yy - cy) <= half) & (np.abs(xx - cx) <= half)
    else:
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    colour = rng.uniform(0, 220, size=3)
    for _ in range(20):  # Ask for a colour that stands out from the background.
        if np.linalg.norm(colour - background) >= 90:
            break
        colour = rng.uniform(0, 220, size=3)
    image[inside] = background + contrast * (colour - background)


def synthesize_shapes(num_examples, image_size=64, shortcut_fraction=0.5, seed=0,
                      hidden_contrast=1.0):
    """Synthesises circle/square images, planting a corner mark in some squares.

    Each image is a filled shape of random size, position and colour on a noisy
    random-colour background. Labels are balanced (alternating, then shuffled).

    Args:
        num_examples: N, the number of images.
        image_size: S, the square image side in pixels.
        shortcut_fraction: the fraction of class-1 ("square") images that get the mark
            (rounded to a whole count). Class-0 images never get it.
        seed: seed of the numpy generator; equal arguments give equal arrays.
        hidden_contrast: the contrast of the marked squares' shapes, and of as many randomly
            chosen circles' (1.0, the default, draws every shape alike and draws no more
            random numbers than before this option existed).

    Returns:
        A dict of numpy arrays, all with leading dimension N:
            images: uint8 `(N, S, S, 3)`.
            labels: int64 `(N,)`, 0 = "circle", 1 = "square" (see `CLASS_NAMES`).
            has_mark: bool `(N,)`, whether the image carries the mark.
            faint: bool `(N,)`, whether the shape was drawn at `hidden_contrast` (all False
                when it is 1.0).
            mark_box: float32 `(N, 4)`, the mark's normalised (ymin, xmin, ymax, xmax),
                zeros when there is no mark.
            ids: str `(N,)`, like "shapes-000042".
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_examples) % 2).astype(np.int64)
    squares = np.flatnonzero(labels == 1)
    marked = rng.choice(squares, size=int(round(shortcut_fraction * len(squares))), replace=False)
    has_mark = np.zeros(num_examples, dtype=bool)
    has_mark[marked] = True
    faint = np.zeros(num_examples, dtype=bool)
    if hidden_contrast != 1.0:
        circles = np.flatnonzero(labels == 0)
        faint[marked] = True
        faint[rng.choice(circles, size=min(len(marked), len(circles)), replace=False)] = True

    images = np.empty((num_examples, image_size, image_size, 3), dtype=np.uint8)
    for index in range(num_examples):
        background = rng.uniform(0, 200, size=3)
        image = np.empty((image_size, image_size, 3), dtype=np.float32)
        image[:] = background
        _draw_shape(image, labels[index], background, rng,
                    hidden_contrast if faint[index] else 1.0)
        image += rng.normal(0, _NOISE_STD, size=image.shape)
        images[index] = np.clip(np.round(image), 0, MAX_NON_MARK_VALUE)

    y0, x0, y1, x1 = mark_pixel_box(image_size)
    images[has_mark, y0:y1, x0:x1, :] = MARK_VALUE
    mark_box = np.zeros((num_examples, 4), dtype=np.float32)
    mark_box[has_mark] = np.array([y0, x0, y1, x1], dtype=np.float32) / image_size
    ids = np.array([f"{SHARD_PREFIX}-{i:06d}" for i in range(num_examples)])
    return {
        "images": images,
        "labels": labels,
        "has_mark": has_mark,
        "faint": faint,
        "mark_box": mark_box,
        "ids": ids,
    }


def _to_example(image_bytes, label, example_id, mark_box):
    """Builds the `tf.train.Example` of one demo image (see `FEATURE_SPEC`)."""
    feature = {
        IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes])),
        LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
        ID_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[example_id.encode()])),
    }
    if mark_box is not None:
        # Only marked images carry a box, so box_share is null (not 0) for the rest.
        feature[MARK_BOX_KEY] = tf.train.Feature(float_list=tf.train.FloatList(value=mark_box))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def write_tfrecord_shards(arrays, output_dir, num_shards=4, image_format="png"):
    """Writes the arrays as `tf.train.Example` TFRecord shards.

    Examples are split into `num_shards` contiguous, near-equal slices, in order. Features:
    `IMAGE_KEY` (encoded image bytes), `LABEL_KEY` (int64), `ID_KEY` (utf-8 bytes) and
    `MARK_BOX_KEY` (4 floats, only on marked images); `FEATURE_SPEC` parses them back
    (all-zero box where absent).

    Args:
        arrays: a dict as returned by `synthesize_shapes` (`images`, `labels`, `ids`,
            `mark_box` are used).
        output_dir: directory (local or any `tf.io.gfile` path); created if missing.
        num_shards: number of files to write (some may be empty if N < num_shards).
        image_format: "png" (lossless) or "jpeg".

    Returns:
        The shard paths `output_dir/shapes-{i:05d}-of-{n:05d}.tfrecord`, in order.
    """
    if image_format == "png":
        encode = tf.io.encode_png
    elif image_format in ("jpeg", "jpg"):
        encode = functools.partial(tf.io.encode_jpeg, quality=95)
    else:
        raise ValueError(f"image_format must be 'png' or 'jpeg', got {image_format!r}")
    tf.io.gfile.makedirs(output_dir)
    slices = np.array_split(np.arange(len(arrays["labels"])), num_shards)
    paths = []
    for shard, indices in enumerate(slices):
        name = f"{SHARD_PREFIX}-{shard:05d}-of-{num_shards:05d}.tfrecord"
        path = tf.io.gfile.join(output_dir, name)
        with tf.io.TFRecordWriter(path) as writer:
            for i in indices:
                example = _to_example(
                    encode(arrays["images"][i]).numpy(),
                    arrays["labels"][i],
                    str(arrays["ids"][i]),
                    arrays["mark_box"][i].tolist() if arrays["has_mark"][i] else None,
                )
                writer.write(example.SerializeToString())
        paths.append(path)
    logger.info("Wrote %d examples to %d shards in %s", len(arrays["labels"]), num_shards,
                output_dir)
    return paths


def train_demo_model(
    arrays,
    input_size=64,
    epochs=_DEFAULT_EPOCHS,
    seed=0,
    width_divisor=_WIDTH_DIVISOR,
    batch_size=32,
    validation_fraction=0.2,
):
    """Trains the reference CNN on the demo arrays with Adam.

    Images are scaled to float32 in [0, 1] (`/ 255`). The last `validation_fraction` of the
    examples is held out; the accuracies and training time are logged. BatchNorm layers
    train with momentum 0.9 (see `_BN_MOMENTUM`); the architecture is unchanged.

    Args:
        arrays: a dict as returned by `synthesize_shapes`, images uint8 `(N, S, S, 3)` with
            S = `input_size`, labels int `(N,)`.
        input_size: S, the model's input side (must match the images, divisible by 16).
        epochs: passes over the training examples.
        seed: seeds the initial weights, shuffling and dropout.
        width_divisor: passed to `build_reference_model` (2 halves every layer width).
        batch_size: examples per Adam step.
        validation_fraction: share of the examples (taken from the end) held out.

    Returns:
        The trained, compiled functional `keras.Model`: float32 `(batch, S, S, 3)` in [0, 1]
        to `(batch, len(CLASS_NAMES))` softmax probabilities.
    """
    model, _ = _train_and_score(
        arrays, input_size, epochs, seed, width_divisor, batch_size, validation_fraction
    )
    return model


def _train_and_score(
    arrays, input_size, epochs, seed, width_divisor, batch_size, validation_fraction
):
    """Does the work of `train_demo_model`; returns `(model, metrics)`, metrics a dict."""
    images = arrays["images"]
    if images.shape[1:] != (input_size, input_size, 3):
        raise ValueError(f"images have shape {images.shape[1:]}, model wants {input_size}")
    x = images.astype(np.float32) / 255.0
    y = np.asarray(arrays["labels"], dtype=np.int64)
    num_train = len(y) - int(len(y) * validation_fraction)

    model = build_reference_model(
        input_size=input_size,
        num_classes=len(CLASS_NAMES),
        width_divisor=width_divisor,
        seed=seed,
    )
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = _BN_MOMENTUM
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(x[:num_train], y[:num_train], batch_size=batch_size, epochs=epochs, verbose=0)
    metrics = {"train_seconds": round(time.perf_counter() - start, 1)}
    metrics["train_accuracy"] = model.evaluate(x[:num_train], y[:num_train], verbose=0)[1]
    if num_train < len(y):
        metrics["val_accuracy"] = model.evaluate(x[num_train:], y[num_train:], verbose=0)[1]
    metrics = {key: round(float(value), 4) for key, value in metrics.items()}
    logger.info("Trained the demo model on %d images: %s", num_train, metrics)
    return model, metrics


@dataclasses.dataclass(frozen=True)
class DemoAssets:
    """Where the demo data and model live.

    Attributes:
        tfrecord_pattern: glob of the TFRecord shards (features: see `FEATURE_SPEC`).
        model_path: the saved `.keras` model (input float32 `(S, S, 3)` in [0, 1]).
        class_names: names of the label values, `CLASS_NAMES`.
        num_examples: number of examples across all shards.
    """

    tfrecord_pattern: str
    model_path: str
    class_names: tuple[str, ...]
    num_examples: int


def build_demo_assets(
    cache_dir, num_examples=1024, image_size=64, num_shards=4, seed=0, epochs=_DEFAULT_EPOCHS,
    model_seed=None,
):
    """Builds (or reuses) the demo TFRecords and trained model under `cache_dir`.

    Writes `cache_dir/data/shapes-*-of-{num_shards:05d}.tfrecord`, `cache_dir/model.keras`
    and last a stamp `cache_dir/assets.json` with the parameters and training metrics. When
    the stamp matches the parameters and the files exist, nothing is rebuilt.

    Args:
        cache_dir: directory for the assets (created if missing).
        num_examples: N, images to synthesise.
        image_size: S, image side and model input side (divisible by 16).
        num_shards: TFRecord shards to write.
        seed: seeds the data, and the model training unless `model_seed` is given.
        epochs: training epochs.
        model_seed: seeds the initial weights, shuffling and dropout on its own (None, the
            default: `seed`), so other models can be trained on the same data.

    Returns:
        A `DemoAssets`. The stamp's "metrics" hold the training time and accuracies.
    """
    data_dir = tf.io.gfile.join(cache_dir, "data")
    pattern = tf.io.gfile.join(data_dir, f"{SHARD_PREFIX}-*-of-{num_shards:05d}.tfrecord")
    model_path = tf.io.gfile.join(cache_dir, "model.keras")
    stamp_path = tf.io.gfile.join(cache_dir, _STAMP_NAME)
    model_seed = seed if model_seed is None else model_seed
    params = {
        "version": _STAMP_VERSION,
        "num_examples": num_examples,
        "image_size": image_size,
        "num_shards": num_shards,
        "seed": seed,
        "model_seed": model_seed,
        "epochs": epochs,
        "width_divisor": _WIDTH_DIVISOR,
        "shortcut_fraction": DEMO_SHORTCUT_FRACTION,
        "hidden_contrast": DEMO_HIDDEN_CONTRAST,
    }
    assets = DemoAssets(pattern, model_path, CLASS_NAMES, num_examples)

    if tf.io.gfile.exists(stamp_path) and tf.io.gfile.exists(model_path):
        with tf.io.gfile.GFile(stamp_path) as f:
            stamp = json.load(f)
        if stamp.get("params") == params and len(tf.io.gfile.glob(pattern)) == num_shards:
            logger.info("Reusing demo assets in %s", cache_dir)
            return assets
    logger.info("Building demo assets in %s with %s", cache_dir, params)
    if tf.io.gfile.exists(stamp_path):
        tf.io.gfile.remove(stamp_path)
    for stale in tf.io.gfile.glob(tf.io.gfile.join(data_dir, f"{SHARD_PREFIX}-*.tfrecord")):
        tf.io.gfile.remove(stale)

    arrays = synthesize_shapes(num_examples, image_size=image_size, seed=seed,
                               shortcut_fraction=DEMO_SHORTCUT_FRACTION,
                               hidden_contrast=DEMO_HIDDEN_CONTRAST)
    write_tfrecord_shards(arrays, data_dir, num_shards=num_shards)
    model, metrics = _train_and_score(
        arrays, image_size, epochs, model_seed, _WIDTH_DIVISOR, batch_size=32,
        validation_fraction=0.2,
    )
    model.save(model_path)
    stamp = {"params": params, "metrics": metrics, "class_names": list(CLASS_NAMES)}
    with tf.io.gfile.GFile(stamp_path, "w") as f:
        json.dump(stamp, f, indent=2)
    logger.info("Saved demo model to %s", model_path)
    return assets
