"""Explained batches -> audit rows: reduced maps, per-example statistics, Arrow tables."""

import apache_beam as beam
import numpy as np

from gbp_ops import maps as map_ops
from gbp_ops import statistics
from pipeline.records import (
    DEAD_LETTERS,
    METRICS_NAMESPACE,
    STAGE_NON_FINITE,
    AuditBatch,
    DeadLetter,
    class_name,
    finite_rows,
)
from pipeline.tables import saliency as saliency_table


def build_audit_batch(explained, config, class_names):
    """ExplainedBatch -> (AuditBatch or None, [DeadLetter]) with non-finite rows removed."""
    dead_letters = list(explained.dead_letters)
    if explained.explanation is None:
        return None, dead_letters
    explanation, examples = explained.explanation, explained.examples
    # The explainer reduces channels in its compiled step.
    reduced = map_ops.reduced_maps(explanation.maps, config.explain.reduction)
    reduced = map_ops.downsample(reduced, config.output.downsample)
    target_probs = explanation.target_probabilities
    finite = finite_rows(reduced, explanation.target_scores)
    for index in np.flatnonzero(~finite):
        example = examples[index]
        dead_letters.append(DeadLetter(example.example_id, example.position, STAGE_NON_FINITE,
                                       "saliency map or score is NaN or infinite"))
    keep = np.flatnonzero(finite)
    if not len(keep):
        return None, dead_letters
    kept = [examples[i] for i in keep]
    reduced = reduced[keep]
    boxes = None
    if any(example.box is not None for example in kept):
        boxes = np.stack([np.full(4, np.nan) if e.box is None else e.box for e in kept])
    stats = statistics.per_example_statistics(
        reduced, config.output.border_band_fraction, boxes=boxes)
    stats.setdefault(statistics.BOX_SHARE, np.full(len(kept), np.nan))
    box_area = np.full(len(kept), np.nan)
    if boxes is not None:
        height, width = reduced.shape[1:]
        areas = statistics.box_masks(np.nan_to_num(boxes), height, width).mean(axis=(1, 2))
        box_area = np.where(np.isnan(boxes).any(axis=1), np.nan, areas)
    labels = [example.label for example in kept]
    predicted = explanation.predicted[keep]
    columns = {
        saliency_table.EXAMPLE_ID: np.array([e.example_id for e in kept], object),
        saliency_table.POSITION: np.array([e.position for e in kept], object),
        saliency_table.LABEL: np.array(labels, object),
        saliency_table.LABEL_NAME: np.array([class_name(label, class_names) for label in labels],
                                            object),
        saliency_table.PREDICTED: predicted,
        saliency_table.PREDICTED_NAME: np.array(
            [class_name(int(p), class_names) for p in predicted], object),
        saliency_table.TARGET: explanation.targets[keep],
        saliency_table.TARGET_SCORE: explanation.target_scores[keep].astype(np.float32),
        saliency_table.TARGET_PROB: target_probs[keep].astype(np.float32),
        saliency_table.CORRECT: np.array([None if label is None else bool(label == p)
                                  for label, p in zip(labels, predicted)], object),
        saliency_table.BOX_AREA: box_area,
    }
    statistic_values = np.stack([stats[name] for name in statistics.AGGREGATED_STATISTICS], axis=1)
    displays = np.stack([example.display for example in kept])
    return (AuditBatch(columns, reduced.astype(np.float32), statistic_values, displays),
            dead_letters)


class ToAuditBatchDoFn(beam.DoFn):
    """ExplainedBatch -> AuditBatch, plus dead letters for examples that failed to explain."""

    def __init__(self, config, class_names):
        self._config = config
        self._class_names = tuple(class_names)

    def setup(self):
        self._rows = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "saliency_rows")
        self._non_finite = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "failed_non_finite")
        self._explain_failed = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "failed_explain")

    def process(self, explained):
        batch, dead_letters = build_audit_batch(explained, self._config, self._class_names)
        for letter in dead_letters:
            counter = self._non_finite if letter.stage == STAGE_NON_FINITE else self._explain_failed
            counter.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTERS, letter)
        if batch is not None:
            self._rows.inc(len(batch))
            yield batch
