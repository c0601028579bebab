"""The launcher's flags, and Beam's PipelineOptions from every flag it does not know.

Light on purpose (argparse only at import): ``--help`` and ``--version`` answer before anything
heavy is imported.
"""

import argparse

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

    from pipeline.launch import local_runner

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


def is_local(options):
    """Whether the options run the job on a local runner (``LOCAL_RUNNERS``)."""
    from apache_beam.options.pipeline_options import StandardOptions

    return options.view_as(StandardOptions).runner in LOCAL_RUNNERS


def load_run_config(args, notes=None):
    """The RunConfig of the parsed flags: ``--config``, then ``--set``/``--sets``, then
    ``--output``; the loader's notes (preset fields dropped) are appended to ``notes``."""
    from pipeline.config import load_config

    overrides = list(args.overrides) + [item.strip() for item in args.sets.split(";")
                                        if item.strip()]
    if args.output:
        overrides.append(f"output.path={args.output}")
    return load_config(args.config, overrides, notes=notes)
