"""SmoothGrad (Smilkov et al. 2017) over any method: the mean of the maps of noisy copies.

The noise of example b's copy s is ``N(0, sigma_b^2)`` drawn with TensorFlow's stateless RNG
from the seed pair ``(seeds[b], s)``, so an example's noise depends only on its own seed:
reruns, other batch sizes and other batch neighbours give bit-identical maps.
``sigma_b = sigma_fraction * (max - min)`` of example b's own input values (all pixels and
channels); a constant image gets no noise.
"""

import hashlib

import numpy as np
import tensorflow as tf


def seed_from_id(example_id):
    """A stable int64 seed of an example id string (the first 8 bytes of its SHA-256, 63 bits).

    Python's ``hash`` is salted per process, so it would give other noise on every worker.
    """
    digest = hashlib.sha256(str(example_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


def seeds_from_ids(example_ids):
    """int64 ``(N,)`` seeds of ``seed_from_id`` for a sequence of ids."""
    return np.array([seed_from_id(example_id) for example_id in example_ids], np.int64)


def noise_sample(shape, seeds, sample_index):
    """float32 ``(B, *shape)`` standard-normal noise; row b is seeded by ``(seeds[b], index)``.

    Args:
        shape: the per-example shape, e.g. ``(H, W, C)``.
        seeds: int64 ``(B,)`` tensor.
        sample_index: int64 scalar tensor, the SmoothGrad sample.
    """
    return tf.map_fn(
        lambda seed: tf.random.stateless_normal(shape, tf.stack([seed, sample_index])),
        seeds, fn_output_signature=tf.float32)


def smoothgrad_maps(map_fn, images, seeds, samples, sigma_fraction):
    """The mean of ``map_fn`` over ``samples`` noisy copies of ``images``, in one graph loop.

    Args:
        map_fn: float32 ``(B, H, W, C)`` images -> float32 ``(B, H, W, C)`` maps.
        images: float32 ``(B, H, W, C)`` tensor.
        seeds: int64 ``(B,)`` tensor, one noise seed per example.
        samples: int >= 1.
        sigma_fraction: float >= 0, the noise std as a fraction of each image's range.

    Returns:
        float32 ``(B, H, W, C)``.
    """
    axes = list(range(1, images.shape.rank))
    value_range = (tf.reduce_max(images, axis=axes, keepdims=True)
                   - tf.reduce_min(images, axis=axes, keepdims=True))
    sigma = tf.cast(sigma_fraction, tf.float32) * value_range
    shape = images.shape[1:]

    def body(index, total):
        noisy = images + sigma * noise_sample(shape, seeds, index)
        return index + 1, total + map_fn(noisy)

    _, total = tf.while_loop(lambda index, _: index < samples, body,
                             (tf.constant(0, tf.int64), tf.zeros_like(images)))
    return total / tf.cast(samples, tf.float32)
