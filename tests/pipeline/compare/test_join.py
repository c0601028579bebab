"""The Beam join of two runs' tables against an independent reference (sets, scipy's
Spearman on the stored float16-precision maps, numpy differences), and the same answer for one
bucket and for several."""

import collections
import os
import types

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy import stats

from gbp_ops.statistics import AGGREGATED_STATISTICS
from pipeline import tables
from pipeline.compare import join
from pipeline.tables import assignments as assignments_table
from pipeline.tables import saliency as saliency_table

SHAPE = (8, 8)
FLAGGED = (1, 0)  # (class, cluster) of a flagged baseline cluster
_COLLECTED = collections.defaultdict(list)


def _run_arrays(ids, seed):
    rng = np.random.default_rng(seed)
    count = len(ids)
    maps = np.maximum(rng.normal(size=(count, *SHAPE)), 0).astype(np.float32) * rng.uniform(
        0.01, 2.0, (count, 1, 1)).astype(np.float32)
    targets = rng.integers(0, 2, count)
    return {"ids": np.array(ids), "maps": maps, "targets": targets,
            "predicted": targets, "labels": rng.integers(0, 2, count),
            "statistics": rng.uniform(0, 1, (count, len(AGGREGATED_STATISTICS))),
            "clusters": rng.integers(0, 2, count)}


def _write_run(folder, arrays):
    metadata = {"map_shape": list(SHAPE)}
    schema = saliency_table.arrow_schema(SHAPE, "float16", metadata)
    for table in (tables.SALIENCY, tables.ASSIGNMENTS):
        os.makedirs(os.path.join(folder, table))
    for shard, rows in enumerate(np.array_split(np.arange(len(arrays["ids"])), 2)):
        labels, predicted = arrays["labels"][rows], arrays["predicted"][rows]
        batch = types.SimpleNamespace(
            maps=arrays["maps"][rows], statistics=arrays["statistics"][rows], columns={
                saliency_table.EXAMPLE_ID: arrays["ids"][rows].astype(object),
                **{name: np.full(len(rows), None, object) for name in (
                    saliency_table.POSITION, saliency_table.LABEL_NAME,
                    saliency_table.PREDICTED_NAME)},
                saliency_table.TARGET_SCORE: np.ones(len(rows), np.float32),
                saliency_table.TARGET_PROB: np.ones(len(rows), np.float32),
                saliency_table.BOX_AREA: np.full(len(rows), np.nan),
                saliency_table.LABEL: labels, saliency_table.PREDICTED: predicted,
                saliency_table.TARGET: arrays["targets"][rows],
                saliency_table.CORRECT: labels == predicted})
        pq.write_table(saliency_table.encode(batch, schema, "float16"),
                       os.path.join(folder, tables.SALIENCY, f"part-{shard}.parquet"))
        pq.write_table(assignments_table.encode(arrays["ids"][rows], arrays["targets"][rows],
                                                arrays["clusters"][rows]),
                       os.path.join(folder, tables.ASSIGNMENTS, f"part-{shard}.parquet"))
    return metadata


class _Collect(beam.DoFn):
    def __init__(self, name):
        self._name = name

    def process(self, item):
        _COLLECTED[self._name].append(item)


def _join(root, runs, buckets, name):
    metadata = []
    for side, arrays in zip(("baseline", "current"), runs):
        metadata.append(_write_run(str(root / f"{name}-{side}"), arrays))
    with beam.Pipeline("FnApiRunner") as p:
        parts = []
        for side in ("baseline", "current"):
            for table in (tables.SALIENCY, tables.ASSIGNMENTS):
                parts.append(join.read_and_partition(
                    p, side, table, str(root / f"{name}-{side}" / table / "*.parquet"),
                    str(root / f"{name}-buckets"), buckets))
        joined = (tuple(parts) | beam.Flatten() | beam.GroupByKey()
                  | beam.ParDo(join.JoinBucketDoFn(metadata, {FLAGGED}, 100)).with_outputs(
                      *join.TAGS, main="tables"))
        joined.tables | "Rows" >> beam.FlatMap(lambda t: t.to_pylist()) | "CollectRows" >> (
            beam.ParDo(_Collect(f"{name}-rows")))
        for tag in (join.TAG_OVERLAPS, join.TAG_MEMBERS, join.TAG_IDS):
            joined[tag] | f"Collect{tag}" >> beam.ParDo(_Collect(f"{name}-{tag}"))
    rows = sorted(_COLLECTED[f"{name}-rows"], key=lambda row: row["example_id"])
    overlaps = collections.Counter()
    for key, count in _COLLECTED[f"{name}-{join.TAG_OVERLAPS}"]:
        overlaps[key] += count
    return rows, overlaps, sorted(_COLLECTED[f"{name}-{join.TAG_MEMBERS}"])


@pytest.fixture(scope="module")
def runs():
    baseline = _run_arrays([f"id-{i:03d}" for i in range(0, 60)], seed=0)
    current = _run_arrays([f"id-{i:03d}" for i in range(20, 90)], seed=1)
    return baseline, current


def _stored(maps):
    """The maps as the saliency table stores float16 maps: raw values rounded to float16's
    precision (numpy's float16 cast after an exact power-of-two shift into its range)."""
    maps = np.asarray(maps, np.float32)
    shift = np.ldexp(np.float32(1.0), -np.floor(np.log2(np.abs(maps) + (maps == 0))).astype(
        int)).astype(np.float32)
    return np.float16(maps * shift).astype(np.float32) / shift


@pytest.mark.parametrize("buckets", [1, 5])
def test_join_matches_an_independent_reference(tmp_path, runs, buckets):
    baseline, current = runs
    rows, overlaps, members = _join(tmp_path, runs, buckets, f"b{buckets}")
    old, new = (dict(zip(arrays["ids"].tolist(), range(len(arrays["ids"])))) for arrays in runs)
    shared = sorted(set(old) & set(new))
    assert [row["example_id"] for row in rows] == sorted(set(old) | set(new))
    presence = {row["example_id"]: row["presence"] for row in rows}
    assert {i for i, p in presence.items() if p == "shared"} == set(shared)
    assert {i for i, p in presence.items() if p == "baseline_only"} == set(old) - set(new)
    assert {i for i, p in presence.items() if p == "current_only"} == set(new) - set(old)
    stored = [_stored(arrays["maps"]) for arrays in runs]
    by_id = {row["example_id"]: row for row in rows}
    for example_id in shared:
        row, i, j = by_id[example_id], old[example_id], new[example_id]
        reference = stats.spearmanr(np.abs(stored[0][i]).ravel().astype(np.float64),
                                    np.abs(stored[1][j]).ravel().astype(np.float64)).statistic
        assert row["spearman"] == pytest.approx(reference, abs=1e-9)
        change = current["statistics"][j] - baseline["statistics"][i]
        for index, name in enumerate(AGGREGATED_STATISTICS):
            assert row[f"{name}_change"] == pytest.approx(change[index])
        assert row["flipped"] == (baseline["predicted"][i] != current["predicted"][j])
        assert row["baseline_cluster"] == baseline["clusters"][i]
        assert row["current_cluster"] == current["clusters"][j]
    for example_id in set(old) - set(new):
        assert by_id[example_id]["spearman"] is None and by_id[example_id]["flipped"] is None
    expected = collections.Counter(
        (int(baseline["targets"][old[i]]), int(baseline["clusters"][old[i]]),
         int(current["targets"][new[i]]), int(current["clusters"][new[i]])) for i in shared)
    assert overlaps == expected
    flagged = sorted(i for i in shared if (baseline["targets"][old[i]],
                                           baseline["clusters"][old[i]]) == FLAGGED)
    assert sorted(member[1][1] for member in members) == flagged


def test_one_bucket_and_several_give_the_same_rows(tmp_path, runs):
    one = _join(tmp_path, runs, 1, "one")
    several = _join(tmp_path, runs, 7, "several")
    assert one[0] == several[0] and one[1] == several[1]
