"""How faithful a reduced-precision explainer is: its maps against float32 maps on a sample,
measured in preflight, before the pipeline starts.

The sample is deterministic: the first ``explain.fidelity_sample`` records that prepare
cleanly, read in the pipeline's order of the sorted TFRecord shard list (each shard from its
start) or in the TFDS split's order, and prepared by the pipeline's own code. Both explainers
explain each example's audit target (its predicted class, its label or the fixed class, each
under its own forward pass, as the run would), with the audit's SmoothGrad seeds.
"""

import dataclasses
import itertools

import numpy as np

from gbp_ops.precision import PRECISION_FLOAT32

# The share of a map's pixels, highest |value| first, whose overlap between the two maps is
# reported (the pixels a reader looks at).
TOP_SHARE = 0.05
# Records read at most per sampled example, so a dataset of broken records ends the search.
MAX_READS_PER_EXAMPLE = 10
NO_SAMPLE = (
    "explain.precision={precision}: none of the first {reads} records could be prepared, so "
    "its fidelity to float32 cannot be measured; check the input or use float32"
)


class FidelityError(ValueError):
    """The sample for the fidelity check could not be read; the message says why (preflight
    reports it as a PreflightError)."""


def sample_examples(config, input_shape):
    """The fidelity sample: up to ``explain.fidelity_sample`` PreparedExamples, in read order
    (see the module docstring).

    Raises:
        FidelityError: none of the records read could be prepared.
    """
    from pipeline.records import PreparedExample
    from pipeline.stages.preprocess import PrepareExamplesDoFn
    from pipeline.stages.read import ReadSource

    size = config.explain.fidelity_sample
    prepare = PrepareExamplesDoFn(config, input_shape)
    prepare.setup()
    limit = size * MAX_READS_PER_EXAMPLE
    examples, reads = [], 0
    for record in itertools.islice(ReadSource(config.source).records(), limit):
        reads += 1
        # A record that fails to prepare is a dead letter in the run; the sample skips it.
        examples += [item for item in prepare.process(record)
                     if isinstance(item, PreparedExample)]
        if len(examples) == size:
            break
    if not examples:
        raise FidelityError(NO_SAMPLE.format(precision=config.explain.precision, reads=reads))
    return examples


def top_share_overlap(a, b, share=TOP_SHARE):
    """Per map, the share of the top-``share`` pixels of ``|a|`` that are also among the top
    ones of ``|b|`` (intersection over the top set; ties broken by pixel order).

    Args:
        a: float ``(N, H, W)`` maps.
        b: float ``(N, H, W)`` maps.

    Returns:
        float64 ``(N,)`` in [0, 1].
    """
    a, b = _magnitudes(a), _magnitudes(b)
    count = max(1, int(np.ceil(share * a.shape[1])))
    return (_top_set(a, count) & _top_set(b, count)).sum(axis=1) / count


def _top_set(values, count):
    """bool ``(N, P)``: the ``count`` largest values of each row, ties to the lower index (as
    a stable sort of ``-values`` orders them), found by partition rather than a full sort."""
    size = values.shape[1]
    kth = np.partition(values, size - count, axis=1)[:, size - count][:, None]
    above = values > kth
    tied = values == kth
    room = count - above.sum(axis=1, keepdims=True)
    return above | (tied & (np.cumsum(tied, axis=1) <= room))


def _magnitudes(maps):
    """``|maps|`` flat per map: float32 stays float32 (it sorts faster and ranks the same)."""
    maps = np.asarray(maps)
    maps = maps if maps.dtype == np.float32 else maps.astype(np.float64)
    return np.abs(maps).reshape(len(maps), -1)


def map_spearman(a, b):
    """Per-map Spearman of ``|a|`` and ``|b|`` (``gbp_ops.similarity``), with the cases it
    leaves NaN settled: identical maps 1, a constant map against a varying one 0.

    Returns:
        float64 ``(N,)``.
    """
    from gbp_ops.similarity import spearman_rank_correlation

    values = spearman_rank_correlation(a, b)
    same = np.all(_magnitudes(a) == _magnitudes(b), axis=1)
    return np.where(np.isnan(values), np.where(same, 1.0, 0.0), values)


def compare(reference, reduced):
    """Fidelity fields of two ``gbp_ops.Explanation``s of the same examples: float32
    ``reference`` and ``reduced`` precision; maps ``(N, H, W)`` or ``(N, H, W, C)`` (channels
    are reduced by max |value| first)."""
    from gbp_ops.maps import reduced_maps

    maps = [reduced_maps(m, "max_abs") for m in (reference.maps, reduced.maps)]
    spearman = map_spearman(*maps)
    return {
        "mean_spearman": round(float(spearman.mean()), 6),
        "min_spearman": round(float(spearman.min()), 6),
        "top5_overlap": round(float(top_share_overlap(*maps).mean()), 6),
        "predicted_agreement": round(float(np.mean(reference.predicted == reduced.predicted)), 6),
    }


def float32_explainer(config):
    """The run's explainer, built in float32 from a fresh load of the model."""
    from pipeline import explainers

    float32 = dataclasses.replace(
        config, explain=dataclasses.replace(config.explain, precision=PRECISION_FLOAT32))
    return explainers.explainer_for_model(float32, explainers.load_configured_model(config))


def measure(config, explainer, input_shape):
    """The manifest's ``fidelity`` field for a reduced-precision run.

    Args:
        config: the RunConfig (``explain.precision`` not float32).
        explainer: the run's (reduced-precision) explainer.
        input_shape: the model input ``(H, W, C)``.

    Returns:
        A JSON-ready dict: precision, sample_size, how the sample was chosen, mean and min
        per-image Spearman, mean top-5%-pixel overlap, predicted-class agreement, the
        threshold ``min_fidelity`` and ``summary``, all of it in one line (what the report
        prints).
    """
    from gbp_ops import seeds_from_ids

    examples = sample_examples(config, input_shape)
    images = np.stack([example.image for example in examples])
    targets = np.array([example.target for example in examples], np.int32)
    seeds = seeds_from_ids([example.example_id for example in examples])
    reference = float32_explainer(config).explain_with_outputs(images, targets, seeds)
    reduced = explainer.explain_with_outputs(images, targets, seeds)
    measured = {
        "precision": config.explain.precision,
        "sample_size": len(examples),
        "sample": "first prepared records in read order (sorted shards / TFDS split order)",
        **compare(reference, reduced),
        "min_fidelity": config.explain.min_fidelity,
    }
    return {**measured, "summary": fidelity_summary(measured)}


def fidelity_summary(fidelity):
    """One line on the measured fidelity (``measure``'s dict), kept in the manifest's
    ``fidelity`` field as ``summary`` for the report."""
    return (f"{fidelity['precision']}: mean Spearman {fidelity['mean_spearman']:.3f} (min "
            f"{fidelity['min_spearman']:.3f}), top-5% pixel overlap "
            f"{fidelity['top5_overlap']:.3f}, same predicted class "
            f"{fidelity['predicted_agreement']:.0%}, against float32 maps on "
            f"{fidelity['sample_size']} examples (threshold {fidelity['min_fidelity']:g})")
