"""``stats/``: aggregates per explained class, per (class, correct) and overall.

``group_kind`` says which: ``'overall'`` (``target`` and ``correct`` null), ``'class'`` (per
``target``; ``correct`` null) or ``'class_correct'`` (per ``target`` and ``correct``).

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
from pipeline.tables.saliency import CORRECT, STATISTIC_COLUMNS, TARGET

GROUP = "group_kind"
CLASS = TARGET  # the explained class has one column name in every table
CLASS_NAME = "target_name"
COUNT = "example_count"
MEAN_MAP = "mean_map"
GROUP_OVERALL = "overall"
GROUP_CLASS = "class"
GROUP_CLASS_CORRECT = "class_correct"

STATS_DESCRIPTION = ("Aggregates of the per-example statistics and the mean map, per explained "
                     "class, per (class, correct) and overall.")
STATS_COLUMNS = {
    GROUP: ("", "'overall', 'class' or 'class_correct': which rows the aggregate covers"),
    CLASS: ("class index", "the explained class; null for the overall row"),
    CLASS_NAME: ("", "the explained class's name; null for the overall row or without names"),
    CORRECT: ("", "predicted == label of the rows covered ('class_correct' rows only)"),
    COUNT: ("examples", "rows of the saliency table covered"),
    **{f"{name}_mean": (unit, f"mean of {name} ({meaning}); null when no row has it")
       for name, (unit, meaning) in STATISTIC_COLUMNS.items()},
    **{f"{name}_std": (unit, f"standard deviation (ddof=1) of {name}; null below 2 rows")
       for name, (unit, _) in STATISTIC_COLUMNS.items()},
    **{f"{name}_hist": ("examples", f"counts of {name} in {HISTOGRAM_BINS} equal bins of [0, 1]")
       for name in HISTOGRAM_STATISTICS},
    MEAN_MAP: ("0-1", "mean of the covered maps, each divided by its max |value|; row-major "
                      "h*w (manifest map_shape)"),
}


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
    return with_nullable_ints(pa.schema(fields), (CLASS,), booleans=(CORRECT,))


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
