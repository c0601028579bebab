"""Header-first decoding: sizes read from headers match PIL and TensorFlow's decoders, images
over the pixel limit are never decoded, and JPEGs decode at the right DCT scale."""

import io
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pipeline.config import PreprocessConfig, SourceConfig
from pipeline.records import StageError
from pipeline.stages import decode

SOURCE = SourceConfig(pattern="x")


def _pil_bytes(array, fmt, **options):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def _random(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _png_chunk(kind, payload):
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


def _png_header_only(width, height):
    """The first 33 bytes of a PNG (signature + IHDR): enough for a size, nothing to decode."""
    return (b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)))


def _gif_with_frame(screen, frame):
    """A GIF whose logical screen and one frame descriptor have the given (width, height);
    its pixel data is a token: only the structure is read."""
    return (b"GIF89a" + struct.pack("<HHBBB", *screen, 0, 0, 0)
            + b"\x21\xf9\x04\x00\x00\x00\x00\x00"  # a graphic control extension
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, *frame, 0)
            + b"\x02\x02\x44\x01\x00" + b"\x3b")


CASES = {
    "png-rgb": lambda: _pil_bytes(_random((23, 41, 3)), "PNG"),
    "png-gray16": lambda: _pil_bytes(_random((17, 9)).astype(np.uint16) * 257, "PNG"),
    "png-rgba": lambda: _pil_bytes(_random((5, 8, 4)), "PNG"),
    "jpeg": lambda: _pil_bytes(_random((31, 47, 3)), "JPEG"),
    "jpeg-gray": lambda: _pil_bytes(_random((40, 12)), "JPEG"),
    "gif": lambda: _pil_bytes(_random((19, 33, 3)), "GIF"),
    "bmp": lambda: _pil_bytes(_random((13, 21, 3)), "BMP"),
    "webp-lossy": lambda: _pil_bytes(_random((27, 35, 3)), "WEBP", quality=80),
    "webp-lossless": lambda: _pil_bytes(_random((27, 35, 3)), "WEBP", lossless=True),
    "webp-extended": lambda: _pil_bytes(_random((27, 35, 4)), "WEBP", quality=80),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_header_size_matches_pil_and_the_decoded_shape(name):
    data = CASES[name]()
    header = decode.read_header(data)
    assert header.format == name.split("-")[0]
    width, height = Image.open(io.BytesIO(data)).size
    assert (header.height, header.width) == (height, width)
    decoded = tf.io.decode_image(data, expand_animations=False)
    assert (header.height, header.width) == tuple(decoded.shape[:2])


def test_each_webp_variant_is_exercised():
    assert [CASES[f"webp-{kind}"]()[12:16] for kind in ("lossy", "lossless", "extended")] == [
        b"VP8 ", b"VP8L", b"VP8X"]


def test_gif_size_is_the_largest_frame_as_tensorflow_decodes_it():
    # A logical screen smaller than the frame: TensorFlow sizes its output by the frame.
    data = bytearray(CASES["gif"]())
    data[6:10] = struct.pack("<HH", 3, 2)
    header = decode.read_header(bytes(data))
    decoded = tf.io.decode_image(bytes(data), expand_animations=False)
    assert (header.height, header.width) == tuple(decoded.shape[:2]) == (19, 33)


def test_animated_gif_counts_every_frame():
    frames = [Image.fromarray(_random((16, 24, 3), seed)) for seed in range(5)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], optimize=False)
    header = decode.read_header(buffer.getvalue())
    reopened = Image.open(io.BytesIO(buffer.getvalue()))
    assert header.frames == reopened.n_frames == 5
    assert (header.height, header.width) == (16, 24)
    # noise frames differ everywhere, so each frame is stored whole
    assert header.frame_pixels == 5 * 16 * 24


def test_a_bomb_png_is_rejected_from_its_header_without_decoding(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the decoder must not be called")

    monkeypatch.setattr(tf.io, "decode_image", never)
    monkeypatch.setattr(tf.io, "decode_jpeg", never)
    with pytest.raises(StageError) as raised:
        decode.decode_image(_png_header_only(20000, 20000), SOURCE, PreprocessConfig())
    assert raised.value.stage == "decode"
    message = str(raised.value)
    assert "20000x20000 (400 megapixels)" in message
    assert "preprocess.max_pixels=50000000 (50 megapixels)" in message
    assert message.endswith("it was not decoded")


def test_width_and_height_are_not_swapped_in_the_message():
    with pytest.raises(StageError, match="300x20 "):
        decode.decode_image(_png_header_only(300, 20), SOURCE, PreprocessConfig(max_pixels=5000))


def test_a_gif_frame_larger_than_its_screen_is_checked():
    with pytest.raises(StageError, match="30000x20000"):
        decode.decode_image(_gif_with_frame((1, 1), (30000, 20000)), SOURCE, PreprocessConfig())


def test_many_gif_frames_count_against_the_limit():
    frames = [Image.fromarray(_random((16, 24, 3), seed)) for seed in range(5)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], optimize=False)
    small_limit = PreprocessConfig(max_pixels=3 * 16 * 24)
    with pytest.raises(StageError, match="its 5 frames hold 0.00192 megapixels"):
        decode.decode_image(buffer.getvalue(), SOURCE, small_limit)
    assert decode.decode_image(buffer.getvalue(), SOURCE, PreprocessConfig()).shape == (16, 24, 3)


def test_a_zero_limit_turns_the_check_off():
    data = CASES["png-rgb"]()
    with pytest.raises(StageError, match="41x23"):
        decode.decode_image(data, SOURCE, PreprocessConfig(max_pixels=100))
    decoded = decode.decode_image(data, SOURCE, PreprocessConfig(max_pixels=0))
    np.testing.assert_array_equal(decoded, np.asarray(Image.open(io.BytesIO(data))))


def test_raw_tensors_and_decoded_arrays_are_checked_too():
    raw = SourceConfig(pattern="x", image_encoding="raw", raw_shape=(20, 30, 3))
    with pytest.raises(StageError, match="30x20 .* it was not preprocessed"):
        decode.decode_image(bytes(1800), raw, PreprocessConfig(max_pixels=599))
    with pytest.raises(StageError, match="30x20"):
        decode.decode_image(np.zeros((20, 30, 3), np.uint8), SOURCE,
                            PreprocessConfig(max_pixels=599))
    assert decode.decode_image(bytes(1800), raw, PreprocessConfig(max_pixels=600)).shape == (
        20, 30, 3)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "PNG header is truncated"),
        (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"tEXt", b"0123456789abc"), "no IHDR"),
        (b"BM\x00\x00", "BMP header is truncated"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(14),
         "bad start code"),
        (b"RIFF\x00\x00\x00\x00WEBPXXXX", "unknown first chunk"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00\x3b", "GIF has no image"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00\x99", "unknown block 0x99"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG header"),
        (b"not an image", "unknown format"),
        (b"\xff\x0a\xfa\x7f", "set preprocess.max_pixels=0"),
    ],
)
def test_a_header_that_does_not_parse_is_a_decode_dead_letter(data, message):
    with pytest.raises(StageError) as raised:
        decode.decode_image(data, SOURCE, PreprocessConfig())
    assert raised.value.stage == "decode"
    assert "cannot decode image" in str(raised.value) and message in str(raised.value)


def _scaled_shapes(data):
    """ratio -> (height, width) as libjpeg decodes it: the reference for the ratio choice."""
    return {ratio: tuple(tf.io.decode_jpeg(data, ratio=ratio).shape[:2])
            for ratio in decode.JPEG_RATIOS}


@pytest.mark.parametrize("size, target", [
    ((1500, 2000), (224, 224)),
    ((1792, 1800), (224, 224)),  # exactly 8x: 1/8 scale still covers
    ((1785, 1785), (224, 224)),  # ceil(1785 / 8) = 224
    ((1784, 3000), (224, 224)),  # ceil(1784 / 8) = 223: only 1/4
    ((500, 400), (224, 224)),
    ((100, 300), (64, 64)),
    ((300, 1000), (224, 112)),
    ((50, 80), (224, 224)),  # smaller than the model input: full scale, then upsampled
])
def test_jpeg_ratio_is_the_largest_scale_that_covers_the_model_input(size, target):
    data = tf.io.encode_jpeg(np.full((*size, 3), 90, np.uint8)).numpy()
    shapes = _scaled_shapes(data)
    covering = [ratio for ratio, (height, width) in shapes.items()
                if height >= target[0] and width >= target[1]]
    ratio = decode.jpeg_ratio(*size, target)
    assert ratio == max(covering, default=1)
    decoded = decode.decode_image(data, SOURCE, PreprocessConfig(), target)
    assert decoded.shape[:2] == shapes[ratio]


def test_scaled_decoding_can_be_turned_off_and_needs_a_target():
    data = tf.io.encode_jpeg(np.full((600, 800, 3), 90, np.uint8)).numpy()
    assert decode.decode_image(data, SOURCE, PreprocessConfig(), (64, 64)).shape == (75, 100, 3)
    off = PreprocessConfig(scaled_jpeg_decode=False)
    assert decode.decode_image(data, SOURCE, off, (64, 64)).shape == (600, 800, 3)
    assert decode.decode_image(data, SOURCE, PreprocessConfig()).shape == (600, 800, 3)


def test_jpeg_at_full_scale_decodes_exactly_as_before():
    data = CASES["jpeg"]()
    np.testing.assert_array_equal(
        decode.decode_image(data, SOURCE, PreprocessConfig(), (31, 47)),
        tf.io.decode_image(data, expand_animations=False).numpy())
