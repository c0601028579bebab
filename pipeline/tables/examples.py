"""``examples/``: the input images of the examples the report shows, per ranking
(``pipeline.rankings``), best first. Images are stored as PNG bytes."""

import io

import numpy as np
import pyarrow as pa

from pipeline.tables import with_nullable_ints
from pipeline.tables.saliency import EXAMPLE_ID

RANKING = "ranking"
RANK = "rank"
SCORE = "score"
IMAGE_PNG = "image_png"

EXAMPLES_SCHEMA = with_nullable_ints(pa.schema([
    pa.field(RANKING, pa.string(), nullable=False),
    pa.field(RANK, pa.int64(), nullable=False),
    pa.field(SCORE, pa.float64()),
    pa.field(EXAMPLE_ID, pa.string(), nullable=False),
    pa.field(IMAGE_PNG, pa.binary()),
]), ())

EXAMPLES_DESCRIPTION = "The input images of the examples the report shows, per ranking, best first."
EXAMPLES_COLUMNS = {
    RANKING: ("", "which ranking (pipeline.rankings)"),
    RANK: ("", "position in the ranking, 0 = first"),
    SCORE: ("ranking's unit", "the value the ranking sorts by; null when undefined"),
    EXAMPLE_ID: ("", "the example (saliency.example_id)"),
    IMAGE_PNG: ("PNG bytes", "the input image as the model saw it (uint8 RGB)"),
}


def encode_row(ranking, rank, score, example_id, image):
    """One shown example -> a row dict; ``image`` is uint8 ``(H, W, 3)``."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="png")
    score = None if score is None or score != score else float(score)
    return {RANKING: ranking, RANK: int(rank), SCORE: score, EXAMPLE_ID: example_id,
            IMAGE_PNG: buffer.getvalue()}


def decode_image(png_bytes):
    """PNG bytes -> uint8 ``(H, W, 3)``."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png_bytes)).convert("RGB"))
