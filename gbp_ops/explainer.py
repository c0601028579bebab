"""The batched guided-backprop explainer: one compiled forward + backward pass per batch.

``GuidedBackprop`` is also the base of the other methods of ``gbp_ops.methods`` (they change
the ReLU rule or ``_method_maps``), and runs SmoothGrad over any of them inside the same step.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from gbp_ops import errors
from gbp_ops.batch_inputs import (
    TARGET_PREDICTED,
    check_images,
    check_seeds,
    check_targets,
    pad_rows,
    run_in_batches,
)
from gbp_ops.choices import METHOD_GUIDED_BACKPROP, NONLINEARITY_REFUSE
from gbp_ops.guided_relu import RULE_GUIDED
from gbp_ops.input_scaling import declared_input_scaling
from gbp_ops.maps import REDUCTIONS
from gbp_ops.model_graph import assign_layer_weights
from gbp_ops.rewrite import SPACE_LOGIT, guide_model
from gbp_ops.smoothgrad import smoothgrad_maps
from gbp_ops.tracing import TracedStep


@dataclasses.dataclass(frozen=True)
class Explanation:
    """Everything one forward + guided backward pass gives for N images.

    Attributes:
        maps: float32 ``(N, H, W, C)``, the method's map of the target score (guided
            backprop: d(target score) / d(image)); ``(N, H, W)`` when the explainer reduces
            channels in the graph (its ``reduction`` is set).
        scores: float32 ``(N, K)``, the explained-space outputs (logits when a final
            softmax/sigmoid was stripped); ``K == 1`` for a single-unit sigmoid model.
        probabilities: float32 ``(N, num_classes)`` or None when the outputs are not class
            scores (an intermediate layer is explained).
        predicted: int64 ``(N,)``, the arg-max class.
        targets: int64 ``(N,)``, the class (or channel) each map explains.
        target_scores: float32 ``(N,)``, the explained score of each target.
    """

    maps: np.ndarray
    scores: np.ndarray
    probabilities: np.ndarray | None
    predicted: np.ndarray
    targets: np.ndarray
    target_scores: np.ndarray

    @property
    def target_probabilities(self):
        """float32 ``(N,)`` probability of each target, or NaNs without probabilities."""
        if self.probabilities is None:
            return np.full(self.targets.shape, np.nan, np.float32)
        return np.take_along_axis(self.probabilities, self.targets[:, None], axis=1)[:, 0]


class GuidedBackprop:
    """Guided backpropagation for a Keras image classifier, run in batches of ``batch_size``.

    The caller's model is cloned and rewritten (see ``guide_model``); the step is one
    ``tf.function`` with a ``(None, H, W, C)`` signature, so it traces once for every batch
    size and a partial last batch costs only its own rows. The step runs on a GPU when TF sees
    one.

    Args:
        model: a Functional or Sequential ``keras.Model`` with one image input ``(H, W, C)``.
        batch_size: the most rows one step computes.
        strip_final_activation: explain the logit under a final softmax/sigmoid (default).
        allow_unguided: leave unsupported activations unguided (with a warning) instead of
            raising.
        layer_name: explain a channel of this top-level layer's output (its spatial sum)
            instead of a class score; targets then index channels.
        compile: run the step as a ``tf.function`` (default) or eagerly.
        reduction: None (maps keep their channels) or a channel reduction of
            ``gbp_ops.maps.reduce_channels`` done inside the compiled step, which is much
            cheaper than in numpy and returns ``(N, H, W)`` maps.
        smoothgrad_samples: 0 for the method's own maps, or S >= 1 for SmoothGrad: the mean
            of the maps of S noisy copies of each image (see ``gbp_ops.smoothgrad``), for the
            target chosen on the clean image.
        smoothgrad_sigma: the noise std as a fraction of each image's range (max - min).
        nonlinearity_rule: ``'refuse'`` (default) or ``'gate'``: the gate rule at swish, GELU
            and the other activations ``gbp_ops.gated_activation`` lists (see ``guide_model``).

    Attributes (beyond the settings): ``guided_sites`` (every guided ReLU), ``gated_sites``
    (every activation under the gate rule) and ``unguided_sites`` (left plain with
    ``allow_unguided``), each a tuple of ``GuidedSite``.
    """

    method = METHOD_GUIDED_BACKPROP
    # The model's own input scaling layer (``gbp_ops.input_scaling``); None for SavedModels.
    input_scaling = None
    relu_rule = RULE_GUIDED

    def __init__(
        self,
        model,
        batch_size=32,
        strip_final_activation=True,
        allow_unguided=False,
        layer_name=None,
        compile=True,
        reduction=None,
        smoothgrad_samples=0,
        smoothgrad_sigma=0.15,
        nonlinearity_rule=NONLINEARITY_REFUSE,
    ):
        # Every explainer of the family (the SavedModel ones too) is built by these four steps;
        # a model family overrides ``_build_model``, a method ``_build_method``.
        self._set_options(batch_size, layer_name, reduction, smoothgrad_samples,
                          smoothgrad_sigma)
        self.nonlinearity_rule = nonlinearity_rule
        self._build_model(model, strip_final_activation, allow_unguided)
        self._build_method(model, strip_final_activation, allow_unguided)
        self._compile_step(compile)

    def _build_model(self, model, strip_final_activation, allow_unguided):
        """Sets what the explained model is: ``guided_sites``, ``unguided_sites``,
        ``explained_space``, ``stripped_activation``, ``input_shape``, the number of outputs
        and ``_scorer``; here by rewriting a Keras model (``guide_model``)."""
        rewrite = guide_model(model, strip_final_activation, allow_unguided, rule=self.relu_rule,
                              nonlinearity_rule=self.nonlinearity_rule)
        self.guided_sites = rewrite.guided_sites
        self.gated_sites = rewrite.gated_sites
        self.unguided_sites = rewrite.unguided_sites
        self.explained_space = rewrite.explained_space
        self.stripped_activation = rewrite.stripped_activation
        if self.layer_name is not None:
            self.explained_space = f"layer:{self.layer_name}"
        self._scorer = scoring_model(rewrite.model, self.layer_name)
        self._weight_models = [rewrite.model]  # every clone whose variables the step reads
        self._set_input_shape(rewrite.model.inputs[0].shape[1:])
        self._set_num_outputs(int(self._scorer.outputs[0].shape[-1]))
        self.input_scaling = declared_input_scaling(model)

    def _set_options(self, batch_size, layer_name, reduction, smoothgrad_samples,
                     smoothgrad_sigma):
        """Checks and keeps the settings every explainer has."""
        if int(smoothgrad_samples) < 0 or not float(smoothgrad_sigma) >= 0:
            raise errors.GBPError(errors.BAD_SMOOTHGRAD.format(
                samples=smoothgrad_samples, sigma=smoothgrad_sigma))
        if reduction is not None and reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction '{reduction}'; expected one of "
                             f"{', '.join(REDUCTIONS)}")
        self.smoothgrad_samples = int(smoothgrad_samples)
        self.smoothgrad_sigma = float(smoothgrad_sigma)
        self.layer_name = layer_name
        self.reduction = reduction
        self.batch_size = int(batch_size)
        self.num_steps = 0
        self.num_traces = 0

    def _set_input_shape(self, dims):
        """Keeps the model input ``(H, W, C)``; raises GBPError unless all three are fixed."""
        dims = tuple(dims)
        if len(dims) != 3 or any(d is None for d in dims):
            raise errors.GBPError(errors.UNSIZED_INPUT.format(shape=(None, *dims)))
        self.input_shape = tuple(int(d) for d in dims)

    def _set_num_outputs(self, num_outputs):
        """Keeps the explained output's width; a single (sigmoid) unit counts as 2 classes."""
        self._num_outputs = num_outputs
        self.num_classes = 2 if num_outputs == 1 else num_outputs

    def _step_batch(self):
        """The batch dimension of the compiled step: None (any batch, so no padding) here."""
        return None

    def _compile_step(self, compile):
        """The batch step, traced once for ``(_step_batch(), *input_shape)`` (or eager)."""
        batch = self._step_batch()
        signature = [
            tf.TensorSpec((batch, *self.input_shape), tf.float32),
            tf.TensorSpec((batch,), tf.int32),
            tf.TensorSpec((batch,), tf.int64),
        ]
        self._step = TracedStep(self._step_fn, signature) if compile else self._step_fn
        # ``predict``'s forward-only step, traced on first use (or ``trace``) for any batch
        # size: occlusion predicts a few images per cluster, and padding each call to
        # ``batch_size`` would spend most of the forward passes on padding.
        self._forward = (TracedStep(self._predict_fn, [
            tf.TensorSpec((None, *self.input_shape), tf.float32)]) if compile else
            self._predict_fn)
        self._compile = compile

    def trace(self, forward=False):
        """Traces the compiled batch step now, without running it, so a first batch does not
        wait for the trace (a launcher can do it while it builds its pipeline). Thread-safe; the
        step is still traced once; nothing to do for an eager explainer.

        Args:
            forward: also trace ``predict``'s forward-only step (used by findings' occlusion).
        """
        if self._compile:
            self._step.get_concrete_function()
            if forward:
                self._forward.get_concrete_function()

    def _build_method(self, model, strip_final_activation, allow_unguided):
        """Hook for methods that need more than the rewritten model (run before tracing)."""

    def assign_layer_weights(self, weights_by_path):
        """Replaces the weights of the named layers in every clone the step computes with (the
        guided clone; Guided Grad-CAM's plain clone too), in place: the traced step then
        explains the model with those weights without being traced again.

        Args:
            weights_by_path: dict layer path (``gbp_ops.model_graph.leaf_layers`` of the model
                the explainer was built from) -> list of numpy arrays (``get_weights`` order).

        Raises:
            GBPError: the explainer has no Keras variables (a frozen SavedModel graph).
        """
        if not getattr(self, "_weight_models", None):
            raise errors.GBPError(errors.FROZEN_WEIGHTS)
        for model in self._weight_models:
            assign_layer_weights(model, weights_by_path)

    def method_fields(self):
        """The method and its settings, for the manifest: a JSON-ready dict."""
        return {"method": self.method, "smoothgrad_samples": self.smoothgrad_samples,
                "smoothgrad_sigma": self.smoothgrad_sigma,
                "nonlinearity_rule": self.nonlinearity_rule}

    def _step_fn(self, images, targets, seeds):
        self.num_traces += 1  # a Python side effect: runs once per trace, not per call
        if self.smoothgrad_samples:
            scored = self._target_scores(self._scorer(images, training=False), targets)
            maps = smoothgrad_maps(lambda noisy: self._method_maps(noisy, scored[2])[0], images,
                                   seeds, self.smoothgrad_samples, self.smoothgrad_sigma)
        else:
            maps, scored = self._method_maps(images, targets)
        if self.reduction is not None:
            maps = _reduce_channels_tf(maps, self.reduction)
        return (maps, *scored)

    def _method_maps(self, images, targets):
        """The method's ``(B, H, W, C)`` maps of ``images`` and ``_target_scores`` of the same
        forward pass; this class: guided backprop (the rewrite's ReLU rule)."""
        with tf.GradientTape() as tape:
            tape.watch(images)
            scored = self._target_scores(self._scorer(images, training=False), targets)
            total = tf.reduce_sum(scored[3])
        return tape.gradient(total, images), scored

    def _target_scores(self, outputs, targets):
        """``(scores (B, K), predicted (B,), chosen (B,), target_scores (B,))`` of the model
        outputs for int32 ``targets`` (-1: predicted)."""
        scores = _reduce_to_vectors(tf.cast(outputs, tf.float32))
        if self._num_outputs == 1:
            # A single sigmoid unit: class 1 is the logit, class 0 its negation.
            predicted = tf.cast(scores[:, 0] > 0, tf.int32)
            chosen = tf.where(targets < 0, predicted, targets)
            target_scores = tf.where(chosen == 1, scores[:, 0], -scores[:, 0])
        else:
            predicted = tf.argmax(scores, axis=-1, output_type=tf.int32)
            chosen = tf.where(targets < 0, predicted, targets)
            target_scores = tf.gather(scores, chosen, axis=1, batch_dims=1)
        return scores, predicted, chosen, target_scores

    def explain(self, images, targets=None, seeds=None):
        """The method's maps for ``images``.

        Args:
            images: float ``(N, H, W, C)`` already preprocessed for the model.
            targets: None for each example's predicted class, or int ``(N,)`` class indices.
            seeds: see ``explain_with_outputs``.

        Returns:
            float32 ``(N, H, W, C)`` maps (``(N, H, W)`` with a ``reduction``).
        """
        return self.explain_with_outputs(images, targets, seeds).maps

    def explain_with_outputs(self, images, targets=None, seeds=None):
        """Maps plus the scores, predictions and probabilities of the same forward pass.

        Args:
            images: float ``(N, H, W, C)`` already preprocessed for the model; any N.
            targets: None or int ``(N,)``; ``TARGET_PREDICTED`` (-1) entries mean "predicted".
            seeds: None or int ``(N,)``, one SmoothGrad noise seed per example (e.g.
                ``gbp_ops.smoothgrad.seed_from_id(example_id)``), so an example's noise does
                not depend on its batch; None seeds example i with i. Unused without SmoothGrad.

        Returns:
            An ``Explanation``.

        Raises:
            GBPError: images of the wrong shape, or targets or seeds of the wrong shape or range.
        """
        images = check_images(images, self.input_shape)
        targets = check_targets(targets, len(images), self.num_classes)
        seeds = check_seeds(seeds, len(images))
        maps, scores, predicted, chosen, target_scores = run_in_batches(
            self._explain_chunk, (images, targets, seeds), self.batch_size)
        return Explanation(
            maps=maps,
            scores=scores,
            probabilities=self._probabilities(scores),
            predicted=predicted.astype(np.int64),
            targets=chosen.astype(np.int64),
            target_scores=target_scores,
        )

    def _explain_chunk(self, images, targets, seeds):
        """One compiled step on at most ``batch_size`` rows (padded only for a step traced for a
        fixed batch)."""
        count = len(images)
        self.num_steps += 1
        fixed_batch = self._step_batch()
        outputs = self._step(*(tf.constant(array if fixed_batch is None else
                                           pad_rows(array, fixed_batch))
                               for array in (images, targets, seeds)))
        return tuple(np.asarray(t)[:count] for t in outputs)

    def predict(self, images):
        """The predicted classes from a forward pass alone: what
        ``explain_with_outputs(images).predicted`` gives, without the backward pass.

        Args:
            images: float ``(N, H, W, C)`` already preprocessed for the model; any N.

        Returns:
            int64 ``(N,)``.
        """
        images = check_images(images, self.input_shape)
        chunks = [images[i:i + self.batch_size] for i in range(0, len(images), self.batch_size)]
        predicted = [np.asarray(self._forward(tf.constant(chunk, tf.float32))) for chunk in chunks]
        return np.concatenate(predicted).astype(np.int64) if predicted else np.zeros(0, np.int64)

    def _predict_fn(self, images):
        targets = tf.fill(tf.shape(images)[:1], tf.constant(TARGET_PREDICTED, tf.int32))
        return self._target_scores(self._scorer(images, training=False), targets)[1]

    def _probabilities(self, scores):
        if self.layer_name is not None:
            return None
        if self._num_outputs == 1:
            positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.stack([1.0 - positive, positive], axis=1).astype(np.float32)
        if self.explained_space == SPACE_LOGIT and self.stripped_activation == "sigmoid":
            return (1.0 / (1.0 + np.exp(-scores))).astype(np.float32)
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def scoring_model(model, layer_name):
    """``model`` itself, or the model up to top-level layer ``layer_name`` (channels explained).
    """
    if layer_name is None:
        return model
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise errors.GBPError(errors.UNKNOWN_LAYER.format(layer=layer_name, names=names))
    return keras.Model(model.inputs, model.get_layer(layer_name).output)


def _reduce_channels_tf(maps, reduction):
    """The TF twin of ``gbp_ops.maps.reduce_channels``: ``(B, H, W, C)`` -> ``(B, H, W)``."""
    if reduction == "max_abs":
        return tf.reduce_max(tf.abs(maps), axis=-1)
    if reduction == "l2":
        return tf.sqrt(tf.reduce_sum(tf.square(maps), axis=-1))
    if reduction == "sum":
        return tf.reduce_sum(maps, axis=-1)
    return tf.reduce_sum(tf.abs(maps), axis=-1)


def _reduce_to_vectors(outputs):
    """``(B, ..., K)`` -> ``(B, K)`` by summing the spatial axes of a feature map."""
    if outputs.shape.rank > 2:
        return tf.reduce_sum(outputs, axis=list(range(1, outputs.shape.rank - 1)))
    return outputs
