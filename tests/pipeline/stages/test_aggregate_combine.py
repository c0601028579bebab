"""The aggregate stage's DoFn and CombineFn against pandas on the same rows.

Groups are ``('overall', None, None)``, ``('class', t, None)`` and ``('class_correct', t, c)``
for every (target, correct) pair present, unlabelled rows (correct None) counting only for
their class and overall. Expected groups, counts, means, stds and histograms come from pandas /
numpy on the batch's own statistic values; the expected mean map is the mean over the group of
each map divided by its own max |value|.
"""

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that

from gbp_ops import aggregates, statistics
from pipeline.records import AuditBatch
from pipeline.stages.aggregate import (
    AggregateStats,
    MergeStatsFn,
    PartialAggregatesDoFn,
    group_keys,
)

STAT_NAMES = (*statistics.STATISTIC_NAMES, statistics.BOX_SHARE)  # the statistics array order
# AuditBatch column keys are the saliency table's column names.
CLASS_NAMES = ("zero", "one", "two")
T, F = True, False
# Class 2 is only unlabelled (no class_correct group); classes 0 and 1 have both flags.
TARGETS = [0, 1, 0, 2, 1, 0, 2, 1, 0, 1, 2, 0, 1, 0]
CORRECT = [T, F, F, None, T, T, None, F, None, T, None, F, F, T]
SPLITS = (5, 9)  # sub-batches [0:5], [5:9], [9:]; not every group is in every sub-batch


def _batch(rows=slice(None), seed=0):
    """An AuditBatch of the rows above, with random maps (one all zero) and statistics."""
    rng = np.random.default_rng(seed)
    count = len(TARGETS)
    maps = np.abs(rng.standard_normal((count, 5, 7))) * rng.uniform(0.1, 10.0, (count, 1, 1))
    maps[3] = 0.0
    values = rng.random((count, len(STAT_NAMES)))
    values[:, 0] *= 40.0  # total_mass is unbounded
    values[rng.random(count) < 0.3, 3] = np.nan  # an undefined entropy now and then
    values[:, -1] = np.nan  # box share: only a few rows have a box
    values[[1, 4, 10], -1] = [0.2, 0.7, 0.9]
    columns = {"target": np.array(TARGETS), "correct": np.array(CORRECT, object)}
    return AuditBatch({k: v[rows] for k, v in columns.items()},
                      maps.astype(np.float32)[rows], values[rows],
                      np.zeros((count, 5, 7, 3), np.uint8)[rows])


def _sub_batches():
    edges = (0, *SPLITS, len(TARGETS))
    return [_batch(slice(a, b)) for a, b in zip(edges[:-1], edges[1:])]


def _frame(batch):
    frame = pd.DataFrame(batch.statistics, columns=list(STAT_NAMES))
    frame["target"] = batch.columns["target"]
    frame["correct"] = pd.Series(list(batch.columns["correct"]), dtype=object)
    frame["row"] = np.arange(len(frame))
    return frame


def _pandas_groups(batch):
    """key -> DataFrame of the group's rows, found by pandas groupby (None keys dropped)."""
    frame = _frame(batch)
    groups = {("overall", None, None): frame}
    for target, group in frame.groupby("target"):
        groups[("class", int(target), None)] = group
    for (target, correct), group in frame.groupby(["target", "correct"]):
        groups[("class_correct", int(target), bool(correct))] = group
    return groups


def _expected(batch, group, bins):
    maps = batch.maps[group.row.to_numpy()].astype(np.float64)
    peaks = np.abs(maps).max(axis=(1, 2), keepdims=True)
    edges = np.linspace(0.0, 1.0, bins + 1)
    return {
        "count": len(group),
        "mean": group[list(STAT_NAMES)].mean().to_numpy(),
        "std": group[list(STAT_NAMES)].std().to_numpy(),
        "mean_map": (np.abs(maps) / np.where(peaks > 0, peaks, 1.0)).mean(axis=0),
        "histograms": np.stack([np.histogram(np.clip(group[name].dropna(), 0, 1), edges)[0]
                                for name in STAT_NAMES]),
    }


def _assert_matches(result, expected, key):
    assert result["count"] == expected["count"], key
    np.testing.assert_allclose(result["mean"], expected["mean"], rtol=1e-9, err_msg=str(key))
    np.testing.assert_allclose(result["std"], expected["std"], rtol=1e-6, err_msg=str(key))
    np.testing.assert_allclose(result["mean_map"], expected["mean_map"], rtol=1e-6, atol=1e-6,
                               err_msg=str(key))
    np.testing.assert_array_equal(result["histograms"], expected["histograms"], err_msg=str(key))


def test_the_rows_cover_every_kind_of_group():
    groups = _pandas_groups(_batch())
    assert {key for key in groups if key[0] == "class_correct"} == {
        ("class_correct", 0, True), ("class_correct", 0, False),
        ("class_correct", 1, True), ("class_correct", 1, False)}
    assert len(groups) == 1 + 3 + 4


def test_group_keys_equal_pandas_groups():
    batch = _batch()
    keys = {key: members for key, members in group_keys(batch)}
    expected = _pandas_groups(batch)
    assert set(keys) == set(expected)
    for key, members in keys.items():
        assert sorted(np.asarray(members).tolist()) == sorted(expected[key].row.tolist()), key
        assert type(key[1]) in (int, type(None)) and type(key[2]) in (bool, type(None)), key


@pytest.mark.parametrize("part", range(3))
def test_partial_aggregates_of_a_batch_equal_pandas(part):
    batch = _sub_batches()[part] if part else _batch()
    partials = list(PartialAggregatesDoFn().process(batch))
    keys = [key for key, _ in partials]
    assert len(keys) == len(set(keys)), "a group was emitted twice for one batch"
    expected = _pandas_groups(batch)
    assert set(keys) == set(expected)
    for key, accumulator in partials:
        result = aggregates.extract(accumulator)
        _assert_matches(result, _expected(batch, expected[key], result["histograms"].shape[1]),
                        key)


def _combine(fn, partials, order, bundles):
    """What a runner may do: add inputs to several bundle accumulators (in ``order``), then
    merge them, with empty accumulators mixed in."""
    accumulators = [fn.create_accumulator() for _ in range(bundles)]
    for position, index in enumerate(order):
        bundle = position % bundles
        accumulators[bundle] = fn.add_input(accumulators[bundle], partials[index])
    merged = fn.merge_accumulators([fn.create_accumulator(), *accumulators,
                                    fn.create_accumulator()])
    return fn.extract_output(merged)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merge_stats_fn_over_sub_batches_equals_pandas_on_all_rows(seed):
    fn = MergeStatsFn()
    by_key = {}
    for batch in _sub_batches():
        for key, accumulator in PartialAggregatesDoFn().process(batch):
            by_key.setdefault(key, []).append(accumulator)
    whole = _batch()
    expected = _pandas_groups(whole)
    assert set(by_key) == set(expected)
    rng = np.random.default_rng(seed)
    for key, partials in by_key.items():
        results = [aggregates.extract(_combine(fn, partials, rng.permutation(len(partials)),
                                               bundles)) for bundles in (1, 2, 3)]
        bins = results[0]["histograms"].shape[1]
        for result in results:
            _assert_matches(result, _expected(whole, expected[key], bins), key)
            for name in ("mean", "std", "mean_map", "histograms"):  # merge order is exact
                np.testing.assert_array_equal(result[name], results[0][name])


def test_merge_stats_fn_empty_accumulators_are_neutral():
    fn = MergeStatsFn()
    (key, partial), *_ = PartialAggregatesDoFn().process(_batch())
    alone = aggregates.extract(partial)
    empty = fn.merge_accumulators([fn.create_accumulator(), fn.create_accumulator()])
    for accumulator in (fn.add_input(empty, partial),
                        fn.merge_accumulators([empty, fn.add_input(fn.create_accumulator(),
                                                                   partial)]),
                        fn.merge_accumulators([fn.create_accumulator(), partial])):
        result = aggregates.extract(fn.extract_output(accumulator))
        assert result["count"] == alone["count"] == len(TARGETS)
        for name in ("mean", "std", "mean_map", "histograms"):
            np.testing.assert_array_equal(result[name], alone[name])


def test_aggregate_stats_transform_rows_equal_pandas():
    whole = _batch()
    expected = _pandas_groups(whole)

    def check(rows):
        found = {(row["group_kind"], row["target"], row["correct"]): row for row in rows}
        assert len(found) == len(rows), "duplicate group rows"
        assert set(found) == set(expected)
        for key, row in found.items():
            group = expected[key]
            assert row["example_count"] == len(group), key
            assert row["target_name"] == (None if key[1] is None else CLASS_NAMES[key[1]])
            for name in STAT_NAMES:
                want = group[name].mean()
                got = row[f"{name}_mean"]
                assert (got is None) if np.isnan(want) else got == pytest.approx(want), key
            maps = whole.maps[group.row.to_numpy()].astype(np.float64)
            peaks = np.abs(maps).max(axis=(1, 2), keepdims=True)
            mean_map = (maps / np.where(peaks > 0, peaks, 1.0)).mean(axis=0).reshape(-1)
            np.testing.assert_allclose(row["mean_map"], mean_map, atol=1e-6, err_msg=str(key))

    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        rows = (p | beam.Create(_sub_batches(), reshuffle=False)
                | AggregateStats(CLASS_NAMES))
        assert_that(rows, check)
