"""The planted comparison of tests/e2e/test_compare.py (a model that learned the shortcut, one
retrained without it) and what its tests measure on the two trained models, in one place, so
that scripts/check_trained_test_margins.py measures the same quantities over training seeds
and kernels.

Figures come from the runs' tables, read with pandas, against the synthetic data's ground truth
(`findings_data.synthesize`'s ``has_mark``), and from Keras directly (``marked_flip_rate``).
"""

import json
import math

import numpy as np
import pandas as pd

from tests.e2e import findings_data, helpers

COUNT = 300
STRIPES = 1
PLANTED_SEED, CLEAN_SEED = 1, 2  # data seeds: with the shortcut, without it
SHORTCUT_MODEL_SEED, CLEAN_MODEL_SEED = 0, 1  # the suite's training seeds
BASE = ("source.box_key=null", "source.class_names=[dots, stripes]", "explain.batch_size=16",
        "sanity.enabled=false")


def argv(root, data, model, name, *extra):
    """The command line of a run of ``root / model`` on ``data``'s shards into ``root / name``
    (the demo preset with ``BASE`` and ``extra`` overrides)."""
    line = ["--config", helpers.DEMO_PRESET, "--set", f"source.pattern={data}/*.tfrecord",
            "--set", f"model.path={root / model}", "--output", str(root / name)]
    for override in (*BASE, *extra):
        line += ["--set", override]
    return line


def build(root, shortcut_model_seed=SHORTCUT_MODEL_SEED, clean_model_seed=CLEAN_MODEL_SEED):
    """Writes the planted data to ``root / 'data'``, trains ``shortcut.keras`` on it and
    ``clean.keras`` on data without the mark (each with its Keras seed), and runs the shortcut
    model into ``root / 'shortcut'`` (the first baseline). Returns the planted arrays."""
    from pipeline import cli

    arrays = findings_data.synthesize(COUNT, marked_share=0.3, seed=PLANTED_SEED)
    findings_data.write_shards(arrays, str(root / "data"))
    findings_data.train_model(arrays, str(root / "shortcut.keras"), seed=shortcut_model_seed)
    clean = findings_data.synthesize(COUNT, marked_share=0.0, seed=CLEAN_SEED)
    findings_data.train_model(clean, str(root / "clean.keras"), seed=clean_model_seed)
    assert cli.run(argv(root, root / "data", "shortcut.keras", "shortcut"))
    return arrays


def resolve_argv(root):
    """The clean model's run compared with the shortcut's (``root / 'clean'``)."""
    return argv(root, root / "data", "clean.keras", "clean",
                f"compare.baseline={root / 'shortcut'}", "compare.fail_on=[persisting_finding]")


def reverse_argv(root):
    """``gbp-audit compare`` of the clean run (baseline) with the shortcut's (current)."""
    return ["compare", str(root / "clean"), str(root / "shortcut"), "--output",
            str(root / "reverse"), "--set", "compare.fail_on=[new_finding]"]


def marked_flip_rate(model_path, arrays):
    """Independent of the pipeline: the share of marked images whose predicted class changes
    when the mark's pixels are covered with each image's mean colour (Keras directly)."""
    import keras

    model = keras.models.load_model(model_path)
    images = arrays["images"][arrays["has_mark"]].astype(np.float32) / 255.0
    covered = images.copy()
    y0, x0, y1, x1 = findings_data.MARK
    covered[:, y0:y1, x0:x1] = images.mean(axis=(1, 2), keepdims=True)
    before = model.predict(images, verbose=0).argmax(axis=1)
    after = model.predict(covered, verbose=0).argmax(axis=1)
    return float(np.mean(before != after))


def resolved(output, exit_code):
    """What test_retraining_without_the_shortcut_resolves_the_finding (and the tests that
    re-read its comparison) need of the comparison in ``output``:

    - ``stripes_findings`` / ``other_findings``: comparison_findings rows of class stripes /
      of the other class (the tests expect exactly one stripes row, the planted shortcut);
    - ``stripes_resolved``: 1 when every stripes row is ``resolved`` and proven, else 0;
    - ``occluded_examples``, ``current_flip_rate``, ``baseline_flip_rate``: the stripes row's
      (the least / the most over rows when several);
    - ``baseline_region_overhang``: the least distance (normalised) by which the baseline
      region reaches past the mark on any side (negative: it misses part of the mark);
    - ``names_the_lower_right``: 1 when the sentence starts "stripes: the lower-right shortcut
      is resolved", else 0;
    - ``exit_ok``: 1 when the run exited 0 (``compare.fail_on=[persisting_finding]``).
    """
    findings = pd.read_parquet(output / "comparison_findings")
    stripes = findings[findings.target == STRIPES]
    values = {"stripes_findings": float(len(stripes)),
              "other_findings": float(len(findings) - len(stripes)),
              "stripes_resolved": float(len(stripes) > 0 and (stripes.status == "resolved").all()
                                        and bool(stripes.proven.all())),
              "occluded_examples": math.nan, "current_flip_rate": math.nan,
              "baseline_flip_rate": math.nan, "baseline_region_overhang": math.nan,
              "names_the_lower_right": 0.0, "exit_ok": float(exit_code == 0)}
    if not len(stripes):
        return values
    regions = [region for region in stripes.baseline_region if region is not None]
    overhang = math.nan  # a row with no baseline region (a new finding) misses the mark
    if len(regions) == len(stripes):
        regions = np.stack(regions).astype(np.float64)
        box = np.array(findings_data.MARK, np.float64) / findings_data.SIZE
        overhang = np.concatenate([box[:2] - regions[:, :2], regions[:, 2:] - box[2:]], axis=1)
    values.update({
        "occluded_examples": _extreme(stripes.occluded_examples, min),
        "current_flip_rate": _extreme(stripes.current_flip_rate, max),
        "baseline_flip_rate": _extreme(stripes.baseline_flip_rate, min),
        "baseline_region_overhang": float(np.min(overhang)),
        "names_the_lower_right": float(stripes.sentence.str.startswith(
            "stripes: the lower-right shortcut is resolved").all()),
    })
    return values


def _extreme(column, pick):
    """``pick`` (min or max) of a column's values as a float; NaN when any is null."""
    values = pd.to_numeric(column, errors="coerce").astype(float)
    return math.nan if values.isna().any() else float(pick(values))


def marked_flip_rates(root, arrays):
    """``shortcut`` / ``clean``: ``marked_flip_rate`` of the two models."""
    return {"shortcut": marked_flip_rate(root / "shortcut.keras", arrays),
            "clean": marked_flip_rate(root / "clean.keras", arrays)}


def new_finding(output, exit_code):
    """What test_the_reverse_is_a_new_finding_and_exits_3_after_writing_everything needs of the
    comparison in ``output``: ``new_stripes`` / ``new_other`` (rows of status ``new`` per
    class), ``new_current_flip_rate`` (the least over the stripes ones), ``exit_3`` (1 when
    the command exited 3, compare.fail_on holding)."""
    findings = pd.read_parquet(output / "comparison_findings")
    new = findings[findings.status == "new"]
    stripes = new[new.target == STRIPES]
    manifest = json.loads((output / "manifest.json").read_text())
    failed = manifest["comparison"]["failed"]
    return {"new_stripes": float(len(stripes)), "new_other": float(len(new) - len(stripes)),
            "new_current_flip_rate": _extreme(stripes.current_flip_rate, min)
            if len(stripes) else math.nan,
            "exit_3": float(exit_code == 3 and [f["condition"] for f in failed] == ["new_finding"])}
