"""``precision=``: float32 stays the default with unchanged maps; mixed_bfloat16 (and
mixed_float16) rebuild the model's layers under that Keras policy, keep float32 inputs,
logits and maps, agree with the numpy float32 reference by rank, and leave the process's
global policy and other explainers in float32; SavedModels refuse reduced precision."""

import keras
import numpy as np
import pytest
import scipy.stats

import gbp_ops
from gbp_ops import GBPError, GuidedBackprop, make_explainer
from gbp_ops.precision import SAVEDMODEL_PRECISION, model_under_precision
from tests.gbp_ops.numpy_reference import numpy_guided_backprop
from tests.gbp_ops.toy_models import random_cnn, random_images

SIZE = 16


def _spearman(a, b):
    """Per-image Spearman of |a| and |b| with scipy (independent of gbp_ops.similarity)."""
    return np.array([scipy.stats.spearmanr(np.abs(x).ravel(), np.abs(y).ravel())[0]
                     for x, y in zip(a, b)])


def _compute_dtypes(model):
    return {layer.dtype_policy.compute_dtype for layer in model.layers}


def test_float32_is_the_default_and_its_maps_are_unchanged():
    model = random_cnn(SIZE)
    images = random_images(6, SIZE, seed=2)
    direct = GuidedBackprop(model, batch_size=4).explain_with_outputs(images)
    for explainer in (make_explainer(model, batch_size=4),
                      make_explainer(model, batch_size=4, precision="float32")):
        made = explainer.explain_with_outputs(images)
        np.testing.assert_array_equal(made.maps, direct.maps)
        np.testing.assert_array_equal(made.scores, direct.scores)
    assert model_under_precision(model, "float32") is model
    assert _compute_dtypes(explainer._scorer) == {"float32"}


def test_bfloat16_maps_are_float32_and_rank_like_the_numpy_reference():
    model = random_cnn(SIZE)
    images = random_images(8, SIZE, seed=3)
    targets = np.arange(8) % 5
    reduced = make_explainer(model, batch_size=4, precision="mixed_bfloat16")
    assert "bfloat16" in _compute_dtypes(reduced._scorer)
    weights = [w for layer in reduced._scorer.layers for w in layer.weights]
    assert weights and {w.dtype for w in weights} == {"float32"}

    result = reduced.explain_with_outputs(images, targets)
    assert result.maps.dtype == np.float32 and result.scores.dtype == np.float32
    reference, logits = numpy_guided_backprop(model, images, targets)
    rho = _spearman(result.maps, reference)
    # bf16 keeps 8 mantissa bits: ranks survive, values do not match float32 exactly.
    assert rho.mean() > 0.95 and rho.min() > 0.85, rho
    float32_maps = GuidedBackprop(model, batch_size=4).explain(images, targets)
    assert not np.array_equal(result.maps, float32_maps)
    scale = np.abs(logits).max()
    np.testing.assert_allclose(result.scores, logits, atol=0.05 * scale)


def test_reduced_precision_is_scoped_to_its_explainer():
    model = random_cnn(SIZE)
    make_explainer(model, batch_size=2, precision="mixed_bfloat16")
    assert keras.config.dtype_policy().name == "float32"
    assert _compute_dtypes(model) == {"float32"}  # the caller's model is not touched
    later = make_explainer(model, batch_size=2)
    assert _compute_dtypes(later._scorer) == {"float32"}


def test_nested_models_and_other_methods_under_bfloat16():
    inner = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.ReLU()], name="backbone")
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(
        6, 3, activation="relu", name="top_conv")(inner(inputs)))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    images = random_images(4, SIZE, seed=4)
    reduced = model_under_precision(model, "mixed_bfloat16")
    assert _compute_dtypes(reduced.get_layer("backbone")) == {"bfloat16"}
    for method in ("deconvnet", "guided_gradcam"):
        maps = make_explainer(model, method, batch_size=4, precision="mixed_bfloat16",
                              reduction="max_abs").explain(images)
        expected = make_explainer(model, method, batch_size=4, reduction="max_abs").explain(
            images)
        assert maps.dtype == np.float32 and np.isfinite(maps).all()
        assert _spearman(maps, expected).mean() > 0.9


def test_float16_runs_on_cpu_with_float32_outputs():
    model = random_cnn(SIZE)
    images = random_images(4, SIZE, seed=5)
    maps = make_explainer(model, batch_size=4, precision="mixed_float16").explain(images)
    assert maps.dtype == np.float32 and np.isfinite(maps).all()
    expected = GuidedBackprop(model, batch_size=4).explain(images)
    assert _spearman(maps, expected).mean() > 0.95


def test_unknown_precision_and_savedmodel_are_refused(tmp_path):
    model = random_cnn(SIZE)
    with pytest.raises(GBPError, match="unknown precision 'bfloat16'; expected one of: float32"):
        make_explainer(model, precision="bfloat16")
    model.export(str(tmp_path / "exported"), verbose=False)
    source = gbp_ops.load_model(str(tmp_path / "exported"))
    with pytest.raises(GBPError) as raised:
        make_explainer(source, precision="mixed_bfloat16")
    assert str(raised.value) == SAVEDMODEL_PRECISION.format(precision="mixed_bfloat16")
