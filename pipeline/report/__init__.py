"""``report.html``: a self-contained, offline picture book of one finished audit run.

The launcher renders it after the job, from the published outputs (``manifest.json`` and the
``stats``, ``saliency``, ``errors``, ``sanity`` and ``examples`` tables): the counts, flags
(``pipeline.report.flags``), per-class mean maps and histograms, the most suspicious examples
drawn over their input images, and the sanity check. It is one file: CSS inline and every
image a ``data:`` URI (no scripts, no links), so it can be mailed, attached to a ticket or
opened from a bucket. Every path goes through ``pipeline.paths``, so ``gs://`` works.
"""

from gbp_ops.statistics import BOX_SHARE, border_band_pixels
from pipeline import loader, manifest, paths, rankings, tables
from pipeline.report import findings, flags, sections
from pipeline.report.page import page
from pipeline.tables import examples as examples_table
from pipeline.tables import saliency as saliency_table
from pipeline.tables import stats as stats_table

REPORT_HTML = "report.html"
# Where reports before the one-file page kept their PNGs; removed when a report is written.
LEGACY_REPORT_DIR = "report"


def write_report(output_dir, top_n=8, box_area_share=None):
    """Writes ``<output_dir>/report.html``, one self-contained file.

    Args:
        output_dir: a finished run's output directory (local or gs://...).
        top_n: examples shown per ranking when the run wrote no ``examples`` table (then the
            examples are ranked here, with ``pipeline.rankings``, and drawn without images).
        box_area_share: optional float in (0, 1], the mean share of the image the boxes
            cover; enables the box flag. Defaults to the mean of the ``box_area`` column.

    Returns:
        str, the path of ``report.html``.

    Raises:
        FileNotFoundError: the run's stats or saliency tables are missing.
    """
    paths.delete([paths.join(output_dir, LEGACY_REPORT_DIR)])  # no stale pictures
    run = manifest.read(output_dir)
    stats = loader.load_stats(output_dir)
    frame = loader.load_saliency(output_dir, maps=False)
    errors = loader.load_errors(output_dir)
    band = 0
    if len(stats):
        height, width = stats[stats_table.MEAN_MAP].iloc[0].shape
        band = border_band_pixels(run["config"]["output"]["border_band_fraction"], height,
                                  width)
    box_area = saliency_table.BOX_AREA
    if box_area_share is None and box_area in frame and frame[box_area].notna().any():
        box_area_share = float(frame[box_area].mean())
    has_box = BOX_SHARE in frame and frame[BOX_SHARE].notna().any()
    shown = _shown_examples(output_dir, frame, top_n)
    maps = _maps_of(output_dir, {i for ranked in shown.values() for i, _ in ranked})
    parts = [
        findings.findings_section(output_dir, run),
        sections.counts_section(run, frame, errors),
        sections.flags_section(flags.border_flags(stats),
                               flags.box_flags(stats, frame, box_area_share),
                               has_box, box_area_share),
        sections.classes_section(stats, band),
        sections.histograms_section(stats),
        sections.examples_section(frame, shown, maps),
    ]
    if run.get("comparison"):  # a compared run opens with what changed since its baseline
        from pipeline.compare.report import since_baseline_section

        parts.insert(0, since_baseline_section(output_dir, run["comparison"]))
    sanity_rows = _optional_table(output_dir, tables.SANITY)
    if sanity_rows is not None:
        parts.append(sections.sanity_section(sanity_rows.to_dict("records")))
    report_path = paths.join(output_dir, REPORT_HTML)
    paths.write_bytes(report_path, page(run, parts).encode("utf-8"))
    return report_path


def _optional_table(output_dir, table):
    try:
        return loader.load_table(output_dir, table)
    except FileNotFoundError:
        return None


def _shown_examples(output_dir, frame, top_n):
    """ranking -> ``[(example_id, image or None)]`` best first: from the run's ``examples``
    table, else ranked here from the saliency table (without images)."""
    stored = _optional_table(output_dir, tables.EXAMPLES)
    if stored is not None:
        stored = stored.sort_values([examples_table.RANKING, examples_table.RANK])
        shown = {}
        for _, row in stored.iterrows():
            shown.setdefault(row[examples_table.RANKING], []).append(
                (str(row[saliency_table.EXAMPLE_ID]),
                 examples_table.decode_image(row[examples_table.IMAGE_PNG])))
        return shown
    ids = frame[saliency_table.EXAMPLE_ID].astype(str).to_numpy()
    scores = rankings.ranking_scores(lambda name: frame[name].to_numpy())
    return {ranking: [(ids[i], None) for i in rankings.best(values, ids, top_n)]
            for ranking, values in scores.items()}


def _maps_of(output_dir, example_ids):
    """float32 ``(h, w)`` maps of the given ids only, read with a pushed-down filter."""
    if not example_ids:
        return {}
    frame = loader.load_saliency(output_dir, columns=[saliency_table.EXAMPLE_ID,
                                                      saliency_table.SALIENCY_MAP],
                                 example_ids=example_ids)
    return dict(zip(frame[saliency_table.EXAMPLE_ID].astype(str),
                    frame[saliency_table.SALIENCY_MAP]))
