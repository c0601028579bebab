"""The proof of a baseline finding on the current model (Beam): its region covered on up to
``findings.occlusion_samples`` of its members (shared ids, smallest id hash first, as the
findings stage picks them), and a control region covered on the same images, with the
findings stage's own occlusion (``pipeline.findings.analysis.flip_rate``).

The members' images come from the current run's source, read again: only the records whose
id is wanted are decoded. A flip is a change of the current model's prediction against its
prediction on the uncovered image.
"""

import apache_beam as beam
import numpy as np


class OccludeFindingDoFn(beam.DoFn):
    """``(finding index, [(id hash, id, image)])`` -> ``(finding index, {flip_rate,
    control_flip_rate, occluded_examples})`` with the current model (``config``'s explainer).

    Args:
        config: the current run's RunConfig.
        findings: ``{index: (region, control region)}``.
        count: images occluded at most per finding.
        fill: ``findings.occlusion_fill``.
    """

    def __init__(self, config, findings, count, fill):
        self._config, self._findings = config, findings
        self._count, self._fill = count, fill

    def process(self, grouped):
        from pipeline import explainers
        from pipeline.findings.analysis import flip_rate

        index, members = grouped
        members = sorted(members, key=lambda item: (item[0], item[1]))[:self._count]
        if not members:
            return
        images = np.stack([image for _, _, image in members]).astype(np.float32)
        predict = explainers.shared_explainer(self._config).predict
        original = predict(images)
        region, control = self._findings[index]
        yield index, {"flip_rate": flip_rate(predict, images, original, region, self._fill),
                      "control_flip_rate": flip_rate(predict, images, original, control,
                                                     self._fill),
                      "occluded_examples": len(members)}


def _to_findings(cluster_members, cluster_findings):
    """``((class, cluster), [(hash, id)])`` -> ``(finding index, (hash, id))`` per finding
    that holds the cluster."""
    key, members = cluster_members
    for index in cluster_findings.get(tuple(key), ()):
        for member in members:
            yield index, member


class ReOcclude(beam.PTransform):
    """Baseline findings re-tested on the current model.

    Input: ``((class, cluster), (id hash, example_id))`` of shared members of the baseline's
    flagged clusters. Output: ``(finding index, figures)`` (see ``OccludeFindingDoFn``).

    Args:
        config: the current run's RunConfig (source, preprocessing, model).
        input_shape: the current model's input ``(H, W, C)``.
        findings: list of ``matching.Finding`` of the baseline (index = position).
        count, fill: the baseline's ``findings.occlusion_samples`` and ``occlusion_fill``.
    """

    def __init__(self, config, input_shape, findings, count, fill):
        super().__init__()
        self._config, self._input_shape = config, tuple(input_shape)
        self._findings, self._count, self._fill = findings, count, fill

    def expand(self, members):
        from pipeline.stages.preprocess import PrepareWantedDoFn
        from pipeline.stages.read import ReadSource

        cluster_findings = {}
        for index, found in enumerate(self._findings):
            for cluster in found.clusters:
                cluster_findings.setdefault((found.class_index, cluster), []).append(index)
        chosen = (members
                  | "SmallestPerCluster" >> beam.combiners.Top.SmallestPerKey(self._count)
                  | "ToFindings" >> beam.FlatMap(_to_findings, cluster_findings)
                  | "SmallestPerFinding" >> beam.combiners.Top.SmallestPerKey(self._count))
        wanted = chosen | "WantedIds" >> beam.FlatMap(
            lambda item: [(example_id, (item[0], key)) for key, example_id in item[1]])
        records = members.pipeline | "ReadCurrentSource" >> ReadSource(self._config.source)
        regions = {index: (found.region, found.control_region)
                   for index, found in enumerate(self._findings)}
        return (records["records"]
                | "PrepareMembers" >> beam.ParDo(PrepareWantedDoFn(self._config,
                                                                   self._input_shape),
                                                 wanted=beam.pvalue.AsMultiMap(wanted))
                | "GroupMembers" >> beam.GroupByKey()
                | "Occlude" >> beam.ParDo(OccludeFindingDoFn(self._config, regions,
                                                             self._count, self._fill)))
