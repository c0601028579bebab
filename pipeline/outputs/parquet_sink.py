"""A Parquet file sink for ``pa.Table`` batches with per-column encoding choices.

Beam's ``WriteToParquetBatched`` tries dictionary encoding and min/max statistics on every
column. For the saliency maps (hundreds of thousands of near-unique floats per batch) both are
wasted work: switching them off for the map column made the Parquet encode about 4x faster.
Float maps are also written with BYTE_STREAM_SPLIT, which zstd compresses much better
(measured on 128x128 maps: float16 -13%, float32 -30% bytes). This sink is Beam's public
``FileBasedSink`` with those choices.
"""

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io import filebasedsink
from apache_beam.io.filesystem import CompressionTypes


class TableParquetSink(filebasedsink.FileBasedSink):
    """Writes ``pa.Table`` elements to Parquet files.

    Args:
        file_path_prefix: prefix of the shard files.
        schema: the ``pa.Schema`` every table has.
        codec: Parquet compression codec, e.g. ``'zstd'``.
        plain_columns: columns written without dictionary encoding and statistics; float ones
            (or lists of floats) also with BYTE_STREAM_SPLIT encoding.
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
        self._split_columns = [_leaf_path(schema.field(name)) for name in plain_columns
                               if _is_float(schema.field(name).type)]
        self._file_handle = None

    def open(self, temp_path):
        self._file_handle = super().open(temp_path)
        return pq.ParquetWriter(self._file_handle, self._schema, compression=self._codec,
                                use_dictionary=self._encoded_columns,
                                write_statistics=self._encoded_columns,
                                use_byte_stream_split=self._split_columns or False)

    def write_record(self, writer, table):
        writer.write_table(table)

    def close(self, writer):
        writer.close()
        self._file_handle.close()
        self._file_handle = None


def _value_type(arrow_type):
    return arrow_type.value_type if pa.types.is_list(arrow_type) or pa.types.is_fixed_size_list(
        arrow_type) else arrow_type


def _is_float(arrow_type):
    return pa.types.is_floating(_value_type(arrow_type))


def _leaf_path(field):
    """The Parquet column path of a field: ``name`` or ``name.list.element`` for lists."""
    if pa.types.is_list(field.type) or pa.types.is_fixed_size_list(field.type):
        return f"{field.name}.list.element"
    return field.name
