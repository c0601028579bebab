"""Decoding, channel conversion, resizing and scaling, against values computed by hand."""

import numpy as np
import pytest
import tensorflow as tf

from pipeline import images
from pipeline.config import PreprocessConfig, SourceConfig
from pipeline.records import StageError
from pipeline.stages import decode, preprocess


def test_scalings_by_hand():
    pixel = np.array([[[255.0, 0.0, 127.5]]], np.float32)
    np.testing.assert_allclose(images.scale_pixels(pixel, "unit"), [[[1.0, 0.0, 0.5]]])
    np.testing.assert_allclose(images.scale_pixels(pixel, "symmetric"), [[[1.0, -1.0, 0.0]]])
    np.testing.assert_allclose(
        images.scale_pixels(pixel, "imagenet"),
        [[[(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0.5 - 0.406) / 0.225]]], rtol=1e-6)
    np.testing.assert_allclose(images.scale_pixels(pixel, "caffe"),
                               [[[127.5 - 103.939, 0.0 - 116.779, 255.0 - 123.68]]], rtol=1e-6)


def test_channel_conversions():
    gray = np.full((2, 2, 1), 10.0, np.float32)
    assert preprocess.convert_channels(gray, 3).shape == (2, 2, 3)
    rgba = np.concatenate([np.full((2, 2, 3), 7.0), np.zeros((2, 2, 1))], axis=-1)
    np.testing.assert_array_equal(preprocess.convert_channels(rgba, 3), np.full((2, 2, 3), 7.0))
    rgb = np.zeros((1, 1, 3), np.float32)
    rgb[0, 0] = [100.0, 50.0, 10.0]
    expected = 0.2989 * 100 + 0.5870 * 50 + 0.1140 * 10
    assert preprocess.convert_channels(rgb, 1)[0, 0, 0] == pytest.approx(expected, rel=1e-5)


def test_preprocess_resizes_and_scales_like_tf():
    image = np.random.default_rng(0).integers(0, 256, (10, 14, 1), dtype=np.uint8)
    result = preprocess.preprocess_image(image, (8, 8, 3), PreprocessConfig(scaling="unit"))
    expected = tf.image.resize(np.repeat(image, 3, -1).astype(np.float32), (8, 8)).numpy() / 255
    assert result.shape == (8, 8, 3) and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-6)


def test_decode_png_jpeg_and_raw():
    image = np.random.default_rng(1).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    source = SourceConfig(pattern="x")
    np.testing.assert_array_equal(
        decode.decode_image(tf.io.encode_png(image).numpy(), source), image)
    jpeg = decode.decode_image(tf.io.encode_jpeg(image).numpy(), source)
    assert jpeg.shape == (6, 5, 3)
    raw = SourceConfig(pattern="x", image_encoding="raw", raw_dtype="uint8", raw_shape=(6, 5, 3))
    np.testing.assert_array_equal(decode.decode_image(image.tobytes(), raw), image)
    float_raw = SourceConfig(pattern="x", image_encoding="raw", raw_dtype="float32",
                             raw_shape=(6, 5, 3))
    as_float = (image / 255.0).astype(np.float32)
    decoded = decode.decode_image(as_float.tobytes(), float_raw)
    np.testing.assert_allclose(preprocess.to_pixel_range(decoded), image, rtol=1e-5)


@pytest.mark.parametrize(
    "data, source, message",
    [
        (b"not an image", SourceConfig(pattern="x"), "cannot decode image"),
        (b"\x00" * 7, SourceConfig(pattern="x", image_encoding="raw", raw_shape=(2, 2, 3)),
         "raw image has 7 bytes; shape [2, 2, 3] of uint8 needs 12"),
    ],
)
def test_decode_errors_are_stage_errors(data, source, message):
    with pytest.raises(StageError) as raised:
        decode.decode_image(data, source)
    assert raised.value.stage == "decode" and message in str(raised.value)


def test_non_finite_pixels_fail_preprocess():
    image = np.zeros((2, 2, 3), np.float32)
    image[0, 0, 0] = np.nan
    with pytest.raises(StageError, match="non-finite"):
        preprocess.preprocess_image(image, (2, 2, 3), PreprocessConfig())


def test_label_target_policy_needs_a_label():
    assert preprocess.resolve_target("predicted", None, 3) == -1
    assert preprocess.resolve_target("label", None, 3) == 3
    assert preprocess.resolve_target("predicted", 5, None) == 5
    with pytest.raises(StageError, match="no label"):
        preprocess.resolve_target("label", None, None)


@pytest.mark.parametrize("method", ["bilinear", "nearest", "bicubic", "area"])
def test_uint8_resize_equals_resizing_as_float32(method):
    image = np.random.default_rng(2).integers(0, 256, (37, 51, 3), dtype=np.uint8)
    expected = tf.image.resize(image.astype(np.float32), (16, 24), method=method).numpy()
    result = preprocess.resize_uint8(image, (16, 24), method)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, expected)


def test_large_uint8_image_matches_converting_to_float_first():
    # the previous order: float32 at full size, drop alpha, resize, then scale
    image = np.random.default_rng(3).integers(0, 256, (90, 70, 4), dtype=np.uint8)
    config = PreprocessConfig(scaling="imagenet", resize_method="bicubic")
    result, display = preprocess.preprocess_with_display(image, (20, 30, 3), config)
    resized = tf.image.resize(image[..., :3].astype(np.float32), (20, 30), method="bicubic")
    expected = (resized.numpy() / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(display, np.clip(np.rint(resized.numpy()), 0, 255))


def test_large_rgb_image_to_a_gray_model():
    image = np.random.default_rng(4).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    result, display = preprocess.preprocess_with_display(image, (10, 10, 1), PreprocessConfig())
    gray = image.astype(np.float32) @ np.array([0.2989, 0.5870, 0.1140], np.float32)
    expected = tf.image.resize(gray[..., None], (10, 10)).numpy() / 255.0
    assert result.shape == (10, 10, 1) and display.shape == (10, 10, 3)
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_uint8_image_at_model_size_is_exactly_as_before(channels):
    image = np.random.default_rng(5).integers(0, 256, (64, 64, channels), dtype=np.uint8)
    result, display = preprocess.preprocess_with_display(image, (64, 64, 3), PreprocessConfig())
    rgb = np.repeat(image, 3, axis=-1) if channels == 1 else image
    np.testing.assert_array_equal(result, rgb.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(display, rgb)


@pytest.mark.parametrize("input_shape", [(16, 16, 3), (50, 40, 3), (50, 40, 1)])
def test_a_decoded_tensor_is_preprocessed_like_its_array(input_shape):
    image = np.random.default_rng(6).integers(0, 256, (50, 40, 4), dtype=np.uint8)
    from_tensor = preprocess.preprocess_with_display(tf.constant(image), input_shape,
                                                     PreprocessConfig())
    from_array = preprocess.preprocess_with_display(image, input_shape, PreprocessConfig())
    for tensor_part, array_part in zip(from_tensor, from_array, strict=True):
        assert isinstance(tensor_part, np.ndarray)
        np.testing.assert_array_equal(tensor_part, array_part)


@pytest.mark.parametrize("scaling", ["unit", "symmetric", "imagenet", "caffe"])
@pytest.mark.parametrize("source_shape,channels", [((20, 30, 3), 3), ((20, 30, 1), 1)])
def test_model_input_from_display_rebuilds_an_unresized_8_bit_input(scaling, source_shape,
                                                                     channels):
    """8-bit images already at the model's size: the findings sample keeps only the display
    image, and the occlusion test's model input rebuilt from it is the prepared one."""
    if scaling == "caffe" and channels == 1:
        pytest.skip("caffe scaling needs 3 channels")
    image = np.random.default_rng(4).integers(0, 256, source_shape, np.uint8)
    config = PreprocessConfig(scaling=scaling)
    inputs, displays = zip(*(preprocess.preprocess_with_display(image, (20, 30, channels),
                                                                config) for _ in range(2)))
    rebuilt = images.model_input_from_display(np.stack(displays), channels, scaling)
    np.testing.assert_array_equal(rebuilt, np.stack(inputs))


@pytest.mark.parametrize("image,channels", [
    (np.random.default_rng(5).random((12, 16, 3)).astype(np.float32), 3),  # float source
    (np.random.default_rng(6).integers(0, 256, (12, 16, 3), np.uint8), 3),  # resized
    (np.random.default_rng(7).integers(0, 256, (20, 30, 3), np.uint8), 1),  # RGB -> gray
])
def test_model_input_from_display_is_within_half_a_grey_level_otherwise(image, channels):
    inputs, display = preprocess.preprocess_with_display(image, (20, 30, channels),
                                                         PreprocessConfig(scaling="unit"))
    rebuilt = images.model_input_from_display(display, channels, "unit")
    assert rebuilt.shape == inputs.shape
    assert np.abs(rebuilt - inputs).max() <= 0.5 / 255 + 1e-6
