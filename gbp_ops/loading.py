"""Load a Keras model file safely, with errors that say what is supported."""

import os

import keras
import tensorflow as tf

from gbp_ops import errors
from gbp_ops.choices import (
    MODEL_KIND_AUTO,
    MODEL_KIND_SAVEDMODEL,
    MODEL_KINDS,
    is_savedmodel_dir,
)

SUPPORTED_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_model(path, safe_mode=True, kind="auto", signature="serving_default", input_key=None,
               output_key=None):
    """Loads a ``.keras``, ``.h5`` or ``.hdf5`` model without compiling it, or a SavedModel
    directory.

    Args:
        path: a local path, or a remote ``.keras`` path that ``tf.io.gfile`` reads (Keras
            copies it to local disk); the pipeline copies any remote model through Beam
            ``FileSystems`` first (``pipeline.paths.local_copy``).
        safe_mode: Keras safe mode (refuses Python code in Lambda layers); keep it on unless
            the file is trusted. A SavedModel holds no Python, so it does not apply there
            (but its graph ops run: see ``gbp_ops.savedmodel_graph``).
        kind: ``'auto'`` (a directory with ``saved_model.pb`` is a SavedModel), ``'keras'`` or
            ``'savedmodel'``; see ``gbp_ops.choices.MODEL_KINDS``.
        signature, input_key, output_key: which SavedModel signature, input and output
            (``gbp_ops.savedmodel_graph.load_savedmodel``); ignored for Keras files.

    Returns:
        The loaded ``keras.Model``, or a ``gbp_ops.savedmodel_graph.SavedModelSource`` for
        ``gbp_ops.make_explainer``.

    Raises:
        GBPError: missing file, a kind that does not match the path, an unknown format, or a
            load failure.
    """
    if kind not in MODEL_KINDS:
        raise errors.GBPError(f"unknown model kind '{kind}'; expected one of "
                              f"{', '.join(MODEL_KINDS)}")
    savedmodel = is_savedmodel_dir(path, tf.io.gfile.exists)
    if kind == MODEL_KIND_SAVEDMODEL or (kind == MODEL_KIND_AUTO and savedmodel):
        from gbp_ops.savedmodel_graph import load_savedmodel

        return load_savedmodel(path, signature, input_key, output_key)
    if savedmodel:
        raise errors.GBPError(errors.SAVEDMODEL_IS_DIRECTORY.format(path=path))
    if tf.io.gfile.isdir(path):
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
    """Hex sha256 of the model file's bytes (any filesystem tf.io.gfile reads); for a directory
    (a SavedModel), of each file's relative path and bytes, in sorted path order."""
    import hashlib

    digest = hashlib.sha256()
    if not tf.io.gfile.isdir(path):
        _hash_file(digest, path)
        return digest.hexdigest()
    files = sorted(
        os.path.relpath(os.path.join(folder, name), path).replace(os.sep, "/")
        for folder, _, names in tf.io.gfile.walk(path) for name in names)
    for relative in files:
        size = tf.io.gfile.stat(os.path.join(path, relative)).length
        digest.update(f"{relative}\0{size}\0".encode())  # sizes keep the framing unambiguous
        _hash_file(digest, os.path.join(path, relative))
    return digest.hexdigest()


def _hash_file(digest, path):
    with tf.io.gfile.GFile(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
