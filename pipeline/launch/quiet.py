"""Keeps library start-up noise out of a user's terminal unless ``--verbose`` is given.

TensorFlow's C++ start-up writes to file descriptor 2 before its log settings apply ("All log
messages before absl::InitializeLog()", CUDA probing), so the import runs with that descriptor
pointed at a temp file, replayed only if the import fails. Beam's own INFO/WARNING chatter
("Resource module is not available", "apitools not found") is silenced through its loggers.
"""

import logging
import os
import sys
import tempfile

_NOISY_LOGGERS = ("apache_beam", "absl", "tensorflow", "h5py", "matplotlib")
# Libraries that also log through the root logger (e.g. Beam's "Resource module is not
# available"): their records below ERROR are dropped.
_NOISY_SOURCES = tuple(f"{os.sep}{name}{os.sep}" for name in _NOISY_LOGGERS)


def quiet_environment():
    """Sets the TF C++ log level before TensorFlow is imported, here and in spawned workers."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"


class _DropLibraryChatter(logging.Filter):
    def filter(self, record):
        return record.levelno >= logging.ERROR or not any(
            source in record.pathname for source in _NOISY_SOURCES)


def import_tensorflow_quietly():
    """Imports TensorFlow with its C++ start-up lines kept off stderr."""
    if "tensorflow" in sys.modules:
        return
    quiet_environment()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def quiet_loggers():
    """Only errors from the libraries' Python loggers, and from their root-logger records."""
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_DropLibraryChatter())
