"""The manifest's ``comparison`` block names each concept as the tables do: its per-class
entries carry the ``comparison_classes`` columns, under the same names, with the same values."""

from pipeline.compare import outcome
from pipeline.config.sections import CompareConfig
from pipeline.tables import comparison_classes as classes_table


def _class_row(target, name):
    row = {column: None for column in classes_table.arrow_schema((4, 4)).names}
    row.update({classes_table.CLASS: target, classes_table.CLASS_NAME: name,
                classes_table.TEST: classes_table.TEST_WILCOXON, classes_table.PAIRS: 12,
                classes_table.PREDICTION_FLIP_RATE: 0.25, classes_table.ACCURACY_CHANGE: -0.5,
                classes_table.MEDIAN_SPEARMAN: 0.75, classes_table.DRIFTED: ["entropy"]})
    return row


def test_class_entries_use_the_comparison_classes_column_names():
    rows = [_class_row(0, "circle"), _class_row(3, None)]
    block = outcome.comparison_block(
        "gs://runs/a", "gs://runs/b", {"model_changed": True, "data_changed": False},
        {"shared_ids": 12, "baseline_only_ids": 0, "current_only_ids": 0}, [], rows,
        CompareConfig(), "", [], [])
    columns = set(classes_table.arrow_schema((4, 4)).names)
    assert [set(entry) - columns for entry in block["classes"]] == [set(), set()]
    assert [entry["target"] for entry in block["classes"]] == [0, 3]
    assert [entry["target_name"] for entry in block["classes"]] == ["circle", None]
    for entry, row in zip(block["classes"], rows):
        assert entry == {key: row[key] for key in entry}
