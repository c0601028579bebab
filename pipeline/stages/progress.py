"""Counting a run's progress as it goes: done examples and dead letters, as the Beam counters
``gbp_audit:examples_done`` and ``gbp_audit:dead_letters`` and, for local runs, in a small
JSON file per process (``<folder>/<pid>.json``: ``{examples_done, dead_letters}``), which the
launcher's reporter (``pipeline.launch.progress``) sums. Workers may be threads or spawned
processes (FnApiRunner multi_processing), hence one file per process.
"""

import json
import os
import threading
import time

import apache_beam as beam

from pipeline.records import DEAD_LETTERS_SEEN, EXAMPLES_DONE, METRICS_NAMESPACE

_FLUSH_SECONDS = 0.5


class _ProcessCounts:
    """This process's running counts of one run, flushed to ``<folder>/<pid>.json``."""

    _by_folder = {}
    _lock = threading.Lock()

    def __init__(self, folder):
        self._folder = folder
        self._counts = {EXAMPLES_DONE: 0, DEAD_LETTERS_SEEN: 0}
        self._flushed = 0.0

    @classmethod
    def of(cls, folder):
        with cls._lock:
            if folder not in cls._by_folder:
                cls._by_folder[folder] = cls(folder)
            return cls._by_folder[folder]

    def add(self, name, count):
        with self._lock:
            self._counts[name] += count
            if time.monotonic() - self._flushed >= _FLUSH_SECONDS:
                self._flush()

    def flush(self):
        with self._lock:
            self._flush()

    def _flush(self):
        self._flushed = time.monotonic()
        path = os.path.join(self._folder, f"{os.getpid()}.json")
        partial = f"{path}.partial"
        with open(partial, "w", encoding="utf-8") as handle:
            json.dump(self._counts, handle)
        os.replace(partial, path)


class CountProgressDoFn(beam.DoFn):
    """Counts elements as done examples or dead letters; outputs nothing.

    Args:
        name: ``records.EXAMPLES_DONE`` (elements are AuditBatches, counted by length) or
            ``records.DEAD_LETTERS_SEEN`` (elements are DeadLetters).
        folder: the run's local progress folder, or None (remote runners: counter only).
    """

    def __init__(self, name, folder):
        self._name = name
        self._folder = folder

    def setup(self):
        self._counter = beam.metrics.Metrics.counter(METRICS_NAMESPACE, self._name)
        self._counts = _ProcessCounts.of(self._folder) if self._folder else None

    def process(self, element):
        count = len(element) if self._name == EXAMPLES_DONE else 1
        self._counter.inc(count)
        if self._counts is not None:
            self._counts.add(self._name, count)

    def finish_bundle(self):
        if self._counts is not None:
            self._counts.flush()
