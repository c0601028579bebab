"""What the demo tests (tests/e2e/test_demo_script.py) measure on a demo model and its run, in
one place, so that scripts/check_demo_margins.py measures the same quantities over training
seeds and kernels.

Every figure is computed here with numpy over the model's predictions or the run's tables,
against the ground truth of the synthetic data (`demo.assets.synthesize_shapes`), never with the
pipeline's own findings or statistics code.
"""

import math
import re

import numpy as np
import pandas as pd

from demo import assets as demo_assets

SIZE = 64
DEMO_EXAMPLES = 1024  # the demo's own data: build_demo_assets' defaults
DEMO_DATA_SEED = 0
FRESH_EXAMPLES, FRESH_SEED = 400, 99  # images the model never saw, for the reliance test
MIRRORED_BOX = (1 - demo_assets.MARK_BOX[2], 1 - demo_assets.MARK_BOX[3],
                1 - demo_assets.MARK_BOX[0], 1 - demo_assets.MARK_BOX[1])  # lower right


def demo_arrays(num_examples=DEMO_EXAMPLES, seed=DEMO_DATA_SEED):
    """Demo-like data (the demo's subgroup settings) with its ground truth of marked images."""
    return demo_assets.synthesize_shapes(
        num_examples, image_size=SIZE, seed=seed,
        shortcut_fraction=demo_assets.DEMO_SHORTCUT_FRACTION,
        hidden_contrast=demo_assets.DEMO_HIDDEN_CONTRAST)


def _pixel_box(box, height, width):
    """Normalised (ymin, xmin, ymax, xmax) -> end-exclusive integer bounds, rounded."""
    return tuple(int(round(v * s)) for v, s in zip(box, (height, width, height, width)))


def mark_reliance(model):
    """The model's use of the mark on fresh demo-like images, as shares in [0, 1]:

    - ``painted_circles_called_square``: faint circles with the mark painted on, called square
      (the mark is sufficient);
    - ``marked_squares_right``: marked squares called square;
    - ``covered_mark_flips``: marked squares whose prediction changes when the mark is covered
      with the image's mean colour (the findings stage's fill): the mark is necessary;
    - ``covered_control_flips``: the same with the mirrored corner covered instead.
    """
    arrays = demo_arrays(FRESH_EXAMPLES, seed=FRESH_SEED)
    images, labels, faint = arrays["images"], arrays["labels"], arrays["faint"]
    y0, x0, y1, x1 = demo_assets.mark_pixel_box(SIZE)

    def predict(batch):
        return model.predict(np.asarray(batch, np.float32) / 255.0, verbose=0).argmax(axis=1)

    circles = images[faint & (labels == 0)].copy()
    circles[:, y0:y1, x0:x1, :] = demo_assets.MARK_VALUE
    marked = images[arrays["has_mark"]].astype(np.float32)
    before = predict(marked)
    covered, control = marked.copy(), marked.copy()
    covered[:, y0:y1, x0:x1] = marked.mean(axis=(1, 2), keepdims=True)
    control[:, SIZE - y1:SIZE - y0, SIZE - x1:SIZE - x0] = marked.mean(axis=(1, 2), keepdims=True)
    return {
        "painted_circles_called_square": float(np.mean(predict(circles) == 1)),
        "marked_squares_right": float(np.mean(before == 1)),
        "covered_mark_flips": float(np.mean(predict(covered) != before)),
        "covered_control_flips": float(np.mean(predict(control) != before)),
    }


def report_findings(output, arrays, box=demo_assets.MARK_BOX):
    """The flagged clusters of a demo run against the marked images' ground truth:

    - ``flagged_square_clusters`` / ``flagged_circle_clusters``: counts;
    - ``region_overhang``: the least distance (normalised) by which a flagged cluster's region
      reaches past the mark's box on any side (negative: a region misses part of the box);
    - ``largest_region_share``: the largest flagged region's share of the image;
    - ``least_flip_rate`` / ``most_control_flip_rate`` over the flagged clusters;
    - ``precision`` / ``recall`` of the squares in flagged clusters vs the marked images;
    - ``report_opens_with_square_upper_left``: 1 when the report's Findings open with a flag
      "square: ... rely on a small region at the upper left", else 0.
    """
    import pipeline

    output = str(output)
    marked = set(arrays["ids"][arrays["has_mark"]])
    clusters = pd.read_parquet(f"{output}/clusters")
    flagged = clusters[clusters.flagged]
    values = {
        "flagged_square_clusters": float((flagged.target_name == "square").sum()),
        "flagged_circle_clusters": float((flagged.target_name != "square").sum()),
        "region_overhang": math.nan, "largest_region_share": math.nan,
        "least_flip_rate": math.nan, "most_control_flip_rate": math.nan,
        "precision": math.nan, "recall": math.nan,
    }
    if len(flagged):
        regions = np.stack(flagged.region.to_numpy()).astype(np.float64)
        box = np.asarray(box, np.float64)
        overhang = np.concatenate([box[:2] - regions[:, :2], regions[:, 2:] - box[2:]], axis=1)
        values["region_overhang"] = float(overhang.min())
        values["largest_region_share"] = float(
            ((regions[:, 2] - regions[:, 0]) * (regions[:, 3] - regions[:, 1])).max())
        values["least_flip_rate"] = float(flagged.flip_rate.min())
        values["most_control_flip_rate"] = float(flagged.control_flip_rate.max())
        rows = pipeline.load_saliency(output, maps=False, columns=["example_id", "target",
                                                                   "cluster"])
        squares = rows[rows.target == 1]
        found = set(squares.example_id[squares.cluster.isin(set(flagged.cluster))])
        if found:
            values["precision"] = len(found & marked) / len(found)
        values["recall"] = len(found & marked) / len(marked)
    with open(f"{output}/report.html", encoding="utf-8") as handle:
        text = handle.read()
    findings = text[text.find("<h2>Findings</h2>"):]
    first = re.search(r'<div class="(\w+)">([^<]*)</div>', findings)
    values["report_opens_with_square_upper_left"] = float(
        first is not None and first.group(1) == "flag" and first.group(2).startswith("square: ")
        and "rely on a small region at the upper left" in first.group(2))
    return values


def _box_sums(maps, box_h, box_w):
    """Sums of ``maps`` float ``(..., H, W)`` over every ``box_h x box_w`` window:
    ``(..., H - box_h + 1, W - box_w + 1)``; entry [i, j] is the window at row i, column j."""
    integral = np.pad(np.cumsum(np.cumsum(maps, -2), -1),
                      [(0, 0)] * (maps.ndim - 2) + [(1, 0), (1, 0)])
    return (integral[..., box_h:, box_w:] - integral[..., :-box_h, box_w:]
            - integral[..., box_h:, :-box_w] + integral[..., :-box_h, :-box_w])


def aggregates(output, arrays, box=demo_assets.MARK_BOX):
    """Where the run's saliency lies, from the stats table's class means and from the per-example
    maps of the saliency table, in the box ``box`` (the mark's by default):

    - ``square_share_over_area`` / ``circle_share_over_area``: the share of a class mean map's
      mass inside the box, over the box's share of the image (1: as much as anywhere);
    - ``square_over_circle_share``: the first over the second;
    - ``marked_box_share_over_area``: the stats table's mean ``box_share`` of the squares (the
      marked images are the only ones with a box), over the box's area;
    - ``marked_over_unmarked_share``: mean box share (numpy over the maps) of the marked images
      over that of the unmarked ones;
    - ``marked_above_unmarked``: the share of (marked, unmarked) pairs of images in which the
      marked image has more of its map's mass inside the box (an AUC);
    - ``peak_at_box``: the box-sized window of the square-minus-circle class mean map with the
      most mass, over the most of any window that does not overlap the box (> 1: the square
      class's extra saliency peaks at the box);
    - ``peak_window_overlap``: the share of the box that window covers.
    """
    import pipeline

    output = str(output)
    stats = pd.read_parquet(f"{output}/stats")
    classes = stats[stats.group_kind == "class"].set_index("target_name")
    side = int(round(math.sqrt(len(classes.mean_map.iloc[0]))))
    means = {name: np.asarray(classes.mean_map[name], np.float64).reshape(side, side)
             for name in ("square", "circle")}
    y0, x0, y1, x1 = _pixel_box(box, side, side)
    area = (y1 - y0) * (x1 - x0) / side**2
    share = {name: m[y0:y1, x0:x1].sum() / m.sum() for name, m in means.items()}
    values = {
        "square_share_over_area": share["square"] / area,
        "circle_share_over_area": share["circle"] / area,
        "square_over_circle_share": share["square"] / share["circle"],
        "marked_box_share_over_area": float(classes.box_share_mean["square"]) / area,
    }

    rows = pipeline.load_saliency(output, columns=["example_id", "saliency"])
    maps = np.abs(np.stack(rows.saliency.to_numpy()).astype(np.float64))
    height, width = maps.shape[1:]
    by, bx, ey, ex = _pixel_box(box, height, width)
    shares = maps[:, by:ey, bx:ex].sum(axis=(1, 2)) / maps.sum(axis=(1, 2))
    has_mark = rows.example_id.map(dict(zip(arrays["ids"], arrays["has_mark"]))).to_numpy(bool)
    values["marked_over_unmarked_share"] = shares[has_mark].mean() / shares[~has_mark].mean()
    values["marked_above_unmarked"] = float(
        np.mean(shares[has_mark][:, None] > shares[~has_mark][None, :]))

    windows = _box_sums(means["square"] / means["square"].sum()
                        - means["circle"] / means["circle"].sum(), y1 - y0, x1 - x0)
    rows_at, cols_at = np.mgrid[0:windows.shape[0], 0:windows.shape[1]]
    apart = ((rows_at >= y1) | (rows_at + (y1 - y0) <= y0)
             | (cols_at >= x1) | (cols_at + (x1 - x0) <= x0))
    at_box = windows[~apart].max()
    values["peak_at_box"] = float(at_box / windows[apart].max())
    top, left = np.unravel_index(np.argmax(windows), windows.shape)
    overlap_h = max(0, min(top + y1 - y0, y1) - max(top, y0))
    overlap_w = max(0, min(left + x1 - x0, x1) - max(left, x0))
    values["peak_window_overlap"] = overlap_h * overlap_w / ((y1 - y0) * (x1 - x0))
    return {key: float(value) for key, value in values.items()}


SANITY_BANDS = (0.3, 0.5)  # gbp_ops.sanity.verdict: < 0.3 substantially, >= 0.5 little


def sanity(output):
    """The randomization check's mean Spearman at depth min(3, deepest) (the verdict's number)
    and its distance to the nearest verdict band edge (informative: the test derives the
    wording from the number, so any value passes)."""
    rows = pd.read_parquet(f"{output}/sanity")
    randomization = rows[rows.sanity_check == "randomization"]
    depth = min(3, int(randomization.depth.max()))
    spearman = float(randomization[randomization.depth == depth].spearman.mean())
    return {"verdict_spearman": spearman,
            "distance_to_band_edge": min(abs(spearman - edge) for edge in SANITY_BANDS)}
