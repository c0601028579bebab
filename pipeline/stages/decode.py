"""Header-first decoding: an image's size is read and checked before any pixel is decoded, and
JPEGs are decoded directly at the smallest DCT scale that still covers the model input.

The size comes from the header alone: JPEG via ``tf.image.extract_jpeg_shape``; PNG, GIF, BMP
and WebP by reading the few bytes that TensorFlow's own decoders read. An image over
``preprocess.max_pixels``, or whose header does not parse, is a ``decode`` dead letter and is
never handed to a decoder, so one small file that inflates to gigabytes cannot stall or kill a
worker.
"""

import dataclasses
import struct

import numpy as np
import tensorflow as tf

from pipeline.config import PreprocessConfig
from pipeline.records import STAGE_DECODE, StageError

# libjpeg's DCT scaling factors, largest first: a ratio r gives ceil(H / r) x ceil(W / r).
JPEG_RATIOS = (8, 4, 2, 1)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JXL_SIGNATURES = (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")


def _decode_error(message):
    return StageError(STAGE_DECODE, f"cannot decode image: {message}")


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    """What an encoded image will decode to, read without decoding it.

    Attributes:
        format: ``jpeg``, ``png``, ``gif``, ``bmp`` or ``webp``.
        height, width: the decoded size in pixels.
        frame_pixels: pixels the decoder materialises in all, when more than height x width
            (a GIF's decoder reads every frame); else 0.
        frames: the number of frames (GIF), else 1.
    """

    format: str
    height: int
    width: int
    frame_pixels: int = 0
    frames: int = 1


def sniff_format(data):
    """The format ``tf.io.decode_image`` would pick from the leading bytes, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(_PNG_SIGNATURE):
        return "png"
    if data.startswith(b"GIF8"):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(_JXL_SIGNATURES):
        return "jxl"
    return None


def _unpack(layout, data, offset, what):
    try:
        return struct.unpack_from(layout, data, offset)
    except struct.error:
        raise _decode_error(f"{what} header is truncated") from None


def _png_size(data):
    length, kind, width, height = _unpack(">I4sII", data, 8, "PNG")
    if kind != b"IHDR" or length != 13:
        raise _decode_error("PNG header has no IHDR chunk first")
    return height, width


def _bmp_size(data):
    width, height = _unpack("<ii", data, 18, "BMP")
    return abs(height), abs(width)  # a negative height marks a top-down bitmap


def _webp_size(data):
    kind, = _unpack("4s", data, 12, "WebP")
    if kind == b"VP8X":  # extended format: the canvas, 24 bits per side minus one
        raw = _unpack("6B", data, 24, "WebP")
        return (1 + (raw[3] | raw[4] << 8 | raw[5] << 16),
                1 + (raw[0] | raw[1] << 8 | raw[2] << 16))
    if kind == b"VP8L":  # lossless: 14 bits per side minus one, after the 0x2f signature
        signature, bits = _unpack("<BI", data, 20, "WebP")
        if signature != 0x2F:
            raise _decode_error("WebP lossless header has a bad signature")
        return 1 + (bits >> 14 & 0x3FFF), 1 + (bits & 0x3FFF)
    if kind == b"VP8 ":  # lossy: key frame start code, then 14 bits per side
        start, width, height = _unpack("<3sHH", data, 23, "WebP")
        if start != b"\x9d\x01\x2a":
            raise _decode_error("WebP lossy header has a bad start code")
        return height & 0x3FFF, width & 0x3FFF
    raise _decode_error(f"WebP has an unknown first chunk {kind!r}")


def _skip_sub_blocks(data, offset):
    while offset < len(data) and data[offset]:
        offset += data[offset] + 1
    return offset + 1


def _gif_header(data):
    """TensorFlow's GIF decoder reads every frame (giflib's DGifSlurp) and sizes its output by
    the largest frame, not the logical screen, so the frame descriptors are walked; nothing
    is decompressed."""
    flags, = _unpack("B", data, 10, "GIF")
    offset = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    height = width = total = frames = 0
    while offset < len(data) and data[offset] != 0x3B:  # 0x3B: trailer
        if data[offset] == 0x21:  # extension: label, then sub-blocks
            offset = _skip_sub_blocks(data, offset + 2)
        elif data[offset] == 0x2C:  # image descriptor
            frame_width, frame_height, frame_flags = _unpack("<HHB", data, offset + 5, "GIF")
            height, width = max(height, frame_height), max(width, frame_width)
            total += frame_width * frame_height
            frames += 1
            offset += 10 + (3 << ((frame_flags & 7) + 1) if frame_flags & 0x80 else 0)
            offset = _skip_sub_blocks(data, offset + 1)  # after the LZW minimum code size
        else:
            raise _decode_error(f"GIF has an unknown block 0x{data[offset]:02x}")
    if not frames:
        raise _decode_error("GIF has no image")
    return ImageHeader("gif", height, width, total if frames > 1 else 0, frames)


def _jpeg_size(data):
    try:
        height, width, _ = tf.image.extract_jpeg_shape(data).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        raise _decode_error(f"JPEG header: {_first_line(error)}") from error
    return int(height), int(width)


def read_header(data):
    """Encoded image bytes -> ImageHeader, without decoding any pixel.

    Raises:
        StageError(decode): an unknown format, JPEG XL (whose size is not read here), or a
            header that does not parse.
    """
    kind = sniff_format(data)
    if kind is None:
        raise _decode_error("unknown format (expected JPEG, PNG, GIF, BMP or WebP)")
    if kind == "jxl":
        raise _decode_error("the size of a JPEG XL image is not checked before decoding; "
                            "set preprocess.max_pixels=0 to decode such images unchecked")
    if kind == "gif":
        return _gif_header(data)
    size = {"jpeg": _jpeg_size, "png": _png_size, "bmp": _bmp_size, "webp": _webp_size}[kind]
    return ImageHeader(kind, *size(data))


def check_pixels(height, width, max_pixels, frame_pixels=0, frames=1, skipped="decoded"):
    """Raises StageError(decode) when an image of ``height`` x ``width`` (or its frames,
    ``frame_pixels`` in all) is over ``max_pixels``; 0 allows any size. The message ends
    "it was not <skipped>"."""
    limit = f"the limit preprocess.max_pixels={max_pixels} ({max_pixels / 1e6:g} megapixels)"
    pixels = height * width
    if max_pixels and pixels > max_pixels:
        raise StageError(STAGE_DECODE, f"image is {width}x{height} ({pixels / 1e6:g} megapixels),"
                         f" over {limit}; it was not {skipped}")
    if max_pixels and frame_pixels > max_pixels:
        raise StageError(STAGE_DECODE, f"image is {width}x{height} but its {frames} frames hold "
                         f"{frame_pixels / 1e6:g} megapixels, which the decoder reads in full; "
                         f"over {limit}; it was not {skipped}")


def jpeg_ratio(height, width, target_size):
    """The largest libjpeg scale ratio in ``JPEG_RATIOS`` whose output, ceil(side / ratio),
    still covers ``target_size`` = (height, width) on both sides; 1 when none does."""
    target_height, target_width = target_size
    return next((ratio for ratio in JPEG_RATIOS
                 if -(-height // ratio) >= target_height and -(-width // ratio) >= target_width),
                1)


def _first_line(error):
    return error.message.strip().splitlines()[0] if error.message else "invalid"


def _decode_encoded(data, preprocess, target_size):
    """``(decoded tf.Tensor, (height, width) of the image at full size, or None when it is
    the decoded size)``."""
    kind = sniff_format(data)
    header = None
    if preprocess.max_pixels:
        header = read_header(data)
        check_pixels(header.height, header.width, preprocess.max_pixels, header.frame_pixels,
                     header.frames)
    ratio = 1
    if kind == "jpeg" and preprocess.scaled_jpeg_decode and target_size is not None:
        height, width = (header.height, header.width) if header else _jpeg_size(data)
        ratio = jpeg_ratio(height, width, target_size)
    try:
        if ratio > 1:
            return tf.io.decode_jpeg(data, ratio=ratio), (height, width)
        return tf.io.decode_image(data, expand_animations=False), None
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        raise _decode_error(_first_line(error)) from error


def _decode_raw(data, source):
    dtype = np.dtype(source.raw_dtype)
    expected = int(np.prod(source.raw_shape)) * dtype.itemsize
    if len(data) != expected:
        raise StageError(STAGE_DECODE, f"raw image has {len(data)} bytes; "
                         f"shape {list(source.raw_shape)} of {dtype} needs {expected}")
    return np.frombuffer(data, dtype).reshape(source.raw_shape)


def decode_image(image, source, preprocess=None, target_size=None):
    """Encoded/raw bytes (or an already decoded array) -> numpy ``(H, W, C)``; see
    ``decode_pixels`` for the arguments, limits and errors."""
    return np.asarray(decode_pixels(image, source, preprocess, target_size))


def decode_pixels(image, source, preprocess=None, target_size=None):
    """Encoded/raw bytes (or an already decoded array) -> ``(H, W, C)`` pixels.

    An encoded image stays the decoder's ``tf.Tensor``: resizing it from there holds the
    full-size image once, while ``.numpy()`` and the conversion back for ``tf.image.resize``
    would each copy it.

    Args:
        image: encoded image bytes, raw tensor bytes, or a decoded numpy array.
        source: the SourceConfig (``image_encoding``, ``raw_dtype``, ``raw_shape``).
        preprocess: the PreprocessConfig (``max_pixels``, ``scaled_jpeg_decode``); None for
            the defaults.
        target_size: the model input's (height, width). A JPEG is then decoded at the
            smallest DCT scale whose sides are still >= it; None decodes at full size.

    Returns:
        uint8 ``tf.Tensor`` for encoded images; numpy uint8 for uint8-raw images and float32 in
        [0, 1] for float32-raw images; a decoded array as given. A scaled JPEG is
        ceil(H / r) x ceil(W / r) for its ratio r in ``JPEG_RATIOS``.

    Raises:
        StageError(decode): over ``max_pixels``, a header that does not parse, undecodable
            bytes, raw bytes that do not fit ``raw_shape``, or a shape not (H, W, 1|3|4).
    """
    return decode_pixels_and_size(image, source, preprocess, target_size)[0]


def decode_pixels_and_size(image, source, preprocess=None, target_size=None):
    """``decode_pixels``, and the image's ``(height, width)`` at full size (a scaled JPEG's
    header size; else the decoded size): what preprocessing resized from."""
    preprocess = preprocess or PreprocessConfig()
    full_size = None
    if isinstance(image, np.ndarray):
        array = image
    elif source.image_encoding == "raw":
        array = _decode_raw(image, source)
    else:
        array, full_size = _decode_encoded(image, preprocess, target_size)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4) or min(array.shape[:2]) < 1:
        raise StageError(STAGE_DECODE, f"image shape {list(array.shape)} is not (H, W, 1|3|4)")
    check_pixels(*array.shape[:2], preprocess.max_pixels, skipped="preprocessed")  # raw, arrays
    return array, tuple(full_size or (int(array.shape[0]), int(array.shape[1])))
