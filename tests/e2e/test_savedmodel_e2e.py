"""End to end on a SavedModel directory (``model.export``): TFRecord -> Parquet, locally and
from a remote (``mem://``) filesystem; maps equal the Keras path's on the source model."""

import os

import numpy as np
import pandas as pd
import pytest

from pipeline.config import load_config
from pipeline.launch import preflight
from tests.e2e import helpers
from tests.e2e.test_nonlocal_filesystem import SCHEME, InMemoryObjectStore

NUM_EXAMPLES = 12


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("savedmodel-e2e")
    arrays, _, model = helpers.shapes_inputs(root, NUM_EXAMPLES, seed=5, num_shards=2)
    model.export(str(root / "exported"), verbose=False)
    return {"root": root, "arrays": arrays, "model": model,
            "pattern": str(root / "data" / "*.tfrecord"), "savedmodel": str(root / "exported")}


def _check_against_keras(assets, frame):
    images_by_id = {str(i): image.astype(np.float32) / 255.0
                    for i, image in zip(assets["arrays"]["ids"], assets["arrays"]["images"])}
    frame = frame.sort_values("example_id")
    images = np.stack([images_by_id[i] for i in frame.example_id])
    expected, explanation = helpers.reference_maps(assets["model"], images)
    stored = np.stack(frame.saliency.to_numpy()).reshape(expected.shape)
    np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    np.testing.assert_array_equal(frame.predicted.to_numpy(), explanation.predicted)


def test_local_savedmodel_directory_runs_end_to_end(assets):
    output = assets["root"] / "out-local"
    manifest = helpers.run_demo_preset(assets["pattern"], assets["savedmodel"], output,
                                       "explain.batch_size=8", "output.map_dtype=float32")
    assert manifest["counts"]["saliency_rows"] == NUM_EXAMPLES and manifest["counts"]["reconciled"]
    assert manifest["explained_space"] == "logit"
    assert manifest["guided_sites"] and all(
        site.endswith((": Relu", ": Relu6")) for site in manifest["guided_sites"])
    _check_against_keras(assets, pd.read_parquet(output / "saliency"))


def test_remote_savedmodel_directory_is_copied_and_explained(assets):
    InMemoryObjectStore.clear()
    root = f"{SCHEME}://bucket/savedmodel"
    for folder, _, names in os.walk(assets["savedmodel"]):
        for name in names:
            local = os.path.join(folder, name)
            relative = os.path.relpath(local, assets["savedmodel"]).replace(os.sep, "/")
            with open(local, "rb") as handle:
                InMemoryObjectStore.put(f"{root}/model/{relative}", handle.read())
    try:
        output = assets["root"] / "out-remote"
        manifest = helpers.run_demo_preset(assets["pattern"], f"{root}/model", output,
                                           "explain.batch_size=8", "output.map_dtype=float32",
                                           beam_args=["--runner=FnApiRunner"])
    finally:
        InMemoryObjectStore.clear()
    assert manifest["counts"]["saliency_rows"] == NUM_EXAMPLES
    _check_against_keras(assets, pd.read_parquet(output / "saliency"))


def test_sanity_check_on_a_savedmodel_is_refused_before_any_work(assets, tmp_path):
    config = load_config(overrides=[
        f"source.pattern={assets['pattern']}", f"model.path={assets['savedmodel']}",
        f"output.path={tmp_path}", "sanity.enabled=true"])
    with pytest.raises(preflight.PreflightError, match="sanity.enabled=false"):
        preflight.preflight(config)
