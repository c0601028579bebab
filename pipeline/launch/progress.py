"""Progress of a local run: ``gbp-audit: 1,200 / 20,000 examples (6%), 118.2/s, ETA 2m 22s,
0 dead letters; total from ...`` at least every ``INTERVAL_SECONDS`` (one updating line on a
terminal).

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


class ProgressReporter:
    """Prints progress lines from a run folder in a background thread until ``stop``."""

    def __init__(self, folder, total, total_source, stream=None):
        self._folder = folder
        self._total = total
        self._total_source = total_source
        self._stream = stream or sys.stdout
        self._terminal = self._stream.isatty()
        self._stopped = threading.Event()
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="gbp-audit-progress",
                                        daemon=True)

    def start(self):
        os.makedirs(self._folder, exist_ok=True)
        self._thread.start()
        return self

    def _print(self, final=False):
        line = progress_line(read_counts(self._folder), self._total, self._total_source,
                             time.monotonic() - self._start)
        if self._terminal:
            self._stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def _loop(self):
        interval = _TERMINAL_INTERVAL_SECONDS if self._terminal else INTERVAL_SECONDS
        while not self._stopped.wait(interval):
            self._print()

    def stop(self):
        """Stops the thread and prints the final line."""
        self._stopped.set()
        self._thread.join()
        self._print(final=True)
