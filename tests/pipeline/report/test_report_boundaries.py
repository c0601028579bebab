"""The report's rules exactly at their boundaries, with fixtures whose rows fall on both sides
of every filter: the border flag at exactly 1.5x the rest of the dataset, the box flag's
standard error and boxed counts, the candidate clusters, findings merged at exactly IoU 0.5,
a merged finding's union region, and the example pictures' numbering and minimum height."""

import math

import numpy as np
import pandas as pd
import pytest

from pipeline import rankings
from pipeline.config import FindingsConfig
from pipeline.findings import merge
from pipeline.report import figures, findings, flags, sections

NAN = float("nan")


def _pooled(groups):
    """Overall (count, mean, std ddof=1) of groups given as (count, mean, std)."""
    count = sum(n for n, _, _ in groups)
    mean = sum(n * m for n, m, _ in groups) / count
    squares = sum((n - 1) * (0.0 if math.isnan(s) else s) ** 2 + n * m ** 2
                  for n, m, s in groups)
    return count, mean, math.sqrt(max(squares - count * mean ** 2, 0.0) / (count - 1))


def _stats(classes, stat="border_share"):
    """A stats-like frame: classes are (index, count, mean, std) of ``stat``; the overall row
    is pooled from them."""
    overall = _pooled([c[1:] for c in classes])
    rows = [{"group_kind": "overall", "target": NAN, "target_name": None,
             "example_count": overall[0], f"{stat}_mean": overall[1],
             f"{stat}_std": overall[2]}]
    rows += [{"group_kind": "class", "target": float(index), "target_name": f"c{index}",
              "example_count": count, f"{stat}_mean": mean, f"{stat}_std": std}
             for index, count, mean, std in classes]
    return pd.DataFrame(rows)


def test_border_flag_at_exactly_one_and_a_half_times_the_rest():
    """Class 0: 0.375 against a rest of exactly 0.25 (no spread): 1.5x, flagged. One step
    below 1.5x is not."""
    at_bound = flags.border_flags(_stats([(0, 4, 0.375, 0.0), (1, 4, 0.25, 0.0)]))
    assert [flag.class_index for flag in at_bound] == [0]
    assert "1.5x the rest of the dataset (0.250, 4 examples)" in at_bound[0].message
    below = 0.375 - 2 ** -10
    assert flags.border_flags(_stats([(0, 4, below, 0.0), (1, 4, 0.25, 0.0)])) == []


def test_no_border_flag_when_every_class_has_zero_border_share():
    assert flags.border_flags(_stats([(0, 4, 0.0, 0.0), (1, 5, 0.0, 0.0)])) == []


def test_no_border_flag_against_a_rest_of_one_example():
    """The rest's variance needs two examples; a class next to a single example is not
    judged, however far apart they are."""
    assert flags.border_flags(_stats([(0, 3, 0.5, 0.125), (1, 1, 0.125, NAN)])) == []
    assert flags.border_flags(_stats([(0, 6, 0.5, 0.125), (1, 1, 0.125, NAN),
                                      (2, 1, 0.125, NAN)])) != []


def test_a_rest_of_one_example_is_not_judged_when_its_variance_rounds_below_zero():
    """One example's variance is 0 / 0. Pooled in floating point, a rest of one example at 0.1
    next to 3 examples at 0.5 +- 0.125 leaves a sum of squares a hair below rest x mean^2, so
    the rest's variance is never computed: no flag, and no division by zero."""
    stats = _stats([(0, 3, 0.5, 0.125), (1, 1, 0.1, NAN)])
    overall, row = stats.iloc[0], stats.iloc[1]  # the overall row, class 0
    total, count = int(overall.example_count), int(row.example_count)
    rest_mean = (total * overall.border_share_mean - count * row.border_share_mean) / 1
    squares = ((total - 1) * overall.border_share_std ** 2 + total * overall.border_share_mean ** 2
               - (count - 1) * row.border_share_std ** 2 - count * row.border_share_mean ** 2)
    assert squares - rest_mean ** 2 < 0  # the fixture reaches the rounding case
    assert flags.border_flags(stats) == []


def _box_stats(classes):
    frame = _stats([(index, count, 0.1, 0.01) for index, count, _, _ in classes])
    frame["box_share_mean"] = [NAN] + [mean for _, _, mean, _ in classes]
    frame["box_share_std"] = [NAN] + [std for _, _, _, std in classes]
    return frame


def test_box_flag_uses_the_standard_error_of_the_boxed_mean():
    """Area share 0.25, std 0.25, 4 boxed examples: the standard error is 0.25 / sqrt(4) =
    0.125, so a mean must exceed 0.25 + 2 x 0.125 = 0.5. 0.625 does, 0.4375 does not."""
    stats = _box_stats([(0, 4, 0.625, 0.25), (1, 4, 0.4375, 0.25)])
    frame = pd.DataFrame({"target": [0] * 4 + [1] * 4, "box_share": [0.5] * 8})
    found = flags.box_flags(stats, frame, 0.25)
    assert [flag.class_index for flag in found] == [0]
    assert "2.5x; 4 boxed examples" in found[0].message


def test_box_flag_counts_only_the_boxed_examples():
    """Class 1 has 2 boxed examples among 10: its standard error is 0.25 / sqrt(2), and
    0.25 above the area share is within 2 of them (0.354); with all 10 it would not be."""
    stats = _box_stats([(0, 4, 0.25, 0.125), (1, 10, 0.5, 0.25)])
    frame = pd.DataFrame({"target": [0] * 4 + [1] * 10,
                          "box_share": [0.25] * 4 + [0.25, 0.75] + [NAN] * 8})
    assert 0.25 <= 2 * 0.25 / math.sqrt(2) and 0.25 > 2 * 0.25 / math.sqrt(10)
    assert flags.box_flags(stats, frame, 0.25) == []


QUARTER, LARGER, SMALL = [0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5625], [0.0, 0.0, 0.25, 0.25]


def _cluster(cls, cluster, count, region, flip, control, flagged=False, occluded=10):
    return {"target": cls, "target_name": f"c{cls}", "cluster": cluster, "example_count": count,
            "region": region, "flip_rate": flip, "control_flip_rate": control,
            "occluded_examples": occluded, "flagged": flagged, "reason": f"cluster {cluster}"}


CLUSTERS = [
    _cluster(0, 0, 5, QUARTER, 0.5, 0.25),  # every bound exactly met: a candidate
    _cluster(0, 1, 20, LARGER, 0.75, 0.0),  # region too large
    _cluster(0, 2, 4, SMALL, 0.75, 0.0),  # one member short
    _cluster(0, 3, 20, SMALL, 0.25, 0.25),  # flips only as often as the control
    _cluster(0, 4, 20, SMALL, 0.375, NAN),  # no control measured: counts as 0
    _cluster(0, 5, 20, SMALL, 1.0, 0.0, flagged=True),  # already a finding
    _cluster(0, 6, 20, SMALL, 0.0, 0.0),
    _cluster(1, 0, 20, SMALL, 0.625, 0.5),  # exactly 2% of class 1's 1000 examples
    _cluster(1, 1, 19, SMALL, 0.75, 0.0),  # below 2%
    _cluster(1, 2, 961, LARGER, 0.75, 0.0),
]


def _loop_candidates(rows, max_share=0.25, min_members=5, min_share=0.02):
    totals = {}
    for row in rows:
        totals[row["target"]] = totals.get(row["target"], 0) + row["example_count"]
    chosen = []
    for row in rows:
        ymin, xmin, ymax, xmax = row["region"]
        control = 0.0 if math.isnan(row["control_flip_rate"]) else row["control_flip_rate"]
        if (not row["flagged"] and (ymax - ymin) * (xmax - xmin) <= max_share
                and row["example_count"] >= max(min_members, min_share * totals[row["target"]])
                and row["flip_rate"] > control):
            chosen.append(row)
    chosen.sort(key=lambda row: (-row["flip_rate"], -row["example_count"]))
    return [(row["target"], row["cluster"]) for row in chosen]


def test_candidates_are_the_unflagged_small_large_enough_stronger_clusters():
    expected = _loop_candidates(CLUSTERS)
    assert expected == [(1, 0), (0, 0), (0, 4)]
    chosen = findings.candidates(pd.DataFrame(CLUSTERS), FindingsConfig())
    assert list(zip(chosen["target"], chosen["cluster"])) == expected
    # the run's own settings replace the defaults
    strict = findings.candidates(pd.DataFrame(CLUSTERS), FindingsConfig(min_members=6))
    assert list(zip(strict["target"], strict["cluster"])) == _loop_candidates(CLUSTERS,
                                                                             min_members=6)


def test_flagged_clusters_at_exactly_iou_one_half_are_one_finding():
    half = [0.0, 0.0, 0.5, 0.25]
    assert merge.region_iou(QUARTER, half) == 0.5  # 0.125 / (0.25 + 0.125 - 0.125)
    flagged = pd.DataFrame([_cluster(2, 1, 30, QUARTER, 0.75, 0.0, True),
                            _cluster(2, 2, 20, half, 0.75, 0.0, True),
                            _cluster(2, 3, 20, [0.5, 0.5, 1.0, 1.0], 0.75, 0.0, True)])
    groups = merge.finding_groups(row for _, row in flagged.iterrows())
    assert [[int(row["cluster"]) for row in group] for group in groups] == [[1, 2], [3]]


def test_a_merged_finding_describes_the_union_of_its_regions():
    """[0, 0, 0.5, 0.5] and [0, 0, 0.5, 0.625] (IoU 0.8): the union covers 0.3125 of the image,
    a large region; flip rates weighted by the occluded counts: (0.75 x 20 + 0.5 x 12) / 32 =
    0.65625, controls 0.25 x 12 / 32 = 0.09375."""
    group = merge.finding_groups([
        {**_cluster(0, 1, 30, QUARTER, 0.75, 0.0, True, occluded=20), "target_name": "dog"},
        {**_cluster(0, 2, 10, [0.0, 0.0, 0.5, 0.625], 0.5, 0.25, True, occluded=12),
         "target_name": "dog"}])[0]
    assert merge.group_sentence(group, 160) == (
        "dog: 40 of 160 examples (25%) rely on a large region at the upper left; covering it "
        "changes 66% of their predictions, a control region 9% (32 examples tested); "
        "clusters 1 and 2")


def test_example_captions_are_numbered_from_one():
    frame = pd.DataFrame({"example_id": ["a", "b"], "border_share": [0.5, 0.25],
                          "top5_share": [0.25, 0.125]})
    shown = {rankings.BY_BORDER: [("a", None), ("b", None)]}
    maps = {"a": np.ones((4, 4), np.float32), "b": np.eye(4, dtype=np.float32)}
    html = sections.examples_section(frame, shown, maps)
    # a frame without labels or predictions shows them as undefined ("–")
    assert 'alt="#1 a: a; label –, predicted –; border 0.500, top5 0.250"' in html
    assert 'alt="#2 b: b; label –, predicted –; border 0.250, top5 0.125"' in html


@pytest.mark.parametrize("rows,height", [(30, 180), (32, 160), (7, 161), (200, 200)])
def test_example_pictures_are_enlarged_to_at_least_160_rows(rows, height):
    """The smallest whole factor that reaches 160 rows: ceil(160 / rows)."""
    assert height == rows * max(1, math.ceil(160 / rows))
    picture = figures.example_picture(np.ones((rows, rows), np.float32), None)
    assert picture.shape[:2] == (height, height) and picture.dtype == np.uint8
