"""The optional sanity-check stage on a deterministic sample, explained exactly as the audit
explains (same config -> explainer mapping, same targets, same SmoothGrad seeds): cascading
model randomization, and the class-sensitivity check (the explained class's map against
another class's map)."""

import apache_beam as beam
import numpy as np

from pipeline.records import sample_key
from pipeline.tables import sanity as sanity_table


def check_inputs(config, examples):
    """What the sanity check explains, exactly as the audit does.

    Args:
        config: the RunConfig.
        examples: PreparedExamples of the sample.

    Returns:
        ``(examples, model, images, targets, explainer_for)``: the examples sorted by id, the
        loaded ``keras.Model``, float32 ``(N, H, W, C)`` inputs, int32 ``(N,)`` targets
        (-1: predicted) and the audit's ``keras.Model -> explainer`` mapping.
    """
    from pipeline import explainers

    examples = sorted(examples, key=lambda example: example.example_id)
    images = np.stack([example.image for example in examples])
    targets = np.array([example.target for example in examples], np.int32)
    return (examples, explainers.load_configured_model(config), images, targets,
            lambda model: explainers.explainer_for_model(config, model))


class RunSanityCheckDoFn(beam.DoFn):
    """A list of PreparedExamples -> ``sanity`` table rows."""

    def __init__(self, config):
        self._config = config

    def process(self, examples):
        if not examples:  # an input with no explainable record: no rows (not a crash)
            return
        from gbp_ops import class_sensitivity, sanity, seeds_from_ids

        config = self._config
        examples, model, images, targets, explainer_for = check_inputs(config, examples)
        # One explainer (one traced step) for both checks and every randomization depth.
        trained = explainer_for(model)
        seeds = seeds_from_ids([example.example_id for example in examples])
        rows = class_sensitivity.run_class_sensitivity_check(
            trained, images, targets, seeds=seeds, seed=config.sanity.seed,
            reduction=config.explain.reduction)
        rows += sanity.run_sanity_check(
            model, images, targets, explainer_for=lambda _model: trained,
            mode=config.sanity.mode, seed=config.sanity.seed,
            reduction=config.explain.reduction, depth_layers=config.sanity.depth, seeds=seeds)
        for row in rows:
            yield sanity_table.encode_row(row, examples[row["example_index"]].example_id)


class SanityCheck(beam.PTransform):
    """PreparedExamples -> sanity rows, on ``sanity.sample_size`` examples chosen by id hash."""

    def __init__(self, config):
        super().__init__()
        self._config = config

    def expand(self, examples):
        return (
            examples
            | "SampleByIdHash" >> beam.combiners.Top.Of(
                self._config.sanity.sample_size,
                key=lambda example: sample_key(example.example_id), reverse=True)
            | "RandomizeAndCompare" >> beam.ParDo(RunSanityCheckDoFn(self._config))
        )
