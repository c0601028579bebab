"""The explainers' input checks and batching, shared by every explainer family (Keras and
SavedModel): numpy only."""

import numpy as np

from gbp_ops import errors

TARGET_PREDICTED = -1  # target value meaning "explain the predicted class"


def check_images(images, input_shape):
    """float32 ``(N, *input_shape)`` images; raises GBPError for any other shape."""
    images = np.asarray(images)
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(input_shape):
        raise errors.GBPError(errors.BAD_IMAGE_SHAPE.format(
            expected=", ".join(str(d) for d in input_shape), got=images.shape))
    return images.astype(np.float32, copy=False)


def check_targets(targets, count, num_classes):
    """int32 ``(count,)`` targets (None: all ``TARGET_PREDICTED``); raises GBPError for a wrong
    shape or a class outside ``[TARGET_PREDICTED, num_classes)``."""
    if targets is None:
        return np.full(count, TARGET_PREDICTED, np.int32)
    targets = np.asarray(targets)
    if targets.shape != (count,) or not np.issubdtype(targets.dtype, np.integer):
        raise errors.GBPError(errors.BAD_TARGETS_SHAPE.format(count=count, got=targets.shape))
    bad = targets[(targets >= num_classes) | (targets < TARGET_PREDICTED)]
    if bad.size:
        raise errors.GBPError(
            errors.TARGET_OUT_OF_RANGE.format(target=int(bad[0]), num_classes=num_classes)
        )
    return targets.astype(np.int32)


def check_seeds(seeds, count):
    """int64 ``(count,)`` SmoothGrad seeds (None: example i gets seed i); raises GBPError for a
    wrong shape or dtype."""
    if seeds is None:
        return np.arange(count, dtype=np.int64)
    seeds = np.asarray(seeds)
    if seeds.shape != (count,) or not np.issubdtype(seeds.dtype, np.integer):
        raise errors.GBPError(errors.BAD_SEEDS_SHAPE.format(count=count, got=seeds.shape))
    return seeds.astype(np.int64)


def run_in_batches(step, arrays, batch_size):
    """``step(*chunks)`` on consecutive ``batch_size`` rows of the equal-length ``arrays``
    (once on the empty arrays when there are no rows); each output column concatenated.

    Args:
        step: ``(*arrays' rows) -> tuple of (n, ...) arrays``.
    """
    count = len(arrays[0])
    parts = [step(*(array[i:i + batch_size] for array in arrays))
             for i in range(0, count, batch_size)] or [step(*arrays)]
    return tuple(np.concatenate(column) for column in zip(*parts))


def pad_rows(array, size):
    """Pads ``array`` (n, ...) with zero rows to ``size`` rows (n <= size)."""
    pad = size - len(array)
    if not pad:
        return array
    return np.concatenate([array, np.zeros((pad, *array.shape[1:]), array.dtype)])
