"""Tests of report.html (pipeline.report) on the outputs of a real, tiny pipeline run."""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from demo.assets import synthesize_shapes, write_tfrecord_shards
from gbp_ops import sanity
from pipeline import rankings, report
from pipeline.config import jsonable
from pipeline.outputs import loader
from pipeline.report import flags as report_flags
from pipeline.tables import errors as errors_table
from pipeline.tables import examples as examples_table
from pipeline.tables import sanity as sanity_table
from tests.e2e import helpers

NUM_EXAMPLES = 24


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real demo-preset run on 24 shapes at 32x32 through a small untrained reference CNN,
    explaining the labels so that both classes have maps (the model predicts one class)."""
    root = tmp_path_factory.mktemp("report")
    arrays = synthesize_shapes(NUM_EXAMPLES, image_size=helpers.IMAGE_SIZE, seed=5)
    write_tfrecord_shards(arrays, str(root / "data"), num_shards=2)
    helpers.small_model(str(root / "model.keras"))
    output = root / "out"
    helpers.run_demo_preset(str(root / "data" / "*.tfrecord"), str(root / "model.keras"), output,
                            "explain.batch_size=8", "explain.target=label")
    images = {str(i): image for i, image in zip(arrays["ids"], arrays["images"])}
    return output, images


def _write_sanity_table(output):
    rows = [sanity_table.encode_row(
                {"depth": depth, "randomized_layers": ",".join(names[:depth]),
                 "spearman": value - 0.01 * i, "ssim": value - 0.02 * i}, f"id{i}")
            for names in [["predictions", "fc2", "fc1"]]
            for depth, value in ((1, 0.95), (2, 0.9), (3, 0.85)) for i in range(4)]
    (output / "sanity").mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=sanity_table.SANITY_SCHEMA),
                   output / "sanity" / "sanity-00000-of-00001.parquet")
    # The publish step's manifest field for those rows (the report prints its verdict).
    manifest = json.loads((output / "manifest.json").read_text())
    manifest["sanity"] = jsonable(sanity.sanity_fields(sanity_table.check_rows(rows)))
    (output / "manifest.json").write_text(json.dumps(manifest))


def _ranked_by_pandas(frame, column, ascending, count):
    """The ranking rule written out in pandas: NaN and all-zero maps skipped, ties by id."""
    alive = frame[(frame.total_mass > 0) & frame[column].notna()]
    ordered = alive.sort_values([column, "example_id"], ascending=[ascending, True])
    return list(ordered.example_id.astype(str))[:count]


def test_examples_table_holds_the_best_ranked_examples_and_their_input_images(run):
    output, images = run
    frame = loader.load_saliency(str(output), maps=False)
    shown = loader.load_table(str(output), "examples").sort_values(["ranking", "rank"])
    top_n = 8  # the demo preset's output.report_top_n (the default)
    for ranking, column, ascending in ((rankings.BY_BORDER, "border_share", False),
                                       (rankings.BY_DIFFUSE, "top5_share", True)):
        kept = shown[shown.ranking == ranking]
        assert list(kept.example_id) == _ranked_by_pandas(frame, column, ascending, top_n)
        assert list(kept["rank"]) == list(range(top_n))
        for _, row in kept.iterrows():
            np.testing.assert_array_equal(examples_table.decode_image(row.image_png),
                                          images[row.example_id])


def test_report_with_overlays_and_sanity(run, tmp_path):
    output = tmp_path / "with-sanity"
    shutil.copytree(run[0], output)
    _write_sanity_table(output)
    path = report.write_report(str(output))
    assert path == os.path.join(str(output), report.REPORT_HTML)
    text, pictures = helpers.check_report_page(path)

    classes = loader.load_stats(str(output)).query("group_kind == 'class'")
    assert len(classes) == 2
    alts = [alt for alt, _ in pictures]
    mean_maps = sorted(alt for alt in alts if alt.startswith("mean map: "))
    assert mean_maps == sorted(
        f"mean map: {row['target_name']}, n={int(row['example_count'])}"
        for _, row in classes.iterrows())
    assert {"border_share per class", "top5_share per class", "entropy per class"} <= set(alts)
    shown = [image for alt, image in pictures if alt.startswith("#")]
    assert len(shown) == 16
    for example_id in loader.load_table(str(output), "examples").example_id:
        assert example_id in text
    # Overlays are three panels wide, maps alone are square-ish.
    assert all(image.width > 2 * image.height for image in shown)
    assert "similarity to the trained model's maps per depth" in alts
    assert "Maps changed little" in text
    assert "<td>24</td>" in text  # 24 saliency rows
    assert not os.path.exists(os.path.join(str(output), "report"))


def test_report_without_images_replaces_stale_pictures(run, tmp_path):
    output = tmp_path / "copy"
    shutil.copytree(run[0], output)
    shutil.rmtree(output / "examples")  # a run without the examples table
    stale = output / report.LEGACY_REPORT_DIR / "stale.png"  # an older report's pictures
    stale.parent.mkdir(exist_ok=True)
    stale.write_bytes(b"not a png")
    path = report.write_report(str(output), top_n=2)
    text, pictures = helpers.check_report_page(path)
    assert not stale.parent.exists()
    shown = [image for alt, image in pictures if alt.startswith("#")]
    assert len(shown) == 4
    assert "Sanity check" not in text and "Maps alone" in text
    assert all(image.width < 1.5 * image.height for image in shown)


def test_dead_letters_by_stage_are_listed_and_escaped(run, tmp_path):
    output = tmp_path / "errors-run"
    shutil.copytree(run[0], output)
    errors = pa.Table.from_pylist(
        [{"example_id": "x1", "position": "s:1", "stage": "decode", "error": "bad <png>"},
         {"example_id": None, "position": "s:2", "stage": "parse", "error": "truncated"}],
        schema=errors_table.ERRORS_SCHEMA)
    for old in (output / "errors").iterdir():
        old.unlink()
    pq.write_table(errors, output / "errors" / "errors-00000-of-00001.parquet")
    manifest = json.loads((output / "manifest.json").read_text())
    manifest["counts"].update({"errors": 2, "errors_decode": 1, "errors_parse": 1})
    (output / "manifest.json").write_text(json.dumps(manifest))
    text, _ = helpers.check_report_page(report.write_report(str(output), top_n=1))
    assert "Dead letters by stage" in text
    assert "<td class=\"text\">decode</td><td>1</td>" in text
    assert "bad &lt;png&gt;" in text and "bad <png>" not in text


def test_rankings_skip_nan_and_dead_maps_and_break_ties_by_id():
    frame = pd.DataFrame({
        "example_id": ["a", "b", "c", "d", "e", "dead"],
        "border_share": [0.1, 0.9, np.nan, 0.9, 0.5, 0.0],
        "top5_share": [0.3, 0.2, 0.05, np.nan, 0.2, 0.0],
        "total_mass": [1.0, 2.0, 3.0, 4.0, 5.0, 0.0],
    })
    ids = frame.example_id.to_numpy()
    scores = rankings.ranking_scores(lambda name: frame[name].to_numpy())
    assert list(ids[rankings.best(scores[rankings.BY_BORDER], ids, 3)]) == ["b", "d", "e"]
    assert list(ids[rankings.best(scores[rankings.BY_DIFFUSE], ids, 3)]) == ["c", "b", "e"]
    assert len(rankings.best(scores[rankings.BY_BORDER], ids, 0)) == 0


def _stats(classes, overall, box=None):
    """A stats-like DataFrame: classes are (index, count, border mean, border std)."""
    rows = [{"group_kind": "overall", "target": np.nan, "target_name": None,
             "example_count": overall[0], "border_share_mean": overall[1],
             "border_share_std": overall[2]}]
    for index, count, mean, std in classes:
        rows.append({"group_kind": "class", "target": float(index), "target_name": f"c{index}",
                     "example_count": count, "border_share_mean": mean,
                     "border_share_std": std})
    frame = pd.DataFrame(rows)
    if box is not None:
        frame["box_share_mean"], frame["box_share_std"] = box
    return frame


def _pooled(groups):
    """Overall (count, mean, std ddof=1) of groups given as (count, mean, std)."""
    count = sum(n for n, _, _ in groups)
    mean = sum(n * m for n, m, _ in groups) / count
    squares = sum((n - 1) * s**2 + n * m**2 for n, m, s in groups)
    return count, mean, np.sqrt((squares - count * mean**2) / (count - 1))


def test_border_flag_compares_a_class_with_the_rest_of_the_dataset():
    classes = [(0, 100, 0.10, 0.03), (1, 100, 0.12, 0.03), (2, 50, 0.30, 0.05)]
    stats = _stats(classes, _pooled([c[1:] for c in classes]))
    flags = report_flags.border_flags(stats)
    assert [flag.class_index for flag in flags] == [2]
    assert "c2: mean border share" in flags[0].message and "2.7x" in flags[0].message
    # 1.5x the rest but within noise: a 3-example class is not flagged.
    noisy = [(0, 200, 0.10, 0.03), (1, 3, 0.20, 0.2)]
    assert report_flags.border_flags(_stats(noisy, _pooled([c[1:] for c in noisy]))) == []
    # One class: there is no rest to compare with.
    assert report_flags.border_flags(_stats([(0, 10, 0.5, 0.1)], (10, 0.5, 0.1))) == []


def test_box_flag_needs_the_box_area_and_enough_boxed_examples():
    classes = [(0, 20, 0.1, 0.03), (1, 20, 0.1, 0.03)]
    stats = _stats(classes, _pooled([c[1:] for c in classes]),
                   box=([0.05, 0.01, 0.10], [0.02, np.nan, 0.03]))
    frame = pd.DataFrame({"target": [0] + [1] * 10, "box_share": [0.01] + [0.1] * 10})
    assert report_flags.box_flags(stats, frame, None) == []
    flags = report_flags.box_flags(stats, frame, box_area_share=0.01)
    assert [(flag.kind, flag.class_index) for flag in flags] == [("box", 1)]
    assert "10.0x" in flags[0].message and "10 boxed examples" in flags[0].message


def test_the_report_reads_each_input_once(run, tmp_path, monkeypatch):
    """write_report reads the manifest once and each table once, except ``saliency``: its rows
    without maps, then the maps of the drawn examples in one filtered read."""
    from pipeline.outputs import manifest as manifest_module

    output = tmp_path / "counted"
    shutil.copytree(run[0], output)
    opened, manifests = [], []
    dataset, read = loader._dataset, manifest_module.read
    monkeypatch.setattr(loader, "_dataset",
                        lambda path, table: opened.append(table) or dataset(path, table))
    monkeypatch.setattr(manifest_module, "read",
                        lambda path: manifests.append(path) or read(path))
    report.write_report(str(output))
    assert len(manifests) == 1
    counts = {table: opened.count(table) for table in set(opened)}
    assert counts.pop("saliency") == 2
    assert set(counts.values()) == {1}, counts


def test_a_run_without_class_names_or_labels_shows_class_n_and_dashes(tmp_path):
    """No names and no labels: every class is 'class N', every undefined value '–', and no
    'nan' or 'None' anywhere on the page (the pictures' base64 left out of the search)."""
    import re

    arrays = synthesize_shapes(NUM_EXAMPLES, image_size=helpers.IMAGE_SIZE, seed=6)
    write_tfrecord_shards(arrays, str(tmp_path / "data"), num_shards=1)
    helpers.small_model(str(tmp_path / "model.keras"))
    helpers.run_demo_preset(str(tmp_path / "data" / "*.tfrecord"), str(tmp_path / "model.keras"),
                            tmp_path / "out", "source.class_names=[]", "source.label_key=null",
                            "source.box_key=null", "explain.batch_size=8", findings=True)
    page = (tmp_path / "out" / "report.html").read_text()
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)
    assert not re.search(r"\bNone\b|class \d+\.\d", text)
    predicted = loader.load_saliency(str(tmp_path / "out"), maps=False).predicted
    for index in set(predicted):
        assert f"class {index}" in text
    assert "label –, predicted class" in text
