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
from pipeline.launch.exit_codes import EXIT_FAIL_ON, EXIT_RUN_FAILED, EXIT_USAGE
from pipeline.launch.job import run
from pipeline.launch.options import parse_args
from pipeline.outputs.summary import summary

__all__ = ["EXIT_FAIL_ON", "EXIT_RUN_FAILED", "EXIT_USAGE", "console_main", "main", "run",
           "summary"]



def main(argv=None, one_audit=False):
    """Entry point; returns the process exit code.

    ``one_audit``: see ``pipeline.launch.warmup.import_run_modules`` (True only from
    ``console_main``)."""
    launched = time.time()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:  # gbp-audit compare BASELINE CURRENT --output DIR
        from pipeline.compare.command import main as compare_main

        return compare_main(argv[1:], one_audit=one_audit)
    debug = "--debug" in argv
    if any(flag in argv for flag in ("--version", "-h", "--help")):
        parse_args(argv)  # prints and exits before anything heavy is imported
    warmup.import_run_modules(quiet="--verbose" not in argv, one_audit=one_audit)
    from gbp_ops import GBPError
    from pipeline.compare.compatibility import CompareError
    from pipeline.config import ConfigError
    from pipeline.launch.preflight import PreflightError

    try:
        manifest = run(argv, launched=launched)
    except (ConfigError, PreflightError, GBPError, CompareError) as error:
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
    if not manifest["counts"]["reconciled"]:
        return EXIT_RUN_FAILED
    if manifest.get("comparison"):
        from pipeline.compare.outcome import failure_line

        line = failure_line(manifest["comparison"])
        if line:
            print(line, file=sys.stderr)
            return EXIT_FAIL_ON
    return 0


def console_main():
    """The ``gbp-audit`` console command (and ``python -m pipeline``): one audit per process.

    Before the interpreter exits, every live object is frozen (``gc.freeze``): the final
    collection at shutdown would otherwise walk TensorFlow's and Keras' objects once more (about
    2 s), only to free memory the process is about to return anyway. Exit handlers still run.
    """
    code = main(one_audit=True)
    gc.freeze()
    sys.exit(code)
