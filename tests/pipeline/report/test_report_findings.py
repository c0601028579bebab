"""The report's findings: flagged clusters of one class at the same place are one finding."""

import pandas as pd
import pytest

from pipeline.report import findings


def _cluster(cls, cluster, count, region, flip, control, occluded, name="square"):
    return {"class": cls, "class_name": name, "cluster": cluster, "count": count,
            "region": region, "flip_rate": flip, "control_flip_rate": control,
            "occluded_examples": occluded, "flagged": True, "reason": f"cluster {cluster}"}


def test_region_iou_by_hand():
    assert findings.region_iou([0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5]) == 1.0
    # overlap 0.25 x 0.5 = 0.125; union 0.25 + 0.25 - 0.125
    assert findings.region_iou([0, 0, 0.5, 0.5], [0.25, 0, 0.75, 0.5]) == pytest.approx(1 / 3)
    assert findings.region_iou([0, 0, 0.25, 0.25], [0.5, 0.5, 1, 1]) == 0.0


def test_overlapping_flagged_clusters_of_one_class_are_one_finding():
    flagged = pd.DataFrame([
        _cluster(1, 1, 71, [0, 0, 0.25, 0.25], 0.95, 0.0, 38),
        _cluster(1, 2, 61, [0, 0.0625, 0.25, 0.25], 0.89, 0.0, 28),
        _cluster(1, 3, 20, [0.75, 0.75, 1, 1], 1.0, 0.0, 20),  # same class, elsewhere
        _cluster(0, 1, 30, [0, 0, 0.25, 0.25], 0.9, 0.1, 30, name="circle"),  # other class
    ])
    groups = findings.finding_groups(flagged)
    assert [[int(row["cluster"]) for row in group] for group in groups] == [[1, 2], [3], [1]]
    assert findings.group_sentence(groups[1], 481) == "cluster 3"  # a single cluster's own
    flip = (0.95 * 38 + 0.89 * 28) / 66
    assert findings.group_sentence(groups[0], 481) == (
        f"square: 132 of 481 examples (27%) rely on a small region at the upper left; covering "
        f"it changes {flip:.0%} of their predictions, a control region 0% (66 examples tested); "
        "clusters 1 and 2")
