"""Spectral clustering of one class's small maps (SpRAy): a symmetric k-NN affinity graph,
its normalised Laplacian, the eigengap choosing k, then k-means in the spectral embedding.

Deterministic: the dense eigensolver (LAPACK) has no random start, k-means has a fixed seed,
and cluster labels are renumbered by size (largest first), then by smallest member id.
"""

import dataclasses

import numpy as np

DENSE_LIMIT = 300  # nodes; above it the sparse eigensolver is much faster


@dataclasses.dataclass
class Clustering:
    """The clusters of one sample.

    Attributes:
        labels: int64 ``(S,)`` cluster per sample member, 0 = largest cluster.
        eigenvalues: float64 ``(m,)`` smallest eigenvalues of the normalised Laplacian; empty
            (m = 0) for a sample of fewer than 3 maps, which is not clustered.
        k: the number of clusters the eigengap chose.
        embedding: float32 ``(S, 2)`` 2-D view (the first two non-trivial eigenvectors).
    """

    labels: np.ndarray
    eigenvalues: np.ndarray
    k: int
    embedding: np.ndarray


def affinity_graph(features, neighbors):
    """float ``(S, D)`` -> scipy sparse ``(S, S)`` symmetric 0/1 k-NN connectivity."""
    from sklearn.neighbors import kneighbors_graph

    neighbors = max(1, min(neighbors, len(features) - 1))
    graph = kneighbors_graph(features, neighbors, mode="connectivity", include_self=False)
    return graph.maximum(graph.T)


def laplacian_spectrum(affinity, count):
    """The ``count`` smallest eigenvalues (ascending, float64) and eigenvectors ``(S, count)``
    of the normalised Laplacian of a symmetric affinity (sparse or dense).

    Small graphs use the dense LAPACK solver; larger ones ARPACK on the normalised adjacency
    ``D^-1/2 A D^-1/2 = I - L`` (its largest eigenvalues are L's smallest), started from a
    fixed vector, so the result does not depend on a random start.
    """
    import scipy.linalg
    from scipy.sparse import csgraph, csr_matrix, identity
    from scipy.sparse.linalg import eigsh

    size = affinity.shape[0]
    count = min(count, size)
    if size <= DENSE_LIMIT or count >= size - 1:
        dense = affinity.toarray() if hasattr(affinity, "toarray") else np.asarray(affinity)
        laplacian = csgraph.laplacian(dense.astype(np.float64), normed=True)
        values, vectors = scipy.linalg.eigh(laplacian, subset_by_index=[0, count - 1])
        return np.clip(values, 0.0, None), vectors
    laplacian = csgraph.laplacian(csr_matrix(affinity, dtype=np.float64), normed=True)
    adjacency = identity(size, format="csr") - laplacian
    values, vectors = eigsh(adjacency, k=count, which="LA", v0=np.ones(size), tol=1e-10)
    order = np.argsort(-values, kind="stable")
    return np.clip(1.0 - values[order], 0.0, None), vectors[:, order]


def eigengap_k(eigenvalues, max_clusters):
    """The k in ``1..max_clusters`` after which the gap ``λ_k - λ_{k-1}`` is largest
    (eigenvalues ascending, 0-based: the gap after the first k eigenvalues)."""
    limit = min(max_clusters, len(eigenvalues) - 1)
    if limit < 1:
        return 1
    gaps = np.diff(eigenvalues[:limit + 1])
    return int(np.argmax(gaps)) + 1


def canonical_labels(labels, ids):
    """Renumbers labels: largest cluster 0, ties by smallest member id (ids: str ``(S,)``)."""
    labels = np.asarray(labels)
    ids = np.asarray(ids, str)
    keys = []
    for label in np.unique(labels):
        members = labels == label
        keys.append((-int(members.sum()), min(ids[members].tolist()), label))
    order = {old: new for new, (_, _, old) in enumerate(sorted(keys))}
    return np.array([order[label] for label in labels], np.int64)


def cluster_maps(maps, ids, max_clusters, neighbors, seed):
    """Clusters one class's sample of small maps.

    Args:
        maps: float32 ``(S, m, m)`` small maps (``small_maps.small_maps``).
        ids: ``(S,)`` example ids (str), for the canonical label order.
        max_clusters: the largest k the eigengap may choose.
        neighbors: k of the k-NN affinity graph.
        seed: k-means random_state.

    Returns:
        Clustering.
    """
    from sklearn.cluster import KMeans

    features = np.asarray(maps, np.float64).reshape(len(maps), -1)
    count = len(features)
    if count < 3:
        # no spectrum is computed for one or two maps: no eigenvalues, rather than made-up zeros
        return Clustering(np.zeros(count, np.int64), np.zeros(0), 1,
                          np.zeros((count, 2), np.float32))
    values, vectors = laplacian_spectrum(affinity_graph(features, neighbors),
                                         max(max_clusters, 2) + 1)
    k = eigengap_k(values, max_clusters)
    embedding = vectors[:, 1:3] if vectors.shape[1] >= 3 else np.zeros((count, 2))
    if k == 1:
        labels = np.zeros(count, np.int64)
    else:
        spectral = vectors[:, :k]
        norms = np.linalg.norm(spectral, axis=1, keepdims=True)
        spectral = spectral / np.where(norms > 0, norms, 1.0)  # Ng, Jordan & Weiss (2001)
        labels = KMeans(k, n_init=10, random_state=seed).fit_predict(spectral)
    return Clustering(canonical_labels(labels, ids), values, k,
                      np.asarray(embedding, np.float32))
