"""Decoding branches the other tests never reach, against the real decoders (TensorFlow and
PIL): GIF frames of different sizes in one file, a two-frame GIF exactly at the pixel limit, a
top-down BMP (negative height), and preprocessing's box feature and RGB-to-gray display."""

import io
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pipeline.config import PreprocessConfig, SourceConfig
from pipeline.records import StageError
from pipeline.stages import decode, preprocess

SOURCE = SourceConfig(pattern="x")


def _single_frame_gif(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, "GIF")
    return buffer.getvalue()


def _split_gif(data):
    """(header with the logical screen and global table, the image block) of a one-frame GIF,
    skipping extensions; written from the GIF89a layout."""
    flags = data[10]
    offset = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    header_end = offset
    while data[offset] == 0x21:  # extension: introducer, label, sub-blocks
        offset += 2
        while data[offset]:
            offset += data[offset] + 1
        offset += 1
    start = offset
    local = data[offset + 9]
    offset += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0) + 1  # + LZW code size
    while data[offset]:
        offset += data[offset] + 1
    return data[:header_end], data[start:offset + 1]


def _two_frame_gif(first, second, screen_from=0):
    """A GIF whose frames are the two uint8 gray arrays, in this order, and whose logical
    screen (and colour table) is the first or the second frame's."""
    parts = [_split_gif(_single_frame_gif(frame)) for frame in (first, second)]
    return parts[screen_from][0] + parts[0][1] + parts[1][1] + b"\x3b"


def _frames(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (20, 30), dtype=np.uint8),
            rng.integers(0, 256, (5, 10), dtype=np.uint8))


@pytest.mark.parametrize("order,screen_from", [("large-first", 0), ("small-first", 0),
                                                ("small-first", 1)])
def test_gif_frames_of_different_sizes_are_sized_like_tensorflow_decodes_them(order,
                                                                              screen_from):
    large, small = _frames()
    first, second = (large, small) if order == "large-first" else (small, large)
    data = _two_frame_gif(first, second, screen_from)
    reopened = Image.open(io.BytesIO(data))
    assert reopened.n_frames == 2
    header = decode.read_header(data)
    decoded = tf.io.decode_image(data, expand_animations=False)
    assert (header.height, header.width) == tuple(decoded.shape[:2]) == (20, 30)
    assert header.frames == 2
    assert header.frame_pixels == 20 * 30 + 5 * 10


def test_a_two_frame_gif_exactly_at_the_limit_is_decoded_and_one_pixel_over_is_not():
    data = _two_frame_gif(*_frames(1))
    total = 20 * 30 + 5 * 10
    decoded = decode.decode_image(data, SOURCE, PreprocessConfig(max_pixels=total))
    assert decoded.shape == (20, 30, 3)
    with pytest.raises(StageError, match="its 2 frames hold 0.00065 megapixels") as raised:
        decode.decode_image(data, SOURCE, PreprocessConfig(max_pixels=total - 1))
    assert raised.value.stage == "decode"


def _top_down_bmp(image):
    """``image`` as a BMP whose rows are stored top first (negative height), from PIL's
    bottom-up file."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "BMP")
    data = bytearray(buffer.getvalue())
    offset, = struct.unpack_from("<I", data, 10)
    width, height = struct.unpack_from("<ii", data, 18)
    stride = (width * 3 + 3) // 4 * 4
    rows = [bytes(data[offset + r * stride:offset + (r + 1) * stride]) for r in range(height)]
    flipped = bytearray(data[:offset] + b"".join(reversed(rows)) + data[offset + height * stride:])
    struct.pack_into("<i", flipped, 22, -height)
    return bytes(flipped)


def test_a_top_down_bmp_has_a_positive_size_and_counts_against_the_limit():
    image = np.random.default_rng(2).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    data = _top_down_bmp(image)
    assert struct.unpack_from("<i", data, 22)[0] == -7
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), image)
    header = decode.read_header(data)
    assert (header.format, header.height, header.width) == ("bmp", 7, 5)
    np.testing.assert_array_equal(decode.decode_image(data, SOURCE, PreprocessConfig()), image)
    with pytest.raises(StageError, match="image is 5x7 "):
        decode.decode_image(data, SOURCE, PreprocessConfig(max_pixels=34))
    assert decode.decode_image(data, SOURCE, PreprocessConfig(max_pixels=35)).shape == (7, 5, 3)


def _example(box):
    image = tf.io.encode_png(np.zeros((4, 4, 3), np.uint8)).numpy()
    feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
               "box": tf.train.Feature(float_list=tf.train.FloatList(value=box))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.mark.parametrize("box", [[0.0, 0.25, 0.5, 0.75, 1.0], [0.0, 0.25, 0.5], []])
def test_a_box_feature_needs_exactly_four_floats(box):
    source = SourceConfig(pattern="x", image_key="image", label_key=None, id_key=None,
                          box_key="box")
    with pytest.raises(StageError, match="feature 'box' must hold 4 floats") as raised:
        preprocess.parse_tf_example("shard:0", _example(box), source)
    assert raised.value.stage == "parse"
    parsed = preprocess.parse_tf_example("shard:1", _example([0.0, 0.25, 0.5, 0.75]), source)
    np.testing.assert_array_equal(parsed.box, [0.0, 0.25, 0.5, 0.75])


def test_rgb_to_gray_display_is_the_rounded_gray_image():
    """An 8-bit RGB image at the model's size for a gray model: the display is the gray image
    rounded (not truncated) to uint8, repeated to three channels."""
    image = np.random.default_rng(3).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    inputs, display = preprocess.preprocess_with_display(image, (6, 7, 1),
                                                         PreprocessConfig(scaling="unit"))
    gray = image.astype(np.float64) @ np.array([0.2989, 0.5870, 0.1140])
    assert np.abs(gray - np.floor(gray)).max() > 0.5  # some pixels round up
    np.testing.assert_allclose(inputs[..., 0], gray / 255.0, rtol=1e-5)
    assert (display == display[..., :1]).all()
    assert np.abs(display[..., 0] - gray).max() <= 0.5 + 1e-4
    clear = np.abs(gray - np.floor(gray) - 0.5) > 1e-3  # away from a rounding tie
    np.testing.assert_array_equal(display[..., 0][clear], np.rint(gray)[clear])
