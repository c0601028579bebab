"""``sanity/``: the sanity checks on the sampled examples, one row per (check, depth, example).

``check`` says which check a row belongs to:

- ``'randomization'``: cascading model randomization; ``depth`` >= 1 units randomized
  (``randomized_layers``), Spearman/SSIM against the trained model's map; ``target`` and
  ``other_class`` are null.
- ``'class_sensitivity'``: the map of the explained ``target`` against the map of
  ``other_class`` (drawn with ``sanity.seed``) on the trained model; ``depth`` 0 and
  ``randomized_layers`` empty.

Tables written before the class-sensitivity check have no ``check``, ``target`` or
``other_class`` columns; all their rows are randomization rows.
"""

import pyarrow as pa

from gbp_ops.choices import CHECK_RANDOMIZATION
from pipeline.tables.saliency import EXAMPLE_ID, TARGET

CHECK = "check"
DEPTH = "depth"
RANDOMIZED_LAYERS = "randomized_layers"
OTHER_CLASS = "other_class"
SPEARMAN = "spearman"
SSIM = "ssim"

SANITY_SCHEMA = pa.schema([
    pa.field(CHECK, pa.string(), nullable=False),
    pa.field(DEPTH, pa.int64(), nullable=False),
    pa.field(RANDOMIZED_LAYERS, pa.string()),
    pa.field(EXAMPLE_ID, pa.string()),
    pa.field(TARGET, pa.int64()),
    pa.field(OTHER_CLASS, pa.int64()),
    pa.field(SPEARMAN, pa.float64()),
    pa.field(SSIM, pa.float64()),
])


def encode_row(check_row, example_id):
    """A row of ``gbp_ops.sanity.run_sanity_check`` or
    ``gbp_ops.class_sensitivity.run_class_sensitivity_check`` and its example's id -> a row
    dict (a row without ``check`` is a randomization row)."""
    return {CHECK: check_row.get("check", CHECK_RANDOMIZATION), DEPTH: check_row["depth"],
            RANDOMIZED_LAYERS: check_row["randomized_layers"], EXAMPLE_ID: example_id,
            TARGET: check_row.get("target"), OTHER_CLASS: check_row.get("other_class"),
            SPEARMAN: check_row["spearman"], SSIM: check_row["ssim"]}
