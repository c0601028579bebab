"""Bounds on the figures of a trained model, shared by the tests and by the scripts that check
them over training seeds and kernels (scripts/check_demo_margins.py).

A trained model's figures differ from host to host (TensorFlow's kernels round differently on
each CPU), so a test on them asserts a `Bound` whose threshold keeps a measured margin: the
scripts print, for every bound, the value on each seed and kernel and the smallest margin.
"""

import argparse
import dataclasses
import json
import math
import operator
import os
import subprocess
import sys

_OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def config_name(kernel, seed):
    """``onednn-<on|off>/seed-<seed>``: one training configuration of a margins script."""
    return f"onednn-{kernel}/seed-{seed}"


def script_parser(description, cache_name, worker_type=int):
    """The arguments every margins script takes: ``--seeds``, ``--kernels``, ``--workdir``
    (default ``.cache/<cache_name>`` in the repository), ``--saved``, and the hidden
    ``--worker SEED`` that ``measure_config`` passes to a configuration's subprocess."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--kernels", nargs="+", choices=["on", "off"], default=["on", "off"])
    parser.add_argument("--workdir", default=os.path.join(_REPO, ".cache", cache_name))
    parser.add_argument("--saved", action="store_true",
                        help="print the figures saved by an earlier run where there are some")
    parser.add_argument("--worker", type=worker_type, help=argparse.SUPPRESS)
    return parser


def measure_config(script, workdir, kernel, seed, worker_args=(), again=True):
    """Runs ``script --worker SEED --workdir DIR *worker_args`` in a subprocess with oneDNN's
    kernels ``kernel`` ("on" or "off"), unless ``again`` is false and DIR already holds its
    figures; returns ``(config name, figures)``, the figures read from ``DIR/values.json``
    (DIR = ``workdir/<config name>``)."""
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1" if kernel == "on" else "0",
               TF_CPP_MIN_LOG_LEVEL="2")
    name = config_name(kernel, seed)
    folder = os.path.join(workdir, name)
    values_path = os.path.join(folder, "values.json")
    if again or not os.path.exists(values_path):
        result = subprocess.run([sys.executable, os.path.abspath(script), "--worker", str(seed),
                                 "--workdir", folder, *worker_args], cwd=_REPO, env=env,
                                capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(f"{name} failed:\n{result.stderr[-3000:]}")
    with open(values_path) as handle:
        return name, json.load(handle)


@dataclasses.dataclass(frozen=True)
class Bound:
    """``value <op> threshold`` on one measured quantity; NaN (nothing measured) fails."""

    quantity: str
    op: str
    threshold: float

    def holds(self, value):
        return not math.isnan(value) and _OPERATORS[self.op](value, self.threshold)

    def margin(self, value):
        """How far the value is on the safe side (negative: the bound fails)."""
        if math.isnan(value):
            return math.nan
        return value - self.threshold if self.op in (">=", ">") else self.threshold - value

    def __str__(self):
        return f"{self.quantity} {self.op} {self.threshold:g}"


def assert_bounds(values, bounds, context=""):
    """Asserts every bound on ``values`` (a dict of quantity -> float), naming all that fail
    (and ``context``, when given)."""
    failed = [f"{bound} (measured {values[bound.quantity]:.4g})" for bound in bounds
              if not bound.holds(float(values[bound.quantity]))]
    assert not failed, "; ".join(failed) + (f"; {context}" if context else "")


def print_margins(measured, tests):
    """Prints one table per test: each bound's value on every config and its least margin.

    Args:
        measured: dict of config name -> dict of part -> dict of quantity -> float.
        tests: sequence of ``(test name, part, bounds)``: the test's bounds hold on ``part``.
    """
    names = list(measured)
    short = [name.replace("onednn-", "").replace("/seed-", "/s") for name in names]
    for test, part, bounds in tests:
        print(f"\n{test}")
        print(f"  {'bound':<42}" + "".join(f"{s:>9}" for s in short) + "  least margin")
        for bound in bounds:
            row = [float(measured[name][part][bound.quantity]) for name in names]
            margins = [bound.margin(v) for v in row]
            least = min(margins, key=lambda m: (m == m, m))  # NaN first: it fails
            flag = "" if all(bound.holds(v) for v in row) else "  FAILS"
            print(f"  {str(bound):<42}" + "".join(f"{v:>9.4g}" for v in row)
                  + f"  {least:.4g}{flag}")


def print_failures(cases, tests):
    """Prints which bounds each negative control fails; ``cases`` is a sequence of
    ``(label, dict of part -> dict of quantity -> float)``."""
    for label, parts in cases:
        print(f"  {label}")
        for test, part, bounds in tests:
            if part not in parts:
                continue
            values = parts[part]
            failed = [f"{b} ({float(values[b.quantity]):.4g})" for b in bounds
                      if b.quantity in values and not b.holds(float(values[b.quantity]))]
            print(f"    {test}: {'; '.join(failed) if failed else 'NOTHING FAILS'}")
