"""Real photos for the real-model tests, as packages ship them, and an independent account of
what preprocessing should make of them.

The photos: matplotlib's ``grace_hopper.jpg`` (512x600, a face) and scikit-learn's
``china.jpg`` and ``flower.jpg`` (640x427), found through the packages' install folders
without importing either. ``IMAGES`` crops them into a mixed set: the whole photos as shipped,
a face crop, crops from 9 to 1280 pixels a side, grey, RGB and RGBA, PNG and JPEG.

``independent_input`` prepares an image without the pipeline's code: PIL decodes it (a JPEG at
the libjpeg scale the pipeline documents), numpy resizes it with half-pixel-centre bilinear
interpolation (``preprocess.resize_method: bilinear``, no antialiasing, TensorFlow's
convention), averages RGB to grey with ITU-R BT.601 weights and scales it.
"""

import importlib.util
import io
import os

import numpy as np
from PIL import Image

from tests.e2e import helpers

FACE = (150, 120, 380, 350)  # Grace Hopper's face in grace_hopper.jpg (left, top, right, bottom)
# (example id, photo, crop box or None, resize (width, height) or None, PIL mode, format);
# photo entries without box, resize or a new mode are the package's file bytes as shipped.
IMAGES = [
    ("face-rgb-jpeg", "grace_hopper", FACE, None, "RGB", "JPEG"),
    ("face-rgb-png", "grace_hopper", FACE, None, "RGB", "PNG"),
    ("face-grey-png", "grace_hopper", FACE, None, "L", "PNG"),
    ("face-rgba-png", "grace_hopper", FACE, None, "RGBA", "PNG"),
    ("face64-grey-png", "grace_hopper", FACE, (64, 64), "L", "PNG"),
    ("face96-rgb-png", "grace_hopper", FACE, (96, 96), "RGB", "PNG"),
    ("face20-grey-png", "grace_hopper", FACE, (20, 20), "L", "PNG"),
    ("face24-rgb-jpeg", "grace_hopper", FACE, (24, 24), "RGB", "JPEG"),
    ("hopper-as-shipped", "grace_hopper", None, None, "RGB", "JPEG"),
    ("china-as-shipped", "china", None, None, "RGB", "JPEG"),
    ("china-x2-rgb-jpeg", "china", None, (1280, 854), "RGB", "JPEG"),
    ("china-grey-jpeg", "china", (200, 150, 400, 300), None, "L", "JPEG"),
    ("china-sky-rgb-png", "china", (20, 10, 120, 110), None, "RGB", "PNG"),
    ("china-thin-rgba-png", "china", (300, 200, 340, 209), None, "RGBA", "PNG"),
    ("china64-rgb-jpeg", "china", (250, 250, 314, 314), None, "RGB", "JPEG"),
    ("china-tall-rgba-png", "china", (400, 50, 520, 350), None, "RGBA", "PNG"),
    ("flower-as-shipped", "flower", None, None, "RGB", "JPEG"),
    ("flower-grey-png", "flower", (250, 150, 378, 278), None, "L", "PNG"),
    ("flower-rgb-png", "flower", (300, 200, 347, 233), None, "RGB", "PNG"),
    ("flower-rgba-png", "flower", (100, 100, 300, 300), None, "RGBA", "PNG"),
    ("flower16-grey-jpeg", "flower", (300, 200, 340, 240), (16, 16), "L", "JPEG"),
]
CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4}
JPEG_SCALES = (8, 4, 2, 1)  # libjpeg's DCT scaling, tried largest first (README, scaled decode)
RESIZE_FACTOR = 2  # README: "upscaled / downscaled ... more than 2x"
BT601 = np.array([0.2989, 0.5870, 0.1140])  # RGB -> grey luma weights
SCALINGS = {"unit": lambda p: p / 255.0, "symmetric": lambda p: p / 127.5 - 1.0}


def _package_folder(name):
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise FileNotFoundError(f"package {name} is not installed")
    return spec.submodule_search_locations[0]


def photo_paths():
    """The three photos' paths inside their packages' install folders."""
    images = os.path.join(_package_folder("sklearn"), "datasets", "images")
    return {
        "grace_hopper": os.path.join(_package_folder("matplotlib"), "mpl-data", "sample_data",
                                     "grace_hopper.jpg"),
        "china": os.path.join(images, "china.jpg"),
        "flower": os.path.join(images, "flower.jpg"),
    }


def encoded_images():
    """``{example id: encoded bytes}`` for ``IMAGES``, in order."""
    paths = photo_paths()
    encoded = {}
    for example_id, photo, box, size, mode, image_format in IMAGES:
        if box is None and size is None:
            with open(paths[photo], "rb") as handle:
                encoded[example_id] = handle.read()
            continue
        image = Image.open(paths[photo]).convert("RGB")
        image = image.crop(box) if box else image
        image = image.resize(size, Image.BILINEAR) if size else image
        if mode == "RGBA":
            image.putalpha(Image.linear_gradient("L").resize(image.size))
        else:
            image = image.convert(mode)
        buffer = io.BytesIO()
        image.save(buffer, image_format, **({"quality": 90} if image_format == "JPEG" else {}))
        encoded[example_id] = buffer.getvalue()
    return encoded


def write_tfrecord(path, encoded):
    """One ``tf.train.Example`` per image (``image/encoded``, ``image/id``; no label)."""
    helpers.write_records(path, [helpers.encoded_example(data, example_id=example_id)
                                 for example_id, data in encoded.items()])


def expected_conversions(encoded, side):
    """The README's conversion counts for a grey ``side`` x ``side`` model, from PIL's
    reading of each image's header."""
    counts = dict.fromkeys(("colour_to_grey", "grey_to_colour", "alpha_dropped", "upscaled",
                            "downscaled"), 0)
    for data in encoded.values():
        image = Image.open(io.BytesIO(data))
        counts["colour_to_grey"] += CHANNELS[image.mode] > 1
        counts["alpha_dropped"] += image.mode == "RGBA"
        counts["upscaled"] += min(image.size) * RESIZE_FACTOR < side
        counts["downscaled"] += max(image.size) > RESIZE_FACTOR * side
    return counts


def _bilinear(pixels, height, width):
    """float64 ``(h, w, c)`` -> ``(height, width, c)``: half-pixel centres, edges clamped."""
    def axis(size, out):
        source = (np.arange(out) + 0.5) * (size / out) - 0.5
        low = np.floor(source)
        return (np.clip(low, 0, size - 1).astype(int),
                np.clip(np.ceil(source), 0, size - 1).astype(int), source - low)

    (y0, y1, fy), (x0, x1, fx) = axis(pixels.shape[0], height), axis(pixels.shape[1], width)
    fx = fx[None, :, None]
    top = pixels[y0][:, x0] * (1 - fx) + pixels[y0][:, x1] * fx
    bottom = pixels[y1][:, x0] * (1 - fx) + pixels[y1][:, x1] * fx
    return top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]


def jpeg_scale(height, width, side):
    """The largest libjpeg scale whose decoded sides, ceil(side / scale), still cover ``side``;
    1 when none does."""
    return next((scale for scale in JPEG_SCALES
                 if -(-height // scale) >= side and -(-width // scale) >= side), 1)


def independent_input(data, side, scaling):
    """Encoded image -> float64 ``(side, side)`` grey model input, without the pipeline's code.

    Returns:
        ``(input, decoded_at_full_size_jpeg)``: the second is True for a JPEG decoded at scale
        1, where TensorFlow's default IDCT (libjpeg's fast integer one) and PIL's (the accurate
        one) differ by a few grey levels.
    """
    image = Image.open(io.BytesIO(data))
    full_jpeg = False
    if image.format == "JPEG":
        scale = jpeg_scale(image.height, image.width, side)
        image.draft(image.mode, (image.width // scale, image.height // scale))
        full_jpeg = scale == 1
    pixels = np.asarray(image, np.float64)
    pixels = (pixels[..., None] if pixels.ndim == 2 else pixels)[..., :3]  # alpha dropped
    if pixels.shape[:2] != (side, side):
        pixels = _bilinear(pixels, side, side)
    grey = pixels @ BT601 if pixels.shape[-1] == 3 else pixels[..., 0]
    return SCALINGS[scaling](grey), full_jpeg
