"""Config loading: presets validate, overrides coerce, and every bad field is named."""

import os

import pytest

from pipeline.config import ConfigError, load_config, parse_override
from tests.e2e.helpers import REPO

CONFIGS = os.path.join(REPO, "configs")


@pytest.mark.parametrize("preset", ["demo.yaml", "tfds.yaml", "dataflow.yaml"])
def test_presets_load_and_state_their_launch_command(preset):
    path = os.path.join(CONFIGS, preset)
    config = load_config(path)
    assert config.model.path
    with open(path) as handle:
        header = handle.read().split("source:")[0]
    assert "# Launch:" in header


def test_overrides_are_typed():
    config = load_config(os.path.join(CONFIGS, "demo.yaml"),
                         ["explain.batch_size=64", "model.safe_mode=false", "explain.target=3",
                          "source.class_names=[a, b, c]", "output.border_band_fraction=0.2"])
    assert config.explain.batch_size == 64
    assert config.model.safe_mode is False
    assert config.fixed_target == 3
    assert config.source.class_names == ("a", "b", "c")
    assert config.output.border_band_fraction == 0.2


@pytest.mark.parametrize(
    "override, message",
    [
        ("explain.batch_size=abc", "config field 'explain.batch_size': expected an integer"),
        ("explain.batch_size=0", "config field 'explain.batch_size': expected an integer >= 1"),
        ("explain.reduction=median", "config field 'explain.reduction': expected one of"),
        ("explain.target=most_likely", "config field 'explain.target'"),
        ("output.map_dtype=float64", "config field 'output.map_dtype'"),
        ("output.downsample=0", "config field 'output.downsample'"),
        ("source.kind=csv", "config field 'source.kind'"),
        ("preprocess.scaling=zscore", "config field 'preprocess.scaling'"),
        ("model.safe_mode=maybe", "config field 'model.safe_mode': expected true or false"),
        ("explain.batchsize=3", "config field 'explain.batchsize' is not a known field"),
        ("colour.x=1", "config section 'colour' is not known"),
        ("source.image_encoding=raw", "config field 'source.raw_shape'"),
        ("nodot=1", "must look like section.field=value"),
        ("explain.nonlinearity_rule=smooth",
         "config field 'explain.nonlinearity_rule': expected one of refuse, gate; got 'smooth'"),
        ("sanity.enabled=maybe", "config field 'sanity.enabled': expected true or false"),
    ],
)
def test_bad_values_name_the_field(override, message):
    with pytest.raises(ConfigError) as raised:
        load_config(os.path.join(CONFIGS, "demo.yaml"), [override])
    assert message in str(raised.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))


def test_parse_override_values_are_yaml():
    assert parse_override("output.path=gs://b/x=y") == ("output", "path", "gs://b/x=y")
    assert parse_override("model.layer_name=null") == ("model", "layer_name", None)


def _minimal(*overrides):
    base = {"source": {"pattern": "data/*.tfrecord"}, "model": {"path": "model.keras"},
            "output": {"path": "out"}}
    return load_config(overrides=overrides, base=base)


def test_the_gate_rule_turns_the_sanity_checks_on_unless_they_are_set():
    assert _minimal().explain.nonlinearity_rule == "refuse"
    assert _minimal().sanity.enabled is False
    gate = _minimal("explain.nonlinearity_rule=gate")
    assert gate.sanity.enabled is True and gate.to_dict()["sanity"]["enabled"] is True
    gate_off = _minimal("explain.nonlinearity_rule=gate", "sanity.enabled=false")
    assert gate_off.sanity.enabled is False
    assert _minimal("sanity.enabled=true").sanity.enabled is True
    unset = _minimal("explain.nonlinearity_rule=gate", "sanity.enabled=null")
    assert unset.sanity.enabled is True


def test_the_gate_rule_is_refused_with_deconvnet():
    with pytest.raises(ConfigError,
                       match="config field 'explain.nonlinearity_rule': the gate rule"):
        _minimal("explain.nonlinearity_rule=gate", "explain.method=deconvnet")
