"""The report's pictures: matplotlib figures and example overlays, encoded as PNG bytes."""

import io

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from gbp_ops.maps import scale_to_unit
from pipeline.report.flags import row_label

MAP_COLORMAP = "inferno"
_DPI = 100
_PANEL_PIXELS = 160  # example pictures are enlarged to at least this height
_PNG_LEVEL = 3


def figure_png(figure):
    """A matplotlib figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    return buffer.getvalue()


def picture_png(picture):
    """A uint8 RGB array ``(H, W, 3)`` as PNG bytes (no matplotlib figure: ~10x faster).

    zlib level 3 instead of PIL's 6: the same pixels, encoded about 3x faster (a third of the
    report's time went to encoding the example pictures) for about 8% more bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="png", compress_level=_PNG_LEVEL)
    return buffer.getvalue()


def mean_map_figure(mean_map, title, band):
    """A mean map ``(h, w)`` in [0, 1] with the border band's inner edge dashed."""
    figure = Figure(figsize=(3.4, 3.0))
    axes = figure.add_subplot()
    image = axes.imshow(mean_map, cmap=MAP_COLORMAP, vmin=0.0, interpolation="nearest")
    height, width = mean_map.shape
    if 0 < band and 2 * band < min(height, width):
        axes.add_patch(Rectangle((band - 0.5, band - 0.5), width - 2 * band, height - 2 * band,
                                 fill=False, edgecolor="#7fdfff", linestyle="--", linewidth=1))
    axes.set_title(title, fontsize=9)
    axes.set_xticks([])
    axes.set_yticks([])
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    return figure


def histogram_figure(class_rows, stat):
    """Per-class step histograms of ``<stat>_hist`` (share of the class's examples per bin)."""
    figure = Figure(figsize=(4.6, 3.0))
    axes = figure.add_subplot()
    for _, row in class_rows.iterrows():
        counts = np.asarray(row[f"{stat}_hist"], np.float64)
        if counts.sum() <= 0:
            continue
        edges = np.linspace(0.0, 1.0, len(counts) + 1)
        axes.stairs(counts / counts.sum(), edges, label=f"{row_label(row)} "
                    f"(n={int(counts.sum())})", linewidth=1.5)
    axes.set_xlim(0, 1)
    axes.set_xlabel(stat)
    axes.set_ylabel("share of the class's examples")
    axes.set_title(f"{stat} per class", fontsize=10)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7)
    return figure


def example_picture(saliency, image):
    """uint8 RGB: the map alone, or the input image, the map and the overlay side by side.

    Args:
        saliency: float ``(h, w)`` map (scaled here by its own max |value|).
        image: None, or the uint8 ``(H, W, 3)`` input; a downsampled map stretches to it.
    """
    scaled = np.abs(scale_to_unit(saliency[None])[0][0])
    if image is None:
        return _enlarge(_colormap(MAP_COLORMAP)(scaled)[..., :3])
    image = np.asarray(image, np.float64) / 255.0
    height, width = image.shape[:2]
    scaled = scaled[np.arange(height) * scaled.shape[0] // height][
        :, np.arange(width) * scaled.shape[1] // width]
    colours = _colormap(MAP_COLORMAP)(scaled)[..., :3]
    alpha = np.clip(scaled * 2.0, 0.0, 0.9)[..., None]  # weak attention stays see-through
    background = 0.5 + 0.5 * image.mean(axis=-1, keepdims=True)  # faded grey input
    overlay = (1.0 - alpha) * background + alpha * colours
    gap = np.ones((height, max(2, width // 32), 3))
    return _enlarge(np.concatenate([image, gap, colours, gap, overlay], axis=1))


def _enlarge(picture, min_height=_PANEL_PIXELS):
    """float RGB in [0, 1] -> uint8, repeated (nearest) to at least ``min_height`` rows."""
    factor = max(1, -(-min_height // picture.shape[0]))
    picture = np.repeat(np.repeat(picture, factor, axis=0), factor, axis=1)
    return np.clip(np.rint(picture * 255.0), 0, 255).astype(np.uint8)


def _colormap(name):
    import matplotlib

    return matplotlib.colormaps[name]


def sanity_figure(summary_by_depth):
    figure = Figure(figsize=(6.4, 3.2))
    axes = figure.add_subplot()
    depths = list(summary_by_depth)
    for key, label in (("spearman", "Spearman rank correlation"), ("ssim", "SSIM")):
        means = np.array([summary_by_depth[d][f"{key}_mean"] for d in depths])
        stds = np.nan_to_num([summary_by_depth[d][f"{key}_std"] for d in depths])
        axes.errorbar(depths, means, yerr=stds, marker="o", capsize=3, label=label)
    axes.set_xticks(depths)
    axes.set_xticklabels([f"{d}\n{summary_by_depth[d]['last_layer']}" for d in depths],
                         fontsize=7)
    axes.set_ylim(-0.1, 1.05)
    axes.set_xlabel("depth (top layer added at that depth)")
    axes.set_ylabel("similarity to the trained model's maps")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return figure
