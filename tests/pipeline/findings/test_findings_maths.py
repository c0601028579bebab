"""The findings maths against independent references: block-diagonal graphs with a known
number of blocks, brute-force loops for the regions, the vote and the averaging, and the
flag rule at its boundaries."""

import dataclasses

import numpy as np
import pytest
from scipy.linalg import block_diag

from pipeline import config as config_module
from pipeline.config import ConfigError, FindingsConfig
from pipeline.findings import analysis, assignment, clustering, regions, rules, small_maps


@pytest.mark.parametrize("blocks", [1, 2, 3, 5])
def test_eigengap_counts_the_blocks_of_a_block_diagonal_affinity(blocks):
    rng = np.random.default_rng(blocks)
    sizes = rng.integers(8, 20, size=blocks)
    parts = []
    for size in sizes:
        part = rng.uniform(0.5, 1.0, size=(size, size))
        parts.append((part + part.T) / 2)
    values, _ = clustering.laplacian_spectrum(block_diag(*parts), 8)
    assert np.allclose(values[:blocks], 0.0, atol=1e-9) and values[blocks] > 0.1
    assert clustering.eigengap_k(values, 6) == blocks


def test_spectral_clusters_recover_separated_groups_in_canonical_order():
    rng = np.random.default_rng(0)
    centres = np.eye(3, 16)  # three groups whose maps peak in different cells
    truth = np.repeat([0, 1, 2], [30, 50, 20])
    maps = (centres[truth] + rng.normal(0, 0.05, size=(100, 16))).reshape(100, 4, 4)
    ids = np.array([f"id-{i:03d}" for i in rng.permutation(100)])
    result = clustering.cluster_maps(maps.astype(np.float32), ids, 6, 8, seed=0)
    assert result.k == 3 and result.embedding.shape == (100, 2)
    # the biggest group is cluster 0, then 1: sizes 50, 30, 20
    assert (result.labels == np.select([truth == 1, truth == 0], [0, 1], 2)).all()
    again = clustering.cluster_maps(maps.astype(np.float32), ids, 6, 8, seed=0)
    assert (again.labels == result.labels).all() and np.array_equal(again.embedding,
                                                                   result.embedding)


def test_canonical_labels_order_by_size_then_smallest_id():
    labels = np.array([7, 7, 3, 3, 9, 9, 9])
    ids = np.array(["e", "b", "a", "f", "c", "d", "g"])
    assert clustering.canonical_labels(labels, ids).tolist() == [2, 2, 1, 1, 0, 0, 0]
    tied = clustering.canonical_labels(np.array([5, 5, 2, 2]), np.array(["z", "c", "b", "y"]))
    assert tied.tolist() == [1, 1, 0, 0]  # equal sizes: the cluster holding "b" first


@pytest.mark.parametrize("height,width,cells", [(32, 32, 16), (30, 45, 16), (7, 9, 4)])
def test_area_average_equals_a_loop_over_cells(height, width, cells):
    rng = np.random.default_rng(height)
    maps = rng.normal(size=(3, height, width))
    got = small_maps.area_average(maps, cells)
    for i in range(cells):
        for j in range(cells):
            y0, y1 = int(i * height / cells), int((i + 1) * height / cells)
            x0, x1 = int(j * width / cells), int((j + 1) * width / cells)
            block = maps[:, y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
            np.testing.assert_allclose(got[:, i, j], block.mean(axis=(1, 2)), rtol=1e-5)
    unit = small_maps.small_maps(-maps, cells)
    assert np.allclose(unit.reshape(3, -1).max(axis=1), 1.0) and unit.min() >= 0


def test_hot_region_is_the_box_of_the_peak_component():
    mean_map = np.zeros((16, 16))
    mean_map[12:15, 13:15] = [[0.6, 0.7], [1.0, 0.8], [0.55, 0.6]]
    mean_map[2, 2] = 0.9  # hot but not connected to the peak
    mean_map[11, 13] = 0.4  # connected but below half the peak
    # rows 12-14, columns 13-14; one cell of margin, cut at the image's edge (column 15)
    assert regions.hot_region(mean_map).tolist() == [11 / 16, 12 / 16, 16 / 16, 16 / 16]
    assert regions.hot_region(mean_map, margin=0).tolist() == [12 / 16, 13 / 16, 15 / 16,
                                                                15 / 16]
    assert regions.hot_region(np.zeros((4, 4))).tolist() == [0.0, 0.0, 1.0, 1.0]


def test_control_region_is_the_lowest_window_of_the_same_size():
    rng = np.random.default_rng(3)
    mean_map = rng.uniform(size=(10, 10))
    region = np.array([0.2, 0.3, 0.5, 0.5])  # 3 x 2 cells
    best = min((mean_map[y:y + 3, x:x + 2].sum(), y, x) for y in range(8) for x in range(9))
    np.testing.assert_allclose(regions.control_region(mean_map, region),
                               [best[1] / 10, best[2] / 10, (best[1] + 3) / 10,
                                (best[2] + 2) / 10])


def test_occlusion_fills_only_the_region():
    rng = np.random.default_rng(4)
    images = rng.uniform(size=(2, 8, 8, 3)).astype(np.float32)
    covered = regions.occlude(images, [0.5, 0.25, 1.0, 0.5], "mean")
    inside = np.zeros((8, 8), bool)
    inside[4:8, 2:4] = True
    np.testing.assert_allclose(covered[:, inside],
                               np.broadcast_to(images.mean(axis=(1, 2))[:, None], (2, 8, 3)),
                               rtol=1e-6)
    assert np.array_equal(covered[:, ~inside], images[:, ~inside])
    blurred = regions.occlude(images, [0.5, 0.25, 1.0, 0.5], "blur")
    assert np.array_equal(blurred[:, ~inside], images[:, ~inside])
    assert not np.allclose(blurred[:, inside], images[:, inside])


def _brute_vote(sample, labels, query, k, skip=None):
    distances = np.linalg.norm(sample - query, axis=1)
    order = [i for i in np.argsort(distances, kind="stable") if i != skip][:k]
    votes = labels[order]
    counts = np.bincount(votes, minlength=labels.max() + 1)
    winners = np.flatnonzero(counts == counts.max())
    return next(v for v in votes if v in winners)


def test_vote_and_its_leave_one_out_agreement_equal_a_loop():
    rng = np.random.default_rng(5)
    sample = rng.normal(size=(60, 9)).astype(np.float32)
    labels = rng.integers(0, 3, size=60)
    vote = assignment.NearestSampleVote(sample.reshape(60, 3, 3), labels, 5)
    queries = rng.normal(size=(40, 9)).astype(np.float32)
    expected = [_brute_vote(sample, labels, q, 5) for q in queries]
    assert vote.assign(queries.reshape(40, 3, 3)).tolist() == expected
    loo = np.mean([_brute_vote(sample, labels, sample[i], 5, skip=i) == labels[i]
                   for i in range(60)])
    assert vote.leave_one_out_agreement() == pytest.approx(loo)


@pytest.mark.parametrize("count,flip,control,share,expected", [
    (20, 0.9, 0.0, 0.1, True),     # zero control: the ratio holds
    (20, 0.9, 0.31, 0.1, False),   # 0.9 < 3 x 0.31
    (20, 0.9, 0.3, 0.1, True),     # exactly 3x
    (20, 0.49, 0.0, 0.1, False),   # below min_flip_rate
    (20, 0.9, 0.0, 0.3, False),    # region too large
    (4, 0.9, 0.0, 0.1, False),     # fewer than min_members
    (19, 0.9, 0.0, 0.1, False),    # fewer than 2% of 1000
])
def test_flag_rule_boundaries(count, flip, control, share, expected):
    side = share ** 0.5
    class_count = 1000 if count == 19 else 100
    assert rules.is_flagged(FindingsConfig(), count, class_count, [0, 0, side, side], flip,
                            control, 10) is expected


def test_reason_is_one_plain_sentence():
    text = rules.reason("dog", 120, 800, [0.8, 0.0, 1.0, 0.2], 0.91, 0.02, 64)
    assert text == ("dog: 120 of 800 examples (15%) rely on a small region at the lower left; "
                    "covering it changes 91% of their predictions, a control region 2% "
                    "(64 examples tested)")


def test_analysis_occludes_with_the_given_model():
    """A closed-form model: class 1 iff pixel (0, 0) is bright. Members marked there flip."""
    rng = np.random.default_rng(6)
    maps = np.zeros((40, 4, 4), np.float32)
    maps[:20, 0, 0] = 1.0
    maps[20:, 3, 3] = 1.0
    maps += rng.uniform(0, 0.05, size=maps.shape).astype(np.float32)
    images = np.full((40, 8, 8, 1), 0.2, np.float32)
    images[:20, 0:2, 0:2] = 1.0

    def predict(batch):
        return (batch[:, 0, 0, 0] > 0.5).astype(np.int64)

    ids = [f"e{i:02d}" for i in range(40)]
    predicted = predict(images)
    sampled = [(f"k{i:02d}", ids[i], maps[i], int(predicted[i])) for i in range(40)]
    imaged = [(f"k{i:02d}", ids[i], images[i]) for i in range(40)]
    settings = dataclasses.replace(FindingsConfig(), map_size=4, neighbors=5)
    found = analysis.analyse_class(1, sampled, imaged, predict, settings)
    assert found.clustering.k == 2 and found.agreement == 1.0
    marked = found.clusters[int(found.clustering.labels[ids.index("e00")])]
    assert marked["flip_rate"] == 1.0 and marked["control_flip_rate"] == 0.0
    assert marked["region"].tolist() == [0.0, 0.0, 0.5, 0.5]  # cell (0, 0) and its margin
    assert marked["occluded_examples"] == 20


@pytest.mark.parametrize("field,value", [("map_size", 0), ("occlusion_fill", "paint"),
                                         ("min_flip_rate", 1.5), ("neighbors", 0)])
def test_bad_findings_settings_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"findings.{field}"):
        config_module.config_from_dict({"source": {"pattern": "x"}, "model": {"path": "m"},
                                        "output": {"path": "o"}, "findings": {field: value}})


def test_findings_stay_out_of_the_light_imports():
    import subprocess
    import sys

    script = ("import sys, pipeline, pipeline.outputs.loader, pipeline.findings, "
              "pipeline.tables.clusters\n"
              "print(sorted(m for m in ('sklearn', 'apache_beam', 'tensorflow') "
              "if m in sys.modules))\n")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               check=True)
    assert completed.stdout.strip() == "[]"
