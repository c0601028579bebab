"""Bad records and damaged shards end as dead letters with the right stage; good records in
the same shards and batches are still explained correctly; the manifest reconciles."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from pipeline import cli
from tests.e2e import helpers

SIZE = helpers.IMAGE_SIZE


def _good_images(count, seed):
    return np.random.default_rng(seed).integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    data = root / "data"
    data.mkdir()
    model = helpers.small_model(str(root / "model.keras"), seed=2)
    good = {}

    def good_record(name, image, label):
        good[name] = (image, label)
        return helpers.encoded_example(tf.io.encode_png(image).numpy(), label, name)

    images = _good_images(14, seed=5)
    gray_alpha = tf.io.encode_png(np.zeros((SIZE, SIZE, 2), np.uint8)).numpy()
    mixed = [good_record(f"good-{i}", images[i], i % 2) for i in range(6)]
    mixed[1:1] = [helpers.encoded_example(b"\x89PNG not really", 0, "bad-decode")]
    mixed[3:3] = [helpers.encoded_example(None, 1, "bad-missing-image")]
    mixed[4:4] = [b"\xff\xff\xff\xff"]  # not a tf.train.Example at all -> parse
    mixed[5:5] = [helpers.encoded_example(gray_alpha, 1, "bad-channels")]
    mixed.append(helpers.encoded_example(tf.io.encode_png(images[6]).numpy(), None, "bad-no-label"))
    mixed.append(helpers.encoded_example(tf.io.encode_png(images[7]).numpy(), 7, "bad-label-range"))
    helpers.write_records(data / "a-mixed.tfrecord", mixed)

    helpers.write_records(data / "b-truncated.tfrecord",
                          [good_record(f"trunc-{i}", images[8 + i], 1) for i in range(3)])
    raw = (data / "b-truncated.tfrecord").read_bytes()
    (data / "b-truncated.tfrecord").write_bytes(raw[:-40])  # cut inside the last record

    helpers.write_records(data / "c-corrupt.tfrecord",
                          [good_record(f"corrupt-{i}", images[11 + i], 0) for i in range(3)])
    raw = bytearray((data / "c-corrupt.tfrecord").read_bytes())
    record_size = len(raw) // 3
    raw[record_size + 60] ^= 0xFF  # inside the second record's payload -> CRC mismatch
    (data / "c-corrupt.tfrecord").write_bytes(bytes(raw))

    manifest = helpers.run_demo_preset(
        str(data / "*.tfrecord"), str(root / "model.keras"), root / "out",
        "explain.target=label", "explain.batch_size=4", "output.map_dtype=float32")
    return {"root": root, "model": model, "good": good, "manifest": manifest}


EXPECTED_DEAD_LETTERS = {
    "bad-decode": "decode",
    "bad-channels": "decode",
    "bad-missing-image": "parse",
    "a-mixed.tfrecord:4": "parse",
    "bad-no-label": "preprocess",
    "bad-label-range": "explain",
    "b-truncated.tfrecord:damaged": "read",
    "c-corrupt.tfrecord:damaged": "read",
}


def test_every_bad_record_has_a_dead_letter_with_its_stage(faulty_run):
    errors = pd.read_parquet(faulty_run["root"] / "out" / "errors")
    by_id = dict(zip(errors.example_id, errors.stage))
    # parse failures happen before the id is known, so they are named by position
    by_id = {("bad-missing-image" if key == "a-mixed.tfrecord:3" else key): value
             for key, value in by_id.items()}
    assert by_id == EXPECTED_DEAD_LETTERS
    damaged = errors[errors.stage == "read"].set_index("example_id").error
    assert "after record 2" in damaged["b-truncated.tfrecord:damaged"]
    assert "after record 1" in damaged["c-corrupt.tfrecord:damaged"]
    assert "out of range" in errors.set_index("example_id").error["bad-label-range"]


def test_every_good_record_has_its_correct_row(faulty_run):
    frame = pd.read_parquet(faulty_run["root"] / "out" / "saliency").sort_values("example_id")
    good = faulty_run["good"]
    # the truncated shard keeps its first two records, the corrupt one its first
    expected_ids = sorted([f"good-{i}" for i in range(6)] + ["trunc-0", "trunc-1", "corrupt-0"])
    assert list(frame.example_id) == expected_ids
    images = np.stack([good[i][0] for i in frame.example_id]).astype(np.float32) / 255.0
    labels = np.array([good[i][1] for i in frame.example_id])
    expected_maps, _ = helpers.reference_maps(faulty_run["model"], images, labels)
    stored = np.stack(frame.saliency.to_numpy()).reshape(expected_maps.shape)
    np.testing.assert_allclose(stored, expected_maps, rtol=1e-4, atol=1e-7)


def test_manifest_reconciles(faulty_run):
    counts = faulty_run["manifest"]["counts"]
    assert counts["saliency_rows"] == 9
    assert counts["errors"] == len(EXPECTED_DEAD_LETTERS)
    assert counts["input"] == counts["saliency_rows"] + counts["errors"]
    assert counts["reconciled"] is True
    assert counts["errors_read"] == 2 and counts["errors_parse"] == 2


def test_fail_policy_stops_the_run_on_a_damaged_shard(faulty_run, capsys):
    root = faulty_run["root"]
    code = cli.main(["--config", helpers.DEMO_PRESET,
                     "--set", f"source.pattern={root / 'data' / 'b-*.tfrecord'}",
                     "--set", f"model.path={root / 'model.keras'}",
                     "--set", "source.on_corrupt_shard=fail", "--output", str(root / "out-fail")])
    assert code == cli.EXIT_RUN_FAILED
    assert "b-truncated.tfrecord: shard damaged after record 2" in capsys.readouterr().err


def _raw_example(array, example_id):
    return helpers.encoded_example(np.asarray(array, np.float32).tobytes(), 0, example_id)


def test_raw_tensors_wrong_size_nan_and_overflow(tmp_path):
    model = helpers.small_model(str(tmp_path / "model.keras"), seed=3)
    rng = np.random.default_rng(0)
    good = rng.random((3, SIZE, SIZE, 3)).astype(np.float32)
    nan_image = good[0].copy()
    nan_image[3, 3, 1] = np.nan
    helpers.write_records(tmp_path / "raw.tfrecord", [
        _raw_example(good[0], "raw-0"), _raw_example(good[1], "raw-1"),
        _raw_example(np.zeros((SIZE, SIZE - 1, 3)), "raw-wrong-size"),
        _raw_example(nan_image, "raw-nan"),
        # finite pixels whose caffe-scaled values overflow inside the network -> NaN logits
        _raw_example(np.full((SIZE, SIZE, 3), 1.3e36), "raw-overflow"),
        _raw_example(good[2], "raw-2"),
    ])
    manifest = helpers.run_demo_preset(
        str(tmp_path / "raw.tfrecord"), str(tmp_path / "model.keras"), tmp_path / "out",
        "source.image_encoding=raw", "source.raw_dtype=float32",
        f"source.raw_shape=[{SIZE}, {SIZE}, 3]", "explain.batch_size=4",
        "preprocess.scaling=caffe", "output.map_dtype=float32")
    errors = pd.read_parquet(tmp_path / "out" / "errors")
    assert dict(zip(errors.example_id, errors.stage)) == {
        "raw-wrong-size": "decode", "raw-nan": "preprocess", "raw-overflow": "non_finite"}
    frame = pd.read_parquet(tmp_path / "out" / "saliency").sort_values("example_id")
    assert list(frame.example_id) == ["raw-0", "raw-1", "raw-2"]
    caffe = (good * 255.0)[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)
    expected_maps, _ = helpers.reference_maps(model, caffe)
    stored = np.stack(frame.saliency.to_numpy()).reshape(expected_maps.shape)
    np.testing.assert_allclose(stored, expected_maps, rtol=1e-4, atol=1e-7)
    assert manifest["counts"]["reconciled"] and manifest["counts"]["input"] == 6
