"""Every ReLU form a Keras 3 model can hold is guided; each case fails if the form is missed.

Forms the numpy reference understands are checked against it directly. Other forms are
checked by equivalence with a model that spells the same maths in a reference-checked form,
plus a check that the guided map differs from the plain gradient.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gbp_ops import GuidedBackprop, GuidedReLU
from tests.gbp_ops.numpy_reference import numpy_guided_backprop
from tests.gbp_ops.toy_models import plain_target_gradients, random_images

SIZE = 8
TARGETS = np.array([0, 1, 2, 0])


def _head():
    return [keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")]


def _model(*body):
    return keras.Sequential([keras.Input((SIZE, SIZE, 3)), *body, *_head()])


def _plain_gradients(model, images, targets):
    """Plain gradients of the pre-softmax logits, via a linear-output copy of ``model``."""
    config = model.layers[-1].get_config() | {"activation": "linear"}
    linear_head = keras.layers.Dense.from_config(config)
    copy = keras.Sequential([keras.Input((SIZE, SIZE, 3)), *model.layers[:-1], linear_head])
    linear_head.set_weights(model.layers[-1].get_weights())
    return plain_target_gradients(copy, images, targets)[0]


def _assert_guided(model, expected_maps):
    images = random_images(4, SIZE, seed=7)
    maps = GuidedBackprop(model, batch_size=4).explain(images, TARGETS)
    np.testing.assert_allclose(maps, expected_maps(images), rtol=1e-4, atol=1e-6)
    assert not np.allclose(maps, _plain_gradients(model, images, TARGETS), atol=1e-6), (
        "guided map equals the plain gradient: the form was not guided"
    )


REFERENCE_FORMS = {
    "Activation(relu)": lambda: [keras.layers.Conv2D(4, 3), keras.layers.Activation("relu")],
    "Activation(relu6)": lambda: [keras.layers.Conv2D(4, 3), keras.layers.Activation("relu6")],
    "Conv2D(activation=relu)": lambda: [keras.layers.Conv2D(4, 3, activation="relu")],
    "Conv2D(activation=relu6)": lambda: [keras.layers.Conv2D(4, 3, activation="relu6")],
    "ReLU()": lambda: [keras.layers.Conv2D(4, 3), keras.layers.ReLU()],
    "ReLU(max_value=6)": lambda: [keras.layers.Conv2D(4, 3), keras.layers.ReLU(max_value=6.0)],
    "ReLU(max_value=0.5)": lambda: [keras.layers.Conv2D(4, 3), keras.layers.ReLU(max_value=0.5)],
    "ReLU(threshold=0.2)": lambda: [keras.layers.Conv2D(4, 3), keras.layers.ReLU(threshold=0.2)],
    "ReLU(max_value=1, threshold=0.1)": lambda: [
        keras.layers.Conv2D(4, 3), keras.layers.ReLU(max_value=1.0, threshold=0.1)
    ],
    "Dense(activation=relu)": lambda: [
        keras.layers.Flatten(), keras.layers.Dense(16, activation="relu"),
    ],
}


@pytest.mark.parametrize("form", sorted(REFERENCE_FORMS))
def test_form_matches_numpy_reference(form):
    model = _model(*REFERENCE_FORMS[form]())
    model.layers[0].set_weights([w * 2.0 for w in model.layers[0].get_weights()])
    _assert_guided(model, lambda images: numpy_guided_backprop(model, images, TARGETS)[0])


def _equivalent_split(layer_factory, **kwargs):
    """The same layer twice: once with the activation fused, once linear + Activation('relu')."""
    fused = _model(layer_factory(activation=kwargs["fused_activation"]))
    split = _model(layer_factory(activation="linear"), keras.layers.Activation("relu"))
    split.set_weights(fused.get_weights())
    return fused, split


@pytest.mark.parametrize(
    "layer_factory, fused_activation",
    [
        (lambda activation: keras.layers.SeparableConv2D(4, 3, activation=activation), "relu"),
        (lambda activation: keras.layers.DepthwiseConv2D(3, activation=activation), "relu"),
        (lambda activation: keras.layers.Conv2D(4, 3, activation=activation), tf.nn.relu),
    ],
    ids=["SeparableConv2D(relu)", "DepthwiseConv2D(relu)", "Conv2D(tf.nn.relu)"],
)
def test_fused_activation_equals_split_activation(layer_factory, fused_activation):
    fused, split = _equivalent_split(layer_factory, fused_activation=fused_activation)
    # The split model's Activation('relu') is itself checked against the numpy reference above.
    split_explainer = GuidedBackprop(split, batch_size=4)
    _assert_guided(fused, lambda images: split_explainer.explain(images, TARGETS))


def test_nested_model_relus_are_guided():
    conv = keras.layers.Conv2D(4, 3, name="inner_conv")
    relu = keras.layers.ReLU(max_value=6.0, name="inner_relu6")
    inner = keras.Sequential([keras.Input((SIZE, SIZE, 3)), conv, relu], name="backbone")
    inputs = keras.Input((SIZE, SIZE, 3))
    features = inner(inputs)
    outputs = keras.Sequential(_head(), name="head")(features)
    nested = keras.Model(inputs, outputs)
    flat = _model(keras.layers.Conv2D(4, 3), keras.layers.ReLU(max_value=6.0))
    flat.set_weights(nested.get_weights())

    explainer = GuidedBackprop(nested, batch_size=4)
    assert [site.layer for site in explainer.guided_sites] == ["backbone/inner_relu6"]
    images = random_images(4, SIZE, seed=8)
    expected, _ = numpy_guided_backprop(flat, images, TARGETS)
    np.testing.assert_allclose(explainer.explain(images, TARGETS), expected, rtol=1e-4, atol=1e-6)


def test_keras_applications_backbone_every_relu_guided():
    backbone = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None, pooling="avg"
    )
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(3, activation="softmax")(backbone(inputs))
    model = keras.Model(inputs, outputs)
    relu_layers = [layer.name for layer in backbone.layers
                   if isinstance(layer, keras.layers.ReLU)]

    explainer = GuidedBackprop(model, batch_size=2)

    guided = {site.layer for site in explainer.guided_sites}
    assert guided == {f"{backbone.name}/{name}" for name in relu_layers}
    assert len(relu_layers) >= 30
    inner_clone = next(layer for layer in explainer._scorer.layers
                       if isinstance(layer, keras.Model))
    assert all(isinstance(inner_clone.get_layer(name), GuidedReLU) for name in relu_layers)
    images = random_images(2, 32, seed=9)
    maps = explainer.explain(images, np.array([0, 1]))
    assert np.isfinite(maps).all() and np.abs(maps).max() > 0
