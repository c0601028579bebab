"""The report's flag rules, on the stats table (``pipeline.outputs.loader.load_stats``).

- **Border**: a class whose mean border share is at least ``BORDER_RATIO`` times the mean of
  the *rest of the dataset* (every other class), and above it by more than ``SIGNIFICANCE_Z``
  standard errors of the difference. The rest, not the overall mean, because with few classes
  the class itself dominates the overall mean (with two classes, a class at twice the other
  is only 1.33 times the overall mean).
- **Box**: when the run has ``box_share`` and the boxes' mean area share is known
  (``box_area_share``), a class whose mean box share exceeds that area share by more than
  ``SIGNIFICANCE_Z`` standard errors (at least two boxed examples): more attention inside the
  boxes than a uniform map would put there.
"""

import dataclasses

import numpy as np

from gbp_ops import statistics
from pipeline.findings.merge import row_label
from pipeline.tables import saliency as saliency_table
from pipeline.tables import stats as stats_table

BORDER_RATIO = 1.5
SIGNIFICANCE_Z = 2.0


@dataclasses.dataclass(frozen=True)
class Flag:
    """One suspicious class: ``kind`` is ``'border'`` or ``'box'``; ``message`` is plain text."""

    kind: str
    class_index: int
    class_name: str
    message: str


def class_rows(stats):
    """The ``group == 'class'`` rows, sorted by class index."""
    rows = stats[stats[stats_table.GROUP] == stats_table.GROUP_CLASS]
    return rows.sort_values(stats_table.CLASS).reset_index(drop=True)


def overall_row(stats):
    rows = stats[stats[stats_table.GROUP] == stats_table.GROUP_OVERALL]
    return rows.iloc[0] if len(rows) else None


def _rest_moments(overall, row, stat):
    """Mean, std and count of ``stat`` over every example outside ``row``'s class.

    Rebuilt from the overall and class means/stds (ddof=1); counts are example counts.
    """
    total, count = int(overall[stats_table.COUNT]), int(row[stats_table.COUNT])
    rest = total - count
    if rest < 2:
        return np.nan, np.nan, rest

    def sum_squares(mean, std, n):
        return (n - 1) * (0.0 if np.isnan(std) else std) ** 2 + n * mean**2

    mean_all, mean_class = overall[f"{stat}_mean"], row[f"{stat}_mean"]
    rest_mean = (total * mean_all - count * mean_class) / rest
    squares = (sum_squares(mean_all, overall[f"{stat}_std"], total)
               - sum_squares(mean_class, row[f"{stat}_std"], count))
    rest_var = max(squares - rest * rest_mean**2, 0.0) / (rest - 1)
    return rest_mean, float(np.sqrt(rest_var)), rest


def border_flags(stats):
    """Classes whose mean border share is far above the rest of the dataset's.

    Args:
        stats: the stats DataFrame (``load_stats``).

    Returns:
        list of ``Flag`` (kind ``'border'``), by class index.
    """
    overall = overall_row(stats)
    if overall is None:
        return []
    stat = statistics.BORDER_SHARE
    flags = []
    for _, row in class_rows(stats).iterrows():
        mean, std, count = row[f"{stat}_mean"], row[f"{stat}_std"], int(row[stats_table.COUNT])
        rest_mean, rest_std, rest = _rest_moments(overall, row, stat)
        if np.isnan(rest_mean) or np.isnan(mean) or count < 2:
            continue
        error = np.sqrt((0.0 if np.isnan(std) else std) ** 2 / count + rest_std**2 / rest)
        if mean >= BORDER_RATIO * rest_mean and mean - rest_mean > SIGNIFICANCE_Z * error:
            ratio = mean / rest_mean if rest_mean > 0 else np.inf
            flags.append(Flag("border", int(row[stats_table.CLASS]), row_label(row), (
                f"{row_label(row)}: mean border share {mean:.3f}, {ratio:.1f}x the rest of "
                f"the dataset ({rest_mean:.3f}, {rest} examples). The model may look at the "
                "image border (frames, padding, watermarks) for this class."
            )))
    return flags


def box_flags(stats, frame, box_area_share):
    """Classes whose mean box share exceeds the boxes' area share.

    Args:
        stats: the stats DataFrame.
        frame: the saliency DataFrame (``target`` and ``box_share``), for the boxed counts.
        box_area_share: the boxes' mean share of the image area, or None (no flags).

    Returns:
        list of ``Flag`` (kind ``'box'``), by class index.
    """
    stat = statistics.BOX_SHARE
    if box_area_share is None or f"{stat}_mean" not in stats or stat not in frame:
        return []
    boxed = frame[frame[stat].notna()].groupby(saliency_table.TARGET).size()
    flags = []
    for _, row in class_rows(stats).iterrows():
        mean, std = row[f"{stat}_mean"], row[f"{stat}_std"]
        count = int(boxed.get(int(row[stats_table.CLASS]), 0))
        if np.isnan(mean) or count < 2 or np.isnan(std):
            continue
        if mean - box_area_share > SIGNIFICANCE_Z * std / np.sqrt(count):
            flags.append(Flag("box", int(row[stats_table.CLASS]), row_label(row), (
                f"{row_label(row)}: {100 * mean:.1f}% of the saliency mass lies inside the "
                f"boxes, which cover {100 * box_area_share:.1f}% of the image "
                f"({mean / box_area_share:.1f}x; {count} boxed examples). If the boxes mark a "
                "suspected shortcut, the model relies on it."
            )))
    return flags
