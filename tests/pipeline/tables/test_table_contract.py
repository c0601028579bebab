"""The storage contract of every table, checked on the Parquet the project's writer produces:
types BigQuery's Parquet table maps and Spark's converter accepts (no FLOAT16, no unsigned),
BYTE_STREAM_SPLIT only on FLOAT/DOUBLE, no SQL reserved word as a column name, one name and
type for the explained class, a description for every column, ``schema_version`` in every
schema, and ``docs/SCHEMA.md`` equal to the page the code generates."""

import io
import json
import os

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gbp_ops.statistics import AGGREGATED_STATISTICS
from pipeline import tables
from pipeline.outputs import schema_page
from pipeline.outputs.parquet_sink import RowGroupWriter, parquet_writer
from pipeline.records import AuditBatch
from pipeline.tables import catalog
from pipeline.tables import saliency as saliency_table
from tests.e2e.helpers import REPO

MAP_DTYPES = ("float16", "float32", "uint8")

# BigQuery, "Loading Parquet data from Cloud Storage", Parquet conversions: the (physical type,
# logical type) pairs it maps, as ``pyarrow.parquet`` names them (logical None: no
# annotation). Unsigned INT annotations are left out on purpose: Spark < 3.2 rejects them.
BIGQUERY_PARQUET_TYPES = {
    ("BOOLEAN", "NONE"): "BOOL",
    ("INT32", "NONE"): "INT64",
    ("INT32", "INT(8, signed)"): "INT64",
    ("INT32", "INT(16, signed)"): "INT64",
    ("INT32", "INT(32, signed)"): "INT64",
    ("INT32", "DATE"): "DATE",
    ("INT64", "NONE"): "INT64",
    ("INT64", "INT(64, signed)"): "INT64",
    ("INT64", "TIMESTAMP"): "TIMESTAMP",
    ("FLOAT", "NONE"): "FLOAT64",
    ("DOUBLE", "NONE"): "FLOAT64",
    ("BYTE_ARRAY", "NONE"): "BYTES",
    ("BYTE_ARRAY", "STRING"): "STRING",
    ("BYTE_ARRAY", "JSON"): "JSON",
    ("FIXED_LEN_BYTE_ARRAY", "NONE"): "BYTES",
}

# GoogleSQL reserved keywords (BigQuery, "Lexical structure and syntax", Reserved keywords).
BIGQUERY_RESERVED = set("""
ALL AND ANY ARRAY AS ASC ASSERT_ROWS_MODIFIED AT BETWEEN BY CASE CAST COLLATE CONTAINS CREATE
CROSS CUBE CURRENT DEFAULT DEFINE DESC DISTINCT ELSE END ENUM ESCAPE EXCEPT EXCLUDE EXISTS
EXTRACT FALSE FETCH FOLLOWING FOR FROM FULL GROUP GROUPING GROUPS HASH HAVING IF IGNORE IN
INNER INTERSECT INTERVAL INTO IS JOIN LATERAL LEFT LIKE LIMIT LOOKUP MERGE NATURAL NEW NO NOT
NULL NULLS OF ON OR ORDER OUTER OVER PARTITION PRECEDING PROTO QUALIFY RANGE RECURSIVE RESPECT
RIGHT ROLLUP ROWS SELECT SET SOME STRUCT TABLESAMPLE THEN TO TREAT TRUE UNBOUNDED UNION UNNEST
USING WHEN WHERE WINDOW WITH WITHIN""".split())


def _all_schemas():
    for map_dtype in MAP_DTYPES:
        for table, schema in catalog.schemas((8, 8), map_dtype, 4).items():
            yield f"{table}[{map_dtype}]", schema


def _audit_batch(rows=6, size=8):
    rng = np.random.default_rng(0)
    maps = (rng.random((rows, size, size)) * 1e-6).astype(np.float32)
    columns = {
        saliency_table.EXAMPLE_ID: np.array([f"e{i}" for i in range(rows)], object),
        saliency_table.POSITION: np.array([f"f:{i}" for i in range(rows)], object),
        saliency_table.LABEL: np.array([i % 2 if i else None for i in range(rows)], object),
        saliency_table.LABEL_NAME: np.array([None] * rows, object),
        saliency_table.PREDICTED: np.arange(rows) % 2,
        saliency_table.PREDICTED_NAME: np.array([None] * rows, object),
        saliency_table.TARGET: np.arange(rows) % 2,
        saliency_table.TARGET_SCORE: rng.random(rows).astype(np.float32),
        saliency_table.TARGET_PROB: rng.random(rows).astype(np.float32),
        saliency_table.CORRECT: np.array([None] + [True] * (rows - 1), object),
        saliency_table.BOX_AREA: np.full(rows, np.nan),
    }
    statistics = rng.random((rows, len(AGGREGATED_STATISTICS)))
    statistics[0, :] = np.nan
    return AuditBatch(columns, maps, statistics, np.zeros((rows, size, size, 3), np.uint8))


def _written(schema, table=None, plain_columns=()):
    """``schema`` (and ``table``'s rows) written as the sinks write them -> ParquetFile."""
    buffer = io.BytesIO()
    writer = RowGroupWriter(parquet_writer(buffer, schema, "zstd", plain_columns))
    writer.write_table(table if table is not None else schema.empty_table())
    writer.close()
    return pq.ParquetFile(io.BytesIO(buffer.getvalue()))


def _logical(column):
    logical = column.logical_type
    if logical.type.upper() == "INT":
        found = json.loads(logical.to_json())
        return f"INT({found['bitWidth']}, {'signed' if found['isSigned'] else 'unsigned'})"
    return logical.type.upper()


def test_every_column_is_a_type_bigquery_and_spark_read():
    for name, schema in _all_schemas():
        parquet = _written(schema).schema
        for index in range(len(parquet)):
            column = parquet.column(index)
            key = (column.physical_type, _logical(column))
            assert key in BIGQUERY_PARQUET_TYPES, (name, column.path, key)
            assert column.logical_type.type.upper() != "FLOAT16", (name, column.path)
            assert "unsigned" not in key[1], (name, column.path)
        for field in schema:
            leaf = field.type
            while pa.types.is_list(leaf) or pa.types.is_fixed_size_list(leaf):
                leaf = leaf.value_type
            assert leaf != pa.float16() and not pa.types.is_unsigned_integer(leaf), (name,
                                                                                     field)


@pytest.mark.parametrize("map_dtype", MAP_DTYPES)
def test_saliency_files_byte_split_only_float_columns_and_read_back(map_dtype):
    schema = saliency_table.arrow_schema((8, 8), map_dtype, {"map_shape": [8, 8]})
    batch = _audit_batch()
    table = saliency_table.encode(batch, schema, map_dtype)
    parquet = _written(schema, table, saliency_table.plain_columns(map_dtype))
    group = parquet.metadata.row_group(0)
    for index in range(group.num_columns):
        chunk = group.column(index)
        if "BYTE_STREAM_SPLIT" in chunk.encodings:
            assert chunk.physical_type in ("FLOAT", "DOUBLE"), (map_dtype, chunk.path_in_schema)
    maps = saliency_table.decode_maps(parquet.read().to_pandas(), {"map_shape": [8, 8]})
    exact = batch.maps.astype(np.float64)
    got = np.stack(maps).astype(np.float64)
    if map_dtype == "float32":
        np.testing.assert_array_equal(got, exact)
    elif map_dtype == "float16":  # raw values (1e-6 scale, below float16's normal range)
        assert np.all(np.abs(got - exact) <= np.abs(exact) * 2.0 ** -11)
        reference = np.float16(exact * 2.0 ** 20).astype(np.float64) / 2.0 ** 20
        np.testing.assert_array_equal(got, reference)  # float16 rounding, exponent shifted
    else:
        peaks = exact.reshape(len(exact), -1).max(axis=1)[:, None, None]
        assert np.all(np.abs(got - exact) <= peaks / 255 / 2 * (1 + 1e-6))


def test_no_column_is_a_sql_reserved_word():
    reserved = {word.lower() for word in BIGQUERY_RESERVED} | {
        row[0].lower() for row in duckdb.sql(
            "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'"
        ).fetchall()}
    assert {"group", "check", "all", "table"} <= reserved  # the lists are the real ones
    for name, schema in _all_schemas():
        assert not set(schema.names) & reserved, (name, set(schema.names) & reserved)
        assert "count" not in schema.names, name  # shadows DataFrame.count


def test_the_explained_class_has_one_name_and_type():
    for name, schema in _all_schemas():
        assert not {"class", "class_name", "group", "check"} & set(schema.names), name
        if saliency_table.TARGET in schema.names:
            assert schema.field(saliency_table.TARGET).type == pa.int64(), name
    schemas = catalog.schemas((8, 8), "float16", 4)
    holding = {table for table, schema in schemas.items() if "target" in schema.names}
    assert holding == {tables.SALIENCY, tables.STATS, tables.SANITY, tables.CLUSTERS,
                       tables.ASSIGNMENTS, tables.EMBEDDING, tables.COMPARISON_CLASSES,
                       tables.COMPARISON_FINDINGS}
    nullable = {table for table in holding if schemas[table].field("target").nullable}
    assert nullable == {tables.STATS, tables.SANITY}


def test_nullable_columns_read_as_nullable_pandas_types():
    """Int64 and boolean, not float64 or object, once a value is missing."""
    schemas = catalog.schemas((8, 8), "float16", 4)
    for table, schema in schemas.items():
        frame = schema.empty_table().to_pandas()
        for field in schema:
            if field.type == pa.bool_() and field.nullable:
                assert str(frame[field.name].dtype) == "boolean", (table, field.name)
            if field.type == pa.int64() and field.nullable:
                assert str(frame[field.name].dtype) == "Int64", (table, field.name)


def test_every_schema_carries_the_schema_version():
    for name, schema in _all_schemas():
        assert tables.schema_version(schema) == tables.SCHEMA_VERSION, name
        assert tables.schema_version(_written(schema).schema_arrow) == tables.SCHEMA_VERSION


def test_every_column_is_described():
    for map_dtype in MAP_DTYPES:
        for table, schema in catalog.schemas((8, 8), map_dtype, 4).items():
            _, columns = catalog.description(table)
            assert set(schema.names) <= set(columns), (table, set(schema.names) - set(columns))
            assert all(meaning for _, meaning in columns.values()), table


def test_schema_page_matches_the_code():
    with open(os.path.join(REPO, "docs", "SCHEMA.md"), encoding="utf-8") as handle:
        page = handle.read()
    assert page == schema_page.render(), (
        "docs/SCHEMA.md is stale: python -m pipeline.outputs.schema_page docs/SCHEMA.md")
    for table in tables.TABLES:
        assert f"## `{table}/`" in page
        for field in catalog.schemas((8, 8), "float16", 4)[table]:
            assert f"| `{field.name}` |" in page, (table, field.name)
