"""The one-file tables are written in one step, with the rows and Arrow schema Beam's
WriteToParquet would write, lists in the compliant Parquet layout (``list.element``)."""

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.outputs import sinks

SCHEMA = pa.schema([pa.field("name", pa.string(), nullable=False), ("count", pa.int64()),
                    ("values", pa.list_(pa.float32()))])
ROWS = [{"name": f"row-{i}", "count": i, "values": [i / 2.0] * (i % 3)} for i in range(2500)]
ROWS[7].pop("count")  # a nullable field a row lacks is null


def _read(path):
    table = pq.read_table(path)
    return table.schema, sorted(table.to_pylist(), key=lambda row: row["name"])


def test_same_file_name_schema_and_rows_as_beams_write_to_parquet(tmp_path):
    with beam.Pipeline() as p:
        rows = p | "Rows" >> beam.Create(ROWS)
        empty = p | "Empty" >> beam.Create([])
        rows | beam.io.WriteToParquet(
            str(tmp_path / "beam" / "full"), schema=SCHEMA, codec=sinks.PARQUET_CODEC,
            file_name_suffix=".parquet", num_shards=1, shard_name_template="-SSSSS-of-NNNNN")
        empty | "WriteEmpty" >> beam.io.WriteToParquet(
            str(tmp_path / "beam" / "empty"), schema=SCHEMA, codec=sinks.PARQUET_CODEC,
            file_name_suffix=".parquet", num_shards=1, shard_name_template="-SSSSS-of-NNNNN")
        sinks.write_single_file_tables(p, str(tmp_path / "ours"),
                                       {"full": (rows, SCHEMA), "empty": (empty, SCHEMA)})
    for table in ("full", "empty"):
        ours = sinks.single_file_name(str(tmp_path / "ours"), table)
        assert ours.endswith(f"_staging/{table}/{table}-00000-of-00001.parquet")
        beams = tmp_path / "beam" / f"{table}-00000-of-00001.parquet"
        assert _read(ours) == _read(beams)
        # the same Arrow types; lists in the compliant layout read back named ``element``
        assert pq.read_table(ours).cast(SCHEMA).equals(pq.read_table(beams).cast(SCHEMA))
        leaves = [pq.ParquetFile(ours).schema.column(i).path for i in range(3)]
        assert leaves == ["name", "count", "values.list.element"]
    _, rows = _read(sinks.single_file_name(str(tmp_path / "ours"), "full"))
    assert len(rows) == len(ROWS)
    assert {row["name"]: row["count"] for row in rows}["row-7"] is None
