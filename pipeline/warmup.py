"""Start-up work a local run takes off its critical path.

Two parts of a local run's fixed cost need not wait in line:

- **Libraries Keras loads but a run never uses.** Keras 3 imports matplotlib.pyplot (for its
  image-gallery plot), scikit-learn (for its scikit-learn wrappers) and, through it, scipy,
  each inside ``try/except ImportError``: about 2.5 s of a 7 s TensorFlow import on a 2-core
  host. ``optional_libraries_deferred`` refuses them while TensorFlow loads, so Keras records
  them as absent (only those plotting helpers and wrappers would notice); they import
  normally afterwards, when findings or the report ask for them.
- **Tracing and the libraries the last stages need.** ``start_in_background`` traces the GBP
  step while the launcher builds the pipeline (the first batch finds it ready), then, while
  the first batches compute (TensorFlow's kernels release the GIL), traces the forward step
  findings' occlusion predicts with and imports scikit-learn, scipy and matplotlib for the
  findings stage and the report.
"""

import contextlib
import importlib
import importlib.abc
import logging
import sys
import threading

# Top-level packages Keras imports only for features a run does not use (checked by
# tests/pipeline/test_warmup.py against the pinned Keras).
KERAS_OPTIONAL_PACKAGES = ("matplotlib", "sklearn", "scipy")
# What the findings stage (pipeline.findings.clustering, .assignment, .regions) imports.
FINDINGS_MODULES = ("scipy.linalg", "scipy.ndimage", "scipy.sparse.csgraph",
                    "scipy.sparse.linalg", "sklearn.cluster", "sklearn.neighbors")
# What the launcher's report imports (matplotlib figures, pandas and pyarrow.dataset).
REPORT_MODULES = ("pipeline.report",)


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
    on) its forward-only step, then imports the modules the findings stage and the report
    load (``FINDINGS_MODULES``, ``REPORT_MODULES``) as the config enables them. A failure is
    logged and left for the stage that needs the step or module to raise. Returns the thread.
    """
    from pipeline import explainers

    explainer = explainers.shared_explainer(config)
    findings = config.findings.enabled
    modules = (FINDINGS_MODULES if findings else ()) + (
        REPORT_MODULES if config.output.report else ())

    def work():
        try:
            explainer.trace(forward=findings)
        except Exception as error:  # the first batch traces again and reports it
            logging.info("gbp-audit: tracing ahead failed (%s)", error)
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as error:  # imported again, and reported, where it is used
                logging.info("gbp-audit: loading %s ahead failed (%s)", name, error)

    thread = threading.Thread(target=work, name="gbp-audit-warmup", daemon=True)
    thread.start()
    return thread
