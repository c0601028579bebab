"""Reading the configured source: TFRecord shards (a damaged shard's tail becomes a dead letter)
or a prepared TFDS split, as ``SourceRecord``s on the main output and ``DeadLetter``s on the
``dead_letters`` output.

``ReadSource`` is the one place that tells the two kinds apart (``_SOURCE_READERS``): the graph
applies it, and the launcher asks the same object, before the run, whether the source can be
read, its class names, its first records in read order (the fidelity sample) and its size
(progress).
"""

import os
import struct

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.tfrecordio import _TFRecordUtil

from pipeline import paths
from pipeline.records import (
    DEAD_LETTERS,
    METRICS_NAMESPACE,
    STAGE_READ,
    DeadLetter,
    SourceRecord,
)

SHARD_DAMAGED = "shard damaged after record {index} (byte offset {offset}): {reason}"
NO_INPUT_FILES = "input pattern '{pattern}' matches no files"
TFDS_NOT_PREPARED = "TFDS dataset {name} is not usable: {reason}"


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
        self._records = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "records_read")
        self._damaged = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "shards_damaged")

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


class _TfdsToSourceRecord(beam.DoFn):
    def setup(self):
        self._records = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "records_read")

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

        builder = _tfds_builder(self._source)
        records = (
            pbegin
            | "ReadTFDS" >> tfds.beam.ReadFromTFDS(
                builder, split=self._source.split,
                read_config=tfds.ReadConfig(add_tfds_id=True), shuffle_files=False)
            | "ToSourceRecord" >> beam.ParDo(_TfdsToSourceRecord())
        )
        no_dead_letters = pbegin | "NoReadDeadLetters" >> beam.Create([])
        return {"records": records, DEAD_LETTERS: no_dead_letters}


def _tfds_builder(source):
    """The TFDS builder a SourceConfig names (by directory, or by name + data_dir)."""
    import tensorflow_datasets as tfds

    if source.tfds_dir:
        return tfds.builder_from_directory(os.path.expanduser(source.tfds_dir))
    return tfds.builder(source.tfds_name,
                        data_dir=os.path.expanduser(source.tfds_data_dir) or None)


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


class _TFRecordSource:
    """``source.kind == 'tfrecord'``: the shards ``source.pattern`` matches, in sorted order."""

    def __init__(self, source):
        self._source = source

    def problem(self):
        if not paths.match(self._source.pattern):
            return NO_INPUT_FILES.format(pattern=self._source.pattern)
        return None

    def class_names(self):
        return ()

    def records(self):
        reader = ReadTFRecordShardDoFn(fail_on_corrupt_shard=False)
        reader.setup()
        for path in paths.match(self._source.pattern):
            # A damaged shard yields its good records, then one dead letter: skip that.
            yield from (item for item in reader.process(path) if isinstance(item, SourceRecord))

    def expected_total(self):
        files = paths.match(self._source.pattern)
        if not files or not all(paths.is_local(path) for path in files):
            return None, "unknown (remote shards are not counted ahead)"
        return sum(_count_records(path) for path in files), "counted from the TFRecord headers"

    def expand(self, pbegin):
        outputs = pbegin | "ReadTFRecord" >> ReadTFRecordShards(
            self._source.pattern, fail_on_corrupt_shard=self._source.on_corrupt_shard == "fail")
        return {"records": outputs.records, DEAD_LETTERS: outputs[DEAD_LETTERS]}


class _TFDSSource:
    """``source.kind == 'tfds'``: a prepared split (any slice, e.g. ``test[:10%]``)."""

    def __init__(self, source):
        self._source = source

    def problem(self):
        source = self._source
        name = source.tfds_dir or source.tfds_name
        try:
            splits = _tfds_builder(source).info.splits
        except Exception as error:
            return TFDS_NOT_PREPARED.format(name=name,
                                            reason=str(error).strip().splitlines()[0])
        split_name = source.split.split("[")[0]
        if split_name not in splits:
            return TFDS_NOT_PREPARED.format(
                name=name, reason=f"no split '{split_name}' (has {', '.join(splits)})")
        return None

    def class_names(self):
        """Label names from the TFDS ClassLabel feature named by ``source.label_key``, or ()."""
        import tensorflow_datasets as tfds

        features = _tfds_builder(self._source).info.features
        label_key = self._source.label_key
        label = features[label_key] if label_key in features else None
        return tuple(label.names) if isinstance(label, tfds.features.ClassLabel) else ()

    def records(self):
        import tensorflow_datasets as tfds

        dataset = _tfds_builder(self._source).as_dataset(
            split=self._source.split, read_config=tfds.ReadConfig(add_tfds_id=True),
            shuffle_files=False)
        for features in tfds.as_numpy(dataset):
            position = features.pop("tfds_id").decode("utf-8")
            yield SourceRecord(position=position, payload=features)

    def expected_total(self):
        try:
            return int(_tfds_builder(self._source).info.splits[
                self._source.split].num_examples), "from the TFDS split size"
        except Exception:  # a split spec TFDS cannot size up front
            return None, "unknown (TFDS split size unavailable)"

    def expand(self, pbegin):
        return pbegin | "ReadTFDS" >> ReadTFDS(self._source)


_SOURCE_READERS = {"tfrecord": _TFRecordSource, "tfds": _TFDSSource}


class ReadSource(beam.PTransform):
    """The configured source -> ``{'records': SourceRecord, 'dead_letters': DeadLetter}``.

    Outside the graph the same object answers what the launcher asks of the source; the two
    kinds (``config.SOURCE_KINDS``) are told apart here only.

    Args:
        source: the SourceConfig.
    """

    def __init__(self, source):
        super().__init__()
        self._source = source
        self._reader = _SOURCE_READERS[source.kind](source)

    def expand(self, pbegin):
        return self._reader.expand(pbegin)

    def problem(self):
        """Why the source cannot be read (one line), or None: no TFRecord file matches, or the
        TFDS dataset is not prepared or lacks the split."""
        return self._reader.problem()

    def class_names(self):
        """Label names: ``source.class_names``, else a TFDS ClassLabel's names, else ()."""
        return tuple(self._source.class_names) or self._reader.class_names()

    def records(self):
        """The source's SourceRecords in the pipeline's read order (sorted shards, each from its
        start, a damaged shard's good records only; or the TFDS split's order), lazily."""
        return self._reader.records()

    def expected_total(self):
        """How many examples the source holds, for progress: ``(count or None, how it is
        known)``. TFDS: the split's size from the dataset info. Local TFRecord shards: counted
        from the record headers. Other paths: unknown."""
        return self._reader.expected_total()
