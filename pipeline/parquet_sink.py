"""A Parquet file sink for ``pa.Table`` batches with per-column encoding choices.

Beam's ``WriteToParquetBatched`` tries dictionary encoding and min/max statistics on every
column. For the saliency maps (hundreds of thousands of near-unique floats per batch) both are
wasted work: switching them off for the map column made the Parquet encode about 4x faster
for 4% more bytes. This sink is Beam's public ``FileBasedSink`` with that one change.
"""

import pyarrow.parquet as pq
from apache_beam.io import filebasedsink
from apache_beam.io.filesystem import CompressionTypes


class TableParquetSink(filebasedsink.FileBasedSink):
    """Writes ``pa.Table`` elements to Parquet files.

    Args:
        file_path_prefix: prefix of the shard files.
        schema: the ``pa.Schema`` every table has.
        codec: Parquet compression codec, e.g. ``'zstd'``.
        plain_columns: columns written without dictionary encoding and statistics.
        file_name_suffix, num_shards, shard_name_template: as for Beam's file sinks.
    """

    def __init__(self, file_path_prefix, schema, codec, plain_columns=(), file_name_suffix="",
                 num_shards=0, shard_name_template=None):
        super().__init__(file_path_prefix, coder=None, file_name_suffix=file_name_suffix,
                         num_shards=num_shards, shard_name_template=shard_name_template,
                         mime_type="application/x-parquet",
                         compression_type=CompressionTypes.UNCOMPRESSED)
        self._schema = schema
        self._codec = codec
        self._encoded_columns = [name for name in schema.names if name not in plain_columns]
        self._file_handle = None

    def open(self, temp_path):
        self._file_handle = super().open(temp_path)
        return pq.ParquetWriter(self._file_handle, self._schema, compression=self._codec,
                                use_dictionary=self._encoded_columns,
                                write_statistics=self._encoded_columns)

    def write_record(self, writer, table):
        writer.write_table(table)

    def close(self, writer):
        writer.close()
        self._file_handle.close()
        self._file_handle = None
