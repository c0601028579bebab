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
