"""Aggregate statistics per target class, per (class, correct) and overall, as a CombineFn.

The maths lives in ``gbp_ops.aggregates``; here batches become partial accumulators keyed
by group, and Beam merges them. Accumulators have a fixed size, so memory stays flat.
"""

import apache_beam as beam
import numpy as np

from gbp_ops import aggregates
from pipeline import schema

HISTOGRAM_BINS = 20
# Statistics bounded in [0, 1], which get histograms; total_mass is unbounded.
HISTOGRAM_STATISTICS = tuple(name for name in (*schema.STATISTIC_COLUMNS, schema.BOX_SHARE)
                             if name != "total_mass")
AGGREGATED_STATISTICS = (*schema.STATISTIC_COLUMNS, schema.BOX_SHARE)


def group_keys(batch):
    """Yields ``(key, row_indices)`` for every group a batch's rows belong to.

    Keys are ``(group, class, correct)`` tuples of plain Python values (deterministic for
    GroupByKey): ``('overall', None, None)``, ``('class', t, None)``, ``('class_correct', t, c)``
    where t is the explained target class and c whether the prediction equals the label.
    """
    targets = batch.columns[schema.TARGET]
    correct = batch.columns[schema.CORRECT]
    yield (schema.GROUP_OVERALL, None, None), np.arange(len(batch))
    for target in np.unique(targets):
        in_class = targets == target
        yield (schema.GROUP_CLASS, int(target), None), np.flatnonzero(in_class)
        for flag in (True, False):
            members = np.flatnonzero(in_class & np.array([c is flag for c in correct]))
            if len(members):
                yield (schema.GROUP_CLASS_CORRECT, int(target), flag), members


def group_map_sums(batch):
    """Fixed-point map sums (int64 ``(h, w)``) of every group ``group_keys`` yields.

    Each row is summed once, into its (class, correct) leaf; class and overall sums add leaf
    sums. Integer sums are exact, so this equals summing every group's rows directly, without
    copying each row once per group.
    """
    fixed_maps = aggregates.fixed_point_maps(batch.maps)
    leaves = {}
    for row, leaf in enumerate(zip(batch.columns[schema.TARGET].tolist(),
                                   batch.columns[schema.CORRECT].tolist())):
        leaves.setdefault(leaf, []).append(row)
    sums = {}
    for (target, correct), rows in leaves.items():
        leaf_sum = fixed_maps[rows].sum(axis=0)
        if correct is not None:
            sums[(schema.GROUP_CLASS_CORRECT, int(target), correct)] = leaf_sum
        class_key = (schema.GROUP_CLASS, int(target), None)
        sums[class_key] = sums[class_key] + leaf_sum if class_key in sums else leaf_sum
    sums[(schema.GROUP_OVERALL, None, None)] = sum(
        value for key, value in sums.items() if key[0] == schema.GROUP_CLASS)
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


def stats_row(key, accumulator, class_names):
    """``(key, StatsAccumulator)`` -> a stats-table row dict (see ``schema.stats_schema``)."""
    group, target, correct = key
    result = aggregates.extract(accumulator)
    row = {
        schema.GROUP: group,
        schema.CLASS: target,
        schema.CLASS_NAME: class_names[target] if target is not None and target < len(
            class_names) else None,
        schema.CORRECT: correct,
        schema.COUNT: result["count"],
        schema.MEAN_MAP: result["mean_map"].reshape(-1).tolist(),
    }
    for index, name in enumerate(AGGREGATED_STATISTICS):
        row[f"{name}_mean"] = _nullable(result["mean"][index])
        row[f"{name}_std"] = _nullable(result["std"][index])
        if name in HISTOGRAM_STATISTICS:
            row[f"{name}_hist"] = result["histograms"][index].tolist()
    return row


def _nullable(value):
    return None if np.isnan(value) else float(value)


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
            | "ToStatsRow" >> beam.MapTuple(lambda key, acc: stats_row(key, acc, class_names))
        )
