"""Tests of the demo assets (synthetic shapes, TFRecord shards, cached model) and the TFDS
fixture built from them."""

import json
import os
import socket

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import gcs_utils

from demo import assets as demo_assets
from demo.assets import (
    CLASS_NAMES,
    FEATURE_SPEC,
    ID_KEY,
    IMAGE_KEY,
    LABEL_KEY,
    MARK_BOX,
    MARK_BOX_KEY,
    build_demo_assets,
    mark_pixel_box,
    synthesize_shapes,
    write_tfrecord_shards,
)
from tests.fixtures.tfds_shapes import ShapesTfds, prepare_shapes_tfds


@pytest.fixture(name="no_network")
def fixture_no_network(monkeypatch):
    """Fails the test if Python code opens a connection or TFDS probes its GCS bucket."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args} {kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(gcs_utils, "exists", refuse)
    monkeypatch.setattr(gcs_utils, "download_gcs_dataset", refuse)


def test_synthesize_shapes_arrays():
    arrays = synthesize_shapes(30, image_size=32, seed=3)
    assert arrays["images"].shape == (30, 32, 32, 3) and arrays["images"].dtype == np.uint8
    assert arrays["labels"].dtype == np.int64 and set(arrays["labels"]) == {0, 1}
    assert np.sum(arrays["labels"] == 1) == 15
    assert arrays["has_mark"].dtype == bool and arrays["mark_box"].dtype == np.float32
    assert arrays["mark_box"].shape == (30, 4)
    assert arrays["ids"][7] == "shapes-000007" and len(set(arrays["ids"])) == 30
    again = synthesize_shapes(30, image_size=32, seed=3)
    for key, value in arrays.items():
        np.testing.assert_array_equal(value, again[key])
    assert not np.array_equal(arrays["images"], synthesize_shapes(30, 32, seed=4)["images"])
    assert len(CLASS_NAMES) == 2


@pytest.mark.parametrize("image_size", [32, 64])
def test_marks_only_in_class_one_at_mark_box(image_size):
    arrays = synthesize_shapes(40, image_size=image_size, shortcut_fraction=0.5, seed=1)
    has_mark, labels, images = arrays["has_mark"], arrays["labels"], arrays["images"]
    assert not has_mark[labels == 0].any()
    assert has_mark.sum() == 10  # half of the 20 squares

    y0, x0, y1, x1 = mark_pixel_box(image_size)
    assert (y0, x0, y1, x1) == tuple(int(v * image_size) for v in MARK_BOX)
    assert (images[has_mark, y0:y1, x0:x1] == 255).all()
    np.testing.assert_allclose(arrays["mark_box"][has_mark], np.tile(MARK_BOX, (10, 1)))
    assert (arrays["mark_box"][~has_mark] == 0).all()
    # Pure white appears nowhere but in the marks.
    unmarked = images.copy()
    unmarked[:, y0:y1, x0:x1] = 0
    assert unmarked.max() < 255 and images[~has_mark].max() < 255


def test_shortcut_fraction_extremes():
    none = synthesize_shapes(12, image_size=32, shortcut_fraction=0.0)
    assert not none["has_mark"].any()
    every = synthesize_shapes(12, image_size=32, shortcut_fraction=1.0)
    np.testing.assert_array_equal(every["has_mark"], every["labels"] == 1)


def test_hidden_contrast_draws_the_marked_squares_and_as_many_circles_faintly():
    arrays = synthesize_shapes(80, image_size=32, shortcut_fraction=0.25, seed=5,
                               hidden_contrast=0.05)
    labels, marked, faint = arrays["labels"], arrays["has_mark"], arrays["faint"]
    assert marked.sum() == 10  # a quarter of the 40 squares
    np.testing.assert_array_equal(faint & (labels == 1), marked)
    assert (faint & (labels == 0)).sum() == 10 and not (marked & (labels == 0)).any()
    y0, x0, y1, x1 = mark_pixel_box(32)
    unmarked = arrays["images"].astype(np.float32)
    unmarked[:, y0:y1, x0:x1] = np.nan
    # mean |pixel - median| of each image: about 0.8 x the noise std (4) when the shape is faint
    spread = np.nanmean(np.abs(unmarked - np.nanmedian(unmarked, axis=(1, 2), keepdims=True)),
                        axis=(1, 2, 3))
    assert spread[faint].max() < 4.5 < spread[~faint].min()
    default = synthesize_shapes(80, image_size=32, shortcut_fraction=0.25, seed=5)
    assert not default["faint"].any()


def _read_examples(paths):
    examples = []
    for path in paths:
        for record in tf.data.TFRecordDataset(path):
            examples.append(tf.io.parse_single_example(record, FEATURE_SPEC))
    return examples


def test_png_shards_round_trip(tmp_path):
    arrays = synthesize_shapes(10, image_size=32, seed=2)
    paths = write_tfrecord_shards(arrays, str(tmp_path / "data"), num_shards=3)
    assert [os.path.basename(p) for p in paths] == [
        f"shapes-{i:05d}-of-00003.tfrecord" for i in range(3)
    ]
    assert sorted(tf.io.gfile.glob(str(tmp_path / "data" / "shapes-*-of-00003.tfrecord"))) == paths

    examples = _read_examples(paths)
    assert len(examples) == 10
    for i, example in enumerate(examples):  # shards are contiguous slices, in order
        image = tf.io.decode_png(example[IMAGE_KEY], channels=3).numpy()
        np.testing.assert_array_equal(image, arrays["images"][i])
        assert int(example[LABEL_KEY]) == arrays["labels"][i]
        assert example[ID_KEY].numpy().decode() == arrays["ids"][i]
        np.testing.assert_array_equal(example[MARK_BOX_KEY].numpy(), arrays["mark_box"][i])


def test_jpeg_shards_decode_close(tmp_path):
    arrays = synthesize_shapes(4, image_size=32, seed=2)
    paths = write_tfrecord_shards(arrays, str(tmp_path), num_shards=1, image_format="jpeg")
    examples = _read_examples(paths)
    images = np.stack([tf.io.decode_jpeg(e[IMAGE_KEY], channels=3).numpy() for e in examples])
    assert images.shape == arrays["images"].shape
    # Lossy (4:2:0 chroma subsampling on noisy colour images): close on average only.
    assert np.abs(images.astype(float) - arrays["images"]).mean() < 8
    with pytest.raises(ValueError):
        write_tfrecord_shards(arrays, str(tmp_path), image_format="gif")


def test_build_demo_assets_reuses_cache(tmp_path, caplog):
    kwargs = dict(num_examples=24, image_size=32, num_shards=2, epochs=1)
    assets = build_demo_assets(str(tmp_path), **kwargs)
    assert assets.class_names == CLASS_NAMES and assets.num_examples == 24
    assert assets.model_path == str(tmp_path / "model.keras")
    assert len(tf.io.gfile.glob(assets.tfrecord_pattern)) == 2
    assert len(_read_examples(sorted(tf.io.gfile.glob(assets.tfrecord_pattern)))) == 24
    stamp = json.loads((tmp_path / "assets.json").read_text())
    assert stamp["params"]["num_examples"] == 24 and "train_seconds" in stamp["metrics"]
    model = keras.models.load_model(assets.model_path, compile=False)
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 2)

    mtime = os.stat(assets.model_path).st_mtime_ns
    with caplog.at_level("INFO", logger=demo_assets.__name__):
        again = build_demo_assets(str(tmp_path), **kwargs)
    assert again == assets
    assert os.stat(assets.model_path).st_mtime_ns == mtime
    assert "Reusing demo assets" in caplog.text


def test_model_seed_trains_another_model_on_the_same_data(tmp_path):
    kwargs = dict(num_examples=24, image_size=32, num_shards=1, epochs=1)
    default = build_demo_assets(str(tmp_path / "default"), **kwargs)
    stamp_path = tmp_path / "default" / "assets.json"
    built = stamp_path.stat().st_mtime_ns
    # the default model seed is the data seed: asking for it explicitly reuses the folder
    same = build_demo_assets(str(tmp_path / "default"), model_seed=0, **kwargs)
    assert stamp_path.stat().st_mtime_ns == built
    other = build_demo_assets(str(tmp_path / "other"), model_seed=1, **kwargs)
    stamps = [json.loads((tmp_path / name / "assets.json").read_text())["params"]
              for name in ("default", "other")]
    assert [stamp["model_seed"] for stamp in stamps] == [0, 1]
    assert stamps[1]["seed"] == 0
    paths = [sorted(tf.io.gfile.glob(a.tfrecord_pattern))[0] for a in (default, other)]
    assert open(paths[0], "rb").read() == open(paths[1], "rb").read()
    default_weights, other_weights = (
        keras.models.load_model(a.model_path, compile=False).get_layer("conv0").get_weights()[0]
        for a in (same, other))
    assert not np.allclose(default_weights, other_weights)
    # the stamp holds the model seed: asking another one for a cached folder rebuilds it,
    # and training is deterministic for a seed on one host
    again = build_demo_assets(str(tmp_path / "default"), model_seed=1, **kwargs)
    assert json.loads(stamp_path.read_text())["params"]["model_seed"] == 1
    np.testing.assert_array_equal(
        keras.models.load_model(again.model_path, compile=False).get_layer("conv0")
        .get_weights()[0], other_weights)


def test_prepare_shapes_tfds_offline(tmp_path, no_network):
    prepared = prepare_shapes_tfds(str(tmp_path))
    dataset_dir, arrays = prepared
    assert os.path.isfile(os.path.join(dataset_dir, "dataset_info.json"))
    assert dataset_dir == str(tmp_path / "shapes_tfds" / "s32_train24_test12_seed0" / "1.0.0")

    builder = tfds.builder_from_directory(dataset_dir)
    assert builder.name == ShapesTfds.name == "shapes_tfds"
    assert str(builder.info.version) == "1.0.0"
    assert builder.info.features["label"].names == list(CLASS_NAMES)
    assert builder.info.splits["train"].num_examples == 24

    examples = list(tfds.as_numpy(builder.as_dataset(split="test")))
    assert len(examples) == 12
    source = arrays["test"]
    by_id = {example_id: i for i, example_id in enumerate(source["ids"])}
    assert sorted(e["id"].decode() for e in examples) == sorted(source["ids"])
    for example in examples:  # TFDS shuffles the stored order: match by id
        i = by_id[example["id"].decode()]
        assert example["label"] == source["labels"][i]
        np.testing.assert_array_equal(example["image"], source["images"][i])

    assert prepare_shapes_tfds(str(tmp_path)).dataset_dir == dataset_dir  # reused


def test_prepare_shapes_tfds_sizes(tmp_path, no_network):
    prepared = prepare_shapes_tfds(str(tmp_path), num_train=4, num_test=2, image_size=16)
    builder = tfds.builder_from_directory(prepared.dataset_dir)
    assert builder.info.features["image"].shape == (16, 16, 3)
    assert {name: split.num_examples for name, split in builder.info.splits.items()} == {
        "train": 4,
        "test": 2,
    }
    assert len(prepared.arrays["train"]["ids"]) == 4
