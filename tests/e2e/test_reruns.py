"""Re-runs reproduce the same Parquet content exactly; a killed run breaks no read and a
re-run over it replaces the outputs cleanly."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from tests.e2e import helpers

TABLES = ("saliency", "stats", "errors")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("reruns")
    helpers.shapes_inputs(root, 60, seed=4, num_shards=3)
    return root


@pytest.fixture(scope="module")
def first_run(assets):
    """One published run; each test reruns into its own copy of it."""
    from pipeline import cli

    output = assets / "out-first"
    cli.run(_argv(assets, output))
    return output


def _argv(assets, output, *extra):
    return ["--config", helpers.DEMO_PRESET,
            "--set", f"source.pattern={assets / 'data' / '*.tfrecord'}",
            "--set", f"model.path={assets / 'model.keras'}",
            "--set", "explain.batch_size=8", "--output", str(output), *extra]


def _tables(output):
    """Each table sorted into a canonical row order (file layout is the runner's choice)."""
    frames = {}
    for table in TABLES:
        frame = pd.read_parquet(output / table)
        keys = [c for c in ("example_id", "group_kind", "target", "correct") if c in frame]
        frames[table] = frame.sort_values(keys).reset_index(drop=True) if len(frame) else frame
    return frames


def _assert_identical(left, right):
    for table in TABLES:
        a, b = left[table], right[table]
        assert list(a.columns) == list(b.columns) and len(a) == len(b)
        for column in a.columns:
            for x, y in zip(a[column], b[column]):
                if isinstance(x, np.ndarray):
                    assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), (table, column)
                else:
                    assert (pd.isna(x) and pd.isna(y)) or (
                        not pd.isna(x) and not pd.isna(y) and x == y), (table, column, x, y)


def test_rerun_gives_bit_identical_content_and_replaces_outputs(assets, first_run):
    from pipeline import cli

    output = assets / "out"
    shutil.copytree(first_run, output)
    first = _tables(output)
    files_first = sorted(p.name for p in output.rglob("*.parquet"))
    cli.run(_argv(assets, output))
    _assert_identical(first, _tables(output))
    assert sorted(p.name for p in output.rglob("*.parquet")) == files_first
    assert not (output / "_staging").exists()
    assert len(first["saliency"]) == 60


def test_killed_run_leaves_readable_outputs_and_rerun_is_clean(assets, first_run):
    from pipeline import cli

    output = assets / "out-killed"
    shutil.copytree(first_run, output)
    before = _tables(output)
    env = dict(os.environ, PYTHONPATH=helpers.REPO)
    # A slow run (batch 1) so it is still writing when killed.
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *_argv(assets, output, "--set",
                                                  "explain.batch_size=1")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((output / "_staging").rglob("*")):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert (output / "_staging").exists(), "the run was killed before it started writing"

    _assert_identical(before, _tables(output))  # the previous outputs still read cleanly
    cli.run(_argv(assets, output))
    _assert_identical(before, _tables(output))
    assert not (output / "_staging").exists()
