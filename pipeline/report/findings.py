"""The report's opening section: the findings of ``pipeline.findings`` (strategy clusters
proved by occlusion), from the run's ``clusters`` and ``embedding`` tables and the maps of the
members shown (all read by ``pipeline.report.inputs``; nothing is read here).

Each finding: its sentence, then per flagged cluster its mean map with the hot region (solid)
and the control region (dashed) drawn, and the maps of up to ``shown`` members (sampled
members, by id; maps only: the run keeps no input images of cluster members). Flagged clusters
of one class whose regions overlap are one finding (``pipeline.findings.merge``, which the
manifest's ``findings.flagged`` uses too). Then a table of every cluster and a
scatter of each class's 2-D spectral embedding coloured by cluster.
"""

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from pipeline.findings.merge import finding_groups, group_sentence, row_label
from pipeline.findings.regions import place_words, region_share
from pipeline.records import class_label
from pipeline.report import figures
from pipeline.report.page import esc, figure_html, number, png_data_uri, table
from pipeline.tables import clusters as clusters_table
from pipeline.tables import embedding as embedding_table
from pipeline.tables import saliency as saliency_table
from pipeline.tables.stats import CLASS, CLASS_NAME, COUNT

MEMBERS_SHOWN = 8
CANDIDATES_SHOWN = 3


def _region_patch(region, size, **style):
    ymin, xmin, ymax, xmax = (float(v) * size for v in region)
    return Rectangle((xmin - 0.5, ymin - 0.5), xmax - xmin, ymax - ymin, fill=False, **style)


def cluster_map_figure(mean_map, region, control, title):
    """A cluster's mean small map with its hot region (solid) and control region (dashed)."""
    figure = Figure(figsize=(3.0, 3.0))
    axes = figure.add_subplot()
    axes.imshow(mean_map, cmap=figures.MAP_COLORMAP, vmin=0.0, interpolation="nearest")
    size = mean_map.shape[0]
    axes.add_patch(_region_patch(region, size, edgecolor="#00e5ff", linewidth=2))
    axes.add_patch(_region_patch(control, size, edgecolor="#ffffff", linewidth=1,
                                 linestyle="--"))
    axes.set_title(title, fontsize=9)
    axes.set_xticks([])
    axes.set_yticks([])
    return figure


def embedding_figure(embedding, names=None):
    """One scatter per class of the sampled examples' 2-D embedding, coloured by cluster;
    ``names``: class -> name (the embedding table holds no names)."""
    classes = sorted(embedding[CLASS].dropna().unique())
    figure = Figure(figsize=(3.4 * max(len(classes), 1), 3.2))
    for index, class_index in enumerate(classes):
        axes = figure.add_subplot(1, len(classes), index + 1)
        rows = embedding[embedding[CLASS] == class_index]
        for cluster in sorted(rows[clusters_table.CLUSTER].unique()):
            points = rows[rows[clusters_table.CLUSTER] == cluster]
            axes.scatter(points[embedding_table.EMBEDDING_X], points[embedding_table.EMBEDDING_Y],
                         s=6, label=f"cluster {cluster}")
        axes.set_title(class_label(class_index, (names or {}).get(class_index)), fontsize=9)
        axes.set_xticks([])
        axes.set_yticks([])
        axes.legend(fontsize=7, markerscale=2)
    return figure


def _member_ids(row, embedding, count=MEMBERS_SHOWN):
    """The ids of up to ``count`` sampled members of a cluster (``row``), smallest first."""
    if embedding is None:
        return []
    return sorted(embedding[(embedding[CLASS] == row[CLASS]) & (
        embedding[clusters_table.CLUSTER] == row[clusters_table.CLUSTER])][
            saliency_table.EXAMPLE_ID].astype(str))[:count]


def shown_clusters(clusters, settings):
    """The cluster rows the section draws: the flagged ones, else the best few candidates."""
    flagged = clusters[clusters[clusters_table.FLAGGED]]
    if len(flagged):
        return flagged
    return candidates(clusters, settings).head(CANDIDATES_SHOWN)


def member_ids(clusters, embedding, settings):
    """The ids whose maps the section draws (members of the shown clusters): a set of str."""
    return {example_id for _, row in shown_clusters(clusters, settings).iterrows()
            for example_id in _member_ids(row, embedding)}


def _finding_html(row, embedding, maps, css=None):
    mean_map = clusters_table.decode_mean_maps(row.to_frame().T)[0]
    title = f"{row_label(row)}, cluster {row[clusters_table.CLUSTER]}"
    pictures = [figure_html(png_data_uri(figures.figure_png(cluster_map_figure(
        mean_map, row[clusters_table.REGION], row[clusters_table.CONTROL_REGION],
        f"{title}: mean map"))), f"{title}: mean map, region (solid), control (dashed)")]
    for example_id in _member_ids(row, embedding):
        if example_id not in maps:
            continue
        saliency = maps[example_id]
        link = png_data_uri(figures.picture_png(figures.example_picture(saliency, None)))
        pictures.append(figure_html(link, f"{title}: {example_id}"))
    css = css or ("flag" if row[clusters_table.FLAGGED] else "note")
    return (f'<div class="{css}">{esc(row[clusters_table.REASON])}</div>'
            f'<div class="grid">{"".join(pictures)}</div>')


def candidates(clusters, settings):
    """Unflagged clusters that look at a small region with enough members, and whose
    occlusion changes more predictions than the control's: the groups worth a look that the
    occlusion test did not prove. Most convincing (highest flip rate) first.

    Args:
        settings: the run's FindingsConfig (``max_region_share``, ``min_members``,
            ``min_member_share``: the flag rule's own thresholds).
    """
    class_counts = clusters.groupby(CLASS)[COUNT].transform("sum")
    small = clusters[clusters_table.REGION].map(region_share) <= settings.max_region_share
    enough = clusters[COUNT] >= np.maximum(settings.min_members,
                                           settings.min_member_share * class_counts)
    stronger = clusters[clusters_table.FLIP_RATE] > clusters[
        clusters_table.CONTROL_FLIP_RATE].fillna(0.0)
    chosen = clusters[~clusters[clusters_table.FLAGGED] & small & enough & stronger]
    return chosen.sort_values([clusters_table.FLIP_RATE, COUNT], ascending=False)


def findings_section(clusters, embedding, maps, settings):
    """The findings section's HTML, or '' when the run wrote no ``clusters`` table.

    Args:
        clusters: the ``clusters`` DataFrame, or None.
        embedding: the ``embedding`` DataFrame, or None.
        maps: example_id -> float32 ``(h, w)`` map, holding at least ``member_ids``'s.
        settings: the run's FindingsConfig.
    """
    if clusters is None:
        return ""
    clusters = clusters.sort_values([CLASS, clusters_table.CLUSTER])
    flagged = clusters[clusters[clusters_table.FLAGGED]]
    parts = ["<h2>Findings</h2>"]
    class_counts = clusters.groupby(CLASS)[COUNT].sum()
    for group in finding_groups(row for _, row in flagged.iterrows()):
        if len(group) == 1:
            parts.append(_finding_html(group[0], embedding, maps))
            continue
        sentence = group_sentence(group, int(class_counts[group[0][CLASS]]), settings)
        parts.append(f'<div class="flag">{esc(sentence)}</div>')
        parts += [_finding_html(row, embedding, maps, css="note") for row in group]
    if not len(flagged):
        parts.append('<div class="ok">No group of examples relies on a small region that, '
                     "covered, changes their predictions.</div>")
        shown = shown_clusters(clusters, settings)
        if len(shown):
            parts.append("<h3>Groups worth a look (not proved by occlusion)</h3>")
            parts += [_finding_html(row, embedding, maps) for _, row in shown.iterrows()]
    rows = [(row_label(row), row[clusters_table.CLUSTER],
             number(row[COUNT]), number(row[clusters_table.SHARE], 2),
             number(row[clusters_table.ACCURACY], 2),
             f"{region_share(row[clusters_table.REGION]):.0%} at "
             f"{place_words(row[clusters_table.REGION])}",
             number(row[clusters_table.FLIP_RATE], 2),
             number(row[clusters_table.CONTROL_FLIP_RATE], 2),
             number(row[clusters_table.OCCLUDED_EXAMPLES]), bool(row[clusters_table.FLAGGED]))
            for _, row in clusters.iterrows()]
    parts.append(table(("class", "cluster", "count", "share", "accuracy", "region",
                        "flip rate", "control", "occluded", "flagged"), rows,
                       text_columns=(0, 5)))
    parts.append("<p class=note>Clusters come from spectral clustering of each class's "
                 "sampled maps; every example is assigned to its class's nearest clusters. "
                 "Flip rate: share of occluded members whose prediction changes when the "
                 "region is covered; control: the same-sized region where the cluster's mean "
                 "map is lowest.</p>")
    if embedding is not None and len(embedding):
        names = dict(zip(clusters[CLASS], clusters[CLASS_NAME]))
        link = png_data_uri(figures.figure_png(embedding_figure(embedding, names)))
        parts.append(figure_html(link, "2-D spectral embedding of the sampled maps, "
                                       "coloured by cluster"))
    return "\n".join(parts)

