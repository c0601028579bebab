"""The findings stage: explained batches -> ``clusters``, ``assignments`` and ``embedding``
rows, plus a manifest summary per class.

Memory: per class, ``sampling.ClassSampleFn`` keeps ``findings.sample_per_class`` small maps
(``m*m*4`` bytes each) and ``findings.image_sample_per_class`` display images (uint8,
``H*W*3`` bytes each), the smallest by example-id hash; the clustering and the occlusion
test run fused with that combine's merge, and the assignment pass reads the clustered samples
as a side input.
Nothing held depends on the number of examples, except that a runner without a shuffle service
(FnApiRunner) buffers the small maps that wait for that side input (``m*m*4`` bytes each) and
the rows the taps emit before the combine, which grow like ``b * (1 + ln(n / b))`` per tap
for a bound ``b`` and ``n`` examples of a class (see ``sampling``)."""

import apache_beam as beam
import numpy as np

from pipeline.findings import analysis, merge, rules, sampling
from pipeline.records import class_label, class_name
from pipeline.tables import assignments as assignments_table
from pipeline.tables import clusters as clusters_table
from pipeline.tables import embedding as embedding_table
from pipeline.tables.saliency import TARGET

TOTALS = "totals"


class AnalyseClassDoFn(beam.DoFn):
    """``(class, (sampled, imaged))`` from ``sampling.ClassSampleFn`` -> ClassFindings
    (occlusion predicts with the run's configured explainer's forward pass, so ``predicted``
    means what it means in the saliency table)."""

    def __init__(self, config):
        self._config = config

    def process(self, grouped):
        from pipeline import explainers
        from pipeline.images import model_input_from_display

        class_index, (sampled, imaged) = grouped
        if not sampled:
            return
        explainer = explainers.shared_explainer(self._config)
        channels, scaling = explainer.input_shape[-1], self._config.preprocess.scaling
        yield analysis.analyse_class(
            class_index, sampled, imaged, explainer.predict, self._config.findings,
            to_input=lambda displays: model_input_from_display(displays, channels, scaling))


class AssignDoFn(beam.DoFn):
    """Assignment batches -> ``assignments`` ``pa.Table``s, plus ``totals``:
    ``((class, cluster), (count, correct, labelled))`` per batch. Sampled examples keep their
    clustering label; the others get the vote of their nearest sampled maps."""

    def __init__(self, neighbors):
        self._neighbors = neighbors

    def start_bundle(self):
        self._voters = {}

    def _voter(self, found):
        if found.class_index not in self._voters:
            self._voters[found.class_index] = (
                found.assigner(self._neighbors),
                dict(zip(found.sample_ids.tolist(), found.clustering.labels.tolist())))
        return self._voters[found.class_index]

    def process(self, batch, findings):
        ids, targets, correct, maps = batch
        clusters = np.full(len(ids), -1, np.int64)
        for target in np.unique(targets):
            rows = np.flatnonzero(targets == target)
            if int(target) not in findings:
                continue
            vote, sampled = self._voter(findings[int(target)])
            clusters[rows] = vote.assign(maps[rows])
            for row in rows:
                clusters[row] = sampled.get(ids[row], clusters[row])
        yield assignments_table.encode(ids, targets, clusters)
        totals = {}
        for target, cluster, right in zip(targets, clusters, correct):
            count, hits, labelled = totals.get((int(target), int(cluster)), (0, 0, 0))
            totals[(int(target), int(cluster))] = (count + 1, hits + bool(right),
                                                   labelled + (right is not None))
        for key, value in totals.items():
            yield beam.pvalue.TaggedOutput(TOTALS, (key, value))


def _sum_totals(values):
    values = list(values)
    return tuple(int(sum(parts)) for parts in zip(*values)) if values else (0, 0, 0)


def cluster_rows(found, totals, class_names, settings):
    """ClassFindings -> ``clusters`` row dicts (flags need the class's assigned counts)."""
    index = found.class_index
    name = class_name(index, class_names)
    counts = [totals.get((index, cluster), (0, 0, 0)) for cluster in range(found.clustering.k)]
    class_count = sum(count for count, _, _ in counts)
    for cluster, ((count, hits, labelled), cluster_found) in enumerate(
            zip(counts, found.clusters)):
        figures = (count, class_count, cluster_found["region"], cluster_found["flip_rate"],
                   np.nan_to_num(cluster_found["control_flip_rate"]),
                   cluster_found["occluded_examples"])
        flagged = rules.is_flagged(settings, *figures)
        yield clusters_table.encode_row(
            index, name, cluster, count, count / class_count if class_count else None,
            hits / labelled if labelled else None, cluster_found, flagged,
            rules.reason(class_label(index, name), *figures, flagged, settings=settings))


def summary(found):
    """ClassFindings -> the manifest's JSON-ready entry for the class."""
    return {TARGET: int(found.class_index), "sample_size": len(found.sample_ids),
            "clusters": int(found.clustering.k),
            "eigenvalues": [round(float(v), 6) for v in found.clustering.eigenvalues],
            "assignment_agreement": round(float(found.agreement), 6)}


class FindStrategyClusters(beam.PTransform):
    """PCollection[ExplainedBatch] -> dict of PCollections: ``clusters`` and ``embedding``
    (row dicts), ``assignments`` (``pa.Table``s), ``summary`` (manifest dicts per class) and
    ``flagged`` (the manifest's findings, ``merge.flagged_findings``)."""

    def __init__(self, config, class_names):
        super().__init__()
        self._config = config
        self._class_names = tuple(class_names)

    def expand(self, explained):
        config, settings = self._config, self._config.findings
        tapped = explained | "Tap" >> beam.ParDo(sampling.FindingsTapDoFn(config)).with_outputs(
            sampling.SAMPLE, main="batches")
        found = (tapped[sampling.SAMPLE]
                 | "SampleClasses" >> beam.CombinePerKey(sampling.ClassSampleFn(
                     settings.sample_per_class, settings.image_sample_per_class))
                 | "ClusterAndOcclude" >> beam.ParDo(AnalyseClassDoFn(config)))
        by_class = found | "ByClass" >> beam.Map(lambda f: (f.class_index, f))
        assigned = (
            tapped.batches
            | "Assign" >> beam.ParDo(AssignDoFn(settings.neighbors),
                                     findings=beam.pvalue.AsDict(by_class))
            .with_outputs(TOTALS, main="tables"))
        totals = assigned[TOTALS] | "SumTotals" >> beam.CombinePerKey(_sum_totals)
        rows = found | "ClusterRows" >> beam.FlatMap(
            cluster_rows, beam.pvalue.AsDict(totals), self._class_names, settings)
        flagged = (rows | "AllClusterRows" >> beam.combiners.ToList()
                   | "MergeFindings" >> beam.FlatMap(merge.flagged_findings, settings))
        return {"clusters": rows, "assignments": assigned.tables,
                "embedding": found | "EmbeddingRows" >> beam.FlatMap(embedding_table.encode_rows),
                "summary": found | "Summary" >> beam.Map(summary), "flagged": flagged}
