"""Every table of a real small run, read by the clients people use (pandas with pyarrow, DuckDB,
Polars; real clients, no mocks): ``SELECT *``, a per-class aggregate, the map's sum against
numpy's float64 sum of the same stored map, and a join of saliency with assignments; no NaN
where a value is undefined; the manifest's new fields against the tables they summarise; and
empty tables (stages off, or an input with no records) that still read with their schema."""

import datetime
import json
import os

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import pipeline
from gbp_ops import sanity
from pipeline import tables
from pipeline.findings import merge
from pipeline.tables import SCHEMA_VERSION, schema_version
from tests.e2e import helpers

COUNT = 64
RUN_TABLES = tuple(name for name in tables.TABLES if name not in tables.COMPARISON_TABLES)
SANITY_SAMPLE = 8


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """Every stage on (findings, sanity, report), default map storage (float16 precision)."""
    root = tmp_path_factory.mktemp("engines")
    helpers.shapes_inputs(root, COUNT, seed=21, num_shards=2)
    output = root / "out"
    manifest = helpers.run_demo_preset(
        str(root / "data" / "*.tfrecord"), str(root / "model.keras"), output,
        "explain.batch_size=16", "explain.target=label", "sanity.enabled=true",
        f"sanity.sample_size={SANITY_SAMPLE}", findings=True)
    return output, manifest


def _glob(output, table):
    return os.path.join(str(output), table, "*.parquet")


def _clients(output, table):
    """The table as each client reads it: ``{client: pandas DataFrame}``."""
    return {"pandas": pd.read_parquet(output / table),
            "duckdb": duckdb.sql(f"SELECT * FROM read_parquet('{_glob(output, table)}')").df(),
            "polars": pl.read_parquet(_glob(output, table)).to_pandas()}


def test_every_table_reads_in_pandas_duckdb_and_polars(full_run):
    output, manifest = full_run
    assert set(manifest["tables"]) == set(RUN_TABLES)
    for table in RUN_TABLES:
        stored = pq.read_schema(sorted((output / table).glob("*.parquet"))[0])
        for client, frame in _clients(output, table).items():
            assert list(frame.columns) == stored.names, (table, client)
            assert len(frame) == manifest["tables"][table]["rows"], (table, client)
            assert len(frame) > 0 or table == tables.ERRORS, (table, client)


def test_the_explained_class_is_one_int64_column_in_every_table(full_run):
    output, _ = full_run
    for table in RUN_TABLES:
        schema = pq.read_schema(sorted((output / table).glob("*.parquet"))[0])
        assert "class" not in schema.names and "class_name" not in schema.names, table
        if "target" in schema.names:
            assert schema.field("target").type == pa.int64(), table
            # nullable only where it can be null: the overall stats row, randomization rows
            assert schema.field("target").nullable == (table in (tables.STATS, tables.SANITY))
    stats = pd.read_parquet(output / "stats")
    assert str(stats.correct.dtype) == "boolean"
    assert len(stats[stats.correct.fillna(False)]) == (stats.correct == True).sum()  # noqa: E712


def test_per_class_counts_agree_across_clients(full_run):
    output, _ = full_run
    for table in (tables.SALIENCY, tables.ASSIGNMENTS, tables.EMBEDDING, tables.CLUSTERS,
                  tables.SANITY):
        frame = pd.read_parquet(output / table)
        expected = frame.dropna(subset=["target"]).groupby("target").size().to_dict()
        found_duckdb = dict(duckdb.sql(
            f"SELECT target, count(*) FROM read_parquet('{_glob(output, table)}') "
            "WHERE target IS NOT NULL GROUP BY target").fetchall())
        found_polars = dict(pl.read_parquet(_glob(output, table)).drop_nulls("target")
                            .group_by("target").len().iter_rows())
        assert found_duckdb == found_polars == {int(k): v for k, v in expected.items()}, table
    # stats: the class rows' example counts per class equal the saliency rows per class
    per_class = dict(duckdb.sql(
        f"SELECT target, example_count FROM read_parquet('{_glob(output, 'stats')}') "
        "WHERE group_kind = 'class'").fetchall())
    saliency = pd.read_parquet(output / "saliency", columns=["target"])
    assert per_class == saliency.groupby("target").size().to_dict()


def test_map_sums_equal_numpy_float64_sums_of_the_stored_maps(full_run):
    output, _ = full_run
    frame = pd.read_parquet(output / "saliency", columns=["example_id", "saliency",
                                                          "total_mass"])
    expected = {row.example_id: np.sum(row.saliency.astype(np.float64))
                for row in frame.itertuples()}
    by_duckdb = dict(duckdb.sql(
        f"SELECT example_id, list_sum(saliency) FROM read_parquet('{_glob(output, 'saliency')}')"
    ).fetchall())
    by_polars = dict(pl.read_parquet(_glob(output, "saliency")).select(
        "example_id", pl.col("saliency").arr.sum()).iter_rows())
    for example_id, total in expected.items():
        assert total > 0
        assert by_duckdb[example_id] == pytest.approx(total, rel=1e-5)
        assert by_polars[example_id] == pytest.approx(total, rel=1e-5)
    # raw values, not a per-row [0, 1] view: the sum of |map| is the run's own total_mass,
    # up to float16's rounding of each value (2**-11 relative)
    for row in frame.itertuples():
        stored = np.abs(row.saliency.astype(np.float64)).sum()
        assert abs(stored - row.total_mass) <= 2.0 ** -11 * row.total_mass
    peaks = duckdb.sql(f"SELECT max(list_max(saliency)) FROM read_parquet("
                       f"'{_glob(output, 'saliency')}')").fetchall()[0][0]
    assert peaks == pytest.approx(max(row.saliency.max() for row in frame.itertuples()))
    assert peaks != 1.0


def test_saliency_joins_assignments_on_example_id(full_run):
    output, _ = full_run
    saliency = pd.read_parquet(output / "saliency", columns=["example_id", "target"])
    assignments = pd.read_parquet(output / "assignments")
    expected = (saliency.merge(assignments, on=["example_id", "target"])
                .groupby(["target", "cluster"]).size().to_dict())
    assert sum(expected.values()) == COUNT
    by_duckdb = {(t, c): n for t, c, n in duckdb.sql(
        f"SELECT s.target, a.cluster, count(*) FROM read_parquet('{_glob(output, 'saliency')}') s"
        f" JOIN read_parquet('{_glob(output, 'assignments')}') a USING (example_id)"
        " GROUP BY ALL").fetchall()}
    by_polars = {(t, c): n for t, c, n in pl.read_parquet(_glob(output, "saliency")).join(
        pl.read_parquet(_glob(output, "assignments")), on="example_id").group_by(
            "target", "cluster").len().iter_rows()}
    assert by_duckdb == by_polars == {(int(t), int(c)): n for (t, c), n in expected.items()}


def _float_values(column):
    """A column's float values, lists flattened (None: not a float column)."""
    while pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
        column = pc.list_flatten(column)
    return column if pa.types.is_floating(column.type) else None


def test_no_table_holds_nan(full_run):
    """Undefined numbers (an all-zero map's entropy, a constant map's Spearman, an unlabelled
    accuracy) are null; NaN would make SQL averages NaN."""
    output, _ = full_run
    checked = 0
    for table in RUN_TABLES:
        stored = pq.read_table(output / table)
        for name in stored.column_names:
            values = _float_values(stored[name])
            if values is not None:
                checked += 1
                assert not pc.any(pc.is_nan(values)).as_py(), (table, name)
    assert checked > 30


def test_manifest_fields_match_the_tables(full_run):
    output, manifest = full_run
    written = json.loads((output / "manifest.json").read_text())
    assert written["schema_version"] == SCHEMA_VERSION
    created = datetime.datetime.fromisoformat(written["created_at"])
    assert created.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(datetime.UTC) - created).total_seconds()) < 3600
    assert written["status"] == "complete" and written["counts"]["reconciled"]
    for table, entry in written["tables"].items():
        files = sorted((output / table).glob("*.parquet"))
        assert entry == {"rows": sum(pq.ParquetFile(f).metadata.num_rows for f in files),
                         "files": len(files), "bytes": sum(f.stat().st_size for f in files)}
        assert all(schema_version(pq.read_schema(f)) == SCHEMA_VERSION for f in files)
    assert written["tables"]["saliency"]["rows"] == COUNT == written["counts"]["saliency_rows"]

    clusters = pd.read_parquet(output / "clusters")
    flagged = written["findings"]["flagged"]
    assert flagged == json.loads(json.dumps(merge.flagged_findings(
        [row for _, row in clusters.iterrows()])))
    assert sum(len(entry["clusters"]) for entry in flagged) == int(clusters.flagged.sum())

    rows = pd.read_parquet(output / "sanity")
    entry = written["sanity"]
    depths = [item["depth"] for item in entry["by_depth"]]
    assert depths == sorted(depths) and depths
    randomization = rows[rows.sanity_check == "randomization"]
    for item in entry["by_depth"]:
        at_depth = randomization[randomization.depth == item["depth"]]
        assert item["count"] == len(at_depth) == SANITY_SAMPLE
        assert item["spearman_undefined"] == at_depth.spearman.isna().sum()
        if at_depth.spearman.notna().any():
            assert item["spearman_mean"] == pytest.approx(at_depth.spearman.mean())
    thresholds = entry["thresholds"]
    top = entry["randomization"]
    assert top["spearman_mean"] == pytest.approx(
        next(i["spearman_mean"] for i in entry["by_depth"] if i["depth"] == top["depth"]))
    value = top["spearman_mean"]
    by_hand = ("similar" if value >= thresholds["similar_spearman"] else "partly_similar"
               if value >= thresholds["partly_similar_spearman"] else "different")
    assert top["band"] == by_hand == sanity.band(value)
    assert entry["outcome"] in ("pass", "warn", "fail")


def _assert_empty_with_schema(output, table):
    schema = pq.read_schema(sorted((output / table).glob("*.parquet"))[0])
    for client, frame in _clients(output, table).items():
        assert len(frame) == 0 and list(frame.columns) == schema.names, (table, client)


def test_stages_off_leave_no_folder_and_empty_tables_keep_their_schema(tmp_path):
    helpers.shapes_inputs(tmp_path, 8, seed=3, num_shards=1)
    output = tmp_path / "off"
    manifest = helpers.run_demo_preset(str(tmp_path / "data" / "*.tfrecord"),
                                       str(tmp_path / "model.keras"), output,
                                       "explain.batch_size=8", "output.report=false")
    assert set(manifest["tables"]) == {tables.SALIENCY, tables.STATS, tables.ERRORS}
    for table in tables.TABLES:
        assert (output / table).is_dir() == (table in manifest["tables"]), table
    _assert_empty_with_schema(output, tables.ERRORS)
    assert manifest["tables"][tables.ERRORS]["rows"] == 0

    empty_data = tmp_path / "empty"
    empty_data.mkdir()
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(empty_data / "none.tfrecord")):
        pass
    nothing = tmp_path / "nothing"
    manifest = helpers.run_demo_preset(str(empty_data / "*.tfrecord"),
                                       str(tmp_path / "model.keras"), nothing,
                                       "explain.batch_size=8", "sanity.enabled=true",
                                       findings=True)
    assert set(manifest["tables"]) == set(RUN_TABLES)
    for table in RUN_TABLES:
        if table != tables.STATS:
            _assert_empty_with_schema(nothing, table)
        assert manifest["tables"][table]["rows"] == len(pd.read_parquet(nothing / table))
    assert manifest["status"] == "complete" and manifest["counts"]["input"] == 0
    assert len(pipeline.load_saliency(str(nothing))) == 0
