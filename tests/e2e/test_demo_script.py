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

from tests.e2e import demo_checks, helpers
from tests.e2e.margins import Bound, assert_bounds


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo") / "out"
    result = subprocess.run([os.path.join(helpers.REPO, "scripts", "demo.sh"), "--output",
                             str(output)], cwd=helpers.REPO, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return output, result.stdout, result.stderr


# The demo model is trained on every clean machine, and TensorFlow's kernels round differently on
# each CPU, so its figures differ from host to host. These tests assert only what holds for any
# model that learned the shortcut; each threshold keeps a margin measured by
# scripts/check_demo_margins.py over model seeds 0-4 x oneDNN kernels on and off, and fails on
# its negative controls (a model trained on the same kind of images without a mark; the mark's
# box moved to the mirrored corner). "least" below is the smallest value over those 10 models.

RELIANCE_BOUNDS = (
    Bound("painted_circles_called_square", ">", 0.8),  # least TBD
    Bound("marked_squares_right", ">", 0.9),  # least TBD
    Bound("covered_mark_flips", ">", 0.7),  # least TBD
    Bound("covered_control_flips", "<", 0.1),  # most TBD
)


def test_demo_model_relies_on_the_planted_mark(demo_run):  # demo.sh builds the model
    """On fresh images: painting the mark on faint circles turns them into "square" (the mark is
    sufficient); the marked squares are right and covering the mark, not the mirrored corner,
    changes most of their predictions (it is necessary)."""
    model = keras.models.load_model(os.path.join(helpers.REPO, ".cache/demo/model.keras"))
    assert_bounds(demo_checks.mark_reliance(model), RELIANCE_BOUNDS)


REPORT_BOUNDS = (
    Bound("flagged_square_clusters", ">=", 1),
    Bound("flagged_circle_clusters", "<=", 0),
    Bound("region_overhang", ">=", 0),  # every flagged region holds the whole mark
    Bound("largest_region_share", "<=", 0.25),
    Bound("least_flip_rate", ">=", 0.8),
    Bound("most_control_flip_rate", "<=", 0.2),
    Bound("precision", ">=", 0.9),
    Bound("recall", ">=", 0.9),
    Bound("report_opens_with_square_upper_left", ">=", 1),
)


def test_report_opens_with_the_marked_squares(demo_run):
    """The squares' flagged clusters are the marked images (the demo's own data, rebuilt, says
    which), their regions hold the mark, and the report opens with them."""
    assert_bounds(demo_checks.report_findings(demo_run[0], demo_checks.demo_arrays()),
                  REPORT_BOUNDS)


AGGREGATE_BOUNDS = (
    Bound("marked_box_share_over_area", ">", 5),
    Bound("marked_above_unmarked", ">=", 0.9),
    Bound("square_over_circle_share", ">", 1.5),
    Bound("circle_share_over_area", "<", 1),
    Bound("peak_at_box", ">", 1),
)


def test_aggregates_locate_the_mark_for_the_marked_class_only(demo_run):
    """The stats table's box share of the marked images, the per-example maps of the saliency
    table (marked vs unmarked images) and the class mean maps all put the squares' extra
    saliency at the mark, and the circles' not."""
    output, stdout, _ = demo_run
    assert "1024 inputs -> 1024 saliency rows + 0 dead letters" in stdout
    assert_bounds(demo_checks.aggregates(output, demo_checks.demo_arrays()), AGGREGATE_BOUNDS)


def test_report_is_one_file_with_a_mean_map_per_class(demo_run):
    output = demo_run[0]
    _, pictures = helpers.check_report_page(str(output / "report.html"))
    alts = [alt for alt, _ in pictures]
    stats = pd.read_parquet(output / "stats")
    for _, row in stats[stats.group == "class"].iterrows():
        assert any(alt.startswith(f"mean map: {row['class_name']} (class {int(row['class'])})")
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
