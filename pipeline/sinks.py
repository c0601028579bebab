"""Writing the tables into a staging folder, then publishing them with a manifest.

Each table gets its own folder, ``<output>/<table>/<table>-SSSSS-of-NNNNN.parquet``, so
``pd.read_parquet(f"{output}/saliency")`` reads exactly one schema. Beam writes everything
under ``<output>/_staging/`` first (pyarrow and pandas skip paths starting with ``_``, so a
killed run never breaks a read). Once every table is complete, one Publish step replaces the
previous outputs, writes ``manifest.json`` and removes the staging folder.
"""

import time

import apache_beam as beam

from pipeline import manifest as manifest_fields
from pipeline import paths
from pipeline.tables import TABLES

STAGING_DIR = "_staging"
PARQUET_CODEC = "zstd"


def staging_prefix(output_dir, table):
    return paths.join(output_dir, STAGING_DIR, table, table)


def table_dir(output_dir, table):
    """The published folder of one table."""
    return paths.join(output_dir, table)


def write_table(pcoll, output_dir, table, arrow_schema, batched, num_shards=0,
                plain_columns=()):
    """Writes a PCollection of ``pa.Table`` (batched) or row dicts to the staging folder.

    Args:
        plain_columns: for batched tables, columns written without dictionary encoding and
            statistics (see ``parquet_sink``).

    Returns:
        PCollection of the written (staged) file paths.
    """
    if batched:
        from pipeline.parquet_sink import TableParquetSink

        sink = TableParquetSink(staging_prefix(output_dir, table), arrow_schema, PARQUET_CODEC,
                                plain_columns=plain_columns, file_name_suffix=".parquet",
                                num_shards=num_shards, shard_name_template="-SSSSS-of-NNNNN")
        return pcoll | f"Write{table.capitalize()}" >> beam.io.Write(sink)
    return pcoll | f"Write{table.capitalize()}" >> beam.io.WriteToParquet(
        staging_prefix(output_dir, table),
        schema=arrow_schema,
        codec=PARQUET_CODEC,
        file_name_suffix=".parquet",
        num_shards=num_shards,
        shard_name_template="-SSSSS-of-NNNNN",
    )


def previous_outputs(output_dir):
    """Existing published files of an earlier run in ``output_dir``."""
    found = []
    for table in TABLES:
        found += paths.match(paths.join(table_dir(output_dir, table), "*.parquet"))
    return found + paths.match(paths.join(output_dir, manifest_fields.MANIFEST))


class PublishDoFn(beam.DoFn):
    """Moves staged files into place and writes the manifest; runs once, after all writes.

    Side inputs: ``staged`` (list of staged file paths), ``counts`` (dict of name -> int),
    ``sanity`` (sanity table rows) and ``findings`` (per-class summaries of the findings stage).
    """

    def __init__(self, output_dir, manifest_base, start_time):
        self._output_dir = output_dir
        self._manifest_base = manifest_base
        self._start_time = start_time

    def process(self, unused_trigger, staged, counts, sanity, findings=()):
        staged = sorted(staged)
        paths.delete(previous_outputs(self._output_dir))
        published = [paths.join(table_dir(self._output_dir, _table_of(path)),
                                paths.basename(path)) for path in staged]
        for table in TABLES:
            paths.make_dirs(table_dir(self._output_dir, table))
        if staged:
            from apache_beam.io.filesystems import FileSystems

            FileSystems.rename(staged, published)
        manifest = manifest_fields.final_fields(
            self._manifest_base, counts, sanity, time.time() - self._start_time,
            [f"{_table_of(path)}/{paths.basename(path)}" for path in published], findings)
        manifest_fields.write(self._output_dir, manifest)
        paths.delete([paths.join(self._output_dir, STAGING_DIR)])
        yield manifest


def _table_of(path):
    return paths.basename(path).split("-")[0]
