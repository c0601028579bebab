"""Findings end to end on a planted shortcut unlike the demo's (tests/e2e/findings_data.py):
the planted group is found, flagged and proved by occlusion; a clean model has no finding;
runs are deterministic; the streaming assignment agrees with the clustering; a sample smaller
than the class still works.

The models are trained here, and their figures differ with the training seed and from host to
host (TensorFlow's kernels round differently on each CPU). The suite trains on one seed each
(planted 0, clean 1), but every threshold below was checked by scripts/check_findings_margins.py
over training seeds 0-4 x oneDNN kernels on and off (TF_ENABLE_ONEDNN_OPTS=1/0), 10 models of
each kind; "least"/"most" below is the extreme over those 10. Spectral clustering splits the
planted group into two flagged clusters for some seeds, so the tests read the flagged clusters
together, as the report does.
"""

import json

import pandas as pd
import pytest

import pipeline
from tests.e2e import findings_checks, findings_data, helpers
from tests.e2e.findings_checks import COUNT
from tests.e2e.margins import Bound, assert_bounds

BASE = ("source.box_key=null", "source.class_names=[dots, stripes]", "output.report=false",
        "explain.batch_size=16")


_MANIFESTS = {}  # run folder -> the manifest ``cli.run`` returned (with its timing)


def _run(root, data, model, name, *extra):
    _MANIFESTS[root / name] = helpers.run_demo_preset(
        str(data / "*.tfrecord"), str(model), root / name, *BASE, *extra, findings=True)
    return root / name


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    arrays = findings_data.synthesize(COUNT, marked_share=0.3, seed=findings_checks.PLANTED_SEED)
    findings_data.write_shards(arrays, str(root / "data"))
    findings_data.train_model(arrays, str(root / "model.keras"),
                              seed=findings_checks.PLANTED_MODEL_SEED)
    runs = {name: _run(root, root / "data", root / "model.keras", name, *extra) for name, extra in (
        ("first", ()), ("second", ()),
        ("bounded", ("findings.sample_per_class=80", "findings.image_sample_per_class=40")))}
    return arrays, runs


PLANTED_BOUNDS = (
    Bound("flagged_stripes_clusters", ">=", 1),  # 1, or 2 when the group is split (seed 4)
    Bound("flagged_dots_clusters", "<=", 0),  # most 0
    # the flagged clusters' members are the marked images: least precision 0.952 (the bounded
    # run, seeds 2 and 4: 3 of 63 members unmarked), so 0.85 leaves 0.10, 3x the worst share
    # of unmarked members; least recall 1.0, margin 0.1
    Bound("precision", ">=", 0.85),
    Bound("recall", ">=", 0.9),
    # covering the mark changes their predictions, the control region does not: least flip
    # rate 0.984 (margin 0.18), most control flip rate 0 (margin 0.2)
    Bound("least_flip_rate", ">=", 0.8),
    Bound("most_control_flip_rate", "<=", 0.2),
    Bound("least_occluded_examples", ">=", 5),  # least 16 (bounded run), margin 11
    # every flagged region holds the whole mark: least overhang 0.0625 (the region is the hot
    # cells grown by one cell); measured at the mirrored corner instead, -0.69 on every model
    Bound("region_overhang", ">=", 0),
    Bound("reasons_name_the_class", ">=", 1),
)


@pytest.mark.parametrize("run", ["first", "bounded"])
def test_planted_group_is_found_flagged_and_proved(planted, run):
    arrays, runs = planted
    assert_bounds(findings_checks.planted_group(arrays, runs[run]), PLANTED_BOUNDS)


def test_two_runs_give_identical_assignments_and_tables(planted):
    _, runs = planted
    for table in ("assignments", "clusters", "embedding"):
        first, second = (pd.read_parquet(runs[name] / table).sort_values(
            ["example_id"] if table != "clusters" else ["target", "cluster"]).reset_index(
                drop=True) for name in ("first", "second"))
        pd.testing.assert_frame_equal(first, second)


# least agreement 0.975 (seed 4, where two flagged clusters share a border and a few of their
# members vote across it; 1.0 with the bounded sample): 0.9 leaves 0.075, 4x the worst share of
# disagreements
AGREEMENT = 0.9


def test_streaming_assignment_agrees_with_the_clustering(planted):
    _, runs = planted
    for name, sample in (("first", COUNT // 2), ("bounded", 80)):
        manifest = json.loads((runs[name] / "manifest.json").read_text())
        by_class = manifest["findings"]["by_class"]
        assert [entry["sample_size"] for entry in by_class] == [sample, sample]
        assert manifest["findings"]["assignment_agreement"] >= AGREEMENT
        embedding = pd.read_parquet(runs[name] / "embedding")
        assigned = pipeline.load_saliency(str(runs[name]), maps=False).set_index("example_id")
        # every example has a cluster; sampled ones keep the clustering's label
        assert assigned.cluster.notna().all() and len(assigned) == COUNT
        assert (assigned.cluster.loc[embedding.example_id].to_numpy()
                == embedding.cluster.to_numpy()).all()
    clusters = pd.read_parquet(runs["bounded"] / "clusters")
    frame = pipeline.load_saliency(str(runs["bounded"]), maps=False)
    counted = frame.groupby(["target", "cluster"]).size()
    assert [counted[(c, k)] for c, k in zip(clusters.target, clusters.cluster)] == list(
        clusters.example_count)


CLEAN_BOUNDS = (
    Bound("clusters", ">=", 2),  # each class has at least one cluster: least 2 (seed 4), 7 most
    # no flag: the cluster nearest to one stays at least 0.35 from the rule's figures (the
    # largest of 0.5 - flip rate, 3 x control - flip rate, region share - 0.25; seed 1); the
    # planted model's run measured the same way has 1 or 2 flagged clusters on every model
    Bound("flagged_clusters", "<=", 0),
)


def test_clean_model_has_no_finding(tmp_path):
    arrays = findings_data.synthesize(COUNT, marked_share=0.0, seed=findings_checks.CLEAN_SEED)
    findings_data.write_shards(arrays, str(tmp_path / "data"))
    findings_data.train_model(arrays, str(tmp_path / "model.keras"),
                              seed=findings_checks.CLEAN_MODEL_SEED)
    output = _run(tmp_path, tmp_path / "data", tmp_path / "model.keras", "clean")
    clusters = pd.read_parquet(output / "clusters")
    assert_bounds(findings_checks.clean_model(output), CLEAN_BOUNDS, clusters.reason.tolist())


REPORT_BOUNDS = (
    # the first flag is the flagged clusters' finding, one cluster's or (split, seed 4) the
    # union's sentence: on every model
    Bound("opens_with_the_finding", ">=", 1),
    # 8 member maps per flagged cluster: the smallest flagged cluster has 27 members (seed 4)
    Bound("least_pictures", ">=", 8),
    Bound("most_pictures", "<=", 8),
    Bound("embedding_pictures", ">=", 1),
)


def test_report_opens_with_the_finding(planted):
    _, runs = planted
    assert_bounds(findings_checks.report_opening(runs["first"]), REPORT_BOUNDS)


def test_the_summary_of_a_run_with_findings_adds_up_and_names_them(planted):
    from pipeline.outputs import summary

    _, runs = planted
    manifest = _MANIFESTS[runs["first"]]
    helpers.check_summary_clock(summary.summary(manifest), manifest["timing"],
                                after="(findings, tables)")
