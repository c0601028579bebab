"""``report.html``: a self-contained, offline picture book of one finished audit run.

The launcher renders it after the job, from the published outputs (``manifest.json`` and the
``stats``, ``saliency``, ``errors``, ``sanity``, ``examples``, ``clusters`` and ``embedding``
tables): the findings, the counts, flags (``pipeline.report.flags``), per-class mean maps and
histograms, the most suspicious examples drawn over their input images, and the sanity check.
``write_report`` reads every input once (``inputs.load_inputs``) and hands the frames to the
sections, which read nothing themselves. The page is one file: CSS inline and every image a
``data:`` URI (no scripts, no links), so it can be mailed, attached to a ticket or opened from
a bucket. Every path goes through ``pipeline.paths``, so ``gs://`` works.
"""

from pipeline import paths
from pipeline.report import findings, flags, sections
from pipeline.report.inputs import load_inputs
from pipeline.report.page import page
from pipeline.tables import sanity as sanity_table

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
    inputs = load_inputs(output_dir, top_n, box_area_share)
    parts = [
        findings.findings_section(inputs.clusters, inputs.embedding, inputs.maps,
                                  inputs.findings_settings),
        sections.counts_section(inputs.run, inputs.frame, inputs.errors),
        sections.flags_section(flags.border_flags(inputs.stats),
                               flags.box_flags(inputs.stats, inputs.frame, inputs.box_area_share),
                               inputs.has_box, inputs.box_area_share),
        sections.classes_section(inputs.stats, inputs.band),
        sections.histograms_section(inputs.stats),
        sections.examples_section(inputs.frame, inputs.shown, inputs.maps),
    ]
    if inputs.run.get("comparison"):  # a compared run opens with what changed since then
        from pipeline.compare.report import since_baseline_section

        parts.insert(0, since_baseline_section(inputs.run["comparison"],
                                               inputs.comparison_classes,
                                               inputs.comparison_findings))
    if inputs.sanity is not None:
        rows = sanity_table.check_rows(inputs.sanity.to_dict("records"))
        parts.append(sections.sanity_section(rows, inputs.run.get("sanity", {}).get("verdict")))
    report_path = paths.join(output_dir, REPORT_HTML)
    paths.write_bytes(report_path, page(inputs.run, parts).encode("utf-8"))
    return report_path
