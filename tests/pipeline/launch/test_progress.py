"""Progress counting: per-process count files summed by the launcher, the line's figures, and
record totals counted from TFRecord headers."""

import json

import numpy as np
import tensorflow as tf

from pipeline import records
from pipeline.config import SourceConfig
from pipeline.launch import progress
from pipeline.records import DeadLetter
from pipeline.stages.progress import CountProgressDoFn
from pipeline.stages.read import ReadSource


class _Batch:
    def __init__(self, count):
        self._count = count

    def __len__(self):
        return self._count


def test_counts_of_several_processes_are_summed(tmp_path):
    (tmp_path / "111.json").write_text(json.dumps({"examples_done": 40, "dead_letters": 2}))
    (tmp_path / "222.json.partial").write_text("{half")  # a file being replaced is skipped
    done = CountProgressDoFn(records.EXAMPLES_DONE, str(tmp_path))
    dead = CountProgressDoFn(records.DEAD_LETTERS_SEEN, str(tmp_path))
    done.setup()
    dead.setup()
    for size in (32, 32, 7):
        done.process(_Batch(size))
    dead.process(DeadLetter("x", "s:1", "decode", "bad"))
    done.finish_bundle()
    assert progress.read_counts(str(tmp_path)) == {"examples_done": 40 + 71, "dead_letters": 3}


def test_progress_line_figures():
    counts = {"examples_done": 180, "dead_letters": 20}
    line = progress.progress_line(counts, 1000, "from the TFDS split size", elapsed=10.0)
    assert line == ("gbp-audit: 200 / 1,000 examples (20%), 20.0/s, ETA 40s, 20 dead letters; "
                    "total from the TFDS split size")
    unknown = progress.progress_line(counts, None, "unknown", elapsed=4.0)
    assert unknown.startswith("gbp-audit: 200 / ? examples, 50.0/s")


def test_tfrecord_totals_are_counted_from_headers(tmp_path):
    sizes = {"a.tfrecord": 5, "b.tfrecord": 0, "c.tfrecord": 13}
    rng = np.random.default_rng(0)
    for name, count in sizes.items():
        with tf.io.TFRecordWriter(str(tmp_path / name)) as writer:
            for _ in range(count):
                writer.write(rng.bytes(int(rng.integers(0, 3000))))
    total, how = ReadSource(SourceConfig(pattern=str(tmp_path / "*.tfrecord"))).expected_total()
    assert total == sum(sizes.values()) and "headers" in how


def _wait_for(predicate, timeout=10.0):
    import time

    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_each_state_is_printed_once_and_then_what_still_runs(tmp_path, monkeypatch):
    import io
    import time

    monkeypatch.setattr(progress, "INTERVAL_SECONDS", 0.02)
    stream = io.StringIO()
    counts = tmp_path / "1.json"

    def write(done, dead=0):
        counts.write_text(json.dumps({"examples_done": done, "dead_letters": dead}))

    write(0)
    reporter = progress.ProgressReporter(str(tmp_path), 10, "counted", stream,
                                         after=("findings", "tables", "report")).start()
    _wait_for(lambda: "0 / 10" in stream.getvalue())
    time.sleep(0.2)  # ten ticks without news
    write(6)
    _wait_for(lambda: "6 / 10" in stream.getvalue())
    write(9, dead=1)
    _wait_for(lambda: "now running" in stream.getvalue())
    time.sleep(0.2)  # ten more ticks after the last example
    reporter.stop()
    lines = stream.getvalue().splitlines()
    assert [line.split(" examples")[0] for line in lines[:3]] == [
        "gbp-audit: 0 / 10", "gbp-audit: 6 / 10", "gbp-audit: 10 / 10"]
    assert "(100%)" in lines[2] and "1 dead letters" in lines[2]
    assert lines[3:] == [progress.running_line(10, ("findings", "tables", "report"))]
    assert lines[3] == "gbp-audit: all 10 examples done; now running: findings, tables, report"


def test_an_unknown_total_prints_changes_and_a_final_line_only_if_new(tmp_path, monkeypatch):
    import io

    monkeypatch.setattr(progress, "INTERVAL_SECONDS", 0.02)
    stream = io.StringIO()
    (tmp_path / "1.json").write_text(json.dumps({"examples_done": 4, "dead_letters": 0}))
    reporter = progress.ProgressReporter(str(tmp_path), None, "unknown", stream).start()
    _wait_for(lambda: "4 / ?" in stream.getvalue())
    reporter.stop()
    assert stream.getvalue().count("\n") == 1
