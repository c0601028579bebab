"""Which input scaling the run uses and how that was decided, checked in preflight.

1. The model's own input layer (``gbp_ops.input_scaling``): a ``Rescaling`` or
   ``Normalization`` that takes raw pixels requires ``preprocess.scaling: raw``; any other
   scaling would be applied twice, and preflight refuses it.
2. With labels, the accuracy of the first ``SAMPLE_SIZE`` labelled examples (prepared by the
   pipeline's own code, in read order) is measured under every scaling the model can take. The
   configured scaling is refused when another one is clearly more accurate: by at least
   ``MIN_GAIN`` (absolute) on at least ``MIN_SAMPLE`` examples, and by a paired sign test
   (McNemar's z over the examples the two scalings disagree on) of at least ``MIN_Z``, so a
   model that guesses does not trip it. The configured scaling is measured first, and the
   others only when it could lose (accuracy <= 1 - ``MIN_GAIN``); each of them is predicted
   first on the examples the configured scaling got wrong (the only ones where it can gain),
   and on the rest only when it could still be clearly better (``measure``).
   ``preprocess.scaling_check: false`` turns it off.
3. Otherwise the run cannot know: the manifest and the report say the scaling was configured
   and not checked.

Prediction confidence is no guide (a model fed [0, 255] can be the most confident and the
most wrong), so it is not used.
"""

import dataclasses
import itertools
import math

import numpy as np

SAMPLE_SIZE = 64
MIN_SAMPLE = 32
MIN_GAIN = 0.15
MIN_Z = 3.0
MAX_READS = SAMPLE_SIZE * 10  # a dataset of broken records ends the search

DOUBLE_SCALING = (
    "model '{model}' scales its own inputs (its first layer '{layer}' is a {kind}: {detail}, "
    "which takes pixels in [0, 255]), so preprocess.scaling={scaling} would scale them twice; "
    "set preprocess.scaling=raw"
)
WRONG_SCALING = (
    "preprocess.scaling={scaling} looks wrong for model '{model}': on the first {count} "
    "labelled examples it predicts {accuracy:.0%} of the labels ({right}/{count}), "
    "preprocess.scaling={best} {best_accuracy:.0%} ({best_right}/{count}) (all: {table}); set "
    "preprocess.scaling={best}, or preprocess.scaling_check=false to keep {scaling}"
)

LEFT_OUT = (" ({names}: predicted on the {wrong} examples {scaling} got wrong, and right on too "
            "few of them to be clearly better whatever the rest)")


class ScalingError(ValueError):
    """The configured scaling contradicts the model; the message gives the evidence."""


def candidate_scalings(channels):
    """The scalings a model with ``channels`` input channels can take (``caffe`` needs 3)."""
    from pipeline.config import SCALINGS

    return tuple(name for name in SCALINGS if channels == 3 or name != "caffe")


def labelled_sample(config, input_shape):
    """Up to ``SAMPLE_SIZE`` labelled examples in read order, prepared with ``raw`` scaling.

    Returns:
        ``(float32 (N, H, W, C) pixels in [0, 255], int64 (N,) labels)``.
    """
    from pipeline.records import PreparedExample
    from pipeline.stages.preprocess import PrepareExamplesDoFn
    from pipeline.stages.read import ReadSource

    raw = dataclasses.replace(
        config, preprocess=dataclasses.replace(config.preprocess, scaling="raw"),
        explain=dataclasses.replace(config.explain, target="predicted"))
    prepare = PrepareExamplesDoFn(raw, input_shape)
    prepare.setup()
    images, labels = [], []
    for record in itertools.islice(ReadSource(config.source).records(), MAX_READS):
        for item in prepare.process(record):
            if isinstance(item, PreparedExample) and item.label is not None:
                images.append(item.image)
                labels.append(item.label)
        if len(images) >= SAMPLE_SIZE:
            break
    if not images:
        return np.zeros((0, *input_shape), np.float32), np.zeros(0, np.int64)
    return np.stack(images), np.asarray(labels, np.int64)


def measure(explainer, pixels, labels, configured=None):
    """``{scaling: bool (N,) correct}`` for each candidate scaling measured on the whole
    sample (forward passes only); without ``configured``, every candidate in order.

    ``configured`` is measured first. When its accuracy exceeds ``1 - MIN_GAIN`` no other
    scaling can gain ``MIN_GAIN`` on it, so the others are not measured: a well-scaled,
    accurate model pays one forward pass of the sample, not one per scaling. Otherwise each
    other scaling is predicted first on the examples ``configured`` got wrong, the only ones
    where it can be right alone. If it would not be ``clearly_better`` even when right on
    every remaining example (its best case: gain and z only fall with each example it gets
    wrong there), it cannot be the scaling that refuses ``configured`` and is left out;
    else it is predicted on the rest too. The decision is the one every scaling measured in
    full would give: a left-out scaling gains less than ``MIN_GAIN`` or has too low a z, so
    it is either not the most accurate or not clearly better.
    """
    names = candidate_scalings(explainer.input_shape[-1])
    if configured not in names:
        return {name: _hits(explainer, pixels, labels, name) for name in names}
    correct = {configured: _hits(explainer, pixels, labels, configured)}
    if correct[configured].mean() > 1 - MIN_GAIN:
        return correct
    wrong = ~correct[configured]
    for name in names:
        if name == configured:
            continue
        hits = np.ones(len(labels), bool)  # the best case where configured was right
        hits[wrong] = _hits(explainer, pixels[wrong], labels[wrong], name)
        if clearly_better({configured: correct[configured], name: hits}, configured, name):
            hits[~wrong] = _hits(explainer, pixels[~wrong], labels[~wrong], name)
            correct[name] = hits
    return correct


def _hits(explainer, pixels, labels, scaling):
    """bool ``(n,)``: the model predicts each label right with ``scaling``."""
    from pipeline.images import scale_pixels

    if not len(labels):
        return np.zeros(0, bool)
    return explainer.predict(scale_pixels(pixels, scaling).astype(np.float32)) == labels


def clearly_better(correct, configured, other):
    """Whether ``other`` beats ``configured`` by the module's rule (gain and paired z)."""
    count = len(correct[configured])
    gain = correct[other].mean() - correct[configured].mean() if count else 0.0
    only_other = int(np.sum(correct[other] & ~correct[configured]))
    only_configured = int(np.sum(correct[configured] & ~correct[other]))
    disagreements = only_other + only_configured
    z = (only_other - only_configured) / math.sqrt(disagreements) if disagreements else 0.0
    return count >= MIN_SAMPLE and gain >= MIN_GAIN and z >= MIN_Z


def decide(config, explainer):
    """Checks the configured scaling against the model; returns the manifest's
    ``input_scaling`` field: ``scaling``, ``decided_by`` (words), and, when measured,
    ``accuracy`` per scaling and ``sample_size``.

    Raises:
        ScalingError: the model scales its own inputs but the config scales them too, or a
            measured scaling is clearly more accurate than the configured one.
    """
    scaling = config.preprocess.scaling
    model = config.model.path
    declared = getattr(explainer, "input_scaling", None)
    field = {"scaling": scaling}
    if declared is not None:
        field["model_layer"] = f"{declared.layer}: {declared.kind} ({declared.detail})"
    if declared is not None and declared.takes_raw_pixels and scaling != "raw":
        raise ScalingError(DOUBLE_SCALING.format(model=model, layer=declared.layer,
                                                 kind=declared.kind, detail=declared.detail,
                                                 scaling=scaling))
    if declared is not None and declared.takes_raw_pixels:
        field["decided_by"] = (f"the model's first layer '{declared.layer}' ({declared.kind}) "
                               "scales raw pixels itself")
        return field
    if not config.preprocess.scaling_check:
        field["decided_by"] = "configured; the accuracy check is off (preprocess.scaling_check)"
        return field
    if not config.source.label_key:
        field["decided_by"] = "configured; not checked (no labels: source.label_key is null)"
        return field
    pixels, labels = labelled_sample(config, explainer.input_shape)
    if len(labels) < MIN_SAMPLE:
        field["decided_by"] = (f"configured; not checked (only {len(labels)} labelled examples "
                               f"among the first records, fewer than {MIN_SAMPLE})")
        return field
    correct = measure(explainer, pixels, labels, configured=scaling)
    field["accuracy"] = {name: round(float(hits.mean()), 4) for name, hits in correct.items()}
    field["sample_size"] = len(labels)
    others = [name for name in correct if name != scaling]
    best = max(others, key=lambda name: correct[name].mean()) if others else None
    if scaling in correct and best and clearly_better(correct, scaling, best):
        raise ScalingError(WRONG_SCALING.format(
            scaling=scaling, model=model, count=len(labels),
            accuracy=correct[scaling].mean(), right=int(correct[scaling].sum()), best=best,
            best_accuracy=correct[best].mean(), best_right=int(correct[best].sum()),
            table=", ".join(f"{name} {hits.mean():.2f}" for name, hits in correct.items())))
    field["decided_by"] = _verdict(correct, scaling, candidate_scalings(
        explainer.input_shape[-1])) if scaling in correct else "configured"
    return field


def _verdict(correct, scaling, candidates):
    """``decided_by`` for an accepted, measured ``scaling``."""
    accuracy = correct[scaling].mean()
    words = (f"configured; checked on {len(correct[scaling])} labelled examples: accuracy "
             f"{accuracy:.2f}, ")
    if accuracy > 1 - MIN_GAIN:
        return words + f"no other scaling can be {MIN_GAIN:.0%} more accurate"
    left_out = [name for name in candidates if name not in correct]
    if not left_out:
        return words + "no scaling clearly better"
    return words + "no scaling clearly better" + LEFT_OUT.format(
        names=", ".join(left_out), scaling=scaling, wrong=int(np.sum(~correct[scaling])))
