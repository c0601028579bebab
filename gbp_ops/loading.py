"""Load a Keras model file safely, with errors that say what is supported."""

import os

import keras
import tensorflow as tf

from gbp_ops import errors

SUPPORTED_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_model(path, safe_mode=True):
    """Loads a ``.keras`` or ``.h5`` model without compiling it.

    Args:
        path: a local path, or a remote ``.keras`` path that ``tf.io.gfile`` reads (Keras
            copies it to local disk); the pipeline copies any remote model through Beam
            ``FileSystems`` first (``pipeline.paths.local_copy``).
        safe_mode: Keras safe mode (refuses Python code in Lambda layers); keep it on unless
            the file is trusted.

    Returns:
        The loaded ``keras.Model``.

    Raises:
        GBPError: missing file, a SavedModel directory, an unknown format, or a load failure.
    """
    if tf.io.gfile.isdir(path):
        if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
            raise errors.GBPError(errors.SAVEDMODEL_UNSUPPORTED.format(path=path))
        raise errors.GBPError(errors.UNSUPPORTED_MODEL_FORMAT.format(path=path))
    if not tf.io.gfile.exists(path):
        raise errors.GBPError(errors.MODEL_NOT_FOUND.format(path=path))
    if not path.lower().endswith(SUPPORTED_SUFFIXES):
        raise errors.GBPError(errors.UNSUPPORTED_MODEL_FORMAT.format(path=path))
    try:
        return keras.models.load_model(path, compile=False, safe_mode=safe_mode)
    except ValueError as error:
        if "safe_mode" in str(error) or "Lambda" in str(error):
            raise errors.GBPError(
                errors.UNSAFE_MODEL.format(path=path, reason=_first_line(error))
            ) from error
        raise errors.GBPError(
            errors.MODEL_LOAD_FAILED.format(path=path, reason=_first_line(error))
        ) from error
    except Exception as error:  # Keras raises many types for corrupt or foreign files.
        raise errors.GBPError(
            errors.MODEL_LOAD_FAILED.format(path=path, reason=_first_line(error))
        ) from error


def _first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def model_sha256(path):
    """Hex sha256 of the model file's bytes (any filesystem tf.io.gfile reads)."""
    import hashlib

    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
