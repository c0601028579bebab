"""The RunInference model handler: one guided model per worker process, one GBP step per batch."""

import logging
import threading
import time
import uuid

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from pipeline import explainers
from pipeline.records import STAGE_EXPLAIN, DeadLetter

# (run, explainer) pairs this process has counted in the `models_built` metric; local runs
# have several bundle threads sharing one explainer, hence the lock.
_COUNTED_EXPLAINERS = set()
_COUNTED_LOCK = threading.Lock()
# Beam distributions of each batch step's start and end (unix time in ms): their min and max
# give the run's batch window (``batch_window``).
BATCH_STARTED_MS = "batch_started_unix_ms"
BATCH_FINISHED_MS = "batch_finished_unix_ms"


class ExplainedBatch:
    """The examples of one batch with their explanation.

    Attributes:
        examples: the PreparedExamples that were explained, in order.
        explanation: a ``gbp_ops.Explanation`` for exactly those examples (None if empty).
        dead_letters: DeadLetters for examples of the batch that could not be explained.
    """

    def __init__(self, examples, explanation, dead_letters):
        self.examples = examples
        self.explanation = explanation
        self.dead_letters = dead_letters


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
        return "gbp_audit"

    def run_inference(self, batch, model, inference_args=None):
        """Args: batch: PreparedExamples. Returns: a one-element list holding an ExplainedBatch."""
        with _COUNTED_LOCK:
            first_use = (self._run_token, id(model)) not in _COUNTED_EXPLAINERS
            _COUNTED_EXPLAINERS.add((self._run_token, id(model)))
        if first_use:
            beam.metrics.Metrics.counter("gbp_audit", "models_built").inc()
        beam.metrics.Metrics.counter("gbp_audit", "batches_explained").inc()
        beam.metrics.Metrics.distribution("gbp_audit", BATCH_STARTED_MS).update(
            int(time.time() * 1000))
        try:
            return [self._explain_batch(list(batch), model)]
        finally:
            beam.metrics.Metrics.distribution("gbp_audit", BATCH_FINISHED_MS).update(
                int(time.time() * 1000))

    def _explain_batch(self, examples, model):
        smoothgrad = self._config.explain.smoothgrad_samples > 0
        try:
            return ExplainedBatch(examples, _explain(model, examples, smoothgrad), [])
        except Exception as error:  # one bad element must not fail its whole batch
            logging.warning("gbp-audit: batch failed (%s); explaining its examples one by one",
                            error)
        return _explain_one_by_one(model, examples, smoothgrad)


def batch_window(result):
    """When the run's batch steps ran, from a finished run's committed metrics.

    Args:
        result: a Beam ``PipelineResult`` whose metrics can be queried (a finished run).

    Returns:
        ``(first started, last finished)``, unix seconds as floats, or None when no batch ran
        or the runner gives no committed distributions.
    """
    from apache_beam.metrics.metric import MetricsFilter

    def committed(name):
        query = MetricsFilter().with_namespace("gbp_audit").with_name(name)
        return [entry.committed for entry in result.metrics().query(query)["distributions"]
                if entry.committed is not None and entry.committed.count]

    try:
        starts, ends = committed(BATCH_STARTED_MS), committed(BATCH_FINISHED_MS)
    except Exception:  # noqa: BLE001 - a runner without metrics: no window, not an error
        return None
    if not starts or not ends:
        return None
    return (min(found.min for found in starts) / 1000.0,
            max(found.max for found in ends) / 1000.0)


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
