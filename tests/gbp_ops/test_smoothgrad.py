"""SmoothGrad over every method: the degenerate case equals the method, a per-example loop over
explicitly noisy copies is the reference, and the noise depends only on each example's seed."""

import hashlib

import numpy as np
import pytest
import tensorflow as tf

from gbp_ops import GBPError, make_explainer, seed_from_id, seeds_from_ids
from gbp_ops.choices import METHODS
from tests.gbp_ops.toy_models import assert_eager_safe, random_cnn, random_images

SIZE = 16


@pytest.fixture(scope="module")
def model():
    return random_cnn(SIZE)


@pytest.mark.parametrize("method", METHODS)
def test_one_sample_without_noise_equals_the_plain_method(model, method):
    images = random_images(5, SIZE, seed=1)
    for reduction in (None, "max_abs"):
        plain = make_explainer(model, method, batch_size=4, reduction=reduction)
        smooth = make_explainer(model, method, batch_size=4, reduction=reduction,
                                smoothgrad_samples=1, smoothgrad_sigma=0.0)
        expected = plain.explain_with_outputs(images)
        got = smooth.explain_with_outputs(images, seeds=seeds_from_ids("abcde"))
        np.testing.assert_array_equal(got.maps, expected.maps)
        np.testing.assert_array_equal(got.targets, expected.targets)
        np.testing.assert_array_equal(got.scores, expected.scores)


@pytest.mark.parametrize("method", METHODS)
def test_matches_a_loop_over_explicitly_noisy_copies(model, method):
    images = random_images(3, SIZE, seed=2)
    images[1] *= 3.0  # another input range, so sigma differs per example
    seeds = np.array([11, 2**62 + 5, 7], np.int64)
    samples, fraction = 4, 0.2
    smooth = make_explainer(model, method, batch_size=3, smoothgrad_samples=samples,
                            smoothgrad_sigma=fraction).explain_with_outputs(images, seeds=seeds)

    plain = make_explainer(model, method, batch_size=1)
    clean = plain.explain_with_outputs(images)
    np.testing.assert_array_equal(smooth.targets, clean.targets)
    for index, image in enumerate(images):
        sigma = fraction * (image.max() - image.min())
        noisy = np.stack([
            image + sigma * tf.random.stateless_normal(
                image.shape, tf.constant([seeds[index], sample], tf.int64)).numpy()
            for sample in range(samples)])
        maps = plain.explain(noisy, np.full(samples, clean.targets[index]))
        np.testing.assert_allclose(smooth.maps[index], maps.mean(axis=0), rtol=1e-4,
                                   atol=1e-4 * np.abs(maps).max())
    assert not np.allclose(smooth.maps, clean.maps, rtol=1e-3, atol=1e-6)


def test_reruns_are_bit_identical_and_the_noise_follows_the_seed(model):
    images = random_images(6, SIZE, seed=3)
    seeds = seeds_from_ids([f"example-{i}" for i in range(6)])

    def run(batch_size, order=slice(None)):
        explainer = make_explainer(model, "guided_backprop", batch_size=batch_size,
                                   smoothgrad_samples=3, smoothgrad_sigma=0.3)
        return explainer.explain(images[order], seeds=seeds[order])

    first = run(4)
    np.testing.assert_array_equal(first, run(4))
    # Another batching or order gives the same noise per example (sums may round differently).
    reordered = run(5, slice(None, None, -1))[::-1]
    np.testing.assert_allclose(reordered, first, rtol=1e-5, atol=1e-6 * np.abs(first).max())
    other_seeds = make_explainer(model, batch_size=4, smoothgrad_samples=3,
                                 smoothgrad_sigma=0.3).explain(images, seeds=seeds + 1)
    assert not np.allclose(other_seeds, first, rtol=1e-3, atol=1e-6)


def test_seed_from_id_is_a_stable_63_bit_hash():
    expected = int.from_bytes(hashlib.sha256(b"img/42").digest()[:8], "big") % 2**63
    assert seed_from_id("img/42") == expected
    seeds = seeds_from_ids(["a", "b", "img/42"])
    assert seeds.dtype == np.int64 and seeds[2] == expected and seeds[0] != seeds[1]
    assert (seeds >= 0).all()


def test_bad_seeds_raise(model):
    explainer = make_explainer(model, batch_size=2, smoothgrad_samples=2)
    with pytest.raises(GBPError, match=r"seeds must be one int per image, shape \(3,\)"):
        explainer.explain(random_images(3, SIZE), seeds=np.zeros(2, np.int64))


def test_eager_equals_the_compiled_step(model):
    images = random_images(3, SIZE, seed=4)
    options = {"batch_size": 3, "smoothgrad_samples": 2, "smoothgrad_sigma": 0.2}
    compiled = make_explainer(model, "guided_gradcam", **options).explain(images)
    assert_eager_safe(model)
    eager = make_explainer(model, "guided_gradcam", compile=False, **options).explain(images)
    np.testing.assert_allclose(eager, compiled, rtol=1e-5, atol=1e-6 * np.abs(compiled).max())
