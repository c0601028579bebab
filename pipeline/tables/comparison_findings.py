"""``comparison_findings/``: one row per finding of either run of a comparison.

A finding is a run's flagged clusters of one class whose regions overlap
(``pipeline.report.findings.finding_groups``). ``status``: ``persisting`` (covering the
baseline finding's region on its members still changes the current model's predictions, by the
findings stage's flag rule), ``resolved`` (it no longer does, and no current finding holds the
same members elsewhere), ``moved`` (it no longer does, and a current finding holds most of its
members at another region), ``new`` (a current finding that is no baseline finding's
counterpart). ``proven`` is false when the re-occlusion could not run (no model or images);
the status then rests on matching clusters only.

The proof: ``baseline_flip_rate``/``baseline_control_flip_rate`` are the baseline run's own
occlusion figures; ``current_flip_rate``/``current_control_flip_rate`` come from occluding the
baseline finding's region (and its control region) on ``occluded_examples`` of its members
with the current model, or, for a ``new`` finding, from the current run's own occlusion.

Regions are normalised ``[ymin, xmin, ymax, xmax]``, stored as variable-length lists (null
for the side a finding is not in: pyarrow cannot read back a null fixed-size list from
Parquet).
"""

import pyarrow as pa

from pipeline.tables import with_nullable_ints
from pipeline.tables.clusters import CONTROL_FLIP_RATE, CONTROL_REGION, FLIP_RATE, REGION
from pipeline.tables.comparison_examples import SIDES, side_column
from pipeline.tables.stats import CLASS, CLASS_NAME

STATUS = "status"
STATUS_NEW = "new"
STATUS_PERSISTING = "persisting"
STATUS_RESOLVED = "resolved"
STATUS_MOVED = "moved"
STATUSES = (STATUS_NEW, STATUS_PERSISTING, STATUS_RESOLVED, STATUS_MOVED)
PROVEN = "proven"
FINDING_CLUSTERS = "clusters"  # per side: '<side>_clusters', the finding's clusters in that run
MEMBERS = "members"  # per side: examples assigned to those clusters
MEMBER_OVERLAP = "member_overlap"
REGION_IOU = "region_iou"
OCCLUDED = "occluded_examples"
SENTENCE = "sentence"


def _side_fields(side):
    return [pa.field(side_column(side, FINDING_CLUSTERS), pa.list_(pa.int64())),
            pa.field(side_column(side, MEMBERS), pa.int64()),
            pa.field(side_column(side, REGION), pa.list_(pa.float64())),
            pa.field(side_column(side, FLIP_RATE), pa.float64()),
            pa.field(side_column(side, CONTROL_FLIP_RATE), pa.float64())]


COMPARISON_FINDINGS_SCHEMA = with_nullable_ints(pa.schema([
    pa.field(CLASS, pa.int64(), nullable=False), pa.field(CLASS_NAME, pa.string()),
    pa.field(STATUS, pa.string(), nullable=False), pa.field(PROVEN, pa.bool_(), nullable=False),
    *[field for side in SIDES for field in _side_fields(side)],
    pa.field(CONTROL_REGION, pa.list_(pa.float64())),
    pa.field(OCCLUDED, pa.int64()),
    pa.field(MEMBER_OVERLAP, pa.float64()), pa.field(REGION_IOU, pa.float64()),
    pa.field(SENTENCE, pa.string(), nullable=False),
]), [side_column(side, MEMBERS) for side in SIDES] + [OCCLUDED])

COMPARISON_FINDINGS_DESCRIPTION = (
    "One row per finding of either run of a comparison, with its status and the proof.")
COMPARISON_FINDINGS_COLUMNS = {
    CLASS: ("class index", "the explained class"),
    CLASS_NAME: ("", "its name; null without class names"),
    STATUS: ("", "'new', 'persisting', 'resolved' or 'moved'"),
    PROVEN: ("", "false when the re-occlusion could not run"),
    **{column: (unit, f"the {side} run's {meaning}; null when the finding is not in it")
       for side in SIDES for column, unit, meaning in (
           (side_column(side, FINDING_CLUSTERS), "", "clusters of the finding"),
           (side_column(side, MEMBERS), "examples", "examples assigned to them"),
           (side_column(side, REGION), "0-1 of the map", "region [ymin, xmin, ymax, xmax]"),
           (side_column(side, FLIP_RATE), "share 0-1", "flip rate"),
           (side_column(side, CONTROL_FLIP_RATE), "share 0-1", "control flip rate"))},
    CONTROL_REGION: ("0-1 of the map", "the control region occluded"),
    OCCLUDED: ("examples", "members occluded with the current model"),
    MEMBER_OVERLAP: ("share 0-1", "share of the baseline finding's members in the current one"),
    REGION_IOU: ("0-1", "intersection over union of the two regions"),
    SENTENCE: ("", "one sentence stating the status"),
}
