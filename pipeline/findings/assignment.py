"""Assigning any example to one of its class's clusters: a majority vote of its k nearest
sample maps (Euclidean on the small maps; ties go to the nearest neighbour's cluster).

Its memory is the sample's (``S x m x m`` floats), never the dataset's.
"""

import numpy as np


class NearestSampleVote:
    """k-NN vote among one class's clustered sample.

    Args:
        sample_maps: float32 ``(S, m, m)``.
        sample_labels: int ``(S,)`` clusters of the sample.
        neighbors: how many sample neighbours vote.
    """

    def __init__(self, sample_maps, sample_labels, neighbors):
        from sklearn.neighbors import NearestNeighbors

        self._features = np.asarray(sample_maps, np.float32).reshape(len(sample_maps), -1)
        self._labels = np.asarray(sample_labels, np.int64)
        self._neighbors = max(1, min(neighbors, len(self._features)))
        self._index = NearestNeighbors(n_neighbors=self._neighbors).fit(self._features)

    def _vote(self, neighbor_indices):
        votes = self._labels[neighbor_indices]  # (N, k), nearest first
        clusters = np.arange(self._labels.max() + 1)
        counts = (votes[:, :, None] == clusters).sum(axis=1)
        best = counts.max(axis=1, keepdims=True)
        # among the tied clusters, the one whose member is nearest wins
        tied = counts[np.arange(len(votes))[:, None], votes] == best
        return votes[np.arange(len(votes)), tied.argmax(axis=1)]

    def assign(self, maps):
        """float ``(N, m, m)`` -> int64 ``(N,)`` clusters."""
        features = np.asarray(maps, np.float32).reshape(len(maps), -1)
        if not len(features):
            return np.zeros(0, np.int64)
        _, indices = self._index.kneighbors(features)
        return self._vote(indices)

    def leave_one_out_agreement(self):
        """Share of sample members whose vote among the *other* members gives their own
        cluster: how well the rule reproduces the clustering (1.0 for a one-member sample)."""
        count = len(self._features)
        if count < 2:
            return 1.0
        neighbors = min(self._neighbors + 1, count)
        _, indices = self._index.kneighbors(self._features, n_neighbors=neighbors)
        others = np.array([row[row != i][:neighbors - 1] for i, row in enumerate(indices)])
        return float((self._vote(others) == self._labels).mean())
