"""Input images of the examples the report will show, gathered with bounded memory.

The report ranks examples by border share (highest) and by top-5% share (lowest, all-zero
maps excluded). Each batch nominates its own best candidates, and ``Top.PerKey`` keeps the
best ``2 * n`` per ranking, a margin so ties cannot leave a shown example without its image.
"""

import apache_beam as beam
import numpy as np

from gbp_ops import statistics
from pipeline import schema

BY_BORDER = "border_share"
BY_DIFFUSE = "low_top5_share"


def _column(batch, name):
    return batch.statistics[:, list(schema.STATISTIC_COLUMNS).index(name)]


def nominate(batch, count):
    """AuditBatch -> ``(ranking, (score, example_id, display))`` for its best ``count`` rows;
    higher score is better in both rankings."""
    alive = _column(batch, statistics.TOTAL_MASS) > 0
    rankings = {BY_BORDER: _column(batch, statistics.BORDER_SHARE),
                BY_DIFFUSE: -_column(batch, statistics.TOP5_SHARE)}
    ids = batch.columns[schema.EXAMPLE_ID]
    for ranking, scores in rankings.items():
        usable = np.flatnonzero(alive & ~np.isnan(scores))
        for index in usable[np.argsort(-scores[usable], kind="stable")][:count]:
            yield ranking, (float(scores[index]), str(ids[index]), batch.displays[index])


class CollectReportImages(beam.PTransform):
    """PCollection[AuditBatch] -> PCollection[(example_id, uint8 (H, W, 3) image)]; an id can
    appear twice (once per ranking), with the same image."""

    def __init__(self, top_n):
        super().__init__()
        self._count = 2 * top_n

    def expand(self, batches):
        count = self._count
        return (
            batches
            | "Nominate" >> beam.FlatMap(nominate, count)
            | "BestPerRanking" >> beam.combiners.Top.PerKey(count, key=lambda item: item[0])
            | "ToImages" >> beam.FlatMap(
                lambda ranked: [(example_id, image) for _, example_id, image in ranked[1]])
        )
