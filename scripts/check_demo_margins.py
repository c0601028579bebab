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
measurements are always taken again. Each config's figures go to <workdir>/<config>/values.json.
"""

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

NO_MARK = "no-mark"  # the control model's seed label


def _config_name(kernel, seed):
    return f"onednn-{kernel}/seed-{seed}"


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
    from pipeline import quiet

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


def _measure(workdir, kernel, seed):
    """Runs the worker for one config in a subprocess with that kernel setting."""
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1" if kernel == "on" else "0",
               TF_CPP_MIN_LOG_LEVEL="2")
    folder = os.path.join(workdir, _config_name(kernel, seed))
    start = time.perf_counter()
    result = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", str(seed),
                             "--workdir", folder], cwd=REPO, env=env, capture_output=True,
                            text=True)
    if result.returncode:
        raise SystemExit(f"{_config_name(kernel, seed)} failed:\n{result.stderr[-3000:]}")
    with open(os.path.join(folder, "values.json")) as handle:
        values = json.load(handle)
    print(f"{_config_name(kernel, seed)}: {time.perf_counter() - start:.0f} s "
          f"({values['timing']})", flush=True)
    return values


def _tests():
    from tests.e2e import demo_checks

    return (("test_demo_model_relies_on_the_planted_mark", demo_checks.RELIANCE_BOUNDS),
            ("test_report_opens_with_the_marked_squares", demo_checks.REPORT_BOUNDS),
            ("test_aggregates_locate_the_mark_for_the_marked_class_only",
             demo_checks.AGGREGATE_BOUNDS))


def print_margins(measured, part="mark"):
    """One table per test: each bound's value per config, and its smallest margin."""
    names = list(measured)
    short = [name.replace("onednn-", "").replace("/seed-", "/s") for name in names]
    for test, bounds in _tests():
        print(f"\n{test}")
        print(f"  {'bound':<44}" + "".join(f"{s:>9}" for s in short) + "  least margin")
        for bound in bounds:
            row = [measured[name][part][bound.quantity] for name in names]
            margins = [bound.margin(v) for v in row]
            least = min(margins, key=lambda m: (m == m, m))  # NaN first: it fails
            flag = "" if all(bound.holds(v) for v in row) else "  FAILS"
            print(f"  {str(bound):<44}" + "".join(f"{v:>9.4g}" for v in row)
                  + f"  {least:.4g}{flag}")
    print("\ntest_sanity_check_runs_on_the_demo (informative: the verdict follows the number)")
    for quantity in ("verdict_spearman", "distance_to_band_edge"):
        print(f"  {quantity:<44}" + "".join(
            f"{measured[name]['mark'][quantity]:>9.4g}" for name in names))
    other = [q for q in measured[names[0]][part] if q not in
             {b.quantity for _, bounds in _tests() for b in bounds}
             and q not in ("verdict_spearman", "distance_to_band_edge")]
    print("\nother quantities measured (no bound)")
    for quantity in other:
        print(f"  {quantity:<44}" + "".join(
            f"{measured[name][part].get(quantity, float('nan')):>9.4g}" for name in names))


def print_controls(measured, controls):
    """Which bounds each negative control fails (each test must fail on every control)."""
    print("\nnegative controls: the bounds each one fails (every test must fail on each)")
    cases = [(f"{name} at the mirrored corner", measured[name]["mirrored"]) for name in measured]
    cases += [(f"{name} (model trained without a mark)", values["mark"])
              for name, values in controls.items()]
    for label, values in cases:
        print(f"  {label}")
        for test, bounds in _tests():
            failed = [str(b) for b in bounds if b.quantity in values
                      and not b.holds(values[b.quantity])]
            print(f"    {test}: {'; '.join(failed) if failed else 'NOTHING FAILS'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--kernels", nargs="+", choices=["on", "off"], default=["on", "off"])
    parser.add_argument("--workdir", default=os.path.join(REPO, ".cache", "demo-margins"))
    parser.add_argument("--controls", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.workdir, args.worker)
        return
    workdir = os.path.abspath(args.workdir)
    measured = {_config_name(kernel, seed): _measure(workdir, kernel, seed)
                for kernel in args.kernels for seed in args.seeds}
    controls = {_config_name("on", NO_MARK): _measure(workdir, "on", NO_MARK)} if (
        args.controls) else {}
    print_margins(measured)
    if args.controls:
        print_controls(measured, controls)


if __name__ == "__main__":
    main()
