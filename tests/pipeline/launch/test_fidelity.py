"""The fidelity measures (per-map Spearman, top-5%-pixel overlap) against scipy and plain
Python sets, and the config fields explain.precision, fidelity_sample, min_fidelity."""

import os

import numpy as np
import pytest
import scipy.stats

from pipeline.config import ConfigError, load_config
from pipeline.launch.fidelity import map_spearman, top_share_overlap
from tests.e2e.helpers import REPO

DEMO = os.path.join(REPO, "configs", "demo.yaml")


def _set_overlap(a, b, share):
    """Top-share overlap by Python sets of (value, -index) ranks: a separate implementation."""
    result = []
    for x, y in zip(a, b):
        x, y = np.abs(x).ravel().tolist(), np.abs(y).ravel().tolist()
        count = max(1, -(-len(x) * share // 1))
        top = [set(sorted(range(len(v)), key=lambda i, v=v: (-v[i], i))[:int(count)])
               for v in (x, y)]
        result.append(len(top[0] & top[1]) / count)
    return np.array(result)


def test_overlap_matches_a_set_implementation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 12, 10))
    b = a + rng.normal(scale=0.5, size=a.shape)
    b[0] = a[0]  # identical: overlap 1
    b[1] = -a[1]  # signs do not matter: |map| is ranked
    expected = _set_overlap(a, b, 0.05)
    np.testing.assert_allclose(top_share_overlap(a, b), expected)
    assert expected[0] == expected[1] == 1.0 and 0 < expected[2:].min() < 1
    np.testing.assert_allclose(top_share_overlap(a, b, 0.3), _set_overlap(a, b, 0.3))


def test_spearman_matches_scipy_and_settles_constant_maps():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 8, 8))
    b = np.round(a + rng.normal(scale=0.4, size=a.shape), 1)  # with ties
    b[2] = 0.0  # constant against varying: 0
    a[3] = b[3] = 0.0  # both constant and equal: 1
    values = map_spearman(a, b)
    for index in (0, 1):
        expected = scipy.stats.spearmanr(np.abs(a[index]).ravel(), np.abs(b[index]).ravel())[0]
        assert np.isclose(values[index], expected)
    assert values[2] == 0.0 and values[3] == 1.0


def test_precision_fields_default_and_validate():
    explain = load_config(DEMO).explain
    assert (explain.precision, explain.fidelity_sample, explain.min_fidelity) == (
        "float32", 64, 0.97)
    config = load_config(DEMO, ["explain.precision=mixed_bfloat16", "explain.min_fidelity=1.01",
                                "explain.fidelity_sample=8"])
    assert config.explain.precision == "mixed_bfloat16" and config.explain.min_fidelity == 1.01
    assert load_config(DEMO, ["explain.precision=auto"]).explain.precision == "auto"


@pytest.mark.parametrize("override, message", [
    ("explain.precision=bfloat16",
     "config field 'explain.precision': expected one of float32, mixed_bfloat16, mixed_float16, "
     "auto"),
    ("explain.fidelity_sample=0", "config field 'explain.fidelity_sample': expected an integer"),
    ("explain.min_fidelity=-2", "config field 'explain.min_fidelity': expected a mean Spearman"),
    ("explain.min_fidelity=.nan", "config field 'explain.min_fidelity'"),
    ("explain.min_fidelity=high", "config field 'explain.min_fidelity': expected a number"),
])
def test_bad_precision_fields_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(DEMO, [override])
