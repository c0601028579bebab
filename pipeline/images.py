"""Pixels -> model inputs: the input scalings, shared by preprocessing (the audit's inputs) and
findings (which rebuild inputs from the uint8 display images it keeps). numpy only."""

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)


def scale_pixels(image, scaling):
    """float32 pixels in [0, 255] -> the model's input range.

    ``unit``: [0, 1]; ``symmetric``: [-1, 1]; ``imagenet``: (x/255 - mean) / std per channel;
    ``caffe``: RGB->BGR then minus the BGR mean (3 channels only); ``raw``: as they are, for
    a model that scales its own inputs (a ``Rescaling`` or ``Normalization`` input layer).
    """
    if scaling == "raw":
        return image
    if scaling == "unit":
        return image / 255.0
    if scaling == "symmetric":
        return image / 127.5 - 1.0
    if scaling == "imagenet":
        return (image / 255.0 - IMAGENET_MEAN[: image.shape[-1]]) / IMAGENET_STD[: image.shape[-1]]
    if scaling == "caffe":
        return image[..., ::-1] - CAFFE_BGR_MEAN
    raise ValueError(f"unknown scaling '{scaling}'")


def model_input_from_display(displays, channels, scaling):
    """uint8 ``(..., H, W, 3)`` display images -> float32 ``(..., H, W, channels)`` model inputs.

    The display image is the input's pixels rounded to uint8, before scaling (a gray input
    repeated to 3 channels), so this equals the prepared input for 8-bit images already at the
    model's size and channels, and is within half a grey level of it otherwise (resized,
    converted to gray, or float sources).
    """
    pixels = np.asarray(displays)[..., :channels].astype(np.float32)
    return scale_pixels(pixels, scaling).astype(np.float32)
