"""The saliency table's encoding: maps round-trip through Arrow within each stored dtype's
precision (against the rounding written out in numpy), the metadata is kept, and a missing
label stays a nullable integer."""

import numpy as np
import pytest

from gbp_ops.statistics import AGGREGATED_STATISTICS
from pipeline.records import AuditBatch
from pipeline.tables import saliency

ROWS, HEIGHT, WIDTH = 5, 4, 6


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    maps = rng.uniform(0, 1e-5, (ROWS, HEIGHT, WIDTH)).astype(np.float32)  # below fp16 normals
    maps[2] = 0.0  # an all-zero map keeps scale 0
    labels = [1, None, 0, 1, 0]
    columns = {
        saliency.EXAMPLE_ID: np.array([f"id{i}" for i in range(ROWS)], object),
        saliency.POSITION: np.array([f"s:{i}" for i in range(ROWS)], object),
        saliency.LABEL: np.array(labels, object),
        saliency.LABEL_NAME: np.array([None] * ROWS, object),
        saliency.PREDICTED: np.array([1, 0, 0, 1, 1]),
        saliency.PREDICTED_NAME: np.array([None] * ROWS, object),
        saliency.TARGET: np.array([1, 0, 0, 1, 1]),
        saliency.TARGET_SCORE: rng.normal(size=ROWS).astype(np.float32),
        saliency.TARGET_PROB: rng.uniform(size=ROWS).astype(np.float32),
        saliency.CORRECT: np.array([True, None, True, True, False], object),
        saliency.BOX_AREA: np.full(ROWS, np.nan),
    }
    statistics = rng.uniform(size=(ROWS, len(AGGREGATED_STATISTICS)))
    return AuditBatch(columns, maps, statistics, np.zeros((ROWS, 2, 2, 3), np.uint8))


def _stored_by_numpy(maps, map_dtype):
    """What a reader gets back, written out: float16 keeps raw values with float16's rounding
    (numpy's cast after an exact power-of-two shift into its normal range); uint8 is per-map
    max scaling, then rounding to 255 steps."""
    peak = np.abs(maps).reshape(ROWS, -1).max(axis=1)[:, None, None]
    unit = maps / np.where(peak > 0, peak, 1.0)
    if map_dtype == "float16":
        shift = np.float32(2.0 ** 20)  # 1e-5 * 2**20 ~ 10: inside float16's normal range
        return (maps * shift).astype(np.float16).astype(np.float32) / shift
    if map_dtype == "uint8":
        return np.rint(unit * 255.0) / 255.0 * peak
    return maps


@pytest.mark.parametrize("map_dtype", ["float32", "float16", "uint8"])
def test_maps_round_trip_within_the_stored_precision(map_dtype):
    batch = _batch()
    metadata = {"map_shape": [HEIGHT, WIDTH], "run": "test"}
    schema = saliency.arrow_schema((HEIGHT, WIDTH), map_dtype, metadata)
    table = saliency.encode(batch, schema, map_dtype)
    assert saliency.read_metadata(table.schema) == metadata
    frame = table.to_pandas()
    decoded = np.stack(saliency.decode_maps(frame, metadata))
    np.testing.assert_allclose(decoded, _stored_by_numpy(batch.maps, map_dtype),
                               rtol=1e-6, atol=0)
    np.testing.assert_array_equal(decoded[2], 0.0)
    for index, name in enumerate(AGGREGATED_STATISTICS):
        np.testing.assert_array_equal(frame[name].to_numpy(), batch.statistics[:, index])


def test_a_missing_label_stays_a_nullable_integer():
    batch = _batch()
    schema = saliency.arrow_schema((HEIGHT, WIDTH), "float32", {})
    frame = saliency.encode(batch, schema, "float32").to_pandas()
    assert str(frame[saliency.LABEL].dtype) == "Int64"
    assert frame[saliency.LABEL].isna().tolist() == [False, True, False, False, False]
    assert frame[saliency.LABEL].dropna().tolist() == [1, 0, 1, 0]
