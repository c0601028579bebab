"""The small, normalised maps that findings cluster: ``|map|`` area-averaged to a fixed grid,
then each map divided by its own max (all-zero maps stay zero)."""

import numpy as np


def cell_bounds(size, cells):
    """int ``(cells + 1,)`` pixel edges splitting ``size`` pixels into ``cells`` nearly equal
    runs (each at least one pixel; a side smaller than ``cells`` repeats pixels)."""
    edges = np.floor(np.arange(cells + 1) * size / cells).astype(np.int64)
    return np.minimum(edges, size)


def area_average(maps, cells):
    """float ``(N, H, W)`` -> float32 ``(N, cells, cells)``: the mean of each grid cell."""
    maps = np.asarray(maps, np.float64)
    count, height, width = maps.shape
    if height % cells == 0 and width % cells == 0:  # equal blocks: one vectorised mean
        blocks = maps.reshape(count, cells, height // cells, cells, width // cells)
        return blocks.mean(axis=(2, 4)).astype(np.float32)
    rows, cols = cell_bounds(height, cells), cell_bounds(width, cells)
    out = np.empty((len(maps), cells, cells), np.float64)
    for i in range(cells):
        y0, y1 = rows[i], max(rows[i + 1], rows[i] + 1)
        band = maps[:, min(y0, height - 1):min(y1, height)]
        for j in range(cells):
            x0, x1 = cols[j], max(cols[j + 1], cols[j] + 1)
            out[:, i, j] = band[:, :, min(x0, width - 1):min(x1, width)].mean(axis=(1, 2))
    return out.astype(np.float32)


def small_maps(reduced, cells):
    """Reduced maps -> the maps findings compare.

    Args:
        reduced: float ``(N, H, W)`` channel-reduced saliency maps (signed maps count by
            magnitude).
        cells: the side of the small map (``findings.map_size``).

    Returns:
        float32 ``(N, cells, cells)`` in [0, 1], each map max-normalised.
    """
    averaged = area_average(np.abs(np.asarray(reduced, np.float32)), cells)
    peaks = averaged.reshape(len(averaged), -1).max(axis=1) if len(averaged) else np.zeros(0)
    safe = np.where(peaks > 0, peaks, 1.0).astype(np.float32)
    return averaged / safe[:, None, None]
