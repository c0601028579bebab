"""Per-example audit statistics of reduced saliency maps, defined once, in numpy.

Every statistic treats a map's absolute values as attention "mass". All functions take a
batch of maps ``(N, H, W)`` and return float64 ``(N,)`` (or ``(N, 2)``), so they vectorise
over a whole batch. An all-zero map gives 0 for shares and NaN where a statistic is
undefined (entropy, centre of mass).
"""

import numpy as np

# Column names of the per-example statistics, in output order.
TOTAL_MASS = "total_mass"
TOP1_SHARE = "top1_share"
TOP5_SHARE = "top5_share"
ENTROPY = "entropy"
BORDER_SHARE = "border_share"
CENTER_Y = "center_y"
CENTER_X = "center_x"
BOX_SHARE = "box_share"
STATISTIC_NAMES = (TOTAL_MASS, TOP1_SHARE, TOP5_SHARE, ENTROPY, BORDER_SHARE, CENTER_Y, CENTER_X)
# Every per-example statistic, in the column order of an audit batch's statistics array.
AGGREGATED_STATISTICS = (*STATISTIC_NAMES, BOX_SHARE)
# Aggregates keep a histogram of every statistic bounded in [0, 1] (total_mass is unbounded).
HISTOGRAM_STATISTICS = tuple(name for name in AGGREGATED_STATISTICS if name != TOTAL_MASS)
HISTOGRAM_BINS = 20


class _Mass:
    """|maps| as float32 ``(N, H, W)`` and float64 ``(N,)`` totals, computed once and shared by
    every statistic of ``per_example_statistics``."""

    def __init__(self, maps):
        self.grid = np.abs(np.asarray(maps, np.float32))
        self.flat = self.grid.reshape(len(self.grid), -1)
        self.total = self.flat.sum(axis=1, dtype=np.float64)


def _as_mass(maps):
    return maps if isinstance(maps, _Mass) else _Mass(maps)


def total_mass(maps):
    """Sum of |map| per example (summed in float64)."""
    return _as_mass(maps).total


def top_shares(maps, fractions):
    """Share of mass in the top ``fraction`` of pixels (at least one pixel), for several
    fractions with one partition of each map: concentration. A map with all mass in one pixel
    gives 1; a uniform map gives about ``fraction``.

    Returns:
        list of float64 ``(N,)``, one per fraction.
    """
    mass = _as_mass(maps)
    size = mass.flat.shape[1]
    counts = [max(1, int(np.ceil(fraction * size))) for fraction in fractions]
    # Partition once for the largest top set, then only within it; float32 halves the traffic.
    widest = max(counts)
    top = np.partition(mass.flat, size - widest, axis=1)[:, size - widest:]
    shares = []
    for count in counts:
        subset = top if count == widest else np.partition(top, widest - count, axis=1)[
            :, widest - count:]
        shares.append(_share(subset.sum(axis=1, dtype=np.float64), mass.total))
    return shares


def normalized_entropy(maps):
    """Shannon entropy of the mass distribution divided by log(H*W): 1 = uniform, 0 = one pixel.

    Uses H = log(T) - sum(m log m) / T for masses m with total T: one float32 log per pixel
    and no normalised copy of the maps.
    """
    mass = _as_mass(maps)
    log_mass = np.log(np.maximum(mass.flat, np.finfo(np.float32).tiny))  # 0 log 0 = 0
    mass_log_mass = np.einsum("ij,ij->i", mass.flat, log_mass, dtype=np.float64)
    safe_total = np.where(mass.total > 0, mass.total, 1.0)
    entropy = np.maximum(np.log(safe_total) - mass_log_mass / safe_total, 0.0)
    size = mass.flat.shape[1]
    result = entropy / np.log(size) if size > 1 else np.zeros(len(entropy))
    return np.where(mass.total > 0, result, np.nan)


def border_band_pixels(band_fraction, height, width):
    """The border band's width in pixels: ``band_fraction`` of min(H, W), at least one pixel."""
    return max(1, int(round(band_fraction * min(height, width))))


def border_share(maps, band_fraction=0.1):
    """Share of mass within a border band ``border_band_pixels`` wide on every side."""
    mass = _as_mass(maps)
    count, height, width = mass.grid.shape
    band = border_band_pixels(band_fraction, height, width)
    interior = mass.grid[:, band:height - band, band:width - band].reshape(count, -1).sum(
        axis=1, dtype=np.float64)
    return _share(mass.total - interior, mass.total)


def center_of_mass(maps):
    """float64 ``(N, 2)``: the mass-weighted (y, x) pixel-centre position, scaled into [0, 1]."""
    mass = _as_mass(maps)
    height, width = mass.grid.shape[1:3]
    ys = (np.arange(height) + 0.5) / height
    xs = (np.arange(width) + 0.5) / width
    rows = mass.grid.sum(axis=2, dtype=np.float64)
    columns = mass.grid.sum(axis=1, dtype=np.float64)
    total = mass.total[:, None]
    center = np.stack([rows @ ys, columns @ xs], 1) / np.where(total > 0, total, 1.0)
    return np.where(total > 0, center, np.nan)


def box_masks(boxes, height, width):
    """bool ``(N, H, W)`` masks of normalised ``(ymin, xmin, ymax, xmax)`` boxes ``(N, 4)``.

    A pixel is inside when its centre lies inside the box.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    ys = (np.arange(height) + 0.5) / height
    xs = (np.arange(width) + 0.5) / width
    in_y = (ys[None] >= boxes[:, 0:1]) & (ys[None] <= boxes[:, 2:3])
    in_x = (xs[None] >= boxes[:, 1:2]) & (xs[None] <= boxes[:, 3:4])
    return in_y[:, :, None] & in_x[:, None, :]


def mask_share(maps, masks):
    """Share of mass inside bool ``masks`` ``(N, H, W)``: the energy-based pointing game."""
    mass = _as_mass(maps)
    inside = np.where(np.asarray(masks, bool), mass.grid, np.float32(0.0)).reshape(
        len(mass.grid), -1).sum(axis=1, dtype=np.float64)
    return _share(inside, mass.total)


def _share(part, total):
    """part / total per example, 0 where the total is 0."""
    return np.where(total > 0, part / np.where(total > 0, total, 1.0), 0.0)


def per_example_statistics(maps, border_band_fraction=0.1, boxes=None):
    """All per-example statistics of reduced maps, keyed by column name.

    Args:
        maps: float ``(N, H, W)`` reduced maps.
        border_band_fraction: border band width as a fraction of min(H, W).
        boxes: optional float ``(N, 4)`` normalised boxes; rows of NaN mean "no box".

    Returns:
        dict of column name -> float64 ``(N,)``; includes ``box_share`` only with boxes.
    """
    mass = _Mass(maps)  # |maps| and the totals, shared by every statistic
    center = center_of_mass(mass)
    top1, top5 = top_shares(mass, (0.01, 0.05))
    stats = {
        TOTAL_MASS: mass.total,
        TOP1_SHARE: top1,
        TOP5_SHARE: top5,
        ENTROPY: normalized_entropy(mass),
        BORDER_SHARE: border_share(mass, border_band_fraction),
        CENTER_Y: center[:, 0],
        CENTER_X: center[:, 1],
    }
    if boxes is not None:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        has_box = ~np.isnan(boxes).any(axis=1)
        height, width = mass.grid.shape[1:3]
        shares = mask_share(mass, box_masks(np.nan_to_num(boxes), height, width))
        stats[BOX_SHARE] = np.where(has_box, shares, np.nan)
    return stats
