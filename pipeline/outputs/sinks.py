"""Writing the tables into a staging folder, then publishing them with a manifest.

Each table gets its own folder, ``<output>/<table>/<table>-SSSSS-of-NNNNN.parquet``, so
``pd.read_parquet(f"{output}/saliency")`` reads exactly one schema. Beam writes everything
under ``<output>/_staging/`` first (pyarrow and pandas skip paths starting with ``_``, so a
killed run never breaks a read). Once every table is complete, one Publish step replaces the
previous outputs, writes ``manifest.json`` and removes the staging folder.
"""

import time

import apache_beam as beam

from pipeline import paths
from pipeline.outputs import manifest as manifest_fields
from pipeline.tables import TABLES

STAGING_DIR = "_staging"
PARQUET_CODEC = "zstd"


def staging_prefix(output_dir, table):
    return paths.join(output_dir, STAGING_DIR, table, table)


def table_dir(output_dir, table):
    """The published folder of one table."""
    return paths.join(output_dir, table)


def write_table(pcoll, output_dir, table, arrow_schema, num_shards=0, plain_columns=()):
    """Writes a PCollection of ``pa.Table`` batches to the staging folder (Beam's file sink:
    shards written in parallel, for the large tables).

    Args:
        plain_columns: columns written without dictionary encoding and statistics (see
            ``parquet_sink``).

    Returns:
        PCollection of the written (staged) file paths.
    """
    from pipeline.outputs.parquet_sink import TableParquetSink

    sink = TableParquetSink(staging_prefix(output_dir, table), arrow_schema, PARQUET_CODEC,
                            plain_columns=plain_columns, file_name_suffix=".parquet",
                            num_shards=num_shards, shard_name_template="-SSSSS-of-NNNNN")
    return pcoll | f"Write{table.capitalize()}" >> beam.io.Write(sink)


def single_file_name(output_dir, table):
    """The staged path of a one-file table, named like a Beam shard: ``<table>-00000-of-00001``."""
    return f"{staging_prefix(output_dir, table)}-00000-of-00001.parquet"


def write_single_file_tables(p, output_dir, row_tables):
    """Writes the small tables, each as one Parquet file, in one step after all of them are
    complete.

    Beam's ``WriteToParquet`` with one shard costs four fused stages per table (set-up, write,
    pre-finalize, finalize) and about 30 transforms to build; a local run pays a fixed cost
    for each. Here every small table is a side input (an iterable: streamed where the runner
    can) of one ``WriteSingleFileTablesDoFn``, which writes the rows as Beam's sink would:
    the same schema, codec, 1,000-row record batches and row groups, and an empty table (schema,
    no rows) when there are none.

    Args:
        p: the pipeline.
        output_dir: the run's output directory.
        row_tables: ``{table name: (PCollection of row dicts, pa.Schema)}``.

    Returns:
        PCollection of the written (staged) file paths.
    """
    names = sorted(row_tables)
    schemas = {name: row_tables[name][1] for name in names}
    side_inputs = {name: beam.pvalue.AsIter(row_tables[name][0]) for name in names}
    return (
        p
        | "SmallTablesTrigger" >> beam.Create([None])
        | "WriteSmallTables" >> beam.ParDo(WriteSingleFileTablesDoFn(output_dir, schemas),
                                           **side_inputs)
    )


class WriteSingleFileTablesDoFn(beam.DoFn):
    """Side inputs ``{table: iterable of row dicts}`` -> one staged Parquet file per table;
    yields the paths. Rewrites the same paths if retried."""

    def __init__(self, output_dir, schemas):
        self._output_dir = output_dir
        self._schemas = schemas

    def process(self, unused_trigger, **rows_by_table):
        for table in sorted(rows_by_table):
            path = single_file_name(self._output_dir, table)
            write_rows(path, self._schemas[table], rows_by_table[table])
            yield path


RECORD_BATCH_ROWS = 1000  # rows per record batch, as Beam's WriteToParquet


def write_rows(path, schema, rows):
    """Writes row dicts to one Parquet file through Beam ``FileSystems``: record batches of
    ``RECORD_BATCH_ROWS`` rows (a nullable field missing from a row is null), one row group per
    ``parquet_sink.ROW_GROUP_BYTES`` of them, ``PARQUET_CODEC`` compression; no rows give a
    file with the schema and no row group."""
    import pyarrow as pa
    from apache_beam.io.filesystems import FileSystems

    from pipeline.outputs.parquet_sink import RowGroupWriter, parquet_writer

    def record_batch(buffered):
        arrays = [pa.array([_field_value(row, field) for row in buffered], type=field.type)
                  for field in schema]
        return pa.Table.from_batches([pa.RecordBatch.from_arrays(arrays, schema=schema)])

    with FileSystems.create(path, mime_type="application/x-parquet") as handle:
        writer = RowGroupWriter(parquet_writer(handle, schema, PARQUET_CODEC))
        buffered = []
        for row in rows:
            buffered.append(row)
            if len(buffered) == RECORD_BATCH_ROWS:
                writer.write_table(record_batch(buffered))
                buffered = []
        if buffered:
            writer.write_table(record_batch(buffered))
        writer.close()


def _field_value(row, field):
    if field.nullable and field.name not in row:
        return None
    return row[field.name]


def previous_outputs(output_dir):
    """Existing published files of an earlier run in ``output_dir``."""
    found = []
    for table in TABLES:
        found += paths.match(paths.join(table_dir(output_dir, table), "*.parquet"))
    return found + paths.match(paths.join(output_dir, manifest_fields.MANIFEST))


def empty_table_name(output_dir, table):
    """The published path of an enabled table's file when the run staged none (no rows)."""
    return paths.join(table_dir(output_dir, table), f"{table}-00000-of-00001.parquet")


def table_files_summary(files):
    """``{rows, files, bytes}`` of published Parquet files, from their footers and sizes."""
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems

    rows = 0
    for path in files:
        with FileSystems.open(path, mime_type="application/x-parquet") as handle:
            rows += pq.ParquetFile(handle).metadata.num_rows
    size = sum(result.metadata_list[0].size_in_bytes
               for result in FileSystems.match(list(files)))  # one listing call for all files
    return {"rows": rows, "files": len(files), "bytes": size}


class PublishDoFn(beam.DoFn):
    """Moves staged files into place and writes the manifest; runs once, after all writes.

    Every enabled table (a key of ``schemas``) gets its folder and at least one file (an empty
    one with its schema when the run staged none); a disabled table has no folder, not even
    one an earlier run left.

    Side inputs: ``staged`` (list of staged file paths), ``counts`` (dict of name -> int),
    ``sanity`` (sanity table rows), ``findings`` (per-class summaries of the findings stage)
    and ``flagged`` (its merged flagged findings).
    """

    def __init__(self, output_dir, manifest_base, start_time, schemas):
        self._output_dir = output_dir
        self._manifest_base = manifest_base
        self._start_time = start_time
        self._schemas = schemas

    def process(self, unused_trigger, staged, counts, sanity, findings=(), flagged=()):
        from apache_beam.io.filesystems import FileSystems

        staged = sorted(staged)
        paths.delete(previous_outputs(self._output_dir))
        paths.delete([table_dir(self._output_dir, table) for table in TABLES
                      if table not in self._schemas])
        published = [paths.join(table_dir(self._output_dir, _table_of(path)),
                                paths.basename(path)) for path in staged]
        for table in self._schemas:
            paths.make_dirs(table_dir(self._output_dir, table))
        if staged:
            FileSystems.rename(staged, published)
        files = {table: [path for path in published if _table_of(path) == table]
                 for table in self._schemas}
        for table, schema in self._schemas.items():
            if not files[table]:
                files[table] = [empty_table_name(self._output_dir, table)]
                write_rows(files[table][0], schema, ())
        manifest = manifest_fields.final_fields(
            self._manifest_base, counts, sanity, time.time() - self._start_time,
            [f"{table}/{paths.basename(path)}" for table in self._schemas
             for path in files[table]], findings,
            tables={table: table_files_summary(files[table]) for table in self._schemas},
            flagged=flagged)
        manifest_fields.write(self._output_dir, manifest)
        paths.delete([paths.join(self._output_dir, STAGING_DIR)])
        yield manifest


def _table_of(path):
    return paths.basename(path).split("-")[0]
