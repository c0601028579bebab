"""Findings as the report and the manifest state them: flagged clusters of one class at the
same place are one finding (``pipeline.findings.merge``, shared by both)."""

import pandas as pd
import pytest

from pipeline.findings import merge


def _cluster(cls, cluster, count, region, flip, control, occluded, name="square", flagged=True):
    return {"target": cls, "target_name": name, "cluster": cluster, "example_count": count,
            "region": region, "flip_rate": flip, "control_flip_rate": control,
            "occluded_examples": occluded, "flagged": flagged, "reason": f"cluster {cluster}"}


CLUSTERS = [
    _cluster(1, 1, 71, [0, 0, 0.25, 0.25], 0.95, 0.0, 38),
    _cluster(1, 2, 61, [0, 0.0625, 0.25, 0.25], 0.89, 0.0, 28),
    _cluster(1, 3, 20, [0.75, 0.75, 1, 1], 1.0, 0.0, 20),  # same class, elsewhere
    _cluster(0, 1, 30, [0, 0, 0.25, 0.25], 0.9, 0.1, 30, name="circle"),  # other class
]


def test_region_iou_by_hand():
    assert merge.region_iou([0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5]) == 1.0
    # overlap 0.25 x 0.5 = 0.125; union 0.25 + 0.25 - 0.125
    assert merge.region_iou([0, 0, 0.5, 0.5], [0.25, 0, 0.75, 0.5]) == pytest.approx(1 / 3)
    assert merge.region_iou([0, 0, 0.25, 0.25], [0.5, 0.5, 1, 1]) == 0.0


def test_overlapping_flagged_clusters_of_one_class_are_one_finding():
    flagged = pd.DataFrame(CLUSTERS)
    groups = merge.finding_groups(row for _, row in flagged.iterrows())
    assert [[int(row["cluster"]) for row in group] for group in groups] == [[1, 2], [3], [1]]
    assert merge.group_sentence(groups[1], 481) == "cluster 3"  # a single cluster's own
    flip = (0.95 * 38 + 0.89 * 28) / 66
    assert merge.group_sentence(groups[0], 481) == (
        f"square: 132 of 481 examples (27%) rely on a small region at the upper left; covering "
        f"it changes {flip:.0%} of their predictions, a control region 0% (66 examples tested); "
        "clusters 1 and 2")


def test_manifest_findings_are_the_report_groups_with_their_figures():
    """``flagged_findings`` (the manifest's ``findings.flagged``) from row dicts, as the stage
    has them: one entry per report group, class order, figures recomputed here by hand."""
    unflagged = _cluster(1, 0, 329, [0.4, 0.4, 1, 1], 0.1, 0.1, 40, flagged=False)
    found = merge.flagged_findings([*CLUSTERS, unflagged])
    assert [(entry["target"], entry["clusters"]) for entry in found] == [
        (0, [1]), (1, [1, 2]), (1, [3])]
    pair = found[1]
    assert pair["example_count"] == 132 and pair["occluded_examples"] == 66
    assert pair["region"] == [0.0, 0.0, 0.25, 0.25]  # the union box
    assert pair["flip_rate"] == pytest.approx((0.95 * 38 + 0.89 * 28) / 66, abs=1e-6)
    assert pair["control_flip_rate"] == 0.0
    # class 1 has 71 + 61 + 20 + 329 examples: the sentence's denominator counts unflagged ones
    groups = merge.finding_groups([CLUSTERS[0], CLUSTERS[1]])
    assert pair["sentence"] == merge.group_sentence(groups[0], 481)
    assert found[0]["sentence"] == "cluster 1" and found[0]["target_name"] == "circle"
    assert found[2]["flip_rate"] == 1.0 and found[2]["region"] == [0.75, 0.75, 1.0, 1.0]
