"""``saliency/``: one row per explained example: ids, labels, predictions, the map, statistics.

Maps are stored channel-reduced, flat (``fixed_size_list`` of h*w) and raw (no per-row
scaling), so SQL sums and maxima are the gradients' own values. ``output.map_dtype``:

- ``float16`` (default): float32 values with the mantissa rounded to float16's 10 bits
  (``gbp_ops.maps.round_mantissa``): float16's precision (relative error <= 2**-11) and
  float32's range, about float16's size with byte-stream-split + zstd, and readable as float32
  by every engine.
- ``float32``: the maps as computed.
- ``uint8``: int16 codes 0-255 per row with the row's ``saliency_scale`` (map = code / 255 *
  scale); the smallest files, but SQL must apply the scale itself.

``decode_maps`` gives float32 maps either way; ``scaled=True`` divides each by its max |value|.
"""

import json

import numpy as np
import pyarrow as pa

from gbp_ops import maps as map_ops
from gbp_ops.statistics import AGGREGATED_STATISTICS
from pipeline.tables import with_nullable_ints

EXAMPLE_ID = "example_id"
POSITION = "position"
LABEL = "label"
LABEL_NAME = "label_name"
PREDICTED = "predicted"
PREDICTED_NAME = "predicted_name"
TARGET = "target"  # the explained class: this name, int64, in every table
TARGET_SCORE = "target_score"
TARGET_PROB = "target_prob"
CORRECT = "correct"
SALIENCY_MAP = "saliency"
SALIENCY_SCALE = "saliency_scale"
BOX_AREA = "box_area"  # share of the map's pixels inside the example's box

METADATA_KEY = b"gbp_audit"
MAP_ARROW_TYPES = {"float16": pa.float32(), "float32": pa.float32(), "uint8": pa.int16()}
SCALED_MAP_DTYPES = ("uint8",)

SALIENCY_DESCRIPTION = (
    "One row per explained example: ids, labels, prediction, the map, statistics.")
STATISTIC_COLUMNS = {
    "total_mass": ("gradient units", "sum of |map| (float64 sum)"),
    "top1_share": ("share 0-1", "share of the map's mass in its top 1% of pixels"),
    "top5_share": ("share 0-1", "share of the map's mass in its top 5% of pixels"),
    "entropy": ("0-1", "entropy of the mass over the pixels / log(h*w); null for an all-zero "
                       "map"),
    "border_share": ("share 0-1", "share of mass in the border band "
                                  "(output.border_band_fraction of the shorter side)"),
    "center_y": ("0-1 of the height", "mass-weighted row of the map's centre; null for an "
                                      "all-zero map"),
    "center_x": ("0-1 of the width", "mass-weighted column of the map's centre; null for an "
                                     "all-zero map"),
    "box_share": ("share 0-1", "share of mass inside the example's box; null without a box"),
}
SALIENCY_COLUMNS = {
    EXAMPLE_ID: ("", "the input's id (source.id_key, else its file and record position)"),
    POSITION: ("", "file and record position in the source"),
    LABEL: ("class index", "the labelled class; null without a label"),
    LABEL_NAME: ("", "the labelled class's name; null without class names"),
    PREDICTED: ("class index", "the model's top class"),
    PREDICTED_NAME: ("", "the top class's name; null without class names"),
    TARGET: ("class index", "the explained class (explain.target)"),
    TARGET_SCORE: ("model output", "the explained class's logit (or output) for the input"),
    TARGET_PROB: ("probability 0-1", "softmax probability of the explained class"),
    CORRECT: ("", "predicted == label; null without a label"),
    SALIENCY_MAP: ("gradient units", "the channel-reduced map, row-major h*w (manifest "
                                     "map_shape); uint8 runs: codes 0-255, see saliency_scale"),
    SALIENCY_SCALE: ("gradient units", "uint8 runs only: max |map| of the row; map = code / "
                                       "255 * saliency_scale"),
    **STATISTIC_COLUMNS,
    BOX_AREA: ("share 0-1", "share of the map's pixels inside the example's box; null "
                            "without a box"),
}


def arrow_schema(map_shape, map_dtype, metadata):
    """The table's Arrow schema; ``metadata`` (a dict) is stored as JSON under METADATA_KEY.

    Args:
        map_shape: ``(h, w)`` of the stored maps.
        map_dtype: ``'float16'``, ``'float32'`` or ``'uint8'`` (``output.map_dtype``).
    """
    height, width = map_shape
    fields = [
        pa.field(EXAMPLE_ID, pa.string(), nullable=False),
        pa.field(POSITION, pa.string()),
        pa.field(LABEL, pa.int64()),
        pa.field(LABEL_NAME, pa.string()),
        pa.field(PREDICTED, pa.int64(), nullable=False),
        pa.field(PREDICTED_NAME, pa.string()),
        pa.field(TARGET, pa.int64(), nullable=False),
        pa.field(TARGET_SCORE, pa.float32()),
        pa.field(TARGET_PROB, pa.float32()),
        pa.field(CORRECT, pa.bool_()),
        pa.field(SALIENCY_MAP, pa.list_(MAP_ARROW_TYPES[map_dtype], height * width)),
    ]
    if map_dtype in SCALED_MAP_DTYPES:
        fields.append(pa.field(SALIENCY_SCALE, pa.float32()))
    fields += [pa.field(name, pa.float64()) for name in AGGREGATED_STATISTICS]
    fields.append(pa.field(BOX_AREA, pa.float64()))
    schema = pa.schema(fields, metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True)})
    return with_nullable_ints(schema, (LABEL,), booleans=(CORRECT,))


def plain_columns(map_dtype):
    """Columns the Parquet sink writes without dictionary encoding or statistics: the float
    map column (near-unique values); uint8 codes compress better with the dictionary left on."""
    return (SALIENCY_MAP,) if map_dtype not in SCALED_MAP_DTYPES else ()


def encode(batch, schema, map_dtype):
    """An audit batch -> ``pa.Table`` with ``schema``; maps built from one flat buffer.

    Args:
        batch: a ``pipeline.records.AuditBatch``: ``columns`` (name -> ``(N,)`` arrays),
            ``maps`` float32 ``(N, h, w)``, ``statistics`` float64 ``(N, S)`` in
            ``AGGREGATED_STATISTICS`` order.
        schema: from ``arrow_schema``.
        map_dtype: the stored map dtype.
    """
    count, height, width = batch.maps.shape
    arrays = {name: pa.array(values.tolist() if values.dtype == object else values,
                             type=schema.field(name).type, from_pandas=True)
              for name, values in batch.columns.items()}
    if map_dtype == "uint8":
        codes, scales = map_ops.quantize_uint8(batch.maps)
        flat, arrays[SALIENCY_SCALE] = codes.astype(np.int16).reshape(-1), pa.array(scales)
    elif map_dtype == "float16":
        flat = map_ops.round_mantissa(batch.maps).reshape(-1)
    else:
        flat = np.asarray(batch.maps, np.float32).reshape(-1)
    arrays[SALIENCY_MAP] = pa.FixedSizeListArray.from_arrays(pa.array(flat), height * width)
    for index, name in enumerate(AGGREGATED_STATISTICS):
        arrays[name] = pa.array(batch.statistics[:, index], type=pa.float64(), from_pandas=True)
    return pa.Table.from_arrays([arrays[field.name] for field in schema], schema=schema)


def read_metadata(schema):
    """The gbp_audit metadata dict stored in a saliency schema (``{}`` if absent)."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def decode_maps(frame, metadata, scaled=False):
    """The ``saliency`` column of a DataFrame as a list of float32 ``(h, w)`` maps.

    Args:
        frame: rows of the table (with ``saliency_scale`` for uint8 runs).
        metadata: ``read_metadata`` of the table (``map_shape``).
        scaled: divide each map by its own max |value| (all-zero maps stay 0).
    """
    height, width = metadata["map_shape"]
    flat = frame[SALIENCY_MAP]
    if not len(flat):
        return flat
    stacked = np.stack(flat.to_numpy()).reshape(-1, height, width)
    if SALIENCY_SCALE in frame:  # uint8 codes; schema version 1 float16 maps too
        scales = frame[SALIENCY_SCALE].to_numpy(np.float32)
        if stacked.dtype.kind in "iu":
            stacked = map_ops.dequantize_uint8(stacked, scales)
        else:
            stacked = map_ops.unscale(stacked, scales)
    stacked = stacked.astype(np.float32, copy=False)
    if scaled:
        stacked = map_ops.scale_to_unit(stacked)[0]
    return list(stacked)
