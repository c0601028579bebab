"""load_saliency: 2-D maps, dequantised uint8 maps, float16-precision float32 maps, the scaled
view, and filters pushed down to pyarrow."""

import numpy as np
import pandas as pd
import pytest

import pipeline
from demo.assets import synthesize_shapes, write_tfrecord_shards
from tests.e2e import helpers


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    arrays = synthesize_shapes(24, image_size=helpers.IMAGE_SIZE, seed=8)
    write_tfrecord_shards(arrays, str(root / "data"), num_shards=2)
    helpers.small_model(str(root / "model.keras"), seed=4)
    runs = {}
    for dtype in ("float32", "float16", "uint8"):
        helpers.run_demo_preset(str(root / "data" / "*.tfrecord"), str(root / "model.keras"),
                                root / dtype, "explain.target=label", "explain.batch_size=8",
                                f"output.map_dtype={dtype}", "output.report=false")
        runs[dtype] = root / dtype
    return runs


def test_filters_match_pandas_filtering(outputs):
    everything = pipeline.load_saliency(str(outputs["float32"]))
    assert everything.saliency.iloc[0].shape == (helpers.IMAGE_SIZE, helpers.IMAGE_SIZE)
    subset = pipeline.load_saliency(str(outputs["float32"]), classes=[1], correct=False)
    expected = everything[(everything.target == 1) & (everything.correct == False)]  # noqa: E712
    assert sorted(subset.example_id) == sorted(expected.example_id)
    ids = list(everything.example_id[:3])
    by_id = pipeline.load_saliency(str(outputs["float32"]), example_ids=ids,
                                   columns=["example_id", "saliency"])
    assert sorted(by_id.example_id) == sorted(ids) and list(by_id.columns) == [
        "example_id", "saliency"]
    no_maps = pipeline.load_saliency(str(outputs["float32"]), maps=False)
    assert "saliency" not in no_maps and len(no_maps) == len(everything)


def test_uint8_maps_dequantise_close_to_float32(outputs):
    exact = pipeline.load_saliency(str(outputs["float32"])).set_index("example_id")
    quantised = pipeline.load_saliency(str(outputs["uint8"])).set_index("example_id")
    raw = pd.read_parquet(outputs["uint8"] / "saliency")
    # uint8 codes are stored as int16 (BigQuery and Spark map no unsigned types)
    assert raw.saliency.iloc[0].dtype == np.int16 and "saliency_scale" in raw
    assert min(codes.min() for codes in raw.saliency) >= 0
    assert max(codes.max() for codes in raw.saliency) == 255
    for example_id, row in quantised.iterrows():
        reference = exact.saliency[example_id]
        step = reference.max() / 255.0
        assert np.abs(row.saliency - reference).max() <= step / 2 + 1e-7


def test_float16_maps_are_raw_float32_with_float16_precision(outputs):
    exact = pipeline.load_saliency(str(outputs["float32"])).set_index("example_id")
    half = pipeline.load_saliency(str(outputs["float16"])).set_index("example_id")
    raw = pd.read_parquet(outputs["float16"] / "saliency").set_index("example_id")
    assert raw.saliency.iloc[0].dtype == np.float32 and "saliency_scale" not in raw
    for example_id, row in half.iterrows():
        reference = exact.saliency[example_id].astype(np.float64)
        stored = raw.saliency[example_id].astype(np.float64)
        # raw values (no per-row scale) rounded to 11 significant bits: |error| <= 2**-11 |x|
        assert np.all(np.abs(stored - reference.reshape(-1)) <= np.abs(reference.reshape(-1))
                      * 2.0 ** -11)
        np.testing.assert_array_equal(row.saliency.reshape(-1), stored.astype(np.float32))


def test_scaled_view_divides_each_map_by_its_max(outputs):
    exact = pipeline.load_saliency(str(outputs["float32"])).set_index("example_id")
    scaled = pipeline.load_saliency(str(outputs["float32"]), scaled=True).set_index("example_id")
    for example_id, row in scaled.iterrows():
        reference = exact.saliency[example_id]
        peak = np.abs(reference).max()
        np.testing.assert_allclose(row.saliency, reference / peak if peak else reference,
                                   rtol=1e-6)


def test_load_stats_reshapes_non_square_maps_with_the_manifest_shape(tmp_path):
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "stats").mkdir()
    mean_map = np.arange(6, dtype=np.float32)
    pq.write_table(pa.table({"group_kind": ["overall"], "mean_map": [mean_map]}),
                   tmp_path / "stats" / "stats-00000-of-00001.parquet")
    (tmp_path / "manifest.json").write_text(json.dumps({"map_shape": [2, 3]}))
    loaded = pipeline.load_stats(str(tmp_path)).mean_map.iloc[0]
    np.testing.assert_array_equal(loaded, mean_map.reshape(2, 3))


def test_loaders_import_neither_tensorflow_keras_nor_beam(outputs):
    """A pandas user reading results must not pay for TensorFlow, Keras or Beam."""
    import subprocess
    import sys

    script = (
        "import sys, pipeline\n"
        f"path = {str(outputs['float16'])!r}\n"
        "assert len(pipeline.load_saliency(path)) == 24\n"
        "assert len(pipeline.load_stats(path)) > 0\n"
        "assert len(pipeline.load_errors(path)) == 0\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'apache_beam') if m in sys.modules))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               cwd=helpers.REPO, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().splitlines()[-1] == "[]"


def test_class_ids_are_integer_columns_through_pandas_and_the_loaders(tmp_path):
    """Unlabelled examples make ``label``, ``correct`` and the overall group's ``target``
    missing: they must come back as nullable Int64 (not float64) and nullable boolean (not
    object) through pd.read_parquet and the loaders."""
    import tensorflow as tf

    arrays = synthesize_shapes(10, image_size=helpers.IMAGE_SIZE, seed=3)
    data = tmp_path / "data"
    write_tfrecord_shards(arrays, str(data), num_shards=1)
    # Strip the label from every other record.
    records = list(tf.data.TFRecordDataset(str(next(data.iterdir()))).as_numpy_iterator())
    with tf.io.TFRecordWriter(str(data / "unlabelled.tfrecord")) as writer:
        for record in records[::2]:
            example = tf.train.Example.FromString(record)
            del example.features.feature["image/class/label"]
            writer.write(example.SerializeToString())
    helpers.small_model(str(tmp_path / "model.keras"))
    output = tmp_path / "out"
    helpers.run_demo_preset(str(data / "*.tfrecord"), str(tmp_path / "model.keras"), output,
                            "explain.batch_size=8", "output.report=false")
    for frame in (pd.read_parquet(output / "saliency"), pipeline.load_saliency(str(output))):
        assert str(frame.label.dtype) == "Int64" and frame.label.isna().sum() == 5
        assert str(frame.target.dtype) == "int64" and str(frame.predicted.dtype) == "int64"
        assert str(frame.correct.dtype) == "boolean" and frame.correct.isna().sum() == 5
        assert len(frame[frame.correct.fillna(False)]) == (frame.label == frame.predicted).sum()
    for frame in (pd.read_parquet(output / "stats"), pipeline.load_stats(str(output))):
        assert str(frame.target.dtype) == "Int64"
        assert frame.target.isna().sum() == 1  # the overall group
        assert str(frame.correct.dtype) == "boolean"
