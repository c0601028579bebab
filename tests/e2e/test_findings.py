"""Findings end to end on a planted shortcut unlike the demo's (tests/e2e/findings_data.py):
the planted group is found, flagged and proved by occlusion; a clean model has no finding;
runs are deterministic; the streaming assignment agrees with the clustering; a sample smaller
than the class still works."""

import json

import numpy as np
import pandas as pd
import pytest

import pipeline
from tests.e2e import findings_data, helpers

COUNT = 400
STRIPES = 1
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
    arrays = findings_data.synthesize(COUNT, marked_share=0.3, seed=1)
    findings_data.write_shards(arrays, str(root / "data"))
    findings_data.train_model(arrays, str(root / "model.keras"))
    runs = {name: _run(root, root / "data", root / "model.keras", name, *extra) for name, extra in (
        ("first", ()), ("second", ()),
        ("bounded", ("findings.sample_per_class=80", "findings.image_sample_per_class=40")))}
    return arrays, runs


def _marked(arrays, frame):
    return frame.example_id.map(dict(zip(arrays["ids"], arrays["has_mark"]))).astype(bool)


def _best_cluster(arrays, output):
    """(precision, recall, cluster) of the stripes cluster that best matches the marked set."""
    frame = pipeline.load_saliency(str(output), maps=False)
    frame = frame[frame.target == STRIPES]
    marked = _marked(arrays, frame)
    best = (0.0, 0.0, None)
    for cluster in sorted(frame.cluster.unique()):
        members = frame.cluster == cluster
        hits = float((members & marked).sum())
        precision, recall = hits / members.sum(), hits / marked.sum()
        best = max(best, (precision, recall, int(cluster)), key=lambda b: b[0] + b[1])
    return best


@pytest.mark.parametrize("run", ["first", "bounded"])
def test_planted_group_is_found_flagged_and_proved(planted, run):
    arrays, runs = planted
    precision, recall, cluster = _best_cluster(arrays, runs[run])
    assert precision >= 0.9 and recall >= 0.9, (precision, recall)
    clusters = pd.read_parquet(runs[run] / "clusters")
    row = clusters[(clusters["class"] == STRIPES) & (clusters.cluster == cluster)].iloc[0]
    assert row.flagged and row.flip_rate >= 0.8 and row.control_flip_rate <= 0.2, row.reason
    assert row.occluded_examples >= 5 and row.reason.startswith("stripes: ")
    y0, x0, y1, x1 = np.array(findings_data.MARK) / findings_data.SIZE
    ymin, xmin, ymax, xmax = row.region
    assert ymin <= y0 and xmin <= x0 and ymax >= y1 and xmax >= x1, row.region
    assert clusters.flagged.sum() == 1  # nothing else in the planted run is a shortcut


def test_two_runs_give_identical_assignments_and_tables(planted):
    _, runs = planted
    for table in ("assignments", "clusters", "embedding"):
        first, second = (pd.read_parquet(runs[name] / table).sort_values(
            ["example_id"] if table != "clusters" else ["class", "cluster"]).reset_index(
                drop=True) for name in ("first", "second"))
        pd.testing.assert_frame_equal(first, second)


def test_streaming_assignment_agrees_with_the_clustering(planted):
    _, runs = planted
    for name, sample in (("first", COUNT // 2), ("bounded", 80)):
        manifest = json.loads((runs[name] / "manifest.json").read_text())
        by_class = manifest["findings"]["by_class"]
        assert [entry["sample_size"] for entry in by_class] == [sample, sample]
        assert manifest["findings"]["assignment_agreement"] >= 0.95
        embedding = pd.read_parquet(runs[name] / "embedding")
        assigned = pipeline.load_saliency(str(runs[name]), maps=False).set_index("example_id")
        # every example has a cluster; sampled ones keep the clustering's label
        assert assigned.cluster.notna().all() and len(assigned) == COUNT
        assert (assigned.cluster.loc[embedding.example_id].to_numpy()
                == embedding.cluster.to_numpy()).all()
    clusters = pd.read_parquet(runs["bounded"] / "clusters")
    frame = pipeline.load_saliency(str(runs["bounded"]), maps=False)
    counted = frame.groupby(["target", "cluster"]).size()
    assert [counted[(c, k)] for c, k in zip(clusters["class"], clusters.cluster)] == list(
        clusters["count"])


def test_clean_model_has_no_finding(tmp_path):
    arrays = findings_data.synthesize(COUNT, marked_share=0.0, seed=2)
    findings_data.write_shards(arrays, str(tmp_path / "data"))
    findings_data.train_model(arrays, str(tmp_path / "model.keras"), seed=1)
    output = _run(tmp_path, tmp_path / "data", tmp_path / "model.keras", "clean")
    clusters = pd.read_parquet(output / "clusters")
    assert len(clusters) >= 2 and not clusters.flagged.any(), clusters.reason.tolist()


def test_report_opens_with_the_finding(planted):
    from pipeline.report import write_report

    _, runs = planted
    text, pictures = helpers.check_report_page(write_report(str(runs["first"])))
    clusters = pd.read_parquet(runs["first"] / "clusters")
    sentence = clusters[clusters.flagged].reason.iloc[0]
    assert text.index("<h2>Findings</h2>") < text.index("<h2>Counts</h2>")
    first_flag = text.index('<div class="flag">')
    assert text[first_flag:].startswith(f'<div class="flag">{sentence}</div>')
    alts = [alt for alt, _ in pictures]
    cluster = int(clusters[clusters.flagged].cluster.iloc[0])
    assert sum(alt.startswith(f"stripes, cluster {cluster}: planted-") for alt in alts) == 8
    assert any(alt.startswith("2-D spectral embedding") for alt in alts)


def test_the_summary_of_a_run_with_findings_adds_up_and_names_them(planted):
    from pipeline.outputs import summary

    _, runs = planted
    manifest = _MANIFESTS[runs["first"]]
    helpers.check_summary_clock(summary.summary(manifest), manifest["timing"],
                                after="(findings, tables)")
