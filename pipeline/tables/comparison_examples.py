"""``comparison_examples/``: one row per example id of either run of a comparison
(``pipeline.compare``): its presence, both runs' target, prediction, correctness, cluster and
per-example statistics (``baseline_<column>``, ``current_<column>``), and for a shared id the
flip, the similarity of its two maps (Spearman and top-5% pixel overlap of ``|map|``) and the
change of each statistic (``<statistic>_change``, current minus baseline)."""

import numpy as np
import pyarrow as pa

from gbp_ops.statistics import AGGREGATED_STATISTICS
from pipeline.tables import with_nullable_ints
from pipeline.tables.clusters import CLUSTER
from pipeline.tables.saliency import CORRECT, EXAMPLE_ID, LABEL, PREDICTED, TARGET
from pipeline.tables.sanity import SPEARMAN

BASELINE = "baseline"
CURRENT = "current"
SIDES = (BASELINE, CURRENT)
PRESENCE = "presence"
SHARED = "shared"
BASELINE_ONLY = "baseline_only"
CURRENT_ONLY = "current_only"
PRESENCES = (SHARED, BASELINE_ONLY, CURRENT_ONLY)
FLIPPED = "flipped"
TOP5_OVERLAP = "top5_overlap"
# Columns kept from each run's saliency (and assignments) table, per side.
SIDE_COLUMNS = (TARGET, PREDICTED, CORRECT, CLUSTER, *AGGREGATED_STATISTICS)
_INT_COLUMNS = (TARGET, PREDICTED, CLUSTER)


def side_column(side, column):
    """``'baseline_predicted'``: a run's value of one of its tables' columns."""
    return f"{side}_{column}"


def change_column(statistic):
    """``'<statistic>_change'``: current minus baseline."""
    return f"{statistic}_change"


def _side_type(column):
    if column in _INT_COLUMNS:
        return pa.int64()
    return pa.bool_() if column == CORRECT else pa.float64()


def _schema():
    fields = [pa.field(EXAMPLE_ID, pa.string(), nullable=False),
              pa.field(PRESENCE, pa.string(), nullable=False),
              pa.field(LABEL, pa.int64())]
    fields += [pa.field(side_column(side, column), _side_type(column))
               for side in SIDES for column in SIDE_COLUMNS]
    fields += [pa.field(FLIPPED, pa.bool_()), pa.field(SPEARMAN, pa.float64()),
               pa.field(TOP5_OVERLAP, pa.float64())]
    fields += [pa.field(change_column(name), pa.float64()) for name in AGGREGATED_STATISTICS]
    nullable = [LABEL] + [side_column(side, column) for side in SIDES for column in _INT_COLUMNS]
    booleans = [side_column(side, CORRECT) for side in SIDES] + [FLIPPED]
    return with_nullable_ints(pa.schema(fields), nullable, booleans=booleans)


COMPARISON_EXAMPLES_SCHEMA = _schema()

COMPARISON_EXAMPLES_DESCRIPTION = (
    "One row per example id of either run of a comparison: both runs' target, prediction, "
    "correctness, cluster and statistics, and for a shared id the flip, the maps' similarity "
    "and each statistic's change.")
_SIDE_MEANINGS = {TARGET: ("class index", "the explained class"),
                  PREDICTED: ("class index", "the model's top class"),
                  CORRECT: ("", "predicted == label; null without a label"),
                  CLUSTER: ("", "its strategy cluster; null without findings")}
COMPARISON_EXAMPLES_COLUMNS = {
    EXAMPLE_ID: ("", "the example"),
    PRESENCE: ("", "'shared', 'baseline_only' or 'current_only'"),
    LABEL: ("class index", "the labelled class; null without a label"),
    **{side_column(side, column): (_SIDE_MEANINGS.get(column, ("", ""))[0],
                                   f"the {side} run's " + _SIDE_MEANINGS.get(
                                       column, ("", f"{column} (saliency table)"))[1]
                                   + "; null when the example is not in that run")
       for side in SIDES for column in SIDE_COLUMNS},
    FLIPPED: ("", "shared ids: the predicted class differs between the runs"),
    SPEARMAN: ("-1 to 1", "shared ids: Spearman correlation of the two runs' |map|"),
    TOP5_OVERLAP: ("share 0-1", "shared ids: overlap of the two maps' top 5% pixels"),
    **{change_column(name): ("the statistic's unit", f"shared ids: current minus baseline "
                                                     f"{name}")
       for name in AGGREGATED_STATISTICS},
}


def encode(columns):
    """``{column: (N,) array or list}`` -> a ``pa.Table`` of this schema; a missing column is
    all null; float NaN becomes null."""
    count = len(columns[EXAMPLE_ID])
    arrays = []
    for field in COMPARISON_EXAMPLES_SCHEMA:
        values = columns.get(field.name)
        if values is None:
            arrays.append(pa.nulls(count, field.type))
            continue
        if isinstance(values, np.ndarray) and values.dtype != object:
            values = values.tolist() if field.type == pa.string() else values
        arrays.append(pa.array(values, type=field.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=COMPARISON_EXAMPLES_SCHEMA)
