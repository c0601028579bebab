"""The report's sections, each an HTML string built from a finished run's outputs; pictures
are embedded as ``data:`` URIs."""

import numpy as np

from gbp_ops import statistics
from pipeline import rankings
from pipeline.findings.merge import row_label
from pipeline.outputs.summary import conversion_words
from pipeline.records import class_label
from pipeline.report import figures
from pipeline.report.flags import BORDER_RATIO, SIGNIFICANCE_Z, class_rows, overall_row
from pipeline.report.page import esc, figure_html, number, png_data_uri, table
from pipeline.tables import errors as errors_table
from pipeline.tables import saliency as saliency_table
from pipeline.tables import stats as stats_table

# Statistics drawn as per-class histograms (from the stats table's ``<stat>_hist`` columns).
SHOWN_HISTOGRAMS = (
    statistics.BORDER_SHARE, statistics.TOP5_SHARE, statistics.ENTROPY, statistics.BOX_SHARE,
)
_LISTED_ERRORS = 10


def counts_section(manifest, frame, errors):
    counts = manifest.get("counts", {})
    rows = [
        ("input records", number(counts.get("input", "–"))),
        ("saliency rows", number(counts.get("saliency_rows", len(frame)))),
        ("dead letters (errors)", number(counts.get("errors", len(errors)))),
        ("damaged shards", number(counts.get("damaged_shards", "–"))),
        ("reconciled (input = saliency + errors)", counts.get("reconciled", "–")),
    ]
    if "precision_choice" in manifest:  # explain.precision=auto: what it chose and why
        choice = manifest["precision_choice"]
        rows.append(("precision", f"{choice['precision']}, chosen by explain.precision=auto: "
                                  f"{choice['reason']}"))
    rows += input_rows(manifest)
    fidelity = manifest.get("fidelity") or {}  # a reduced-precision run: maps vs float32's
    if fidelity.get("summary"):  # the line preflight measured and the manifest keeps
        rows.append(("precision fidelity", fidelity["summary"]))
    if statistics.TOTAL_MASS in frame:
        zero = int((frame[statistics.TOTAL_MASS] == 0).sum())
        rows.append(("all-zero maps (no gradient reached the input)", number(zero)))
    parts = ["<h2>Counts</h2>", table(("count", "value"), rows)]
    stages = {key[len("errors_"):]: value for key, value in counts.items()
              if key.startswith("errors_")}
    if not stages and len(errors):
        stages = errors[errors_table.STAGE].value_counts().sort_index().to_dict()
    if stages:
        parts.append("<h3>Dead letters by stage</h3>")
        parts.append(table(("stage", "errors"), sorted((k, number(v)) for k, v in stages.items())))
    if len(errors):
        listed = errors.head(_LISTED_ERRORS)
        parts.append(f"<p class=note>First {len(listed)} of {len(errors)} dead letters:</p>")
        parts.append(table(
            ("example_id", "position", "stage", "error"),
            [(r[saliency_table.EXAMPLE_ID], r[saliency_table.POSITION], r[errors_table.STAGE],
              r[errors_table.ERROR][:300]) for _, r in listed.iterrows()],
            text_columns=(0, 1, 2, 3)))
    return "\n".join(parts)


def input_rows(manifest):
    """The counts section's rows on the inputs: the scaling used and how it was decided (with
    the accuracies measured), what preprocessing converted, and preflight's notes."""
    rows = []
    scaling = manifest.get("input_scaling")
    if scaling:
        rows.append(("input scaling", f"{scaling['scaling']}: {scaling['decided_by']}"))
        if scaling.get("accuracy"):
            rows.append((f"accuracy per scaling (first {scaling['sample_size']} labelled)",
                         ", ".join(f"{name} {number(value, 2)}"
                                   for name, value in scaling["accuracy"].items())))
    converted = conversion_words(manifest.get("counts", {}))
    if converted:
        rows.append(("inputs converted to the model's input", converted))
    rows += [("note", note) for note in manifest.get("notes", ())]
    return rows


def flags_section(border, box, has_box, box_area_share):
    parts = ["<h2>Flags</h2>"]
    flags = border + box
    if flags:
        parts += [f'<div class="flag">{esc(flag.message)}</div>' for flag in flags]
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
    parts.append("<p class=note>Rules. " + " ".join(esc(rule) for rule in rules) + "</p>")
    return "\n".join(parts)


def classes_section(stats, band):
    by_class = class_rows(stats)
    overall = overall_row(stats)
    columns = [f"{name}_mean" for name in SHOWN_HISTOGRAMS]
    columns = [c for c in columns if c in stats]
    table_rows = []
    for label, row in ([("overall", overall)] if overall is not None else []) + [
            (row_label(r), r) for _, r in by_class.iterrows()]:
        table_rows.append((label, number(int(row[stats_table.COUNT])),
                           *(number(row[c]) for c in columns)))
    parts = ["<h2>Per-class attention</h2>",
             "<p class=note>Classes are the explained target classes. Mean maps average each "
             "example's map scaled by its own maximum; the dashed line is the inner edge of "
             "the border band.</p>",
             table(("group", "count", *columns), table_rows)]
    shown = []
    for _, row in by_class.iterrows():
        title = f"{row_label(row)}, n={int(row[stats_table.COUNT])}"
        figure = figures.mean_map_figure(row[stats_table.MEAN_MAP], title, band)
        link = png_data_uri(figures.figure_png(figure))
        shown.append(figure_html(link, f"mean map: {title}"))
    parts.append('<div class="grid">' + "".join(shown) + "</div>")
    return "\n".join(parts)


def histograms_section(stats):
    by_class = class_rows(stats)
    shown = []
    for stat in SHOWN_HISTOGRAMS:
        column = f"{stat}_hist"
        if column not in stats or not len(by_class):
            continue
        present = by_class[by_class[column].map(lambda h: np.sum(h) > 0 if h is not None
                                                else False)]
        if not len(present):
            continue
        link = png_data_uri(figures.figure_png(figures.histogram_figure(present, stat)))
        shown.append(figure_html(link, f"{stat} per class"))
    if not shown:
        return ""
    return (f"<h2>Distributions</h2><p class=note>{statistics.HISTOGRAM_BINS} bins over "
            "[0, 1]; each line is the share of one class's examples per bin.</p>"
            '<div class="grid">' + "".join(shown) + "</div>")


def _caption(row):
    """An example's id, label and prediction (``records.class_label``; ``UNDEFINED`` when
    absent) and its border and top-5% shares."""
    parts = [str(row[saliency_table.EXAMPLE_ID])]
    label = class_label(row.get(saliency_table.LABEL), row.get(saliency_table.LABEL_NAME))
    predicted = class_label(row.get(saliency_table.PREDICTED),
                            row.get(saliency_table.PREDICTED_NAME))
    parts.append(f"label {label}, predicted {predicted}")
    parts.append(f"border {number(row[statistics.BORDER_SHARE])}, "
                 f"top5 {number(row[statistics.TOP5_SHARE])}")
    return "; ".join(parts)


def examples_section(frame, shown, maps):
    """The best examples of each ranking.

    Args:
        frame: the saliency DataFrame without maps (for captions).
        shown: dict ranking -> list of ``(example_id, uint8 (H, W, 3) image or None)``, best
            first.
        maps: dict example_id -> float32 ``(h, w)`` map.
    """
    by_id = frame.assign(**{saliency_table.EXAMPLE_ID:
                            frame[saliency_table.EXAMPLE_ID].astype(str)})
    by_id = by_id.drop_duplicates(saliency_table.EXAMPLE_ID).set_index(
        saliency_table.EXAMPLE_ID, drop=False)
    with_images = any(image is not None for ranked in shown.values() for _, image in ranked)
    note = ("Each example: its input image, its map and the map overlaid on the input."
            if with_images else "Maps alone (the run kept no input images).")
    parts = ["<h2>Most suspicious examples</h2>", f"<p class=note>{esc(note)} Each map is "
             "scaled by its own maximum.</p>"]
    for ranking, title in rankings.RANKING_TITLES.items():
        pictures = []
        for rank, (example_id, image) in enumerate(shown.get(ranking, [])):
            if example_id not in maps or example_id not in by_id.index:
                continue
            picture = figures.example_picture(maps[example_id], image)
            link = png_data_uri(figures.picture_png(picture))
            pictures.append(figure_html(
                link, f"#{rank + 1} {example_id}: {_caption(by_id.loc[example_id])}"))
        parts.append(f"<h3>{esc(title)}</h3>")
        parts.append('<div class="grid">' + "".join(pictures) + "</div>" if pictures else
                     "<p class=note>No examples.</p>")
    return "\n".join(parts)


def sanity_section(sanity_rows, verdict=None):
    """The sanity checks: verdict, randomization per depth, class sensitivity.

    Args:
        sanity_rows: the ``sanity`` table's rows (dicts).
        verdict: the manifest's ``sanity.verdict`` (the one the publish step wrote, so the
            page and ``manifest.json`` say the same), or None (left out).
    """
    from gbp_ops import sanity

    summary_by_depth = sanity.summary(sanity_rows)
    class_entry = sanity.class_summary(sanity_rows)
    parts = ["<h2>Sanity checks: model randomization and class sensitivity</h2>",
             "<p class=note>The model's weighted layers are re-randomized from the top down, "
             "one more at each depth, and each randomized model's maps are compared with the "
             "trained model's maps of the same images and targets (Adebayo et al. 2018, "
             "Sanity Checks for Saliency Maps). Maps that stay similar do not depend on what "
             "the model learned. The class-sensitivity check compares, on the same images, "
             "the map of the explained class with the map of another class drawn at random "
             "(the random-logit test); maps that stay similar cannot tell classes apart.</p>"]
    if verdict:
        parts.append(f'<p class="verdict">{esc(verdict)}</p>')
    if class_entry:
        parts.append(table(
            ("check", "examples", "constant maps", "Spearman (mean ± std)", "SSIM (mean ± std)"),
            [("explained class vs another class", class_entry["count"],
              class_entry["spearman_undefined"],
              f"{number(class_entry['spearman_mean'])} ± {number(class_entry['spearman_std'])}",
              f"{number(class_entry['ssim_mean'])} ± {number(class_entry['ssim_std'])}")],
            text_columns=(0,)))
    if summary_by_depth:
        link = png_data_uri(figures.figure_png(figures.sanity_figure(summary_by_depth)))
        parts.append(figure_html(link, "similarity to the trained model's maps per depth"))
        rows = [(d, e["last_layer"], e["count"], e["spearman_undefined"],
                 f"{number(e['spearman_mean'])} ± {number(e['spearman_std'])}",
                 f"{number(e['ssim_mean'])} ± {number(e['ssim_std'])}")
                for d, e in summary_by_depth.items()]
        parts.append(table(("depth", "layer added", "examples", "constant maps",
                            "Spearman (mean ± std)", "SSIM (mean ± std)"), rows,
                           text_columns=(1,)))
    return "\n".join(parts)
