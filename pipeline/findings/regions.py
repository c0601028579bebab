"""A cluster's hot region, its control region and occlusion of images.

Regions are normalised ``[ymin, xmin, ymax, xmax]`` in [0, 1] on the small-map grid.

- Hot region: the bounding box of the 4-connected set of cells that holds the mean map's
  maximum and whose values are at least ``HOT_FRACTION`` of it, grown by ``MARGIN_CELLS`` on
  every side (within the image). The margin is there because a cell is an average: an object
  that covers only part of an edge cell leaves it below half the peak, and occluding the box
  without that cell would leave part of the object in view.
- Control region: a box of the same size placed where the mean map's sum over the box is
  lowest (the least attended place; ties go to the first position in row-major order).
"""

import numpy as np

HOT_FRACTION = 0.5
MARGIN_CELLS = 1


def hot_region(mean_map, fraction=HOT_FRACTION, margin=MARGIN_CELLS):
    """float ``(m, m)`` -> float ``(4,)`` region around the map's peak (whole map if flat)."""
    from scipy import ndimage

    mean_map = np.asarray(mean_map, np.float64)
    height, width = mean_map.shape
    peak = mean_map.max()
    if not peak > 0:
        return np.array([0.0, 0.0, 1.0, 1.0])
    components, _ = ndimage.label(mean_map >= fraction * peak)
    y, x = np.unravel_index(np.argmax(mean_map), mean_map.shape)
    rows, cols = np.nonzero(components == components[y, x])
    top, left = max(rows.min() - margin, 0), max(cols.min() - margin, 0)
    bottom, right = min(rows.max() + 1 + margin, height), min(cols.max() + 1 + margin, width)
    return np.array([top / height, left / width, bottom / height, right / width])


def region_cells(region, shape):
    """``(y0, x0, y1, x1)`` end-exclusive integer bounds of a region on a grid ``(h, w)``."""
    height, width = shape
    y0, x0 = int(np.floor(region[0] * height + 1e-9)), int(np.floor(region[1] * width + 1e-9))
    y1, x1 = int(np.ceil(region[2] * height - 1e-9)), int(np.ceil(region[3] * width - 1e-9))
    return y0, x0, max(y1, y0 + 1), max(x1, x0 + 1)


def control_region(mean_map, region):
    """The same-sized box where ``mean_map`` sums lowest: float ``(4,)``."""
    mean_map = np.asarray(mean_map, np.float64)
    height, width = mean_map.shape
    y0, x0, y1, x1 = region_cells(region, mean_map.shape)
    box_h, box_w = y1 - y0, x1 - x0
    integral = np.pad(mean_map.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = (integral[box_h:, box_w:] - integral[:-box_h, box_w:] - integral[box_h:, :-box_w]
            + integral[:-box_h, :-box_w])
    top, left = np.unravel_index(np.argmin(sums), sums.shape)
    return np.array([top / height, left / width, (top + box_h) / height,
                     (left + box_w) / width])


def region_share(region):
    """The share of the image a region covers."""
    return float((region[2] - region[0]) * (region[3] - region[1]))


def occlude(images, region, fill="mean"):
    """Covers a region of every image.

    Args:
        images: float32 ``(N, H, W, C)`` model inputs.
        region: normalised ``[ymin, xmin, ymax, xmax]``.
        fill: ``'mean'`` (each image's mean colour) or ``'blur'`` (a 9x9-pixel box blur of the
            image inside the region).

    Returns:
        float32 ``(N, H, W, C)``, a copy.
    """
    images = np.array(images, np.float32, copy=True)
    y0, x0, y1, x1 = region_cells(region, images.shape[1:3])
    if fill == "blur":
        from scipy import ndimage

        blurred = ndimage.uniform_filter(images, size=(1, 9, 9, 1), mode="nearest")
        images[:, y0:y1, x0:x1] = blurred[:, y0:y1, x0:x1]
    else:
        images[:, y0:y1, x0:x1] = images.mean(axis=(1, 2), keepdims=True)
    return images


def place_words(region):
    """Where a region's centre lies, in words: 'the upper left', 'the centre', ..."""
    centre_y, centre_x = (region[0] + region[2]) / 2, (region[1] + region[3]) / 2
    vertical = "upper" if centre_y < 1 / 3 else "lower" if centre_y > 2 / 3 else "middle"
    horizontal = "left" if centre_x < 1 / 3 else "right" if centre_x > 2 / 3 else "centre"
    if vertical == "middle" and horizontal == "centre":
        return "the centre"
    if vertical == "middle":
        return f"the middle {horizontal}"
    return f"the {vertical} {horizontal}" if horizontal != "centre" else f"the {vertical} centre"
