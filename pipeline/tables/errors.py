"""``errors/``: dead letters, the inputs that could not be processed, with the stage and why."""

import pyarrow as pa

from pipeline.tables.saliency import EXAMPLE_ID, POSITION

STAGE = "stage"
ERROR = "error"

ERRORS_SCHEMA = pa.schema([
    pa.field(EXAMPLE_ID, pa.string()),
    pa.field(POSITION, pa.string()),
    pa.field(STAGE, pa.string(), nullable=False),
    pa.field(ERROR, pa.string(), nullable=False),
])


def encode_row(dead_letter):
    """A ``pipeline.records.DeadLetter`` -> a row dict."""
    return {EXAMPLE_ID: dead_letter.example_id, POSITION: dead_letter.position,
            STAGE: dead_letter.stage, ERROR: dead_letter.error}
