"""Findings branches the other tests never reach, against independent references: a sample
larger than the dense-solver limit (ARPACK path), as many groups as ``max_clusters`` (the top
of the eigengap's search range), the k-NN graph's symmetry, the embedding's eigenvectors, a
one-member sample, and a batch with unlabelled examples and non-finite rows."""

import dataclasses
import types

import numpy as np
import pytest
from scipy.linalg import block_diag
from sklearn.cluster import KMeans

from pipeline.config import FindingsConfig, RunConfig
from pipeline.findings import assignment, clustering, sampling
from tests.pipeline.findings.test_findings_determinism import (
    brute_affinity,
    normalised_laplacian,
    reference_clusters,
    renumbered,
)


def _groups(sizes, seed, spread=0.05):
    """float32 ``(sum(sizes), 4, 4)`` maps, group g peaking in cell g, with noise."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(len(sizes)), sizes)
    maps = np.eye(len(sizes), 16)[truth] + rng.normal(0.0, spread, (len(truth), 16))
    return np.abs(maps).reshape(-1, 4, 4).astype(np.float32), truth


def test_affinity_graph_is_the_symmetric_k_nearest_neighbour_graph():
    maps, _ = _groups([15, 20, 10], seed=1, spread=0.3)
    features = maps.reshape(len(maps), -1).astype(np.float64)
    for neighbors in (1, 3, 7):
        graph = clustering.affinity_graph(features, neighbors).toarray()
        np.testing.assert_array_equal(graph, brute_affinity(features, neighbors))


def test_a_sample_above_the_dense_limit_uses_arpack_and_equals_the_dense_spectrum():
    count = clustering.DENSE_LIMIT + 60
    maps, _ = _groups([150, 130, 80], seed=2, spread=0.25)
    assert len(maps) == count
    features = maps.reshape(count, -1).astype(np.float64)
    laplacian = normalised_laplacian(brute_affinity(features, 10))
    expected = np.linalg.eigvalsh(laplacian)[:7]
    values, vectors = clustering.laplacian_spectrum(clustering.affinity_graph(features, 10), 7)
    np.testing.assert_allclose(values, expected, atol=1e-8)
    assert (np.diff(values) >= 0).all()
    np.testing.assert_allclose(laplacian @ vectors, vectors * values, atol=1e-6)
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(7), atol=1e-8)


def test_clusters_of_a_sample_above_the_dense_limit_equal_the_reference():
    maps, truth = _groups([150, 130, 80], seed=3, spread=0.1)
    ids = np.array([f"id-{i:04d}" for i in range(len(maps))])
    k, labels, _ = reference_clusters(maps, ids, 6, 10, seed=0)
    result = clustering.cluster_maps(maps, ids, 6, 10, seed=0)
    assert result.k == k == 3
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_array_equal(result.labels, renumbered(truth, ids))


@pytest.mark.parametrize("blocks", [4, 6])
def test_eigengap_reaches_max_clusters(blocks):
    """As many blocks as max_clusters: the top of the search range is chosen."""
    rng = np.random.default_rng(blocks)
    parts = []
    for size in rng.integers(6, 12, size=blocks):
        part = rng.uniform(0.5, 1.0, (size, size))
        parts.append((part + part.T) / 2)
    values, _ = clustering.laplacian_spectrum(block_diag(*parts), blocks + 1)
    assert np.allclose(values[:blocks], 0.0, atol=1e-9) and values[blocks] > 0.1
    assert clustering.eigengap_k(values, blocks) == blocks
    # fewer eigenvalues than max_clusters + 1: the range stops at the last gap
    assert clustering.eigengap_k(values[:blocks + 1], blocks + 3) == blocks


def test_as_many_groups_as_max_clusters_are_all_found():
    maps, truth = _groups([12, 14, 16, 18, 20, 22], seed=4)
    ids = np.array([f"g-{i:03d}" for i in range(len(maps))])
    result = clustering.cluster_maps(maps, ids, 6, 8, seed=0)
    assert result.k == 6
    np.testing.assert_array_equal(result.labels, renumbered(truth, ids))


def test_the_embedding_is_the_first_two_non_trivial_eigenvectors():
    maps, _ = _groups([30, 25, 20], seed=5, spread=0.3)
    features = maps.reshape(len(maps), -1).astype(np.float64)
    laplacian = normalised_laplacian(brute_affinity(features, 8))
    values = np.linalg.eigvalsh(laplacian)
    embedding = clustering.cluster_maps(maps, [str(i) for i in range(75)], 6, 8, 0).embedding
    for column, value in zip(embedding.T.astype(np.float64), values[1:3]):
        assert np.linalg.norm(column) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(laplacian @ column, value * column, atol=1e-5)


def test_kmeans_runs_on_row_normalised_eigenvectors():
    """Rows of the first k eigenvectors scaled to unit length before k-means, with the seed."""
    maps, _ = _groups([20, 20, 20], seed=6, spread=0.2)
    ids = np.array([f"r-{i:02d}" for i in range(60)])
    features = maps.reshape(60, -1).astype(np.float64)
    values, vectors = np.linalg.eigh(normalised_laplacian(brute_affinity(features, 5)))
    result = clustering.cluster_maps(maps, ids, 6, 5, seed=2)
    k = result.k
    assert k == int(np.argmax(np.diff(values[:7]))) + 1 and k > 1
    rows = vectors[:, :k] / np.linalg.norm(vectors[:, :k], axis=1, keepdims=True)
    expected = renumbered(KMeans(k, n_init=10, random_state=2).fit_predict(rows), ids)
    np.testing.assert_array_equal(result.labels, expected)


def test_a_one_member_sample_votes_for_its_only_cluster():
    vote = assignment.NearestSampleVote(np.ones((1, 4, 4), np.float32), np.array([0]), 5)
    assert vote.leave_one_out_agreement() == 1.0
    assert vote.assign(np.random.default_rng(0).random((3, 4, 4))).tolist() == [0, 0, 0]
    assert clustering.cluster_maps(np.ones((1, 4, 4)), ["a"], 6, 5, 0).labels.tolist() == [0]


@pytest.mark.parametrize("count", [1, 2])
def test_a_sample_too_small_to_cluster_reports_no_eigenvalues(count):
    maps = np.random.default_rng(count).random((count, 4, 4))
    result = clustering.cluster_maps(maps, [f"e{i}" for i in range(count)], 6, 5, 0)
    assert result.labels.tolist() == [0] * count and result.k == 1
    assert result.eigenvalues.shape == (0,)  # not a spectrum of zeros nobody computed


def _explained(labels, predicted, maps, scores):
    examples = [types.SimpleNamespace(example_id=f"e{i}", label=label,
                                      display=np.zeros((4, 4, 3), np.uint8))
                for i, label in enumerate(labels)]
    explanation = types.SimpleNamespace(maps=maps, target_scores=scores,
                                        predicted=np.array(predicted),
                                        targets=np.array(predicted))
    return types.SimpleNamespace(examples=examples, explanation=explanation)


def test_finding_rows_keep_unlabelled_rows_as_unknown_and_drop_non_finite_rows():
    """Rows on both sides of each filter: labelled right, labelled wrong, unlabelled; finite,
    a NaN map, an infinite score."""
    labels = [1, 0, None, 2, None, 1]
    predicted = [1, 1, 0, 2, 1, 0]
    maps = np.random.default_rng(8).random((6, 8, 8)).astype(np.float32)
    maps[3, 2, 5] = np.nan
    scores = np.array([1.0, 2.0, 3.0, 4.0, np.inf, 6.0])
    config = dataclasses.replace(RunConfig(), findings=FindingsConfig(map_size=4))
    keep, ids, targets, kept_predicted, correct, small = sampling.finding_rows(
        _explained(labels, predicted, maps, scores), config)
    finite = [i for i in range(6) if np.isfinite(maps[i]).all() and np.isfinite(scores[i])]
    assert keep.tolist() == finite == [0, 1, 2, 5]
    assert ids == ["e0", "e1", "e2", "e5"]
    assert targets.tolist() == kept_predicted.tolist() == [1, 1, 0, 0]
    assert correct.tolist() == [True, False, None, False]
    expected = maps[finite].reshape(4, 4, 2, 4, 2).mean(axis=(2, 4))
    expected /= expected.reshape(4, -1).max(axis=1)[:, None, None]
    np.testing.assert_allclose(small, expected, rtol=1e-6)
