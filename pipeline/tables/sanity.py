"""``sanity/``: the sanity checks on the sampled examples, one row per (check, depth, example).

``sanity_check`` says which check a row belongs to:

- ``'randomization'``: cascading model randomization; ``depth`` >= 1 units randomized
  (``randomized_layers``), Spearman/SSIM against the trained model's map; ``target`` and
  ``other_class`` are null.
- ``'class_sensitivity'``: the map of the explained ``target`` against the map of
  ``other_class`` (drawn with ``sanity.seed``) on the trained model; ``depth`` 0 and
  ``randomized_layers`` empty.

``spearman`` is null where it is undefined (a constant map, usually all zero).
"""

import math

import pyarrow as pa

from gbp_ops.choices import CHECK_RANDOMIZATION
from pipeline.tables import with_nullable_ints
from pipeline.tables.saliency import EXAMPLE_ID, TARGET

CHECK = "sanity_check"
DEPTH = "depth"
RANDOMIZED_LAYERS = "randomized_layers"
OTHER_CLASS = "other_class"
SPEARMAN = "spearman"
SSIM = "ssim"

SANITY_SCHEMA = with_nullable_ints(pa.schema([
    pa.field(CHECK, pa.string(), nullable=False),
    pa.field(DEPTH, pa.int64(), nullable=False),
    pa.field(RANDOMIZED_LAYERS, pa.string()),
    pa.field(EXAMPLE_ID, pa.string()),
    pa.field(TARGET, pa.int64()),
    pa.field(OTHER_CLASS, pa.int64()),
    pa.field(SPEARMAN, pa.float64()),
    pa.field(SSIM, pa.float64()),
]), (TARGET, OTHER_CLASS))

SANITY_DESCRIPTION = ("The sanity checks on a deterministic sample: model randomization per depth "
                      "and class sensitivity, one row per (check, depth, example).")
SANITY_COLUMNS = {
    CHECK: ("", "'randomization' or 'class_sensitivity'"),
    DEPTH: ("units", "randomization: units randomized from the top (>= 1); class "
                     "sensitivity: 0"),
    RANDOMIZED_LAYERS: ("", "comma-separated layers randomized at this depth; empty for class "
                            "sensitivity"),
    EXAMPLE_ID: ("", "the sampled example"),
    TARGET: ("class index", "class sensitivity: the explained class; null for randomization"),
    OTHER_CLASS: ("class index", "class sensitivity: the other class compared; null for "
                                 "randomization"),
    SPEARMAN: ("-1 to 1", "Spearman rank correlation of the two maps; null when a map is "
                          "constant"),
    SSIM: ("-1 to 1", "structural similarity of the two maps"),
}


def _defined(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def encode_row(check_row, example_id):
    """A row of ``gbp_ops.sanity.run_sanity_check`` or
    ``gbp_ops.class_sensitivity.run_class_sensitivity_check`` and its example's id -> a row
    dict (a row without ``check`` is a randomization row; NaN similarities become null)."""
    return {CHECK: check_row.get("check", CHECK_RANDOMIZATION), DEPTH: check_row["depth"],
            RANDOMIZED_LAYERS: check_row["randomized_layers"], EXAMPLE_ID: example_id,
            TARGET: check_row.get("target"), OTHER_CLASS: check_row.get("other_class"),
            SPEARMAN: _defined(check_row["spearman"]), SSIM: _defined(check_row["ssim"])}


def check_rows(rows):
    """Table rows (dicts, as ``encode_row`` writes them or pandas reads them) -> the row form of
    ``gbp_ops.sanity`` (``check``; NaN for an undefined similarity), for its summaries."""
    def number(value):
        return float("nan") if value is None or value != value else float(value)

    return [{"check": row[CHECK], "depth": int(row[DEPTH]),
             "randomized_layers": row[RANDOMIZED_LAYERS] or "",
             "spearman": number(row[SPEARMAN]), "ssim": number(row[SSIM])} for row in rows]
