"""Every table encoder of ``pipeline.tables``: rows encoded, written to Parquet, read back through
the loaders (and pandas), and EVERY column of the schema compared with the values that went in
(or with a numpy reference for the aggregates). Each test first checks that it covers every
column of its schema, so a column added later without a check fails here."""

import json
import types

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gbp_ops import aggregates
from gbp_ops.statistics import AGGREGATED_STATISTICS, HISTOGRAM_BINS, HISTOGRAM_STATISTICS
from pipeline import tables
from pipeline.outputs import loader
from pipeline.records import AuditBatch, DeadLetter
from pipeline.tables import assignments as assignments_table
from pipeline.tables import clusters as clusters_table
from pipeline.tables import embedding as embedding_table
from pipeline.tables import errors as errors_table
from pipeline.tables import examples as examples_table
from pipeline.tables import saliency as saliency_table
from pipeline.tables import sanity as sanity_table
from pipeline.tables import stats as stats_table

MAP_SHAPE = (3, 4)


def write_table(root, table, arrow_table):
    folder = root / table
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(arrow_table, folder / f"{table}-00000-of-00001.parquet")


def _assert_same(got, expected):
    """Element-wise equality with None/NaN/<NA> all meaning 'missing'."""
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        if b is None or (isinstance(b, float) and np.isnan(b)):
            assert a is None or a is pd.NA or (isinstance(a, float) and np.isnan(a)), (a, b)
        else:
            assert a == b, (a, b)


def audit_batch(seed=0, count=5):
    """An AuditBatch with every column: strings, nullable labels and correct flags, float32
    scores with more than float16's 11 bits, NaN statistics and box areas."""
    rng = np.random.default_rng(seed)
    labels = [1, 2, 0, 2, None][:count]
    predicted = np.array([1, 0, 2, 2, 1][:count], np.int64)
    columns = {
        saliency_table.EXAMPLE_ID: np.array([f"ex-{seed}-{i}" for i in range(count)], object),
        saliency_table.POSITION: np.array([f"shard-{i % 2}:{i}" for i in range(count)], object),
        saliency_table.LABEL: np.array(labels, object),
        saliency_table.LABEL_NAME: np.array([None if v is None else f"name{v}" for v in labels],
                                            object),
        saliency_table.PREDICTED: predicted,
        saliency_table.PREDICTED_NAME: np.array([f"name{p}" for p in predicted], object),
        saliency_table.TARGET: np.array([1, 1, 0, 2, 0][:count], np.int64),
        saliency_table.TARGET_SCORE: (rng.normal(size=count) * 3.14159).astype(np.float32),
        saliency_table.TARGET_PROB: rng.random(count).astype(np.float32),
        saliency_table.CORRECT: np.array([None if v is None else bool(v == p)
                                          for v, p in zip(labels, predicted)], object),
        saliency_table.BOX_AREA: np.array([0.25, np.nan, 0.125, np.nan, 0.5][:count]),
    }
    maps = (rng.random((count, *MAP_SHAPE)) * rng.uniform(1e-6, 10.0, (count, 1, 1))).astype(
        np.float32)
    maps[2] = 0.0  # an all-zero map
    statistics = rng.random((count, len(AGGREGATED_STATISTICS)))
    statistics[1, 3] = np.nan
    statistics[:, -1] = np.where(np.isnan(columns[saliency_table.BOX_AREA]), np.nan,
                                 statistics[:, -1])
    return AuditBatch(columns, maps, statistics, np.zeros((count, 2, 2, 3), np.uint8))


@pytest.mark.parametrize("map_dtype", ["float32", "float16", "uint8"])
def test_saliency_every_column_round_trips(tmp_path, map_dtype):
    batch = audit_batch(seed=1)
    schema = saliency_table.arrow_schema(MAP_SHAPE, map_dtype, {"map_shape": list(MAP_SHAPE)})
    write_table(tmp_path, tables.SALIENCY, saliency_table.encode(batch, schema, map_dtype))
    frame = loader.load_saliency(str(tmp_path))
    raw = pd.read_parquet(tmp_path / tables.SALIENCY)
    checked = set()
    for name, values in batch.columns.items():
        _assert_same(frame[name].tolist(), values.tolist())
        checked.add(name)
    np.testing.assert_array_equal(frame[saliency_table.TARGET_SCORE].to_numpy(),
                                  batch.columns[saliency_table.TARGET_SCORE])  # bit-exact
    assert str(frame[saliency_table.LABEL].dtype) == "Int64"
    for index, name in enumerate(AGGREGATED_STATISTICS):
        np.testing.assert_array_equal(frame[name].to_numpy(), batch.statistics[:, index])
        checked.add(name)
    peaks = np.abs(batch.maps).reshape(len(batch.maps), -1).max(axis=1)
    decoded = np.stack(frame[saliency_table.SALIENCY_MAP].to_list())
    assert decoded.shape == (len(batch.maps), *MAP_SHAPE)
    if map_dtype == "float16":  # raw values, each within float16's relative precision
        assert (np.abs(decoded - batch.maps) <= np.abs(batch.maps) / 2048).all()
    else:
        tolerance = {"float32": 0.0, "uint8": 0.5 / 255}[map_dtype]
        assert (np.abs(decoded - batch.maps) <= tolerance * peaks[:, None, None] + 1e-12).all()
    checked.add(saliency_table.SALIENCY_MAP)
    if map_dtype == "uint8":
        np.testing.assert_array_equal(raw[saliency_table.SALIENCY_SCALE].to_numpy(), peaks)
        checked.add(saliency_table.SALIENCY_SCALE)
    assert checked == set(schema.names)


def _nan_stats(values):
    present = values[~np.isnan(values)]
    mean = present.mean() if len(present) else np.nan
    std = present.std(ddof=1) if len(present) > 1 else np.nan
    return mean, std, np.histogram(np.clip(present, 0, 1), np.linspace(0, 1, HISTOGRAM_BINS + 1))[0]


def test_stats_every_column_round_trips(tmp_path):
    rng = np.random.default_rng(2)
    class_names = ("circle", "square")
    groups = [(("overall", None, None), 9), (("class", 1, None), 6), (("class", 2, None), 3),
              (("class_correct", 0, True), 4), (("class_correct", 1, False), 2)]
    inputs, rows = [], []
    for key, count in groups:
        values = rng.random((count, len(AGGREGATED_STATISTICS)))
        values[:, 0] *= 50.0  # total_mass is unbounded (it has no histogram)
        values[0, 3] = np.nan
        if count == 2:
            values[:, 4] = np.nan  # a statistic never defined in this group
        maps = rng.random((count, *MAP_SHAPE)) * rng.uniform(0.5, 5.0, (count, 1, 1))
        inputs.append((key, values, maps))
        rows.append(stats_table.encode_row(key, aggregates.accumulate(values, maps,
                                                                      HISTOGRAM_BINS),
                                           class_names))
    schema = stats_table.arrow_schema(MAP_SHAPE)
    write_table(tmp_path, tables.STATS, pa.Table.from_pylist(rows, schema=schema))
    (tmp_path / "manifest.json").write_text(json.dumps({"map_shape": list(MAP_SHAPE)}))
    frame = loader.load_stats(str(tmp_path))
    checked = {stats_table.GROUP, stats_table.CLASS, stats_table.CLASS_NAME, stats_table.CORRECT,
               stats_table.COUNT, stats_table.MEAN_MAP}
    _assert_same(frame[stats_table.GROUP].tolist(), [key[0] for key, _, _ in inputs])
    _assert_same(frame[stats_table.CLASS].tolist(), [key[1] for key, _, _ in inputs])
    assert str(frame[stats_table.CLASS].dtype) == "Int64"
    # a class index past the class names has no name
    _assert_same(frame[stats_table.CLASS_NAME].tolist(),
                 [None, "square", None, "circle", "square"])
    _assert_same(frame[stats_table.CORRECT].tolist(), [key[2] for key, _, _ in inputs])
    assert frame[stats_table.COUNT].tolist() == [len(values) for _, values, _ in inputs]
    for (_, values, maps), (_, row) in zip(inputs, frame.iterrows()):
        for index, name in enumerate(AGGREGATED_STATISTICS):
            mean, std, histogram = _nan_stats(values[:, index])
            _assert_close_or_missing(row[f"{name}_mean"], mean)
            _assert_close_or_missing(row[f"{name}_std"], std)
            checked |= {f"{name}_mean", f"{name}_std"}
            if name in HISTOGRAM_STATISTICS:
                assert list(row[f"{name}_hist"]) == histogram.tolist()
                checked.add(f"{name}_hist")
        expected_map = (maps / maps.reshape(len(maps), -1).max(axis=1)[:, None, None]).mean(0)
        np.testing.assert_allclose(row[stats_table.MEAN_MAP], expected_map, rtol=1e-6)
    assert checked == set(schema.names)


def _assert_close_or_missing(value, expected):
    if np.isnan(expected):
        assert value is None or np.isnan(value)
    else:
        assert value == pytest.approx(expected, rel=1e-9)


def test_errors_every_column_round_trips(tmp_path):
    letters = [DeadLetter("id-1", "shard-0:4", "decode", "cannot decode image: bad"),
               DeadLetter(None, "shard-1:0", "parse", "not a tf.train.Example")]
    write_table(tmp_path, tables.ERRORS, pa.Table.from_pylist(
        [errors_table.encode_row(letter) for letter in letters],
        schema=errors_table.ERRORS_SCHEMA))
    frame = loader.load_errors(str(tmp_path))
    fields = {saliency_table.EXAMPLE_ID: "example_id", saliency_table.POSITION: "position",
              errors_table.STAGE: "stage", errors_table.ERROR: "error"}
    assert set(fields) == set(errors_table.ERRORS_SCHEMA.names)
    for column, attribute in fields.items():
        _assert_same(frame[column].tolist(), [getattr(letter, attribute) for letter in letters])


def test_sanity_every_column_round_trips(tmp_path):
    randomization = {"depth": 2, "randomized_layers": "head,fc", "example_index": 0,
                     "spearman": 0.625, "ssim": 0.375}
    sensitivity = {"check": "class_sensitivity", "depth": 0, "randomized_layers": "",
                   "example_index": 1, "target": 2, "other_class": 0, "spearman": -0.25,
                   "ssim": 0.125}
    rows = [sanity_table.encode_row(randomization, "ex-a"),
            sanity_table.encode_row(sensitivity, "ex-b")]
    write_table(tmp_path, tables.SANITY, pa.Table.from_pylist(
        rows, schema=sanity_table.SANITY_SCHEMA))
    frame = loader.load_table(str(tmp_path), tables.SANITY)
    expected = {
        sanity_table.CHECK: ["randomization", "class_sensitivity"],
        sanity_table.DEPTH: [2, 0],
        sanity_table.RANDOMIZED_LAYERS: ["head,fc", ""],
        saliency_table.EXAMPLE_ID: ["ex-a", "ex-b"],
        saliency_table.TARGET: [None, 2],
        sanity_table.OTHER_CLASS: [None, 0],
        sanity_table.SPEARMAN: [0.625, -0.25],
        sanity_table.SSIM: [0.375, 0.125],
    }
    assert set(expected) == set(sanity_table.SANITY_SCHEMA.names)
    for column, values in expected.items():
        _assert_same(frame[column].tolist(), values)


def test_examples_every_column_round_trips(tmp_path):
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (5, 7, 3), dtype=np.uint8) for _ in range(3)]
    inputs = [("border", 0, 0.875, "ex-3", images[0]), ("border", 1, 0.5, "ex-9", images[1]),
              ("diffuse", 0, 0.0625, "ex-4", images[2])]
    write_table(tmp_path, tables.EXAMPLES, pa.Table.from_pylist(
        [examples_table.encode_row(*item) for item in inputs],
        schema=examples_table.EXAMPLES_SCHEMA))
    frame = loader.load_table(str(tmp_path), tables.EXAMPLES)
    assert set(examples_table.EXAMPLES_SCHEMA.names) == {
        examples_table.RANKING, examples_table.RANK, examples_table.SCORE,
        saliency_table.EXAMPLE_ID, examples_table.IMAGE_PNG}
    assert frame[examples_table.RANKING].tolist() == [item[0] for item in inputs]
    assert frame[examples_table.RANK].tolist() == [item[1] for item in inputs]
    assert frame[examples_table.SCORE].tolist() == [item[2] for item in inputs]
    assert frame[saliency_table.EXAMPLE_ID].tolist() == [item[3] for item in inputs]
    for png, image in zip(frame[examples_table.IMAGE_PNG], images):
        np.testing.assert_array_equal(examples_table.decode_image(png), image)


def _found_cluster(rng, flip, control, occluded):
    return {"mean_map": rng.random((4, 4)).astype(np.float32),
            "region": [0.0, 0.25, 0.5, 0.75], "control_region": [0.5, 0.0, 1.0, 0.5],
            "flip_rate": flip, "control_flip_rate": control, "occluded_examples": occluded}


def test_clusters_every_column_round_trips(tmp_path):
    rng = np.random.default_rng(4)
    found = [_found_cluster(rng, 0.875, 0.125, 16), _found_cluster(rng, np.nan, np.nan, 0)]
    found[1]["region"], found[1]["control_region"] = [0.25, 0.25, 0.5, 0.5], [0.0, 0.75, 0.25, 1.0]
    inputs = [(1, "square", 0, 30, 0.75, 0.625, found[0], True, "square: 30 of 40 ..."),
              (1, "square", 1, 10, 0.25, None, found[1], False, "square: 10 of 40 ...")]
    write_table(tmp_path, tables.CLUSTERS, pa.Table.from_pylist(
        [clusters_table.encode_row(*item) for item in inputs],
        schema=clusters_table.arrow_schema(4)))
    frame = loader.load_table(str(tmp_path), tables.CLUSTERS)
    simple = {stats_table.CLASS: 0, stats_table.CLASS_NAME: 1, clusters_table.CLUSTER: 2,
              stats_table.COUNT: 3, clusters_table.SHARE: 4, clusters_table.ACCURACY: 5,
              clusters_table.FLAGGED: 7, clusters_table.REASON: 8}
    for column, position in simple.items():
        _assert_same(frame[column].tolist(), [item[position] for item in inputs])
    from_found = (clusters_table.REGION, clusters_table.CONTROL_REGION, clusters_table.FLIP_RATE,
                  clusters_table.CONTROL_FLIP_RATE, clusters_table.OCCLUDED_EXAMPLES)
    for column in from_found:
        for got, cluster in zip(frame[column], found):
            key = column if column != clusters_table.OCCLUDED_EXAMPLES else "occluded_examples"
            _assert_same(np.atleast_1d(got).tolist(), np.atleast_1d(cluster[key]).tolist())
    for got, cluster in zip(clusters_table.decode_mean_maps(frame), found):
        np.testing.assert_array_equal(got, cluster["mean_map"])
    assert set(simple) | set(from_found) | {stats_table.MEAN_MAP} == set(
        clusters_table.arrow_schema(4).names)


def test_assignments_every_column_round_trips(tmp_path):
    ids, targets, clusters = ["a", "b", "c", "d"], [1, 0, 1, 3], [2, 0, 0, 1]
    write_table(tmp_path, tables.ASSIGNMENTS, assignments_table.encode(ids, targets, clusters))
    frame = loader.load_table(str(tmp_path), tables.ASSIGNMENTS)
    expected = {saliency_table.EXAMPLE_ID: ids, saliency_table.TARGET: targets,
                clusters_table.CLUSTER: clusters}
    assert set(expected) == set(assignments_table.ASSIGNMENTS_SCHEMA.names)
    for column, values in expected.items():
        assert frame[column].tolist() == values


def test_embedding_every_column_round_trips(tmp_path):
    found = types.SimpleNamespace(
        class_index=2, sample_ids=np.array(["s1", "s2", "s3"]),
        clustering=types.SimpleNamespace(labels=np.array([1, 0, 1]), embedding=np.array(
            [[0.5, -0.25], [0.125, 0.75], [-0.375, 0.0625]], np.float32)))
    write_table(tmp_path, tables.EMBEDDING, pa.Table.from_pylist(
        embedding_table.encode_rows(found), schema=embedding_table.EMBEDDING_SCHEMA))
    frame = loader.load_table(str(tmp_path), tables.EMBEDDING)
    expected = {saliency_table.EXAMPLE_ID: ["s1", "s2", "s3"], stats_table.CLASS: [2, 2, 2],
                clusters_table.CLUSTER: [1, 0, 1],
                embedding_table.EMBEDDING_X: [0.5, 0.125, -0.375],
                embedding_table.EMBEDDING_Y: [-0.25, 0.75, 0.0625]}
    assert set(expected) == set(embedding_table.EMBEDDING_SCHEMA.names)
    for column, values in expected.items():
        assert frame[column].tolist() == values
