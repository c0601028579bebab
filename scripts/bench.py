"""Benchmark: bare GBP kernel vs the whole pipeline vs the eager GradientTape recipe.

Usage:  .venv/bin/python scripts/bench.py [--images 2000] [--workdir DIR] [--beam-args "..."]
                                         [--worker-threads N] [--large-images 1000] [--large-only]
                                         [--set section.field=value ...]

Measured in one invocation, on the reference model (demo/reference_model.py) at 128x128, batch 32:
  1. kernel:   gbp_ops.GuidedBackprop.explain on in-memory batches;
  2. pipeline: `python -m pipeline` on FnApiRunner, TFRecord JPEG shards -> Parquet, on N and
               10xN images: wall-clock throughput at 10xN (start-up included), incremental
               throughput (9N / time difference: start-up excluded), and peak RSS of the run's
               process tree at N and 10xN (findings on, the default); the 10xN run again with
               findings.enabled=false gives findings_share_10n, the share of the run they add;
               start-up is given twice: startup_seconds estimates it from the two runs (the N
               run's wall minus N times the incremental cost), and outside_batches_seconds_n/10n
               measure it: each run's wall minus the span of its batch steps (the launcher's
               timing line), that is start-up up to the first batch plus the final stages;
  3. naive:    the recipe from the question's answers (swap layer.activation for a
               tf.custom_gradient ReLU, eager GradientTape). The bench stops before timing
               anything if the model has a 1x1 strided convolution, whose eager gradient
               crashed TF 2.21 with oneDNN (`gbp_ops.model_graph.strided_pointwise_convs`).
  2b. bf16:    the 10xN pipeline run again with explain.precision=mixed_bfloat16: images/s and its
               ratio to the float32 run (bf16_over_f32). With --bf16-on-n both are the N runs
               instead (start-up included in both), for hosts where bf16 is emulated and a 10xN
               bf16 run would take most of the bench.
  2d. compare: the 10xN run again with compare.baseline set to the first 10xN run's output
               (the same model and data): compare_share_10n is the comparison's own wall time
               (manifest `comparison.seconds`) as a share of that run's (also given from the
               difference of the two runs' walls, which this machine's drift blurs);
               `gbp-audit compare` of the N and of the 10xN run with themselves gives the
               comparison's peak RSS (process tree) at N and 10xN (compare_rss_10n_over_n).
               --compare-only runs only the N and 10xN audits and this part.
  2c. fidelity: bf16 maps against float32 maps, measured as preflight does
      (pipeline.launch.fidelity:
               mean per-image Spearman and top-5% overlap on the first --fidelity-sample
               records) on two models: the bench's random-init reference model on its data
               (*_random_init), and the trained demo model on the demo data (*_trained; built
               offline in --demo-dir, or reused from there). --fidelity-only runs only this part.
Prints images/s for each and the ratios pipeline/kernel and pipeline/naive, and the stored
bytes per example for float16, float32 and uint8 maps.

Then, on photos from the wild (`large_jpeg_bench`: photo-like 2000x1500 JPEGs audited at 224x224
by the reference model at half width):
  4. decode:   ms per image of decode + preprocess with full decoding, with scaled decoding (the
               default: libjpeg DCT scaling, then resize) and with the code before issue 17 (full
               decoding, float32 at full size, then resize);
  5. kernel and pipeline at 224 px, with scaled and with full decoding: images/s, the ratio
               pipeline/kernel and the peak RSS of the run's process tree.
  6. the CPU limit: large_cpu_bound_images_per_s = cores / (kernel core-s + decode core-s per
               image), where cores is this process's affinity mask (os.sched_getaffinity), the
               kernel's core-seconds per image are the bench process's CPU time
               (time.process_time, every thread) over the kernel loop at 224 px, batch 32,
               divided by its images (mean of before and after), and decode's are the median
               per-image CPU time of scaled decode + preprocess (of the 300 timings in 4).
               large_pipeline_share_of_bound is the pipeline's incremental images/s over it;
               large_pipeline_batch_span_share_of_bound uses the scaled run's images over its
               batch steps' span (the launcher's timing line) instead, and
               large_pipeline_core_share_of_bound compares core time, which a busy machine
               does not change: kernel + decode core-ms over the pipeline's incremental core-ms
               per image (its process tree's CPU time, getrusage(RUSAGE_CHILDREN), N run minus
               half run, over the extra images).
The last line is one JSON object with every figure.
"""

import argparse
import glob
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
SIZE, BATCH = 128, 32
# The launcher's timing line (pipeline.outputs.summary.summary).
TIMING_LINE = re.compile(r"([\d.]+) s before the first batch, ([\d.]+) s of batches, "
                         r"([\d.]+) s after the last")
LARGE_HEIGHT, LARGE_WIDTH, LARGE_SIDE = 1500, 2000, 224
LARGE_WIDTH_DIVISOR = 2  # half-width reference model: 224-px GBP stays affordable on 2 cores
LARGE_SHARDS = 4
DECODE_TIMING_IMAGES, DECODE_TIMING_ROUNDS = 100, 3


def build_assets(workdir, count):
    """JPEG TFRecord shards of `count` 128x128 images and the reference model (random init)."""
    from demo.assets import synthesize_shapes, write_tfrecord_shards
    from demo.reference_model import build_reference_model

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


def kernel_timing(model, images, repeats=1):
    """GuidedBackprop.explain on in-memory batches of BATCH (after one warm-up batch).

    Returns:
        (images/s of wall clock, core-seconds per image). Core-seconds are this process's CPU
        time (``time.process_time``: user + system time of all its threads, TF's intra-op
        pool included) over the timed loop, divided by the images: the wall x cores the step
        really kept busy, unaffected by other processes taking cores from it.
    """
    from gbp_ops import GuidedBackprop

    explainer = GuidedBackprop(model, batch_size=BATCH)
    explainer.explain(images[:BATCH])
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        for index in range(0, len(images), BATCH):
            explainer.explain(images[index:index + BATCH])
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return repeats * len(images) / wall, cpu / (repeats * len(images))


def kernel_throughput(model, images, repeats=1):
    """images/s of GuidedBackprop.explain on in-memory batches (see ``kernel_timing``)."""
    return kernel_timing(model, images, repeats)[0]


def cores_available():
    """The CPU cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0))


def cpu_bound_images_per_s(cores, kernel_core_seconds, decode_core_seconds):
    """The most images/s a run can reach when every one of ``cores`` is busy with the two
    costs no pipeline avoids: the GBP step (``kernel_core_seconds`` per image) and decode +
    preprocess (``decode_core_seconds`` per image); every other per-image cost lowers it."""
    return cores / (kernel_core_seconds + decode_core_seconds)


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


def run_pipeline(pattern, model_path, output, *overrides, beam_args=(), worker_threads=0,
                 extra_overrides=()):
    """Runs `python -m pipeline` in a subprocess.

    Returns:
        (wall seconds, peak RSS bytes of the process tree, manifest dict); the manifest gets
        ``timing`` from the launcher's summary line when it printed one
        (``pipeline.outputs.summary.summary``), and ``bench_core_seconds``: the CPU time
        (user + system) of the run's process tree, from ``getrusage(RUSAGE_CHILDREN)``.
    """
    argv = [sys.executable, "-m", "pipeline", "--config", os.path.join(REPO, "configs/demo.yaml"),
            "--set", f"source.pattern={pattern}", "--set", f"model.path={model_path}",
            "--set", "source.box_key=null", "--set", f"explain.batch_size={BATCH}",
            "--set", "sanity.enabled=false",
            "--output", output,
            *[x for o in (*extra_overrides, *overrides) for x in ("--set", o)], *beam_args]
    peak = [0]
    start, children = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
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
    out, err = process.communicate()
    watcher.join()
    seconds = time.perf_counter() - start
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    core_seconds = (done.ru_utime + done.ru_stime) - (children.ru_utime + children.ru_stime)
    if process.returncode:
        raise RuntimeError(f"pipeline failed (exit code {process.returncode}): "
                           f"{err.decode()[-2000:]}")
    with open(os.path.join(output, "manifest.json")) as handle:
        manifest = json.load(handle)
    manifest["bench_core_seconds"] = core_seconds
    timing = TIMING_LINE.search(out.decode())
    if timing:
        manifest["timing"] = dict(zip(("before_first_batch_seconds", "batch_seconds",
                                       "after_last_batch_seconds"), map(float, timing.groups())))
    return seconds, peak[0], manifest


def run_compare(baseline, current, output, beam_args=()):
    """`python -m pipeline compare` in a subprocess: (wall seconds, peak RSS of its tree)."""
    argv = [sys.executable, "-m", "pipeline", "compare", baseline, current, "--output", output,
            *beam_args]
    peak = [0]
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))

    def poll():
        while process.poll() is None:
            peak[0] = max(peak[0], _tree_rss(process))
            time.sleep(0.05)

    watcher = threading.Thread(target=poll)
    watcher.start()
    _, err = process.communicate()
    watcher.join()
    if process.returncode:
        raise RuntimeError(f"compare failed ({process.returncode}): {err.decode()[-2000:]}")
    return time.perf_counter() - start, peak[0]


def compare_bench(args, run_options, small, large, model_path, seconds_10n):
    """The comparison's share of a 10xN run, and its peak RSS at N and 10xN (see 2c)."""
    out_n, out_10n = (os.path.join(args.workdir, name) for name in ("out-n", "out-10n"))
    seconds, _, manifest = run_pipeline(
        large, model_path, os.path.join(args.workdir, "out-10n-compared"),
        f"compare.baseline={out_10n}", **run_options)
    assert manifest["comparison"]["ids"]["shared_ids"] == manifest["counts"]["saliency_rows"]
    beam_args = run_options["beam_args"]
    _, rss_n = run_compare(out_n, out_n, os.path.join(args.workdir, "cmp-n"), beam_args)
    _, rss_10n = run_compare(out_10n, out_10n, os.path.join(args.workdir, "cmp-10n"), beam_args)
    return {"pipeline_seconds_compared": seconds,
            "compare_seconds_10n": manifest["comparison"]["seconds"],
            # the comparison's own wall time within the compared run (robust to drift) ...
            "compare_share_10n": manifest["comparison"]["seconds"] / seconds,
            # ... and the difference of two runs' wall times (drift included)
            "compare_share_10n_by_difference": (seconds - seconds_10n) / seconds,
            "compare_rss_n_mb": rss_n / 2 ** 20, "compare_rss_10n_mb": rss_10n / 2 ** 20,
            "compare_rss_10n_over_n": rss_10n / rss_n}


def outside_batches(seconds, manifest):
    """Wall seconds of a run outside its batch steps' span (interpreter, imports, model,
    graph, final stages, report, exit), or NaN without the launcher's timing line."""
    timing = manifest.get("timing")
    return seconds - timing["batch_seconds"] if timing else float("nan")


def bytes_per_example(output, rows):
    total = sum(os.path.getsize(os.path.join(root, name))
                for root, _, names in os.walk(os.path.join(output, "saliency")) for name in names)
    return total / rows


def synthesize_photo(seed, height=LARGE_HEIGHT, width=LARGE_WIDTH):
    """A photo-like uint8 ``(height, width, 3)``: a rough 1/f luminance field with weaker
    colour, a few sharp-edged discs, and pixel noise of +-3 levels (about 320 KB as a quality-90
    JPEG at 2000x1500)."""
    import tensorflow as tf
    from PIL import Image

    rng = np.random.default_rng(seed)
    low_shape = (height // 4, width // 4)  # built at 1/4 size, then upsampled: fast to make

    def field(cells, amplitude, channels):
        rows = max(cells * low_shape[0] // low_shape[1], 1) + 1
        grid = rng.normal(0.0, amplitude, (1, rows, cells + 1, channels)).astype(np.float32)
        return tf.image.resize(grid, low_shape, method="bicubic")[0].numpy()

    low = 120.0 + sum(field(cells, amplitude, 1) for cells, amplitude in
                      ((3, 50.0), (12, 25.0), (48, 12.0), (192, 6.0)))
    low = low + field(3, 25.0, 3) + field(12, 10.0, 3)
    rows, cols = np.mgrid[0:low_shape[0], 0:low_shape[1]]
    for _ in range(4):
        centre_y, centre_x = rng.uniform(0, low_shape[0]), rng.uniform(0, low_shape[1])
        inside = (rows - centre_y) ** 2 + (cols - centre_x) ** 2 < rng.uniform(15, 90) ** 2
        low[inside] += rng.uniform(-60, 60, 3)
    small = Image.fromarray(np.clip(low, 0, 255).astype(np.uint8))
    image = np.asarray(small.resize((width, height), Image.BILINEAR), np.int16)
    noise = rng.integers(-3, 4, (height, width, 3), dtype=np.int16)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def build_large_jpegs(workdir, count):
    """TFRecord shards of `count` photo-like 2000x1500 quality-90 JPEGs, and the reference
    model at 224x224 and half width (random init).

    Returns:
        (shard pattern, pattern of the first half of the shards, model path).
    """
    import tensorflow as tf

    from demo.assets import ID_KEY, IMAGE_KEY, LABEL_KEY
    from demo.reference_model import build_reference_model

    data_dir = os.path.join(workdir, f"large-{count}")
    if not os.path.isdir(data_dir):
        partial = data_dir + ".partial"
        os.makedirs(partial, exist_ok=True)
        for shard, indices in enumerate(np.array_split(np.arange(count), LARGE_SHARDS)):
            path = os.path.join(partial, f"photos-{shard:05d}-of-{LARGE_SHARDS:05d}.tfrecord")
            with tf.io.TFRecordWriter(path) as writer:
                for index in indices:
                    jpeg = tf.io.encode_jpeg(synthesize_photo(int(index)), quality=90).numpy()
                    feature = {
                        IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
                        LABEL_KEY: tf.train.Feature(
                            int64_list=tf.train.Int64List(value=[int(index) % 2])),
                        ID_KEY: tf.train.Feature(
                            bytes_list=tf.train.BytesList(value=[b"photo-%07d" % index])),
                    }
                    writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                                 .SerializeToString())
        os.rename(partial, data_dir)
    model_path = os.path.join(workdir, f"reference-{LARGE_SIDE}.keras")
    if not os.path.exists(model_path):
        build_reference_model(LARGE_SIDE, width_divisor=LARGE_WIDTH_DIVISOR, seed=0).save(
            model_path)
    half = "[" + "".join(str(shard) for shard in range(LARGE_SHARDS // 2)) + "]"
    return (os.path.join(data_dir, "photos-*.tfrecord"),
            os.path.join(data_dir, f"photos-0000{half}-of-*.tfrecord"), model_path)


def read_encoded(pattern, count):
    """The encoded images of the first `count` records of the shards, as bytes."""
    import tensorflow as tf

    from demo.assets import IMAGE_KEY

    spec = {IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)}
    records = tf.data.TFRecordDataset(sorted(glob.glob(pattern))).take(count)
    return [tf.io.parse_single_example(record, spec)[IMAGE_KEY].numpy() for record in records]


def legacy_prepare(data, side):
    """Preprocessing as it was before issue 17, for comparison: full decode, float32 at full
    size, resize. Returns the float32 (side, side, 3) model input in [0, 1]."""
    import tensorflow as tf

    pixels = tf.io.decode_image(data, expand_animations=False).numpy().astype(np.float32)
    return tf.image.resize(pixels, (side, side)).numpy() / 255.0


def decode_timings(jpegs):
    """Median ms per image of decode + preprocess to a 224-px model input, of wall clock and of
    core time (``time.process_time`` around each call: the CPU time of every thread of this
    process, so a decoder or resize that spread over threads counts whole).

    Returns:
        ({'full', 'scaled', 'legacy'} -> wall ms, the same -> core ms). The modes take turns on
        each image, in a rotating order, so that this machine's drifting speed and warm caches
        favour none.
    """
    from pipeline.config import PreprocessConfig, SourceConfig
    from pipeline.stages.decode import decode_image
    from pipeline.stages.preprocess import preprocess_with_display

    source, shape = SourceConfig(pattern="bench"), (LARGE_SIDE, LARGE_SIDE, 3)

    def prepare(config):
        return lambda data: preprocess_with_display(
            decode_image(data, source, config, shape[:2]), shape, config)

    modes = {"full": prepare(PreprocessConfig(scaled_jpeg_decode=False)),
             "scaled": prepare(PreprocessConfig()),
             "legacy": lambda data: legacy_prepare(data, LARGE_SIDE)}
    names = list(modes)
    for name in names:
        modes[name](jpegs[0])  # warm-up
    seconds = {name: [] for name in names}
    core_seconds = {name: [] for name in names}
    for _ in range(DECODE_TIMING_ROUNDS):
        for index, data in enumerate(jpegs):
            for name in names[index % 3:] + names[:index % 3]:
                start, start_cpu = time.perf_counter(), time.process_time()
                modes[name](data)
                seconds[name].append(time.perf_counter() - start)
                core_seconds[name].append(time.process_time() - start_cpu)
    return tuple({name: 1000 * float(np.median(values)) for name, values in found.items()}
                 for found in (seconds, core_seconds))


def large_jpeg_bench(args, run_options):
    """Decode timings, kernel and pipeline on photo-like 2000x1500 JPEGs at 224 px."""
    import gbp_ops
    from pipeline.config import PreprocessConfig, SourceConfig
    from pipeline.stages.decode import decode_image
    from pipeline.stages.preprocess import preprocess_image

    count = args.large_images
    pattern, half_pattern, model_path = build_large_jpegs(args.workdir, count)
    jpegs = read_encoded(pattern, min(count, DECODE_TIMING_IMAGES))
    timings, core_timings = decode_timings(jpegs)
    source, config = SourceConfig(pattern="bench"), PreprocessConfig()
    inputs = np.stack([
        preprocess_image(decode_image(data, source, config, (LARGE_SIDE, LARGE_SIDE)),
                         (LARGE_SIDE, LARGE_SIDE, 3), config) for data in jpegs[:64]])
    inputs = np.concatenate([inputs] * max(1, 128 // len(inputs)))
    model = gbp_ops.load_model(model_path)
    kernel_before, kernel_core_before = kernel_timing(model, inputs)

    def run(name, data, *overrides):
        return run_pipeline(data, model_path, os.path.join(args.workdir, f"out-large-{name}"),
                            *overrides, **run_options)

    seconds, rss, manifest = run("scaled", pattern)
    half_seconds, _, half_manifest = run("scaled-half", half_pattern)
    full_seconds, full_rss, full_manifest = run("full", pattern,
                                                "preprocess.scaled_jpeg_decode=false")
    kernel_after, kernel_core_after = kernel_timing(model, inputs)
    kernel = (kernel_before + kernel_after) / 2
    kernel_core_seconds = (kernel_core_before + kernel_core_after) / 2
    cores = cores_available()
    bound = cpu_bound_images_per_s(cores, kernel_core_seconds, core_timings["scaled"] / 1000)
    rows = manifest["counts"]["saliency_rows"]
    extra_rows = rows - half_manifest["counts"]["saliency_rows"]
    incremental = extra_rows / (seconds - half_seconds)  # images/s, start-up excluded
    results = {
        "large_images": rows,
        "large_jpeg_kb": float(np.mean([len(data) for data in jpegs])) / 1000,
        "large_decode_full_ms": timings["full"],
        "large_decode_scaled_ms": timings["scaled"],
        "large_decode_legacy_ms": timings["legacy"],
        "large_decode_full_images_per_s": 1000 / timings["full"],
        "large_decode_scaled_images_per_s": 1000 / timings["scaled"],
        "large_decode_scaled_speedup_over_full": timings["full"] / timings["scaled"],
        "large_decode_scaled_speedup_over_legacy": timings["legacy"] / timings["scaled"],
        "large_kernel_before_images_per_s": kernel_before,
        "large_kernel_after_images_per_s": kernel_after,
        "large_kernel_images_per_s": kernel,
        "large_pipeline_scaled_images_per_s": rows / seconds,
        "large_pipeline_scaled_incremental_images_per_s": incremental,
        "large_pipeline_full_images_per_s": full_manifest["counts"]["saliency_rows"] / full_seconds,
        "large_rss_scaled_mb": rss / 2 ** 20,
        "large_rss_full_mb": full_rss / 2 ** 20,
        # the CPU limit: both unavoidable per-image costs in core time, on the cores we have
        "large_cores": cores,
        "large_kernel_core_ms": 1000 * kernel_core_seconds,
        "large_decode_scaled_core_ms": core_timings["scaled"],
        "large_cpu_bound_images_per_s": bound,
        "large_pipeline_share_of_bound": incremental / bound,
        # in core time, which other processes on the machine do not change: the bound's
        # core-seconds per image over the pipeline's (the difference of the two runs' process
        # tree CPU time over the extra images); equal to the share above when no core idles
        "large_pipeline_incremental_core_ms": 1000 * (
            manifest["bench_core_seconds"] - half_manifest["bench_core_seconds"]) / extra_rows,
        # the same share over the batch steps' span alone (the timing line): less noise
        # than a difference of two walls on small runs, tail and first batch included
        "large_pipeline_batch_span_share_of_bound": (
            rows / manifest["timing"]["batch_seconds"] / bound
            if "timing" in manifest else float("nan")),
    }
    results["large_pipeline_core_share_of_bound"] = (
        (results["large_kernel_core_ms"] + results["large_decode_scaled_core_ms"])
        / results["large_pipeline_incremental_core_ms"])
    results.update(
        large_pipeline_scaled_over_kernel=results["large_pipeline_scaled_images_per_s"] / kernel,
        large_pipeline_scaled_incremental_over_kernel=(
            results["large_pipeline_scaled_incremental_images_per_s"] / kernel),
        large_pipeline_full_over_kernel=results["large_pipeline_full_images_per_s"] / kernel)
    return results


def bf16_fidelity(pattern, model_path, sample, *overrides):
    """``pipeline.launch.fidelity.measure`` of mixed_bfloat16 against float32, exactly as preflight
    measures it for a run of the demo preset on ``pattern`` and ``model_path``."""
    from pipeline import explainers
    from pipeline.config import load_config
    from pipeline.launch import fidelity

    config = load_config(os.path.join(REPO, "configs", "demo.yaml"), [
        f"source.pattern={pattern}", f"model.path={model_path}",
        "explain.precision=mixed_bfloat16", f"explain.fidelity_sample={sample}", *overrides])
    explainer = explainers.explainer_for_model(config, explainers.load_configured_model(config))
    return fidelity.measure(config, explainer, explainer.input_shape)


def fidelity_bench(args, pattern=None, model_path=None):
    """bf16 fidelity (2c): the random-init reference model on the bench's images, and the
    trained demo model on the demo images."""
    from demo.assets import build_demo_assets

    if pattern is None:
        pattern, model_path = build_assets(args.workdir, args.images)
    demo = build_demo_assets(args.demo_dir)  # offline; reused when already built there
    results = {"bf16_fidelity_sample": args.fidelity_sample}
    # The bench's data has no box feature and runs in batches of BATCH (as run_pipeline).
    models = {"random_init": (pattern, model_path, "source.box_key=null",
                              f"explain.batch_size={BATCH}"),
              "trained": (demo.tfrecord_pattern, demo.model_path)}
    for name, (data, model, *overrides) in models.items():
        measured = bf16_fidelity(data, model, args.fidelity_sample, *overrides)
        results[f"bf16_fidelity_spearman_{name}"] = measured["mean_spearman"]
        results[f"bf16_fidelity_min_spearman_{name}"] = measured["min_spearman"]
        results[f"bf16_fidelity_top5_overlap_{name}"] = measured["top5_overlap"]
    return results


def small_image_bench(args, run_options):
    """Kernel, eager recipe and pipeline on N and 10xN 128x128 JPEGs (see the docstring)."""
    import gbp_ops
    from demo.assets import synthesize_shapes
    from gbp_ops.model_graph import strided_pointwise_convs

    small, model_path = build_assets(args.workdir, args.images)
    large, _ = build_assets(args.workdir, 10 * args.images)
    model = gbp_ops.load_model(model_path)
    hazards = strided_pointwise_convs(model)
    if hazards:  # the eager recipe could crash the bench (see strided_pointwise_convs)
        raise SystemExit(f"bench: the eager recipe would take gradients through the 1x1 "
                         f"strided convolutions {hazards}, which crashed TF 2.21 with oneDNN; "
                         "time it in a subprocess or use a model without them")
    images = synthesize_shapes(args.kernel_images, image_size=SIZE, seed=99)["images"]
    images = images.astype(np.float32) / 255.0

    # This machine's speed drifts: both baselines are timed before and after the pipeline runs.
    if not args.compare_only:
        kernel_before = kernel_throughput(model, images)
        naive_before = naive_throughput(model, images[:320])
    results = {}
    seconds_n, rss_n, manifest_n = run_pipeline(
        small, model_path, os.path.join(args.workdir, "out-n"), **run_options)
    out = os.path.join(args.workdir, "out-10n")
    seconds_10n, rss_10n, manifest = run_pipeline(large, model_path, out, **run_options)
    rows = manifest["counts"]["saliency_rows"]
    results.update(
        pipeline_images=rows, pipeline_seconds=seconds_10n,
        pipeline_images_per_s=rows / seconds_10n,
        # the cost of each extra image, start-up (imports, model build, report) excluded
        pipeline_incremental_images_per_s=9 * args.images / (seconds_10n - seconds_n),
        startup_seconds=seconds_n - args.images * (seconds_10n - seconds_n) / (9 * args.images),
        # measured directly: the wall outside the span of the batch steps, N and 10xN runs
        outside_batches_seconds_n=outside_batches(seconds_n, manifest_n),
        outside_batches_seconds_10n=outside_batches(seconds_10n, manifest),
        rss_n_mb=rss_n / 2 ** 20, rss_10n_mb=rss_10n / 2 ** 20, rss_10n_over_n=rss_10n / rss_n,
        bytes_per_example_float16=bytes_per_example(out, rows))
    results.update(compare_bench(args, run_options, small, large, model_path, seconds_10n))
    if args.compare_only:
        return results
    # the same 10xN run without findings: the share of the run that findings add
    seconds_no_findings, _, _ = run_pipeline(
        large, model_path, os.path.join(args.workdir, "out-10n-no-findings"),
        "findings.enabled=false", **run_options)
    results.update(pipeline_seconds_no_findings=seconds_no_findings,
                   findings_share_10n=(seconds_10n - seconds_no_findings) / seconds_10n)
    for dtype in ("float32", "uint8"):
        dtype_out = os.path.join(args.workdir, f"out-{dtype}")
        _, _, manifest = run_pipeline(small, model_path, dtype_out, f"output.map_dtype={dtype}",
                                      "output.report=false", **run_options)
        results[f"bytes_per_example_{dtype}"] = bytes_per_example(
            dtype_out, manifest["counts"]["saliency_rows"])
    # bf16 on the same inputs; min_fidelity=0 so the bench reports fidelity, never stops on it.
    bf16_data, f32_rate = (small, args.images / seconds_n) if args.bf16_on_n else (
        large, results["pipeline_images_per_s"])
    bf16_seconds, _, bf16_manifest = run_pipeline(
        bf16_data, model_path, os.path.join(args.workdir, "out-bf16"),
        "explain.precision=mixed_bfloat16", "explain.min_fidelity=0", **run_options)
    bf16_rate = bf16_manifest["counts"]["saliency_rows"] / bf16_seconds
    results.update(pipeline_bf16_images_per_s=bf16_rate, bf16_on_n=args.bf16_on_n,
                   bf16_over_f32=bf16_rate / f32_rate)
    results.update(fidelity_bench(args, small, model_path))
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
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000,
                        help="N: the pipeline runs on N and on 10xN images")
    parser.add_argument("--kernel-images", type=int, default=1024)
    parser.add_argument("--bf16-on-n", action="store_true",
                        help="compare bf16 with float32 on the N runs, not the 10xN runs")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "gbp-bench"))
    parser.add_argument("--beam-args", default="", help="extra Beam flags for pipeline runs")
    parser.add_argument("--worker-threads", type=int, default=0,
                        help="TF intra-op threads per pipeline process (0: TF's default)")
    parser.add_argument("--large-images", type=int, default=1000,
                        help="photo-like 2000x1500 JPEGs for the 224-px part (0 skips it)")
    parser.add_argument("--compare-only", action="store_true",
                        help="only the N and 10xN pipeline runs and the comparison part (2c)")
    parser.add_argument("--large-only", action="store_true",
                        help="run only the 224-px part on large JPEGs")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="a config override for every pipeline run (repeatable)")
    parser.add_argument("--fidelity-sample", type=int, default=64,
                        help="examples of the bf16 fidelity measurements (explain.fidelity_sample)")
    parser.add_argument("--demo-dir", default=None,
                        help="where the trained demo model is built or reused (default: "
                             "WORKDIR/demo; .cache/demo reuses the demo's)")
    parser.add_argument("--fidelity-only", action="store_true",
                        help="run only the bf16 fidelity part (2c)")
    args = parser.parse_args()
    args.demo_dir = args.demo_dir or os.path.join(args.workdir, "demo")
    if args.large_only and args.large_images < 1:
        parser.error("--large-only needs --large-images >= 1")
    os.makedirs(args.workdir, exist_ok=True)
    run_options = {"beam_args": args.beam_args.split(), "worker_threads": args.worker_threads,
                   "extra_overrides": tuple(args.set)}
    if args.fidelity_only:
        results = fidelity_bench(args)
    else:
        results = {} if args.large_only else small_image_bench(args, run_options)
    if args.large_images and not (args.fidelity_only or args.compare_only):
        results.update(large_jpeg_bench(args, run_options))
    for key, value in results.items():
        print(f"{key:48s} {value:12.3f}" if isinstance(value, float) else f"{key:48s} {value:12d}")
    print(json.dumps({key: round(value, 4) for key, value in results.items()}))


if __name__ == "__main__":
    main()
