"""Per-group partial aggregates of one batch."""

import numpy as np

from gbp_ops import aggregates
from pipeline.records import AuditBatch
from pipeline.stages.aggregate import group_keys, group_map_sums
from pipeline.tables import saliency as saliency_table
from pipeline.tables import stats as stats_table


def _batch(targets, correct, seed=0):
    rng = np.random.default_rng(seed)
    count = len(targets)
    columns = {saliency_table.TARGET: np.array(targets),
               saliency_table.CORRECT: np.array(correct, object)}
    return AuditBatch(columns, rng.standard_normal((count, 6, 5)).astype(np.float32),
                      rng.random((count, 3)), np.zeros((count, 6, 5, 3), np.uint8))


def test_group_map_sums_equal_each_groups_direct_sum():
    # Unlabelled rows (None) count for their class and overall, not for class_correct.
    batch = _batch([2, 0, 2, 2, 1, 0, 2, 1], [True, False, None, False, True, True, True, None])
    sums = group_map_sums(batch)
    keys = [key for key, _ in group_keys(batch)]
    assert sorted(sums, key=repr) == sorted(keys, key=repr)
    for key, members in group_keys(batch):
        expected = aggregates.fixed_point_maps(batch.maps[members]).sum(axis=0)
        np.testing.assert_array_equal(sums[key], expected)
    assert (stats_table.GROUP_CLASS_CORRECT, 1, None) not in sums
    assert len(keys) == 1 + 3 + 5  # overall, 3 classes, 5 (class, correct) pairs present
