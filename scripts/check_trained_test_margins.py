"""Checks the thresholds of the other tests that train a model, over training seeds and kernels.

Two tests train models besides the demo's (scripts/check_demo_margins.py) and the findings'
(scripts/check_findings_margins.py):

- tests/e2e/test_compare.py trains a model that learns a planted shortcut and one retrained
  without it, runs them and compares the runs (tests/e2e/compare_checks.py);
- tests/pipeline/launch/test_contract.py trains a small CNN on [-1, 1] inputs and checks that
  preflight refuses the wrong input scaling (tests/pipeline/launch/scaling_checks.py).

For every training seed and with oneDNN's kernels on and off (TF_ENABLE_ONEDNN_OPTS=0 stands in
for another CPU), this trains the models as the tests do (the tests' data; the shortcut and the
scaling model with that seed, the retrained one with the seed + 1, so seed 0 is the suite's
own), runs the same jobs and measures what each test asserts. It prints, per test, each
quantity's value on every config, the threshold and the smallest margin, then the bounds that
the negative controls fail: for the comparison, the reverse comparison read as the resolved
one (and the forward one as the reverse), with the two models swapped; for the scaling check,
an untrained model and a model trained on [0, 1] inputs.

Usage (from the repository root; about two minutes per config, most of it the comparison):
    python scripts/check_trained_test_margins.py [--seeds 0 1 2 3 4] [--kernels on off]
        [--tests compare scaling] [--workdir .cache/trained-test-margins] [--saved]

Each config's figures go to <workdir>/<config>/values.json; --saved prints those instead of
measuring again.
"""

import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def _compare(folder, seed):
    """Trains both models, runs the shortcut model, the clean one compared with it, and the
    reverse comparison; returns the comparison tests' figures and their negative controls."""
    from pipeline import cli
    from tests.e2e import compare_checks

    root = Path(folder) / "compare"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    arrays = compare_checks.build(root, shortcut_model_seed=seed, clean_model_seed=seed + 1)
    resolve_code = cli.main(compare_checks.resolve_argv(root))
    reverse_code = cli.main(compare_checks.reverse_argv(root))
    rates = compare_checks.marked_flip_rates(root, arrays)
    return {
        "resolved": compare_checks.resolved(root / "clean", resolve_code),
        "marked_flip": rates,
        "new_finding": compare_checks.new_finding(root / "reverse", reverse_code),
        "control_resolved": compare_checks.resolved(root / "reverse", reverse_code),
        "control_marked_flip": {"shortcut": rates["clean"], "clean": rates["shortcut"]},
        "control_new_finding": compare_checks.new_finding(root / "clean", resolve_code),
    }


def _scaling(folder, seed):
    """Trains the [-1, 1] model (and the two controls) and measures the scaling test on each."""
    from tests.pipeline.launch import scaling_checks as checks

    root = Path(folder) / "scaling"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    images, labels = checks.dark_bright(80, seed=checks.CHECK_DATA_SEED)
    pattern = checks.write_records(root / "labelled.tfrecord", images, labels)
    figures = {}
    for name, options in (("scaling", {}), ("control_untrained", {"epochs": 0}),
                          ("control_unit_trained", {"scale": lambda pixels: pixels / 255.0})):
        path = root / f"{name}.keras"
        model = checks.trained_model(path, seed=seed, **options)
        figures[name] = checks.scaling_figures(model, path, images, labels, pattern,
                                               root / "out")
    return figures


def worker(folder, seed, parts):
    """Trains, runs and measures one config (in this process's TF_ENABLE_ONEDNN_OPTS)."""
    from pipeline.launch import quiet

    quiet.import_tensorflow_quietly()
    os.makedirs(folder, exist_ok=True)
    values, timing = {}, {}
    for part, measure in (("compare", _compare), ("scaling", _scaling)):
        if part in parts:
            start = time.perf_counter()
            values.update(measure(folder, seed))
            timing[part] = round(time.perf_counter() - start, 1)
    values["timing"] = timing
    with open(os.path.join(folder, "values.json"), "w") as handle:
        json.dump(values, handle, indent=1)


def _measure(workdir, kernel, seed, parts, again=True):
    """One configuration's figures (``margins.measure_config``), with its parts' times printed."""
    from tests.e2e.margins import measure_config

    name, values = measure_config(__file__, workdir, kernel, seed, ["--tests", *parts], again)
    print(f"{name}: " + ", ".join(f"{part} {seconds:.0f} s"
                                  for part, seconds in values["timing"].items()), flush=True)
    return name, values


def tests(parts):
    """``(test, part, bounds)`` of every test on a trained model; the bounds are the tests'
    own."""
    found = []
    if "compare" in parts:
        from tests.e2e import test_compare as compare

        resolved = "test_retraining_without_the_shortcut_resolves_the_finding"
        found += [(resolved, "resolved", compare.RESOLVED_BOUNDS),
                  (f"{resolved} (Keras)", "marked_flip", compare.MARKED_FLIP_BOUNDS),
                  ("test_the_reverse_is_a_new_finding_and_exits_3_after_writing_everything",
                   "new_finding", compare.NEW_FINDING_BOUNDS)]
    if "scaling" in parts:
        from tests.pipeline.launch import test_contract as contract

        found.append(("test_the_wrong_scaling_fails_with_both_accuracies_and_the_right_one_"
                      "passes", "scaling", contract.SCALING_BOUNDS))
    return found


def _controls(measured, parts):
    """``(label, {part: figures})`` of the negative controls, each read as the tests read the
    part it stands in for."""
    cases = []
    for name, values in measured.items():
        if "compare" in parts:
            cases.append((f"{name}: the reverse comparison as the resolved one (models "
                          "swapped), the forward one as the reverse", {
                              "resolved": values["control_resolved"],
                              "marked_flip": values["control_marked_flip"],
                              "new_finding": values["control_new_finding"]}))
        if "scaling" in parts:
            for control in ("control_untrained", "control_unit_trained"):
                cases.append((f"{name}: {control[len('control_'):]} model",
                              {"scaling": values[control]}))
    return cases


def main():
    from tests.e2e.margins import script_parser

    parser = script_parser(__doc__.split("\n\n")[0], "trained-test-margins")
    parser.add_argument("--tests", nargs="+", choices=["compare", "scaling"],
                        default=["compare", "scaling"])
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.workdir, args.worker, args.tests)
        return
    from pipeline.launch import quiet

    quiet.import_tensorflow_quietly()  # the test modules' imports load TensorFlow
    from tests.e2e import margins

    workdir = os.path.abspath(args.workdir)
    measured = dict(_measure(workdir, kernel, seed, args.tests, not args.saved)
                    for kernel in args.kernels for seed in args.seeds)
    margins.print_margins(measured, tests(args.tests))
    if "scaling" in args.tests:
        print("\nscaling check: unit's distance from the refusal rule (informative; "
              "MIN_GAIN 0.15, MIN_Z 3.0)")
        for quantity in ("unit_gain", "unit_z"):
            print(f"  {quantity} " + "  ".join(f"{v['scaling'][quantity]:.3g}"
                                               for v in measured.values()))
    print("\nnegative controls: the bounds each one fails")
    margins.print_failures(_controls(measured, args.tests), tests(args.tests))


if __name__ == "__main__":
    main()
