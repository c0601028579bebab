"""``comparison_classes/``: one row per explained class of either run of a comparison.

Counts per run, the accuracy change, the prediction flip rate of the class's shared examples
(class as the baseline explained it), the median map similarity of its pairs (shared examples
explained as this class in both runs), and for each per-example statistic: the shift (current
minus baseline mean), its 95% confidence interval, the test's p value, the standardized effect
(shift / the baseline's standard deviation) and whether it counts as drift. ``test`` says which
test: paired (``wilcoxon``, with a paired-t interval) when the class has at least
``pipeline.compare.per_class.MIN_PAIRS`` pairs, else unpaired (``mann_whitney``, Welch
interval). ``mean_map_difference``: the current run's mean map minus the baseline's (both from
their ``stats`` tables, maps scaled by their own maximum), flat ``h*w``.
"""

import pyarrow as pa

from gbp_ops.statistics import AGGREGATED_STATISTICS
from pipeline.tables import with_nullable_ints
from pipeline.tables.clusters import ACCURACY
from pipeline.tables.comparison_examples import SIDES, side_column
from pipeline.tables.stats import CLASS, CLASS_NAME, COUNT

PAIRS = "pairs"
TEST = "test"
ACCURACY_CHANGE = "accuracy_change"
SHARED_EXAMPLES = "shared_examples"
PREDICTION_FLIPS = "prediction_flips"
PREDICTION_FLIP_RATE = "prediction_flip_rate"
MEDIAN_SPEARMAN = "median_spearman"
MEDIAN_TOP5_OVERLAP = "median_top5_overlap"
DRIFTED = "drifted"  # list of the statistics that drifted
MEAN_MAP_DIFFERENCE = "mean_map_difference"
TEST_WILCOXON = "wilcoxon"
TEST_MANN_WHITNEY = "mann_whitney"
# Per statistic: '<statistic>_<part>'.
STATISTIC_PARTS = ("shift", "ci_low", "ci_high", "p_value", "effect")


def statistic_column(statistic, part):
    """``'<statistic>_<part>'``, part one of ``STATISTIC_PARTS``."""
    return f"{statistic}_{part}"


def arrow_schema(map_shape):
    """The table's schema for mean maps of ``(h, w)``."""
    height, width = map_shape
    fields = [pa.field(CLASS, pa.int64()), pa.field(CLASS_NAME, pa.string())]
    fields += [pa.field(side_column(side, COUNT), pa.int64(), nullable=False) for side in SIDES]
    fields += [pa.field(PAIRS, pa.int64(), nullable=False), pa.field(TEST, pa.string())]
    fields += [pa.field(side_column(side, ACCURACY), pa.float64()) for side in SIDES]
    fields += [pa.field(ACCURACY_CHANGE, pa.float64()),
               pa.field(SHARED_EXAMPLES, pa.int64(), nullable=False),
               pa.field(PREDICTION_FLIPS, pa.int64(), nullable=False),
               pa.field(PREDICTION_FLIP_RATE, pa.float64()),
               pa.field(MEDIAN_SPEARMAN, pa.float64()),
               pa.field(MEDIAN_TOP5_OVERLAP, pa.float64())]
    for name in AGGREGATED_STATISTICS:
        fields += [pa.field(statistic_column(name, part), pa.float64())
                   for part in STATISTIC_PARTS]
    fields += [pa.field(DRIFTED, pa.list_(pa.string())),
               pa.field(MEAN_MAP_DIFFERENCE, pa.list_(pa.float32(), height * width))]
    return with_nullable_ints(pa.schema(fields), (CLASS,))
