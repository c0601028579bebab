"""``stats/``: aggregates per explained class, per (class, correct) and overall.

Each statistic of ``gbp_ops.statistics.AGGREGATED_STATISTICS`` has ``<name>_mean`` and
``<name>_std`` (ddof=1, as pandas); those in ``HISTOGRAM_STATISTICS`` also ``<name>_hist``,
counts over ``HISTOGRAM_BINS`` equal bins of [0, 1]. ``mean_map`` is the mean of the
max-normalised maps.
"""

import numpy as np
import pyarrow as pa

from gbp_ops import aggregates
from gbp_ops.statistics import AGGREGATED_STATISTICS, HISTOGRAM_BINS, HISTOGRAM_STATISTICS
from pipeline.records import class_name
from pipeline.tables import with_nullable_ints
from pipeline.tables.saliency import CORRECT

GROUP = "group"
CLASS = "class"
CLASS_NAME = "class_name"
COUNT = "count"
MEAN_MAP = "mean_map"
GROUP_OVERALL = "overall"
GROUP_CLASS = "class"
GROUP_CLASS_CORRECT = "class_correct"


def arrow_schema(map_shape):
    """The table's Arrow schema for maps of ``(h, w)``."""
    height, width = map_shape
    fields = [
        pa.field(GROUP, pa.string(), nullable=False),
        pa.field(CLASS, pa.int64()),
        pa.field(CLASS_NAME, pa.string()),
        pa.field(CORRECT, pa.bool_()),
        pa.field(COUNT, pa.int64(), nullable=False),
    ]
    for name in AGGREGATED_STATISTICS:
        fields += [pa.field(f"{name}_mean", pa.float64()), pa.field(f"{name}_std", pa.float64())]
        if name in HISTOGRAM_STATISTICS:
            fields.append(pa.field(f"{name}_hist", pa.list_(pa.int64(), HISTOGRAM_BINS)))
    fields.append(pa.field(MEAN_MAP, pa.list_(pa.float32(), height * width)))
    return with_nullable_ints(pa.schema(fields), (CLASS,))


def encode_row(key, accumulator, class_names):
    """``((group, class, correct), gbp_ops.aggregates.StatsAccumulator)`` -> a row dict."""
    group, target, correct = key
    result = aggregates.extract(accumulator)
    row = {
        GROUP: group,
        CLASS: target,
        CLASS_NAME: class_name(target, class_names),
        CORRECT: correct,
        COUNT: result["count"],
        MEAN_MAP: result["mean_map"].reshape(-1).tolist(),
    }
    for index, name in enumerate(AGGREGATED_STATISTICS):
        row[f"{name}_mean"] = _nullable(result["mean"][index])
        row[f"{name}_std"] = _nullable(result["std"][index])
        if name in HISTOGRAM_STATISTICS:
            row[f"{name}_hist"] = result["histograms"][index].tolist()
    return row


def _nullable(value):
    return None if np.isnan(value) else float(value)


def decode_mean_maps(frame, map_shape):
    """The ``mean_map`` column as float32 ``(h, w)`` arrays."""
    height, width = map_shape
    return [np.asarray(m, np.float32).reshape(height, width) for m in frame[MEAN_MAP]]
