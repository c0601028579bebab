"""Compiled steps traced without AutoGraph where they can be.

AutoGraph rewrites the Python of a ``tf.function`` (and of what it calls) into graph control
flow before tracing. The explainers' steps branch only on Python values (method options, the
model's structure), so without it they trace to the same graph in about half the time (the
reference model's GBP and forward steps: 0.75 s -> 0.43 s, maps bit-identical), and a local
run traces them while it starts. A model whose own layers branch on tensor values in Python,
which AutoGraph allows, makes that trace fail with ``OperatorNotAllowedInGraphError``; the step
is then traced again with AutoGraph, as a plain ``tf.function`` would have been.
"""

import tensorflow as tf


class TracedStep:
    """``tf.function(python_function, input_signature=...)``, traced without AutoGraph unless
    the model needs it (see the module docstring). Thread-safe as ``tf.function`` is."""

    def __init__(self, python_function, input_signature):
        self._with_autograph = tf.function(python_function, input_signature=input_signature)
        self._function = tf.function(python_function, input_signature=input_signature,
                                     autograph=False)
        self._traced = False

    def get_concrete_function(self):
        """Traces the step now (once); returns its concrete function."""
        try:
            concrete = self._function.get_concrete_function()
        except tf.errors.OperatorNotAllowedInGraphError:
            if self._function is self._with_autograph:
                raise
            self._function = self._with_autograph
            concrete = self._function.get_concrete_function()
        self._traced = True
        return concrete

    def __call__(self, *args):
        if not self._traced:
            self.get_concrete_function()
        return self._function(*args)

    def experimental_get_tracing_count(self):
        """How many times the step in use was traced."""
        return self._function.experimental_get_tracing_count()
