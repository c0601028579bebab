"""The output contract: one module per Parquet table, each holding its columns, Arrow types,
descriptions, encoding and decoding (numpy + pyarrow only, no Beam or TensorFlow).

Each table has its own folder under the output directory, so ``pd.read_parquet(folder)``
reads exactly one schema. ``pipeline.tables.catalog`` lists every table's schema and column
descriptions (``docs/SCHEMA.md`` is generated from it).

Storage rules every table keeps, so that pandas, DuckDB, Polars, Spark and BigQuery read it:
no FLOAT16 and no unsigned integers, BYTE_STREAM_SPLIT only on float32/float64 columns, null
(never NaN) for an undefined number, no SQL reserved word as a column name, and one name and
type per concept (the explained class is ``target``, int64, in every table).
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

# Raised whenever a column is renamed, removed or changes type or meaning; stored in every
# file's Parquet metadata (SCHEMA_VERSION_KEY) and in manifest.json.
SCHEMA_VERSION = 2
SCHEMA_VERSION_KEY = b"schema_version"


def with_nullable_ints(schema, columns, booleans=()):
    """``schema`` with ``SCHEMA_VERSION`` in its metadata, plus pandas metadata under which
    ``pd.read_parquet`` and the loaders give the int64 ``columns`` as nullable ``Int64`` (not
    float64 once a value is missing) and the bool ``booleans`` as nullable ``boolean`` (not
    object)."""
    frame = schema.empty_table().to_pandas()
    for name in columns:
        frame[name] = frame[name].astype("Int64")
    for name in booleans:
        frame[name] = frame[name].astype("boolean")
    pandas_metadata = pa.Schema.from_pandas(frame, preserve_index=False).metadata[b"pandas"]
    return schema.with_metadata({**(schema.metadata or {}), b"pandas": pandas_metadata,
                                 SCHEMA_VERSION_KEY: str(SCHEMA_VERSION).encode()})


def schema_version(schema):
    """The ``SCHEMA_VERSION`` a file's schema was written with (1: before it was stored)."""
    return int((schema.metadata or {}).get(SCHEMA_VERSION_KEY, b"1"))
