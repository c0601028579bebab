"""What preprocessing did to the inputs is counted exactly: colour -> grey, grey -> colour,
alpha dropped, and images resized by more than ``records.RESIZE_FACTOR``, on a mixed set of
grey, RGB and RGBA PNGs and JPEGs from tiny to large, written as TFRecords. The expected counts
come from the sizes and channels the test drew, not from the pipeline."""

import numpy as np
import pytest
import tensorflow as tf

from pipeline import cli
from pipeline.config import load_config
from pipeline.records import CONVERSIONS, PreparedExample, SourceRecord
from pipeline.stages.preprocess import PrepareExamplesDoFn
from tests.e2e import helpers

SIDE = helpers.IMAGE_SIZE  # the small model's input side (32)
# (height, width, channels, format): grey, RGB and RGBA; tiny (upscaled > 2x: a side < 16),
# near the model's size, and large (downscaled > 2x: a side > 64; JPEGs decode scaled).
IMAGES = [
    (32, 32, 1, "png"), (32, 32, 3, "png"), (32, 32, 4, "png"),
    (5, 7, 1, "png"), (12, 40, 3, "png"), (16, 16, 4, "png"), (15, 33, 3, "jpeg"),
    (65, 30, 3, "png"), (300, 420, 3, "jpeg"), (500, 90, 1, "jpeg"), (200, 260, 4, "png"),
    (64, 64, 3, "jpeg"), (40, 100, 1, "png"), (9, 300, 3, "png"),
]


def _expected(model_channels):
    """Counts per kind from the drawn images alone."""
    counts = dict.fromkeys(("colour_to_grey", "grey_to_colour", "alpha_dropped", "upscaled",
                            "downscaled"), 0)
    for height, width, channels, _ in IMAGES:
        counts["colour_to_grey"] += channels in (3, 4) and model_channels == 1
        counts["grey_to_colour"] += channels == 1 and model_channels == 3
        counts["alpha_dropped"] += channels == 4
        counts["upscaled"] += height * 2 < SIDE or width * 2 < SIDE
        counts["downscaled"] += height > 2 * SIDE or width > 2 * SIDE
    return counts


def _encode(image, image_format):
    if image_format == "jpeg":
        return tf.io.encode_jpeg(image, quality=90).numpy()
    return tf.io.encode_png(image).numpy()


def _records(seed=0):
    rng = np.random.default_rng(seed)
    records = []
    for index, (height, width, channels, image_format) in enumerate(IMAGES):
        image = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
        records.append(helpers.encoded_example(_encode(image, image_format), index % 2,
                                               f"img-{index}"))
    return records


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("conversions")
    helpers.write_records(root / "mixed.tfrecord", _records())
    helpers.small_model(str(root / "model.keras"))
    return root


@pytest.mark.parametrize("model_channels", [1, 3])
def test_the_preprocessing_stage_tags_each_conversion(model_channels):
    config = load_config(overrides=["source.pattern=unused", "output.path=unused",
                                     "model.path=unused.keras"])
    prepare = PrepareExamplesDoFn(config, (SIDE, SIDE, model_channels))
    prepare.setup()
    counted = dict.fromkeys(_expected(model_channels), 0)
    prepared = 0
    for index, record in enumerate(_records()):
        for item in prepare.process(SourceRecord(f"mixed:{index}", record)):
            if isinstance(item, PreparedExample):
                prepared += 1
            else:
                assert item.tag == CONVERSIONS
                counted[item.value] += 1
    assert prepared == len(IMAGES)
    assert counted == _expected(model_channels)


def test_the_manifest_summary_and_report_state_the_conversions(mixed, capsys):
    expected = _expected(3)  # the small model takes RGB: nothing goes colour -> grey
    manifest = helpers.run_demo_preset(str(mixed / "mixed.tfrecord"), str(mixed / "model.keras"),
                                       mixed / "out", "explain.batch_size=7",
                                       "preprocess.scaling_check=false")
    assert {kind: manifest["counts"][f"converted_{kind}"] for kind in expected} == expected
    assert manifest["counts"]["saliency_rows"] == len(IMAGES)
    line = next(line for line in cli.summary(manifest).splitlines() if "converted" in line)
    assert line == ("gbp-audit: inputs converted to the model's input: "
                    f"{expected['grey_to_colour']} grey -> colour, "
                    f"{expected['alpha_dropped']} alpha dropped, "
                    f"{expected['upscaled']} upscaled > 2x, "
                    f"{expected['downscaled']} downscaled > 2x")
    page = (mixed / "out" / "report.html").read_text()
    assert f"{expected['grey_to_colour']} grey -&gt; colour" in page
