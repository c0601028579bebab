"""The gate rule (``nonlinearity_rule='gate'``) against the independent numpy reference, its
refusal by default, its site counts, and the ReLU path it must leave untouched."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gbp_ops import GBPError, GuidedBackprop, errors, make_explainer
from gbp_ops.gated_activation import GatedActivationLayer, make_gated_activation
from gbp_ops.guided_relu import make_guided_relu
from tests.gbp_ops import gate_models
from tests.gbp_ops.numpy_activations import ACTIVATIONS
from tests.gbp_ops.numpy_reference import numpy_backprop, numpy_gradcam
from tests.gbp_ops.toy_models import plain_target_gradients, random_cnn, random_images

GATE = "gate"
TARGETS = np.array([0, 1, 2, 3, 1, 2])
RTOL = 1e-4


def _images(model, seed=3):
    side, _, channels = model.inputs[0].shape[1:]
    return random_images(len(TARGETS), side, channels, seed=seed) * 2.0 - 0.5


def _relative_error(maps, expected):
    return float(np.abs(maps - expected).max() / np.abs(expected).max())


def _assert_matches_reference(model, **options):
    """gbp_ops' gate maps equal the reference's 'gate' maps, and are far from the maps of
    the rules a bug would give instead: plain gradients, tf-keras-vis' gate without f'(x)."""
    images = _images(model)
    maps = GuidedBackprop(model, batch_size=4, nonlinearity_rule=GATE, **options).explain(
        images, TARGETS)
    expected, _ = numpy_backprop(model, images, TARGETS, "gate")
    assert np.abs(expected).max() > 0 and np.count_nonzero(expected) > expected.size // 10
    np.testing.assert_allclose(maps, expected, rtol=RTOL, atol=RTOL * np.abs(expected).max())
    for other in ("plain", "gate_without_slope"):
        wrong, _ = numpy_backprop(model, images, TARGETS, other)
        assert _relative_error(wrong, expected) > 0.05, other
    return _relative_error(maps, expected)


# --- the reference itself -------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_reference_activation_and_slope_equal_keras(name):
    keras_name = {"gelu_approximate": None}.get(name, name)
    activation = (gate_models.gelu_approximate if keras_name is None
                  else keras.activations.get(keras_name))
    x = np.linspace(-5.0, 5.0, 2001)
    tensor = tf.constant(x, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        y = activation(tensor)
    slope = tape.gradient(y, tensor).numpy()
    y_ref, slope_ref = ACTIVATIONS[name](x)
    # Keras holds some constants (0.2, GELU's 1/sqrt(2)) in float32, hence 1e-6 / 1e-7, far
    # below any wrong formula. At the kinks (0; +-3 for the hard ones) the one-sided slopes
    # differ; no rule needs them.
    np.testing.assert_allclose(y_ref, y.numpy(), rtol=1e-6, atol=1e-7)
    off_kinks = (np.abs(np.abs(x) - 3.0) > 1e-9) & (np.abs(x) > 1e-9)
    np.testing.assert_allclose(slope_ref[off_kinks], slope[off_kinks], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("build", [gate_models.swish_cnn, gate_models.gelu_cnn,
                                   gate_models.activation_zoo])
def test_reference_plain_rule_equals_tf_gradients(build):
    model = build()
    images = _images(model)
    config = model.layers[-1].get_config() | {"activation": "linear"}
    head = model.layers[-1].__class__.from_config(config)
    logits_model = keras.Sequential([keras.Input(model.inputs[0].shape[1:]),
                                     *model.layers[:-1], head])
    head.set_weights(model.layers[-1].get_weights())
    tf_maps, tf_logits = plain_target_gradients(logits_model, images, TARGETS)
    maps, logits = numpy_backprop(logits_model, images, TARGETS, "plain")
    np.testing.assert_allclose(logits, tf_logits, rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(maps, tf_maps, rtol=RTOL, atol=RTOL * np.abs(tf_maps).max())


# --- gbp_ops against the reference ----------------------------------------------------------

def test_swish_cnn_matches_the_reference():
    assert _assert_matches_reference(gate_models.swish_cnn()) < RTOL


def test_gelu_cnn_matches_the_reference():
    assert _assert_matches_reference(gate_models.gelu_cnn()) < RTOL


def test_every_other_gated_activation_matches_the_reference():
    assert _assert_matches_reference(gate_models.activation_zoo()) < RTOL


def test_the_gate_rule_is_the_guided_relu_at_a_relu():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(64, 32)), tf.float32)
    dy = tf.constant(rng.normal(size=(64, 32)), tf.float32)
    gradients = []
    for activation in (make_gated_activation(keras.activations.relu), make_guided_relu()):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = activation(x)
        gradients.append(tape.gradient(y, x, output_gradients=dy).numpy())
    np.testing.assert_array_equal(gradients[0], gradients[1])
    assert np.count_nonzero(gradients[0]) > 0


def test_guided_gradcam_with_the_gate_rule_matches_the_reference():
    model = gate_models.swish_cnn()
    images = _images(model)
    explainer = make_explainer(model, "guided_gradcam", gradcam_layer="conv_relu", batch_size=4,
                               nonlinearity_rule=GATE)
    gated, _ = numpy_backprop(model, images, TARGETS, "gate")
    expected = gated * numpy_gradcam(model, images, TARGETS, "conv_relu")[..., None]
    maps = explainer.explain(images, TARGETS)
    np.testing.assert_allclose(maps, expected, rtol=RTOL, atol=RTOL * np.abs(expected).max())


# --- forms, nesting, the caller's model -----------------------------------------------------

def _nested_swish():
    inner = keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="inner_conv"),
        keras.layers.Activation("swish", name="inner_swish")], name="backbone")
    inputs = keras.Input((8, 8, 3))
    head = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(3, activation="gelu"),
                             keras.layers.Dense(3)], name="head")
    return keras.Model(inputs, head(inner(inputs)), name="nested")


def test_nested_models_are_gated_and_equal_their_flat_twin():
    nested = _nested_swish()
    flat = keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Activation("swish"),
        keras.layers.Flatten(), keras.layers.Dense(3, activation="gelu"), keras.layers.Dense(3)])
    flat.set_weights(nested.get_weights())
    explainer = GuidedBackprop(nested, batch_size=3, nonlinearity_rule=GATE)
    assert [site.layer for site in explainer.gated_sites] == [
        "backbone/inner_swish", f"head/{nested.layers[-1].layers[1].name}"]
    images = random_images(3, 8, seed=5)
    targets = np.array([0, 1, 2])
    expected, _ = numpy_backprop(flat, images, targets, "gate")
    np.testing.assert_allclose(explainer.explain(images, targets), expected, rtol=RTOL,
                               atol=RTOL * np.abs(expected).max())


@pytest.mark.parametrize("layer", [
    lambda: keras.layers.PReLU(name="act"),
    lambda: keras.layers.ReLU(negative_slope=0.25, name="act"),
], ids=["PReLU", "ReLU(negative_slope)"])
def test_other_dedicated_layers_equal_the_reference_checked_leaky_relu(layer):
    """PReLU (slope 0.25 everywhere) and ReLU(negative_slope=0.25) compute LeakyReLU(0.25),
    which the reference covers; gated, all three must give the same maps."""
    def build(activation_layer):
        return keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(4, 3),
                                 activation_layer, keras.layers.Flatten(),
                                 keras.layers.Dense(3)])

    leaky = build(keras.layers.LeakyReLU(negative_slope=0.25))
    other = build(layer())
    weights = leaky.get_weights()
    if isinstance(other.layers[1], keras.layers.PReLU):
        weights = weights[:2] + [np.full((4, 4, 4), 0.25, np.float32)] + weights[2:]
    other.set_weights(weights)
    images = random_images(3, 6, 2, seed=6) - 0.5
    targets = np.array([0, 1, 2])
    expected, _ = numpy_backprop(leaky, images, targets, "gate")
    explainer = GuidedBackprop(other, batch_size=3, nonlinearity_rule=GATE)
    assert isinstance(explainer._scorer.layers[1], GatedActivationLayer)
    np.testing.assert_allclose(explainer.explain(images, targets), expected, rtol=RTOL,
                               atol=RTOL * np.abs(expected).max())


def test_the_callers_model_is_not_touched():
    model = gate_models.swish_cnn()
    before = [weight.copy() for weight in model.get_weights()]
    activations = [getattr(layer, "activation", None) for layer in model.layers]
    GuidedBackprop(model, batch_size=2, nonlinearity_rule=GATE)
    assert [getattr(layer, "activation", None) for layer in model.layers] == activations
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert not any(isinstance(layer, GatedActivationLayer) for layer in model.layers)


# --- counts, ReLU path, refusal -------------------------------------------------------------

def test_gated_and_guided_sites_are_counted_apart():
    swish = GuidedBackprop(gate_models.swish_cnn(), batch_size=2, nonlinearity_rule=GATE)
    assert [(s.layer, s.form) for s in swish.guided_sites] == [
        ("conv_relu", "Conv2D(activation=relu)")]
    assert [(s.layer, s.form) for s in swish.gated_sites] == [
        ("conv_swish", "Conv2D(activation=silu)"), ("act_silu", "Activation(activation=silu)"),
        ("dense_swish", "Dense(activation=silu)")]
    gelu = GuidedBackprop(gate_models.gelu_cnn(), batch_size=2, nonlinearity_rule=GATE)
    assert gelu.guided_sites == ()
    assert [s.layer for s in gelu.gated_sites] == ["conv_gelu", "act_gelu_tanh", "dense_gelu"]
    zoo = GuidedBackprop(gate_models.activation_zoo(), batch_size=2, nonlinearity_rule=GATE)
    assert [s.layer for s in zoo.guided_sites] == ["dense_relu"]
    assert [s.layer for s in zoo.gated_sites] == (
        [name for name, _ in gate_models.ZOO] + ["leaky_layer", "elu_layer"])
    assert zoo.method_fields()["nonlinearity_rule"] == GATE


def test_a_relu_model_is_bit_identical_under_both_rules():
    model = random_cnn(16)
    images = random_images(5, 16, seed=4)
    refuse = GuidedBackprop(model, batch_size=5)
    gate = GuidedBackprop(model, batch_size=5, nonlinearity_rule=GATE)
    assert gate.gated_sites == () and gate.guided_sites == refuse.guided_sites
    np.testing.assert_array_equal(gate.explain(images), refuse.explain(images))


def test_refused_by_default_with_every_layer_named_in_one_line():
    with pytest.raises(GBPError) as raised:
        GuidedBackprop(gate_models.swish_cnn())
    message = str(raised.value)
    assert message == errors.UNGUIDABLE_ACTIVATIONS.format(
        model="swish_cnn",
        groups="silu (swish) at 3 layers: conv_swish, act_silu, dense_swish",
        remedy=errors.GATE_REMEDY)
    assert "\n" not in message and "explain.nonlinearity_rule: gate" in message


def test_refusal_groups_by_activation_and_counts_the_rest():
    layers = [keras.Input((8,))]
    layers += [keras.layers.Dense(4, activation="gelu", name=f"g{i}") for i in range(7)]
    layers += [keras.layers.LeakyReLU(name="leaky"), keras.layers.Dense(2, name="out")]
    with pytest.raises(GBPError) as raised:
        GuidedBackprop(keras.Sequential(layers, name="many"))
    assert str(raised.value) == errors.UNGUIDABLE_ACTIVATIONS.format(
        model="many", groups="gelu at 7 layers: g0, g1, g2, g3, g4 and 2 more; LeakyReLU at 1 "
        "layer: leaky", remedy=errors.GATE_REMEDY)


def test_what_the_gate_rule_cannot_cover_is_still_refused():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation="swish"),
                              keras.layers.Dense(8, activation="glu", name="gated_linear"),
                              keras.layers.Dense(2)], name="with_glu")
    for rule, also in (("refuse", errors.NOT_GATEABLE_ALSO), (GATE, "")):
        with pytest.raises(GBPError) as raised:
            GuidedBackprop(model, nonlinearity_rule=rule)
        assert "glu at 1 layer: gated_linear" in str(raised.value)
        assert str(raised.value).endswith(errors.NOT_GATEABLE_REMEDY.format(names="glu",
                                                                           also=also))


@pytest.mark.parametrize("kwargs, message", [
    ({"nonlinearity_rule": "smooth"}, "unknown nonlinearity_rule 'smooth'"),
    ({"method": "deconvnet", "nonlinearity_rule": GATE}, "not defined for the deconvnet rule"),
])
def test_bad_gate_options_are_errors(kwargs, message):
    with pytest.raises(GBPError, match=message):
        make_explainer(gate_models.swish_cnn(), batch_size=2, **kwargs)
