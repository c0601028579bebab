"""The ``examples`` table: input images of the best examples of each ranking
(``pipeline.rankings``), gathered with bounded memory.

Each batch nominates its own best ``2 * n`` candidates per ranking, ``Top.PerKey`` keeps the
best ``2 * n`` overall (a margin, so score ties cannot push out an example that wins on id),
and the final ``n`` are chosen with the ranking's own tie-break.
"""

import apache_beam as beam

from pipeline import rankings
from pipeline.tables import examples, saliency


def nominate(batch, count):
    """AuditBatch -> ``(ranking, (score, example_id, display))`` for its best ``count`` rows."""
    ids = batch.columns[saliency.EXAMPLE_ID]
    for ranking, scores in rankings.ranking_scores(batch.statistic).items():
        for index in rankings.best(scores, ids, count):
            yield ranking, (float(scores[index]), str(ids[index]), batch.displays[index])


def shown_rows(ranking, candidates, count):
    """The ``count`` best candidates of one ranking as ``examples`` table rows, best first."""
    ordered = sorted(candidates, key=lambda item: (-item[0], item[1]))[:count]
    return [examples.encode_row(ranking, rank, score, example_id, image)
            for rank, (score, example_id, image) in enumerate(ordered)]


class CollectReportExamples(beam.PTransform):
    """PCollection[AuditBatch] -> PCollection[``examples`` row dict]."""

    def __init__(self, top_n):
        super().__init__()
        self._top_n = top_n

    def expand(self, batches):
        top_n, margin = self._top_n, 2 * self._top_n
        return (
            batches
            | "Nominate" >> beam.FlatMap(nominate, margin)
            | "BestPerRanking" >> beam.combiners.Top.PerKey(margin, key=lambda item: item[0])
            | "ToRows" >> beam.FlatMap(lambda ranked: shown_rows(*ranked, top_n))
        )
