"""``report.html``: an offline, self-contained picture book of one audit run.

The report reads a finished run's outputs (``manifest.json``, ``stats/``, ``saliency/``,
``errors/``) and writes ``<output>/report.html`` plus PNGs under ``<output>/report/``: the
counts, per-class mean maps, per-class histograms of key statistics, the most suspicious
examples as map overlays, flags for suspicious classes and, when given, the model-randomization
sanity check. The HTML has inline CSS and relative image links only (no scripts, no network).
Every path goes through Beam ``FileSystems`` (``pipeline.paths``), so ``gs://`` works.

Flag rules (constants below):

- **Border**: a class whose mean border share is at least ``BORDER_RATIO`` times the mean of
  the *rest of the dataset* (every other class), and above it by more than ``SIGNIFICANCE_Z``
  standard errors of the difference. The rest, not the overall mean, because with few classes
  the class itself dominates the overall mean (with two classes, a class at twice the other
  is only 1.33 times the overall mean).
- **Box**: when the run has ``box_share`` and the boxes' mean area share is known
  (``box_area_share``), a class whose mean box share exceeds that area share by more than
  ``SIGNIFICANCE_Z`` standard errors (at least two boxed examples): more attention inside the
  boxes than a uniform map would put there.
"""

import dataclasses
import html
import io

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from gbp_ops import statistics
from pipeline import loader, paths, schema

REPORT_HTML = "report.html"
REPORT_DIR = "report"

# Statistics shown as per-class histograms (from the stats table's ``<stat>_hist`` columns).
HISTOGRAM_STATISTICS = (
    statistics.BORDER_SHARE, statistics.TOP5_SHARE, statistics.ENTROPY, statistics.BOX_SHARE,
)
# The two rankings of suspicious examples, keyed as ``collect_top_examples`` returns them.
TOP_BORDER = "border_share"
TOP_DIFFUSE = "low_top5_share"
TOP_TITLES = {
    TOP_BORDER: "Highest border share (attention on the image border)",
    TOP_DIFFUSE: "Lowest concentration (lowest top-5% share: diffuse attention)",
}

BORDER_RATIO = 1.5
SIGNIFICANCE_Z = 2.0
MAP_COLORMAP = "inferno"
_DPI = 100
_PANEL_PIXELS = 160  # example pictures are enlarged to at least this height
_LISTED_ERRORS = 10

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1150px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; border: 1px solid #ddd; padding: 4px; background: #fafafa; }
figcaption { font-size: .8em; max-width: 600px; word-break: break-all; }
.flag { background: #fff3e0; border-left: 4px solid #e65100; padding: .4em .8em; margin: .4em 0; }
.ok { background: #e8f5e9; border-left: 4px solid #2e7d32; padding: .4em .8em; }
.verdict { font-size: 1.05em; background: #eef3fb; border-left: 4px solid #1a4f9c;
           padding: .5em .8em; }
.note { color: #555; font-size: .9em; }
"""


@dataclasses.dataclass(frozen=True)
class Flag:
    """One suspicious class: ``kind`` is ``'border'`` or ``'box'``; ``message`` is plain text."""

    kind: str
    class_index: int
    class_name: str
    message: str


def collect_top_examples(frame, n):
    """Ids of the top-``n`` examples by border share and by lowest top-5% share.

    Args:
        frame: saliency DataFrame with ``example_id``, ``border_share`` and ``top5_share``
            (maps not needed). Rows with a NaN statistic are skipped, and so are all-zero
            maps (``total_mass == 0``, when present), whose shares are 0 but which are dead
            rather than diffuse; ties break by id.
        n: examples per ranking.

    Returns:
        dict ``{TOP_BORDER: [ids], TOP_DIFFUSE: [ids]}``, each list best first; the union is
        what a caller needs images for.
    """
    ids = frame[schema.EXAMPLE_ID].astype(str)
    alive = np.ones(len(frame), bool)
    if statistics.TOTAL_MASS in frame:
        alive = frame[statistics.TOTAL_MASS].to_numpy(np.float64) > 0

    def ranked(column, descending):
        values = frame[column].to_numpy(np.float64)
        keep = ~np.isnan(values) & alive
        order = np.lexsort((ids.to_numpy()[keep], -values[keep] if descending else values[keep]))
        return [str(i) for i in ids.to_numpy()[keep][order][:n]]

    return {TOP_BORDER: ranked(statistics.BORDER_SHARE, True),
            TOP_DIFFUSE: ranked(statistics.TOP5_SHARE, False)}


def write_report(output_dir, top_n=8, examples_images=None, sanity_rows=None,
                 box_area_share=None):
    """Writes ``<output_dir>/report.html`` and its PNGs under ``<output_dir>/report/``.

    Args:
        output_dir: a finished run's output directory (local or gs://...).
        top_n: examples shown per ranking (see ``collect_top_examples``).
        examples_images: optional dict example_id -> uint8 ``(H, W, 3)`` input image; the
            top examples are then drawn as overlays on their images, else as maps alone.
        sanity_rows: optional rows of ``gbp_ops.sanity.run_sanity_check`` for the sanity
            section.
        box_area_share: optional float in (0, 1], the mean share of the image the boxes
            cover; enables the box flag. Defaults to the mean of the ``box_area`` column.

    Returns:
        str, the path of ``report.html``.

    Raises:
        FileNotFoundError: the run's stats or saliency tables are missing.
    """
    report_dir = paths.join(output_dir, REPORT_DIR)
    paths.delete(paths.match(paths.join(report_dir, "*.png")))  # no stale pictures
    paths.make_dirs(report_dir)
    manifest = loader.read_manifest(output_dir)
    stats = loader.load_stats(output_dir)
    frame = loader.load_saliency(output_dir, maps=False)
    errors = loader.load_errors(output_dir)
    writer = _PngWriter(output_dir)
    band = _border_band(manifest, stats)
    if box_area_share is None and schema.BOX_AREA in frame and frame[schema.BOX_AREA].notna().any():
        box_area_share = float(frame[schema.BOX_AREA].mean())

    sections = [
        _counts_section(manifest, frame, errors),
        _flags_section(border_flags(stats), box_flags(stats, frame, box_area_share),
                       schema.BOX_SHARE in frame and frame[schema.BOX_SHARE].notna().any(),
                       box_area_share),
        _classes_section(stats, writer, band),
        _histograms_section(stats, writer),
        _examples_section(output_dir, frame, top_n, examples_images or {}, writer),
    ]
    if sanity_rows is not None:
        sections.append(_sanity_section(sanity_rows, writer))
    page = _page(manifest, sections)
    report_path = paths.join(output_dir, REPORT_HTML)
    paths.write_bytes(report_path, page.encode("utf-8"))
    return report_path


# ---- reading -------------------------------------------------------------------------------

def _class_rows(stats):
    """The ``group == 'class'`` rows, sorted by class index."""
    rows = stats[stats[schema.GROUP] == schema.GROUP_CLASS]
    return rows.sort_values(schema.CLASS).reset_index(drop=True)


def _overall_row(stats):
    rows = stats[stats[schema.GROUP] == schema.GROUP_OVERALL]
    return rows.iloc[0] if len(rows) else None


def _class_label(row):
    name = row.get(schema.CLASS_NAME)
    index = int(row[schema.CLASS])
    return f"{name} (class {index})" if isinstance(name, str) and name else f"class {index}"


def _load_maps(output_dir, example_ids):
    """float32 ``(h, w)`` maps of the given ids only, read with a pushed-down filter."""
    if not example_ids:
        return {}
    frame = loader.load_saliency(output_dir, columns=[schema.EXAMPLE_ID, schema.SALIENCY],
                                 example_ids=example_ids)
    return dict(zip(frame[schema.EXAMPLE_ID].astype(str), frame[schema.SALIENCY]))


def _border_band(manifest, stats):
    """The border band width in map pixels, as ``statistics.border_share`` computes it."""
    fraction = (manifest.get("config", {}).get("output", {}).get("border_band_fraction", 0.1))
    if not len(stats):
        return 0
    height, width = stats[schema.MEAN_MAP].iloc[0].shape
    return max(1, int(round(fraction * min(height, width))))


# ---- flags ---------------------------------------------------------------------------------

def _rest_moments(overall, row, stat):
    """Mean, std and count of ``stat`` over every example outside ``row``'s class.

    Rebuilt from the overall and class means/stds (ddof=1); counts are example counts.
    """
    total, count = int(overall[schema.COUNT]), int(row[schema.COUNT])
    rest = total - count
    if rest < 2:
        return np.nan, np.nan, rest

    def sum_squares(mean, std, n):
        return (n - 1) * (0.0 if np.isnan(std) else std) ** 2 + n * mean**2

    mean_all, mean_class = overall[f"{stat}_mean"], row[f"{stat}_mean"]
    rest_mean = (total * mean_all - count * mean_class) / rest
    squares = (sum_squares(mean_all, overall[f"{stat}_std"], total)
               - sum_squares(mean_class, row[f"{stat}_std"], count))
    rest_var = max(squares - rest * rest_mean**2, 0.0) / (rest - 1)
    return rest_mean, float(np.sqrt(rest_var)), rest


def border_flags(stats):
    """Classes whose mean border share is far above the rest of the dataset's.

    Args:
        stats: the stats DataFrame (``load_stats``).

    Returns:
        list of ``Flag`` (kind ``'border'``), by class index.
    """
    overall = _overall_row(stats)
    if overall is None:
        return []
    stat = statistics.BORDER_SHARE
    flags = []
    for _, row in _class_rows(stats).iterrows():
        mean, std, count = row[f"{stat}_mean"], row[f"{stat}_std"], int(row[schema.COUNT])
        rest_mean, rest_std, rest = _rest_moments(overall, row, stat)
        if np.isnan(rest_mean) or np.isnan(mean) or count < 2:
            continue
        error = np.sqrt((0.0 if np.isnan(std) else std) ** 2 / count + rest_std**2 / rest)
        if mean >= BORDER_RATIO * rest_mean and mean - rest_mean > SIGNIFICANCE_Z * error:
            ratio = mean / rest_mean if rest_mean > 0 else np.inf
            flags.append(Flag("border", int(row[schema.CLASS]), _class_label(row), (
                f"{_class_label(row)}: mean border share {mean:.3f}, {ratio:.1f}x the rest of "
                f"the dataset ({rest_mean:.3f}, {rest} examples). The model may look at the "
                "image border (frames, padding, watermarks) for this class."
            )))
    return flags


def box_flags(stats, frame, box_area_share):
    """Classes whose mean box share exceeds the boxes' area share.

    Args:
        stats: the stats DataFrame.
        frame: the saliency DataFrame (``target`` and ``box_share``), for the boxed counts.
        box_area_share: the boxes' mean share of the image area, or None (no flags).

    Returns:
        list of ``Flag`` (kind ``'box'``), by class index.
    """
    stat = statistics.BOX_SHARE
    if box_area_share is None or f"{stat}_mean" not in stats or stat not in frame:
        return []
    boxed = frame[frame[stat].notna()].groupby(schema.TARGET).size()
    flags = []
    for _, row in _class_rows(stats).iterrows():
        mean, std = row[f"{stat}_mean"], row[f"{stat}_std"]
        count = int(boxed.get(int(row[schema.CLASS]), 0))
        if np.isnan(mean) or count < 2 or np.isnan(std):
            continue
        if mean - box_area_share > SIGNIFICANCE_Z * std / np.sqrt(count):
            flags.append(Flag("box", int(row[schema.CLASS]), _class_label(row), (
                f"{_class_label(row)}: {100 * mean:.1f}% of the saliency mass lies inside the "
                f"boxes, which cover {100 * box_area_share:.1f}% of the image "
                f"({mean / box_area_share:.1f}x; {count} boxed examples). If the boxes mark a "
                "suspected shortcut, the model relies on it."
            )))
    return flags


# ---- pictures ------------------------------------------------------------------------------

class _PngWriter:
    """Saves matplotlib figures as PNGs under ``<output>/report/``; returns relative links."""

    def __init__(self, output_dir):
        self._output_dir = output_dir

    def save(self, figure, name):
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
        return self._write(buffer, name)

    def save_picture(self, picture, name):
        """Saves a uint8 RGB array ``(H, W, 3)`` as it is (no matplotlib figure: ~10x faster)."""
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(picture).save(buffer, format="png")
        return self._write(buffer, name)

    def _write(self, buffer, name):
        paths.write_bytes(paths.join(self._output_dir, REPORT_DIR, name), buffer.getvalue())
        return f"{REPORT_DIR}/{name}"


def _mean_map_figure(mean_map, title, band):
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


def _histogram_figure(class_rows, stat):
    """Per-class step histograms of ``<stat>_hist`` (share of the class's examples per bin)."""
    figure = Figure(figsize=(4.6, 3.0))
    axes = figure.add_subplot()
    for _, row in class_rows.iterrows():
        counts = np.asarray(row[f"{stat}_hist"], np.float64)
        if counts.sum() <= 0:
            continue
        edges = np.linspace(0.0, 1.0, len(counts) + 1)
        axes.stairs(counts / counts.sum(), edges, label=f"{_class_label(row)} "
                    f"(n={int(counts.sum())})", linewidth=1.5)
    axes.set_xlim(0, 1)
    axes.set_xlabel(stat)
    axes.set_ylabel("share of the class's examples")
    axes.set_title(f"{stat} per class", fontsize=10)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7)
    return figure


def _example_picture(saliency, image):
    """uint8 RGB: the map alone, or the input image, the map and the overlay side by side.

    Args:
        saliency: float ``(h, w)`` map (scaled here by its own max |value|).
        image: None, or the uint8 ``(H, W, 3)`` input; a downsampled map stretches to it.
    """
    peak = float(np.abs(saliency).max())
    scaled = np.abs(saliency) / peak if peak > 0 else np.zeros_like(saliency)
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


def _sanity_figure(summary_by_depth):
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


# ---- HTML ----------------------------------------------------------------------------------

def _esc(value):
    return html.escape(str(value))


def _number(value, digits=3):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return f"{float(value):.{digits}f}"


def _table(header, rows, text_columns=(0,)):
    """An HTML table; cells are escaped; columns in ``text_columns`` are left-aligned."""
    def cell(tag, index, value):
        css = ' class="text"' if index in text_columns else ""
        return f"<{tag}{css}>{_esc(value)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure_html(link, caption):
    return (f'<figure><img src="{_esc(link)}" alt="{_esc(caption)}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _counts_section(manifest, frame, errors):
    counts = manifest.get("counts", {})
    rows = [
        ("input records", _number(counts.get("input", "–"))),
        ("saliency rows", _number(counts.get("saliency_rows", len(frame)))),
        ("dead letters (errors)", _number(counts.get("errors", len(errors)))),
        ("damaged shards", _number(counts.get("damaged_shards", "–"))),
        ("reconciled (input = saliency + errors)", counts.get("reconciled", "–")),
    ]
    if statistics.TOTAL_MASS in frame:
        zero = int((frame[statistics.TOTAL_MASS] == 0).sum())
        rows.append(("all-zero maps (no gradient reached the input)", _number(zero)))
    parts = ["<h2>Counts</h2>", _table(("count", "value"), rows)]
    stages = {key[len("errors_"):]: value for key, value in counts.items()
              if key.startswith("errors_")}
    if not stages and len(errors):
        stages = errors[schema.STAGE].value_counts().sort_index().to_dict()
    if stages:
        parts.append("<h3>Dead letters by stage</h3>")
        parts.append(_table(("stage", "errors"), sorted((k, _number(v))
                                                          for k, v in stages.items())))
    if len(errors):
        listed = errors.head(_LISTED_ERRORS)
        parts.append(f"<p class=note>First {len(listed)} of {len(errors)} dead letters:</p>")
        parts.append(_table(
            ("example_id", "position", "stage", "error"),
            [(r[schema.EXAMPLE_ID], r[schema.POSITION], r[schema.STAGE], r[schema.ERROR][:300])
             for _, r in listed.iterrows()], text_columns=(0, 1, 2, 3)))
    return "\n".join(parts)


def _flags_section(border, box, has_box, box_area_share):
    parts = ["<h2>Flags</h2>"]
    flags = border + box
    if flags:
        parts += [f'<div class="flag">{_esc(flag.message)}</div>' for flag in flags]
    else:
        parts.append('<div class="ok">No class met a flag rule.</div>')
    rules = [
        f"Border: a class's mean border share is at least {BORDER_RATIO}x that of the rest of "
        f"the dataset and above it by more than {SIGNIFICANCE_Z} standard errors.",
    ]
    if has_box and box_area_share is None:
        rules.append("Box: not checked, because the boxes' area share is unknown "
                     "(pass box_area_share to write_report).")
    elif has_box:
        rules.append(f"Box: a class's mean box share exceeds the boxes' area share "
                     f"({box_area_share:.4f}) by more than {SIGNIFICANCE_Z} standard errors.")
    parts.append("<p class=note>Rules. " + " ".join(_esc(rule) for rule in rules) + "</p>")
    return "\n".join(parts)


def _classes_section(stats, writer, band):
    class_rows = _class_rows(stats)
    overall = _overall_row(stats)
    columns = [f"{name}_mean" for name in (statistics.BORDER_SHARE, statistics.TOP5_SHARE,
                                           statistics.ENTROPY, statistics.BOX_SHARE)]
    columns = [c for c in columns if c in stats]
    table_rows = []
    for label, row in ([("overall", overall)] if overall is not None else []) + [
            (_class_label(r), r) for _, r in class_rows.iterrows()]:
        table_rows.append((label, _number(int(row[schema.COUNT])),
                           *(_number(row[c]) for c in columns)))
    parts = ["<h2>Per-class attention</h2>",
             "<p class=note>Classes are the explained target classes. Mean maps average each "
             "example's map scaled by its own maximum; the dashed line is the inner edge of "
             "the border band.</p>",
             _table(("group", "count", *columns), table_rows)]
    figures = []
    for _, row in class_rows.iterrows():
        title = f"{_class_label(row)}, n={int(row[schema.COUNT])}"
        link = writer.save(_mean_map_figure(row[schema.MEAN_MAP], title, band),
                           f"mean_map_class_{int(row[schema.CLASS])}.png")
        figures.append(_figure_html(link, f"mean map: {title}"))
    parts.append('<div class="grid">' + "".join(figures) + "</div>")
    return "\n".join(parts)


def _histograms_section(stats, writer):
    class_rows = _class_rows(stats)
    figures = []
    for stat in HISTOGRAM_STATISTICS:
        column = f"{stat}_hist"
        if column not in stats or not len(class_rows):
            continue
        present = class_rows[class_rows[column].map(lambda h: np.sum(h) > 0 if h is not None
                                                    else False)]
        if not len(present):
            continue
        link = writer.save(_histogram_figure(present, stat), f"hist_{stat}.png")
        figures.append(_figure_html(link, f"{stat} per class"))
    if not figures:
        return ""
    return ("<h2>Distributions</h2><p class=note>20 bins over [0, 1]; each line is the share "
            "of one class's examples per bin.</p>"
            '<div class="grid">' + "".join(figures) + "</div>")


def _caption(row):
    parts = [str(row[schema.EXAMPLE_ID])]
    label, predicted = row.get(schema.LABEL_NAME), row.get(schema.PREDICTED_NAME)
    if isinstance(label, str) or isinstance(predicted, str):
        parts.append(f"label {label}, predicted {predicted}")
    parts.append(f"border {row[statistics.BORDER_SHARE]:.3f}, "
                 f"top5 {row[statistics.TOP5_SHARE]:.3f}")
    return "; ".join(parts)


def _examples_section(output_dir, frame, top_n, images, writer):
    top = collect_top_examples(frame, top_n)
    maps = _load_maps(output_dir, {i for ids in top.values() for i in ids})
    by_id = frame.assign(**{schema.EXAMPLE_ID: frame[schema.EXAMPLE_ID].astype(str)})
    by_id = by_id.drop_duplicates(schema.EXAMPLE_ID).set_index(schema.EXAMPLE_ID, drop=False)
    note = ("Each example: its input image, its map and the map overlaid on the input."
            if images else "Maps alone (no input images were given to the report).")
    parts = ["<h2>Most suspicious examples</h2>", f"<p class=note>{_esc(note)} Each map is "
             "scaled by its own maximum.</p>"]
    for key, ids in top.items():
        figures = []
        for rank, example_id in enumerate(ids):
            if example_id not in maps:
                continue
            row = by_id.loc[example_id]
            image = images.get(example_id)
            link = writer.save_picture(_example_picture(maps[example_id], image),
                                       f"top_{key}_{rank:03d}.png")
            figures.append(_figure_html(link, f"#{rank + 1} {example_id}: {_caption(row)}"))
        parts.append(f"<h3>{_esc(TOP_TITLES[key])}</h3>")
        parts.append('<div class="grid">' + "".join(figures) + "</div>" if figures else
                     "<p class=note>No examples.</p>")
    return "\n".join(parts)


def _sanity_section(sanity_rows, writer):
    from gbp_ops import sanity

    summary_by_depth = sanity.summary(sanity_rows)
    parts = ["<h2>Sanity check: cascading model randomization</h2>",
             "<p class=note>The model's weighted layers are re-randomized from the top down, "
             "one more at each depth, and each randomized model's maps are compared with the "
             "trained model's maps of the same images and targets (Adebayo et al. 2018, "
             "Sanity Checks for Saliency Maps). Maps that stay similar do not depend on what "
             "the model learned.</p>",
             f'<p class="verdict">{_esc(sanity.verdict(summary_by_depth))}</p>']
    if summary_by_depth:
        link = writer.save(_sanity_figure(summary_by_depth), "sanity.png")
        parts.append(_figure_html(link, "similarity to the trained model's maps per depth"))
        rows = [(d, e["last_layer"], e["count"], e["spearman_undefined"],
                 f"{_number(e['spearman_mean'])} ± {_number(e['spearman_std'])}",
                 f"{_number(e['ssim_mean'])} ± {_number(e['ssim_std'])}")
                for d, e in summary_by_depth.items()]
        parts.append(_table(("depth", "layer added", "examples", "constant maps",
                             "Spearman (mean ± std)", "SSIM (mean ± std)"), rows,
                            text_columns=(1,)))
    return "\n".join(parts)


def _page(manifest, sections):
    facts = [
        ("method", manifest.get("method")),
        ("explained space", manifest.get("explained_space")),
        ("reduction", manifest.get("config", {}).get("explain", {}).get("reduction")),
        ("map shape", "x".join(str(v) for v in manifest.get("map_shape", [])) or None),
        ("model", manifest.get("config", {}).get("model", {}).get("path")),
        ("model sha256", manifest.get("model_sha256")),
        ("wall time (s)", manifest.get("wall_time_seconds")),
    ]
    facts_table = _table(("run", ""), [(k, v) for k, v in facts if v is not None],
                         text_columns=(0, 1))
    body = "\n".join(section for section in sections if section)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>gbp-audit report</title>"
            f"<style>{_CSS}</style></head><body>\n<h1>gbp-audit report</h1>\n"
            f"{facts_table}\n{body}\n</body></html>\n")
