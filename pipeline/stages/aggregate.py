"""Aggregate statistics per target class, per (class, correct) and overall, as a CombineFn.

The maths lives in ``gbp_ops.aggregates``; here batches become partial accumulators keyed
by group, and Beam merges them. Accumulators have a fixed size, so memory stays flat.
"""

import apache_beam as beam
import numpy as np

from gbp_ops import aggregates
from gbp_ops.statistics import HISTOGRAM_BINS
from pipeline.tables import saliency as saliency_table
from pipeline.tables import stats as stats_table


def group_keys(batch):
    """Yields ``(key, row_indices)`` for every group a batch's rows belong to.

    Keys are ``(group, class, correct)`` tuples of plain Python values (deterministic for
    GroupByKey): ``('overall', None, None)``, ``('class', t, None)``, ``('class_correct', t, c)``
    where t is the explained target class and c whether the prediction equals the label.
    """
    targets = batch.columns[saliency_table.TARGET]
    correct = batch.columns[saliency_table.CORRECT]
    yield (stats_table.GROUP_OVERALL, None, None), np.arange(len(batch))
    for target in np.unique(targets):
        in_class = targets == target
        yield (stats_table.GROUP_CLASS, int(target), None), np.flatnonzero(in_class)
        for flag in (True, False):
            members = np.flatnonzero(in_class & np.array([c is flag for c in correct]))
            if len(members):
                yield (stats_table.GROUP_CLASS_CORRECT, int(target), flag), members


def group_map_sums(batch):
    """Fixed-point map sums (int64 ``(h, w)``) of every group ``group_keys`` yields.

    Each row is summed once, into its (class, correct) leaf; class and overall sums add leaf
    sums. Integer sums are exact, so this equals summing every group's rows directly, without
    copying each row once per group.
    """
    fixed_maps = aggregates.fixed_point_maps(batch.maps)
    leaves = {}
    for row, leaf in enumerate(zip(batch.columns[saliency_table.TARGET].tolist(),
                                   batch.columns[saliency_table.CORRECT].tolist())):
        leaves.setdefault(leaf, []).append(row)
    sums = {}
    for (target, correct), rows in leaves.items():
        leaf_sum = fixed_maps[rows].sum(axis=0)
        if correct is not None:
            sums[(stats_table.GROUP_CLASS_CORRECT, int(target), correct)] = leaf_sum
        class_key = (stats_table.GROUP_CLASS, int(target), None)
        sums[class_key] = sums[class_key] + leaf_sum if class_key in sums else leaf_sum
    sums[(stats_table.GROUP_OVERALL, None, None)] = sum(
        value for key, value in sums.items() if key[0] == stats_table.GROUP_CLASS)
    return sums


class PartialAggregatesDoFn(beam.DoFn):
    """AuditBatch -> ``(group key, StatsAccumulator)`` for each group present in the batch."""

    def process(self, batch):
        map_sums = group_map_sums(batch)
        for key, members in group_keys(batch):
            yield key, aggregates.accumulate(batch.statistics[members], None, HISTOGRAM_BINS,
                                             map_sum=map_sums[key])


class MergeStatsFn(beam.CombineFn):
    """Merges StatsAccumulators of one group."""

    def create_accumulator(self):
        return None

    def add_input(self, accumulator, partial):
        return partial if accumulator is None else aggregates.merge([accumulator, partial])

    def merge_accumulators(self, accumulators):
        present = [acc for acc in accumulators if acc is not None]
        return aggregates.merge(present) if present else None

    def extract_output(self, accumulator):
        return accumulator


class AggregateStats(beam.PTransform):
    """PCollection[AuditBatch] -> PCollection[stats row dict]."""

    def __init__(self, class_names):
        super().__init__()
        self._class_names = tuple(class_names)

    def expand(self, batches):
        class_names = self._class_names
        return (
            batches
            | "PartialAggregates" >> beam.ParDo(PartialAggregatesDoFn())
            | "MergePerGroup" >> beam.CombinePerKey(MergeStatsFn())
            | "ToStatsRow" >> beam.Map(lambda group: stats_table.encode_row(*group, class_names))
        )
