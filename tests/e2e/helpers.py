"""Shared helpers for end-to-end tests: tiny datasets, models, runs and independent references."""

import html.parser
import importlib.util
import io
import os
import re

import numpy as np
import pytest
from PIL import Image

from demo.reference_model import build_reference_model
from gbp_ops import GuidedBackprop
from pipeline import cli
from tests.gbp_ops.toy_models import randomize_batchnorm

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEMO_PRESET = os.path.join(REPO, "configs", "demo.yaml")
IMAGE_SIZE = 32


def load_script(name):
    """The module of ``scripts/<name>.py`` (scripts are not a package), for testing its
    helpers."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "scripts",
                                                                      f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def encoded_example(image_bytes=None, label=None, example_id=None):
    """One serialized ``tf.train.Example`` under the demo preset's keys: ``image/encoded``
    (bytes), ``image/class/label`` (int) and ``image/id`` (str); a None value leaves its key
    out."""
    import tensorflow as tf

    feature = {}
    if image_bytes is not None:
        feature["image/encoded"] = tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[image_bytes]))
    if label is not None:
        feature["image/class/label"] = tf.train.Feature(
            int64_list=tf.train.Int64List(value=[label]))
    if example_id is not None:
        feature["image/id"] = tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[example_id.encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_records(path, records):
    """Writes serialized records to one TFRecord file at ``path``."""
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)


def small_model(path, seed=0):
    """Saves a reference-architecture CNN (1/4 width, 32x32) with varied BN statistics."""
    model = build_reference_model(IMAGE_SIZE, width_divisor=4, seed=seed)
    randomize_batchnorm(model, np.random.default_rng(seed))
    model.save(path)
    return model


def shapes_inputs(root, count, seed, num_shards, model_seed=0):
    """The usual end-to-end inputs under ``root``: ``count`` synthesized shapes
    (``demo.assets.synthesize_shapes`` at ``IMAGE_SIZE``, ``seed``) written as ``num_shards``
    PNG TFRecord shards in ``root/data``, and ``small_model(root/model.keras, model_seed)``.

    Returns:
        ``(arrays, shard paths, model)``: the generator's dict (``images`` uint8, ``labels``,
        ``ids``, ...), the shards written, and the saved Keras model.
    """
    from demo.assets import synthesize_shapes, write_tfrecord_shards

    arrays = synthesize_shapes(count, image_size=IMAGE_SIZE, seed=seed)
    shards = write_tfrecord_shards(arrays, os.path.join(str(root), "data"), num_shards=num_shards)
    return arrays, shards, small_model(os.path.join(str(root), "model.keras"), seed=model_seed)


def run_demo_preset(pattern, model_path, output, *extra, beam_args=(), findings=False):
    """Runs the real demo preset, shrunk to the test's data, model and output; returns the
    manifest. Findings run only when asked for (``findings=True``)."""
    argv = ["--config", DEMO_PRESET, "--set", f"source.pattern={pattern}",
            "--set", f"model.path={model_path}", "--output", str(output),
            # the test data is the demo's kind of data: its names and boxes, said explicitly
            # (a preset pointed at other data drops them)
            "--set", "source.class_names=[circle, square]",
            "--set", "source.box_key=image/mark_box",
            "--set", "sanity.enabled=false",  # the sanity stage has its own test
            "--set", f"findings.enabled={str(findings).lower()}"]  # so do findings
    for override in extra:
        argv += ["--set", override]
    return cli.run([*argv, *beam_args])


def check_summary_clock(text, timing, after):
    """The summary ``text`` says one wall time that its three parts add up to (within a
    second), and the part after the batches names ``after`` (e.g. ``"(tables, report)"``)."""
    wall = re.search(r"gbp-audit: ([\d.]+) s wall", text)
    parts = re.search(r"([\d.]+) s before the first batch, ([\d.]+) s of batches, ([\d.]+) s "
                      r"after the last (\([^)]*\))", text)
    assert wall and parts, text
    assert float(wall.group(1)) == pytest.approx(sum(map(float, parts.groups()[:3])), abs=1.0)
    assert float(wall.group(1)) == pytest.approx(timing["wall_seconds"], abs=0.05)
    assert parts.group(4) == after


def decode_png(data):
    """PNG bytes -> uint8 (H, W, 3) with PIL (independent of the pipeline's TF decoder)."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def reference_maps(model, images, targets=None):
    """max-abs channel-reduced GBP maps computed directly with gbp_ops, float32 (N, H, W)."""
    explanation = GuidedBackprop(model, batch_size=5).explain_with_outputs(images, targets)
    return np.abs(explanation.maps).max(axis=-1), explanation


class _Images(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.images = []  # (alt, src)

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            attributes = dict(attrs)
            self.images.append((attributes.get("alt", ""), attributes["src"]))


def check_report_page(path):
    """Asserts a report page is one offline-safe file: no scripts, no links, and every image a
    ``data:`` URI holding a valid PNG. Returns ``(html text, [(alt text, PIL image)])``."""
    import base64

    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "<link" not in text
    parser = _Images()
    parser.feed(text)
    pictures = []
    prefix = "data:image/png;base64,"
    for alt, source in parser.images:
        assert source.startswith(prefix), source[:80]
        image = Image.open(io.BytesIO(base64.b64decode(source[len(prefix):])))
        assert image.format == "PNG"
        image.load()
        pictures.append((alt, image))
    return text, pictures
