"""Checks the findings tests' thresholds over training seeds and TensorFlow kernels.

tests/e2e/test_findings.py trains tiny CNNs on a planted-shortcut dataset
(tests/e2e/findings_data.py) and asserts figures of their findings. For every training seed and
with oneDNN's kernels on and off (TF_ENABLE_ONEDNN_OPTS=0 stands in for another CPU), this
trains the planted and the clean model as the tests do (the tests' data, that training seed),
runs the same jobs, and measures what each test asserts (tests/e2e/findings_checks.py). It
prints, per test, each quantity's value on every config, the threshold and the smallest margin,
then the bounds that the negative controls fail: the planted model's run measured at the mirrored
corner, and measured by the clean-model test.

Usage (from the repository root; about a minute per config):
    python scripts/check_findings_margins.py [--seeds 0 1 2 3 4] [--kernels on off]
        [--workdir .cache/findings-margins]

Models and runs are cached in --workdir (delete it to start over); measurements are taken
again unless --saved. Each config's figures go to <workdir>/<config>/values.json.
"""

import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def _run(folder, name, data, model, *extra):
    from tests.e2e import helpers
    from tests.e2e.test_findings import BASE

    output = os.path.join(folder, name)
    if not os.path.exists(os.path.join(output, "manifest.json")):
        helpers.run_demo_preset(os.path.join(data, "*.tfrecord"), model, output, *BASE, *extra,
                                findings=True)
    return output


def _trained(arrays, folder, name, seed):
    """Writes the data's shards and trains its model once: ``(data folder, model path)``."""
    from tests.e2e import findings_data

    data, model = os.path.join(folder, f"{name}-data"), os.path.join(folder, f"{name}.keras")
    if not os.path.exists(model):
        findings_data.write_shards(arrays, data)
        findings_data.train_model(arrays, model, seed=seed)
    return data, model


def worker(folder, seed):
    """Trains, runs and measures one config (in this process's TF_ENABLE_ONEDNN_OPTS)."""
    from pipeline.launch import quiet

    quiet.import_tensorflow_quietly()
    from tests.e2e import findings_checks as checks
    from tests.e2e import findings_data

    os.makedirs(folder, exist_ok=True)
    start = time.perf_counter()
    planted = findings_data.synthesize(checks.COUNT, marked_share=0.3, seed=checks.PLANTED_SEED)
    data, model = _trained(planted, folder, "planted", seed)
    runs = {name: _run(folder, name, data, model, *extra) for name, extra in (
        ("first", ()), ("second", ()),
        ("bounded", ("findings.sample_per_class=80", "findings.image_sample_per_class=40")))}
    clean = findings_data.synthesize(checks.COUNT, marked_share=0.0, seed=checks.CLEAN_SEED)
    clean_run = _run(folder, "clean", *_trained(clean, folder, "clean", seed))
    values = {name: checks.planted_group(planted, runs[name]) for name in ("first", "bounded")}
    values["mirrored"] = checks.planted_group(planted, runs["first"], checks.MIRRORED_MARK)
    values["determinism"] = {"identical": checks.same_tables(runs["first"], runs["second"])}
    for name in ("first", "bounded"):
        with open(os.path.join(runs[name], "manifest.json")) as handle:
            values[f"agreement_{name}"] = {"assignment_agreement": float(
                json.load(handle)["findings"]["assignment_agreement"])}
    values["report"] = checks.report_opening(runs["first"])
    values["clean"] = checks.clean_model(clean_run)
    values["planted_as_clean"] = checks.clean_model(runs["first"])
    values["timing"] = {"seconds": round(time.perf_counter() - start, 1)}
    with open(os.path.join(folder, "values.json"), "w") as handle:
        json.dump(values, handle, indent=1)


def _measure(workdir, kernel, seed, again=True):
    """One configuration's figures (``margins.measure_config``), with its time printed."""
    from tests.e2e.margins import measure_config

    name, values = measure_config(__file__, workdir, kernel, seed, again=again)
    print(f"{name}: {values['timing']['seconds']:.0f} s", flush=True)
    return name, values


def tests():
    """``(test, part, bounds)`` of every test of tests/e2e/test_findings.py on a trained model;
    the bounds are the tests' own."""
    from tests.e2e import test_findings
    from tests.e2e.margins import Bound

    planted = "test_planted_group_is_found_flagged_and_proved"
    streaming = "test_streaming_assignment_agrees_with_the_clustering"
    agreement = (Bound("assignment_agreement", ">=", test_findings.AGREEMENT),)
    return (
        (f"{planted}[first]", "first", test_findings.PLANTED_BOUNDS),
        (f"{planted}[bounded]", "bounded", test_findings.PLANTED_BOUNDS),
        ("test_two_runs_give_identical_assignments_and_tables", "determinism",
         (Bound("identical", ">=", 1),)),
        (f"{streaming} (first)", "agreement_first", agreement),
        (f"{streaming} (bounded)", "agreement_bounded", agreement),
        ("test_clean_model_has_no_finding", "clean", test_findings.CLEAN_BOUNDS),
        ("test_report_opens_with_the_finding", "report", test_findings.REPORT_BOUNDS),
    )


def main():
    from tests.e2e.margins import script_parser

    args = script_parser(__doc__.split("\n\n")[0], "findings-margins").parse_args()
    if args.worker is not None:
        worker(args.workdir, args.worker)
        return
    from pipeline.launch import quiet

    quiet.import_tensorflow_quietly()  # the test module's imports load TensorFlow
    from tests.e2e import margins

    workdir = os.path.abspath(args.workdir)
    measured = dict(_measure(workdir, kernel, seed, not args.saved) for kernel in args.kernels
                    for seed in args.seeds)
    margins.print_margins(measured, tests())
    print("\nclean model: how far its cluster nearest to a flag stays from the rule (informative)")
    print("  flag_rule_gap " + "  ".join(f"{v['clean']['flag_rule_gap']:.3g}"
                                         for v in measured.values()))
    print("\nnegative controls: the bounds each one fails")
    cases = [(f"{name}: the planted run at the mirrored corner, and by the clean-model test",
              {"first": values["mirrored"], "clean": values["planted_as_clean"]})
             for name, values in measured.items()]
    margins.print_failures(cases, [tests()[0], tests()[5]])


if __name__ == "__main__":
    main()
