"""``errors/``: dead letters, the inputs that could not be processed, with the stage and why."""

import pyarrow as pa

from pipeline.tables import with_nullable_ints
from pipeline.tables.saliency import EXAMPLE_ID, POSITION

STAGE = "stage"
ERROR = "error"

ERRORS_SCHEMA = with_nullable_ints(pa.schema([
    pa.field(EXAMPLE_ID, pa.string()),
    pa.field(POSITION, pa.string()),
    pa.field(STAGE, pa.string(), nullable=False),
    pa.field(ERROR, pa.string(), nullable=False),
]), ())

ERRORS_DESCRIPTION = "Dead letters: the inputs that could not be processed, with the stage and why."
ERRORS_COLUMNS = {
    EXAMPLE_ID: ("", "the input's id, when it could be read"),
    POSITION: ("", "file and record position (or the damaged shard)"),
    STAGE: ("", "where it failed (pipeline.records dead-letter stages)"),
    ERROR: ("", "why, in one line"),
}


def encode_row(dead_letter):
    """A ``pipeline.records.DeadLetter`` -> a row dict."""
    return {EXAMPLE_ID: dead_letter.example_id, POSITION: dead_letter.position,
            STAGE: dead_letter.stage, ERROR: dead_letter.error}
