"""Checks the demo tests' thresholds over training seeds and TensorFlow kernels.

The demo model is trained in code on every clean machine, and TensorFlow's kernels round
differently on each CPU, so its figures differ from host to host. For every training seed and
with oneDNN's kernels on and off (TF_ENABLE_ONEDNN_OPTS=0 stands in for another CPU), this
builds the demo assets (the demo's own data, the model trained with that seed), runs the demo
job on them, and measures what each test of tests/e2e/test_demo_script.py asserts
(tests/e2e/demo_checks.py). It prints, per test, each quantity's value on every config, the
threshold and the smallest margin.

Usage (from the repository root; each config trains a model and runs the job, a few minutes):
    python scripts/check_demo_margins.py [--seeds 0 1 2 3 4] [--kernels on off]
        [--workdir .cache/demo-margins] [--controls]

--controls adds the negative controls that the tests must fail: a model trained on the same
kind of images without any mark (oneDNN on, seed 0), and every config measured at the mirrored
corner instead of the mark. Assets and runs are cached in --workdir (delete it to start over);
measurements are taken again unless --saved. Each config's figures go to
<workdir>/<config>/values.json.
"""

import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

NO_MARK = "no-mark"  # the control model's seed label


def _run_job(model_path, pattern, output):
    """Runs the demo job (configs/demo.yaml) on a model; returns its seconds."""
    if os.path.exists(os.path.join(output, "manifest.json")):
        return 0.0
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "--config", "configs/demo.yaml",
         "--set", f"model.path={model_path}", "--set", f"source.pattern={pattern}",
         "--output", output], cwd=REPO, capture_output=True, text=True)
    with open(output + ".stdout", "w") as handle:
        handle.write(result.stdout)
    if result.returncode:
        raise SystemExit(f"the demo job failed on {model_path}:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def _control_assets(folder):
    """The demo's data, and a demo-architecture model trained on shapes without any mark (nor
    faint shape): ``(tfrecord pattern, model path)``."""
    from demo import assets
    from tests.e2e import demo_checks

    data = os.path.join(folder, "data")
    if not os.path.isdir(data):
        assets.write_tfrecord_shards(demo_checks.demo_arrays(), data)
    path = os.path.join(folder, "model.keras")
    if not os.path.exists(path):
        arrays = assets.synthesize_shapes(1024, image_size=64, seed=0, shortcut_fraction=0.0)
        assets.train_demo_model(arrays, input_size=64, seed=0).save(path)
    return os.path.join(data, "shapes-*.tfrecord"), path


def worker(folder, seed):
    """Builds, runs and measures one config (in this process's TF_ENABLE_ONEDNN_OPTS)."""
    from pipeline.launch import quiet

    quiet.import_tensorflow_quietly()
    import keras

    from demo.assets import build_demo_assets
    from tests.e2e import demo_checks

    os.makedirs(folder, exist_ok=True)
    start = time.perf_counter()
    if seed == NO_MARK:
        pattern, model_path = _control_assets(folder)
    else:
        built = build_demo_assets(os.path.join(folder, "assets"), model_seed=int(seed))
        pattern, model_path = built.tfrecord_pattern, built.model_path
    build_seconds = time.perf_counter() - start
    output = os.path.join(folder, "out")
    run_seconds = _run_job(model_path, pattern, output)

    arrays = demo_checks.demo_arrays()
    values = {"mark": {}, "mirrored": {}}
    values["mark"].update(demo_checks.mark_reliance(keras.models.load_model(model_path)))
    for name, box in (("mark", demo_checks.demo_assets.MARK_BOX),
                      ("mirrored", demo_checks.MIRRORED_BOX)):
        values[name].update(demo_checks.report_findings(output, arrays, box))
        values[name].update(demo_checks.aggregates(output, arrays, box))
    values["mark"].update(demo_checks.sanity(output))
    with open(os.path.join(output + ".stdout")) as handle:
        stdout = handle.read()
    values["timing"] = {"build_seconds": round(build_seconds, 1),
                        "run_seconds": round(run_seconds, 1),
                        "stdout_counts_ok": "1024 inputs -> 1024 saliency rows + 0 dead letters"
                        in stdout}
    with open(os.path.join(folder, "values.json"), "w") as handle:
        json.dump(values, handle, indent=1)


def _measure(workdir, kernel, seed, again=True):
    """One configuration's figures (``margins.measure_config``), with its time printed."""
    from tests.e2e.margins import measure_config

    start = time.perf_counter()
    name, values = measure_config(__file__, workdir, kernel, seed, again=again)
    print(f"{name}: {time.perf_counter() - start:.0f} s ({values['timing']})", flush=True)
    return values


def tests():
    """``(test, part, bounds)`` of the demo tests whose figures depend on the trained model; the
    bounds are the tests' own (tests/e2e/test_demo_script.py)."""
    from tests.e2e import test_demo_script as demo_tests

    return (("test_demo_model_relies_on_the_planted_mark", "mark", demo_tests.RELIANCE_BOUNDS),
            ("test_report_opens_with_the_marked_squares", "mark", demo_tests.REPORT_BOUNDS),
            ("test_aggregates_locate_the_mark_for_the_marked_class_only", "mark",
             demo_tests.AGGREGATE_BOUNDS))


def _print_other(measured):
    """The quantities no bound reads, and the sanity verdict's number (informative)."""
    bound = {b.quantity for _, _, bounds in tests() for b in bounds}
    print("\ntest_sanity_check_runs_on_the_demo (informative: the test derives the verdict's "
          "wording from the number, so any value passes) and quantities no bound reads")
    first = next(iter(measured.values()))["mark"]
    for quantity in (q for q in first if q not in bound):
        print(f"  {quantity:<42}" + "".join(
            f"{values['mark'].get(quantity, float('nan')):>9.4g}" for values in measured.values()))
    print("  job output counts 1024 rows, 0 dead letters: "
          + ", ".join(str(v["timing"]["stdout_counts_ok"]) for v in measured.values()))


def main():
    from tests.e2e.margins import script_parser

    # the worker's seed may be NO_MARK, so it stays a string
    parser = script_parser(__doc__.split("\n\n")[0], "demo-margins", worker_type=str)
    parser.add_argument("--controls", action="store_true")
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.workdir, args.worker)
        return
    from pipeline.launch import quiet

    quiet.import_tensorflow_quietly()  # the test module's imports load TensorFlow
    from tests.e2e import margins

    workdir = os.path.abspath(args.workdir)
    measured = {margins.config_name(kernel, seed): _measure(workdir, kernel, seed, not args.saved)
                for kernel in args.kernels for seed in args.seeds}
    margins.print_margins(measured, tests())
    _print_other(measured)
    if args.controls:
        name = margins.config_name("on", NO_MARK)
        control = _measure(workdir, "on", NO_MARK, not args.saved)
        print("\nnegative controls: the bounds each one fails (each test must fail on each)")
        cases = [(f"{name} at the mirrored corner", {"mark": values["mirrored"]})
                 for name, values in measured.items()]
        cases.append((f"{name}: a model trained without a mark", {"mark": control["mark"]}))
        margins.print_failures(cases, tests())


if __name__ == "__main__":
    main()
