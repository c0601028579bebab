"""The Parquet sink: the map column without dictionary or statistics, byte-split (float32
only), and row groups sized by bytes with bounded writer memory."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.outputs import parquet_sink

SCHEMA = pa.schema([("example_id", pa.string()),
                    ("saliency", pa.list_(pa.float32(), 64))])


def _batch(start, rows, schema=SCHEMA, size=64):
    maps = np.random.default_rng(start).random((rows, size)).astype(np.float32)
    return pa.Table.from_arrays(
        [pa.array([f"id-{start + i}" for i in range(rows)]),
         pa.FixedSizeListArray.from_arrays(pa.array(maps.reshape(-1)), size)], schema=schema)


def _write(path, tables, schema=SCHEMA, plain_columns=("saliency",)):
    sink = parquet_sink.TableParquetSink(str(path), schema, "zstd", plain_columns=plain_columns)
    writer = sink.open(str(path))
    for table in tables:
        sink.write_record(writer, table)
    sink.close(writer)


def test_map_column_skips_dictionary_and_statistics_and_splits_bytes(tmp_path):
    path = tmp_path / "maps.parquet"
    _write(path, [_batch(0, 10)])
    row_group = pq.ParquetFile(path).metadata.row_group(0)
    ids, maps = row_group.column(0), row_group.column(1)
    assert maps.path_in_schema == "saliency.list.element"
    assert "BYTE_STREAM_SPLIT" in maps.encodings
    assert not any("DICTIONARY" in encoding for encoding in maps.encodings)
    assert not maps.is_stats_set
    assert ids.is_stats_set and any("DICTIONARY" in e for e in ids.encodings)


def test_integer_plain_columns_are_never_byte_split(tmp_path):
    """BYTE_STREAM_SPLIT on INT32 is unreadable for pyarrow < 17 and older engines."""
    schema = pa.schema([("example_id", pa.string()), ("saliency", pa.list_(pa.int16(), 4))])
    table = pa.table({"example_id": ["a", "b"],
                      "saliency": pa.FixedSizeListArray.from_arrays(
                          pa.array(np.arange(8, dtype=np.int16)), 4)}, schema=schema)
    path = tmp_path / "codes.parquet"
    _write(path, [table], schema)
    maps = pq.ParquetFile(path).metadata.row_group(0).column(1)
    assert "BYTE_STREAM_SPLIT" not in maps.encodings
    assert pq.read_table(path).equals(table)


def test_small_batches_make_one_row_group(tmp_path):
    """32-row batches used to be 32-row row groups (about 100 footer bytes per row)."""
    path = tmp_path / "maps.parquet"
    batches = [_batch(start, 32) for start in range(0, 3200, 32)]
    _write(path, batches)
    metadata = pq.ParquetFile(path).metadata
    assert metadata.num_row_groups == 1 and metadata.num_rows == 3200
    assert pq.read_table(path).equals(pa.concat_tables(batches))


def test_twenty_thousand_realistic_maps_make_a_few_row_groups_in_bounded_memory(tmp_path):
    """20,000 demo-sized maps (64x64 float32, 16 KiB each: 328 MB) in 32-row batches, as the
    pipeline hands them to the sink: a few row groups of at least ROW_GROUP_BYTES each, and
    the writer never holds much more than one row group of Arrow memory."""
    size = 64 * 64
    schema = pa.schema([("example_id", pa.string()), ("saliency", pa.list_(pa.float32(), size))])
    path = tmp_path / "maps.parquet"
    sink = parquet_sink.TableParquetSink(str(path), schema, "zstd", plain_columns=("saliency",))
    writer = sink.open(str(path))
    baseline, peak, total = pa.total_allocated_bytes(), 0, 0
    rows, batch_rows = 20_000, 32
    for start in range(0, rows, batch_rows):
        table = _batch(start, min(batch_rows, rows - start), schema, size)
        total += table.nbytes
        sink.write_record(writer, table)
        del table
        peak = max(peak, pa.total_allocated_bytes() - baseline)
    sink.close(writer)
    metadata = pq.ParquetFile(path).metadata
    groups = [metadata.row_group(i) for i in range(metadata.num_row_groups)]
    assert metadata.num_rows == rows
    expected = -(-total // parquet_sink.ROW_GROUP_BYTES)  # ceil
    assert len(groups) == expected <= 6
    per_row = total / rows
    for group in groups[:-1]:
        assert group.num_rows * per_row >= parquet_sink.ROW_GROUP_BYTES
    assert peak <= parquet_sink.ROW_GROUP_BYTES + 4 * 1024 * 1024
    assert metadata.serialized_size / rows < 1.0  # footer bytes per row
