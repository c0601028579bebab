"""``explain.method`` and SmoothGrad end to end: the audit stores the configured method's maps
(checked against gbp_ops called directly with the example-id seeds), records the method in the
manifest, the Parquet metadata and the report, and the sanity stage adds class-sensitivity
rows whose verdict names the method."""

import numpy as np
import pandas as pd

import pipeline
from gbp_ops import make_explainer, seeds_from_ids
from tests.e2e import helpers

NUM_EXAMPLES = 12
SAMPLE = 4


def test_guided_gradcam_with_smoothgrad_end_to_end(tmp_path):
    arrays, _, model = helpers.shapes_inputs(tmp_path, NUM_EXAMPLES, seed=5, num_shards=2,
                                             model_seed=4)
    output = tmp_path / "out"
    manifest = helpers.run_demo_preset(
        str(tmp_path / "data" / "*.tfrecord"), str(tmp_path / "model.keras"), output,
        "explain.method=guided_gradcam", "explain.smoothgrad_samples=2",
        "explain.smoothgrad_sigma=0.1", "explain.batch_size=5", "output.map_dtype=float32",
        "sanity.enabled=true", f"sanity.sample_size={SAMPLE}", "sanity.depth=1",
        "findings.enabled=false")

    settings = {"smoothgrad_samples": 2, "smoothgrad_sigma": 0.1, "gradcam_layer": "relu6",
                "nonlinearity_rule": "refuse"}
    assert manifest["method"] == "guided_gradcam"
    assert manifest["method_settings"] == settings
    frame = pipeline.load_saliency(str(output)).sort_values("example_id")
    assert frame.attrs["gbp_audit"]["method"] == "guided_gradcam"
    assert frame.attrs["gbp_audit"]["method_settings"] == settings

    # The stored maps are the method's maps with each example's id as its noise seed.
    by_id = {str(i): index for index, i in enumerate(arrays["ids"])}
    images = np.stack([arrays["images"][by_id[i]] for i in frame.example_id]) / np.float32(255)
    explainer = make_explainer(model, "guided_gradcam", smoothgrad_samples=2,
                               smoothgrad_sigma=0.1, batch_size=3)
    expected = explainer.explain(images.astype(np.float32),
                                 seeds=seeds_from_ids(list(frame.example_id)))
    expected = np.abs(expected).max(axis=-1)
    stored = np.stack(frame.saliency.to_numpy())
    np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    assert np.abs(expected).max() > 0

    sanity_rows = pd.read_parquet(output / "sanity")
    by_check = sanity_rows.groupby("sanity_check").size().to_dict()
    assert by_check == {"class_sensitivity": SAMPLE, "randomization": SAMPLE}
    classes = sanity_rows[sanity_rows.sanity_check == "class_sensitivity"]
    assert (classes.target != classes.other_class).all()
    assert set(classes.other_class) <= {0, 1}
    verdict = manifest["sanity"]["verdict"]
    assert verdict.startswith("Method: guided_gradcam (Grad-CAM layer relu6) with SmoothGrad")
    assert "class explained" in verdict or "class-specific" in verdict
    entry = manifest["sanity"]["class_sensitivity"]
    assert entry["count"] == SAMPLE
    assert np.isclose(entry["spearman_mean"], np.nanmean(classes.spearman))
    report = (output / "report.html").read_text(encoding="utf-8")
    assert "guided_gradcam" in report and "explained class vs another class" in report
