"""explain.precision=auto end to end: on a host without native bfloat16 a run computes in float32
and says why in manifest.json and the report; on a native host (the host's answer given to
preflight) bfloat16's fidelity is measured on the run's sample and decides."""

import json
import re

import numpy as np
import pytest
import tensorflow as tf

from gbp_ops import GuidedBackprop, make_explainer
from gbp_ops.precision_choice import HostPrecision
from pipeline import config, explainers
from pipeline.launch import preflight
from tests.e2e import helpers

NUM_EXAMPLES = 8
SAMPLE = 6


def _native_bf16_here():
    """Independently of gbp_ops: a bf16 CPU flag in /proc/cpuinfo, or any GPU at all."""
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        flags = re.search(r"\b(avx512_bf16|amx_bf16)\b", handle.read())
    return bool(flags) or bool(tf.config.list_physical_devices("GPU"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("auto")
    arrays, _, model = helpers.shapes_inputs(root, NUM_EXAMPLES, seed=5, num_shards=2,
                                             model_seed=3)
    return {"arrays": arrays, "model": model, "root": root,
            "pattern": str(root / "data" / "*.tfrecord"), "model_path": str(root / "model.keras")}


def test_auto_on_this_host_runs_in_float32_and_records_why(inputs, tmp_path):
    if _native_bf16_here():
        pytest.skip("this host computes bfloat16 natively; the other tests cover that answer")
    output = tmp_path / "out"
    returned = helpers.run_demo_preset(inputs["pattern"], inputs["model_path"], output,
                                       "explain.precision=auto", "explain.batch_size=4",
                                       "output.map_dtype=float32")
    with open(output / "manifest.json", encoding="utf-8") as handle:
        manifest = json.load(handle)
    choice = manifest["precision_choice"]
    assert choice["requested"] == "auto" and choice["precision"] == "float32"
    assert choice["reason"].startswith("this host does not compute bfloat16 natively (no ")
    assert manifest["config"]["explain"]["precision"] == "auto"  # as the user asked
    assert "fidelity" not in manifest  # nothing to measure without native bf16
    assert manifest["counts"]["saliency_rows"] == NUM_EXAMPLES
    with open(returned["report"], encoding="utf-8") as handle:
        page = handle.read()
    assert "float32, chosen by explain.precision=auto: this host does not compute" in page

    # The maps are float32 maps: those of gbp_ops' float32 explainer on the same images.
    import pipeline

    saliency = pipeline.load_saliency(str(output)).set_index("example_id")
    arrays = inputs["arrays"]
    images = (arrays["images"] / 255.0).astype(np.float32)
    maps = np.abs(GuidedBackprop(inputs["model"], batch_size=4).explain(images)).max(axis=-1)
    for index, example_id in enumerate(arrays["ids"]):
        stored = saliency.loc[str(example_id)].saliency
        np.testing.assert_allclose(stored, maps[index], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("min_fidelity, chosen", [(1.01, "float32"), (-1.0, "mixed_bfloat16")])
def test_auto_on_a_native_host_decides_by_the_measured_fidelity(inputs, tmp_path, min_fidelity,
                                                                 chosen):
    run_config = config.load_config(helpers.DEMO_PRESET, [
        f"source.pattern={inputs['pattern']}", f"model.path={inputs['model_path']}",
        f"output.path={tmp_path / 'out'}", "explain.precision=auto", "explain.batch_size=4",
        f"explain.fidelity_sample={SAMPLE}", f"explain.min_fidelity={min_fidelity}",
        "sanity.enabled=false", "findings.enabled=false"])
    host = HostPrecision(True, "CPU flag avx512_bf16")
    plan = preflight.preflight(run_config, host=host)

    assert plan.config.explain.precision == chosen
    choice = plan.manifest_base["precision_choice"]
    fidelity = plan.manifest_base["fidelity"]  # bf16 against float32, measured on the sample
    assert fidelity["precision"] == "mixed_bfloat16" and fidelity["sample_size"] == SAMPLE
    assert choice == {"requested": "auto", "precision": chosen, "host": host.detail,
                      "reason": choice["reason"]}
    measured = f"mean Spearman {fidelity['mean_spearman']:.3f}"
    assert measured in choice["reason"]
    assert f"explain.min_fidelity={min_fidelity:g}" in choice["reason"]
    assert ("below" in choice["reason"]) is (chosen == "float32")
    assert plan.manifest_base["config"]["explain"]["precision"] == "auto"

    # The run's explainer (built by preflight, reused by a local run) computes in the choice.
    images = (inputs["arrays"]["images"][:4] / 255.0).astype(np.float32)
    run_maps = explainers.shared_explainer(plan.config).explain(images)
    expected = make_explainer(inputs["model"], batch_size=4, precision=chosen,
                              reduction="max_abs").explain(images)
    np.testing.assert_allclose(run_maps, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
