"""Progress of a local run: ``gbp-audit: 1,200 / 20,000 examples (6%), 118.2/s, ETA 2m 22s,
0 dead letters; total from ...`` every ``INTERVAL_SECONDS`` while the counts grow (one updating
line on a terminal), each state once; after the last example, one line naming what still runs
(sanity, findings, tables, report).

The stage ``pipeline.stages.progress.CountProgressDoFn`` writes each worker process's running
counts to its own small JSON file in a run folder; the reporter thread here sums the files. On
Dataflow the same figures are the Beam counters ``gbp_audit:examples_done`` and
``gbp_audit:dead_letters``.
"""

import json
import os
import sys
import threading
import time

from pipeline.records import DEAD_LETTERS_SEEN, EXAMPLES_DONE

INTERVAL_SECONDS = 10.0
_TERMINAL_INTERVAL_SECONDS = 1.0


def read_counts(folder):
    """Sums every process's counts in ``folder``: ``{examples_done, dead_letters}``."""
    totals = {EXAMPLES_DONE: 0, DEAD_LETTERS_SEEN: 0}
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as handle:
                counts = json.load(handle)
        except (OSError, ValueError):  # being replaced right now; next tick reads it
            continue
        for key in totals:
            totals[key] += int(counts.get(key, 0))
    return totals


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def progress_line(counts, total, total_source, elapsed):
    """One progress line (``total`` may be None when it is unknown)."""
    done = counts[EXAMPLES_DONE] + counts[DEAD_LETTERS_SEEN]
    rate = done / elapsed if elapsed > 0 else 0.0
    if total:
        eta = _duration((total - done) / rate) if rate > 0 and done < total else "–"
        head = f"{done:,} / {total:,} examples ({100 * done / total:.0f}%), {rate:.1f}/s, ETA {eta}"
    else:
        head = f"{done:,} / ? examples, {rate:.1f}/s"
    return (f"gbp-audit: {head}, {counts[DEAD_LETTERS_SEEN]:,} dead letters; "
            f"total {total_source}")


def running_line(done, stages):
    """The line printed once every example is done: what the run is still doing."""
    return (f"gbp-audit: all {done:,} examples done; now running: {', '.join(stages)}"
            if stages else f"gbp-audit: all {done:,} examples done")


class ProgressReporter:
    """Prints progress lines from a run folder in a background thread until ``stop``.

    Each state is printed once: a line only when the counts changed since the last one (a
    terminal's updating line also refreshes the rate while they grow), the 100% line once, then
    one line naming what still runs (``after``), and at ``stop`` a final line only if it says
    something new.

    Args:
        folder: the run's progress folder (``pipeline.stages.progress``).
        total, total_source: the expected number of examples (None: unknown) and how it is
            known.
        stream: where to print (default stdout).
        after: the parts of the run that follow the last example, in words
            (``pipeline.outputs.summary.after_last_batch``).
    """

    def __init__(self, folder, total, total_source, stream=None, after=()):
        self._folder = folder
        self._total = total
        self._total_source = total_source
        self._after = tuple(after)
        self._stream = stream or sys.stdout
        self._terminal = self._stream.isatty()
        self._stopped = threading.Event()
        self._start = time.monotonic()
        self._printed = None  # the counts of the last line printed
        self._finished = False  # the 100% line and the running line are out
        self._thread = threading.Thread(target=self._loop, name="gbp-audit-progress",
                                        daemon=True)

    def start(self):
        os.makedirs(self._folder, exist_ok=True)
        self._thread.start()
        return self

    def _write(self, line, final=False):
        if self._terminal:
            self._stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def _tick(self, final=False):
        """Prints the current state if it is new; after the last example, says what runs."""
        if self._finished:
            return
        counts = read_counts(self._folder)
        done = counts[EXAMPLES_DONE] + counts[DEAD_LETTERS_SEEN]
        complete = bool(self._total) and done >= self._total
        if counts != self._printed:
            self._printed = counts
            self._write(progress_line(counts, self._total, self._total_source,
                                      time.monotonic() - self._start), final or complete)
        elif final and self._terminal:
            self._stream.write("\n")
        if complete:
            self._finished = True
            if not final:
                self._write(running_line(done, self._after), final=True)

    def _loop(self):
        interval = _TERMINAL_INTERVAL_SECONDS if self._terminal else INTERVAL_SECONDS
        while not self._stopped.wait(interval):
            self._tick()

    def stop(self):
        """Stops the thread and prints the final line, unless the last one said it all."""
        self._stopped.set()
        self._thread.join()
        self._tick(final=True)
