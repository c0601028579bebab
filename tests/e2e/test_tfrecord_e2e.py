"""End to end from TFRecord shards to Parquet on FnApiRunner, checked against independent
computations: gbp_ops on the same images, model.predict, and pandas re-aggregation."""

import json
import time

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from demo.assets import synthesize_shapes, write_tfrecord_shards
from gbp_ops.statistics import STATISTIC_NAMES
from pipeline import cli, config, explainers
from pipeline.launch import preflight
from pipeline.stages import build
from tests.e2e import helpers

NUM_EXAMPLES = 45
_SINGLE_RUN_CLOCK = {}  # unix seconds around the single run's cli.run call


def _two_class_model(model, images):
    """Rescales and re-centres the final Dense layer of the random ``model`` so that its
    predictions on ``images`` split between both classes (an untrained model's logit gap
    barely varies between images and never changes sign)."""
    import keras

    head = model.get_layer("predictions")
    features = keras.Model(model.inputs, head.input).predict(images, verbose=0)
    kernel, bias = (np.asarray(w, np.float64) for w in head.get_weights())
    gap = np.asarray(features, np.float64) @ (kernel[:, 1] - kernel[:, 0]) + bias[1] - bias[0]
    ordered = np.sort(gap)
    middle = ordered[len(ordered) // 3:2 * len(ordered) // 3 + 1]
    cut = int(np.argmax(np.diff(middle)))  # the widest space between two middle gaps
    centre = (middle[cut] + middle[cut + 1]) / 2
    scale = 4.0 / (ordered[-1] - ordered[0])
    kernel, bias = kernel * scale, bias * scale
    bias[1] -= scale * centre
    head.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return model


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfrecord")
    arrays = synthesize_shapes(NUM_EXAMPLES, image_size=helpers.IMAGE_SIZE, seed=3)
    write_tfrecord_shards(arrays, str(root / "data"), num_shards=3, image_format="png")
    model = _two_class_model(helpers.small_model(str(root / "model.keras")),
                             arrays["images"].astype(np.float32) / 255.0)
    model.save(str(root / "model.keras"))
    # An untrained model predicts one class for every image; this one must give both, each
    # with a margin that float noise between batch sizes and runners cannot flip.
    probabilities = model.predict(arrays["images"].astype(np.float32) / 255.0, verbose=0)
    assert set(probabilities.argmax(axis=1).tolist()) == {0, 1}
    assert np.abs(np.log(probabilities[:, 1] / probabilities[:, 0])).min() > 0.02
    return {"root": root, "arrays": arrays, "model": model,
            "pattern": str(root / "data" / "*.tfrecord"), "model_path": str(root / "model.keras")}


@pytest.fixture(scope="module")
def single_run(dataset):
    output = dataset["root"] / "out-single"
    _SINGLE_RUN_CLOCK["called"] = time.time()
    manifest = helpers.run_demo_preset(dataset["pattern"], dataset["model_path"], output,
                                       "explain.batch_size=8", "output.map_dtype=float32")
    _SINGLE_RUN_CLOCK["returned"] = time.time()
    return output, manifest


def _source_images(dataset):
    """The shards' images decoded by PIL and scaled to [0, 1], keyed by example id."""
    arrays = dataset["arrays"]
    return {str(i): (image.astype(np.float32) / 255.0) for i, image in zip(arrays["ids"],
                                                                         arrays["images"])}


def test_timing_splits_the_measured_wall_around_the_batches(single_run):
    """The returned ``timing`` (from the batch steps' metrics) must add up to the wall time
    this test measured around the call, and the summary must say it."""
    _, manifest = single_run
    timing = manifest["timing"]
    measured = _SINGLE_RUN_CLOCK["returned"] - _SINGLE_RUN_CLOCK["called"]
    parts = [timing[key] for key in ("before_first_batch_seconds", "batch_seconds",
                                     "after_last_batch_seconds")]
    assert all(part >= 0 for part in parts) and timing["batch_seconds"] > 0
    assert sum(parts) == pytest.approx(measured, abs=0.3)
    assert "timing" not in json.loads((single_run[0] / "manifest.json").read_text())
    assert any(f"{timing['batch_seconds']:.1f} s of batches" in line
               for line in cli.summary(manifest).splitlines())
    # one clock: the summary's wall time is the one its parts add up to, and the part after
    # the batches names what ran (no findings, no sanity in this run)
    helpers.check_summary_clock(cli.summary(manifest), timing, after="(tables, report)")
    assert timing["wall_seconds"] == pytest.approx(measured, abs=0.3)


def test_counts_reconcile_and_every_example_has_a_row(dataset, single_run):
    output, manifest = single_run
    frame = pd.read_parquet(output / "saliency")
    assert len(frame) == NUM_EXAMPLES
    assert sorted(frame.example_id) == sorted(str(i) for i in dataset["arrays"]["ids"])
    assert manifest["counts"]["input"] == NUM_EXAMPLES
    assert manifest["counts"]["saliency_rows"] == NUM_EXAMPLES
    assert manifest["counts"]["errors"] == 0 and manifest["counts"]["reconciled"]
    assert len(pd.read_parquet(output / "errors")) == 0


def test_maps_and_predictions_equal_direct_computation(dataset, single_run):
    output, _ = single_run
    frame = pd.read_parquet(output / "saliency").sort_values("example_id")
    images_by_id = _source_images(dataset)
    images = np.stack([images_by_id[i] for i in frame.example_id])
    expected_maps, explanation = helpers.reference_maps(dataset["model"], images)
    stored = np.stack(frame.saliency.to_numpy()).reshape(expected_maps.shape)
    np.testing.assert_allclose(stored, expected_maps, rtol=1e-4, atol=1e-7)
    assert np.abs(expected_maps).max() > 0

    probabilities = dataset["model"].predict(images, verbose=0)
    np.testing.assert_array_equal(frame.predicted.to_numpy(), probabilities.argmax(axis=1))
    np.testing.assert_allclose(frame.target_prob.to_numpy(), probabilities.max(axis=1),
                               rtol=1e-4)
    np.testing.assert_array_equal(frame.label.to_numpy(),
                                  [dict(zip(map(str, dataset["arrays"]["ids"]),
                                            dataset["arrays"]["labels"]))[i]
                                   for i in frame.example_id])
    assert set(frame.label_name) <= {"circle", "square"}
    np.testing.assert_array_equal(frame.correct, frame.label == frame.predicted)


def _pandas_aggregates(frame, group_columns):
    rows = {}
    for key, group in frame.groupby(group_columns) if group_columns else [(None, frame)]:
        maps = np.stack(group.saliency.to_numpy())
        peaks = np.abs(maps).max(axis=1, keepdims=True)
        rows[key if not isinstance(key, tuple) or len(key) > 1 else key[0]] = {
            "example_count": len(group),
            **{f"{name}_mean": group[name].mean() for name in STATISTIC_NAMES},
            **{f"{name}_std": group[name].std() for name in STATISTIC_NAMES},
            "mean_map": (np.abs(maps) / np.where(peaks > 0, peaks, 1)).mean(axis=0),
        }
    return rows


def test_aggregates_equal_pandas_recomputation(single_run):
    output, _ = single_run
    frame = pd.read_parquet(output / "saliency")
    stats = pd.read_parquet(output / "stats")
    expectations = {
        "overall": _pandas_aggregates(frame, None),
        "class": _pandas_aggregates(frame, ["target"]),
        "class_correct": _pandas_aggregates(frame, ["target", "correct"]),
    }
    assert (stats.group_kind == "overall").sum() == 1
    for _, row in stats.iterrows():
        if row.group_kind == "overall":
            expected = expectations["overall"][None]
        elif row.group_kind == "class":
            expected = expectations["class"][row.target]
        else:
            expected = expectations["class_correct"][(row.target, row.correct)]
        assert row.example_count == expected["example_count"]
        for name in STATISTIC_NAMES:
            assert row[f"{name}_mean"] == pytest.approx(expected[f"{name}_mean"], rel=1e-9)
            if expected["example_count"] > 1:
                assert row[f"{name}_std"] == pytest.approx(expected[f"{name}_std"], rel=1e-6)
        np.testing.assert_allclose(row.mean_map, expected["mean_map"], rtol=1e-5, atol=1e-7)
    assert stats[stats.group_kind == "class"].example_count.sum() == len(frame)


def test_load_saliency_gives_2d_maps_and_metadata(single_run):
    import pipeline

    output, manifest = single_run
    frame = pipeline.load_saliency(str(output))
    assert frame.saliency.iloc[0].shape == (helpers.IMAGE_SIZE, helpers.IMAGE_SIZE)
    metadata = frame.attrs["gbp_audit"]
    assert metadata["explained_space"] == "logit"
    assert metadata["model_sha256"] == manifest["model_sha256"]
    assert metadata["map_shape"] == [helpers.IMAGE_SIZE, helpers.IMAGE_SIZE]


def _run_and_query(plan, runner_args=()):
    options = PipelineOptions(["--runner=FnApiRunner", *runner_args])
    pipeline_obj = beam.Pipeline(options=options)
    build.build_pipeline(pipeline_obj, plan)
    result = pipeline_obj.run()
    result.wait_until_finish()

    def counter(name):
        found = result.metrics().query(MetricsFilter().with_name(name))["counters"]
        return sum(c.committed for c in found)

    return counter


@pytest.mark.parametrize("runner_args", [
    [], ["--direct_running_mode=multi_threading", "--direct_num_workers=2"]],
    ids=["one_thread", "two_threads_share_the_model"])
def test_model_built_once_for_preflight_and_the_run(dataset, tmp_path, monkeypatch, runner_args):
    """Preflight and the local run's bundle threads share one explainer (one model build)."""
    built = []
    real_builder = explainers.build_explainer

    def counting_builder(run_config):
        built.append(run_config.model.path)
        return real_builder(run_config)

    monkeypatch.setattr(explainers, "build_explainer", counting_builder)
    run_config = config.load_config(helpers.DEMO_PRESET, [
        f"source.pattern={dataset['pattern']}", f"model.path={dataset['model_path']}",
        f"output.path={tmp_path / 'out'}", "explain.batch_size=4"])
    plan = preflight.preflight(run_config)
    counter = _run_and_query(plan, runner_args)
    assert counter("batches_explained") >= NUM_EXAMPLES // 4
    assert counter("models_built") == 1
    assert len(built) == 1


def test_two_worker_processes_build_one_model_each_and_give_identical_outputs(
        dataset, single_run):
    """One multi-process run (the costly kind) checks both: each worker process builds the
    model at most once, and the rows equal the single-process run's."""
    output, _ = single_run
    parallel_output = dataset["root"] / "out-parallel"
    run_config = config.load_config(helpers.DEMO_PRESET, [
        f"source.pattern={dataset['pattern']}", f"model.path={dataset['model_path']}",
        f"output.path={parallel_output}", "explain.batch_size=8", "output.map_dtype=float32",
        "source.class_names=[circle, square]", "source.box_key=image/mark_box",
        "sanity.enabled=false", "findings.enabled=false"])
    plan = preflight.preflight(run_config)
    counter = _run_and_query(plan, ["--direct_running_mode=multi_processing",
                                    "--direct_num_workers=2"])
    assert counter("batches_explained") >= NUM_EXAMPLES // 8
    assert 1 <= counter("models_built") <= 2

    single = pd.read_parquet(output / "saliency").sort_values("example_id")
    parallel = pd.read_parquet(parallel_output / "saliency").sort_values("example_id")
    assert len(parallel) == len(single) == NUM_EXAMPLES
    scalar_columns = [c for c in single.columns if c != "saliency"]
    pd.testing.assert_frame_equal(single[scalar_columns].reset_index(drop=True),
                                  parallel[scalar_columns].reset_index(drop=True),
                                  check_exact=False, rtol=1e-5)
    np.testing.assert_allclose(np.stack(single.saliency.to_numpy()),
                               np.stack(parallel.saliency.to_numpy()), rtol=1e-5, atol=1e-9)


def test_predictions_cover_both_classes(single_run):
    output, _ = single_run
    frame = pd.read_parquet(output / "saliency")
    assert frame.predicted.nunique() >= 2
    assert {True, False} <= set(frame.correct)  # both (class, correct) flags occur


def _optional(value, kind):
    return None if pd.isna(value) else kind(value)


def test_stats_groups_equal_pandas_groups_of_the_saliency_table(single_run):
    output, _ = single_run
    frame = pd.read_parquet(output / "saliency", columns=["target", "correct"])
    stats = pd.read_parquet(output / "stats",
                            columns=["group_kind", "target", "correct", "example_count"])
    expected = {("overall", None, None): len(frame)}
    for target, group in frame.groupby("target"):
        expected[("class", int(target), None)] = len(group)
    for (target, correct), group in frame.groupby(["target", "correct"]):
        expected[("class_correct", int(target), bool(correct))] = len(group)
    assert any(key[0] == "class_correct" and key[2] is False for key in expected)

    found = {(row["group_kind"], _optional(row["target"], int),
              _optional(row["correct"], bool)): int(row["example_count"])
             for row in stats.to_dict("records")}
    assert len(found) == len(stats), "a group has more than one stats row"
    assert set(found) == set(expected)
    assert found == expected


def _independent_statistics(maps, band_fraction):
    """border_share, top5_share, entropy, centre of mass and total mass of ``(N, h, w)`` maps,
    written out from their definitions (mass = |map|)."""
    mass = np.abs(np.asarray(maps, np.float64))
    count, height, width = mass.shape
    total = mass.sum(axis=(1, 2))
    band = max(1, int(round(band_fraction * min(height, width))))
    rows, cols = np.mgrid[:height, :width]
    edge_distance = np.minimum(np.minimum(rows, cols),
                               np.minimum(height - 1 - rows, width - 1 - cols))
    top_count = max(1, int(np.ceil(0.05 * height * width)))
    flat = -np.sort(-mass.reshape(count, -1), axis=1)
    share = mass / total[:, None, None]
    logs = np.log(np.where(share > 0, share, 1.0))
    return {
        "total_mass": total,
        "border_share": (mass * (edge_distance < band)).sum(axis=(1, 2)) / total,
        "top5_share": flat[:, :top_count].sum(axis=1) / total,
        "entropy": -(share * logs).sum(axis=(1, 2)) / np.log(height * width),
        "center_y": (share * (rows + 0.5) / height).sum(axis=(1, 2)),
        "center_x": (share * (cols + 0.5) / width).sum(axis=(1, 2)),
    }


def test_stored_statistics_equal_recomputation_from_stored_maps(single_run):
    import pipeline

    output, manifest = single_run
    frame = pipeline.load_saliency(str(output))
    maps = np.stack(frame.saliency.to_numpy())
    assert maps.shape[1:] == (helpers.IMAGE_SIZE, helpers.IMAGE_SIZE)
    assert (np.abs(maps).sum(axis=(1, 2)) > 0).all()
    band_fraction = manifest["config"]["output"]["border_band_fraction"]
    expected = _independent_statistics(maps, band_fraction)
    for name, values in expected.items():
        np.testing.assert_allclose(frame[name].to_numpy(), values, rtol=1e-5, atol=1e-12,
                                   err_msg=name)
