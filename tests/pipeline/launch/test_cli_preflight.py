"""Every set-up mistake ends before the pipeline with one line on stderr and exit code 2."""

import subprocess
import sys

import keras
import pytest
import tensorflow as tf

from gbp_ops import errors
from pipeline import cli
from pipeline.launch import options as launch_options
from pipeline.stages import read
from tests.e2e import helpers


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("preflight")
    helpers.small_model(str(root / "model.keras"))
    with tf.io.TFRecordWriter(str(root / "data.tfrecord")) as writer:
        writer.write(b"placeholder")
    return root


def _main(capsys, assets, *overrides, output=None, extra=()):
    argv = ["--config", helpers.DEMO_PRESET,
            "--set", f"source.pattern={assets / 'data.tfrecord'}",
            "--set", f"model.path={assets / 'model.keras'}",
            "--output", str(output or assets / "out"), *extra]
    for override in overrides:
        argv += ["--set", override]
    code = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def _save(model, path):
    model.save(str(path))
    return f"model.path={path}"


def test_bad_config_field(capsys, assets):
    code, err = _main(capsys, assets, "explain.batch_size=-3")
    assert code == cli.EXIT_USAGE
    assert err == ["gbp-audit: error: config field 'explain.batch_size': expected an integer >= 1"]


def test_input_pattern_matches_nothing(capsys, assets):
    pattern = str(assets / "missing-*.tfrecord")
    code, err = _main(capsys, assets, f"source.pattern={pattern}")
    assert code == cli.EXIT_USAGE
    assert err == [f"gbp-audit: error: {read.NO_INPUT_FILES.format(pattern=pattern)}"]


def test_model_missing(capsys, assets):
    path = str(assets / "nope.keras")
    code, err = _main(capsys, assets, f"model.path={path}")
    assert code == cli.EXIT_USAGE
    assert err == [f"gbp-audit: error: {errors.MODEL_NOT_FOUND.format(path=path)}"]


def test_model_not_loadable(capsys, assets):
    (assets / "broken.keras").write_bytes(b"not a zip archive")
    code, err = _main(capsys, assets, f"model.path={assets / 'broken.keras'}")
    assert code == cli.EXIT_USAGE and len(err) == 1
    assert err[0].startswith(f"gbp-audit: error: cannot load model '{assets / 'broken.keras'}'")


def test_model_without_relu(capsys, assets):
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")], name="no_relu")
    code, err = _main(capsys, assets, _save(model, assets / "linear.keras"))
    assert code == cli.EXIT_USAGE
    assert err == [f"gbp-audit: error: {errors.NO_RELU.format(model='no_relu')}"]


def test_model_without_relu_names_its_activations_and_the_opt_in(capsys, assets):
    from tests.gbp_ops.gate_models import swish_cnn

    code, err = _main(capsys, assets, _save(swish_cnn(), assets / "swish.keras"))
    assert code == cli.EXIT_USAGE
    assert err == ["gbp-audit: error: " + errors.UNGUIDABLE_ACTIVATIONS.format(
        model="swish_cnn", groups="silu (swish) at 3 layers: conv_swish, act_silu, dense_swish",
        remedy=errors.GATE_REMEDY)]


def test_model_input_size_cannot_be_matched(capsys, assets):
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Dense(2)(keras.layers.GlobalMaxPooling2D()(
        keras.layers.Conv2D(4, 3, activation="relu")(inputs)))
    code, err = _main(capsys, assets, _save(keras.Model(inputs, outputs),
                                            assets / "unsized.keras"))
    assert code == cli.EXIT_USAGE and len(err) == 1
    assert "has no fixed height and width" in err[0]


def test_lambda_model_needs_safe_mode_opt_out(capsys, assets):
    inputs = keras.Input((8, 8, 3))
    hidden = keras.layers.Conv2D(2, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.Lambda(lambda t: t * 2.0)(
        keras.layers.Flatten()(hidden)))
    code, err = _main(capsys, assets, _save(keras.Model(inputs, outputs),
                                            assets / "lambda.keras"))
    assert code == cli.EXIT_USAGE and len(err) == 1
    assert "safe mode" in err[0] and "safe_mode=False" in err[0]


def test_output_not_writable(capsys, assets):
    blocker = assets / "a-file"
    blocker.write_text("x")
    code, err = _main(capsys, assets, output=blocker / "out")
    assert code == cli.EXIT_USAGE and len(err) == 1
    assert err[0].startswith(f"gbp-audit: error: output path '{blocker / 'out'}' is not writable")


def test_command_line_shows_no_traceback_unless_debug(assets):
    argv = [sys.executable, "-m", "pipeline", "--config", helpers.DEMO_PRESET,
            "--set", f"source.pattern={assets / 'none-*.tfrecord'}", "--output",
            str(assets / "out")]
    quiet = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 2
    assert "Traceback" not in quiet.stderr
    assert quiet.stderr.strip().splitlines()[-1].startswith("gbp-audit: error: input pattern")
    loud = subprocess.run([*argv, "--debug"], capture_output=True, text=True, timeout=120)
    assert loud.returncode != 0 and "Traceback" in loud.stderr


@pytest.mark.parametrize("beam_args, expected_mode, expected_workers", [
    ([], "multi_threading", 2),
    (["--runner=DirectRunner"], "multi_threading", 2),
    (["--direct_running_mode=multi_processing"], "multi_processing", 2),
    (["--direct_num_workers", "3"], "multi_threading", 3),
    (["--direct_running_mode", "in_memory"], "in_memory", 1),
])
def test_local_runs_default_to_two_threads_unless_the_user_chose(beam_args, expected_mode,
                                                                   expected_workers):
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    options = launch_options.beam_options(beam_args)
    assert options.view_as(StandardOptions).runner in launch_options.LOCAL_RUNNERS
    assert options.view_as(DirectOptions).direct_running_mode == expected_mode
    assert options.view_as(DirectOptions).direct_num_workers == expected_workers


def test_remote_runners_get_no_local_parallelism_flags():
    from apache_beam.options.pipeline_options import DirectOptions

    options = launch_options.beam_options(["--runner=DataflowRunner"])
    assert options.view_as(DirectOptions).direct_running_mode == "in_memory"
    assert "direct_num_workers" not in options.get_all_options(drop_default=True)
