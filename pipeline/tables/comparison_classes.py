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
    fields = [pa.field(CLASS, pa.int64(), nullable=False), pa.field(CLASS_NAME, pa.string())]
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
    return with_nullable_ints(pa.schema(fields), ())


COMPARISON_CLASSES_DESCRIPTION = (
    "One row per explained class of either run of a comparison: counts, accuracy change, "
    "prediction flips, map similarity and each statistic's shift with its test.")
_PART_MEANINGS = {"shift": "current minus baseline mean", "ci_low": "95% interval, low end",
                  "ci_high": "95% interval, high end", "p_value": "the test's p value",
                  "effect": "shift / the baseline's standard deviation"}
COMPARISON_CLASSES_COLUMNS = {
    CLASS: ("class index", "the explained class"),
    CLASS_NAME: ("", "its name; null without class names"),
    **{side_column(side, COUNT): ("examples", f"the {side} run's examples of the class")
       for side in SIDES},
    PAIRS: ("examples", "shared examples explained as this class in both runs"),
    TEST: ("", "'wilcoxon' (paired) or 'mann_whitney' (unpaired)"),
    **{side_column(side, ACCURACY): ("share 0-1", f"the {side} run's accuracy; null without "
                                                  "labels") for side in SIDES},
    ACCURACY_CHANGE: ("share", "current minus baseline accuracy"),
    SHARED_EXAMPLES: ("examples", "the class's shared examples (as the baseline explained it)"),
    PREDICTION_FLIPS: ("examples", "shared examples whose prediction changed"),
    PREDICTION_FLIP_RATE: ("share 0-1", "prediction_flips / shared_examples"),
    MEDIAN_SPEARMAN: ("-1 to 1", "median map Spearman over the pairs"),
    MEDIAN_TOP5_OVERLAP: ("share 0-1", "median top-5% overlap over the pairs"),
    **{statistic_column(name, part): ("", f"{name}: {meaning}")
       for name in AGGREGATED_STATISTICS for part, meaning in _PART_MEANINGS.items()},
    DRIFTED: ("", "the statistics that drifted"),
    MEAN_MAP_DIFFERENCE: ("0-1", "current minus baseline class mean map, row-major h*w"),
}
