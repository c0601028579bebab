"""``embedding/``: a 2-D view of each class's clustered sample (the first two non-trivial
eigenvectors of its normalised Laplacian), for a scatter plot coloured by cluster."""

import pyarrow as pa

from pipeline.tables import with_nullable_ints
from pipeline.tables.clusters import CLUSTER
from pipeline.tables.saliency import EXAMPLE_ID
from pipeline.tables.stats import CLASS

EMBEDDING_X = "x"
EMBEDDING_Y = "y"

EMBEDDING_SCHEMA = with_nullable_ints(pa.schema([
    pa.field(EXAMPLE_ID, pa.string(), nullable=False),
    pa.field(CLASS, pa.int64(), nullable=False),
    pa.field(CLUSTER, pa.int64(), nullable=False),
    pa.field(EMBEDDING_X, pa.float64()),
    pa.field(EMBEDDING_Y, pa.float64()),
]), ())

EMBEDDING_DESCRIPTION = ("A 2-D view of each class's clustered sample (first two non-trivial "
                         "eigenvectors of its normalised graph Laplacian).")
EMBEDDING_COLUMNS = {
    EXAMPLE_ID: ("", "the sampled example"),
    CLASS: ("class index", "the explained class"),
    CLUSTER: ("", "its cluster within the class (clusters.cluster)"),
    EMBEDDING_X: ("", "first embedding coordinate"),
    EMBEDDING_Y: ("", "second embedding coordinate"),
}


def encode_rows(found):
    """``pipeline.findings.analysis.ClassFindings`` -> row dicts, one per sampled example."""
    points = found.clustering.embedding
    return [{EXAMPLE_ID: str(example_id), CLASS: int(found.class_index), CLUSTER: int(cluster),
             EMBEDDING_X: float(x), EMBEDDING_Y: float(y)}
            for example_id, cluster, (x, y) in zip(found.sample_ids, found.clustering.labels,
                                                   points)]
