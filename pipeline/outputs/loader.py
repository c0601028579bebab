"""Reading audit outputs into pandas, with filters pushed down to pyarrow.

Light on purpose: numpy, pyarrow and pandas only, so a pandas user reading local outputs
loads neither TensorFlow nor Beam; remote paths are listed through Beam ``FileSystems``.
"""

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from pipeline import paths, tables
from pipeline.outputs import manifest
from pipeline.tables import clusters as clusters_table
from pipeline.tables import examples as examples_table
from pipeline.tables import saliency as saliency_table
from pipeline.tables import stats as stats_table


def _dataset(path, table):
    folder = paths.join(path, table)
    files = paths.match(paths.join(folder, "*.parquet"))
    if not files:
        raise FileNotFoundError(f"no {table} Parquet files in {folder}")
    if paths.is_local(files[0]):
        return ds.dataset(files, format="parquet")
    # pyarrow takes a list of URIs only with their filesystem given (gs://, s3://, hdfs://).
    try:
        filesystem, first = pafs.FileSystem.from_uri(files[0])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a scheme only Beam knows
        parquet = ds.ParquetFileFormat()
        fragments = [parquet.make_fragment(pa.py_buffer(paths.read_bytes(f))) for f in files]
        return ds.FileSystemDataset(fragments, fragments[0].physical_schema, parquet)
    root = files[0][:len(files[0]) - len(first)]
    return ds.dataset([f[len(root):] for f in files], filesystem=filesystem, format="parquet")


def load_saliency(path, classes=None, correct=None, columns=None, maps=True, example_ids=None,
                  scaled=False):
    """Loads the ``saliency`` table as a DataFrame whose maps are ``(h, w)`` arrays.

    Args:
        path: the run's output directory (local or any pyarrow-readable path).
        classes: optional iterable of target class indices to keep (pushed down to pyarrow).
        correct: optional bool to keep only correctly / incorrectly predicted rows.
        columns: optional list of columns to read (the map is read only if listed or if
            ``columns`` is None and ``maps`` is True).
        maps: reshape the maps to float32 ``(h, w)`` gradient values (uint8 codes times
            their row's scale).
        example_ids: optional iterable of example ids to keep (pushed down to pyarrow).
        scaled: each map divided by its own max |value| (in [-1, 1]; all-zero maps stay 0),
            the view the report draws; the table stores the raw maps.

    Returns:
        pandas DataFrame; ``df.attrs['gbp_audit']`` holds the schema metadata. When the run
        wrote findings, a nullable Int64 ``cluster`` column holds each example's strategy
        cluster within its target class (``clusters/``; with ``columns``, list ``cluster``).
    """
    dataset = _dataset(path, tables.SALIENCY)
    metadata = saliency_table.read_metadata(dataset.schema)
    condition = None
    if classes is not None:
        condition = ds.field(saliency_table.TARGET).isin([int(c) for c in classes])
    if correct is not None:
        flag = ds.field(saliency_table.CORRECT) == bool(correct)
        condition = flag if condition is None else condition & flag
    if example_ids is not None:
        wanted = ds.field(saliency_table.EXAMPLE_ID).isin([str(i) for i in example_ids])
        condition = wanted if condition is None else condition & wanted
    join_clusters = columns is None or clusters_table.CLUSTER in columns
    map_column, scale_column = saliency_table.SALIENCY_MAP, saliency_table.SALIENCY_SCALE
    if columns is not None and maps and map_column in columns and (
            scale_column in dataset.schema.names) and scale_column not in columns:
        columns = [*columns, scale_column]  # needed to decode uint8 codes
    if columns is None and not maps:
        columns = [name for name in dataset.schema.names if name != map_column]
    if columns is not None and clusters_table.CLUSTER in columns:  # joined, not stored here
        columns = [name for name in columns if name != clusters_table.CLUSTER]
        columns += [saliency_table.EXAMPLE_ID] * (saliency_table.EXAMPLE_ID not in columns)
    frame = dataset.to_table(columns=columns, filter=condition).to_pandas()
    if join_clusters:
        frame = _with_clusters(path, frame)
    if maps and map_column in frame:
        frame[map_column] = saliency_table.decode_maps(frame, metadata, scaled=scaled)
    frame.attrs["gbp_audit"] = metadata
    return frame


def _with_clusters(path, frame):
    """``frame`` plus the ``cluster`` column joined from ``assignments/`` on example id."""
    if saliency_table.EXAMPLE_ID not in frame:
        return frame
    try:
        assigned = _dataset(path, tables.ASSIGNMENTS)
    except FileNotFoundError:  # findings were off
        return frame
    table = assigned.to_table(columns=[saliency_table.EXAMPLE_ID, clusters_table.CLUSTER])
    lookup = table.to_pandas().set_index(saliency_table.EXAMPLE_ID)[clusters_table.CLUSTER]
    lookup = lookup[~lookup.index.duplicated()]  # a repeated id keeps its first
    frame[clusters_table.CLUSTER] = frame[saliency_table.EXAMPLE_ID].map(lookup).astype("Int64")
    return frame


def load_stats(path, map_shape=None):
    """Loads the ``stats`` table; ``mean_map`` becomes float32 ``(h, w)`` arrays, with the map
    shape ``map_shape`` (default: the run manifest's)."""
    frame = load_table(path, tables.STATS)
    if len(frame):
        frame[stats_table.MEAN_MAP] = stats_table.decode_mean_maps(
            frame, map_shape or manifest.read(path)["map_shape"])
    return frame


def load_errors(path):
    """Loads the ``errors`` table (dead letters)."""
    return load_table(path, tables.ERRORS)


def load_sanity(path):
    """Loads the ``sanity`` table: one row per (check, depth, example); ``spearman`` is NaN in
    pandas where the table holds null (a constant map)."""
    return load_table(path, tables.SANITY)


def load_clusters(path):
    """Loads the ``clusters`` table; ``mean_map`` becomes float32 ``(m, m)`` arrays."""
    frame = load_table(path, tables.CLUSTERS)
    if len(frame):
        frame[clusters_table.MEAN_MAP] = clusters_table.decode_mean_maps(frame)
    return frame


def load_assignments(path):
    """Loads the ``assignments`` table (each example's cluster within its explained class)."""
    return load_table(path, tables.ASSIGNMENTS)


def load_embedding(path):
    """Loads the ``embedding`` table (the 2-D view of each class's clustered sample)."""
    return load_table(path, tables.EMBEDDING)


def load_examples(path):
    """Loads the ``examples`` table; ``image`` holds each PNG decoded to uint8 ``(H, W, 3)``."""
    frame = load_table(path, tables.EXAMPLES)
    frame["image"] = [examples_table.decode_image(png) for png in frame[examples_table.IMAGE_PNG]]
    return frame


def load_table(path, table):
    """Loads any table by name (``pipeline.tables.TABLES``) as it is stored.

    Raises:
        ValueError: ``table`` is not a table name.
        FileNotFoundError: the run wrote no such table (disabled, or not a run's output).
    """
    if table not in tables.TABLES:
        raise ValueError(f"unknown table '{table}'; expected one of {', '.join(tables.TABLES)}")
    return _dataset(path, table).to_table().to_pandas()
