"""Reading audit outputs into pandas, with filters pushed down to pyarrow."""

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from gbp_ops import maps as map_ops
from pipeline import schema


def _dataset(path, table):
    from pipeline import paths

    folder = paths.join(path, table)
    files = paths.match(paths.join(folder, "*.parquet"))
    if not files:
        raise FileNotFoundError(f"no {table} Parquet files in {folder}")
    if "://" not in files[0]:
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


def load_saliency(path, classes=None, correct=None, columns=None, maps=True, example_ids=None):
    """Loads ``saliency-*.parquet`` as a DataFrame whose ``saliency`` maps are ``(h, w)`` arrays.

    Args:
        path: the run's output directory (local or any pyarrow-readable path).
        classes: optional iterable of target class indices to keep (pushed down to pyarrow).
        correct: optional bool to keep only correctly / incorrectly predicted rows.
        columns: optional list of columns to read (the map is read only if listed or if
            ``columns`` is None and ``maps`` is True).
        maps: reshape the maps to float32 ``(h, w)``, undoing the per-row scaling of float16
            and uint8 maps.
        example_ids: optional iterable of example ids to keep (pushed down to pyarrow).

    Returns:
        pandas DataFrame; ``df.attrs['gbp_audit']`` holds the schema metadata.
    """
    dataset = _dataset(path, "saliency")
    metadata = schema.read_metadata(dataset.schema)
    condition = None
    if classes is not None:
        condition = ds.field(schema.TARGET).isin([int(c) for c in classes])
    if correct is not None:
        flag = ds.field(schema.CORRECT) == bool(correct)
        condition = flag if condition is None else condition & flag
    if example_ids is not None:
        wanted = ds.field(schema.EXAMPLE_ID).isin([str(i) for i in example_ids])
        condition = wanted if condition is None else condition & wanted
    if columns is not None and maps and schema.SALIENCY in columns and (
            schema.SALIENCY_SCALE in dataset.schema.names):
        columns = [*columns, schema.SALIENCY_SCALE]  # needed to unscale float16/uint8 maps
    if columns is None and not maps:
        columns = [name for name in dataset.schema.names if name != schema.SALIENCY]
    frame = dataset.to_table(columns=columns, filter=condition).to_pandas()
    if maps and schema.SALIENCY in frame:
        frame[schema.SALIENCY] = _reshape_maps(frame, metadata)
    frame.attrs["gbp_audit"] = metadata
    return frame


def _reshape_maps(frame, metadata):
    height, width = metadata["map_shape"]
    flat = frame[schema.SALIENCY]
    if not len(flat):
        return flat
    stacked = np.stack(flat.to_numpy()).reshape(-1, height, width)
    if schema.SALIENCY_SCALE in frame:
        scales = frame[schema.SALIENCY_SCALE].to_numpy(np.float32)
        if stacked.dtype == np.uint8:
            stacked = map_ops.dequantize_uint8(stacked, scales)
        else:
            stacked = map_ops.unscale(stacked, scales)
    return list(stacked.astype(np.float32, copy=False))


def read_manifest(path):
    """The run's ``manifest.json`` as a dict, or ``{}`` when the run has not published one."""
    import json

    from pipeline import paths

    try:
        return json.loads(paths.read_text(paths.join(path, schema.MANIFEST)))
    except FileNotFoundError:
        return {}


def load_stats(path):
    """Loads ``stats-*.parquet``; ``mean_map`` becomes float32 ``(h, w)`` arrays, with the map
    shape from the run's manifest."""
    dataset = _dataset(path, "stats")
    frame = dataset.to_table().to_pandas()
    if len(frame):
        height, width = read_manifest(path)["map_shape"]
        frame[schema.MEAN_MAP] = [np.asarray(m, np.float32).reshape(height, width)
                                  for m in frame[schema.MEAN_MAP]]
    return frame


def load_errors(path):
    """Loads ``errors-*.parquet`` (dead letters)."""
    return _dataset(path, "errors").to_table().to_pandas()
