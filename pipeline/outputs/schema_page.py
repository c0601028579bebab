"""``docs/SCHEMA.md``, generated from ``pipeline.tables`` (every table, column, Arrow and Parquet
type, unit and meaning) and ``MANIFEST_FIELDS`` (every ``manifest.json`` field).

    python -m pipeline.outputs.schema_page docs/SCHEMA.md

``tests/pipeline/tables/test_table_contract.py`` fails when the page and the code disagree.
"""

import io
import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import tables
from pipeline.outputs.parquet_sink import parquet_writer
from pipeline.tables import catalog
from pipeline.tables import saliency as saliency_table

# Sizes the page renders symbolically: schemas are built with these, then the numbers named.
_SAMPLE_MAP_SHAPE, _SAMPLE_MAP_SIZE = (7, 11), 13
_SIZE_NAMES = {"[77]": "[h*w]", "[169]": "[map_size²]"}

MANIFEST_FIELDS = (
    ("schema_version", "int: the tables' schema version (also in each Parquet file's metadata "
                       "under `schema_version`); raised when a column is renamed, removed or "
                       "changes type or meaning"),
    ("created_at", "str: when the run published, UTC ISO 8601 (`2026-12-03T14:31:38+00:00`)"),
    ("status", "str: `complete` (every input is a saliency row), `complete_with_errors` (the "
               "rest are dead letters in `errors/`) or `incomplete` (inputs != saliency rows + "
               "dead letters)"),
    ("tables", "{table: {rows, files, bytes}} for every table the run wrote (a disabled "
               "table is absent and has no folder)"),
    ("counts", "{input_records, damaged_shards, saliency_rows, errors, input, reconciled}"),
    ("sanity", "with `sanity.enabled`: `outcome` (`pass`, `warn`, `fail`; `fail` when a "
               "check's maps stay `similar`), `thresholds` {similar_spearman, "
               "partly_similar_spearman, top_depth}, `randomization` {depth, spearman_mean, "
               "band}, `class_sensitivity` {spearman_mean, band, count, spearman_undefined, "
               "spearman_std, ssim_mean, ssim_std}, `by_depth` (a list ordered by `depth`: "
               "depth, randomized_layers, last_layer, count, spearman_undefined, "
               "spearman_mean, spearman_std, ssim_mean, ssim_std) and `verdict` (the same in "
               "prose); band: `similar` (mean Spearman >= similar_spearman), `partly_similar` "
               "(>= partly_similar_spearman), `different`, or `undefined` (null mean)"),
    ("findings", "with `findings.enabled`: `flagged` (one entry per finding as the report "
                 "merges overlapping flagged clusters of a class: target, target_name, "
                 "clusters, example_count, region [ymin, xmin, ymax, xmax], flip_rate, "
                 "control_flip_rate, occluded_examples, sentence; empty: nothing flagged), "
                 "`by_class` (target, sample_size, clusters, eigenvalues: the Laplacian's "
                 "smallest, empty for a sample of fewer than 3, which is not clustered; "
                 "assignment_agreement) and `assignment_agreement`"),
    ("fidelity", "reduced precision only: the maps' agreement with float32 on a sample"),
    ("precision_choice", "`explain.precision: auto` only: the precision requested and used, "
                         "why, and the host"),
    ("comparison", "with `compare.baseline` (or written by `gbp-audit compare`): the "
                   "comparison's outcome (`failed` conditions, finding statuses, and "
                   "`classes`, one entry per class: target, target_name, test, pairs, "
                   "prediction_flip_rate, accuracy_change, median_spearman, drifted; see the "
                   "README)"),
    ("config", "the run's whole configuration"),
    ("versions", "the stack's package versions"),
    ("method", "the explanation method"),
    ("method_settings", "its settings (SmoothGrad, the Grad-CAM layer)"),
    ("model_sha256", "hash of the model file or SavedModel directory"),
    ("guided_sites", "the ReLUs the method rewrote (`layer: form`)"),
    ("gated_sites", "activations under `explain.nonlinearity_rule: gate` (`layer: form`)"),
    ("unguided_sites", "activations it could not rewrite"),
    ("explained_space", "what the explained score is (logit, probability, ...)"),
    ("input_shape", "the model input's shape"),
    ("map_shape", "[h, w] of the stored maps (reshape `saliency.saliency` with it)"),
    ("class_names", "the class names (may be empty)"),
    ("wall_time_seconds", "the run's wall time up to publishing"),
    ("files", "every published Parquet file, `<table>/<file>`"),
)

_MAP_DTYPES = (
    ("float16", "float32 values with the mantissa rounded to float16's 10 bits: float16's "
                "precision (relative error <= 2⁻¹¹), float32's range, raw gradients"),
    ("float32", "the maps as computed"),
    ("uint8", "int16 codes 0-255 and `saliency_scale`; map = code / 255 * saliency_scale"),
)


def _parquet_types(schema):
    """``{column: 'PHYSICAL Logical'}`` of ``schema`` as the project's writer stores it."""
    buffer = io.BytesIO()
    writer = parquet_writer(buffer, schema, "zstd")
    writer.close()
    found = {}
    parquet_schema = pq.ParquetFile(io.BytesIO(buffer.getvalue())).schema
    for index in range(len(parquet_schema)):
        column = parquet_schema.column(index)
        logical = column.logical_type.type.upper()
        text = column.physical_type + ("" if logical == "NONE" else f" {logical}")
        if logical == "INT":
            text += f"({json.loads(column.logical_type.to_json())['bitWidth']})"
        if column.max_repetition_level:
            text = f"LIST of {text}"
        found[column.path.split(".")[0]] = text
    return found


_TYPE_NAMES = {"float": "float32", "double": "float64", "bool": "bool"}


def _type_text(arrow_type):
    """``list<float32>[h*w]``, ``int64``, ...: Arrow types in numpy words, sizes named."""
    if pa.types.is_fixed_size_list(arrow_type):
        size = _SIZE_NAMES.get(f"[{arrow_type.list_size}]", f"[{arrow_type.list_size}]")
        return f"list<{_type_text(arrow_type.value_type)}>{size}"
    if pa.types.is_list(arrow_type):
        return f"list<{_type_text(arrow_type.value_type)}>"
    return _TYPE_NAMES.get(str(arrow_type), str(arrow_type))


def _cell(text):
    return text.replace("|", "\\|")


def table_section(table, schema):
    """The Markdown section of one table."""
    sentence, columns = catalog.description(table)
    parquet = _parquet_types(schema)
    lines = [f"## `{table}/`", "", sentence, "",
             "| column | type | Parquet | nullable | unit | meaning |",
             "| --- | --- | --- | --- | --- | --- |"]
    for field in schema:
        unit, meaning = columns[field.name]
        lines.append(f"| `{field.name}` | `{_type_text(field.type)}` | {parquet[field.name]} | "
                     f"{'yes' if field.nullable else 'no'} | {_cell(unit)} | {_cell(meaning)} |")
    return lines


def render():
    """The whole page, as ``docs/SCHEMA.md`` holds it."""
    schemas = catalog.schemas(_SAMPLE_MAP_SHAPE, "float16", _SAMPLE_MAP_SIZE)
    lines = [
        "# Output schema", "",
        "Generated by `python -m pipeline.outputs.schema_page docs/SCHEMA.md` from "
        "`pipeline/tables/` and `pipeline/outputs/schema_page.py`; do not edit by hand "
        "(a test compares them).", "",
        f"Schema version **{tables.SCHEMA_VERSION}**. Each table is a folder of Parquet files "
        "(zstd); every file stores `schema_version` in its metadata. Every table a run "
        "enables exists, with its schema, even with no rows; a disabled table has no folder. "
        "`h*w` is the manifest's `map_shape`, `map_size` is `findings.map_size`. "
        "The explained class is `target` (int64) in every table. Undefined numbers are null, "
        "never NaN. No column is a SQL reserved word. Types are those pandas, DuckDB, Polars, "
        "Spark and BigQuery all read: no FLOAT16, no unsigned integers, BYTE_STREAM_SPLIT "
        "only on FLOAT/DOUBLE columns.", "",
        "`output.map_dtype` and what `saliency.saliency` stores:", "",
        "| map_dtype | stored |", "| --- | --- |",
        *[f"| `{name}` | {meaning} |" for name, meaning in _MAP_DTYPES], "",
        "With `uint8` the map column is `list<int16>[h*w]` and "
        f"`{saliency_table.SALIENCY_SCALE}` (float32) follows it; the other columns are the "
        "same.", "",
    ]
    for table in tables.TABLES:
        lines += table_section(table, schemas[table]) + [""]
    lines += ["## `manifest.json`", "",
              "One JSON object beside the table folders, written when the run publishes.", "",
              "| field | meaning |", "| --- | --- |"]
    lines += [f"| `{name}` | {meaning} |" for name, meaning in MANIFEST_FIELDS]
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if argv:
        with open(argv[0], "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
