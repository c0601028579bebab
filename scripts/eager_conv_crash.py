"""Does the eager gradient of a 1x1, stride-2, SAME convolution crash this host's TensorFlow?

Usage:  .venv/bin/python scripts/eager_conv_crash.py [--runs 3] [--steps 50]

Issue 26 saw TF 2.21 with oneDNN (the x86 default) crash (segfault or "free(): invalid next
size") in an eager GradientTape GBP; the minimal case was a 1x1, stride-2, SAME conv of a
(2, 60, 60, 8) input with gradients for the input and the filter (in eager mode TF's Conv2D
gradient always computes both). This runs that case in child processes, with oneDNN on and
off, eagerly and under tf.function, and prints each exit code; a negative code is the signal
that killed the child. The last line is one JSON object.
"""

import argparse
import json
import os
import subprocess
import sys

CHILD = """
import sys
import numpy as np
import tensorflow as tf
steps, compiled = int(sys.argv[1]), sys.argv[2] == "compiled"
rng = np.random.default_rng(0)
x = tf.constant(rng.random((2, 60, 60, 8)), tf.float32)
w = tf.Variable(rng.normal(size=(1, 1, 8, 16)).astype("float32"))
def step(x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.nn.relu(tf.nn.conv2d(x, w, strides=2, padding="SAME"))
        total = tf.reduce_sum(y)
    return tape.gradient(total, [x, w])
step = tf.function(step) if compiled else step
for _ in range(steps):
    step(x)
"""


def cpu_flags():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        return []
    return sorted({flag for flag in flags.split() if flag.startswith(("avx512", "amx"))})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    results = {"cpu_avx512_amx_flags": cpu_flags()}
    for onednn in ("1", "0"):
        for mode in ("eager", "compiled"):
            env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "2"}
            codes = [subprocess.run([sys.executable, "-c", CHILD, str(args.steps), mode],
                                    env=env, capture_output=True).returncode
                     for _ in range(args.runs)]
            results[f"onednn_{onednn}_{mode}_exit_codes"] = codes
            print(f"oneDNN {'on ' if onednn == '1' else 'off'} {mode:8s} exit codes {codes}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
