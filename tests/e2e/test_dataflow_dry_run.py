"""The whole audit graph translates to a Dataflow job offline (``DataflowRunner --dry_run``).

The job is built in a child process with a timeout: a transform that touches GCS while the
graph is built (say a ``ReadFromTFRecord`` with ``validate=True``) looks for credentials and
can hang offline. In the child, any GCS client construction raises at once instead, so such a
regression fails fast with a clear message rather than by timeout.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_SECONDS = 180
CONTAINER_IMAGE = "us-central1-docker.pkg.dev/test-project/gbp/gbp-audit-gpu:test"
GPU_SERVICE_OPTION = "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"
BEAM_TEST_FLAGS = [
    "--runner=DataflowRunner", "--project=test-project", "--region=us-central1",
    "--temp_location=gs://beam/tmp", "--staging_location=gs://beam/test", "--no_auth",
    "--dry_run=True", "--sdk_location=container",
]

# Runs in the child: builds the graph of the real Dataflow preset (its paths are gs://) from a
# RunPlan made by hand, since preflight would read the model from GCS; runs the dry run and
# prints what the test checks as one JSON line.
_CHILD = r"""
import json, os, shutil, sys, tarfile
import apache_beam as beam
from apache_beam.io.gcp import gcsio
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability.api import beam_runner_api_pb2

def _no_gcs(*args, **kwargs):
    raise RuntimeError("GCS was touched while the graph was built")

gcsio.GcsIO.__init__ = _no_gcs

from pipeline import config
from pipeline.launch import preflight
from pipeline.stages import build

preset, beam_args = sys.argv[1], sys.argv[2:]
run_config = config.load_config(preset, ["explain.large_model=true"])
height, width = 64 // run_config.output.downsample, 64 // run_config.output.downsample
plan = preflight.RunPlan(
    run_config, (64, 64, 3), (height, width), ("cat", "dog"),
    {"config": run_config.to_dict(), "model_sha256": "0" * 64})
options = PipelineOptions(beam_args)
p = beam.Pipeline(options=options)
build.build_pipeline(p, plan, start_time=0.0)
result = p.run()
proto = result.job.proto_pipeline
transforms = proto.components.transforms
publish = [t for t in transforms.values() if t.unique_name == "Publish"][0]
pardo = beam_runner_api_pb2.ParDoPayload.FromString(publish.spec.payload)
producers = {}
for transform in transforms.values():
    for pcollection in transform.outputs.values():
        producers.setdefault(pcollection, []).append(transform.unique_name)
side_input_producers = sorted(name for tag in pardo.side_inputs
                              for name in producers[publish.inputs[tag]])
environments, staging_dirs = [], set()
for environment in proto.components.environments.values():
    artifacts = []
    for dependency in environment.dependencies:
        staged = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(
            dependency.role_payload).staged_name
        local = beam_runner_api_pb2.ArtifactFilePayload.FromString(dependency.type_payload).path
        members = []
        if staged.endswith(".tar.gz"):
            with tarfile.open(local) as sdist:
                members = sdist.getnames()
        artifacts.append({"staged_name": staged, "members": members})
        staging_dirs.add(os.path.dirname(local))
    image = ""
    if environment.urn == "beam:env:docker:v1":
        image = beam_runner_api_pb2.DockerPayload.FromString(environment.payload).container_image
    environments.append({"urn": environment.urn, "image": image, "artifacts": artifacts})
for staging_dir in staging_dirs:  # the stager's temp dirs
    shutil.rmtree(staging_dir, ignore_errors=True)
all_options = result.job.options.get_all_options()
print("RESULT " + json.dumps({
    "state": str(result.state),
    "names": sorted(t.unique_name for t in transforms.values()),
    "publish_side_input_producers": side_input_producers,
    "environments": environments,
    "service_options": all_options.get("dataflow_service_options"),
    "machine_type": all_options.get("machine_type"),
}))
"""


def _copy_sources(destination):
    """The package sources as a user's checkout has them (no venv, outputs or caches)."""
    shutil.copytree(REPO, destination, ignore=shutil.ignore_patterns(
        ".venv", ".git", "out", ".cache", "build", "dist", "*.egg-info", "__pycache__",
        ".pytest_cache"))
    return destination


def _dry_run(sources, extra_flags, cwd):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(sources)}
    preset = str(sources / "configs" / "dataflow.yaml")
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD, preset, *BEAM_TEST_FLAGS, *extra_flags],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert completed.returncode == 0 and lines, (
        f"dry run failed (exit {completed.returncode}):\n{completed.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT "):])


@pytest.fixture(scope="module")
def gpu_job(tmp_path_factory):
    """The documented GPU launch: setup_file, custom container, accelerator, machine type."""
    sources = _copy_sources(tmp_path_factory.mktemp("dry-run") / "gbp-audit")
    return _dry_run(sources, [
        f"--setup_file={sources / 'setup.py'}",
        f"--sdk_container_image={CONTAINER_IMAGE}",
        f"--dataflow_service_options={GPU_SERVICE_OPTION}",
        "--machine_type=g2-standard-8",
        "--experiments=use_runner_v2",
        "--number_of_worker_harness_threads=4",
    ], cwd=tmp_path_factory.mktemp("dry-run-cwd"))


def test_job_translates_with_every_step(gpu_job):
    assert gpu_job["state"] == "DONE"
    names = set(gpu_job["names"])
    expected = {
        "Read/ReadTFRecord/Pattern", "Read/ReadTFRecord/MatchShards",
        "Read/ReadTFRecord/SpreadShards", "Read/ReadTFRecord/ReadShard",
        "Explain/Prepare", "Explain/GuidedBackprop/BatchElements",
        "Explain/GuidedBackprop/BeamML_RunInference", "Explain/ToAuditRows",
        "AllDeadLetters", "ToArrowTables", "Aggregate",
        "WriteSaliency", "SmallTablesTrigger", "WriteSmallTables", "StagedFiles",
        "Counts/AllCounts", "Counts/SumPerName", "PublishTrigger", "Publish",
    }
    assert not expected - names, f"missing steps: {sorted(expected - names)}"


def test_publish_waits_for_every_table_and_count(gpu_job):
    producers = set(gpu_job["publish_side_input_producers"])
    assert {"StagedFiles", "Counts/SumPerName"} <= producers, sorted(producers)


def test_workers_get_the_container_the_package_and_the_gpu(gpu_job):
    (environment,) = gpu_job["environments"]
    assert environment["urn"] == "beam:env:docker:v1"
    assert environment["image"] == CONTAINER_IMAGE
    assert gpu_job["service_options"] == [GPU_SERVICE_OPTION]
    assert gpu_job["machine_type"] == "g2-standard-8"
    staged = {artifact["staged_name"]: artifact["members"]
              for artifact in environment["artifacts"]}
    assert "workflow.tar.gz" in staged, sorted(staged)
    members = {name.split("/", 1)[1] for name in staged["workflow.tar.gz"] if "/" in name}
    for module in ("setup.py", "gbp_ops/__init__.py", "gbp_ops/explainer.py",
                   "pipeline/__main__.py", "pipeline/stages/model_handler.py",
                   "pipeline/stages/read.py"):
        assert module in members, f"{module} is not in the staged package"
    assert not any(name.startswith("tests/") for name in members)
