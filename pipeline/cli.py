"""``gbp-audit`` (or ``python -m pipeline``): parse the flags, run the audit, print the
summary. Our flags first (``pipeline.launch.options``); every other flag passes to Beam's
PipelineOptions.

Mistakes a user can make (bad config, missing input, unusable model, unwritable output) end
with one line on stderr and exit code 2; ``--debug`` shows the traceback.
"""

import gc
import logging
import sys
import time

from pipeline.launch import warmup
from pipeline.launch.job import run
from pipeline.launch.options import parse_args
from pipeline.outputs.summary import summary

__all__ = ["EXIT_RUN_FAILED", "EXIT_USAGE", "console_main", "main", "run", "summary"]

EXIT_USAGE = 2
EXIT_RUN_FAILED = 1


def main(argv=None, one_audit=False):
    """Entry point; returns the process exit code.

    ``one_audit``: see ``pipeline.launch.warmup.import_run_modules`` (True only from
    ``console_main``)."""
    launched = time.time()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    if any(flag in argv for flag in ("--version", "-h", "--help")):
        parse_args(argv)  # prints and exits before anything heavy is imported
    warmup.import_run_modules(quiet="--verbose" not in argv, one_audit=one_audit)
    from gbp_ops import GBPError
    from pipeline.config import ConfigError
    from pipeline.launch.preflight import PreflightError

    try:
        manifest = run(argv, launched=launched)
    except (ConfigError, PreflightError, GBPError) as error:
        if debug:
            raise
        print(f"gbp-audit: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # a failure inside the pipeline
        if debug:
            raise
        message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error)
        print(f"gbp-audit: run failed: {message} (rerun with --debug for details)",
              file=sys.stderr)
        return EXIT_RUN_FAILED
    if manifest is None:
        print("gbp-audit: job submitted; outputs appear when it finishes")
        return 0
    print(summary(manifest))
    return 0 if manifest["counts"]["reconciled"] else EXIT_RUN_FAILED


def console_main():
    """The ``gbp-audit`` console command (and ``python -m pipeline``): one audit per process.

    Before the interpreter exits, every live object is frozen (``gc.freeze``): the final
    collection at shutdown would otherwise walk TensorFlow's and Keras' objects once more (about
    2 s), only to free memory the process is about to return anyway. Exit handlers still run.
    """
    code = main(one_audit=True)
    gc.freeze()
    sys.exit(code)
