"""``sanity/``: the model-randomization sanity check, one row per (depth, sampled example)."""

import pyarrow as pa

from pipeline.tables.saliency import EXAMPLE_ID

DEPTH = "depth"
RANDOMIZED_LAYERS = "randomized_layers"
SPEARMAN = "spearman"
SSIM = "ssim"

SANITY_SCHEMA = pa.schema([
    pa.field(DEPTH, pa.int64(), nullable=False),
    pa.field(RANDOMIZED_LAYERS, pa.string()),
    pa.field(EXAMPLE_ID, pa.string()),
    pa.field(SPEARMAN, pa.float64()),
    pa.field(SSIM, pa.float64()),
])


def encode_row(check_row, example_id):
    """A row of ``gbp_ops.sanity.run_sanity_check`` and its example's id -> a row dict."""
    return {DEPTH: check_row["depth"], RANDOMIZED_LAYERS: check_row["randomized_layers"],
            EXAMPLE_ID: example_id, SPEARMAN: check_row["spearman"], SSIM: check_row["ssim"]}
