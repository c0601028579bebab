"""The output contract: one module per Parquet table, each holding its columns, Arrow types,
encoding and decoding (numpy + pyarrow only, no Beam or TensorFlow).

Each table has its own folder under the output directory, so ``pd.read_parquet(folder)``
reads exactly one schema.
"""

import pyarrow as pa

SALIENCY = "saliency"
STATS = "stats"
ERRORS = "errors"
SANITY = "sanity"
EXAMPLES = "examples"
CLUSTERS = "clusters"
ASSIGNMENTS = "assignments"
EMBEDDING = "embedding"
COMPARISON_EXAMPLES = "comparison_examples"
COMPARISON_CLASSES = "comparison_classes"
COMPARISON_FINDINGS = "comparison_findings"
# Written by a comparison (pipeline.compare), after the run's own tables.
COMPARISON_TABLES = (COMPARISON_EXAMPLES, COMPARISON_CLASSES, COMPARISON_FINDINGS)
TABLES = (SALIENCY, STATS, ERRORS, SANITY, EXAMPLES, CLUSTERS, ASSIGNMENTS, EMBEDDING,
          *COMPARISON_TABLES)


def with_nullable_ints(schema, columns):
    """``schema`` plus pandas metadata under which ``pd.read_parquet`` and the loaders give the
    int64 ``columns`` as nullable ``Int64``, not float64 once a value is missing."""
    frame = schema.empty_table().to_pandas()
    for name in columns:
        frame[name] = frame[name].astype("Int64")
    pandas_metadata = pa.Schema.from_pandas(frame, preserve_index=False).metadata[b"pandas"]
    return schema.with_metadata({**(schema.metadata or {}), b"pandas": pandas_metadata})
