"""The sanity stage explains exactly what the audit explains: same config -> explainer mapping
(``model.layer_name`` included) and the same target policy."""

import numpy as np
import pandas as pd

import pipeline
from pipeline import config
from pipeline.records import PreparedExample
from pipeline.stages import sanity as sanity_stage
from tests.e2e import helpers

NUM_EXAMPLES = 20
SAMPLE = 6
LAYER = "relu4"  # an intermediate Activation layer of the small reference CNN


def test_sanity_maps_at_depth_zero_equal_the_audits_own_maps(tmp_path):
    arrays, _, _ = helpers.shapes_inputs(tmp_path, NUM_EXAMPLES, seed=11, num_shards=2,
                                         model_seed=2)
    overrides = [f"source.pattern={tmp_path / 'data' / '*.tfrecord'}",
                 f"model.path={tmp_path / 'model.keras'}", f"output.path={tmp_path / 'out'}",
                 f"model.layer_name={LAYER}", "explain.target=label",
                 "output.map_dtype=float32", "explain.batch_size=8", "sanity.enabled=true",
                 f"sanity.sample_size={SAMPLE}", "sanity.depth=1", "output.report=false"]
    argv = ["--config", helpers.DEMO_PRESET]
    for override in overrides:
        argv += ["--set", override]
    pipeline.run(argv)
    output = str(tmp_path / "out")
    sampled = sorted(set(pd.read_parquet(tmp_path / "out" / "sanity").example_id))
    assert len(sampled) == SAMPLE

    by_id = {str(i): index for index, i in enumerate(arrays["ids"])}
    # The demo images are PNGs at the model's size with unit scaling: the model input is the
    # image / 255, and the label policy explains each example's label.
    examples = [PreparedExample(i, "", arrays["images"][by_id[i]].astype(np.float32) / 255.0,
                                arrays["images"][by_id[i]], int(arrays["labels"][by_id[i]]),
                                None, int(arrays["labels"][by_id[i]])) for i in sampled]
    run_config = config.load_config(helpers.DEMO_PRESET, overrides)
    ordered, model, images, targets, explainer_for = sanity_stage.check_inputs(
        run_config, examples)
    depth_zero = explainer_for(model).explain(images, targets)

    audit = pipeline.load_saliency(output, example_ids=sampled).set_index("example_id")
    assert audit.attrs["gbp_audit"]["explained_space"] == f"layer:{LAYER}"
    for example, maps in zip(ordered, depth_zero):
        row = audit.loc[example.example_id]
        assert row.target == example.label
        np.testing.assert_allclose(maps, row.saliency, rtol=1e-5, atol=1e-7)
