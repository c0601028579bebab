"""Where a local run's fixed cost goes: one `python -m pipeline` run, timed part by part.

Usage:  .venv/bin/python scripts/startup_profile.py [--images 64] [--workdir DIR] [--set K=V ...]

Runs the bench's setup (scripts/bench.py: 128 px reference model, JPEG TFRecords, batch 32,
sanity off, findings and report on) in a child process whose launcher functions and Beam runner
stages are wrapped with timers (findings' clustering and occlusion, the report's imports and
figures among them), and prints one line per part (seconds from process start, and
duration), then the same parts as JSON. The parent measures the whole wall time, so the
interpreter's exit is a part too. Stage names are shortened to their first transform.
"""

import argparse
import functools
import importlib.abc
import importlib.util
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = "STARTUP_PROFILE "


def _child(argv):
    started = float(os.environ["STARTUP_PROFILE_SPAWNED"])  # the parent's clock at spawn
    sys.path.insert(0, REPO)
    import gc

    import pipeline.cli as cli
    from pipeline.launch import warmup

    parts = []
    stages = []

    def now():
        return time.time() - started

    def wrapped(owner, name, record):
        """Replaces ``owner.name`` with a wrapper that calls ``record(start, stop)`` after
        each call."""
        function = getattr(owner, name)

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            start = now()
            try:
                return function(*args, **kwargs)
            finally:
                record(start, now())

        setattr(owner, name, wrapper)

    def timed(owner, name, label):
        wrapped(owner, name, lambda start, stop: parts.append((label, start, stop)))

    def summed(owner, name, label):
        """Like ``timed``, for a function called many times: one part from its first start
        lasting the sum of its calls."""
        part = [label, None, None]  # stop = first start + the calls' total

        def record(start, stop):
            if part[1] is None:
                part[1] = part[2] = start
                parts.append(part)
            part[2] += stop - start

        wrapped(owner, name, record)

    def install():
        import apache_beam as beam
        from apache_beam.runners.portability.fn_api_runner import fn_runner

        import gbp_ops
        import gbp_ops.explainer
        import pipeline.explainers
        import pipeline.findings.analysis
        import pipeline.findings.clustering
        import pipeline.launch.preflight
        import pipeline.launch.scaling_check
        import pipeline.outputs.manifest
        import pipeline.stages.build
        import pipeline.stages.model_handler

        preflight = pipeline.launch.preflight
        scaling = pipeline.launch.scaling_check
        timed(preflight, "preflight", "preflight (config checks, model, explainer)")
        timed(preflight, "_check_input", "  input: readable, keys of the first records")
        timed(pipeline.explainers, "load_configured_model", "  model load")
        timed(pipeline.explainers, "explainer_for_model", "  guided clone + explainer")
        timed(preflight, "_check_contract", "  contract: class names, channels, scaling check")
        timed(scaling, "labelled_sample", "    scaling check: first records read + prepared")
        timed(scaling, "measure", "    scaling check: forward passes")
        timed(gbp_ops.explainer.GuidedBackprop, "_predict_fn", "    forward step trace (Python)")
        timed(preflight, "_check_output", "  output writable")
        timed(gbp_ops, "model_sha256", "  model file sha256")
        timed(pipeline.outputs.manifest, "base_fields", "  manifest base fields")
        timed(gbp_ops.explainer.GuidedBackprop, "_step_fn", "GBP step trace (Python)")
        findings = pipeline.findings.analysis
        summed(findings, "analyse_class", "  findings: the classes' clusters and occlusion")
        summed(pipeline.findings.clustering, "cluster_maps",
               "    clustering (scikit-learn and scipy imported on first use)")
        summed(findings, "flip_rate", "    occlusion: forward passes")
        timed(pipeline.stages.build, "build_pipeline", "build_pipeline")
        timed(beam.Pipeline, "to_runner_api", "Beam: pipeline to runner API")
        timed(fn_runner.FnApiRunner, "run_stages", "Beam: run all stages")
        handler = pipeline.stages.model_handler.GuidedBackpropModelHandler
        first = handler.run_inference
        seen = []

        def run_inference(self, *args, **kwargs):
            start = now()
            try:
                return first(self, *args, **kwargs)
            finally:
                if not seen:
                    seen.append(True)
                    parts.append(("first batch (run_inference)", start, now()))

        handler.run_inference = run_inference
        execute = fn_runner.FnApiRunner._execute_bundle

        def execute_bundle(self, context, bundle_manager, bundle_input):
            start = now()
            try:
                return execute(self, context, bundle_manager, bundle_input)
            finally:
                first = bundle_manager.stage.name.lstrip("(").split(")")[0]
                stages.append((first.replace("ref_AppliedPTransform_", "")[:60], start, now()))

        fn_runner.FnApiRunner._execute_bundle = execute_bundle

    imports = warmup.import_run_modules

    def import_run_modules(*args, **kwargs):
        start = now()
        imports(*args, **kwargs)
        parts.append(("imports (TensorFlow, Keras, Beam, pipeline)", start, now()))
        install()

    warmup.import_run_modules = import_run_modules
    class ReportTimer(importlib.abc.MetaPathFinder):
        """Times ``pipeline.report``'s import (matplotlib, pyarrow.dataset) and wraps its
        ``write_report`` before the launcher takes the name."""

        def find_spec(self, fullname, path=None, target=None):
            if fullname != "pipeline.report":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(fullname)
            execute = spec.loader.exec_module

            def exec_module(module):
                start = now()
                execute(module)
                parts.append(("  report.html: imports (matplotlib, readers)", start, now()))
                timed(module, "write_report", "  report.html: reading, figures, PNGs")

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, ReportTimer())
    parts.append(("process start (interpreter, launcher module)", 0.0, now()))
    sys.argv = ["pipeline", *argv]
    code = cli.main(one_audit=True)
    stages_end = max(stop for label, _, stop in parts if label == "Beam: run all stages")
    parts.append(("after the job: manifest read, report.html (imports + figures), summary",
                  stages_end, now()))
    print(MARK + json.dumps({"parts": parts, "stages": stages}), flush=True)
    gc.freeze()
    sys.exit(code)


def main():
    if sys.argv[1:2] == ["--child"]:
        return _child(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--workdir", default=os.path.join(REPO, ".cache", "bench"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    from bench import BATCH, build_assets

    pattern, model_path = build_assets(args.workdir, args.images)
    output = os.path.join(args.workdir, f"startup-{args.images}")
    argv = ["--config", os.path.join(REPO, "configs/demo.yaml"),
            "--set", f"source.pattern={pattern}", "--set", f"model.path={model_path}",
            "--set", "source.box_key=null", "--set", f"explain.batch_size={BATCH}",
            "--set", "sanity.enabled=false", "--output", output,
            *[x for o in args.overrides for x in ("--set", o)]]
    start = time.time()
    env = dict(os.environ, STARTUP_PROFILE_SPAWNED=repr(start))
    done = subprocess.run([sys.executable, __file__, "--child", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True)
    wall = time.time() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode or not lines:
        sys.stderr.write(done.stderr[-3000:])
        sys.exit(f"the run failed (exit code {done.returncode})")
    found = json.loads(lines[-1][len(MARK):])
    parts = [tuple(part) for part in found["parts"]]
    end = max(stop for _, _, stop in parts)
    parts.append(("interpreter exit", end, wall))
    stages = found["stages"]
    slow = [stage for stage in stages if stage[2] - stage[1] >= 0.3]
    quick = [stage for stage in stages if stage[2] - stage[1] < 0.3]
    for name, begin, stop in slow:
        parts.append((f"  stage {name}", begin, stop))
    if quick:
        parts.append((f"  {len(quick)} other stages (sum)", quick[0][1],
                      quick[0][1] + sum(stop - begin for _, begin, stop in quick)))
    timing = [line.split("gbp-audit: ", 1)[-1] for line in done.stdout.splitlines()
              if "before the first batch" in line]
    print(f"{args.images} images, wall {wall:.2f} s (one run)")
    if timing:  # the run's own timing line: the bench's outside-the-batches figure
        print(f"the run's timing line: {timing[-1]}")
    for label, begin, stop in sorted(parts, key=lambda part: part[1]):
        print(f"{begin:7.2f} s  {stop - begin:6.2f} s  {label}")
    print(json.dumps({"images": args.images, "wall_seconds": round(wall, 2),
                      "timing_line": timing[-1] if timing else None,
                      "parts": {label.strip(): round(stop - begin, 2)
                                for label, begin, stop in parts}}))


if __name__ == "__main__":
    main()
