"""``clusters/``: one row per (explained class, strategy cluster) of ``pipeline.findings``.

``count``, ``share`` and ``accuracy`` cover every example of the class (the streaming
assignment); ``mean_map`` (the mean of the cluster's max-normalised small maps in the sample,
flat ``map_size**2``), ``region`` and ``control_region`` (normalised ``[ymin, xmin, ymax,
xmax]``) and the occlusion figures come from the class's sample.
"""

import numpy as np
import pyarrow as pa

from pipeline.tables import with_nullable_ints
from pipeline.tables.stats import CLASS, CLASS_NAME, COUNT, MEAN_MAP

CLUSTER = "cluster"
SHARE = "share"
ACCURACY = "accuracy"
REGION = "region"
CONTROL_REGION = "control_region"
FLIP_RATE = "flip_rate"
CONTROL_FLIP_RATE = "control_flip_rate"
OCCLUDED_EXAMPLES = "occluded_examples"
FLAGGED = "flagged"
REASON = "reason"

CLUSTERS_DESCRIPTION = ("One row per (explained class, strategy cluster) of the findings stage, "
                        "with its occlusion test and whether it is flagged.")
CLUSTERS_COLUMNS = {
    CLASS: ("class index", "the explained class"),
    CLASS_NAME: ("", "the explained class's name; null without class names"),
    CLUSTER: ("", "the cluster's index within its class, 0-based"),
    COUNT: ("examples", "examples of the class assigned to the cluster (every example, not "
                        "only the sample)"),
    SHARE: ("share 0-1", "example_count / examples of the class"),
    ACCURACY: ("share 0-1", "share of the cluster's labelled examples predicted correctly; "
                            "null without labels"),
    MEAN_MAP: ("0-1", "mean of the cluster's sampled small maps, each divided by its max; "
                      "row-major findings.map_size**2"),
    REGION: ("0-1 of the map", "the hot region [ymin, xmin, ymax, xmax]"),
    CONTROL_REGION: ("0-1 of the map", "the same-sized region where the mean map is lowest "
                                       "[ymin, xmin, ymax, xmax]"),
    FLIP_RATE: ("share 0-1", "share of occluded members whose prediction changes when the "
                             "region is covered; null when none could be occluded"),
    CONTROL_FLIP_RATE: ("share 0-1", "the same for the control region; null when none could "
                                     "be occluded"),
    OCCLUDED_EXAMPLES: ("examples", "members tested by occlusion"),
    FLAGGED: ("", "the cluster relies on a small region that, covered, changes its "
                  "predictions (findings rules)"),
    REASON: ("", "one sentence describing the cluster and its occlusion test"),
}


def arrow_schema(map_size):
    """The table's Arrow schema for small maps of ``map_size x map_size``."""
    return with_nullable_ints(pa.schema([
        pa.field(CLASS, pa.int64(), nullable=False),
        pa.field(CLASS_NAME, pa.string()),
        pa.field(CLUSTER, pa.int64(), nullable=False),
        pa.field(COUNT, pa.int64(), nullable=False),
        pa.field(SHARE, pa.float64()),
        pa.field(ACCURACY, pa.float64()),
        pa.field(MEAN_MAP, pa.list_(pa.float32(), map_size * map_size)),
        pa.field(REGION, pa.list_(pa.float64(), 4)),
        pa.field(CONTROL_REGION, pa.list_(pa.float64(), 4)),
        pa.field(FLIP_RATE, pa.float64()),
        pa.field(CONTROL_FLIP_RATE, pa.float64()),
        pa.field(OCCLUDED_EXAMPLES, pa.int64(), nullable=False),
        pa.field(FLAGGED, pa.bool_(), nullable=False),
        pa.field(REASON, pa.string()),
    ]), ())


def _nullable(value):
    return None if value is None or np.isnan(value) else float(value)


def encode_row(class_index, class_name, cluster, count, share, accuracy, found, flagged,
               reason):
    """One cluster -> a row dict.

    Args:
        count, share, accuracy: over every assigned example of the cluster (``accuracy``
            None without labels).
        found: the cluster's dict from ``pipeline.findings.analysis.ClassFindings.clusters``.
    """
    return {
        CLASS: int(class_index), CLASS_NAME: class_name, CLUSTER: int(cluster),
        COUNT: int(count), SHARE: _nullable(share), ACCURACY: _nullable(accuracy),
        MEAN_MAP: np.asarray(found["mean_map"], np.float32).reshape(-1).tolist(),
        REGION: [float(v) for v in found["region"]],
        CONTROL_REGION: [float(v) for v in found["control_region"]],
        FLIP_RATE: _nullable(found["flip_rate"]),
        CONTROL_FLIP_RATE: _nullable(found["control_flip_rate"]),
        OCCLUDED_EXAMPLES: int(found["occluded_examples"]), FLAGGED: bool(flagged),
        REASON: reason,
    }


def decode_mean_maps(frame):
    """The ``mean_map`` column as float32 ``(m, m)`` arrays."""
    return [np.asarray(m, np.float32).reshape(int(round(len(m) ** 0.5)), -1)
            for m in frame[MEAN_MAP]]
