"""Start-up work: the launcher's imports, and what a local run takes off its critical path.

``import_run_modules`` imports TensorFlow, Beam and the launcher's modules with the garbage
collector paused. Two parts of a local run's fixed cost need not wait in line:

- **Libraries Keras loads but a run never uses.** Keras 3 imports matplotlib.pyplot (for its
  image-gallery plot), scikit-learn (for its scikit-learn wrappers) and, through it, scipy,
  each inside ``try/except ImportError``: 2.6-3.4 s of a 7.1-7.4 s TensorFlow import on a 2-core
  host. ``optional_libraries_deferred`` refuses them while TensorFlow loads, so Keras records
  them as absent (only those plotting helpers and wrappers would notice); they import
  normally afterwards, when findings (scikit-learn, scipy) or the report (matplotlib's
  ``Figure``, not pyplot) ask for them. What a run saves is what it never loads: pyplot
  always, and the rest with findings or the report off.
- **Tracing.** ``start_in_background`` traces the GBP step while the launcher builds the
  pipeline, so the first batch finds it ready, and then the forward step findings' occlusion
  predicts with.

The deferred libraries are not loaded ahead in the background: the import is Python holding
the GIL, and a local run's CPU is busy throughout (the two bundle threads' compiled steps use
every core; the launcher's own work holds the GIL), so a 500-image run only moved the same
seconds from the findings stage and the report into the data stage.
"""

import contextlib
import gc
import importlib.abc
import logging
import sys
import threading

# Top-level packages Keras imports only for features a run does not use (checked by
# tests/pipeline/launch/test_warmup.py against the pinned Keras).
KERAS_OPTIONAL_PACKAGES = ("matplotlib", "sklearn", "scipy")


class _RefuseImports(importlib.abc.MetaPathFinder):
    """A finder that makes ``import`` of the given top-level packages raise ImportError."""

    def __init__(self, packages):
        self._packages = frozenset(packages)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in self._packages:
            raise ImportError(f"{fullname} is deferred while TensorFlow loads", name=fullname)
        return None


@contextlib.contextmanager
def optional_libraries_deferred(packages=KERAS_OPTIONAL_PACKAGES):
    """Inside, importing ``packages`` (top-level names) raises ImportError unless they are
    loaded already; meant only around the first ``import tensorflow`` of a process that runs
    one audit. Afterwards they import as usual."""
    finder = _RefuseImports(name for name in packages if name not in sys.modules)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def start_in_background(config):
    """Starts a daemon thread that traces the shared explainer's batch step, then (findings
    on) its forward-only step. A failure is logged and left for the first batch (or the
    occlusion) to raise. Returns the thread."""
    from pipeline import explainers

    explainer = explainers.shared_explainer(config)

    def trace():
        try:
            explainer.trace(forward=config.findings.enabled)
        except Exception as error:  # the first batch traces again and reports it
            logging.info("gbp-audit: tracing ahead failed (%s)", error)

    thread = threading.Thread(target=trace, name="gbp-audit-trace", daemon=True)
    thread.start()
    return thread


def import_run_modules(quiet, one_audit):
    """Imports TensorFlow (quietly unless ``--verbose``), Beam and the launcher's modules with
    the cyclic garbage collector off: loading them creates about a million objects, and every
    collection while they load walks all of them (a second or two of a local run's start-up).

    Args:
        quiet: keep TensorFlow's C++ start-up lines and library log chatter off the terminal.
        one_audit: this process runs one audit and exits (the console command), not a caller
            that lives on: TensorFlow loads without the libraries Keras would load for
            features a run does not use (``optional_libraries_deferred``), and everything
            imported moves to the collector's permanent generation (``gc.freeze``), so later
            collections in this process skip it.
    """
    from pipeline.launch import quiet as quiet_logs

    deferred = optional_libraries_deferred() if one_audit else contextlib.nullcontext()
    with collector_paused(one_audit):
        with deferred:
            if quiet:
                quiet_logs.import_tensorflow_quietly()
            else:
                import tensorflow  # noqa: F401
        if quiet:
            quiet_logs.quiet_loggers()
        import apache_beam  # noqa: F401

        import pipeline.launch.preflight  # noqa: F401
        import pipeline.stages.build  # noqa: F401


@contextlib.contextmanager
def collector_paused(freeze=False):
    """The cyclic garbage collector off inside (imports); ``freeze``: ``gc.freeze()`` at the
    end."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()
