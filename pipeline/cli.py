"""``gbp-audit`` (or ``python -m pipeline``): our flags first, every other flag passes to Beam's
PipelineOptions.

Mistakes a user can make (bad config, missing input, unusable model, unwritable output) end
with one line on stderr and exit code 2; ``--debug`` shows the traceback.
"""

import argparse
import contextlib
import gc
import logging
import os
import shutil
import sys
import tempfile
import time

EXIT_USAGE = 2
EXIT_RUN_FAILED = 1
EXIT_FAIL_ON = 3  # a compare.fail_on condition holds (every output written first)
DEFAULT_RUNNER = "FnApiRunner"
LOCAL_RUNNERS = ("FnApiRunner", "DirectRunner", "BundleBasedDirectRunner")
# Two bundles in flight: one thread's decode/statistics/Parquet work overlaps the other's GBP
# step (TF releases the GIL), and the model is shared through Beam's `Shared`.
LOCAL_RUNNING_MODE = "multi_threading"
LOCAL_WORKERS = 2


def parse_args(argv):
    """Splits argv into our options and the pass-through Beam flags."""
    parser = argparse.ArgumentParser(
        prog="gbp-audit",
        description="Audit a dataset with guided-backprop saliency maps; writes Parquet.",
        epilog="Unknown flags (e.g. --runner DataflowRunner --project P) go to Beam.",
    )
    parser.add_argument("--config", help="YAML run preset, e.g. configs/demo.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.FIELD=VALUE", help="override one config field")
    parser.add_argument("--sets", default="", metavar="K=V;K=V",
                        help="several --set overrides in one value, separated by ';' (for "
                             "launchers that pass each parameter once, e.g. Flex Templates)")
    parser.add_argument("--output", help="output directory (same as --set output.path=...)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow, absl and Beam log lines")
    parser.add_argument("--version", action="version", version=f"gbp-audit {version()}")
    return parser.parse_known_args(argv)


def version():
    """The installed gbp-audit version."""
    import importlib.metadata

    try:
        return importlib.metadata.version("gbp-audit")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _has_flag(beam_args, name):
    return any(arg == name or arg.startswith(f"{name}=") for arg in beam_args)


def beam_options(beam_args):
    """PipelineOptions from the pass-through flags.

    The runner defaults to FnApiRunner. Local runs default to ``LOCAL_RUNNING_MODE`` with
    ``LOCAL_WORKERS`` workers; either flag, when given, wins (``in_memory`` keeps one worker).
    """
    from apache_beam.options.pipeline_options import (
        DirectOptions,
        PipelineOptions,
        StandardOptions,
    )

    from pipeline import local_runner

    if not _has_flag(beam_args, "--runner"):
        beam_args = [f"--runner={DEFAULT_RUNNER}", *beam_args]
    if PipelineOptions(beam_args).view_as(StandardOptions).runner not in LOCAL_RUNNERS:
        return PipelineOptions(beam_args)
    if not _has_flag(beam_args, "--direct_running_mode"):
        beam_args = [*beam_args, f"--direct_running_mode={LOCAL_RUNNING_MODE}"]
    mode = PipelineOptions(beam_args).view_as(DirectOptions).direct_running_mode
    if mode == "multi_threading":
        local_runner.disable_timed_flushes()
    if mode != "in_memory" and not _has_flag(beam_args, "--direct_num_workers"):
        beam_args = [*beam_args, f"--direct_num_workers={LOCAL_WORKERS}"]
    return PipelineOptions(beam_args)


def load_run_config(args):
    from pipeline.config import load_config

    overrides = list(args.overrides) + [item.strip() for item in args.sets.split(";")
                                        if item.strip()]
    if args.output:
        overrides.append(f"output.path={args.output}")
    return load_config(args.config, overrides)


# Fields ``run`` adds to the returned manifest that ``manifest.json`` does not hold.
LAUNCHER_FIELDS = ("report", "timing")


def run(argv=None, launched=None):
    """Runs an audit; returns the manifest dict (raises on errors), plus the
    ``LAUNCHER_FIELDS``, which are not in ``manifest.json``: ``report`` (its path) and, when
    the runner reports metrics, ``timing`` (``timing_fields``) counted from ``launched`` (unix
    seconds; default: now).
    """
    launched = time.time() if launched is None else launched
    import apache_beam as beam

    from pipeline import manifest, model_handler
    from pipeline.build import build_pipeline
    from pipeline.preflight import preflight

    args, beam_args = parse_args(sys.argv[1:] if argv is None else argv)
    start = time.time()
    config = load_run_config(args)
    plan = preflight(config)
    if config.compare.baseline:  # refused here, before any work, when the maps differ
        from pipeline.compare.compatibility import check, read_run

        check(read_run(config.compare.baseline), plan.manifest_base, config.compare.baseline)
    if config.explain.worker_intra_op_threads:
        # Spawned local worker processes read this when TF starts in them.
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(config.explain.worker_intra_op_threads)
    options = beam_options(beam_args)
    if _explains_in_this_process(options):
        from pipeline import warmup

        warmup.start_in_background(config)
    reporter, progress_dir = _local_progress(config, options)
    try:
        with beam.Pipeline(options=options) as p:
            build_pipeline(p, plan, start_time=start, progress_dir=progress_dir)
        window = model_handler.batch_window(p.result)
    finally:
        if reporter is not None:
            reporter.stop()
            shutil.rmtree(progress_dir, ignore_errors=True)
    # Empty when the runner has not run the job here (e.g. Dataflow --dry_run).
    published = manifest.read(config.output.path)
    if published and config.compare.baseline:
        from pipeline.compare.run import compare_with_baseline

        published = compare_with_baseline(config, plan.input_shape, options)
    if published and config.output.report:
        with _collector_paused():  # pandas, pyarrow.dataset and matplotlib load here
            from pipeline.report import write_report

        published["report"] = write_report(config.output.path,
                                           top_n=config.output.report_top_n)
    if published and window:
        published["timing"] = timing_fields(window, launched, time.time())
    return published or None


def timing_fields(window, launched, finished):
    """Where a run's wall time went around its batches (seconds, 0.1 s resolution): from the
    launcher's start to the first batch step, the batch steps' span, and from the last step to
    the end (findings, small tables, publishing, the report).

    Args:
        window: ``(first batch started, last batch finished)``, unix seconds
            (``model_handler.batch_window``).
        launched, finished: unix seconds of the launcher's start and of the end.
    """
    first, last = window
    return {"before_first_batch_seconds": round(first - launched, 1),
            "batch_seconds": round(last - first, 1),
            "after_last_batch_seconds": round(finished - last, 1)}


def _explains_in_this_process(options):
    """Whether the runner explains with this process's explainer (a local runner that is not
    ``multi_processing``), which preflight has built already."""
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    return (options.view_as(StandardOptions).runner in LOCAL_RUNNERS
            and options.view_as(DirectOptions).direct_running_mode != "multi_processing")


def _local_progress(config, options):
    """A started ProgressReporter and its folder for local runners, else ``(None, None)``."""
    from apache_beam.options.pipeline_options import StandardOptions

    from pipeline.progress import ProgressReporter
    from pipeline.read import expected_total

    if options.view_as(StandardOptions).runner not in LOCAL_RUNNERS:
        return None, None
    total, total_source = expected_total(config.source)
    folder = tempfile.mkdtemp(prefix="gbp-progress-")
    return ProgressReporter(folder, total, total_source).start(), folder


def summary(manifest):
    """A short human summary of a finished run."""
    counts = manifest["counts"]
    seconds = manifest["wall_time_seconds"]
    rate = counts.get("saliency_rows", 0) / seconds if seconds else 0.0
    stages = ", ".join(f"{key[len('errors_'):]}={value}" for key, value in counts.items()
                       if key.startswith("errors_"))
    lines = [
        f"gbp-audit: {counts['input']} inputs -> {counts.get('saliency_rows', 0)} saliency rows"
        f" + {counts.get('errors', 0)} dead letters" + (f" ({stages})" if stages else ""),
        f"gbp-audit: {seconds:.1f} s wall, {rate:.1f} examples/s; explained "
        f"{manifest['explained_space']} space",
        f"gbp-audit: outputs in {manifest['config']['output']['path']} "
        "(saliency/, stats/, errors/, manifest.json)",
    ]
    if not counts.get("reconciled", False):
        lines.append("gbp-audit: WARNING counts do not reconcile: input != saliency + errors")
    timing = manifest.get("timing")
    if timing:
        lines.append(f"gbp-audit: {timing['before_first_batch_seconds']:.1f} s before the first "
                     f"batch, {timing['batch_seconds']:.1f} s of batches, "
                     f"{timing['after_last_batch_seconds']:.1f} s after the last (findings, "
                     "tables, report)")
    comparison = manifest.get("comparison")
    if comparison:
        lines += [f"gbp-audit: since the baseline: {sentence}"
                  for sentence in comparison["sentences"][:5]]
    if manifest.get("report"):  # last: the line a user copies
        lines.append(f"gbp-audit: report: {manifest['report']}")
    return "\n".join(lines)


def _import_run_modules(quiet, one_audit):
    """Imports TensorFlow (quietly unless ``--verbose``), Beam and the launcher's modules with
    the cyclic garbage collector off: loading them creates about a million objects, and every
    collection while they load walks all of them (a second or two of a local run's start-up).

    Args:
        quiet: keep TensorFlow's C++ start-up lines and library log chatter off the terminal.
        one_audit: this process runs one audit and exits (the console command), not a caller
            that lives on: TensorFlow loads without the libraries Keras would load for
            features a run does not use (``warmup.optional_libraries_deferred``), and
            everything imported moves to the collector's permanent generation
            (``gc.freeze``), so later collections in this process skip it.
    """
    from pipeline import quiet as quiet_logs
    from pipeline import warmup

    deferred = warmup.optional_libraries_deferred() if one_audit else contextlib.nullcontext()
    with _collector_paused(one_audit):
        with deferred:
            if quiet:
                quiet_logs.import_tensorflow_quietly()
            else:
                import tensorflow  # noqa: F401
        if quiet:
            quiet_logs.quiet_loggers()
        import apache_beam  # noqa: F401

        import pipeline.build  # noqa: F401
        import pipeline.preflight  # noqa: F401


@contextlib.contextmanager
def _collector_paused(freeze=False):
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


def main(argv=None, one_audit=False):
    """Entry point; returns the process exit code.

    ``one_audit``: see ``_import_run_modules`` (True only from ``console_main``)."""
    launched = time.time()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:  # gbp-audit compare BASELINE CURRENT --output DIR
        from pipeline.compare.command import main as compare_main

        return compare_main(argv[1:], one_audit=one_audit)
    debug = "--debug" in argv
    if any(flag in argv for flag in ("--version", "-h", "--help")):
        parse_args(argv)  # prints and exits before anything heavy is imported
    _import_run_modules(quiet="--verbose" not in argv, one_audit=one_audit)
    from gbp_ops import GBPError
    from pipeline.compare.compatibility import CompareError
    from pipeline.config import ConfigError
    from pipeline.preflight import PreflightError

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
