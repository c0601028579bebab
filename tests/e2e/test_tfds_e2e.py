"""End to end from a real prepared TFDS dataset (built offline in the test) to Parquet."""

import numpy as np
import pandas as pd
import pytest

from pipeline import cli
from tests.e2e import helpers
from tests.fixtures.tfds_shapes import prepare_shapes_tfds

TFDS_PRESET = helpers.DEMO_PRESET.replace("demo.yaml", "tfds.yaml")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    dataset = prepare_shapes_tfds(root / "tfds", num_train=10, num_test=21,
                                  image_size=helpers.IMAGE_SIZE)
    model = helpers.small_model(str(root / "model.keras"), seed=1)
    return root, dataset, model


def _run(root, dataset, output, *extra):
    argv = ["--config", TFDS_PRESET,
            "--set", "source.tfds_name=", "--set", f"source.tfds_dir={dataset.dataset_dir}",
            "--set", "source.split=test", "--set", "source.id_key=id",
            "--set", "preprocess.scaling=unit", "--set", "output.downsample=1",
            "--set", "output.map_dtype=float32", "--set", "explain.batch_size=8",
            "--set", f"model.path={root / 'model.keras'}", "--output", str(output)]
    for override in extra:
        argv += ["--set", override]
    return cli.run(argv)


def test_tfds_audit_matches_direct_computation(prepared):
    root, dataset, model = prepared
    manifest = _run(root, dataset, root / "out")
    frame = pd.read_parquet(root / "out" / "saliency").sort_values("example_id")
    arrays = dataset.arrays["test"]
    assert manifest["counts"]["input"] == 21 and manifest["counts"]["reconciled"]
    assert sorted(frame.example_id) == sorted(str(i) for i in arrays["ids"])
    by_id = {str(i): (image, label) for i, image, label in zip(arrays["ids"], arrays["images"],
                                                                 arrays["labels"])}
    images = np.stack([by_id[i][0] for i in frame.example_id]).astype(np.float32) / 255.0
    labels = np.array([by_id[i][1] for i in frame.example_id])
    # target policy 'label' comes from the TFDS preset
    expected_maps, explanation = helpers.reference_maps(model, images, labels)
    stored = np.stack(frame.saliency.to_numpy()).reshape(expected_maps.shape)
    np.testing.assert_allclose(stored, expected_maps, rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(frame.target, labels)
    np.testing.assert_array_equal(frame.label, labels)
    # label names come from the TFDS ClassLabel metadata
    assert list(frame.label_name) == [("circle", "square")[label] for label in labels]
    assert manifest["class_names"] == ["circle", "square"]
    probabilities = model.predict(images, verbose=0)
    np.testing.assert_array_equal(frame.predicted, probabilities.argmax(axis=1))


def test_tfds_split_slice(prepared):
    root, dataset, _ = prepared
    manifest = _run(root, dataset, root / "out-slice", "source.split=test[:5]")
    assert manifest["counts"]["saliency_rows"] == 5
    assert len(pd.read_parquet(root / "out-slice" / "saliency")) == 5
