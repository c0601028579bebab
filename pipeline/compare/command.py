"""``gbp-audit compare BASELINE CURRENT --output DIR`` (and ``python -m pipeline compare``):
two finished runs compared; DIR gets the comparison tables, a ``manifest.json`` whose
``comparison`` block says what changed, and ``report.html``.

Exit status: 0, or 3 when a ``compare.fail_on`` condition holds (after every output is
written); 2 for a user's mistake (not a run, incompatible runs, a bad setting); 1 when the
comparison pipeline fails.
"""

import argparse
import dataclasses
import sys

from pipeline.launch.exit_codes import EXIT_FAIL_ON, EXIT_RUN_FAILED, EXIT_USAGE


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="gbp-audit compare",
        description="Compare a finished audit run with its baseline; writes Parquet tables, "
                    "manifest.json and report.html into --output.",
        epilog="Unknown flags (e.g. --runner DataflowRunner --project P) go to Beam.")
    parser.add_argument("baseline", help="output folder of the earlier (baseline) run")
    parser.add_argument("current", help="output folder of the later (current) run")
    parser.add_argument("--output", required=True, help="folder for the comparison")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="compare.FIELD=VALUE", help="override one compare field")
    parser.add_argument("--sets", default="", metavar="K=V;K=V",
                        help="several --set overrides in one value, separated by ';'")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow, absl and Beam log lines")
    return parser.parse_known_args(argv)


def compare_settings(args):
    """The CompareConfig from ``--set compare.*`` overrides (other sections do not apply)."""
    from pipeline.config import ConfigError, compare_config_from_dict, parse_override

    values = {}
    for text in list(args.overrides) + [item.strip() for item in args.sets.split(";")
                                        if item.strip()]:
        section, field, value = parse_override(text)
        if section != "compare":
            raise ConfigError(f"override '{text}': gbp-audit compare takes compare.* fields "
                              "only")
        values[field] = value
    values["baseline"] = args.baseline
    return compare_config_from_dict(values)


def run(argv):
    """Runs one comparison; returns the manifest written into ``--output``."""
    from pipeline.compare import compatibility
    from pipeline.compare.report import write_comparison_report
    from pipeline.compare.run import compare_runs
    from pipeline.config import jsonable
    from pipeline.launch.options import beam_options
    from pipeline.outputs import manifest

    args, beam_args = parse_args(argv)
    settings = compare_settings(args)
    if args.output.rstrip("/") in (args.baseline.rstrip("/"), args.current.rstrip("/")):
        raise compatibility.CompareError(
            f"--output {args.output} is one of the compared runs; give a folder of its own "
            "(or set compare.baseline in the later run to compare into its own folder)")
    runs = [compatibility.read_run(folder) for folder in (args.baseline, args.current)]
    compatibility.check(*runs, args.baseline, args.current)
    comparison = compare_runs(args.baseline, args.current, args.output, settings,
                              beam_options(beam_args))
    written = {"kind": "comparison", "versions": manifest.versions(),
               "config": {"compare": jsonable(dataclasses.asdict(settings))},
               "class_names": runs[1].get("class_names", []),
               "map_shape": runs[1]["map_shape"], "comparison": comparison}
    manifest.write(args.output, written)
    written["report"] = write_comparison_report(args.output, runs[1])
    return written


def main(argv, one_audit=False):
    """Entry point of the subcommand; returns the exit status."""
    from pipeline.launch import warmup

    debug = "--debug" in argv
    if any(flag in argv for flag in ("-h", "--help")):
        parse_args(argv)
    warmup.import_run_modules(quiet="--verbose" not in argv, one_audit=one_audit)
    from gbp_ops import GBPError
    from pipeline.compare.compatibility import CompareError
    from pipeline.compare.outcome import failure_line
    from pipeline.config import ConfigError

    try:
        written = run(argv)
    except (ConfigError, CompareError, GBPError) as error:
        if debug:
            raise
        print(f"gbp-audit: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # a failure inside the comparison pipeline
        if debug:
            raise
        message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error)
        print(f"gbp-audit: comparison failed: {message} (rerun with --debug for details)",
              file=sys.stderr)
        return EXIT_RUN_FAILED
    print(summary(written["comparison"]))
    print(f"gbp-audit: report: {written['report']}")
    line = failure_line(written["comparison"])
    if line:
        print(line, file=sys.stderr)
        return EXIT_FAIL_ON
    return 0


def summary(comparison):
    """Short lines: ids, findings by status, and the first sentences."""
    ids, found = comparison["ids"], comparison["findings"]
    lines = [f"gbp-audit: compared {comparison['current']} with baseline "
             f"{comparison['baseline']}: {ids['shared_ids']} shared ids, "
             f"{ids['baseline_only_ids']} only in the baseline, {ids['current_only_ids']} only "
             f"now; model {'changed' if comparison['model_changed'] else 'unchanged'}",
             "gbp-audit: findings: " + ", ".join(f"{count} {status}"
                                                 for status, count in found.items())]
    lines += [f"gbp-audit: {sentence}" for sentence in comparison["sentences"][:5]]
    return "\n".join(lines)
