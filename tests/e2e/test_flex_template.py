"""The Flex Template's parameters (docker/flex-template/metadata.json) are all CLI flags and
reach the run config."""

import json
import os

from pipeline.launch import options
from tests.e2e import helpers

METADATA = os.path.join(helpers.REPO, "docker", "flex-template", "metadata.json")


def test_every_template_parameter_is_accepted_by_the_cli():
    with open(METADATA, encoding="utf-8") as handle:
        parameters = json.load(handle)["parameters"]
    values = {"config": helpers.DEMO_PRESET, "output": "gs://bucket/audits/2026-11-26",
              "sets": "explain.batch_size=64; source.pattern=gs://bucket/val-*.tfrecord"}
    assert {parameter["name"] for parameter in parameters} == set(values)
    # The launcher passes each parameter as --name=value; none may fall through to Beam.
    args, beam_args = options.parse_args([f"--{name}={value}" for name, value in values.items()])
    assert beam_args == []
    config = options.load_run_config(args)
    assert config.output.path == values["output"]
    assert config.explain.batch_size == 64
    assert config.source.pattern == "gs://bucket/val-*.tfrecord"
