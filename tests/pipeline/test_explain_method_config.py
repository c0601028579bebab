"""``explain.method`` / ``gradcam_layer`` / ``smoothgrad_*``: validation names the field, and the
one config -> explainer mapping builds the configured method."""

import os

import pytest

from pipeline import explainers
from pipeline.config import ConfigError, load_config
from pipeline.outputs import manifest
from tests.gbp_ops.toy_models import random_cnn

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "demo.yaml")


@pytest.mark.parametrize("override, message", [
    ("explain.method=gradcam", "config field 'explain.method': expected one of guided_backprop, "
                               "deconvnet, guided_gradcam; got 'gradcam'"),
    ("explain.smoothgrad_samples=-1", "config field 'explain.smoothgrad_samples': expected a "
                                      "number >= 0"),
    ("explain.smoothgrad_sigma=-0.1", "config field 'explain.smoothgrad_sigma': expected a "
                                      "number >= 0"),
    ("explain.smoothgrad_samples=1.5", "config field 'explain.smoothgrad_samples': expected an "
                                       "integer, got 1.5"),
])
def test_bad_method_settings_name_the_field(override, message):
    with pytest.raises(ConfigError) as caught:
        load_config(DEMO, [override])
    assert str(caught.value) == message


def test_the_mapping_builds_the_configured_method_and_the_manifest_records_it():
    config = load_config(DEMO, ["explain.method=guided_gradcam", "explain.smoothgrad_samples=3",
                                "explain.smoothgrad_sigma=0.2", "explain.batch_size=2"])
    model = random_cnn(16)
    explainer = explainers.explainer_for_model(config, model)
    assert type(explainer).__name__ == "GuidedGradCAM"
    assert explainer.smoothgrad_samples == 3 and explainer.batch_size == 2
    assert explainer.reduction == config.explain.reduction
    fields = manifest.base_fields(config, explainer, ("a",), (16, 16), "0" * 64)
    assert fields["method"] == "guided_gradcam"
    assert fields["method_settings"] == {"smoothgrad_samples": 3, "smoothgrad_sigma": 0.2,
                                         "gradcam_layer": explainer.gradcam_layer,
                                         "nonlinearity_rule": "refuse"}
    default = explainers.explainer_for_model(load_config(DEMO), model)
    assert type(default).__name__ == "GuidedBackprop" and default.smoothgrad_samples == 0


def test_the_gate_rule_reaches_the_explainer_the_manifest_and_the_report_line():
    from pipeline.report.page import method_line
    from tests.gbp_ops.gate_models import swish_cnn

    config = load_config(DEMO, ["explain.nonlinearity_rule=gate", "explain.batch_size=2"])
    explainer = explainers.explainer_for_model(config, swish_cnn())
    assert explainer.nonlinearity_rule == "gate"
    fields = manifest.base_fields(config, explainer, ("a",), (12, 12), "0" * 64)
    assert fields["method_settings"]["nonlinearity_rule"] == "gate"
    assert fields["guided_sites"] == ["conv_relu: Conv2D(activation=relu)"]
    assert fields["gated_sites"] == ["conv_swish: Conv2D(activation=silu)",
                                     "act_silu: Activation(activation=silu)",
                                     "dense_swish: Dense(activation=silu)"]
    assert method_line(fields) == ("guided_backprop with the gate rule at activations other "
                                   "than ReLU (1 guided ReLU, 3 gated activations)")
    default = manifest.base_fields(load_config(DEMO), explainers.explainer_for_model(
        load_config(DEMO), random_cnn(16)), ("a",), (16, 16), "0" * 64)
    assert default["gated_sites"] == [] and method_line(default) == "guided_backprop"
