"""What a comparison says: the ``comparison`` block of the manifest, the plain sentences the
report opens with, and which ``compare.fail_on`` conditions hold (exit status 3)."""

import collections

from pipeline.compare.per_class import DRIFT_STATISTICS
from pipeline.config import jsonable
from pipeline.tables import comparison_classes as classes_table
from pipeline.tables import comparison_findings as findings_table
from pipeline.tables.clusters import ACCURACY
from pipeline.tables.comparison_examples import BASELINE, CURRENT, side_column
from pipeline.tables.stats import CLASS, CLASS_NAME

NEW_FINDING, PERSISTING_FINDING, DRIFT = "new_finding", "persisting_finding", "drift"


def class_sentences(rows):
    """Plain sentences for the classes whose statistics drifted (one per class, its largest
    standardized shift first) or whose predictions flipped."""
    found = []
    for row in rows:
        label = row[CLASS_NAME] or f"class {row[CLASS]}"

        def part(name, kind, row=row):
            return row[classes_table.statistic_column(name, kind)]

        drifted = sorted(row[classes_table.DRIFTED], key=lambda name: -abs(part(name, "effect")))
        if drifted:
            top = drifted[0]
            others = f"; also {', '.join(drifted[1:])}" if drifted[1:] else ""
            found.append(
                f"{label}: attention drifted; {top} shifted by {part(top, 'shift'):+.3g} (95% "
                f"CI {part(top, 'ci_low'):+.3g} to {part(top, 'ci_high'):+.3g}; "
                f"{row[classes_table.TEST].replace('_', '-')} p = {part(top, 'p_value'):.2g}), "
                f"{abs(part(top, 'effect')):.1f} baseline standard deviations{others}")
        flips = row[classes_table.PREDICTION_FLIPS]
        if flips:
            found.append(f"{label}: {flips} of {row[classes_table.SHARED_EXAMPLES]} shared "
                         f"examples ({row[classes_table.PREDICTION_FLIP_RATE]:.0%}) changed "
                         "prediction" + _accuracy_words(row, label))
    return found


def _accuracy_words(row, label):
    old, new = (row[side_column(side, ACCURACY)] for side in (BASELINE, CURRENT))
    if old is None or new is None or old != old or new != new:
        return ""
    return (f"; of the examples explained as {label}, {old:.0%} were right in the baseline, "
            f"{new:.0%} now")


def no_change_sentence(class_rows, id_counts):
    """The one sentence when nothing changed."""
    medians = [row[classes_table.MEDIAN_SPEARMAN] for row in class_rows
               if row[classes_table.MEDIAN_SPEARMAN] is not None]
    similarity = (f"; the lowest median map similarity of a class is {min(medians):.2f}"
                  if medians else "")
    return (f"No change since the baseline: the same findings, no prediction changed on "
            f"{id_counts['shared_ids']} shared examples, no statistic drifted{similarity}")


def failed_conditions(fail_on, finding_rows, class_rows):
    """``[(condition, why)]`` of the ``fail_on`` conditions that hold."""
    statuses = collections.Counter(row[findings_table.STATUS] for row in finding_rows)
    drifted = [f"{row[CLASS_NAME] or row[CLASS]} {name}" for row in class_rows
               for name in row[classes_table.DRIFTED]]
    reasons = {
        NEW_FINDING: (statuses[findings_table.STATUS_NEW],
                      f"{statuses[findings_table.STATUS_NEW]} new finding(s)"),
        PERSISTING_FINDING: (statuses[findings_table.STATUS_PERSISTING],
                             f"{statuses[findings_table.STATUS_PERSISTING]} persisting "
                             "finding(s)"),
        DRIFT: (len(drifted), f"drift in {', '.join(drifted)}"),
    }
    return [(condition, reasons[condition][1]) for condition in fail_on
            if reasons[condition][0]]


def comparison_block(baseline_dir, current_dir, changes, id_counts, finding_rows, class_rows,
                     settings, unproven_reason, sentences, failed):
    """The manifest's ``comparison`` field (JSON-ready)."""
    statuses = collections.Counter(row[findings_table.STATUS] for row in finding_rows)
    unproven = sorted({row[findings_table.STATUS] for row in finding_rows
                       if not row[findings_table.PROVEN]})
    tests = sum(row.get(classes_table.statistic_column(name, "p_value")) is not None
                for row in class_rows for name in DRIFT_STATISTICS)
    return jsonable({
        "baseline": baseline_dir, "current": current_dir, **changes, "ids": id_counts,
        "findings": {status: statuses[status] for status in findings_table.STATUSES},
        "unproven_statuses": unproven,
        "unproven_reason": (unproven_reason or None) if unproven else None,
        "tests": {"count": tests, "drift_alpha": settings.drift_alpha,
                  "drift_min_effect": settings.drift_min_effect,
                  "correction": "bonferroni"},
        "classes": [{CLASS: row[CLASS], CLASS_NAME: row[CLASS_NAME],
                     "test": row[classes_table.TEST], "pairs": row[classes_table.PAIRS],
                     "prediction_flip_rate": row[classes_table.PREDICTION_FLIP_RATE],
                     "accuracy_change": row[classes_table.ACCURACY_CHANGE],
                     "median_spearman": row[classes_table.MEDIAN_SPEARMAN],
                     "drifted": row[classes_table.DRIFTED]} for row in class_rows],
        "sentences": sentences, "fail_on": list(settings.fail_on),
        "failed": [{"condition": condition, "why": why} for condition, why in failed],
    })


def failure_line(comparison):
    """The one line a failed ``fail_on`` prints, or None."""
    failed = comparison.get("failed") or []
    if not failed:
        return None
    return ("gbp-audit: compare.fail_on holds: "
            + "; ".join(f"{item['condition']} ({item['why']})" for item in failed))
