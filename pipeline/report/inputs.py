"""Everything the report shows, read once from a finished run's outputs: the manifest, the
tables, and the maps of exactly the examples the page draws (one filtered read of the
``saliency`` table for the ranked examples and the findings' cluster members together)."""

import dataclasses

from gbp_ops.statistics import BOX_SHARE, border_band_pixels
from pipeline import rankings, tables
from pipeline.config import FindingsConfig
from pipeline.outputs import loader, manifest
from pipeline.report import findings
from pipeline.tables import examples as examples_table
from pipeline.tables import saliency as saliency_table
from pipeline.tables import stats as stats_table


@dataclasses.dataclass
class ReportInputs:
    """A run's outputs as the report's sections take them.

    Attributes:
        run: the manifest dict.
        stats: the ``stats`` DataFrame (``load_stats``).
        frame: the ``saliency`` DataFrame without maps.
        errors: the ``errors`` DataFrame.
        sanity: the ``sanity`` DataFrame, or None (no sanity check).
        clusters, embedding: the findings' tables, or None (findings off).
        comparison_classes, comparison_findings: a compared run's comparison tables, or None.
        shown: ranking -> ``[(example_id, uint8 (H, W, 3) image or None)]``, best first.
        maps: example_id -> float32 ``(h, w)`` map of every example the page draws.
        findings_settings: the run's FindingsConfig (its flag rule and thresholds).
        band: the border band's width in map pixels (0 without stats).
        box_area_share: the boxes' mean share of the image, or None; ``has_box``: whether
            the run has box shares.
    """

    run: dict
    stats: object
    frame: object
    errors: object
    sanity: object
    clusters: object
    embedding: object
    comparison_classes: object
    comparison_findings: object
    shown: dict
    maps: dict
    findings_settings: FindingsConfig
    band: int
    box_area_share: float | None
    has_box: bool


def load_inputs(output_dir, top_n, box_area_share=None):
    """Reads a run's outputs once. ``top_n`` and ``box_area_share``: see ``write_report``."""
    run = manifest.read(output_dir)
    stats = loader.load_stats(output_dir, run.get("map_shape"))
    frame = loader.load_saliency(output_dir, maps=False)
    clusters = _optional_table(output_dir, tables.CLUSTERS)
    embedding = _optional_table(output_dir, tables.EMBEDDING)
    settings = findings_settings(run)
    compared = (_optional_table(output_dir, tables.COMPARISON_CLASSES),
                _optional_table(output_dir, tables.COMPARISON_FINDINGS)) if run.get(
        "comparison") else (None, None)
    shown = _shown_examples(output_dir, frame, top_n)
    drawn = {example_id for ranked in shown.values() for example_id, _ in ranked}
    if clusters is not None:
        drawn |= findings.member_ids(clusters, embedding, settings)
    box_area = saliency_table.BOX_AREA
    if box_area_share is None and box_area in frame and frame[box_area].notna().any():
        box_area_share = float(frame[box_area].mean())
    band = 0
    if len(stats):
        height, width = stats[stats_table.MEAN_MAP].iloc[0].shape
        band = border_band_pixels(run["config"]["output"]["border_band_fraction"], height,
                                  width)
    return ReportInputs(
        run=run, stats=stats, frame=frame, errors=loader.load_errors(output_dir),
        sanity=_optional_table(output_dir, tables.SANITY), clusters=clusters,
        embedding=embedding, comparison_classes=compared[0], comparison_findings=compared[1],
        shown=shown, maps=_maps_of(output_dir, drawn),
        findings_settings=settings, band=band, box_area_share=box_area_share,
        has_box=bool(BOX_SHARE in frame and frame[BOX_SHARE].notna().any()))


def findings_settings(run):
    """The run's FindingsConfig from its manifest's ``config.findings`` (a field it lacks keeps
    its default)."""
    section = (run.get("config") or {}).get("findings") or {}
    return FindingsConfig(**{field.name: section[field.name]
                             for field in dataclasses.fields(FindingsConfig)
                             if field.name in section})


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
