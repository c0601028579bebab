"""The compatibility check of two runs: refused in one line naming every differing field;
model and data changes reported, not refused."""

import copy

import pytest

from pipeline.compare import compatibility


def _manifest():
    return {
        "method": "guided_backprop",
        "method_settings": {"smoothgrad_samples": 0, "smoothgrad_sigma": 0.15},
        "map_shape": [32, 32], "input_shape": [32, 32, 3], "explained_space": "logit",
        "model_sha256": "a" * 64,
        "config": {"explain": {"reduction": "max_abs", "target": "predicted",
                               "precision": "float32"},
                   "preprocess": {"scaling": "unit", "resize_method": "bilinear",
                                  "scaled_jpeg_decode": True, "max_pixels": 10},
                   "output": {"border_band_fraction": 0.1, "map_dtype": "float16"},
                   "source": {"kind": "tfrecord", "pattern": "data/*.tfrecord",
                              "tfds_name": "", "tfds_dir": "", "split": "test"}},
    }


def test_same_meaning_passes_even_with_another_model_and_storage():
    current = _manifest()
    current["model_sha256"] = "b" * 64
    current["config"]["output"]["map_dtype"] = "uint8"  # storage, not meaning
    current["config"]["preprocess"]["max_pixels"] = 99  # which inputs fail, not meaning
    compatibility.check(_manifest(), current)
    assert compatibility.differences(_manifest(), current) == []


@pytest.mark.parametrize("path, value", [
    (("config", "explain", "reduction"), "l2"),
    (("map_shape",), [16, 16]),
    (("method",), "deconvnet"),
    (("method_settings", "smoothgrad_samples"), 8),
    (("explained_space",), "probability"),
    (("config", "explain", "target"), "label"),
    (("config", "preprocess", "scaling"), "imagenet"),
    (("config", "explain", "precision"), "mixed_bfloat16"),
])
def test_each_meaning_field_is_refused_by_name(path, value):
    current = _manifest()
    holder = current
    for part in path[:-1]:
        holder = holder[part]
    holder[path[-1]] = value
    with pytest.raises(compatibility.IncompatibleRunsError) as raised:
        compatibility.check(_manifest(), current, "old/", "new/")
    message = str(raised.value)
    named = ".".join(path)
    assert "\n" not in message and named in message and repr(value) in message, message


def test_several_differences_are_named_in_one_line():
    current = copy.deepcopy(_manifest())
    current["config"]["explain"]["reduction"] = "sum"
    current["map_shape"] = [8, 8]
    fields = [field for field, _, _ in compatibility.differences(_manifest(), current)]
    assert fields == ["config.explain.reduction", "map_shape"]


def test_model_and_data_changes_are_reported():
    current = _manifest()
    assert compatibility.changes(_manifest(), current)["model_changed"] is False
    current["model_sha256"] = "c" * 64
    current["config"]["source"]["pattern"] = "week2/*.tfrecord"
    found = compatibility.changes(_manifest(), current)
    assert found["model_changed"] and found["data_changed"]
    assert found["changed_source_fields"] == ["pattern"]
