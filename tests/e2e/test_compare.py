"""Comparisons of two runs end to end, on planted cases (tests/e2e/findings_data.py, unlike the
demo): the same model twice (no change), the planted shortcut resolved by retraining without
it (proved by re-occlusion on the new model), the reverse (a new finding and exit status 3
after every output is written), incompatible runs refused before any work, and partly
overlapping ids counted right."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from pipeline import cli
from pipeline.findings import regions
from tests.e2e import findings_data, helpers

COUNT = 300
STRIPES = 1
BASE = ("source.box_key=null", "source.class_names=[dots, stripes]", "explain.batch_size=16",
        "sanity.enabled=false")


def _argv(root, data, model, name, *extra):
    argv = ["--config", helpers.DEMO_PRESET, "--set", f"source.pattern={data}/*.tfrecord",
            "--set", f"model.path={root / model}", "--output", str(root / name)]
    for override in (*BASE, *extra):
        argv += ["--set", override]
    return argv


def _main(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _comparison(folder):
    return json.loads((folder / "manifest.json").read_text())["comparison"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Data with the planted shortcut, a model that learned it, one trained without it (no
    marked images), and the shortcut model's run (the first baseline)."""
    root = tmp_path_factory.mktemp("compare")
    arrays = findings_data.synthesize(COUNT, marked_share=0.3, seed=1)
    findings_data.write_shards(arrays, str(root / "data"))
    findings_data.train_model(arrays, str(root / "shortcut.keras"))
    clean = findings_data.synthesize(COUNT, marked_share=0.0, seed=2)
    findings_data.train_model(clean, str(root / "clean.keras"), seed=1)
    assert cli.run(_argv(root, root / "data", "shortcut.keras", "shortcut"))
    return root, arrays


def test_the_same_model_and_data_twice_change_nothing(planted, capsys):
    root, _ = planted
    code, out, _ = _main(_argv(root, root / "data", "shortcut.keras", "same",
                               f"compare.baseline={root / 'shortcut'}",
                               "compare.fail_on=[new_finding, drift]"), capsys)
    assert code == 0, out
    examples = pd.read_parquet(root / "same" / "comparison_examples")
    assert len(examples) == COUNT and (examples.presence == "shared").all()
    assert (examples.spearman == 1.0).all() and (examples.top5_overlap == 1.0).all()
    assert not examples.flipped.any()
    classes = pd.read_parquet(root / "same" / "comparison_classes")
    assert (classes.prediction_flips == 0).all() and (classes.median_spearman == 1.0).all()
    assert all(len(drifted) == 0 for drifted in classes.drifted)
    assert all(np.allclose(m, 0.0) for m in classes.mean_map_difference)
    findings = pd.read_parquet(root / "same" / "comparison_findings")
    assert set(findings.status) == {"persisting"} and findings.proven.all()
    assert (findings.current_flip_rate == findings.baseline_flip_rate).all()
    comparison = _comparison(root / "same")
    assert comparison["failed"] == [] and not comparison["model_changed"]
    assert comparison["ids"] == {"shared_ids": COUNT, "baseline_only_ids": 0,
                                 "current_only_ids": 0}


def _marked_flip_rate(model_path, arrays):
    """Independent of the pipeline: the share of marked images whose predicted class changes
    when the mark's pixels are covered with each image's mean colour (Keras directly)."""
    import keras

    model = keras.models.load_model(model_path)
    images = arrays["images"][arrays["has_mark"]].astype(np.float32) / 255.0
    covered = images.copy()
    y0, x0, y1, x1 = findings_data.MARK
    covered[:, y0:y1, x0:x1] = images.mean(axis=(1, 2), keepdims=True)
    before = model.predict(images, verbose=0).argmax(axis=1)
    after = model.predict(covered, verbose=0).argmax(axis=1)
    return float(np.mean(before != after))


def test_retraining_without_the_shortcut_resolves_the_finding(planted, capsys):
    root, arrays = planted
    code, out, err = _main(_argv(root, root / "data", "clean.keras", "clean",
                                 f"compare.baseline={root / 'shortcut'}",
                                 "compare.fail_on=[persisting_finding]"), capsys)
    assert code == 0, err
    findings = pd.read_parquet(root / "clean" / "comparison_findings")
    resolved = findings[findings.target == STRIPES]
    assert list(resolved.status) == ["resolved"], findings.sentence.tolist()
    row = resolved.iloc[0]
    assert row.proven and row.occluded_examples >= 5
    assert row.current_flip_rate <= 0.2 and row.baseline_flip_rate >= 0.8, row.sentence
    y0, x0, y1, x1 = np.array(findings_data.MARK) / findings_data.SIZE
    ymin, xmin, ymax, xmax = row.baseline_region
    assert ymin <= y0 and xmin <= x0 and ymax >= y1 and xmax >= x1
    assert regions.region_share(row.control_region) == pytest.approx(
        regions.region_share(row.baseline_region))
    # the planted truth, measured without the pipeline: the shortcut model needs the mark,
    # the retrained one does not
    assert _marked_flip_rate(root / "shortcut.keras", arrays) >= 0.8
    assert _marked_flip_rate(root / "clean.keras", arrays) <= 0.2
    comparison = _comparison(root / "clean")
    assert comparison["model_changed"] and not comparison["data_changed"]
    assert comparison["findings"]["resolved"] == 1 and comparison["unproven_statuses"] == []
    text, pictures = helpers.check_report_page(str(root / "clean" / "report.html"))
    assert text.index("<h2>Since the baseline</h2>") < text.index("<h2>Findings</h2>")
    opening = text[text.index("<h2>Since the baseline</h2>"):]
    assert opening.split('<div class="ok">', 1)[1].startswith(row.sentence.replace("'", "&#x27;"))
    assert row.sentence.startswith("stripes: the lower-right shortcut is resolved")
    assert any(alt.endswith("mean map now minus baseline") for alt, _ in pictures)
    assert "since the baseline: stripes: the lower-right shortcut is resolved" in out


def test_the_reverse_is_a_new_finding_and_exits_3_after_writing_everything(planted, capsys):
    root, _ = planted
    if not (root / "clean" / "manifest.json").exists():
        assert cli.run(_argv(root, root / "data", "clean.keras", "clean"))
    output = root / "reverse"
    code, out, err = _main(["compare", str(root / "clean"), str(root / "shortcut"),
                            "--output", str(output), "--set", "compare.fail_on=[new_finding]"],
                           capsys)
    assert code == cli.EXIT_FAIL_ON == 3, err
    assert err.strip().splitlines()[-1].startswith(
        "gbp-audit: compare.fail_on holds: new_finding (1 new finding(s))")
    for table in ("comparison_examples", "comparison_classes", "comparison_findings"):
        assert list((output / table).glob("*.parquet")), table
    assert (output / "report.html").exists() and "report.html" in out
    findings = pd.read_parquet(output / "comparison_findings")
    new = findings[findings.status == "new"]
    assert list(new.target) == [STRIPES] and new.iloc[0].current_flip_rate >= 0.8
    assert new.iloc[0].sentence.startswith("stripes: a new shortcut at the lower right")
    comparison = _comparison(output)
    assert comparison["failed"] == [{"condition": "new_finding", "why": "1 new finding(s)"}]


def test_incompatible_runs_are_refused_before_any_work(planted, capsys):
    root, _ = planted
    code, _, err = _main(_argv(root, root / "data", "shortcut.keras", "refused",
                               f"compare.baseline={root / 'shortcut'}",
                               "explain.reduction=l2"), capsys)
    assert code == cli.EXIT_USAGE
    line = err.strip().splitlines()[-1]
    assert "config.explain.reduction: 'max_abs' vs 'l2'" in line and "map_shape" not in line
    assert not (root / "refused" / "saliency").exists()  # the pipeline never started
    resized = root / "resized"
    shutil.copytree(root / "shortcut", resized)
    manifest = json.loads((resized / "manifest.json").read_text())
    manifest["map_shape"] = [16, 16]
    (resized / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = _main(["compare", str(root / "shortcut"), str(resized), "--output",
                          str(root / "resized-comparison")], capsys)
    assert code == cli.EXIT_USAGE and "map_shape: [32, 32] vs [16, 16]" in err
    assert not (root / "resized-comparison").exists()


def test_partly_overlapping_ids_are_counted(planted, capsys):
    root, arrays = planted
    extra = findings_data.synthesize(40, marked_share=0.3, seed=7)
    extra["ids"] = np.array([f"extra-{i:03d}" for i in range(40)])
    keep = np.arange(100, COUNT)
    subset = {key: np.concatenate([arrays[key][keep], extra[key]])
              for key in ("images", "labels", "ids", "has_mark")}
    findings_data.write_shards(subset, str(root / "partial-data"))
    code, out, err = _main(_argv(root, root / "partial-data", "shortcut.keras", "partial",
                                 f"compare.baseline={root / 'shortcut'}",
                                 "output.report=false"), capsys)
    assert code == 0, err
    old, new = set(arrays["ids"].tolist()), set(subset["ids"].tolist())
    expected = {"shared_ids": len(old & new), "baseline_only_ids": len(old - new),
                "current_only_ids": len(new - old)}
    assert _comparison(root / "partial")["ids"] == expected
    assert _comparison(root / "partial")["data_changed"]
    examples = pd.read_parquet(root / "partial" / "comparison_examples")
    assert examples.presence.value_counts().to_dict() == {
        "shared": len(old & new), "baseline_only": len(old - new), "current_only": len(new - old)}
    assert set(examples[examples.presence == "current_only"].example_id) == new - old
    assert examples[examples.presence != "shared"].spearman.isna().all()


def test_without_the_current_model_the_statuses_are_unproven(planted, capsys):
    root, _ = planted
    if not (root / "clean" / "manifest.json").exists():
        assert cli.run(_argv(root, root / "data", "clean.keras", "clean"))
    moved = root / "clean-elsewhere"
    shutil.copytree(root / "clean", moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["config"]["model"]["path"] = str(root / "gone.keras")
    (moved / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = _main(["compare", str(root / "shortcut"), str(moved), "--output",
                          str(root / "unproven")], capsys)
    assert code == 0, err
    comparison = _comparison(root / "unproven")
    assert comparison["unproven_statuses"] == ["resolved"]
    assert "gone.keras is not reachable" in comparison["unproven_reason"]
    findings = pd.read_parquet(root / "unproven" / "comparison_findings")
    assert list(findings.status) == ["resolved"] and not findings.proven.any()
    assert findings.current_flip_rate.isna().all()
    assert findings.sentence.iloc[0].startswith(
        "stripes: no current cluster holds the lower-right shortcut; not re-tested")
