"""One class's findings from its bounded sample: clusters, their mean maps and regions, the
occlusion test of each, and the vote that assigns every other example (numpy + sklearn)."""

import dataclasses

import numpy as np

from pipeline.findings import assignment, clustering, regions


@dataclasses.dataclass
class ClassFindings:
    """What the sample of one explained class shows.

    Attributes:
        class_index: the explained (target) class.
        sample_ids: str ``(S,)`` sampled example ids, sorted.
        sample_maps: float32 ``(S, m, m)`` their small maps.
        clustering: ``clustering.Clustering`` of the sample.
        agreement: leave-one-out agreement of the assignment vote with the clustering.
        clusters: per cluster (index = cluster) dicts: ``mean_map`` float32 ``(m, m)``,
            ``region`` and ``control_region`` float ``(4,)``, ``flip_rate``,
            ``control_flip_rate`` (NaN when nothing was occluded), ``occluded_examples``.
    """

    class_index: int
    sample_ids: np.ndarray
    sample_maps: np.ndarray
    clustering: clustering.Clustering
    agreement: float
    clusters: list

    def assigner(self, neighbors):
        """The ``NearestSampleVote`` of this class's sample."""
        return assignment.NearestSampleVote(self.sample_maps, self.clustering.labels, neighbors)


def flip_rate(predict, images, original, region, fill):
    """Share of ``images`` whose predicted class changes when ``region`` is covered."""
    if not len(images):
        return float("nan")
    changed = predict(regions.occlude(images, region, fill)) != np.asarray(original)
    return float(np.mean(changed))


def analyse_class(class_index, sampled, imaged, predict, settings, to_input=None):
    """Clusters one class's sample and tests each cluster's region by occlusion.

    Args:
        class_index: the explained class.
        sampled: ``[(sample key, example_id, small map (m, m) float32, predicted int)]``.
        imaged: ``[(sample key, example_id, image)]``, the (smaller) sample whose images are
            kept; members are occluded in key order.
        predict: ``images float32 (N, H, W, C) -> int (N,)`` predicted classes.
        settings: the FindingsConfig.
        to_input: ``images (n, ...) -> float32 (n, H, W, C)`` model inputs, applied to one
            cluster's images at a time (e.g. from uint8 display images); None: the images are
            the model inputs already.

    Returns:
        ClassFindings.
    """
    sampled = sorted(sampled, key=lambda item: item[1])
    ids = np.array([item[1] for item in sampled], str)
    maps = np.stack([item[2] for item in sampled]).astype(np.float32)
    predicted = {item[1]: int(item[3]) for item in sampled}
    result = clustering.cluster_maps(maps, ids, settings.max_clusters, settings.neighbors,
                                     settings.seed)
    vote = assignment.NearestSampleVote(maps, result.labels, settings.neighbors)
    label_of = dict(zip(ids, result.labels))
    imaged = sorted((item for item in imaged if item[1] in label_of),
                    key=lambda item: (item[0], item[1]))
    clusters = []
    for cluster in range(result.k):
        mean_map = maps[result.labels == cluster].mean(axis=0)
        region = regions.hot_region(mean_map)
        control = regions.control_region(mean_map, region)
        members = [item for item in imaged if label_of[item[1]] == cluster]
        members = members[:settings.occlusion_samples]
        images = np.stack([item[2] for item in members]) if members else np.zeros((0,))
        if members and to_input is not None:
            images = to_input(images)
        original = np.array([predicted[item[1]] for item in members], np.int64)
        clusters.append({
            "mean_map": mean_map, "region": region, "control_region": control,
            "flip_rate": flip_rate(predict, images, original, region, settings.occlusion_fill),
            "control_flip_rate": flip_rate(predict, images, original, control,
                                           settings.occlusion_fill),
            "occluded_examples": len(members),
        })
    return ClassFindings(class_index, ids, maps, result, vote.leave_one_out_agreement(),
                         clusters)
