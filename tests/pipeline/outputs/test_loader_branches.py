"""load_saliency on hand-written outputs whose rows fall on both sides of every filter: the
class, correct and id filters combined, the cluster join with an id repeated in
``assignments/``, and chosen columns with the map of a float16 or uint8 run (unscaled with
``saliency_scale`` even when the caller did not list it)."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline import tables
from pipeline.outputs import loader
from pipeline.tables import assignments as assignments_table
from pipeline.tables import saliency as saliency_table
from tests.pipeline.tables.test_tables_roundtrip import MAP_SHAPE, audit_batch, write_table


def _run(root, map_dtype="float32", seeds=(0, 1, 2)):
    """An output folder whose saliency table holds the batches of ``audit_batch`` (targets 0,
    1 and 2; correct True, False and unknown), one file per batch."""
    schema = saliency_table.arrow_schema(MAP_SHAPE, map_dtype, {"map_shape": list(MAP_SHAPE)})
    batches = [audit_batch(seed) for seed in seeds]
    folder = root / tables.SALIENCY
    folder.mkdir(parents=True)
    for index, batch in enumerate(batches):
        pq.write_table(saliency_table.encode(batch, schema, map_dtype),
                       folder / f"saliency-{index:05d}-of-{len(batches):05d}.parquet")
    rows = pd.concat([pd.DataFrame({name: list(values) for name, values in b.columns.items()})
                      for b in batches], ignore_index=True)
    maps = {example_id: m for b in batches for example_id, m in zip(
        b.columns[saliency_table.EXAMPLE_ID], b.maps)}
    return rows, maps


def _ids(frame):
    return sorted(frame[saliency_table.EXAMPLE_ID].astype(str))


@pytest.mark.parametrize("classes,correct", [([1], False), ([1], True), ([0, 2], True),
                                             ([0], None), (None, False), ([2], False)])
def test_class_and_correct_filters_combine(tmp_path, classes, correct):
    rows, _ = _run(tmp_path)
    keep = [(classes is None or target in classes) and (correct is None or flag is correct)
            for target, flag in zip(rows[saliency_table.TARGET], rows[saliency_table.CORRECT])]
    expected = sorted(rows[saliency_table.EXAMPLE_ID][keep])
    assert _ids(loader.load_saliency(str(tmp_path), classes=classes, correct=correct,
                                     maps=False)) == expected
    # the id filter on top of both
    some = expected[:1] + ["ex-0-0", "no-such-id"]
    both = [i for i in expected if i in some]
    assert _ids(loader.load_saliency(str(tmp_path), classes=classes, correct=correct,
                                     example_ids=some, maps=False)) == both


def test_both_sides_of_each_filter_are_present():
    rows = pd.concat([pd.DataFrame(audit_batch(seed).columns) for seed in (0, 1, 2)])
    assert {0, 1, 2} <= set(rows[saliency_table.TARGET])
    assert {True, False, None} == set(rows[saliency_table.CORRECT])
    first = rows[rows[saliency_table.TARGET] == 1]
    assert {True, False} <= set(first[saliency_table.CORRECT])


def test_the_cluster_join_keeps_the_first_of_a_repeated_id(tmp_path):
    rows, _ = _run(tmp_path, seeds=(0,))
    ids = list(rows[saliency_table.EXAMPLE_ID])
    write_table(tmp_path, tables.ASSIGNMENTS, assignments_table.encode(
        [ids[0], ids[1], ids[0], ids[3]], [1, 1, 1, 2], [4, 0, 7, 1]))
    frame = loader.load_saliency(str(tmp_path), maps=False).set_index(saliency_table.EXAMPLE_ID)
    assert str(frame["cluster"].dtype) == "Int64"
    assert frame["cluster"][ids[0]] == 4 and frame["cluster"][ids[1]] == 0
    assert frame["cluster"][ids[3]] == 1 and frame["cluster"][ids[2]] is pd.NA
    chosen = loader.load_saliency(str(tmp_path), columns=["cluster"], maps=False)
    assert dict(zip(chosen[saliency_table.EXAMPLE_ID], chosen["cluster"]))[ids[0]] == 4


@pytest.mark.parametrize("with_scale", [False, True], ids=["scale-unlisted", "scale-listed"])
@pytest.mark.parametrize("map_dtype,tolerance", [("float16", 1 / 2048), ("uint8", 0.5 / 255)])
def test_chosen_columns_with_the_map_are_unscaled(tmp_path, map_dtype, tolerance, with_scale):
    _, maps = _run(tmp_path, map_dtype)
    wanted = ["ex-1-0", "ex-2-3"]
    columns = [saliency_table.EXAMPLE_ID, saliency_table.SALIENCY_MAP]
    if with_scale and map_dtype == "uint8":
        columns.append(saliency_table.SALIENCY_SCALE)
    frame = loader.load_saliency(str(tmp_path), columns=columns, example_ids=wanted)
    assert _ids(frame) == wanted
    assert len(set(frame.columns)) == len(frame.columns)  # a listed scale is not read twice
    for example_id, decoded in zip(frame[saliency_table.EXAMPLE_ID], frame[
            saliency_table.SALIENCY_MAP]):
        expected = maps[example_id]
        assert decoded.dtype == np.float32 and decoded.shape == MAP_SHAPE
        assert np.abs(decoded - expected).max() <= tolerance * np.abs(expected).max() + 1e-12
        assert np.abs(expected).max() > 1e-6
