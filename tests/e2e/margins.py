"""Bounds on the figures of a trained model, shared by the tests and by the scripts that check
them over training seeds and kernels (scripts/check_demo_margins.py).

A trained model's figures differ from host to host (TensorFlow's kernels round differently on
each CPU), so a test on them asserts a `Bound` whose threshold keeps a measured margin: the
scripts print, for every bound, the value on each seed and kernel and the smallest margin.
"""

import dataclasses
import math
import operator

_OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


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


def assert_bounds(values, bounds):
    """Asserts every bound on ``values`` (a dict of quantity -> float), naming all that fail."""
    failed = [f"{bound} (measured {values[bound.quantity]:.4g})" for bound in bounds
              if not bound.holds(float(values[bound.quantity]))]
    assert not failed, "; ".join(failed)
