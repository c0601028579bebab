"""The output contract: one module per Parquet table, each holding its columns, Arrow types,
encoding and decoding (numpy + pyarrow only, no Beam or TensorFlow).

Each table has its own folder under the output directory, so ``pd.read_parquet(folder)``
reads exactly one schema.
"""

SALIENCY = "saliency"
STATS = "stats"
ERRORS = "errors"
SANITY = "sanity"
EXAMPLES = "examples"
TABLES = (SALIENCY, STATS, ERRORS, SANITY, EXAMPLES)
