"""The findings sample against a brute-force reference: per class, the examples with the
smallest sha1 of their id, whatever the batch, bundle and merge order, and the tap's
pre-filter never drops one of them."""

import dataclasses
import hashlib
import types

import numpy as np
import pytest

from pipeline import config as config_module
from pipeline.findings import sampling

IMAGE_SHAPE = (4, 4, 3)


def _reference(ids, classes, with_image, sample, image_sample):
    """{class: (ids of the `sample` smallest sha1, ids of the `image_sample` smallest sha1
    among those that carry an image)} by sorting every id."""
    result = {}
    for target in sorted(set(classes)):
        members = sorted((hashlib.sha1(i.encode()).hexdigest(), i)
                         for i, c in zip(ids, classes) if c == target)
        imaged = [i for _, i in members if with_image[i]]
        result[target] = ([i for _, i in members[:sample]], imaged[:image_sample])
    return result


def _rows(ids, classes, with_image, rng):
    return [(c, (hashlib.sha1(i.encode()).hexdigest(), i, rng.random((2, 2)).astype(np.float32),
                 c, rng.random(IMAGE_SHAPE).astype(np.float16) if with_image[i] else None))
            for i, c in zip(ids, classes)]


def _combine(combine, rows, chunks, rng):
    """Adds rows to `chunks` accumulators, compacts and merges them in a random order."""
    parts = np.array_split(rng.permutation(len(rows)), chunks)
    accumulators = []
    for part in parts:
        accumulator = combine.create_accumulator()
        for index in part:
            accumulator = combine.add_input(accumulator, rows[index])
        accumulators.append(combine.compact(accumulator))
    order = rng.permutation(len(accumulators))
    return combine.extract_output(combine.merge_accumulators([accumulators[i] for i in order]))


@pytest.mark.parametrize("chunks", [1, 3, 7])
def test_class_sample_holds_the_smallest_hashes_of_each_class(chunks):
    rng = np.random.default_rng(chunks)
    ids = [f"example-{i:05d}" for i in range(900)]
    classes = rng.integers(0, 3, size=len(ids)).tolist()
    with_image = {i: bool(rng.random() < 0.6) for i in ids}
    rows = _rows(ids, classes, with_image, rng)
    combine = sampling.ClassSampleFn(40, 15)
    expected = _reference(ids, classes, with_image, 40, 15)
    for target, (sample_ids, image_ids) in expected.items():
        class_rows = [row for c, row in rows if c == target]
        sampled, imaged = _combine(combine, class_rows, chunks, rng)
        assert [row[1] for row in sampled] == sample_ids
        assert [row[1] for row in imaged] == image_ids
        by_id = {row[1]: row for row in class_rows}
        assert all(np.array_equal(row[2], by_id[row[1]][2]) for row in sampled)
        assert all(np.array_equal(row[2], by_id[row[1]][4]) for row in imaged)


def _explained(ids, classes, rng):
    """A stand-in ExplainedBatch: finite maps, the class as target and prediction."""
    examples = [types.SimpleNamespace(example_id=i, label=c, image=rng.random(IMAGE_SHAPE)
                                      .astype(np.float32),
                                      display=rng.integers(0, 256, IMAGE_SHAPE, np.uint8))
                for i, c in zip(ids, classes)]
    count = len(ids)
    explanation = types.SimpleNamespace(
        maps=rng.random((count, 8, 8)).astype(np.float32), target_scores=np.ones(count),
        predicted=np.array(classes), targets=np.array(classes))
    return types.SimpleNamespace(examples=examples, explanation=explanation)


@pytest.mark.parametrize("workers,ascending", [(3, False), (1, True)])
def test_the_taps_prefilters_keep_every_member_of_the_sample_and_drop_most_images(
        workers, ascending):
    """Rows spread at random over three workers' taps, or all through one tap in ascending key
    order (where a bound one too small drops exactly the last member)."""
    rng = np.random.default_rng(5)
    settings = dataclasses.replace(config_module.FindingsConfig(), sample_per_class=30,
                                   image_sample_per_class=10, map_size=4)
    config = dataclasses.replace(config_module.RunConfig(), findings=settings)
    ids = [f"row-{i:05d}" for i in range(2000)]
    if ascending:
        ids.sort(key=lambda i: hashlib.sha1(i.encode()).hexdigest())
    classes = rng.integers(0, 2, size=len(ids)).tolist()
    taps = [sampling.FindingsTapDoFn(config) for _ in range(workers)]
    for tap in taps:
        tap.setup()
    batches, tapped = [], []
    for start in range(0, len(ids), 16):
        explained = _explained(ids[start:start + 16], classes[start:start + 16], rng)
        for output in taps[rng.integers(len(taps))].process(explained):
            if isinstance(output, sampling.beam.pvalue.TaggedOutput):
                tapped.append(output.value)
            else:
                batches.append(output)
    assert sum(len(batch[0]) for batch in batches) == len(ids)  # every row is assigned later
    expected = _reference(ids, classes, dict.fromkeys(ids, True), 30, 10)
    combine = sampling.ClassSampleFn(30, 10)
    for target, (sample_ids, image_ids) in expected.items():
        sampled, imaged = _combine(combine, [row for c, row in tapped if c == target], 3, rng)
        assert [row[1] for row in sampled] == sample_ids
        assert [row[1] for row in imaged] == image_ids
        assert all(row[2].dtype == np.uint8 and row[2].shape == IMAGE_SHAPE for row in imaged)
    emitted_images = sum(row[4] is not None for _, row in tapped)
    assert emitted_images < 0.15 * len(ids), emitted_images
