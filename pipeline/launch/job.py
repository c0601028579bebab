"""One audit, start to end: config and preflight, the Beam job (with tracing ahead and the
progress line on local runners), then the report from the published outputs.

Light at import (the heavy modules load inside ``run``), so ``pipeline.cli`` can import it
before ``--help`` is answered.
"""

import os
import shutil
import sys
import tempfile
import time

from pipeline.launch.options import beam_options, is_local, load_run_config, parse_args

# Fields ``run`` adds to the returned manifest that ``manifest.json`` does not hold.
LAUNCHER_FIELDS = ("report", "timing")


def run(argv=None, launched=None):
    """Runs an audit; returns the manifest dict (raises on errors), plus the
    ``LAUNCHER_FIELDS``, which are not in ``manifest.json``: ``report`` (its path) and, when
    the runner reports metrics, ``timing`` (``pipeline.outputs.summary.timing_fields``) counted
    from ``launched`` (unix seconds; default: now).
    """
    launched = time.time() if launched is None else launched
    import apache_beam as beam

    from pipeline.launch import warmup
    from pipeline.launch.preflight import preflight
    from pipeline.outputs import manifest, summary
    from pipeline.stages.build import build_pipeline

    args, beam_args = parse_args(sys.argv[1:] if argv is None else argv)
    start = time.time()
    notes = []
    config = load_run_config(args, notes)
    plan = preflight(config, notes=notes)
    if config.compare.baseline:  # refused here, before any work, when the maps differ
        from pipeline.compare.compatibility import check, read_run

        check(read_run(config.compare.baseline), plan.manifest_base, config.compare.baseline)
    for note in plan.notes:
        print(f"gbp-audit: {note}", file=sys.stderr)
    if config.explain.worker_intra_op_threads:
        # Spawned local worker processes read this when TF starts in them.
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(config.explain.worker_intra_op_threads)
    options = beam_options(beam_args)
    if _explains_in_this_process(options):
        warmup.start_in_background(plan.config)  # explain.precision auto settled
    reporter, progress_dir = _local_progress(config, options)
    try:
        with beam.Pipeline(options=options) as p:
            build_pipeline(p, plan, start_time=start, progress_dir=progress_dir)
        window = summary.batch_window(p.result)
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
        with warmup.collector_paused():  # pandas, pyarrow.dataset and matplotlib load here
            from pipeline.report import write_report

        published["report"] = write_report(config.output.path,
                                           top_n=config.output.report_top_n)
    if published and window:
        published["timing"] = summary.timing_fields(window, launched, time.time())
    return published or None


def _explains_in_this_process(options):
    """Whether the runner explains with this process's explainer (a local runner that is not
    ``multi_processing``), which preflight has built already."""
    from apache_beam.options.pipeline_options import DirectOptions

    return (is_local(options)
            and options.view_as(DirectOptions).direct_running_mode != "multi_processing")


def _local_progress(config, options):
    """A started ProgressReporter and its folder for local runners, else ``(None, None)``."""
    from pipeline.launch.progress import ProgressReporter
    from pipeline.stages.read import ReadSource

    if not is_local(options):
        return None, None
    from pipeline.outputs.summary import after_last_batch

    total, total_source = ReadSource(config.source).expected_total()
    folder = tempfile.mkdtemp(prefix="gbp-progress-")
    after = after_last_batch({"config": config.to_dict(), "report": config.output.report})
    return ProgressReporter(folder, total, total_source, after=after).start(), folder
