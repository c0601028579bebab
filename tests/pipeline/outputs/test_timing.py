"""The launcher's timing line: the split of a run's wall time around its batch steps, and the
bench's parser of it kept in step with it."""


import pytest

from pipeline.outputs import summary
from tests.e2e.helpers import load_script


def _bench():
    return load_script("bench")


def test_timing_fields_split_the_wall_around_the_batch_window():
    timing = summary.timing_fields((1000.25, 1100.0), launched=990.0, finished=1106.5)
    assert timing == {"before_first_batch_seconds": 10.2, "batch_seconds": 99.8,
                      "after_last_batch_seconds": 6.5, "wall_seconds": 116.5}


@pytest.mark.parametrize("config, report, after", [
    ({"findings": {"enabled": False}, "sanity": {"enabled": False}}, None, "(tables)"),
    ({"findings": {"enabled": True}, "sanity": {"enabled": False}}, "r.html",
     "(findings, tables, report)"),
    ({"findings": {"enabled": False}, "sanity": {"enabled": True}}, "r.html",
     "(sanity, tables, report)"),
])
def test_the_summary_has_one_clock_and_names_what_ran_after_the_batches(config, report, after):
    from tests.e2e.helpers import check_summary_clock

    timing = summary.timing_fields((1000.04, 1100.0), launched=990.0, finished=1106.46)
    manifest = {"counts": {"input": 3, "saliency_rows": 3, "errors": 0, "reconciled": True},
                "wall_time_seconds": 99.0,  # the pipeline's own span: not the run's wall
                "explained_space": "logit", "timing": timing, "report": report,
                "config": {"output": {"path": "/tmp/x"}, **config}}
    text = summary.summary(manifest)
    check_summary_clock(text, timing, after)
    assert "116.5 s wall" in text


def test_the_bench_reads_back_the_summary_line():
    manifest = {"counts": {"input": 3, "saliency_rows": 3, "errors": 0, "reconciled": True},
                "wall_time_seconds": 2.0, "explained_space": "logit",
                "config": {"output": {"path": "/tmp/x"}},
                "timing": {"before_first_batch_seconds": 9.8, "batch_seconds": 112.3,
                           "after_last_batch_seconds": 6.1}}
    found = _bench().TIMING_LINE.search(summary.summary(manifest))
    assert found and tuple(map(float, found.groups())) == (9.8, 112.3, 6.1)
    assert _bench().outside_batches(130.0, manifest) == pytest.approx(17.7)
