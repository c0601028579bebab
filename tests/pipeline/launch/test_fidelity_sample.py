"""The fidelity check's sample and summary against references built from what the test wrote:
the first ``explain.fidelity_sample`` records that prepare cleanly, in sorted-shard order, with
broken records before, between and after them; top-share counts that are not whole pixels; and
``compare``'s fields against scipy and plain Python sets."""

import os
import types

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from pipeline.config import load_config
from pipeline.launch import fidelity
from tests.e2e.helpers import REPO

DEMO = os.path.join(REPO, "configs", "demo.yaml")
SHAPE = (8, 8, 3)


def _good(example_id, seed):
    image = np.random.default_rng(seed).integers(0, 256, SHAPE, dtype=np.uint8)
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[tf.io.encode_png(image).numpy()])),
        "image/id": tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[example_id.encode()])),
    }
    record = tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
    return record, image


def _undecodable(example_id):
    feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(
        value=[b"not an image"])), "image/id": tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[example_id.encode()]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write(folder, shards):
    """shards: {file name: [record or ('good', id, seed) ...]} -> {id: image} of the good ones
    and the good ids in sorted-shard read order."""
    images, order = {}, []
    folder.mkdir()
    for name in sorted(shards):
        with tf.io.TFRecordWriter(str(folder / name)) as writer:
            for item in shards[name]:
                if isinstance(item, tuple):
                    record, images[item[1]] = _good(item[1], item[2])
                    order.append(item[1])
                else:
                    record = item
                writer.write(record)
    return images, order


def _config(folder, size):
    return load_config(DEMO, [f"source.pattern={folder}/*.tfrecord",
                              f"explain.fidelity_sample={size}"])


BROKEN = b"not a tf.train.Example \xff\x00"


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fidelity") / "data"
    layout = {
        # read first (sorted names): four broken records before the first good one
        "a-shard.tfrecord": [BROKEN, _undecodable("bad-1"), BROKEN, _undecodable("bad-2"),
                             ("good", "g0", 0), BROKEN, ("good", "g1", 1)],
        "b-shard.tfrecord": [("good", f"g{i}", i) for i in range(2, 6)] + [BROKEN],
        "c-shard.tfrecord": [("good", f"g{i}", i) for i in range(6, 9)],
    }
    return folder, *_write(folder, layout)


@pytest.mark.parametrize("size", [1, 2, 6, 9])
def test_the_sample_is_the_first_prepared_records_in_read_order(shards, size):
    folder, images, order = shards
    examples = fidelity.sample_examples(_config(folder, size), SHAPE)
    assert [example.example_id for example in examples] == order[:size]
    for example in examples:
        np.testing.assert_array_equal(example.image, images[example.example_id] / np.float32(
            255.0))


def test_a_sample_larger_than_the_data_holds_every_good_record(shards):
    folder, _, order = shards
    assert [e.example_id for e in fidelity.sample_examples(_config(folder, 20), SHAPE)] == order


def test_only_broken_records_fail_with_the_count_read(tmp_path):
    folder = tmp_path / "broken"
    _write(folder, {"x.tfrecord": [BROKEN, _undecodable("u")] * 30})
    with pytest.raises(fidelity.FidelityError) as raised:
        fidelity.sample_examples(_config(folder, 4), SHAPE)
    # at most fidelity_sample x MAX_READS_PER_EXAMPLE records are read
    assert str(raised.value) == fidelity.NO_SAMPLE.format(
        precision="float32", reads=4 * fidelity.MAX_READS_PER_EXAMPLE)
    with pytest.raises(fidelity.FidelityError, match="none of the first 60 records"):
        fidelity.sample_examples(_config(folder, 10), SHAPE)


def _set_overlap(a, b, share, count=None):
    """|top(a) & top(b)| / count with count = ceil(share x pixels) unless given, ranks by
    (-|v|, index)."""
    result = []
    for x, y in zip(a, b):
        x, y = np.abs(x).ravel().tolist(), np.abs(y).ravel().tolist()
        count = count or max(1, int(np.ceil(share * len(x))))
        tops = [set(sorted(range(len(v)), key=lambda i, v=v: (-v[i], i))[:count]) for v in (x, y)]
        result.append(len(tops[0] & tops[1]) / count)
    return np.array(result)


@pytest.mark.parametrize("shape,share", [((7, 9), 0.05), ((5, 6), 0.05), ((5, 7), 0.125)])
def test_top_share_overlap_counts_the_ceiling_of_a_fractional_pixel_count(shape, share):
    """7 x 9 x 0.05 = 3.15 pixels: the top 4 are compared."""
    rng = np.random.default_rng(shape[0])
    a = rng.normal(size=(6, *shape))
    b = a + rng.normal(scale=0.6, size=a.shape)
    expected = _set_overlap(a, b, share)
    np.testing.assert_allclose(fidelity.top_share_overlap(a, b, share), expected)
    floor = max(1, int(share * shape[0] * shape[1]))
    assert not np.allclose(expected, _set_overlap(a, b, share, count=floor))


def test_compare_reports_mean_and_min_spearman_overlap_and_agreement():
    rng = np.random.default_rng(9)
    reference = rng.random((4, 6, 6)) + 0.1
    reduced = reference.copy()
    reduced[1] += rng.normal(scale=0.2, size=(6, 6))
    reduced[2] = 1.0 / reference[2]  # reversed ranks: Spearman -1
    reduced[3] = reference[3] + rng.normal(scale=0.05, size=(6, 6))
    expected = [scipy.stats.spearmanr(np.abs(x).ravel(), np.abs(y).ravel())[0]
                for x, y in zip(reference, reduced)]
    fields = fidelity.compare(
        types.SimpleNamespace(maps=reference, predicted=np.array([1, 0, 1, 2])),
        types.SimpleNamespace(maps=reduced[..., None], predicted=np.array([1, 1, 1, 2])))
    assert fields["mean_spearman"] == pytest.approx(np.mean(expected), abs=1e-6)
    assert fields["min_spearman"] == pytest.approx(min(expected), abs=1e-6) == -1.0
    assert fields["top5_overlap"] == pytest.approx(
        _set_overlap(reference, reduced, 0.05).mean(), abs=1e-6)
    assert fields["predicted_agreement"] == pytest.approx(0.75)
