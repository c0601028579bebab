"""The findings' clustering and assignment on data where the k-means seed matters, against a
reference computed independently: a brute-force k-NN graph, the normalised Laplacian built and
solved with numpy, the eigengap, the rows of the first k eigenvectors normalised (Ng, Jordan &
Weiss), then scikit-learn's KMeans called directly with ``findings.seed``, and the labels
renumbered by size, then by smallest member id.

The data: maps whose two varying cells trace a ring. A ring has no natural cut into k arcs,
so k-means' local optima differ from seed to seed (6 different partitions for the seeds 0..7
here; the tests check that at least two seeds disagree, so a pipeline that ignored the seed
would fail them). The other findings tests use well-separated groups, where every seed agrees.
"""

import dataclasses

import numpy as np
import pytest
from sklearn.cluster import KMeans

from pipeline.config import FindingsConfig
from pipeline.findings import analysis, assignment, clustering

SEEDS = range(8)
MAX_CLUSTERS, NEIGHBORS = 6, 4


def ring_maps(count=90, seed=0):
    """float32 ``(count, 4, 4)`` maps: 0.5 everywhere, cells 5 and 10 at 0.5 + 0.4 (cos, sin)
    of angles drawn uniformly around the circle."""
    rng = np.random.default_rng(seed)
    theta = np.sort(rng.uniform(0.0, 2 * np.pi, count))
    flat = np.full((count, 16), 0.5)
    flat[:, 5] += 0.4 * np.cos(theta)
    flat[:, 10] += 0.4 * np.sin(theta)
    return flat.reshape(count, 4, 4).astype(np.float32)


def brute_affinity(features, neighbors):
    """Symmetric 0/1 graph: i ~ j when j is among i's k nearest others or i among j's."""
    count = len(features)
    distances = np.sqrt(((features[:, None] - features[None]) ** 2).sum(-1))
    np.fill_diagonal(distances, np.inf)
    graph = np.zeros((count, count))
    for i in range(count):
        graph[i, np.argsort(distances[i], kind="stable")[:min(neighbors, count - 1)]] = 1.0
    return np.maximum(graph, graph.T)


def normalised_laplacian(graph):
    degrees = graph.sum(axis=1)
    return np.eye(len(graph)) - graph / np.sqrt(np.outer(degrees, degrees))


def renumbered(labels, ids):
    """Largest cluster 0, ties by smallest member id."""
    keys = sorted((-int((labels == label).sum()), min(ids[labels == label]), label)
                  for label in set(labels.tolist()))
    new = {old: index for index, (_, _, old) in enumerate(keys)}
    return np.array([new[label] for label in labels.tolist()])


def reference_clusters(maps, ids, max_clusters, neighbors, seed):
    """(k, labels, eigenvalues) of the documented algorithm, written from scratch."""
    features = np.asarray(maps, np.float64).reshape(len(maps), -1)
    values, vectors = np.linalg.eigh(normalised_laplacian(brute_affinity(features, neighbors)))
    values = np.clip(values, 0.0, None)
    k = int(np.argmax(np.diff(values[:max_clusters + 1]))) + 1
    if k == 1:
        return 1, np.zeros(len(maps), np.int64), values
    rows = vectors[:, :k] / np.linalg.norm(vectors[:, :k], axis=1, keepdims=True)
    labels = KMeans(k, n_init=10, random_state=seed).fit_predict(rows)
    return k, renumbered(labels, ids), values


@pytest.fixture(scope="module")
def ring():
    maps = ring_maps()
    ids = np.array([f"ex-{i:03d}" for i in range(len(maps))])
    references = {seed: reference_clusters(maps, ids, MAX_CLUSTERS, NEIGHBORS, seed)
                  for seed in SEEDS}
    return maps, ids, references


def test_the_seed_matters_on_this_data(ring):
    _, _, references = ring
    partitions = {tuple(labels.tolist()) for _, labels, _ in references.values()}
    assert len(partitions) >= 2, "every seed agrees: this data cannot test the seed"
    assert not np.array_equal(references[0][1], references[1][1])


@pytest.mark.parametrize("seed", SEEDS)
def test_cluster_maps_equals_the_reference_for_each_seed(ring, seed):
    maps, ids, references = ring
    k, labels, values = references[seed]
    result = clustering.cluster_maps(maps, ids, MAX_CLUSTERS, NEIGHBORS, seed)
    assert result.k == k
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_allclose(result.eigenvalues, values[:MAX_CLUSTERS + 1], atol=1e-10)
    again = clustering.cluster_maps(maps, ids, MAX_CLUSTERS, NEIGHBORS, seed)
    np.testing.assert_array_equal(again.labels, result.labels)
    np.testing.assert_array_equal(again.embedding, result.embedding)


def _brute_vote(sample, labels, query, k, skip=None):
    """Majority of the k nearest sample members (ties: the nearest tied member's cluster)."""
    distances = np.linalg.norm(sample - query, axis=1)
    order = [i for i in np.argsort(distances, kind="stable") if i != skip][:k]
    votes = labels[order]
    counts = np.bincount(votes, minlength=labels.max() + 1)
    return next(v for v in votes if counts[v] == counts.max())


@pytest.mark.parametrize("seed", [0, 1, 5])
def test_analyse_class_and_its_assignment_equal_the_reference(ring, seed):
    """The pipeline's per-class step with findings.seed: clusters, leave-one-out agreement and
    the vote that assigns the examples outside the sample, all from the reference labels."""
    maps, ids, references = ring
    k, labels, _ = references[seed]
    settings = dataclasses.replace(FindingsConfig(), map_size=4, max_clusters=MAX_CLUSTERS,
                                   neighbors=NEIGHBORS, seed=seed, occlusion_samples=4)
    order = np.random.default_rng(seed).permutation(len(ids))  # arrival order is irrelevant
    sampled = [(f"key-{i}", ids[i], maps[i], 0) for i in order]
    imaged = [(f"key-{i}", ids[i], np.zeros((4, 4, 1), np.float32)) for i in order[:20]]
    found = analysis.analyse_class(3, sampled, imaged,
                                   lambda images: np.zeros(len(images), np.int64), settings)
    assert found.clustering.k == k and len(found.clusters) == k
    np.testing.assert_array_equal(found.sample_ids, ids)
    np.testing.assert_array_equal(found.clustering.labels, labels)
    flat = maps.reshape(len(maps), -1)
    loo = np.mean([_brute_vote(flat, labels, flat[i], NEIGHBORS, skip=i) == labels[i]
                   for i in range(len(flat))])
    assert found.agreement == pytest.approx(loo, abs=1e-12)
    queries = ring_maps(40, seed=100 + seed).reshape(40, -1)
    expected = [_brute_vote(flat, labels, query, NEIGHBORS) for query in queries]
    assert found.assigner(NEIGHBORS).assign(queries.reshape(40, 4, 4)).tolist() == expected
    for cluster, entry in enumerate(found.clusters):
        np.testing.assert_allclose(entry["mean_map"], maps[labels == cluster].mean(axis=0),
                                   rtol=1e-6)


def test_two_seeds_give_two_different_findings(ring):
    maps, ids, references = ring
    results = [clustering.cluster_maps(maps, ids, MAX_CLUSTERS, NEIGHBORS, seed).labels
               for seed in (0, 1)]
    assert not np.array_equal(*results)
    vote = assignment.NearestSampleVote(maps, results[0], NEIGHBORS)
    other = assignment.NearestSampleVote(maps, results[1], NEIGHBORS)
    queries = ring_maps(40, seed=7)
    assert vote.assign(queries).tolist() != other.assign(queries).tolist()
