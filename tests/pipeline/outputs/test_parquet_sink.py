"""The Parquet sink writes the map column without dictionary or statistics, byte-split."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.outputs import parquet_sink

SCHEMA = pa.schema([("example_id", pa.string()),
                    ("saliency", pa.list_(pa.float16(), 64))])


def _batch(start, rows):
    maps = np.random.default_rng(start).random((rows, 64)).astype(np.float16)
    return pa.Table.from_arrays(
        [pa.array([f"id-{start + i}" for i in range(rows)]),
         pa.FixedSizeListArray.from_arrays(pa.array(maps.reshape(-1)), 64)], schema=SCHEMA)


def _write(path, tables):
    sink = parquet_sink.TableParquetSink(str(path), SCHEMA, "zstd", plain_columns=("saliency",))
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
