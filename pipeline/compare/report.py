"""The report's "Since the baseline" section: one plain sentence per change (findings first,
then drift and prediction flips), the counts, the per-class figures, each class's mean map
difference as a picture, and the findings of both runs with their statuses."""

import numpy as np

from pipeline import paths, tables
from pipeline.outputs import loader
from pipeline.report import figures
from pipeline.report.page import esc, figure_html, number, page, png_data_uri, table
from pipeline.tables import comparison_classes as classes_table
from pipeline.tables import comparison_findings as findings_table
from pipeline.tables.comparison_examples import BASELINE, CURRENT, side_column
from pipeline.tables.stats import CLASS, CLASS_NAME, COUNT

DIFFERENCE_COLORMAP = "RdBu_r"  # red: more attention now, blue: less
_ALARMING = (findings_table.STATUS_NEW, findings_table.STATUS_PERSISTING,
             findings_table.STATUS_MOVED)


def difference_figure(difference, title):
    """A mean map difference ``(h, w)`` on a symmetric diverging scale."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3.4, 3.0))
    axes = figure.add_subplot()
    limit = float(np.max(np.abs(difference))) or 1.0
    image = axes.imshow(difference, cmap=DIFFERENCE_COLORMAP, vmin=-limit, vmax=limit,
                        interpolation="nearest")
    axes.set_title(title, fontsize=9)
    axes.set_xticks([])
    axes.set_yticks([])
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    return figure


def _optional(folder, table_name):
    try:
        return loader.load_table(folder, table_name)
    except FileNotFoundError:
        return None


def _sentences_html(comparison, finding_rows):
    alarming = {row[findings_table.SENTENCE] for row in finding_rows
                if row[findings_table.STATUS] in _ALARMING}
    drifted = {sentence for sentence in comparison["sentences"]
               if ": attention drifted; " in sentence}
    return [f'<div class="{"flag" if s in alarming | drifted else "ok"}">{esc(s)}</div>'
            for s in comparison["sentences"]]


def load_comparison_tables(folder):
    """``(comparison_classes, comparison_findings)`` DataFrames of ``folder`` (None where a
    table is missing): what ``since_baseline_section`` draws."""
    return (_optional(folder, tables.COMPARISON_CLASSES),
            _optional(folder, tables.COMPARISON_FINDINGS))


def since_baseline_section(comparison, classes, found):
    """The section's HTML from the manifest's ``comparison`` block and the two tables of
    ``load_comparison_tables`` (either may be None); reads nothing itself."""
    finding_rows = [] if found is None else found.to_dict("records")
    ids = comparison["ids"]
    parts = ["<h2>Since the baseline</h2>", *_sentences_html(comparison, finding_rows)]
    facts = (f"Baseline {comparison['baseline']}. Model "
             f"{'changed' if comparison['model_changed'] else 'unchanged'}, data "
             f"{'changed' if comparison['data_changed'] else 'unchanged'}; "
             f"{ids['shared_ids']:,} example ids in both runs, {ids['baseline_only_ids']:,} "
             f"only in the baseline, {ids['current_only_ids']:,} only in this run.")
    if comparison.get("unproven_statuses"):
        facts += (f" Not re-tested on the current model ({comparison['unproven_reason']}): "
                  f"{', '.join(comparison['unproven_statuses'])}.")
    parts.append(f"<p class=note>{esc(facts)}</p>")
    if classes is not None and len(classes):
        parts += _classes_html(classes)
    if finding_rows:
        parts.append(table(
            ("class", "status", "proven", "baseline clusters", "current clusters",
             "flip rate (baseline)", "flip rate (current model)", "control (current model)"),
            [(row[CLASS_NAME] or row[CLASS], row[findings_table.STATUS],
              row[findings_table.PROVEN], _clusters(row, BASELINE), _clusters(row, CURRENT),
              number(row[side_column(BASELINE, "flip_rate")], 2),
              number(row[side_column(CURRENT, "flip_rate")], 2),
              number(row[side_column(CURRENT, "control_flip_rate")], 2))
             for row in finding_rows], text_columns=(0, 1, 3, 4)))
    return "\n".join(parts)


def _clusters(row, side):
    clusters = row[side_column(side, findings_table.FINDING_CLUSTERS)]
    return "–" if clusters is None else ", ".join(str(int(c)) for c in clusters)


def _classes_html(classes):
    rows = [(row[CLASS_NAME] or row[CLASS], number(row[side_column(BASELINE, COUNT)]),
             number(row[side_column(CURRENT, COUNT)]), number(row[classes_table.PAIRS]),
             row[classes_table.TEST] or "–", number(row[classes_table.PREDICTION_FLIP_RATE], 3),
             number(row[classes_table.ACCURACY_CHANGE], 3),
             number(row[classes_table.MEDIAN_SPEARMAN], 3),
             ", ".join(row[classes_table.DRIFTED]) or "–")
            for _, row in classes.iterrows()]
    parts = [table(("class", "baseline", "now", "pairs", "test", "flip rate", "accuracy change",
                    "median Spearman", "drifted"), rows, text_columns=(0, 4, 8))]
    pictures = []
    for _, row in classes.iterrows():
        difference = row[classes_table.MEAN_MAP_DIFFERENCE]
        if difference is None:
            continue
        side = int(round(len(difference) ** 0.5))
        label = f"{row[CLASS_NAME] or row[CLASS]}: mean map now minus baseline"
        link = png_data_uri(figures.figure_png(difference_figure(
            np.asarray(difference, np.float32).reshape(side, -1), label)))
        pictures.append(figure_html(link, label))
    if pictures:
        parts.append('<div class="grid">' + "".join(pictures) + "</div>")
    parts.append("<p class=note>Drift: a statistic's shift with a Bonferroni-corrected p "
                 "below compare.drift_alpha and at least compare.drift_min_effect baseline "
                 "standard deviations. Mean maps are scaled by each map's maximum; red: more "
                 "attention now.</p>")
    return parts


def write_comparison_report(folder, current_manifest):
    """``<folder>/report.html`` of a ``gbp-audit compare`` folder: the section alone."""
    from pipeline.outputs import manifest

    written = manifest.read(folder)
    html = page({**current_manifest, "wall_time_seconds": None},
                [since_baseline_section(written["comparison"], *load_comparison_tables(folder))])
    path = paths.join(folder, "report.html")
    paths.write_bytes(path, html.encode("utf-8"))
    return path
