"""Per-class comparison maths (numpy + scipy): mergeable accumulators of one class's
examples in both runs, and from them the class's shifts, intervals and tests.

Counts, accuracies, flip rates and the shifts (differences of means) with their intervals are
exact: they come from sums. The rank tests and the medians use a bounded sample of the class:
the ``compare.sample_per_class`` examples with the smallest id hash, so memory does not grow
with the data; a class no larger than the sample is tested exactly.

Tests: with at least ``MIN_PAIRS`` pairs (shared examples explained as this class in both
runs), paired: the shift is the mean of the per-example changes, its interval the paired t
interval, the p value Wilcoxon's signed-rank test; otherwise unpaired: the shift is the
difference of the runs' means, its interval Welch's, the p value the Mann-Whitney U test.
"""

import dataclasses

import numpy as np

from gbp_ops.statistics import AGGREGATED_STATISTICS, TOTAL_MASS
from pipeline.tables import comparison_classes as table
from pipeline.tables.clusters import ACCURACY
from pipeline.tables.comparison_examples import SIDES, side_column
from pipeline.tables.stats import COUNT

MIN_PAIRS = 10
# Statistics whose shift can be drift: every one but total_mass, the gradients' scale, which
# any retraining changes without the model looking elsewhere.
DRIFT_STATISTICS = tuple(name for name in AGGREGATED_STATISTICS if name != TOTAL_MASS)
CONFIDENCE = 0.95
STATISTIC_COUNT = len(AGGREGATED_STATISTICS)


def id_hashes(example_ids):
    """uint64 ``(N,)``: the first 16 hex digits of each id's sample key (as the findings
    sample orders examples)."""
    from pipeline.records import sample_key

    return np.array([int(sample_key(str(i))[:16], 16) for i in example_ids], np.uint64)


@dataclasses.dataclass
class Sums:
    """Per-statistic count, sum and sum of squares of the finite values, ``(S,)`` each."""

    count: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(STATISTIC_COUNT))
    total: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(STATISTIC_COUNT))
    squares: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(STATISTIC_COUNT))

    def add(self, values):
        """float ``(N, S)``; NaN values are left out."""
        values = np.asarray(values, np.float64).reshape(-1, STATISTIC_COUNT)
        finite = np.isfinite(values)
        clean = np.where(finite, values, 0.0)
        self.count += finite.sum(axis=0)
        self.total += clean.sum(axis=0)
        self.squares += (clean * clean).sum(axis=0)

    def merge(self, other):
        self.count += other.count
        self.total += other.total
        self.squares += other.squares

    def mean(self):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.total / self.count, np.nan)

    def variance(self):
        """Sample variance (ddof=1); NaN below two values."""
        with np.errstate(invalid="ignore", divide="ignore"):
            centred = self.squares - self.count * self.mean() ** 2
            return np.where(self.count > 1, np.maximum(centred, 0.0) / (self.count - 1), np.nan)


@dataclasses.dataclass
class Sample:
    """The rows with the smallest id hashes: ``keys`` uint64 ``(n,)``, ``values`` float64
    ``(n, width)``."""

    width: int
    keys: np.ndarray = None
    values: np.ndarray = None

    def __post_init__(self):
        if self.keys is None:
            self.keys = np.zeros(0, np.uint64)
            self.values = np.zeros((0, self.width))

    def add(self, keys, values, bound):
        self.keys = np.concatenate([self.keys, np.asarray(keys, np.uint64)])
        self.values = np.concatenate([self.values, np.asarray(values, np.float64).reshape(
            -1, self.width)])
        if len(self.keys) > bound:
            keep = np.argsort(self.keys, kind="stable")[:bound]
            self.keys, self.values = self.keys[keep], self.values[keep]


@dataclasses.dataclass
class ClassAccumulator:
    """One class's comparison so far; ``merge`` combines two (order does not matter up to
    floating-point rounding of the sums).

    Sides: the examples each run explained as this class (``baseline``, ``current``); flips:
    shared examples the baseline explained as this class; pairs: shared examples both runs
    explained as this class (their changes, and their maps' Spearman and top-5% overlap).
    """

    bound: int
    rows: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2, np.int64))
    correct: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2, np.int64))
    labelled: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2, np.int64))
    shared: int = 0
    flips: int = 0
    pairs: int = 0
    sides: list = dataclasses.field(default_factory=lambda: [Sums(), Sums()])
    changes: Sums = dataclasses.field(default_factory=Sums)
    side_samples: list = dataclasses.field(
        default_factory=lambda: [Sample(STATISTIC_COUNT), Sample(STATISTIC_COUNT)])
    pair_sample: Sample = dataclasses.field(
        default_factory=lambda: Sample(STATISTIC_COUNT + 2))

    def add_side(self, side, keys, statistics, correct):
        """One run's examples of this class: ``side`` 0 baseline, 1 current; ``statistics``
        ``(N, S)``; ``correct`` object ``(N,)`` of bool or None."""
        self.rows[side] += len(keys)
        known = [value for value in correct if value is not None and value == value]
        self.correct[side] += int(sum(bool(value) for value in known))
        self.labelled[side] += len(known)
        self.sides[side].add(statistics)
        self.side_samples[side].add(keys, statistics, self.bound)

    def add_flips(self, shared, flips):
        self.shared += int(shared)
        self.flips += int(flips)

    def add_pairs(self, keys, changes, spearman, top5_overlap):
        """Pairs: ``changes`` ``(N, S)`` current minus baseline, similarities ``(N,)``."""
        self.pairs += len(keys)
        self.changes.add(changes)
        self.pair_sample.add(keys, np.column_stack([np.reshape(changes, (-1, STATISTIC_COUNT)),
                                                    spearman, top5_overlap]), self.bound)

    def merge(self, other):
        self.rows += other.rows
        self.correct += other.correct
        self.labelled += other.labelled
        self.add_flips(other.shared, other.flips)
        for mine, theirs in zip(self.sides, other.sides):
            mine.merge(theirs)
        self.pairs += other.pairs
        self.changes.merge(other.changes)
        for mine, theirs in zip(self.side_samples, other.side_samples):
            mine.add(theirs.keys, theirs.values, self.bound)
        self.pair_sample.add(other.pair_sample.keys, other.pair_sample.values, self.bound)
        return self


def paired_shift(changes, sums=None):
    """``(shift, ci_low, ci_high)`` of paired changes: their mean and its t interval.

    Args:
        changes: float ``(n,)`` finite changes (used when ``sums`` is None).
        sums: optional ``(count, total, squares)`` of all the changes (exact, from
            ``Sums``), which then define the figures.
    """
    from scipy import stats

    if sums is None:
        changes = np.asarray(changes, np.float64)
        sums = (len(changes), changes.sum(), (changes * changes).sum())
    count, total, squares = (float(value) for value in sums)
    if count < 2:
        return (total / count if count else np.nan), np.nan, np.nan
    mean = total / count
    variance = max(squares - count * mean * mean, 0.0) / (count - 1)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, count - 1) * np.sqrt(variance / count)
    return mean, mean - half, mean + half


def welch_shift(first, second):
    """``(shift, ci_low, ci_high)`` of ``mean(second) - mean(first)`` with Welch's interval,
    from ``(count, mean, variance)`` of each group."""
    from scipy import stats

    (n1, m1, v1), (n2, m2, v2) = first, second
    shift = m2 - m1
    if n1 < 2 or n2 < 2:
        return shift, np.nan, np.nan
    a, b = v1 / n1, v2 / n2
    error = np.sqrt(a + b)
    if error == 0:
        return shift, shift, shift
    freedom = (a + b) ** 2 / (a * a / (n1 - 1) + b * b / (n2 - 1))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, freedom) * error
    return shift, shift - half, shift + half


def wilcoxon_p(changes):
    """Two-sided Wilcoxon signed-rank p value of paired changes (1.0 when all are zero)."""
    from scipy import stats

    changes = np.asarray(changes, np.float64)
    changes = changes[np.isfinite(changes)]
    if not len(changes) or not np.any(changes != 0):
        return 1.0 if len(changes) else np.nan
    return float(stats.wilcoxon(changes).pvalue)


def mann_whitney_p(first, second):
    """Two-sided Mann-Whitney U p value of two groups' finite values."""
    from scipy import stats

    first, second = (np.asarray(v, np.float64) for v in (first, second))
    first, second = first[np.isfinite(first)], second[np.isfinite(second)]
    if not len(first) or not len(second):
        return np.nan
    if np.all(first == first[0]) and np.all(second == first[0]):
        return 1.0
    return float(stats.mannwhitneyu(first, second, alternative="two-sided").pvalue)


def _rate(part, whole):
    return part / whole if whole else np.nan


def class_figures(accumulator):
    """A finished ``ClassAccumulator`` -> the class's figures: a dict of the
    ``comparison_classes`` columns (keyed by the table module's names), without the class,
    its name, the drift verdict and the mean map difference."""
    acc = accumulator
    pairs = acc.pairs
    row = {side_column(side, COUNT): int(acc.rows[i]) for i, side in enumerate(SIDES)}
    accuracy = [_rate(acc.correct[i], acc.labelled[i]) for i in range(2)]
    row.update({side_column(side, ACCURACY): accuracy[i] for i, side in enumerate(SIDES)})
    samples = acc.pair_sample.values
    row.update({
        table.PAIRS: pairs, table.ACCURACY_CHANGE: accuracy[1] - accuracy[0],
        table.SHARED_EXAMPLES: acc.shared, table.PREDICTION_FLIPS: acc.flips,
        table.PREDICTION_FLIP_RATE: _rate(acc.flips, acc.shared),
        table.MEDIAN_SPEARMAN: _median(samples[:, -2]) if pairs else np.nan,
        table.MEDIAN_TOP5_OVERLAP: _median(samples[:, -1]) if pairs else np.nan,
    })
    paired = pairs >= MIN_PAIRS
    unpaired = not paired and min(acc.rows) >= 2
    row[table.TEST] = (table.TEST_WILCOXON if paired else
                       table.TEST_MANN_WHITNEY if unpaired else None)
    base_sd = np.sqrt(acc.sides[0].variance())
    for index, name in enumerate(AGGREGATED_STATISTICS):
        shift = low = high = p_value = np.nan
        if paired:
            sums = (acc.changes.count[index], acc.changes.total[index],
                    acc.changes.squares[index])
            shift, low, high = paired_shift(None, sums)
            p_value = wilcoxon_p(samples[:, index])
        elif unpaired:
            groups = [(side.count[index], side.mean()[index], side.variance()[index])
                      for side in acc.sides]
            shift, low, high = welch_shift(*groups)
            p_value = mann_whitney_p(*(sample.values[:, index]
                                       for sample in acc.side_samples))
        with np.errstate(invalid="ignore", divide="ignore"):
            effect = shift / base_sd[index] if base_sd[index] > 0 else (
                0.0 if shift == 0 else np.nan)
        for part, value in zip(table.STATISTIC_PARTS, (shift, low, high, p_value, effect)):
            row[table.statistic_column(name, part)] = _finite(value)
    return row


def _median(values):
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else np.nan


def _finite(value):
    return float(value) if value is not None and np.isfinite(value) else None


def drifted(rows, alpha, min_effect):
    """Per class row, the statistics of ``DRIFT_STATISTICS`` that drifted: Bonferroni-corrected
    p (over every test of those with a p value in ``rows``) below ``alpha`` and
    ``|effect| >= min_effect``.

    Args:
        rows: ``class_figures`` dicts.

    Returns:
        list (one per row) of lists of statistic names.
    """
    def column(name, part):
        return table.statistic_column(name, part)

    tests = sum(row.get(column(name, "p_value")) is not None
                for row in rows for name in DRIFT_STATISTICS)
    found = []
    for row in rows:
        found.append([
            name for name in DRIFT_STATISTICS
            if row.get(column(name, "p_value")) is not None
            and row[column(name, "p_value")] * tests < alpha
            and row.get(column(name, "effect")) is not None
            and abs(row[column(name, "effect")]) >= min_effect])
    return found
