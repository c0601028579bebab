"""The launcher's start-up work off the critical path: TensorFlow loaded without Keras'
optional libraries gives the same maps, and the background trace covers both steps."""

import json
import subprocess
import sys

import keras
import numpy as np

from gbp_ops import GuidedBackprop
from pipeline import config as config_module
from pipeline import explainers
from pipeline.launch import warmup
from tests.e2e import helpers

_EXPLAIN = """
import json, sys
import numpy as np
{prelude}
import keras
from gbp_ops import GuidedBackprop
model = keras.saving.load_model(sys.argv[1])
images = np.random.default_rng(3).uniform(size=(3, *model.inputs[0].shape[1:]))
maps = GuidedBackprop(model, batch_size=2).explain(images.astype(np.float32))
loaded = sorted(name for name in {optional!r} if name in sys.modules)
refused = keras.src.wrappers.sklearn_wrapper.sklearn is None  # Keras asked and went without
import sklearn.cluster, scipy.sparse.linalg, matplotlib.figure  # importable again afterwards
print(json.dumps({{"maps": maps.tolist(), "loaded": loaded, "refused": refused}}))
"""


def _explain_in_a_fresh_process(model_path):
    prelude = ("from pipeline.launch import warmup\n"
               "with warmup.optional_libraries_deferred():\n    import tensorflow")
    script = _EXPLAIN.format(prelude=prelude, optional=warmup.KERAS_OPTIONAL_PACKAGES)
    done = subprocess.run([sys.executable, "-c", script, model_path], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_tensorflow_without_the_optional_libraries_gives_the_same_maps(tmp_path):
    model_path = str(tmp_path / "model.keras")
    helpers.small_model(model_path)
    deferred = _explain_in_a_fresh_process(model_path)
    assert deferred["loaded"] == [] and deferred["refused"]
    # The reference: this process, whose TensorFlow loaded with every library Keras wanted.
    model = keras.saving.load_model(model_path)
    images = np.random.default_rng(3).uniform(size=(3, *model.inputs[0].shape[1:]))
    plain = GuidedBackprop(model, batch_size=2).explain(images.astype(np.float32))
    np.testing.assert_array_equal(np.array(deferred["maps"], np.float32), plain)


def test_deferral_ends_with_the_block_and_spares_loaded_packages():
    import numpy  # noqa: F401  (already loaded: never refused)

    with warmup.optional_libraries_deferred(("numpy", "gbp_audit_no_such_package")):
        import numpy.linalg  # noqa: F401
        try:
            import gbp_audit_no_such_package  # noqa: F401
        except ImportError as error:
            assert "deferred" in str(error)
        else:
            raise AssertionError("the deferred package imported")
    assert not any(isinstance(finder, warmup._RefuseImports) for finder in sys.meta_path)


def test_background_trace_covers_both_steps_once(tmp_path):
    model_path = str(tmp_path / "model.keras")
    helpers.small_model(model_path)
    config = config_module.config_from_dict({
        "source": {"pattern": "unused"}, "model": {"path": model_path},
        "output": {"path": str(tmp_path / "out")}, "findings": {"enabled": True},
        "explain": {"batch_size": 4}})
    warmup.start_in_background(config).join()
    explainer = explainers.shared_explainer(config)
    assert explainer.num_traces == 1
    assert explainer._forward.experimental_get_tracing_count() == 1
    images = np.random.default_rng(0).uniform(size=(5, *explainer.input_shape))
    explainer.explain(images.astype(np.float32))
    explainer.predict(images.astype(np.float32))
    assert explainer.num_traces == 1  # the batches found both steps traced
    assert explainer._forward.experimental_get_tracing_count() == 1
