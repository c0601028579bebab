"""Statuses of findings across runs, from matching and re-occlusion figures made up here."""

import numpy as np

from pipeline.compare.matching import Finding, compare_findings, still_relies

SETTINGS = {"min_flip_rate": 0.5, "min_flip_ratio": 3.0}
UPPER_LEFT = np.array([0.0, 0.0, 0.25, 0.25])
LOWER_RIGHT = np.array([0.75, 0.75, 1.0, 1.0])


def _finding(class_index, clusters, region, flip=0.9):
    return Finding(class_index, f"class{class_index}", tuple(clusters), region,
                   np.array([0.4, 0.4, 0.65, 0.65]), 40, flip, 0.0, 30)


def _figures(flip, control=0.0, occluded=30):
    return {"flip_rate": flip, "control_flip_rate": control, "occluded_examples": occluded}


def test_the_intervention_decides_persisting_and_resolved():
    old = [_finding(1, [0], UPPER_LEFT)]
    overlaps = {(1, 0, 1, 2): 30}  # all 30 shared members now in cluster 2 of class 1
    same_place = [_finding(1, [2], UPPER_LEFT)]
    rows = compare_findings(old, same_place, overlaps, {0: _figures(0.8)}, SETTINGS)
    assert [row["status"] for row in rows] == ["persisting"] and rows[0]["proven"]
    assert rows[0]["current_clusters"] == [2] and rows[0]["member_overlap"] == 1.0
    rows = compare_findings(old, [], {(1, 0, 1, 0): 30}, {0: _figures(0.1)}, SETTINGS)
    assert [row["status"] for row in rows] == ["resolved"]
    assert rows[0]["current_flip_rate"] == 0.1 and rows[0]["baseline_flip_rate"] == 0.9
    assert rows[0]["sentence"] == ("class1: the upper-left shortcut is resolved; covering it "
                                   "now changes only 10% of 30 members' predictions (90% in "
                                   "the baseline)")
    # a control region that flips as often: not reliance on the region
    rows = compare_findings(old, [], overlaps, {0: _figures(0.6, control=0.3)}, SETTINGS)
    assert rows[0]["status"] == "resolved"


def test_members_at_another_place_moved_and_an_unmatched_finding_is_new():
    old = [_finding(1, [0], UPPER_LEFT)]
    current = [_finding(1, [3], LOWER_RIGHT), _finding(0, [1], LOWER_RIGHT)]
    overlaps = {(1, 0, 1, 3): 24, (1, 0, 1, 0): 6}
    rows = compare_findings(old, current, overlaps, {0: _figures(0.05)}, SETTINGS)
    assert [(row["status"], row["target"]) for row in rows] == [("moved", 1), ("new", 0)]
    assert rows[0]["member_overlap"] == 0.8
    assert rows[0]["sentence"].startswith("class1: the upper-left shortcut moved to the lower "
                                          "right")
    # few shared members in the other cluster: not the same members, so resolved + new
    rows = compare_findings(old, current[:1], {(1, 0, 1, 3): 5, (1, 0, 1, 0): 25},
                            {0: _figures(0.05)}, SETTINGS)
    assert [row["status"] for row in rows] == ["resolved", "new"]


def test_without_re_occlusion_the_status_rests_on_matching_and_is_unproven():
    old = [_finding(1, [0], UPPER_LEFT)]
    rows = compare_findings(old, [_finding(1, [1], UPPER_LEFT)], {(1, 0, 1, 1): 20}, {},
                            SETTINGS, "the current model m.keras is not reachable")
    assert rows[0]["status"] == "persisting" and not rows[0]["proven"]
    assert rows[0]["sentence"].endswith("not re-tested on the current model (the current "
                                        "model m.keras is not reachable)")
    # new data (no shared ids): matched by region alone
    rows = compare_findings(old, [_finding(1, [1], UPPER_LEFT + 0.01)], {}, {}, SETTINGS)
    assert [row["status"] for row in rows] == ["persisting"] and rows[0]["region_iou"] > 0.5
    rows = compare_findings(old, [_finding(1, [1], LOWER_RIGHT)], {}, {}, SETTINGS)
    assert [row["status"] for row in rows] == ["resolved", "new"]


def test_flip_rule():
    assert still_relies(SETTINGS, _figures(0.5, 0.1))
    assert not still_relies(SETTINGS, _figures(0.49, 0.0))
    assert not still_relies(SETTINGS, _figures(0.9, 0.31))
    assert not still_relies(SETTINGS, _figures(0.9, 0.0, occluded=0))
