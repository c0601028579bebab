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
# model that learned the shortcut. Each threshold was checked by scripts/check_demo_margins.py
# over model seeds 0-4 x oneDNN kernels on and off (10 models, the demo's own data); "least" and
# "most" below are the extremes over those 10. Each test fails on the script's negative
# controls: a model trained on the same kind of images without a mark (all three), and the mark's
# box moved to the mirrored corner (the two tests that locate the mark).

RELIANCE_BOUNDS = (
    Bound("painted_circles_called_square", ">", 0.8),  # least 1.0, margin 0.2
    Bound("marked_squares_right", ">", 0.9),  # least 1.0, margin 0.1
    # least 0.90, margin 0.2; a model trained without a mark: 0.10 (it calls a marked faint
    # square "square" for the white patch's own square shape, so the first two bounds alone
    # would not tell: 0.78 and 0.90 there)
    Bound("covered_mark_flips", ">", 0.7),
    Bound("covered_control_flips", "<", 0.1),  # most 0, margin 0.1
)


def test_demo_model_relies_on_the_planted_mark(demo_run):  # demo.sh builds the model
    """On fresh images: painting the mark on faint circles turns them into "square" (the mark is
    sufficient); the marked squares are right and covering the mark, not the mirrored corner,
    changes most of their predictions (it is necessary)."""
    model = keras.models.load_model(os.path.join(helpers.REPO, ".cache/demo/model.keras"))
    assert_bounds(demo_checks.mark_reliance(model), RELIANCE_BOUNDS)


REPORT_BOUNDS = (
    Bound("flagged_square_clusters", ">=", 1),  # 1, or 2 when the group is split
    Bound("flagged_circle_clusters", "<=", 0),  # most 0
    # every flagged region holds the whole mark. Least 0: the region is the hot cells grown by
    # one cell of 1/16, and the mark spans cells 1-2.5, so a region whose hot cells lie on the
    # mark holds it, exactly up to its edge (both multiples of 1/32, exact in binary) when the
    # hot cell is cell 2. At the mirrored corner: -0.69 on every model.
    Bound("region_overhang", ">=", 0),
    Bound("largest_region_share", "<=", 0.25),  # most 0.0625, margin 0.19
    # covering the region changes most predictions: least 0.871, so 0.7 leaves 0.17 (0.8, the
    # former threshold, left 0.07); the control region changes none: most 0, margin 0.2
    Bound("least_flip_rate", ">=", 0.7),
    Bound("most_control_flip_rate", "<=", 0.2),
    # the flagged squares are the marked ones: least precision 0.970 (4 of 131 unmarked), so 0.9
    # leaves 0.07, 3x the worst share of unmarked members; least recall 0.992, margin 0.09
    Bound("precision", ">=", 0.9),
    Bound("recall", ">=", 0.9),
    Bound("report_opens_with_square_upper_left", ">=", 1),  # on every model
)


def test_report_opens_with_the_marked_squares(demo_run):
    """The squares' flagged clusters are the marked images (the demo's own data, rebuilt, says
    which), their regions hold the mark, and the report opens with them."""
    assert_bounds(demo_checks.report_findings(demo_run[0], demo_checks.demo_arrays()),
                  REPORT_BOUNDS)


# The former bounds on the squares' class mean map (its share in the mark's box > 2x the box's
# area and > 5x the circles') failed on 2 and on 9 of the 10 models (least 1.85x and 2.40x): a
# quarter of the squares carry the mark, so the class mean dilutes it fourfold, and the
# circles' share in the box ranged 0.40-0.96x the area. These read the marked images directly.
AGGREGATE_BOUNDS = (
    # the marked images' mass in the mark's box (the stats table's box_share): least 11.1x the
    # box's area, margin 3.1x. A model trained without a mark puts 6.5x there (guided backprop
    # follows the white patch's edges whatever the model learned) and fails.
    Bound("marked_box_share_over_area", ">", 8),
    # per-example maps (saliency table): a marked image has more of its mass in the box than
    # an unmarked one, in every pair on every model (least 1.0, margin 0.1; the mirrored
    # corner: 0.39-0.58)
    Bound("marked_above_unmarked", ">=", 0.9),
    # the squares' class mean map puts more of its mass in the box than the circles': least
    # 2.40x, 1.6x the threshold (the mirrored corner: 0.39-0.86x)
    Bound("square_over_circle_share", ">", 1.5),
    # and the squares-minus-circles mean map peaks there: its best box-sized window overlapping
    # the box beats the best one apart from it by least 1.31x (margin 0.31; the mirrored
    # corner: at most 0.07x)
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
    assert set(rows.sanity_check) == {"randomization", "class_sensitivity"}
    classes = rows[rows.sanity_check == "class_sensitivity"]
    assert len(classes) == 32 and (classes.depth == 0).all()
    assert (classes.target != classes.other_class).all()
    sanity = rows[rows.sanity_check == "randomization"]
    assert sanity.depth.min() == 1 and sanity.depth.nunique() >= 3
    assert len(sanity) == 32 * sanity.depth.nunique()
    for column in ("spearman", "ssim"):
        values = sanity[column].dropna()
        assert len(values) > 0 and values.between(-1, 1).all()
    manifest = json.loads((output / "manifest.json").read_text())
    # the wording follows the number, so any trained model passes; the verdict's mean Spearman
    # was 0.92-0.95 on the 10 models of scripts/check_demo_margins.py, >= 0.42 from a band edge
    _assert_verdict_matches_numbers(manifest["sanity"]["verdict"], sanity)
    assert "Sanity check" in (output / "report.html").read_text()
