"""The RunInference model handler: one guided model per worker process, one GBP step per batch."""

import logging
import os
import tempfile
import threading

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from pipeline import paths
from pipeline.records import STAGE_EXPLAIN, DeadLetter

# Distinct explainer objects this process has counted in the `models_built` metric; local
# runs have several bundle threads sharing one explainer, hence the lock.
_COUNTED_EXPLAINERS = set()
_COUNTED_LOCK = threading.Lock()


def configure_gpus():
    """Turns on GPU memory growth: several SDK processes on one VM share each GPU."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process; nothing to change
            pass


def configure_threads(intra_op_threads):
    """Caps TF's intra-op threads in this process, if TF has not started its thread pools."""
    if not intra_op_threads:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
    except RuntimeError:  # TF already ran ops here; TF_NUM_INTRAOP_THREADS covers spawned workers
        logging.info("gbp-audit: TF already initialised; intra-op threads left as they are")


def localize_model(path):
    """Returns a local copy of ``path`` (read through Beam FileSystems) for Keras to open.

    Remote models are copied once per machine into a temp folder named by a hash of the path,
    size and modification time, so a replaced model file is fetched again.
    """
    if os.path.exists(path):
        return path
    import hashlib

    from apache_beam.io.filesystems import FileSystems

    metadata = FileSystems.match([path])[0].metadata_list[0]
    identity = f"{path}|{metadata.size_in_bytes}|{metadata.last_updated_in_seconds}"
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
    local_dir = os.path.join(tempfile.gettempdir(), f"gbp-model-{digest}")
    local_path = os.path.join(local_dir, paths.basename(path))
    if not os.path.exists(local_path):
        os.makedirs(local_dir, exist_ok=True)
        partial = f"{local_path}.{os.getpid()}.partial"
        with open(partial, "wb") as handle:
            handle.write(paths.read_bytes(path))
        os.replace(partial, local_path)  # atomic: concurrent workers never see half a file
    return local_path


def build_explainer(config):
    """Loads the model a RunConfig names and builds its GuidedBackprop (module level so tests
    can swap it).

    Returns:
        A ``gbp_ops.GuidedBackprop`` compiled for ``config.explain.batch_size``.
    """
    import gbp_ops

    configure_gpus()
    configure_threads(config.explain.worker_intra_op_threads)
    model = gbp_ops.load_model(localize_model(config.model.path), safe_mode=config.model.safe_mode)
    explainer = gbp_ops.GuidedBackprop(
        model,
        batch_size=config.explain.batch_size,
        strip_final_activation=config.model.strip_final_activation,
        allow_unguided=config.model.allow_unguided,
        layer_name=config.model.layer_name,
        reduction=config.explain.reduction,
    )
    logging.info("gbp-audit: built guided model (pid %d, %d guided ReLUs)", os.getpid(),
                 len(explainer.guided_sites))
    return explainer


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

    def load_model(self):
        return build_explainer(self._config)

    def get_metrics_namespace(self):
        return "gbp_audit"

    def run_inference(self, batch, model, inference_args=None):
        """Args: batch: PreparedExamples. Returns: a one-element list holding an ExplainedBatch."""
        with _COUNTED_LOCK:
            first_use = id(model) not in _COUNTED_EXPLAINERS
            _COUNTED_EXPLAINERS.add(id(model))
        if first_use:
            beam.metrics.Metrics.counter("gbp_audit", "models_built").inc()
        beam.metrics.Metrics.counter("gbp_audit", "batches_explained").inc()
        examples = list(batch)
        try:
            explanation = _explain(model, examples)
            return [ExplainedBatch(examples, explanation, [])]
        except Exception as error:  # one bad element must not fail its whole batch
            logging.warning("gbp-audit: batch failed (%s); explaining its examples one by one",
                            error)
        return [_explain_one_by_one(model, examples)]


def _explain(model, examples):
    images = np.stack([example.image for example in examples])
    targets = np.array([example.target for example in examples], np.int32)
    return model.explain_with_outputs(images, targets)


def _explain_one_by_one(model, examples):
    kept, parts, dead_letters = [], [], []
    for example in examples:
        try:
            parts.append(_explain(model, [example]))
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
