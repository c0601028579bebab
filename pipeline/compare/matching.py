"""Findings across two runs (pure): each run's findings from its ``clusters`` table, matched
between runs by membership overlap on shared ids and by region overlap, and given a status
that rests on the re-occlusion of each baseline finding with the current model.

For a baseline finding, with its re-occlusion figures: ``persisting`` when they meet the
findings stage's flip rule (flip rate at least ``findings.min_flip_rate`` and at least
``findings.min_flip_ratio`` times the control's), else ``moved`` when a current finding of the
class holds most of its shared members (``MIN_MEMBER_OVERLAP``) at another region, else
``resolved``. Without the re-occlusion (no model or images) the status rests on matching only
(a current finding with its members at the same place: ``persisting``) and is unproven.
A current finding that is no baseline finding's counterpart is ``new``.
"""

import dataclasses

import numpy as np

from pipeline.findings.regions import control_region, place_words
from pipeline.tables import clusters as clusters_table
from pipeline.tables import comparison_findings as table
from pipeline.tables.comparison_examples import BASELINE, CURRENT, side_column
from pipeline.tables.stats import CLASS, CLASS_NAME, COUNT

MIN_MEMBER_OVERLAP = 0.5  # share of a baseline finding's shared members in a current one


@dataclasses.dataclass
class Finding:
    """One finding of one run: flagged clusters of a class whose regions overlap.

    Attributes:
        region: the union of the clusters' regions; control_region: the clusters' own control
            region (one cluster), else the same-sized box where their mean map is lowest.
        members: examples assigned to the clusters; flip rates: the run's occlusion figures,
            weighted by occluded examples.
    """

    class_index: int
    class_name: str
    clusters: tuple
    region: np.ndarray
    control_region: np.ndarray
    members: int
    flip_rate: float
    control_flip_rate: float
    occluded: int


def run_findings(clusters):
    """A run's ``clusters`` DataFrame (or None) -> its findings, ordered by class, then the
    first cluster."""
    from pipeline.findings.merge import finding_groups

    if clusters is None or not len(clusters):
        return []
    clusters = clusters.sort_values([CLASS, clusters_table.CLUSTER])
    found = []
    flagged = clusters[clusters[clusters_table.FLAGGED]]
    for group in finding_groups(row for _, row in flagged.iterrows()):
        occluded = np.array([int(row[clusters_table.OCCLUDED_EXAMPLES]) for row in group])
        weights = occluded / occluded.sum() if occluded.sum() else np.full(len(group), 1 / len(
            group))
        regions = np.stack([np.asarray(row[clusters_table.REGION], float) for row in group])
        region = np.concatenate([regions[:, :2].min(axis=0), regions[:, 2:].max(axis=0)])
        if len(group) == 1:
            control = np.asarray(group[0][clusters_table.CONTROL_REGION], float)
        else:
            counts = np.array([int(row[COUNT]) for row in group], float)
            maps = np.stack(clusters_table.decode_mean_maps({clusters_table.MEAN_MAP: [
                row[clusters_table.MEAN_MAP] for row in group]}))
            control = control_region(np.tensordot(counts / counts.sum(), maps, axes=1), region)

        def weighted(column, rows=group, weights=weights):
            return float(sum(np.nan_to_num(float(row[column])) * w for row, w in zip(rows,
                                                                                   weights)))

        name = group[0][CLASS_NAME]
        found.append(Finding(
            int(group[0][CLASS]), name if isinstance(name, str) else str(group[0][CLASS]),
            tuple(int(row[clusters_table.CLUSTER]) for row in group), region, control,
            int(sum(int(row[COUNT]) for row in group)), weighted(clusters_table.FLIP_RATE),
            weighted(clusters_table.CONTROL_FLIP_RATE), int(occluded.sum())))
    return found


def still_relies(settings, figures):
    """Whether re-occlusion figures meet the findings stage's flip rule (``settings``: the
    baseline's ``findings`` config dict)."""
    if not figures or not figures["occluded_examples"]:
        return False
    flip, control = figures["flip_rate"], np.nan_to_num(figures["control_flip_rate"])
    return bool(flip >= settings["min_flip_rate"] and flip >= settings["min_flip_ratio"] * control)


def _overlap(overlaps, old, new):
    """(shared members of ``old``, of them in ``new`` or None for new=None)."""
    shared = common = 0
    for (b_class, b_cluster, c_class, c_cluster), count in overlaps.items():
        if b_class == old.class_index and b_cluster in old.clusters:
            shared += count
            if new is not None and c_class == new.class_index and c_cluster in new.clusters:
                common += count
    return shared, common


def match(old, new, overlaps):
    """``(member overlap or None, region IoU, same members, same place)`` of a baseline and a
    current finding of one class; without shared members, same members = same place."""
    from pipeline.findings.merge import SAME_PLACE_IOU, region_iou

    iou = region_iou(old.region, new.region)
    shared, common = _overlap(overlaps, old, new)
    overlap = common / shared if shared else None
    same_place = iou >= SAME_PLACE_IOU
    same_members = overlap >= MIN_MEMBER_OVERLAP if overlap is not None else same_place
    return overlap, iou, same_members, same_place


def _shortcut_place(region):
    return place_words(region).removeprefix("the ").replace(" ", "-")


def sentence(status, old, new, figures, proven, reason=""):
    """One plain sentence for a finding's change."""
    found = old if old is not None else new
    label = found.class_name
    if status == table.STATUS_NEW:
        return (f"{label}: a new shortcut at {place_words(new.region)}; covering it changes "
                f"{new.flip_rate:.0%} of {new.occluded} members' predictions (a control region "
                f"{new.control_flip_rate:.0%})")
    place = _shortcut_place(old.region)
    if not proven:
        text = {table.STATUS_PERSISTING: f"the {place} shortcut persists in the clusters",
                table.STATUS_RESOLVED: f"no current cluster holds the {place} shortcut",
                table.STATUS_MOVED: f"the {place} shortcut's members now look at "
                                    f"{place_words(new.region) if new else 'another place'}"}
        return f"{label}: {text[status]}; not re-tested on the current model ({reason})"
    tested = (f"{figures['flip_rate']:.0%} of {figures['occluded_examples']} members' "
              f"predictions ({old.flip_rate:.0%} in the baseline)")
    if status == table.STATUS_PERSISTING:
        return f"{label}: the {place} shortcut persists; covering it still changes {tested}"
    if status == table.STATUS_MOVED:
        return (f"{label}: the {place} shortcut moved to {place_words(new.region)}; covering "
                f"the old place now changes {tested}")
    return f"{label}: the {place} shortcut is resolved; covering it now changes only {tested}"


def compare_findings(baseline, current, overlaps, reoccluded, settings, unproven_reason=""):
    """Statuses of both runs' findings.

    Args:
        baseline, current: ``run_findings`` of each run.
        overlaps: ``{(baseline class, cluster, current class, cluster): shared ids}``.
        reoccluded: ``{baseline finding index: figures}`` (``occlusion.OccludeFindingDoFn``);
            a finding without figures is unproven.
        settings: the baseline's ``findings`` config dict.
        unproven_reason: why re-occlusion did not run (for the sentences).

    Returns:
        list of row dicts of the ``comparison_findings`` table (baseline findings first).
    """
    claimed, rows = set(), []
    for index, old in enumerate(baseline):
        figures = reoccluded.get(index)
        proven = bool(figures and figures["occluded_examples"])
        candidates = []
        for position, new in enumerate(current):
            if new.class_index == old.class_index:
                candidates.append((position, new, *match(old, new, overlaps)))
        same = [c for c in candidates if c[4] and c[5]]
        elsewhere = [c for c in candidates if c[4] and not c[5]]
        holds = still_relies(settings, figures) if proven else bool(same)
        if holds:
            status, chosen = table.STATUS_PERSISTING, (same or elsewhere or [None])[0]
        elif elsewhere:
            status, chosen = table.STATUS_MOVED, elsewhere[0]
        else:
            status, chosen = table.STATUS_RESOLVED, (same or [None])[0]
        new = chosen[1] if chosen else None
        if chosen:
            claimed.add(chosen[0])
        reason = "" if proven else (unproven_reason or "none of its members is in the "
                                                       "current data")
        rows.append(_row(status, proven, old, new, figures, chosen,
                         sentence(status, old, new, figures, proven, reason)))
    for position, new in enumerate(current):
        if position not in claimed:
            rows.append(_row(table.STATUS_NEW, True, None, new, None, None,
                             sentence(table.STATUS_NEW, None, new, None, True)))
    return rows


def _row(status, proven, old, new, figures, chosen, text):
    found = old if old is not None else new
    row = {CLASS: found.class_index, CLASS_NAME: found.class_name, table.STATUS: status,
           table.PROVEN: proven, table.SENTENCE: text,
           table.MEMBER_OVERLAP: chosen[2] if chosen else None,
           table.REGION_IOU: chosen[3] if chosen else None,
           clusters_table.CONTROL_REGION: None if old is None else old.control_region.tolist(),
           table.OCCLUDED: figures["occluded_examples"] if figures else None}
    for side, finding in ((BASELINE, old), (CURRENT, new)):
        row[side_column(side, table.FINDING_CLUSTERS)] = (
            None if finding is None else list(finding.clusters))
        row[side_column(side, table.MEMBERS)] = None if finding is None else finding.members
        row[side_column(side, clusters_table.REGION)] = (
            None if finding is None else finding.region.tolist())
    row[side_column(BASELINE, clusters_table.FLIP_RATE)] = None if old is None else old.flip_rate
    row[side_column(BASELINE, clusters_table.CONTROL_FLIP_RATE)] = (
        None if old is None else old.control_flip_rate)
    current_figures = figures if old is not None else (
        {"flip_rate": new.flip_rate, "control_flip_rate": new.control_flip_rate})
    row[side_column(CURRENT, clusters_table.FLIP_RATE)] = (
        current_figures["flip_rate"] if current_figures else None)
    row[side_column(CURRENT, clusters_table.CONTROL_FLIP_RATE)] = (
        current_figures["control_flip_rate"] if current_figures else None)
    return row
