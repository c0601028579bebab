"""Similarity of two batches of saliency maps: Spearman rank correlation and SSIM of their
absolute values. Used by the sanity check; numpy, plus ``tf.image.ssim``."""

import numpy as np
import tensorflow as tf

from gbp_ops.maps import scale_to_unit

# SSIM window (Wang et al. 2004, as tf.image.ssim): 11x11 Gaussian, sigma 1.5, valid padding.
SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5


def _average_ranks(values):
    """float64 ranks 1..n of a 1-D array, ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    ordered = values[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    dense = np.cumsum(starts)[inverse]
    bounds = np.r_[np.flatnonzero(starts), len(starts)]
    return 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


def spearman_rank_correlation(a, b):
    """Spearman rank correlation of ``|a|`` and ``|b|``, per example.

    Args:
        a: float ``(N, H, W)`` maps.
        b: float ``(N, H, W)`` maps.

    Returns:
        float64 ``(N,)`` in [-1, 1]; NaN where either map is constant (no ranking).
    """
    a = np.abs(np.asarray(a, np.float64)).reshape(len(a), -1)
    b = np.abs(np.asarray(b, np.float64)).reshape(len(b), -1)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape} vs {b.shape}")
    result = np.full(len(a), np.nan)
    for index, (x, y) in enumerate(zip(a, b)):
        rx = _average_ranks(x) - (len(x) + 1) / 2
        ry = _average_ranks(y) - (len(y) + 1) / 2
        denominator = np.sqrt((rx * rx).sum() * (ry * ry).sum())
        if denominator > 0:
            result[index] = np.clip((rx * ry).sum() / denominator, -1.0, 1.0)
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
