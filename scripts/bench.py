"""Benchmark: bare GBP kernel vs the whole pipeline vs the eager GradientTape recipe.

Usage:  .venv/bin/python scripts/bench.py [--images 2000] [--workdir DIR] [--beam-args "..."]
                                         [--worker-threads N]

Measured in one invocation, on the reference model (demo/reference_model.py) at 128x128, batch 32:
  1. kernel:   gbp_ops.GuidedBackprop.explain on in-memory batches;
  2. pipeline: `python -m pipeline` on FnApiRunner, TFRecord JPEG shards -> Parquet, on N and
               10xN images: wall-clock throughput at 10xN (start-up included), incremental
               throughput (9N / time difference: start-up excluded), and peak RSS of the run's
               process tree at N and 10xN;
  3. naive:    the recipe from the question's answers (swap layer.activation for a
               tf.custom_gradient ReLU, eager GradientTape).
Prints images/s for each and the ratios pipeline/kernel and pipeline/naive, and the stored
bytes per example for float16, float32 and uint8 maps.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
SIZE, BATCH = 128, 32


def build_assets(workdir, count):
    """JPEG TFRecord shards of `count` 128x128 images and the reference model (random init)."""
    from demo.reference_model import build_reference_model
    from demo.assets import synthesize_shapes, write_tfrecord_shards

    data_dir = os.path.join(workdir, f"data-{count}")
    if not os.path.isdir(data_dir):
        for start in range(0, count, 2000):  # chunks keep the synthesis memory small
            arrays = synthesize_shapes(min(2000, count - start), image_size=SIZE, seed=start)
            arrays["ids"] = np.array([f"img-{start + i:07d}" for i in range(len(arrays["ids"]))])
            write_tfrecord_shards(arrays, os.path.join(data_dir, f"part{start:07d}"),
                                  num_shards=4, image_format="jpeg")
    model_path = os.path.join(workdir, "reference.keras")
    if not os.path.exists(model_path):
        build_reference_model(SIZE, seed=0).save(model_path)
    return os.path.join(data_dir, "part*", "*.tfrecord"), model_path


def kernel_throughput(model, images, repeats=1):
    """images/s of GuidedBackprop.explain on in-memory batches (after one warm-up batch)."""
    from gbp_ops import GuidedBackprop

    explainer = GuidedBackprop(model, batch_size=BATCH)
    explainer.explain(images[:BATCH])
    start = time.perf_counter()
    for _ in range(repeats):
        for index in range(0, len(images), BATCH):
            explainer.explain(images[index:index + BATCH])
    return repeats * len(images) / (time.perf_counter() - start)


def naive_throughput(model, images):
    """images/s of the eager recipe: activation swap + GradientTape (on a clone, to be fair to
    the other measurements; the recipe itself mutates the model)."""
    import keras
    import tensorflow as tf

    @tf.custom_gradient
    def guided_relu(x):
        def grad(dy):
            return tf.cast(dy > 0, "float32") * tf.cast(x > 0, "float32") * dy
        return tf.nn.relu(x), grad

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    for layer in clone.layers:
        if getattr(layer, "activation", None) is keras.activations.relu:
            layer.activation = guided_relu

    def explain(batch):
        inputs = tf.constant(batch)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = clone(inputs)
            scores = tf.reduce_max(outputs, axis=1)
        return tape.gradient(scores, inputs).numpy()

    explain(images[:BATCH])
    start = time.perf_counter()
    for index in range(0, len(images), BATCH):
        explain(images[index:index + BATCH])
    return len(images) / (time.perf_counter() - start)


def _tree_rss(process):
    import psutil

    try:
        root = psutil.Process(process.pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return 0


def run_pipeline(pattern, model_path, output, *overrides, beam_args=(), worker_threads=0):
    """Runs `python -m pipeline` in a subprocess.

    Returns:
        (wall seconds, peak RSS bytes of the process tree, manifest dict).
    """
    argv = [sys.executable, "-m", "pipeline", "--config", os.path.join(REPO, "configs/demo.yaml"),
            "--set", f"source.pattern={pattern}", "--set", f"model.path={model_path}",
            "--set", "source.box_key=null", "--set", f"explain.batch_size={BATCH}",
            "--set", "sanity.enabled=false",
            "--output", output, *[x for o in overrides for x in ("--set", o)], *beam_args]
    peak = [0]
    start = time.perf_counter()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if worker_threads:
        env["TF_NUM_INTRAOP_THREADS"] = str(worker_threads)  # only the pipeline's processes
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env)

    def poll():
        while process.poll() is None:
            peak[0] = max(peak[0], _tree_rss(process))
            time.sleep(0.05)

    watcher = threading.Thread(target=poll)
    watcher.start()
    _, err = process.communicate()
    watcher.join()
    seconds = time.perf_counter() - start
    if process.returncode:
        raise RuntimeError(f"pipeline failed: {err.decode()[-2000:]}")
    with open(os.path.join(output, "manifest.json")) as handle:
        return seconds, peak[0], json.load(handle)


def bytes_per_example(output, rows):
    total = sum(os.path.getsize(os.path.join(root, name))
                for root, _, names in os.walk(os.path.join(output, "saliency")) for name in names)
    return total / rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000,
                        help="N: the pipeline runs on N and on 10xN images")
    parser.add_argument("--kernel-images", type=int, default=1024)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "gbp-bench"))
    parser.add_argument("--beam-args", default="", help="extra Beam flags for pipeline runs")
    parser.add_argument("--worker-threads", type=int, default=0,
                        help="TF intra-op threads per pipeline process (0: TF's default)")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    import gbp_ops
    from demo.assets import synthesize_shapes

    small, model_path = build_assets(args.workdir, args.images)
    large, _ = build_assets(args.workdir, 10 * args.images)
    model = gbp_ops.load_model(model_path)
    images = synthesize_shapes(args.kernel_images, image_size=SIZE, seed=99)["images"]
    images = images.astype(np.float32) / 255.0
    beam_args = args.beam_args.split()
    run_options = {"beam_args": beam_args, "worker_threads": args.worker_threads}

    # This machine's speed drifts: both baselines are timed before and after the pipeline runs.
    kernel_before = kernel_throughput(model, images)
    naive_before = naive_throughput(model, images[:320])
    results = {}
    seconds_n, rss_n, _ = run_pipeline(small, model_path, os.path.join(args.workdir, "out-n"),
                                       **run_options)
    out = os.path.join(args.workdir, "out-10n")
    seconds_10n, rss_10n, manifest = run_pipeline(large, model_path, out, **run_options)
    rows = manifest["counts"]["saliency_rows"]
    results.update(
        pipeline_images=rows, pipeline_seconds=seconds_10n,
        pipeline_images_per_s=rows / seconds_10n,
        # the cost of each extra image, start-up (imports, model build, report) excluded
        pipeline_incremental_images_per_s=9 * args.images / (seconds_10n - seconds_n),
        startup_seconds=seconds_n - args.images * (seconds_10n - seconds_n) / (9 * args.images),
        rss_n_mb=rss_n / 2 ** 20, rss_10n_mb=rss_10n / 2 ** 20, rss_10n_over_n=rss_10n / rss_n,
        bytes_per_example_float16=bytes_per_example(out, rows))
    for dtype in ("float32", "uint8"):
        dtype_out = os.path.join(args.workdir, f"out-{dtype}")
        _, _, manifest = run_pipeline(small, model_path, dtype_out, f"output.map_dtype={dtype}",
                                      "output.report=false", **run_options)
        results[f"bytes_per_example_{dtype}"] = bytes_per_example(
            dtype_out, manifest["counts"]["saliency_rows"])
    kernel_after = kernel_throughput(model, images)
    naive_after = naive_throughput(model, images[:320])
    results.update(kernel_before_images_per_s=kernel_before,
                   kernel_after_images_per_s=kernel_after,
                   kernel_images_per_s=(kernel_before + kernel_after) / 2,
                   naive_before_images_per_s=naive_before,
                   naive_after_images_per_s=naive_after,
                   naive_images_per_s=(naive_before + naive_after) / 2)
    kernel, naive = results["kernel_images_per_s"], results["naive_images_per_s"]
    results.update(
        pipeline_over_kernel=results["pipeline_images_per_s"] / kernel,
        pipeline_incremental_over_kernel=results["pipeline_incremental_images_per_s"] / kernel,
        pipeline_over_naive=results["pipeline_images_per_s"] / naive,
        kernel_over_naive=kernel / naive)
    for key, value in results.items():
        print(f"{key:36s} {value:12.3f}" if isinstance(value, float) else f"{key:36s} {value:12d}")
    print(json.dumps({key: round(value, 4) for key, value in results.items()}))


if __name__ == "__main__":
    main()
