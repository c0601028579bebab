"""``assignments/``: the strategy cluster of every explained example (per target class), which
``pipeline.load_saliency`` joins as its ``cluster`` column."""

import numpy as np
import pyarrow as pa

from pipeline.tables import with_nullable_ints
from pipeline.tables.clusters import CLUSTER
from pipeline.tables.saliency import EXAMPLE_ID, TARGET

ASSIGNMENTS_SCHEMA = with_nullable_ints(pa.schema([
    pa.field(EXAMPLE_ID, pa.string(), nullable=False),
    pa.field(TARGET, pa.int64(), nullable=False),
    pa.field(CLUSTER, pa.int64()),
]), (CLUSTER,))

ASSIGNMENTS_DESCRIPTION = ("The strategy cluster of every explained example, within its explained "
                           "class.")
ASSIGNMENTS_COLUMNS = {
    EXAMPLE_ID: ("", "the example (saliency.example_id)"),
    TARGET: ("class index", "the explained class"),
    CLUSTER: ("", "its cluster within the class (clusters.cluster); null when the class was "
                  "not clustered"),
}


def encode(example_ids, targets, clusters):
    """``(N,)`` ids, int targets and int clusters (-1: not clustered, stored as null) -> a
    ``pa.Table`` of this schema."""
    clusters = np.asarray(clusters, np.int64)
    return pa.table({EXAMPLE_ID: pa.array([str(i) for i in example_ids], pa.string()),
                     TARGET: pa.array(np.asarray(targets, np.int64)),
                     CLUSTER: pa.array(clusters, mask=clusters < 0)},
                    schema=ASSIGNMENTS_SCHEMA)
