"""What the findings tests (tests/e2e/test_findings.py) measure on a trained model's runs, in
one place, so that scripts/check_findings_margins.py measures the same quantities over training
seeds and kernels.

Figures come from the run's tables, read with pandas, against the synthetic data's ground truth
(`findings_data.synthesize`'s ``has_mark``).
"""

import math

import numpy as np
import pandas as pd

from tests.e2e import findings_data
from tests.e2e.margins import Bound

COUNT = 400
STRIPES = 1
MIRRORED_MARK = tuple(findings_data.SIZE - v  # the mark's box turned by 180 degrees
                      for v in findings_data.MARK[2:] + findings_data.MARK[:2])
PLANTED_SEED, CLEAN_SEED = 1, 2  # data seeds of the planted and the clean datasets
PLANTED_MODEL_SEED, CLEAN_MODEL_SEED = 0, 1  # the suite's training seeds


def marked(arrays, frame):
    """Bool Series: whether each row's example carries the mark."""
    return frame.example_id.map(dict(zip(arrays["ids"], arrays["has_mark"]))).astype(bool)


def best_cluster(arrays, output):
    """(precision, recall, cluster) of the stripes cluster that best matches the marked set."""
    import pipeline

    frame = pipeline.load_saliency(str(output), maps=False)
    frame = frame[frame.target == STRIPES]
    is_marked = marked(arrays, frame)
    best = (0.0, 0.0, None)
    for cluster in sorted(frame.cluster.unique()):
        members = frame.cluster == cluster
        hits = float((members & is_marked).sum())
        precision, recall = hits / members.sum(), hits / is_marked.sum()
        best = max(best, (precision, recall, int(cluster)), key=lambda b: b[0] + b[1])
    return best


def planted_group(arrays, output, mark=findings_data.MARK):
    """The planted group's cluster in one run (``mark``: pixel ``(y0, x0, y1, x1)``):

    - ``precision`` / ``recall`` of the stripes cluster that best matches the marked images;
    - ``flagged``: 1 when that cluster is flagged and its reason names the class, else 0;
    - ``flip_rate`` / ``control_flip_rate`` / ``occluded_examples`` of that cluster;
    - ``region_overhang``: the least distance by which its region reaches past the mark on any
      side (negative: the region misses part of the mark);
    - ``flagged_clusters``: flagged clusters in the whole run.
    """
    precision, recall, cluster = best_cluster(arrays, output)
    clusters = pd.read_parquet(f"{output}/clusters")
    row = clusters[(clusters["class"] == STRIPES) & (clusters.cluster == cluster)].iloc[0]
    mark = np.array(mark, np.float64) / findings_data.SIZE
    region = np.asarray(row.region, np.float64)
    overhang = np.concatenate([mark[:2] - region[:2], region[2:] - mark[2:]])
    return {
        "precision": precision, "recall": recall,
        "flagged": float(bool(row.flagged) and row.reason.startswith("stripes: ")),
        "flip_rate": float(row.flip_rate), "control_flip_rate": float(row.control_flip_rate),
        "occluded_examples": float(row.occluded_examples),
        "region_overhang": float(overhang.min()),
        "flagged_clusters": float(clusters.flagged.sum()),
        "flagged_members": float(row["count"]) if row.flagged else 0.0,  # >= 8 for the report
    }


def same_tables(first, second):
    """1 when two runs wrote equal assignments, clusters and embedding tables, else 0."""
    for table in ("assignments", "clusters", "embedding"):
        keys = ["example_id"] if table != "clusters" else ["class", "cluster"]
        one, two = (pd.read_parquet(f"{output}/{table}").sort_values(keys).reset_index(drop=True)
                    for output in (first, second))
        try:
            pd.testing.assert_frame_equal(one, two)
        except AssertionError:
            return 0.0
    return 1.0


def clean_model(output):
    """A clean model's run: ``clusters`` (count), ``flagged_clusters``, and the clusters'
    ``most_flip_rate`` (informative: the flag rule needs 0.5 and 3x the control's)."""
    clusters = pd.read_parquet(f"{output}/clusters")
    flips = clusters.flip_rate.dropna()
    return {"clusters": float(len(clusters)), "flagged_clusters": float(clusters.flagged.sum()),
            "most_flip_rate": float(flips.max()) if len(flips) else math.nan}


# The thresholds each test asserts (see the test module for why each is safe).
PLANTED_BOUNDS = (
    Bound("precision", ">=", 0.9),
    Bound("recall", ">=", 0.9),
    Bound("flagged", ">=", 1),
    Bound("flip_rate", ">=", 0.8),
    Bound("control_flip_rate", "<=", 0.2),
    Bound("occluded_examples", ">=", 5),
    Bound("region_overhang", ">=", 0),
    Bound("flagged_clusters", "<=", 1),
)
AGREEMENT_BOUNDS = (Bound("assignment_agreement", ">=", 0.95),)
CLEAN_BOUNDS = (Bound("clusters", ">=", 2), Bound("flagged_clusters", "<=", 0))
