"""``explain.nonlinearity_rule: gate`` end to end on a swish CNN: the stored maps equal the
independent numpy reference of the gate rule, the manifest and the report name the rule and
count the gated sites, and the sanity checks run because the rule turned them on."""

import keras
import numpy as np
import pandas as pd

import pipeline
from tests.e2e import helpers
from tests.gbp_ops.gate_models import seeded_weights
from tests.gbp_ops.numpy_reference import numpy_backprop

NUM_EXAMPLES = 10
SAMPLE = 4


def _swish_model(path):
    size = helpers.IMAGE_SIZE
    model = keras.Sequential([
        keras.Input((size, size, 3)),
        keras.layers.Conv2D(6, 3, padding="same", activation="swish", name="conv_swish"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.Activation("gelu", name="act_gelu"),
        keras.layers.MaxPool2D(2, name="pool"),
        keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv_relu"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(8, activation="swish", name="dense_swish"),
        keras.layers.Dense(2, activation="softmax", name="logits"),
    ], name="swish_e2e")
    seeded_weights(model, seed=3)
    model.save(path)
    return model


def test_gate_rule_end_to_end(tmp_path):
    arrays, _, _ = helpers.shapes_inputs(tmp_path, NUM_EXAMPLES, seed=6, num_shards=2)
    model = _swish_model(str(tmp_path / "swish.keras"))
    output = tmp_path / "out"
    manifest = helpers.run_demo_preset(
        str(tmp_path / "data" / "*.tfrecord"), str(tmp_path / "swish.keras"), output,
        "explain.nonlinearity_rule=gate", "sanity.enabled=null", f"sanity.sample_size={SAMPLE}",
        "sanity.depth=1", "explain.batch_size=4", "output.map_dtype=float32")

    assert manifest["config"]["sanity"]["enabled"] is True  # turned on by the gate rule
    assert manifest["method_settings"]["nonlinearity_rule"] == "gate"
    assert manifest["guided_sites"] == ["conv_relu: Conv2D(activation=relu)"]
    assert manifest["gated_sites"] == ["conv_swish: Conv2D(activation=silu)",
                                       "act_gelu: Activation(activation=gelu)",
                                       "dense_swish: Dense(activation=silu)"]

    frame = pipeline.load_saliency(str(output)).sort_values("example_id")
    by_id = {str(i): index for index, i in enumerate(arrays["ids"])}
    images = np.stack([arrays["images"][by_id[i]] for i in frame.example_id]) / 255.0
    expected, _ = numpy_backprop(model, images, frame.target.to_numpy().astype(np.int64), "gate")
    expected = np.abs(expected).max(axis=-1)
    stored = np.stack(frame.saliency.to_numpy())
    np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert (np.abs(expected).max(axis=(1, 2)) > 0).sum() >= NUM_EXAMPLES // 2

    sanity_rows = pd.read_parquet(output / "sanity")
    assert sanity_rows.groupby("sanity_check").size().to_dict() == {
        "class_sensitivity": SAMPLE, "randomization": SAMPLE}
    assert manifest["sanity"]["verdict"].startswith(
        "Method: guided_backprop with the gate rule at activations other than ReLU")
    report = (output / "report.html").read_text(encoding="utf-8")
    assert ("guided_backprop with the gate rule at activations other than ReLU (1 guided ReLU, "
            "3 gated activations)") in report
