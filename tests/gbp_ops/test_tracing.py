"""The explainers' steps trace without AutoGraph (same outputs, shorter trace) and fall back to
AutoGraph for code that branches on tensor values in Python."""

import inspect

import numpy as np
import tensorflow as tf

from gbp_ops.tracing import TracedStep

SIGNATURE = [tf.TensorSpec((None, 3), tf.float32)]


def test_a_step_that_branches_on_python_values_is_traced_without_autograph():
    files = []

    def step(x):
        files.append(inspect.currentframe().f_code.co_filename)
        return x * 2.0 if len(files) < 100 else x  # a Python value, not a tensor

    traced = TracedStep(step, SIGNATURE)
    out = traced(tf.constant([[1.0, -2.0, 3.0]]))
    np.testing.assert_array_equal(out.numpy(), [[2.0, -4.0, 6.0]])
    assert files == [__file__]  # AutoGraph would have run a converted copy from another file
    traced(tf.constant([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]))
    assert traced.experimental_get_tracing_count() == 1


def test_a_step_that_branches_on_a_tensor_falls_back_to_autograph():
    def step(x):
        if tf.reduce_sum(x) > 0:  # needs AutoGraph (a tf.cond)
            return x * 2.0
        return -x

    traced = TracedStep(step, SIGNATURE)
    traced.get_concrete_function()
    for rows in ([[1.0, -2.0, 3.0]], [[-1.0, -2.0, 0.5]]):
        x = np.array(rows, np.float32)
        expected = x * 2.0 if x.sum() > 0 else -x
        np.testing.assert_array_equal(traced(tf.constant(x)).numpy(), expected)
    assert traced.experimental_get_tracing_count() == 1
