"""The optional sanity-check stage: cascading model randomization on a deterministic sample."""

import hashlib

import apache_beam as beam
import numpy as np


def _sample_key(example):
    """A stable pseudo-random key, so the same inputs always give the same sample."""
    return hashlib.sha1(example.example_id.encode("utf-8")).hexdigest()


class RunSanityCheckDoFn(beam.DoFn):
    """A list of PreparedExamples -> sanity rows (``schema.SANITY_SCHEMA`` dicts)."""

    def __init__(self, config):
        self._config = config

    def process(self, examples):
        import tensorflow as tf

        from gbp_ops import load_model, sanity
        from pipeline.model_handler import localize_model

        config = self._config
        examples = sorted(examples, key=lambda example: example.example_id)
        model = load_model(localize_model(config.model.path), safe_mode=config.model.safe_mode)
        images = np.stack([example.image for example in examples])
        logger = tf.get_logger()
        previous_level = logger.level
        logger.setLevel("ERROR")  # every depth traces its own explainer, by design
        try:
            rows = sanity.run_sanity_check(
                model, images, batch_size=config.explain.batch_size, mode=config.sanity.mode,
                seed=config.sanity.seed, reduction=config.explain.reduction,
                depth_layers=config.sanity.depth,
                explainer_kwargs={"strip_final_activation": config.model.strip_final_activation,
                                  "allow_unguided": config.model.allow_unguided})
        finally:
            logger.setLevel(previous_level)
        for row in rows:
            row["example_id"] = examples[row.pop("example_index")].example_id
            yield row


class SanityCheck(beam.PTransform):
    """PreparedExamples -> sanity rows, on ``sanity.sample_size`` examples chosen by id hash."""

    def __init__(self, config):
        super().__init__()
        self._config = config

    def expand(self, examples):
        return (
            examples
            | "SampleByIdHash" >> beam.combiners.Top.Of(self._config.sanity.sample_size,
                                                      key=_sample_key, reverse=True)
            | "RandomizeAndCompare" >> beam.ParDo(RunSanityCheckDoFn(self._config))
        )
