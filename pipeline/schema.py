"""The Parquet contract of the three tables (DESIGN.md section 5): names, types, metadata."""

import json

import pyarrow as pa

from gbp_ops import statistics

# saliency-*.parquet columns
EXAMPLE_ID = "example_id"
POSITION = "position"
LABEL = "label"
LABEL_NAME = "label_name"
PREDICTED = "predicted"
PREDICTED_NAME = "predicted_name"
TARGET = "target"
TARGET_SCORE = "target_score"
TARGET_PROB = "target_prob"
CORRECT = "correct"
SALIENCY = "saliency"
SALIENCY_SCALE = "saliency_scale"
STATISTIC_COLUMNS = statistics.STATISTIC_NAMES
BOX_SHARE = statistics.BOX_SHARE
BOX_AREA = "box_area"  # share of the map's pixels inside the example's box

# errors-*.parquet columns
STAGE = "stage"
ERROR = "error"

# stats-*.parquet columns
GROUP = "group"
CLASS = "class"
CLASS_NAME = "class_name"
COUNT = "count"
MEAN_MAP = "mean_map"
GROUP_OVERALL = "overall"
GROUP_CLASS = "class"
GROUP_CLASS_CORRECT = "class_correct"

METADATA_KEY = b"gbp_audit"
MANIFEST = "manifest.json"  # beside the table folders in every output directory
MAP_ARROW_TYPES = {"float16": pa.float16(), "float32": pa.float32(), "uint8": pa.uint8()}
# Map dtypes stored per row as map / max|map| (uint8: times 255) with a `saliency_scale` column.
SCALED_MAP_DTYPES = ("float16", "uint8")


def saliency_schema(map_height, map_width, map_dtype, metadata):
    """Arrow schema of ``saliency-*.parquet``; ``metadata`` (a dict) is stored as JSON."""
    fields = [
        pa.field(EXAMPLE_ID, pa.string(), nullable=False),
        pa.field(POSITION, pa.string()),
        pa.field(LABEL, pa.int64()),
        pa.field(LABEL_NAME, pa.string()),
        pa.field(PREDICTED, pa.int64()),
        pa.field(PREDICTED_NAME, pa.string()),
        pa.field(TARGET, pa.int64()),
        pa.field(TARGET_SCORE, pa.float32()),
        pa.field(TARGET_PROB, pa.float32()),
        pa.field(CORRECT, pa.bool_()),
        pa.field(SALIENCY, pa.list_(MAP_ARROW_TYPES[map_dtype], map_height * map_width)),
    ]
    if map_dtype in SCALED_MAP_DTYPES:
        fields.append(pa.field(SALIENCY_SCALE, pa.float32()))
    fields += [pa.field(name, pa.float64()) for name in STATISTIC_COLUMNS]
    fields += [pa.field(BOX_SHARE, pa.float64()), pa.field(BOX_AREA, pa.float64())]
    return pa.schema(fields, metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True)})


def stats_schema(map_height, map_width, statistic_names, histogram_names, histogram_bins):
    """Arrow schema of ``stats-*.parquet``: one row per group.

    Each statistic has ``<name>_mean`` and ``<name>_std``; those in ``histogram_names`` also
    have ``<name>_hist``, counts over ``histogram_bins`` equal bins of [0, 1].
    """
    fields = [
        pa.field(GROUP, pa.string(), nullable=False),
        pa.field(CLASS, pa.int64()),
        pa.field(CLASS_NAME, pa.string()),
        pa.field(CORRECT, pa.bool_()),
        pa.field(COUNT, pa.int64(), nullable=False),
    ]
    for name in statistic_names:
        fields += [pa.field(f"{name}_mean", pa.float64()), pa.field(f"{name}_std", pa.float64())]
        if name in histogram_names:
            fields.append(pa.field(f"{name}_hist", pa.list_(pa.int64(), histogram_bins)))
    fields.append(pa.field(MEAN_MAP, pa.list_(pa.float32(), map_height * map_width)))
    return pa.schema(fields)


SANITY_SCHEMA = pa.schema([
    pa.field("depth", pa.int64(), nullable=False),
    pa.field("randomized_layers", pa.string()),
    pa.field(EXAMPLE_ID, pa.string()),
    pa.field("spearman", pa.float64()),
    pa.field("ssim", pa.float64()),
])

ERRORS_SCHEMA = pa.schema([
    pa.field(EXAMPLE_ID, pa.string()),
    pa.field(POSITION, pa.string()),
    pa.field(STAGE, pa.string(), nullable=False),
    pa.field(ERROR, pa.string(), nullable=False),
])


def read_metadata(schema):
    """The gbp_audit metadata dict stored in a saliency schema (``{}`` if absent)."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}
