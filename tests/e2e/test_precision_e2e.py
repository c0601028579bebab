"""explain.precision end to end: a mixed_bfloat16 run records in its manifest the fidelity
of its maps to float32 on the documented sample (recomputed here independently: records
read with tf.data, maps from gbp_ops directly, Spearman with scipy, the top-5% sets with
numpy), shows it in the report, and a run whose min_fidelity cannot be met stops before the
pipeline with the documented one-line error and no tables."""

import glob

import numpy as np
import scipy.stats
import tensorflow as tf

from demo.assets import FEATURE_SPEC, ID_KEY
from gbp_ops import GuidedBackprop, make_explainer
from pipeline import cli
from tests.e2e import helpers

NUM_EXAMPLES = 14
SAMPLE = 6


def _write_inputs(tmp_path):
    arrays, _, model = helpers.shapes_inputs(tmp_path, NUM_EXAMPLES, seed=7, num_shards=3,
                                             model_seed=2)
    return arrays, model, str(tmp_path / "data" / "*.tfrecord"), str(tmp_path / "model.keras")


def _first_ids(pattern, count):
    """The ids of the first ``count`` records of the sorted shards, read with tf.data."""
    files = sorted(glob.glob(pattern))
    ids = []
    for serialized in tf.data.TFRecordDataset(files).take(count):
        features = tf.io.parse_single_example(serialized, FEATURE_SPEC)
        ids.append(features[ID_KEY].numpy().decode("utf-8"))
    return ids


def test_bfloat16_run_records_its_fidelity(tmp_path):
    arrays, model, pattern, model_path = _write_inputs(tmp_path)
    manifest = helpers.run_demo_preset(
        pattern, model_path, tmp_path / "out", "explain.precision=mixed_bfloat16",
        f"explain.fidelity_sample={SAMPLE}", "explain.min_fidelity=0.5",
        "explain.batch_size=4", "findings.enabled=false")
    assert manifest["counts"]["saliency_rows"] == NUM_EXAMPLES

    by_id = {str(i): index for index, i in enumerate(arrays["ids"])}
    ids = _first_ids(pattern, SAMPLE)
    images = (np.stack([arrays["images"][by_id[i]] for i in ids]) / 255.0).astype(np.float32)
    reference = GuidedBackprop(model, batch_size=4).explain_with_outputs(images)
    reduced = make_explainer(model, batch_size=4, precision="mixed_bfloat16").explain(images)
    a, b = np.abs(reference.maps).max(axis=-1), np.abs(reduced).max(axis=-1)
    rho = [scipy.stats.spearmanr(x.ravel(), y.ravel())[0] for x, y in zip(a, b)]
    count = int(np.ceil(0.05 * a[0].size))
    overlap = [len(set(np.argsort(-x.ravel(), kind="stable")[:count])
                   & set(np.argsort(-y.ravel(), kind="stable")[:count])) / count
               for x, y in zip(a, b)]

    fidelity = manifest["fidelity"]
    assert fidelity["precision"] == "mixed_bfloat16" and fidelity["sample_size"] == SAMPLE
    assert fidelity["min_fidelity"] == 0.5
    assert np.isclose(fidelity["mean_spearman"], np.mean(rho), atol=2e-3)
    assert np.isclose(fidelity["min_spearman"], np.min(rho), atol=5e-3)
    assert np.isclose(fidelity["top5_overlap"], np.mean(overlap), atol=0.05)
    assert 0.5 < fidelity["mean_spearman"] < 1.0  # bf16 maps are close, not equal
    with open(manifest["report"], encoding="utf-8") as handle:
        page = handle.read()
    assert "mixed_bfloat16" in page and f"{fidelity['mean_spearman']:.3f}" in page


def test_unreachable_min_fidelity_fails_before_the_pipeline(tmp_path, capsys):
    _, _, pattern, model_path = _write_inputs(tmp_path)
    output = tmp_path / "out"
    code = cli.main(["--config", helpers.DEMO_PRESET, "--set", f"source.pattern={pattern}",
                     "--set", f"model.path={model_path}", "--output", str(output),
                     "--set", "explain.precision=mixed_bfloat16",
                     "--set", f"explain.fidelity_sample={SAMPLE}",
                     "--set", "explain.min_fidelity=1.01", "--set", "sanity.enabled=false",
                     "--set", "findings.enabled=false"])
    error = capsys.readouterr().err.strip()
    assert code == cli.EXIT_USAGE
    assert len(error.splitlines()) == 1, error
    assert error.startswith(
        "gbp-audit: error: explain.precision=mixed_bfloat16 is not faithful enough on this "
        "model: mean Spearman 0.")
    assert error.endswith(
        f"between its maps and float32 maps on {SAMPLE} examples, below "
        "explain.min_fidelity=1.01; use float32 or lower min_fidelity")
    assert not (output / "saliency").exists() and not (output / "manifest.json").exists()
    assert not glob.glob(str(output / "*" / "*.parquet"))
