"""The rankings of suspicious examples that the report shows, defined once for the pipeline
(which keeps the images of the best examples) and the report (which titles them).

A ranking gives each example a score, higher is more suspicious; examples with a NaN score or
an all-zero map (``total_mass == 0``: dead rather than diffuse) are not ranked, and ties break
by example id.
"""

import numpy as np

from gbp_ops.statistics import BORDER_SHARE, TOP5_SHARE, TOTAL_MASS

BY_BORDER = "border_share"
BY_DIFFUSE = "low_top5_share"
RANKING_TITLES = {
    BY_BORDER: "Highest border share (attention on the image border)",
    BY_DIFFUSE: "Lowest concentration (lowest top-5% share: diffuse attention)",
}


def ranking_scores(statistic):
    """Scores of every ranking.

    Args:
        statistic: ``name -> float64 (N,)`` values of a statistic (``total_mass``,
            ``border_share`` and ``top5_share`` are read).

    Returns:
        dict ranking -> float64 ``(N,)`` scores, NaN where an example is not ranked.
    """
    alive = np.asarray(statistic(TOTAL_MASS), np.float64) > 0
    scores = {BY_BORDER: np.asarray(statistic(BORDER_SHARE), np.float64),
              BY_DIFFUSE: -np.asarray(statistic(TOP5_SHARE), np.float64)}
    return {ranking: np.where(alive, values, np.nan) for ranking, values in scores.items()}


def best(scores, ids, count):
    """Indices of the ``count`` best ranked examples, best first, ties by id.

    Args:
        scores: float64 ``(N,)`` from ``ranking_scores``.
        ids: ``(N,)`` example ids (str).
        count: how many to keep.

    Returns:
        int ``(k,)`` indices, ``k <= count``.
    """
    ranked = np.flatnonzero(~np.isnan(scores))
    order = np.lexsort((np.asarray(ids, str)[ranked], -scores[ranked]))
    return ranked[order][:count]
