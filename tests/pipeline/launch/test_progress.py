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
