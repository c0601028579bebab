"""What a run's tables cost on disk and which clients read them.

    .venv/bin/python scripts/storage_check.py out/demo [--reference out/demo-float32]

Per table: rows, files, row groups, bytes, bytes per row, footer bytes per row, and whether
pandas (pyarrow), DuckDB and Polars read it (``SELECT *``, and for the saliency table the sum
of every map). With ``--reference`` (a float32 run of the same input), the worst relative error
of this run's stored maps against the reference's, per element (non-zero reference values)
and relative to each map's largest |value|. The last line is one JSON object.
"""

import argparse
import glob
import json
import os
import sys

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TABLES = ("saliency", "stats", "errors", "sanity", "examples", "clusters", "assignments",
          "embedding")


def _files(output, table):
    return sorted(glob.glob(os.path.join(output, table, "*.parquet")))


def _parquet_figures(files):
    rows = groups = size = footer = 0
    for path in files:
        metadata = pq.ParquetFile(path).metadata
        rows += metadata.num_rows
        groups += metadata.num_row_groups
        size += os.path.getsize(path)
        footer += metadata.serialized_size
    return {"rows": rows, "files": len(files), "row_groups": groups, "bytes": size,
            "bytes_per_row": round(size / rows, 1) if rows else None,
            "footer_bytes_per_row": round(footer / rows, 1) if rows else None}


def _try(read):
    try:
        read()
        return "ok"
    except Exception as error:  # noqa: BLE001 - the point is to record any client's failure
        return f"fails: {str(error).splitlines()[0][:120]}"


def _clients(output, table):
    import duckdb
    import pandas as pd
    import polars as pl

    folder = os.path.join(output, table)
    pattern = os.path.join(folder, "*.parquet")
    found = {"pandas": _try(lambda: pd.read_parquet(folder)),
             "duckdb": _try(lambda: duckdb.sql(f"SELECT * FROM '{pattern}'").fetchall()),
             "polars": _try(lambda: pl.read_parquet(pattern))}
    if table == "saliency":
        found["duckdb_map_sum"] = _try(lambda: duckdb.sql(
            f"SELECT sum(list_sum(saliency)) FROM '{pattern}'").fetchall())
        found["polars_map_sum"] = _try(lambda: pl.read_parquet(pattern).select(
            pl.col("saliency").arr.sum()))
    return found


def _maps(output):
    """example_id -> float32 map as the project's loader decodes it."""
    from pipeline.outputs import loader

    frame = loader.load_saliency(output, columns=["example_id", "saliency"])
    return dict(zip(frame["example_id"], frame["saliency"]))


def _errors(output, reference):
    stored, exact = _maps(output), _maps(reference)
    worst_element = worst_of_max = 0.0
    for example_id, truth in exact.items():
        truth = np.asarray(truth, np.float64)
        got = np.asarray(stored[example_id], np.float64)
        nonzero = truth != 0
        if nonzero.any():
            worst_element = max(worst_element, float(
                np.max(np.abs(got[nonzero] - truth[nonzero]) / np.abs(truth[nonzero]))))
        peak = np.abs(truth).max()
        if peak > 0:
            worst_of_max = max(worst_of_max, float(np.abs(got - truth).max() / peak))
    return {"worst_relative_error": worst_element, "worst_error_of_map_max": worst_of_max}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--reference", help="a float32 run of the same input")
    args = parser.parse_args()
    report = {}
    for table in TABLES:
        files = _files(args.output, table)
        exists = os.path.isdir(os.path.join(args.output, table))
        entry = {"folder": exists, **_parquet_figures(files)}
        if exists:
            entry.update(_clients(args.output, table))
        report[table] = entry
        print(table, json.dumps(entry))
    if args.reference:
        report["maps"] = _errors(args.output, args.reference)
        print("maps", json.dumps(report["maps"]))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
