"""``saliency/``: one row per explained example: ids, labels, predictions, the map, statistics.

Maps are stored channel-reduced and flat (``fixed_size_list`` of h*w). float16 and uint8 maps
are stored per row as ``map / max|map|`` (uint8: times 255) with the row's ``saliency_scale``,
because raw gradients are often below float16's smallest normal number, where it keeps only a
few bits. ``decode_maps`` undoes that.
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
TARGET = "target"
TARGET_SCORE = "target_score"
TARGET_PROB = "target_prob"
CORRECT = "correct"
SALIENCY_MAP = "saliency"
SALIENCY_SCALE = "saliency_scale"
BOX_AREA = "box_area"  # share of the map's pixels inside the example's box

METADATA_KEY = b"gbp_audit"
MAP_ARROW_TYPES = {"float16": pa.float16(), "float32": pa.float32(), "uint8": pa.uint8()}
SCALED_MAP_DTYPES = ("float16", "uint8")


def arrow_schema(map_shape, map_dtype, metadata):
    """The table's Arrow schema; ``metadata`` (a dict) is stored as JSON under METADATA_KEY.

    Args:
        map_shape: ``(h, w)`` of the stored maps.
        map_dtype: ``'float16'``, ``'float32'`` or ``'uint8'``.
    """
    height, width = map_shape
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
        pa.field(SALIENCY_MAP, pa.list_(MAP_ARROW_TYPES[map_dtype], height * width)),
    ]
    if map_dtype in SCALED_MAP_DTYPES:
        fields.append(pa.field(SALIENCY_SCALE, pa.float32()))
    fields += [pa.field(name, pa.float64()) for name in AGGREGATED_STATISTICS]
    fields.append(pa.field(BOX_AREA, pa.float64()))
    schema = pa.schema(fields, metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True)})
    return with_nullable_ints(schema, (LABEL,))


def plain_columns(map_dtype):
    """Columns the Parquet sink writes without dictionary encoding or statistics: the float
    map column (near-unique values); uint8 codes compress better with the dictionary left on."""
    return (SALIENCY_MAP,) if map_dtype != "uint8" else ()


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
        flat, arrays[SALIENCY_SCALE] = codes.reshape(-1), pa.array(scales)
    elif map_dtype == "float16":
        unit_maps, scales = map_ops.scale_to_unit(batch.maps)
        flat = unit_maps.astype(np.float16).reshape(-1)
        arrays[SALIENCY_SCALE] = pa.array(scales)
    else:
        flat = batch.maps.reshape(-1)
    arrays[SALIENCY_MAP] = pa.FixedSizeListArray.from_arrays(pa.array(flat), height * width)
    for index, name in enumerate(AGGREGATED_STATISTICS):
        arrays[name] = pa.array(batch.statistics[:, index], type=pa.float64(), from_pandas=True)
    return pa.Table.from_arrays([arrays[field.name] for field in schema], schema=schema)


def read_metadata(schema):
    """The gbp_audit metadata dict stored in a saliency schema (``{}`` if absent)."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def decode_maps(frame, metadata):
    """The ``saliency`` column of a DataFrame as a list of float32 ``(h, w)`` maps, undoing the
    per-row scaling of float16 and uint8 maps (needs ``saliency_scale`` when stored)."""
    height, width = metadata["map_shape"]
    flat = frame[SALIENCY_MAP]
    if not len(flat):
        return flat
    stacked = np.stack(flat.to_numpy()).reshape(-1, height, width)
    if SALIENCY_SCALE in frame:
        scales = frame[SALIENCY_SCALE].to_numpy(np.float32)
        if stacked.dtype == np.uint8:
            stacked = map_ops.dequantize_uint8(stacked, scales)
        else:
            stacked = map_ops.unscale(stacked, scales)
    return list(stacked.astype(np.float32, copy=False))
