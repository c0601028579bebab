"""Findings as the report and the manifest state them: flagged clusters of one class whose
hot regions overlap (``SAME_PLACE_IOU``) are one finding, since spectral clustering often
splits one shortcut's images into several clusters. One function for both, so the page and
``manifest.json`` cannot count findings differently.

Rows are ``clusters`` table rows: dicts (as the stage builds them) or pandas rows.
"""

import numpy as np

from pipeline.findings import rules
from pipeline.findings.regions import region_share
from pipeline.records import class_label
from pipeline.tables import clusters as clusters_table
from pipeline.tables.stats import CLASS, CLASS_NAME, COUNT

SAME_PLACE_IOU = 0.5


def region_iou(first, second):
    """Intersection over union of two normalised ``[ymin, xmin, ymax, xmax]`` regions."""
    height = min(first[2], second[2]) - max(first[0], second[0])
    width = min(first[3], second[3]) - max(first[1], second[1])
    overlap = max(height, 0.0) * max(width, 0.0)
    union = region_share(first) + region_share(second) - overlap
    return overlap / union if union > 0 else 0.0


def finding_groups(flagged):
    """Flagged cluster rows (an iterable, in class then cluster order) -> lists of rows, one
    list per finding: a cluster joins the first finding of its class with a cluster whose
    region overlaps its own by ``SAME_PLACE_IOU``."""
    groups = []
    for row in flagged:
        home = next((group for group in groups if group[0][CLASS] == row[CLASS] and any(
            region_iou(member[clusters_table.REGION], row[clusters_table.REGION])
            >= SAME_PLACE_IOU for member in group)), None)
        if home is None:
            groups.append([row])
        else:
            home.append(row)
    return groups


def _rate(value):
    return 0.0 if value is None or value != value else float(value)


def row_label(row):
    """``records.class_label`` of a ``stats`` or ``clusters`` row (``target``,
    ``target_name``)."""
    return class_label(row[CLASS], row.get(CLASS_NAME))


def merged_figures(group):
    """A finding's figures over its clusters: ``count`` (summed), ``region`` (the union box),
    ``flip_rate`` and ``control_flip_rate`` (weighted by occluded examples; 0 when none) and
    ``occluded_examples`` (summed)."""
    occluded = [int(row[clusters_table.OCCLUDED_EXAMPLES]) for row in group]
    tested = sum(occluded)

    def weighted(column):
        if len(group) == 1:
            return _rate(group[0][column])
        return sum(_rate(row[column]) * count
                   for row, count in zip(group, occluded)) / tested if tested else 0.0

    regions = np.stack([np.asarray(row[clusters_table.REGION], float) for row in group])
    union = np.concatenate([regions[:, :2].min(axis=0), regions[:, 2:].max(axis=0)])
    return {"count": sum(int(row[COUNT]) for row in group),
            "region": [float(value) for value in union],
            "flip_rate": weighted(clusters_table.FLIP_RATE),
            "control_flip_rate": weighted(clusters_table.CONTROL_FLIP_RATE),
            "occluded_examples": tested}


def group_sentence(group, class_count, settings=None):
    """One sentence for a finding: the cluster's own reason, or for several clusters the same
    sentence over their union (``merged_figures``); ``settings``: the run's FindingsConfig
    (None: the defaults)."""
    if len(group) == 1:
        return group[0][clusters_table.REASON]
    figures = merged_figures(group)
    names = [str(row[clusters_table.CLUSTER]) for row in group]
    sentence = rules.reason(row_label(group[0]), figures["count"], class_count,
                            figures["region"], figures["flip_rate"],
                            figures["control_flip_rate"], figures["occluded_examples"],
                            settings=settings)
    return f"{sentence}; clusters {', '.join(names[:-1])} and {names[-1]}"


def flagged_findings(rows, settings=None):
    """Every cluster row of a run -> one JSON-ready dict per finding, in class order: ``target``,
    ``target_name``, ``clusters`` (indices), ``example_count``, ``region``, ``flip_rate``,
    ``control_flip_rate``, ``occluded_examples`` and ``sentence``."""
    rows = sorted(rows, key=lambda row: (int(row[CLASS]), int(row[clusters_table.CLUSTER])))
    class_counts = {}
    for row in rows:
        class_counts[int(row[CLASS])] = class_counts.get(int(row[CLASS]), 0) + int(row[COUNT])
    found = []
    for group in finding_groups(row for row in rows if bool(row[clusters_table.FLAGGED])):
        figures = merged_figures(group)
        target = int(group[0][CLASS])
        name = group[0].get(CLASS_NAME)
        found.append({
            CLASS: target, CLASS_NAME: None if name is None or name != name else str(name),
            "clusters": [int(row[clusters_table.CLUSTER]) for row in group],
            COUNT: figures["count"], "region": figures["region"],
            "flip_rate": round(figures["flip_rate"], 6),
            "control_flip_rate": round(figures["control_flip_rate"], 6),
            "occluded_examples": figures["occluded_examples"],
            "sentence": group_sentence(group, class_counts[target], settings)})
    return found
