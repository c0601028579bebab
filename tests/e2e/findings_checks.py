"""What the findings tests (tests/e2e/test_findings.py) measure on a trained model's runs, in
one place, so that scripts/check_findings_margins.py measures the same quantities over training
seeds and kernels.

Figures come from the run's tables, read with pandas, against the synthetic data's ground truth
(`findings_data.synthesize`'s ``has_mark``).
"""

import math

import numpy as np
import pandas as pd

from tests.e2e import findings_data

COUNT = 400
STRIPES = 1
MIRRORED_MARK = tuple(findings_data.SIZE - v  # the mark's box turned by 180 degrees
                      for v in findings_data.MARK[2:] + findings_data.MARK[:2])
PLANTED_SEED, CLEAN_SEED = 1, 2  # data seeds of the planted and the clean datasets
PLANTED_MODEL_SEED, CLEAN_MODEL_SEED = 0, 1  # the suite's training seeds


def marked(arrays, frame):
    """Bool Series: whether each row's example carries the mark."""
    return frame.example_id.map(dict(zip(arrays["ids"], arrays["has_mark"]))).astype(bool)


def planted_group(arrays, output, mark=findings_data.MARK):
    """The flagged clusters of one run against the marked images (``mark``: the mark's pixel
    ``(y0, x0, y1, x1)``). Spectral clustering may split the planted group into several
    clusters, all flagged at the mark (the report makes them one finding), so the figures are
    over the flagged clusters together:

    - ``flagged_stripes_clusters`` / ``flagged_dots_clusters``: counts;
    - ``precision`` / ``recall``: the members of the flagged clusters vs the marked images;
    - ``least_flip_rate`` / ``most_control_flip_rate`` / ``least_occluded_examples`` over the
      flagged clusters;
    - ``region_overhang``: the least distance (normalised) by which a flagged cluster's region
      reaches past the mark on any side (negative: a region misses part of the mark);
    - ``reasons_name_the_class``: 1 when every flagged cluster's reason starts "stripes: ".
    """
    import pipeline

    clusters = pd.read_parquet(f"{output}/clusters")
    flagged = clusters[clusters.flagged]
    stripes = flagged[flagged.target == STRIPES]
    values = {"flagged_stripes_clusters": float(len(stripes)),
              "flagged_dots_clusters": float(len(flagged) - len(stripes)),
              "precision": math.nan, "recall": math.nan, "least_flip_rate": math.nan,
              "most_control_flip_rate": math.nan, "least_occluded_examples": math.nan,
              "region_overhang": math.nan, "reasons_name_the_class": 0.0}
    if not len(stripes):
        return values
    frame = pipeline.load_saliency(str(output), maps=False)
    frame = frame[frame.target == STRIPES]
    is_marked = marked(arrays, frame)
    found = frame.cluster.isin(set(stripes.cluster))
    hits = float((found & is_marked).sum())
    regions = np.stack(stripes.region.to_numpy()).astype(np.float64)
    box = np.array(mark, np.float64) / findings_data.SIZE
    overhang = np.concatenate([box[:2] - regions[:, :2], regions[:, 2:] - box[2:]], axis=1)
    values.update({
        "precision": hits / found.sum(), "recall": hits / is_marked.sum(),
        "least_flip_rate": float(stripes.flip_rate.min()),
        "most_control_flip_rate": float(stripes.control_flip_rate.max()),
        "least_occluded_examples": float(stripes.occluded_examples.min()),
        "region_overhang": float(overhang.min()),
        "reasons_name_the_class": float(stripes.reason.str.startswith("stripes: ").all()),
    })
    return values


def report_opening(output):
    """What the report of a run opens with (writes ``output/report.html``):

    - ``opens_with_the_finding``: 1 when the Findings section comes before the Counts and its
      first flag says "stripes: N of M examples (P%) rely on a small region at the lower
      right", N the flagged stripes clusters' members, M the class's examples, else 0;
    - ``least_pictures`` / ``most_pictures``: the fewest and the most member maps shown for a
      flagged cluster (the report shows up to 8);
    - ``embedding_pictures``: the 2-D spectral embedding figures.
    """
    from pipeline.report import write_report
    from tests.e2e import helpers

    text, pictures = helpers.check_report_page(write_report(str(output)))
    clusters = pd.read_parquet(f"{output}/clusters")
    stripes = clusters[clusters.target == STRIPES]
    flagged = stripes[stripes.flagged]
    count, total = int(flagged.example_count.sum()), int(stripes.example_count.sum())
    opening = (f'<div class="flag">stripes: {count:,} of {total:,} examples ({count / total:.0%})'
               " rely on a small region at the lower right")
    findings, counts = text.find("<h2>Findings</h2>"), text.find("<h2>Counts</h2>")
    first_flag = text.find('<div class="flag">')
    alts = [alt for alt, _ in pictures]
    shown = [sum(alt.startswith(f"stripes, cluster {cluster}: planted-") for alt in alts)
             for cluster in flagged.cluster]
    return {
        "opens_with_the_finding": float(0 <= findings < first_flag < counts
                                        and text.startswith(opening, first_flag)),
        "least_pictures": float(min(shown)) if shown else math.nan,
        "most_pictures": float(max(shown)) if shown else math.nan,
        "embedding_pictures": float(sum(alt.startswith("2-D spectral embedding")
                                        for alt in alts)),
    }


def same_tables(first, second):
    """1 when two runs wrote equal assignments, clusters and embedding tables, else 0."""
    for table in ("assignments", "clusters", "embedding"):
        keys = ["example_id"] if table != "clusters" else ["target", "cluster"]
        one, two = (pd.read_parquet(f"{output}/{table}").sort_values(keys).reset_index(drop=True)
                    for output in (first, second))
        try:
            pd.testing.assert_frame_equal(one, two)
        except AssertionError:
            return 0.0
    return 1.0


def clean_model(output):
    """A clean model's run: ``clusters`` (count), ``flagged_clusters``, and how far the cluster
    nearest to a flag stays from the flag rule's figures (informative): ``flag_rule_gap``, the
    least over clusters of the largest of ``0.5 - flip_rate``, ``3 x control_flip_rate -
    flip_rate`` and ``region share - 0.25`` (the default rule; > 0: not flagged on these)."""
    clusters = pd.read_parquet(f"{output}/clusters")
    regions = np.stack(clusters.region.to_numpy()).astype(np.float64)
    shares = (regions[:, 2] - regions[:, 0]) * (regions[:, 3] - regions[:, 1])
    flips, controls = clusters.flip_rate.to_numpy(float), clusters.control_flip_rate.to_numpy(
        float)
    gaps = np.nanmax(np.stack([0.5 - flips, 3 * controls - flips, shares - 0.25]), axis=0)
    return {"clusters": float(len(clusters)), "flagged_clusters": float(clusters.flagged.sum()),
            "flag_rule_gap": float(np.nanmin(gaps)) if len(gaps) else math.nan}
