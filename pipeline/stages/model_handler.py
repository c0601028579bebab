"""The RunInference model handler: one guided model per worker process, one GBP step per batch."""

import logging
import threading
import time
import uuid

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from pipeline import explainers
from pipeline.records import (
    BATCH_FINISHED_MS,
    BATCH_STARTED_MS,
    METRICS_NAMESPACE,
    STAGE_EXPLAIN,
    DeadLetter,
    ExplainedBatch,
)

# (run, explainer) pairs this process has counted in the `models_built` metric; local runs
# have several bundle threads sharing one explainer, hence the lock.
_COUNTED_EXPLAINERS = set()
_COUNTED_LOCK = threading.Lock()


class GuidedBackpropModelHandler(ModelHandler):
    """Runs ``GuidedBackprop.explain_with_outputs`` on fixed-size batches of PreparedExamples.

    Beam owns the model's lifecycle: ``load_model`` runs once per worker process through
    ``Shared``, or once per machine with ``explain.large_model`` (then only method calls cross
    the process boundary, so the whole GBP step is the one method called).
    """

    def __init__(self, config):
        batch_size = config.explain.batch_size
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size,
                         large_model=config.explain.large_model)
        self._config = config
        self._run_token = uuid.uuid4().hex  # pickled with the handler: one per pipeline

    def load_model(self):
        return explainers.shared_explainer(self._config)

    def get_metrics_namespace(self):
        return METRICS_NAMESPACE

    def run_inference(self, batch, model, inference_args=None):
        """Args: batch: PreparedExamples. Returns: a one-element list holding an ExplainedBatch."""
        with _COUNTED_LOCK:
            first_use = (self._run_token, id(model)) not in _COUNTED_EXPLAINERS
            _COUNTED_EXPLAINERS.add((self._run_token, id(model)))
        if first_use:
            beam.metrics.Metrics.counter(METRICS_NAMESPACE, "models_built").inc()
        beam.metrics.Metrics.counter(METRICS_NAMESPACE, "batches_explained").inc()
        # Each step's start and end: the launcher's timing line reads the run's batch window
        # from them (``pipeline.outputs.summary.batch_window``).
        beam.metrics.Metrics.distribution(METRICS_NAMESPACE, BATCH_STARTED_MS).update(
            int(time.time() * 1000))
        try:
            return [self._explain_batch(list(batch), model)]
        finally:
            beam.metrics.Metrics.distribution(METRICS_NAMESPACE, BATCH_FINISHED_MS).update(
                int(time.time() * 1000))

    def _explain_batch(self, examples, model):
        smoothgrad = self._config.explain.smoothgrad_samples > 0
        try:
            return ExplainedBatch(examples, _explain(model, examples, smoothgrad), [])
        except Exception as error:  # one bad element must not fail its whole batch
            logging.warning("gbp-audit: batch failed (%s); explaining its examples one by one",
                            error)
        return _explain_one_by_one(model, examples, smoothgrad)


def _explain(model, examples, smoothgrad=False):
    images = np.stack([example.image for example in examples])
    targets = np.array([example.target for example in examples], np.int32)
    if not smoothgrad:
        return model.explain_with_outputs(images, targets)
    import gbp_ops

    # SmoothGrad noise seeded by example id, so a rerun draws the same noise per example.
    seeds = gbp_ops.seeds_from_ids([example.example_id for example in examples])
    return model.explain_with_outputs(images, targets, seeds)


def _explain_one_by_one(model, examples, smoothgrad=False):
    kept, parts, dead_letters = [], [], []
    for example in examples:
        try:
            parts.append(_explain(model, [example], smoothgrad))
            kept.append(example)
        except Exception as error:
            dead_letters.append(DeadLetter(example.example_id, example.position, STAGE_EXPLAIN,
                                           f"{type(error).__name__}: {error}"))
    return ExplainedBatch(kept, _concatenate(parts), dead_letters)


def _concatenate(explanations):
    if not explanations:
        return None
    import gbp_ops

    def stack(name):
        values = [getattr(part, name) for part in explanations]
        return None if values[0] is None else np.concatenate(values)

    return gbp_ops.Explanation(**{name: stack(name) for name in (
        "maps", "scores", "probabilities", "predicted", "targets", "target_scores")})
