"""Post-processing of guided-backprop maps: channel reduction, normalisation, storage forms.

Pure numpy; every function takes a batch ``(N, H, W[, C])`` and keeps the batch axis.
"""

import numpy as np

from gbp_ops.choices import REDUCTIONS


def reduce_channels(maps, reduction="max_abs"):
    """Reduces ``(N, H, W, C)`` maps to ``(N, H, W)`` float32.

    Args:
        maps: float ``(N, H, W, C)``.
        reduction: ``'max_abs'`` (max over channels of |g|, the usual GBP view), ``'l2'``
            (channel L2 norm), ``'sum'`` (signed sum) or ``'abs_sum'``.

    Returns:
        float32 ``(N, H, W)``.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if reduction == "max_abs":
        return np.abs(maps).max(axis=-1)
    if reduction == "l2":
        return np.sqrt(np.square(maps).sum(axis=-1))
    if reduction == "sum":
        return maps.sum(axis=-1)
    if reduction == "abs_sum":
        return np.abs(maps).sum(axis=-1)
    raise ValueError(f"unknown reduction '{reduction}'; expected one of {', '.join(REDUCTIONS)}")


def reduced_maps(maps, reduction):
    """``(N, H, W, C)`` maps reduced with ``reduction`` (``reduce_channels``); ``(N, H, W)``
    maps, already reduced in an explainer's step, as they are."""
    return reduce_channels(maps, reduction) if maps.ndim == 4 else maps


def normalize_max_abs(maps):
    """Scales each map of ``(N, ...)`` by its own max |value| into [-1, 1]; all-zero maps stay 0.

    Returns:
        float32, same shape as ``maps``.
    """
    return scale_to_unit(maps)[0]


def downsample(maps, factor):
    """Average-pools ``(N, H, W)`` maps by an integer ``factor`` (H and W divisible by it).

    Returns:
        float32 ``(N, H // factor, W // factor)``.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if factor == 1:
        return maps
    n, h, w = maps.shape
    if h % factor or w % factor:
        raise ValueError(f"map size {h}x{w} is not divisible by downsample factor {factor}")
    return maps.reshape(n, h // factor, factor, w // factor, factor).mean(axis=(2, 4))


def scale_to_unit(maps):
    """Divides each map of ``(N, ...)`` by its own max |value|.

    Storing maps this way keeps float16's full precision: raw gradients are often below
    float16's smallest normal number (6.1e-5), where it keeps only a few bits.

    Returns:
        ``(unit_maps, scales)``: float32 in [-1, 1], same shape; float32 ``(N,)`` scales
        (0 for an all-zero map), so that ``map == unit_map * scale``.
    """
    maps = np.asarray(maps, dtype=np.float32)
    scales = np.abs(maps).reshape(len(maps), -1).max(axis=1) if maps.size else np.zeros(0)
    safe = np.where(scales > 0, scales, 1.0).astype(np.float32)
    return maps / safe.reshape((-1,) + (1,) * (maps.ndim - 1)), scales.astype(np.float32)


def unscale(unit_maps, scales):
    """Inverse of ``scale_to_unit``: float32 maps shaped like ``unit_maps``."""
    unit_maps = np.asarray(unit_maps, dtype=np.float32)
    return unit_maps * np.asarray(scales, np.float32).reshape((-1,) + (1,) * (unit_maps.ndim - 1))


def quantize_uint8(maps):
    """Quantises each map of ``(N, ...)`` to uint8 codes with a per-map float32 scale.

    A value is ``code / 255 * scale`` for non-negative maps; signed maps are not supported
    (reduce with max_abs, l2 or abs_sum first).

    Returns:
        ``(codes, scales)``: uint8 same shape as ``maps``; float32 ``(N,)``.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if (maps < 0).any():
        raise ValueError("uint8 quantisation needs non-negative maps; use a non-signed reduction")
    unit_maps, scales = scale_to_unit(maps)
    return np.rint(unit_maps * 255.0).astype(np.uint8), scales


def dequantize_uint8(codes, scales):
    """Inverse of ``quantize_uint8``: float32 maps shaped like ``codes``."""
    return unscale(np.asarray(codes, np.float32) / 255.0, scales)


FLOAT16_MANTISSA_BITS = 10


def round_mantissa(maps, bits=FLOAT16_MANTISSA_BITS):
    """float32 maps with the mantissa rounded to ``bits`` bits (round to nearest, ties to even,
    on the bit pattern): float16's precision with float32's exponent range, so raw gradients far
    below float16's smallest normal number keep their ``bits`` bits and need no per-map scale.
    Zeroed low bits make byte-stream-split + zstd store the maps about as small as float16.

    Args:
        maps: float ``(N, ...)``; non-finite values pass through unchanged, and a value that
            would round past float32's largest finite number is truncated instead.

    Returns:
        float32, same shape.
    """
    values = np.ascontiguousarray(maps, dtype=np.float32)
    dropped = 23 - bits
    pattern = values.view(np.uint32)
    keep_odd = (pattern >> np.uint32(dropped)) & np.uint32(1)
    low_mask = np.uint32((1 << dropped) - 1)
    half = np.uint32((1 << (dropped - 1)) - 1)
    finite = np.isfinite(values)
    # Non-finite patterns are left alone (their sum could wrap); rounding adds below the mask.
    summed = np.where(finite, pattern, np.uint32(0)) + half + keep_odd
    rounded = (summed & ~low_mask).view(np.float32)
    truncated = (pattern & ~low_mask).view(np.float32)
    rounded = np.where(np.isfinite(rounded), rounded, truncated)
    return np.where(finite, rounded, values).astype(np.float32, copy=False)
