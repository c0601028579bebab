"""Per-class comparison figures against scipy and numpy computed independently: paired and
unpaired shifts, intervals and p values, counts, the bounded sample and the drift rule."""

import hashlib

import numpy as np
import pytest
from scipy import stats

from gbp_ops.statistics import (
    AGGREGATED_STATISTICS,
    BORDER_SHARE,
    BOX_SHARE,
    TOP5_SHARE,
    TOTAL_MASS,
)
from pipeline.compare import per_class
from pipeline.tables import comparison_classes as table

S = len(AGGREGATED_STATISTICS)


def _keys(ids):
    return np.array([int(hashlib.sha1(i.encode()).hexdigest()[:16], 16) for i in ids],
                    np.uint64)


def _data(count, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    ids = [f"ex-{i:04d}" for i in range(count)]
    base = rng.uniform(0, 1, (count, S))
    base[:, AGGREGATED_STATISTICS.index(BOX_SHARE)] = np.nan  # no boxes
    current = base + shift + rng.normal(0, 0.05, (count, S))
    return ids, base, current


def _paired(ids, base, current, bound, parts=3):
    """An accumulator built from several partial ones, merged, as the Beam combine does."""
    merged = per_class.ClassAccumulator(bound)
    correct_b = np.array([i % 4 != 0 for i in range(len(ids))], object)
    correct_c = np.array([i % 5 != 0 for i in range(len(ids))], object)
    for rows in np.array_split(np.arange(len(ids)), parts):
        partial = per_class.ClassAccumulator(bound)
        keys = per_class.id_hashes([ids[i] for i in rows])
        partial.add_side(0, keys, base[rows], correct_b[rows])
        partial.add_side(1, keys, current[rows], correct_c[rows])
        partial.add_flips(len(rows), int(np.sum(rows % 7 == 0)))
        partial.add_pairs(keys, current[rows] - base[rows], np.ones(len(rows)),
                          np.full(len(rows), 0.5))
        merged.merge(partial)
    return merged


def test_paired_figures_match_scipy():
    ids, base, current = _data(60, seed=0, shift=0.03)
    row = per_class.class_figures(_paired(ids, base, current, bound=1000))
    assert row[table.TEST] == table.TEST_WILCOXON and row[table.PAIRS] == 60
    for index, name in enumerate(AGGREGATED_STATISTICS):
        if name == BOX_SHARE:
            assert row[table.statistic_column(name, "p_value")] is None
            continue
        d = current[:, index] - base[:, index]
        interval = stats.ttest_rel(current[:, index], base[:, index]).confidence_interval(0.95)
        assert row[table.statistic_column(name, "shift")] == pytest.approx(d.mean(), abs=1e-12)
        assert row[table.statistic_column(name, "ci_low")] == pytest.approx(interval.low)
        assert row[table.statistic_column(name, "ci_high")] == pytest.approx(interval.high)
        assert row[table.statistic_column(name, "p_value")] == pytest.approx(
            stats.wilcoxon(d).pvalue)
        assert row[table.statistic_column(name, "effect")] == pytest.approx(
            d.mean() / np.std(base[:, index], ddof=1))
    flips = sum(np.sum(rows % 7 == 0) for rows in np.array_split(np.arange(60), 3))
    assert row[table.PREDICTION_FLIPS] == flips
    assert row[table.PREDICTION_FLIP_RATE] == pytest.approx(flips / 60)
    accuracy = (np.mean([i % 4 != 0 for i in range(60)]), np.mean([i % 5 != 0 for i in range(60)]))
    assert row[table.ACCURACY_CHANGE] == pytest.approx(accuracy[1] - accuracy[0])
    assert row[table.MEDIAN_SPEARMAN] == 1.0 and row[table.MEDIAN_TOP5_OVERLAP] == 0.5


def test_unpaired_figures_match_scipy():
    _, base, _ = _data(40, seed=1)
    _, _, current = _data(31, seed=2, shift=0.2)
    accumulator = per_class.ClassAccumulator(1000)
    accumulator.add_side(0, per_class.id_hashes([f"a{i}" for i in range(40)]), base,
                         np.full(40, None, object))
    accumulator.add_side(1, per_class.id_hashes([f"b{i}" for i in range(31)]), current,
                         np.full(31, None, object))
    row = per_class.class_figures(accumulator)
    assert row[table.TEST] == table.TEST_MANN_WHITNEY and row[table.PAIRS] == 0
    assert row[table.ACCURACY_CHANGE] != row[table.ACCURACY_CHANGE]  # no labels: NaN
    index = AGGREGATED_STATISTICS.index(BORDER_SHARE)
    welch = stats.ttest_ind(current[:, index], base[:, index], equal_var=False)
    interval = welch.confidence_interval(0.95)
    assert row[f"{BORDER_SHARE}_shift"] == pytest.approx(
        current[:, index].mean() - base[:, index].mean())
    assert row[f"{BORDER_SHARE}_ci_low"] == pytest.approx(interval.low)
    assert row[f"{BORDER_SHARE}_ci_high"] == pytest.approx(interval.high)
    assert row[f"{BORDER_SHARE}_p_value"] == pytest.approx(stats.mannwhitneyu(
        current[:, index], base[:, index], alternative="two-sided").pvalue)


def test_tests_use_the_smallest_id_hashes_when_the_class_is_larger_than_the_sample():
    ids, base, current = _data(90, seed=3, shift=0.01)
    bound = 25
    row = per_class.class_figures(_paired(ids, base, current, bound=bound, parts=4))
    chosen = np.argsort(_keys(ids), kind="stable")[:bound]
    index = AGGREGATED_STATISTICS.index(TOTAL_MASS)
    d = current[:, index] - base[:, index]
    assert row[f"{TOTAL_MASS}_p_value"] == pytest.approx(stats.wilcoxon(d[chosen]).pvalue)
    assert row[f"{TOTAL_MASS}_shift"] == pytest.approx(d.mean())  # exact, from sums


def test_identical_runs_give_zero_shift_and_p_one():
    ids, base, _ = _data(30, seed=4)
    row = per_class.class_figures(_paired(ids, base, base.copy(), bound=100))
    index = AGGREGATED_STATISTICS.index(BORDER_SHARE)
    assert row[f"{BORDER_SHARE}_shift"] == 0.0 and row[f"{BORDER_SHARE}_p_value"] == 1.0
    assert row[f"{BORDER_SHARE}_ci_low"] == 0.0 == row[f"{BORDER_SHARE}_ci_high"]
    assert np.isfinite(base[:, index]).all()


def test_drift_needs_a_corrected_p_and_an_effect():
    def row(p_value, effect):
        found = {table.statistic_column(name, part): None for name in AGGREGATED_STATISTICS
                 for part in table.STATISTIC_PARTS}
        found[f"{BORDER_SHARE}_p_value"], found[f"{BORDER_SHARE}_effect"] = p_value, effect
        found[f"{TOTAL_MASS}_p_value"], found[f"{TOTAL_MASS}_effect"] = 1e-9, 5.0
        found[f"{TOP5_SHARE}_p_value"], found[f"{TOP5_SHARE}_effect"] = 0.5, 0.0
        return found

    rows = [row(0.004, 0.9), row(0.001, -0.6), row(1e-6, 0.1)]
    # total_mass never drifts; 6 tests: 0.004 * 6 = 0.024 >= 0.01 (not drift); 0.001 * 6 < 0.01
    # with |effect| 0.6 is drift; 1e-6 with |effect| 0.1 is not
    assert per_class.drifted(rows, alpha=0.01, min_effect=0.5) == [[], [BORDER_SHARE], []]
