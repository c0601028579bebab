"""Read transforms: TFRecord shards (with shard-damage dead letters) and prepared TFDS datasets.

Both yield ``SourceRecord`` elements on the main output and ``DeadLetter`` elements on the
``dead_letters`` tagged output.
"""

import os
import struct

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.tfrecordio import _TFRecordUtil

from pipeline import paths
from pipeline.records import STAGE_READ, DeadLetter, SourceRecord

DEAD_LETTERS = "dead_letters"
SHARD_DAMAGED = "shard damaged after record {index} (byte offset {offset}): {reason}"


class CorruptShardError(RuntimeError):
    """A damaged TFRecord shard, raised when the config says to fail the run."""


class ReadTFRecordShardDoFn(beam.DoFn):
    """Reads one TFRecord file, checking both CRCs of every record.

    Beam's record reader checks CRCs with google-crc32c (C), and ``FileSystems`` makes any
    registered filesystem (local, gs://, ...) work. A damaged or truncated record ends the
    shard: every record before it is emitted, and one dead letter names the file and offset.
    """

    def __init__(self, fail_on_corrupt_shard):
        self._fail_on_corrupt_shard = fail_on_corrupt_shard

    def setup(self):
        self._records = beam.metrics.Metrics.counter("gbp_audit", "records_read")
        self._damaged = beam.metrics.Metrics.counter("gbp_audit", "shards_damaged")

    def process(self, path):
        name = paths.basename(path)
        index, offset = 0, 0
        with FileSystems.open(path) as handle:
            while True:
                try:
                    record = _TFRecordUtil.read_record(handle)
                except ValueError as error:
                    reason = SHARD_DAMAGED.format(index=index, offset=offset,
                                                  reason=str(error).split(":")[0])
                    if self._fail_on_corrupt_shard:
                        raise CorruptShardError(f"{path}: {reason}") from error
                    self._damaged.inc()
                    yield beam.pvalue.TaggedOutput(
                        DEAD_LETTERS, DeadLetter(f"{name}:damaged", f"{name}:{index}",
                                                 STAGE_READ, reason))
                    return
                if record is None:
                    return
                self._records.inc()
                yield SourceRecord(position=f"{name}:{index}", payload=record)
                offset += _TFRecordUtil.encoded_num_bytes(record)
                index += 1


class ReadTFRecordShards(beam.PTransform):
    """File pattern -> ``SourceRecord``s (+ dead letters for damaged shards).

    Files are matched at run time (not while the graph is built), so a pipeline over gs://
    translates offline; a Reshuffle spreads whole shards over workers.
    """

    def __init__(self, pattern, fail_on_corrupt_shard=False):
        super().__init__()
        self._pattern = pattern
        self._fail = fail_on_corrupt_shard

    def expand(self, pbegin):
        return (
            pbegin
            | "Pattern" >> beam.Create([self._pattern])
            | "MatchShards" >> fileio.MatchAll()
            | "ShardPaths" >> beam.Map(lambda metadata: metadata.path)
            | "SpreadShards" >> beam.Reshuffle()
            | "ReadShard" >> beam.ParDo(ReadTFRecordShardDoFn(self._fail)).with_outputs(
                DEAD_LETTERS, main="records")
        )


def tfds_builder(source):
    """The TFDS builder a SourceConfig names (by directory, or by name + data_dir)."""
    import tensorflow_datasets as tfds

    if source.tfds_dir:
        return tfds.builder_from_directory(os.path.expanduser(source.tfds_dir))
    return tfds.builder(source.tfds_name,
                        data_dir=os.path.expanduser(source.tfds_data_dir) or None)


def tfds_class_names(source):
    """Label names from the TFDS ClassLabel feature named by ``source.label_key``, or ()."""
    import tensorflow_datasets as tfds

    features = tfds_builder(source).info.features
    label = features[source.label_key] if source.label_key in features else None
    return tuple(label.names) if isinstance(label, tfds.features.ClassLabel) else ()


class _TfdsToSourceRecord(beam.DoFn):
    def setup(self):
        self._records = beam.metrics.Metrics.counter("gbp_audit", "records_read")

    def process(self, example):
        import tensorflow_datasets as tfds

        features = tfds.as_numpy(example)
        position = features.pop("tfds_id").decode("utf-8")
        self._records.inc()
        yield SourceRecord(position=position, payload=features)


class ReadTFDS(beam.PTransform):
    """A prepared TFDS split (any slice, e.g. ``test[:10%]``) -> ``SourceRecord``s.

    The payload is the example's numpy feature dict; the position is its ``tfds_id``.
    """

    def __init__(self, source):
        super().__init__()
        self._source = source

    def expand(self, pbegin):
        import tensorflow_datasets as tfds

        builder = tfds_builder(self._source)
        records = (
            pbegin
            | "ReadTFDS" >> tfds.beam.ReadFromTFDS(
                builder, split=self._source.split,
                read_config=tfds.ReadConfig(add_tfds_id=True), shuffle_files=False)
            | "ToSourceRecord" >> beam.ParDo(_TfdsToSourceRecord())
        )
        no_dead_letters = pbegin | "NoReadDeadLetters" >> beam.Create([])
        return {"records": records, DEAD_LETTERS: no_dead_letters}


def _count_records(path):
    """Records in a local TFRecord file, from the length headers alone (seeks, no reads of
    the payloads)."""
    count, offset = 0, 0
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        while offset + 8 <= size:
            handle.seek(offset)
            (length,) = struct.unpack("<Q", handle.read(8))
            offset += 8 + 4 + length + 4  # length, its CRC, the record, its CRC
            count += 1
    return count


def expected_total(source):
    """How many examples the source holds, for progress: ``(count or None, how it is known)``.

    TFDS: the split's size from the dataset info. Local TFRecord shards: counted from the
    record headers. Other paths: unknown.
    """
    if source.kind == "tfds":
        try:
            return int(tfds_builder(source).info.splits[source.split].num_examples), (
                "from the TFDS split size")
        except Exception:  # a split spec TFDS cannot size up front
            return None, "unknown (TFDS split size unavailable)"
    files = paths.match(source.pattern)
    if not files or not all(paths.is_local(path) for path in files):
        return None, "unknown (remote shards are not counted ahead)"
    return sum(_count_records(path) for path in files), "counted from the TFRecord headers"
