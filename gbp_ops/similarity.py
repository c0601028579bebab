"""Similarity of two batches of saliency maps: Spearman rank correlation and SSIM of their
absolute values. Used by the sanity check; numpy, plus ``tf.image.ssim``."""

import numpy as np
import tensorflow as tf

from gbp_ops.maps import scale_to_unit

# SSIM window (Wang et al. 2004, as tf.image.ssim): 11x11 Gaussian, sigma 1.5, valid padding.
SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5


def average_ranks(values):
    """float64 ranks 1..n along the last axis of a 2-D array, ties given their average rank.

    The argsort need not be stable (tied values share one average rank whatever their
    order), and the sorted values come from ``np.sort``, which is much faster than gathering
    them through the argsort.

    Args:
        values: ``(N, P)`` (float32 sorts faster than float64 and ranks the same).

    Returns:
        float64 ``(N, P)``.
    """
    values = np.asarray(values)
    count, size = values.shape
    order = np.argsort(values, axis=1)
    ordered = np.sort(values, axis=1)
    starts = np.empty((count, size), bool)
    starts[:, 0] = True  # every row starts a run of ties, so no run spans two rows
    np.not_equal(ordered[:, 1:], ordered[:, :-1], out=starts[:, 1:])
    del ordered
    flat = starts.ravel()
    firsts = np.flatnonzero(flat)
    lasts = np.append(firsts[1:], flat.size) - 1
    run_rank = 0.5 * (firsts + lasts) - (firsts // size) * size + 1.0
    ranks = np.empty(count * size, np.float64)
    ranks[(order + (np.arange(count) * size)[:, None]).ravel()] = run_rank[np.cumsum(flat) - 1]
    return ranks.reshape(count, size)


def spearman_rank_correlation(a, b):
    """Spearman rank correlation of ``|a|`` and ``|b|``, per example.

    Args:
        a: float ``(N, H, W)`` maps.
        b: float ``(N, H, W)`` maps.

    Returns:
        float64 ``(N,)`` in [-1, 1]; NaN where either map is constant (no ranking).
    """
    a, b = np.asarray(a), np.asarray(b)
    dtype = np.float32 if a.dtype == b.dtype == np.float32 else np.float64
    a = np.abs(a.astype(dtype, copy=False)).reshape(len(a), -1)
    b = np.abs(b.astype(dtype, copy=False)).reshape(len(b), -1)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape} vs {b.shape}")
    result = np.full(len(a), np.nan)
    if not a.size:
        return result
    centre = (a.shape[1] + 1) / 2
    rx, ry = average_ranks(a) - centre, average_ranks(b) - centre
    denominator = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    defined = denominator > 0
    result[defined] = np.clip((rx * ry).sum(axis=1)[defined] / denominator[defined], -1.0, 1.0)
    return result


def _unit_range(maps):
    """``|maps|`` divided by each map's max, float32 ``(N, H, W, 1)``; zero maps stay zero."""
    return np.abs(scale_to_unit(maps)[0])[..., None]


def ssim(a, b):
    """Structural similarity of ``|a|`` and ``|b|``, each scaled by its max into [0, 1].

    Uses ``tf.image.ssim`` with max_val=1 and its standard window: an 11x11 Gaussian with
    sigma 1.5 (shrunk to the map side for maps smaller than 11), K1=0.01, K2=0.03.

    Args:
        a: float ``(N, H, W)`` maps.
        b: float ``(N, H, W)`` maps.

    Returns:
        float64 ``(N,)``; 1 for identical maps.
    """
    a, b = _unit_range(a), _unit_range(b)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape[:-1]} vs {b.shape[:-1]}")
    filter_size = min(SSIM_FILTER_SIZE, a.shape[1], a.shape[2])
    values = tf.image.ssim(tf.constant(a), tf.constant(b), max_val=1.0,
                           filter_size=filter_size, filter_sigma=SSIM_FILTER_SIGMA)
    return np.asarray(values, np.float64)
