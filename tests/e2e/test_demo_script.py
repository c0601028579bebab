"""./scripts/demo.sh end to end: the planted shortcut is found, the report and the sanity check
are produced. The demo model is trained offline by the script (cached in .cache/demo)."""

import json
import os
import re
import subprocess

import keras
import numpy as np
import pandas as pd
import pytest

import pipeline
from demo import assets as demo_assets
from tests.e2e import helpers


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo") / "out"
    result = subprocess.run([os.path.join(helpers.REPO, "scripts", "demo.sh"), "--output",
                             str(output)], cwd=helpers.REPO, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return output, result.stdout, result.stderr


def _region_share(mean_map, box):
    height, width = mean_map.shape
    y0, x0, y1, x1 = (int(round(v * s)) for v, s in zip(box, (height, width, height, width)))
    return mean_map[y0:y1, x0:x1].sum() / mean_map.sum(), (y1 - y0) * (x1 - x0) / mean_map.size


def _demo_arrays(num_examples, seed):
    """Demo-like data (the demo's subgroup settings) with its ground truth of marked images."""
    return demo_assets.synthesize_shapes(
        num_examples, image_size=64, seed=seed,
        shortcut_fraction=demo_assets.DEMO_SHORTCUT_FRACTION,
        hidden_contrast=demo_assets.DEMO_HIDDEN_CONTRAST)


def test_demo_model_relies_on_the_planted_mark(demo_run):  # demo.sh builds the model
    model = keras.models.load_model(os.path.join(helpers.REPO, ".cache/demo/model.keras"))
    arrays = _demo_arrays(400, seed=99)  # fresh images, not the demo's own
    images, labels, faint = arrays["images"], arrays["labels"], arrays["faint"]
    y0, x0, y1, x1 = demo_assets.mark_pixel_box(64)

    def predict(batch):
        return model.predict(batch / 255.0, verbose=0).argmax(axis=1)

    # sufficient: painting the mark on the faint circles turns them into "square"
    circles = images[faint & (labels == 0)].copy()
    circles[:, y0:y1, x0:x1, :] = demo_assets.MARK_VALUE
    assert np.mean(predict(circles) == 1) > 0.8
    # necessary: the marked squares are right, and covering the mark (with each image's mean
    # colour, the findings stage's fill) changes most of their predictions; a far corner doesn't
    marked = images[arrays["has_mark"]].astype(np.float32)
    before = predict(marked)
    assert np.mean(before == 1) > 0.9
    covered, control = marked.copy(), marked.copy()
    covered[:, y0:y1, x0:x1] = marked.mean(axis=(1, 2), keepdims=True)
    control[:, 64 - y1:64 - y0, 64 - x1:64 - x0] = marked.mean(axis=(1, 2), keepdims=True)
    assert np.mean(predict(covered) != before) > 0.7
    assert np.mean(predict(control) != before) < 0.1


def test_report_opens_with_the_marked_squares(demo_run):
    output = demo_run[0]
    arrays = _demo_arrays(1024, seed=0)  # the demo's own data, rebuilt: which images are marked
    marked = set(arrays["ids"][arrays["has_mark"]])
    clusters = pd.read_parquet(output / "clusters")
    flagged = clusters[clusters.flagged]
    assert len(flagged) and set(flagged.target_name) == {"square"}
    for region in flagged.region:
        ymin, xmin, ymax, xmax = region
        box = demo_assets.MARK_BOX
        assert ymin <= box[0] and xmin <= box[1] and ymax >= box[2] and xmax >= box[3]
        assert (ymax - ymin) * (xmax - xmin) <= 0.25
    assert (flagged.flip_rate >= 0.8).all() and (flagged.control_flip_rate <= 0.2).all()

    rows = pipeline.load_saliency(str(output), maps=False)
    squares = rows[rows.target == 1]
    in_flagged = squares.cluster.isin(set(flagged.cluster))
    found = set(squares.example_id[in_flagged])
    assert len(found & marked) / len(found) >= 0.9  # precision
    assert len(found & marked) / len(marked) >= 0.9  # recall

    text = (output / "report.html").read_text()
    findings = text[text.index("<h2>Findings</h2>"):]
    first = re.search(r'<div class="(\w+)">([^<]*)</div>', findings)
    assert first.group(1) == "flag", first.group(0)
    assert first.group(2).startswith("square: ")
    assert "rely on a small region at the upper left" in first.group(2)


def test_aggregates_locate_the_mark_for_the_marked_class_only(demo_run):
    output, stdout, _ = demo_run
    assert "1024 inputs -> 1024 saliency rows + 0 dead letters" in stdout
    stats = pd.read_parquet(output / "stats")
    classes = stats[stats.group_kind == "class"].set_index("target_name")
    side = int(np.sqrt(len(classes.mean_map.iloc[0])))
    square_share, area = _region_share(classes.mean_map["square"].reshape(side, side),
                                       demo_assets.MARK_BOX)
    circle_share, _ = _region_share(classes.mean_map["circle"].reshape(side, side),
                                    demo_assets.MARK_BOX)
    # a quarter of the squares carry the mark, so the class mean is diluted fourfold
    assert square_share > 2 * area and square_share > 5 * circle_share
    # mass inside the mark's box, on the marked images (the only ones with a box)
    assert classes.box_share_mean["square"] > 5 * area


def test_report_is_one_file_with_a_mean_map_per_class(demo_run):
    output = demo_run[0]
    _, pictures = helpers.check_report_page(str(output / "report.html"))
    alts = [alt for alt, _ in pictures]
    stats = pd.read_parquet(output / "stats")
    for _, row in stats[stats.group_kind == "class"].iterrows():
        assert any(alt.startswith(f"mean map: {row['target_name']}, ")
                   for alt in alts)
    assert not (output / "report").exists()


def test_demo_prints_no_library_noise_and_ends_with_the_report_path(demo_run):
    output, stdout, stderr = demo_run
    lines = (stdout + stderr).splitlines()
    noise = [line for line in lines if line.startswith(("I0000", "E0000", "W0000", "WARNING"))
             or "absl" in line or "apitools" in line or "tensorflow" in line.lower()]
    assert noise == []
    out_lines = stdout.strip().splitlines()
    assert out_lines[-1] == f"gbp-audit: report: {output / 'report.html'}"
    summary = next(i for i, line in enumerate(out_lines) if " inputs -> " in line)
    progress = [line for line in out_lines[:summary]
                if re.match(r"gbp-audit: [\d,]+ / [\d,]+ examples", line)]
    assert progress and progress[-1].startswith("gbp-audit: 1,024 / 1,024 examples (100%)")
    assert "0 dead letters; total counted from the TFRecord headers" in progress[-1]


def test_console_command_is_installed():
    command = os.path.join(helpers.REPO, ".venv", "bin", "gbp-audit")
    for flags in (["--help"], ["--version"]):
        result = subprocess.run([command, *flags], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("gbp-audit ")


def _assert_verdict_matches_numbers(verdict, sanity):
    """The verdict reads the mean Spearman (NaNs skipped) once the top min(3, deepest) units
    are randomized: >= 0.5 "changed little", < 0.3 "changed substantially", else "partly"
    (the bands ``gbp_ops.sanity.verdict`` documents)."""
    depth = min(3, int(sanity.depth.max()))
    assert depth in set(sanity.depth)
    spearman = sanity[sanity.depth == depth].spearman.mean()
    assert not np.isnan(spearman)
    if spearman >= 0.5:
        wording = "changed little"
    elif spearman < 0.3:
        wording = "changed substantially"
    else:
        wording = "changed partly"
    assert f"Maps {wording} when the top layers were randomized" in verdict, (spearman, verdict)
    assert f"mean Spearman {spearman:.2f} at depth {depth}" in verdict, (spearman, verdict)


def test_sanity_check_runs_on_the_demo(demo_run):
    output = demo_run[0]
    rows = pd.read_parquet(output / "sanity")
    assert set(rows.check) == {"randomization", "class_sensitivity"}
    classes = rows[rows.check == "class_sensitivity"]
    assert len(classes) == 32 and (classes.depth == 0).all()
    assert (classes.target != classes.other_class).all()
    sanity = rows[rows.check == "randomization"]
    assert sanity.depth.min() == 1 and sanity.depth.nunique() >= 3
    assert len(sanity) == 32 * sanity.depth.nunique()
    for column in ("spearman", "ssim"):
        values = sanity[column].dropna()
        assert len(values) > 0 and values.between(-1, 1).all()
    manifest = json.loads((output / "manifest.json").read_text())
    _assert_verdict_matches_numbers(manifest["sanity"]["verdict"], sanity)
    assert "Sanity check" in (output / "report.html").read_text()
