"""The bounded per-class sample that findings cluster, taken in the main pass.

``FindingsTapDoFn`` runs fused right after RunInference: per batch it emits one slim
``(ids, targets, correct, small maps)`` tuple (what the assignment pass needs) and, per row
that may still belong to its class's sample, ``(class, SampleRow)``. ``ClassSampleFn``
combines those rows into the sample: the ``sample_per_class`` smallest ``sample_key``s of a
class keep their small map, the ``image_sample_per_class`` smallest also their image (the
uint8 display image the model input is scaled from: a third of float32's bytes, half of
float16's; ``pipeline.images.model_input_from_display`` rebuilds the input).

Only rows that enter a bounded per-DoFn-instance sample are emitted (an example outside an
instance's own smallest keys cannot be in the class's), and only those that enter its image
sample carry their image, so the combine's accumulators (at most the two bounds per class and
bundle) are all that crosses the shuffle; nothing is held per example.
"""

import heapq

import apache_beam as beam
import numpy as np

from pipeline.records import finite_rows, sample_key

SAMPLE = "sample"


def finding_rows(explained, config):
    """ExplainedBatch -> ``(indices kept, ids, targets, predicted, correct, small maps)`` or
    None: the rows the saliency table keeps (finite maps and scores), with float32
    ``(n, m, m)`` small maps and ``correct`` an object array of bool or None."""
    from gbp_ops.maps import reduced_maps
    from pipeline.findings import small_maps

    explanation = explained.explanation
    if explanation is None:
        return None
    reduced = reduced_maps(explanation.maps, config.explain.reduction)
    keep = np.flatnonzero(finite_rows(reduced, explanation.target_scores))
    if not len(keep):
        return None
    examples = [explained.examples[i] for i in keep]
    predicted = np.asarray(explanation.predicted)[keep].astype(np.int64)
    correct = np.array([None if e.label is None else bool(e.label == p)
                        for e, p in zip(examples, predicted)], object)
    return (keep, [e.example_id for e in examples],
            np.asarray(explanation.targets)[keep].astype(np.int64), predicted, correct,
            small_maps.small_maps(reduced[keep], config.findings.map_size))


class SmallestKeys:
    """The ``bound`` smallest keys offered so far (a max-heap of negated integer keys)."""

    def __init__(self, bound):
        self._bound = bound
        self._heap = []

    def offer(self, key):
        """Adds ``key`` (a hex string) if it is among the smallest; returns whether it is."""
        value = -int(key, 16)
        if len(self._heap) < self._bound:
            heapq.heappush(self._heap, value)
            return True
        if value > self._heap[0]:
            heapq.heapreplace(self._heap, value)
            return True
        return False


class FindingsTapDoFn(beam.DoFn):
    """ExplainedBatch -> main: ``(ids, targets, correct, small maps)`` per batch; ``sample``:
    ``(class, (sample key, example_id, small map float32 (m, m), predicted int, display image
    uint8 (H, W, 3) or None))`` for the rows that may belong to the class's sample."""

    def __init__(self, config):
        self._config = config

    def setup(self):
        self._maps_kept, self._images_kept = {}, {}

    def _kept(self, kept, target, bound):
        if target not in kept:
            kept[target] = SmallestKeys(bound)
        return kept[target]

    def process(self, explained):
        settings = self._config.findings
        rows = finding_rows(explained, self._config)
        if rows is None:
            return
        keep, ids, targets, predicted, correct, maps = rows
        yield ids, targets, correct, maps
        for index, example_id, target, guess, small in zip(keep, ids, targets, predicted, maps):
            key, target = sample_key(example_id), int(target)
            if not self._kept(self._maps_kept, target, settings.sample_per_class).offer(key):
                continue
            image = None
            if self._kept(self._images_kept, target, settings.image_sample_per_class).offer(key):
                image = explained.examples[index].display
            yield beam.pvalue.TaggedOutput(SAMPLE, (target, (key, example_id, small, int(guess),
                                                             image)))


def _smallest(rows, bound):
    """The ``bound`` rows with the smallest keys, one per example id, in key order."""
    unique = {row[1]: row for row in rows}
    return sorted(unique.values(), key=lambda row: (row[0], row[1]))[:bound]


class ClassSampleFn(beam.CombineFn):
    """SampleRows of one class -> ``(sampled, imaged)``: ``sampled`` the
    ``sample_per_class`` smallest-key rows as ``(key, example_id, small map, predicted)``,
    ``imaged`` the ``image_sample_per_class`` smallest-key rows that carry an image, as
    ``(key, example_id, uint8 display image)``. The accumulator is ``(map rows, image rows)``, each
    trimmed to its bound whenever it outgrows it by an eighth."""

    def __init__(self, sample_per_class, image_sample_per_class):
        self._bounds = (sample_per_class, image_sample_per_class)

    def create_accumulator(self):
        return [], []

    def _trimmed(self, accumulator, force=False):
        return tuple(_smallest(rows, bound) if force or len(rows) > bound + bound // 8 else rows
                     for rows, bound in zip(accumulator, self._bounds))

    def add_input(self, accumulator, row):
        maps, images = accumulator
        key, example_id, small, predicted, image = row
        maps.append((key, example_id, small, predicted))
        if image is not None:
            images.append((key, example_id, image))
        return self._trimmed((maps, images))

    def merge_accumulators(self, accumulators):
        maps, images = [], []
        for more_maps, more_images in accumulators:
            maps.extend(more_maps)
            images.extend(more_images)
            maps, images = self._trimmed((maps, images))
        return maps, images

    def compact(self, accumulator):
        return self._trimmed(accumulator, force=True)

    def extract_output(self, accumulator):
        return self._trimmed(accumulator, force=True)
