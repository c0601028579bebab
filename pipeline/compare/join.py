"""The per-example join of two runs in Beam, with memory bounded on every runner.

Both runs' ``saliency`` (and, with findings, ``assignments``) tables are read with Beam's
Parquet IO and joined on ``example_id`` as a partitioned hash join: each batch read is split
by a hash of the id into ``buckets`` and written, per bundle, as one staged Arrow stream per
bucket (``PartitionByIdDoFn``); a GroupByKey brings each bucket's few file names together, and
``JoinBucketDoFn`` reads one bucket of both runs (maps of at most about ``BUCKET_BYTES`` as
float32 a side, held as stored) and compares its examples, ``MAP_CHUNK`` decoded maps at a
time. Only file names and small per-class and per-cluster
summaries cross the shuffle, not maps: a runner without a shuffle service (FnApiRunner keeps
every shuffled element in memory) then needs no more memory for 10N examples than for N.
"""

import collections
import uuid
import zlib

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from gbp_ops.statistics import AGGREGATED_STATISTICS
from pipeline import tables
from pipeline.compare import per_class
from pipeline.tables import comparison_examples as table
from pipeline.tables import saliency as saliency_table
from pipeline.tables.clusters import CLUSTER

BUCKET_BYTES = 32 * 2 ** 20  # one side's maps of one bucket, counted as float32
MIN_BUCKET_ROWS = 256
MAP_CHUNK = 64  # shared examples whose maps are compared at once (ranks need ~25 B/pixel)
# Buckets are staged as Arrow IPC streams: about as fast to write and read as a memory copy,
# where Parquet's encoding and decoding took most of the join's time.
STAGED_SUFFIX = ".arrows"
TAG_CLASSES = "classes"  # JoinBucketDoFn's tagged outputs
TAG_OVERLAPS = "overlaps"
TAG_MEMBERS = "members"
TAG_IDS = "ids"
TAGS = (TAG_CLASSES, TAG_OVERLAPS, TAG_MEMBERS, TAG_IDS)
NO_CLUSTER = -1
_INTEGER_COLUMNS = (saliency_table.TARGET, saliency_table.PREDICTED, saliency_table.LABEL,
                    CLUSTER)


def bucket_count(rows, map_shape):
    """Buckets for ``rows`` examples a side with maps of ``map_shape``."""
    height, width = map_shape
    per_bucket = max(MIN_BUCKET_ROWS, BUCKET_BYTES // (4 * height * width))
    return max(1, -(-int(rows) // per_bucket))


def buckets_of(example_ids, buckets):
    """int64 ``(N,)``: each id's bucket (CRC-32 of its UTF-8 bytes, modulo ``buckets``)."""
    return np.array([zlib.crc32(str(i).encode("utf-8")) % buckets for i in example_ids],
                    np.int64)


class PartitionByIdDoFn(beam.DoFn):
    """``pa.Table`` batches of one run's table -> after each bundle, ``(bucket, (side, table
    name, staged path))`` per bucket it wrote: that bucket's rows of the bundle."""

    def __init__(self, side, table_name, folder, buckets):
        self._side, self._table = side, table_name
        self._folder, self._buckets = folder, buckets

    def start_bundle(self):
        self._writers = {}

    def _writer(self, bucket, schema):
        import pyarrow as pa
        from apache_beam.io.filesystems import FileSystems

        if bucket not in self._writers:
            path = FileSystems.join(self._folder, f"{self._side}-{self._table}-{bucket:05d}-"
                                                  f"{uuid.uuid4().hex}{STAGED_SUFFIX}")
            handle = FileSystems.create(path, mime_type="application/octet-stream")
            self._writers[bucket] = (path, handle, pa.ipc.new_stream(handle, schema))
        return self._writers[bucket][2]

    def process(self, batch):
        import pyarrow as pa

        if not batch.num_rows:
            return
        buckets = buckets_of(batch.column(saliency_table.EXAMPLE_ID).to_pylist(), self._buckets)
        for bucket in np.unique(buckets):
            self._writer(int(bucket), batch.schema).write_table(
                batch.filter(pa.array(buckets == bucket)))

    def finish_bundle(self):
        for bucket, (path, handle, writer) in sorted(self._writers.items()):
            writer.close()
            handle.close()
            yield WindowedValue((bucket, (self._side, self._table, path)), MIN_TIMESTAMP,
                                [GlobalWindow()])
        self._writers = {}


_MAP_COLUMNS = (saliency_table.SALIENCY_MAP, saliency_table.SALIENCY_SCALE)
_ROW = "__row"  # a frame's row in its Arrow table


def _read_frame(paths):
    """Staged bucket files -> ``(DataFrame indexed by example id without the map columns,
    Arrow table of the map columns)``, a repeated id keeping its first row; None without files.
    The maps stay in Arrow (stored dtype) until ``_maps`` decodes a chunk of them."""
    import pyarrow as pa
    from apache_beam.io.filesystems import FileSystems

    if not paths:
        return None
    parts = []
    for path in sorted(paths):
        with FileSystems.open(path, mime_type="application/octet-stream") as handle:
            parts.append(pa.ipc.open_stream(handle).read_all())
    whole = pa.concat_tables(parts)
    maps = [name for name in _MAP_COLUMNS if name in whole.column_names]
    frame = whole.drop_columns(maps).to_pandas()
    frame[_ROW] = range(len(frame))
    frame = frame.drop_duplicates(saliency_table.EXAMPLE_ID)
    return frame.set_index(saliency_table.EXAMPLE_ID, drop=False), whole.select(maps)


def _nullable(values):
    """A pandas column -> a list with None for missing values (whole floats of an integer
    column that missing ids made float stay ints)."""
    import pandas as pd

    integral = values.dtype.kind == "f" and values.name in _INTEGER_COLUMNS
    return [None if pd.isna(value) else int(value) if integral else value
            for value in values.tolist()]


def _maps(side, ids, metadata):
    """float32 ``(n, h, w)`` maps of ``ids`` of one side (``_read_frame``), decoded by the
    saliency table's decoder."""
    frame, maps = side
    rows = maps.take(frame.loc[ids, _ROW].to_numpy()).to_pandas()
    return np.stack(saliency_table.decode_maps(rows, metadata))


def similarities(first, second, ids, metadata):
    """Spearman and top-5% overlap of ``|map|`` of ``ids`` in two runs (``_read_frame``
    pairs), a chunk of maps at a time."""
    from pipeline.launch.fidelity import map_spearman, top_share_overlap

    spearman, overlap = np.zeros(len(ids)), np.zeros(len(ids))
    for start in range(0, len(ids), MAP_CHUNK):
        chunk = ids[start:start + MAP_CHUNK]
        a, b = _maps(first, chunk, metadata[0]), _maps(second, chunk, metadata[1])
        spearman[start:start + len(chunk)] = map_spearman(a, b)
        overlap[start:start + len(chunk)] = top_share_overlap(a, b)
    return spearman, overlap


def compare_bucket(frames, clusters, metadata):
    """One bucket of both runs -> the ``comparison_examples`` columns.

    Args:
        frames: ``(baseline, current)`` of ``_read_frame`` of saliency files (None: no rows).
        clusters: ``(baseline, current)`` of ``_read_frame`` of assignments files, or None.
        metadata: ``(baseline, current)`` saliency metadata (``map_shape``).

    Returns:
        dict column -> list or array (ids in order: shared, baseline-only, current-only).
    """
    sides = frames
    frames = tuple(None if side is None else side[0] for side in sides)
    clusters = tuple(None if side is None else side[0] for side in clusters)
    ids = [set() if frame is None else set(frame.index) for frame in frames]
    groups = (sorted(ids[0] & ids[1]), sorted(ids[0] - ids[1]), sorted(ids[1] - ids[0]))
    order = [example_id for group in groups for example_id in group]
    columns = {saliency_table.EXAMPLE_ID: order,
               table.PRESENCE: [name for name, group in zip(table.PRESENCES, groups)
                                for _ in group]}
    stats = {}
    labels = [None] * len(order)
    for side, frame, assigned in zip(table.SIDES, frames, clusters):
        part = (frame if frame is not None else _empty()).reindex(order)
        for column in (saliency_table.TARGET, saliency_table.PREDICTED, saliency_table.CORRECT):
            columns[table.side_column(side, column)] = _nullable(part[column])
        for name in AGGREGATED_STATISTICS:
            columns[table.side_column(side, name)] = part[name].to_numpy(np.float64)
        stats[side] = part[list(AGGREGATED_STATISTICS)].to_numpy(np.float64)
        cluster = (assigned[CLUSTER].reindex(order) if assigned is not None
                   else part[saliency_table.TARGET] * np.nan)
        columns[table.side_column(side, CLUSTER)] = _nullable(cluster)
        labels = [old if old is not None else new
                  for old, new in zip(labels, _nullable(part[saliency_table.LABEL]))]
    columns[saliency_table.LABEL] = labels
    shared = len(groups[0])
    predicted = [columns[table.side_column(side, saliency_table.PREDICTED)][:shared]
                 for side in table.SIDES]
    columns[table.FLIPPED] = [a != b for a, b in zip(*predicted)] + [None] * (len(order) - shared)
    spearman, overlap = (np.full(len(order), np.nan) for _ in range(2))
    if shared:
        spearman[:shared], overlap[:shared] = similarities(sides[0], sides[1], groups[0],
                                                           metadata)
    columns[table.SPEARMAN], columns[table.TOP5_OVERLAP] = spearman, overlap
    change = stats[table.CURRENT] - stats[table.BASELINE]
    change[shared:] = np.nan
    for index, name in enumerate(AGGREGATED_STATISTICS):
        columns[table.change_column(name)] = change[:, index]
    return columns


def _empty():
    import pandas as pd

    return pd.DataFrame(columns=[saliency_table.TARGET, saliency_table.PREDICTED,
                                 saliency_table.CORRECT, saliency_table.LABEL,
                                 *AGGREGATED_STATISTICS])


def class_partials(columns, bound):
    """``compare_bucket`` columns -> ``{class: per_class.ClassAccumulator}`` of the bucket."""
    order = columns[saliency_table.EXAMPLE_ID]
    keys = per_class.id_hashes(order)
    presence = np.array(columns[table.PRESENCE], object)
    shared = presence == table.SHARED
    partials = {}

    def partial(class_index):
        return partials.setdefault(int(class_index), per_class.ClassAccumulator(bound))

    targets = {}
    for index, side in enumerate(table.SIDES):
        present = shared | (presence == (table.BASELINE_ONLY, table.CURRENT_ONLY)[index])
        target = np.array([-1 if t is None else t for t in
                           columns[table.side_column(side, saliency_table.TARGET)]], np.int64)
        targets[side] = target
        statistics = np.column_stack([columns[table.side_column(side, name)]
                                      for name in AGGREGATED_STATISTICS])
        correct = np.array(columns[table.side_column(side, saliency_table.CORRECT)], object)
        for class_index in np.unique(target[present]):
            rows = present & (target == class_index)
            partial(class_index).add_side(index, keys[rows], statistics[rows], correct[rows])
    flipped = np.array([bool(v) for v in columns[table.FLIPPED]], bool)
    changes = np.column_stack([columns[table.change_column(name)]
                               for name in AGGREGATED_STATISTICS])
    paired = shared & (targets[table.BASELINE] == targets[table.CURRENT])
    for class_index in np.unique(targets[table.BASELINE][shared]):
        rows = shared & (targets[table.BASELINE] == class_index)
        partial(class_index).add_flips(rows.sum(), (flipped & rows).sum())
        rows = paired & (targets[table.BASELINE] == class_index)
        if rows.any():
            partial(class_index).add_pairs(keys[rows], changes[rows],
                                           columns[table.SPEARMAN][rows],
                                           columns[table.TOP5_OVERLAP][rows])
    return partials


def cluster_keys(columns, side):
    """``[(class, cluster)]`` of a side's rows (``NO_CLUSTER`` where none)."""
    targets = columns[table.side_column(side, saliency_table.TARGET)]
    clusters = columns[table.side_column(side, CLUSTER)]
    return [(NO_CLUSTER if t is None else int(t), NO_CLUSTER if c is None else int(c))
            for t, c in zip(targets, clusters)]


class JoinBucketDoFn(beam.DoFn):
    """``(bucket, [(side, table, path)])`` -> main: ``comparison_examples`` ``pa.Table``s;
    ``classes``: ``(class, ClassAccumulator)``; ``overlaps``: ``((baseline class, cluster,
    current class, cluster), count)`` of shared ids; ``members``: ``((class, cluster),
    (id hash, example_id))`` of shared ids in the baseline's ``flagged`` clusters; ``ids``:
    ``(presence, count)``.

    Args:
        metadata: ``(baseline, current)`` saliency metadata.
        flagged: ``{(class, cluster)}`` of the baseline's flagged clusters.
        bound: ``compare.sample_per_class``.
    """

    def __init__(self, metadata, flagged, bound):
        self._metadata = metadata
        self._flagged = frozenset(flagged)
        self._bound = bound

    def process(self, grouped):
        _, files = grouped
        by_part = collections.defaultdict(list)
        for side, table_name, path in files:
            by_part[(side, table_name)].append(path)
        frames = tuple(_read_frame(by_part[(side, tables.SALIENCY)]) for side in table.SIDES)
        clusters = tuple(_read_frame(by_part[(side, tables.ASSIGNMENTS)])
                         for side in table.SIDES)
        columns = compare_bucket(frames, clusters, self._metadata)
        yield table.encode(columns)
        for class_index, partial in class_partials(columns, self._bound).items():
            yield beam.pvalue.TaggedOutput(TAG_CLASSES, (class_index, partial))
        shared = columns[table.PRESENCE].count(table.SHARED)
        pairs = list(zip(cluster_keys(columns, table.BASELINE)[:shared],
                         cluster_keys(columns, table.CURRENT)[:shared]))
        for (old, new), count in collections.Counter(pairs).items():
            yield beam.pvalue.TaggedOutput(TAG_OVERLAPS, ((*old, *new), count))
        ids = columns[saliency_table.EXAMPLE_ID][:shared]
        for example_id, key, (old, _) in zip(ids, per_class.id_hashes(ids), pairs):
            if old in self._flagged:
                yield beam.pvalue.TaggedOutput(TAG_MEMBERS, (old, (int(key), example_id)))
        for presence, count in collections.Counter(columns[table.PRESENCE]).items():
            yield beam.pvalue.TaggedOutput(TAG_IDS, (presence, count))


class ClassComparisonFn(beam.CombineFn):
    """``ClassAccumulator`` partials of one class -> its ``per_class.class_figures``."""

    def __init__(self, bound):
        self._bound = bound

    def create_accumulator(self):
        return per_class.ClassAccumulator(self._bound)

    def add_input(self, accumulator, partial):
        return accumulator.merge(partial)

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for more in accumulators:
            merged.merge(more)
        return merged

    def extract_output(self, accumulator):
        return per_class.class_figures(accumulator)


def read_and_partition(p, side, table_name, pattern, folder, buckets, columns=None):
    """Reads one run's table with Beam's Parquet IO and partitions it by id; returns the
    PCollection of ``(bucket, (side, table, path))``."""
    label = f"{side.capitalize()}{table_name.capitalize()}"
    return (p
            | f"Read{label}" >> beam.io.ReadFromParquetBatched(pattern, columns=columns)
            | f"Partition{label}" >> beam.ParDo(PartitionByIdDoFn(side, table_name, folder,
                                                                  buckets)))
