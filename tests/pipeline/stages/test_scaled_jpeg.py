"""Scaled JPEG decoding (libjpeg DCT scaling, then resize) gives model inputs and GBP map
statistics that match full decoding on a smooth 2000x1500 photo, within stated tolerances.

Tolerances. The image is a sum of sinusoids with periods of 600-1100 source pixels, at least
67 pixels at the 224-pixel model input, far below the Nyquist limit of the model input and of a
1/4-scale decode. So any correct downscale equals the function sampled at the output pixel
centres (the independent reference), up to the codec's error: JPEG at quality 90 moves pixels
by 1-2 levels of 255, plus 0.5 from storing uint8. A mean absolute difference of 0.01 in [0, 1]
units (2.5 levels) allows that with a margin and fails for a shifted, flipped, wrongly scaled or
aliased image (each moves a smooth image by tens of levels). Full decoding resizes single
pixels, so its codec noise is not averaged and it sits further from the reference than the
scaled decode, whose DCT scaling averages 4x4 blocks.

GBP maps are input gradients: pixel by pixel they react to codec noise (maps from full and
scaled decoding correlate at only about 0.7 on this image), but the per-example statistics the
audit reports are integrals over the map. Those must agree: total mass within 5%, centre of
mass within 0.01 of the side, top-5% share and normalised entropy within 0.02.
"""

import numpy as np
import pytest
import tensorflow as tf

from demo.reference_model import build_reference_model
from gbp_ops import GuidedBackprop
from pipeline.config import PreprocessConfig, SourceConfig
from pipeline.stages import preprocess
from pipeline.stages.decode import decode_image
from tests.gbp_ops.toy_models import randomize_batchnorm

HEIGHT, WIDTH, SIDE = 1500, 2000, 224


def _smooth(y, x):
    """The photo as a function of continuous pixel coordinates: float64 (..., 3) in [0, 255]."""
    return np.stack([128 + 90 * np.sin(2 * np.pi * x / 700) * np.cos(2 * np.pi * y / 900),
                     128 + 80 * np.cos(2 * np.pi * (x + y) / 1100),
                     128 + 70 * np.sin(2 * np.pi * y / 600)], axis=-1)


def _sampled(height, width, scale_y=1.0, scale_x=1.0):
    centres_y = (np.arange(height) + 0.5) * scale_y
    centres_x = (np.arange(width) + 0.5) * scale_x
    return _smooth(*np.meshgrid(centres_y, centres_x, indexing="ij"))


@pytest.fixture(scope="module")
def inputs():
    """{'full', 'scaled', 'reference'} -> float32 (224, 224, 3) model inputs in [0, 1]."""
    photo = np.clip(np.rint(_sampled(HEIGHT, WIDTH)), 0, 255).astype(np.uint8)
    jpeg = tf.io.encode_jpeg(photo, quality=90).numpy()
    source = SourceConfig(pattern="x")
    result = {}
    for name, scaled in (("full", False), ("scaled", True)):
        config = PreprocessConfig(scaled_jpeg_decode=scaled)
        decoded = decode_image(jpeg, source, config, (SIDE, SIDE))
        assert decoded.shape == ((375, 500, 3) if scaled else (HEIGHT, WIDTH, 3))
        result[name] = preprocess.preprocess_image(decoded, (SIDE, SIDE, 3), config)
    reference = _sampled(SIDE, SIDE, HEIGHT / SIDE, WIDTH / SIDE) / 255.0
    result["reference"] = reference.astype(np.float32)
    return result


@pytest.mark.parametrize("first, second", [("full", "reference"), ("scaled", "reference"),
                                           ("scaled", "full")])
def test_model_inputs_match_within_codec_error(inputs, first, second):
    difference = np.abs(inputs[first] - inputs[second])
    assert difference.mean() < 0.01
    assert difference.max() < 0.04


def _statistics(saliency):
    """(H, W) |map| -> total mass, centre of mass (y, x) in [0, 1], top-5% share, entropy."""
    total = saliency.sum()
    share = saliency / total
    rows, cols = np.mgrid[0:saliency.shape[0], 0:saliency.shape[1]] + 0.5
    ordered = np.sort(saliency.ravel())[::-1]
    positive = share[share > 0]
    return {"total_mass": total,
            "center_y": (share * rows).sum() / saliency.shape[0],
            "center_x": (share * cols).sum() / saliency.shape[1],
            "top5_share": ordered[: int(0.05 * ordered.size)].sum() / total,
            "entropy": -(positive * np.log(positive)).sum() / np.log(saliency.size)}


def test_gbp_map_statistics_match(inputs):
    model = build_reference_model(SIDE, width_divisor=8, seed=0)
    randomize_batchnorm(model, np.random.default_rng(0))
    names = ("full", "scaled", "reference")
    maps = GuidedBackprop(model, batch_size=3).explain(np.stack([inputs[n] for n in names]))
    stats = dict(zip(names, (_statistics(m) for m in np.abs(maps).max(axis=-1)), strict=True))
    for first, second in (("scaled", "full"), ("full", "reference"), ("scaled", "reference")):
        a, b = stats[first], stats[second]
        assert a["total_mass"] == pytest.approx(b["total_mass"], rel=0.05)
        for key in ("center_y", "center_x"):
            assert a[key] == pytest.approx(b[key], abs=0.01)
        for key in ("top5_share", "entropy"):
            assert a[key] == pytest.approx(b[key], abs=0.02)
