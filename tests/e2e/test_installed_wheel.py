"""The package as a Dataflow worker gets it: sdist -> wheel -> a fresh virtualenv -> a run.

Dataflow stages ``setup.py sdist`` (``workflow.tar.gz``) and workers pip-install it. This test
builds the sdist the same way (Beam's stager falls back to ``setup.py sdist`` when ``build``
is missing), builds a wheel from that sdist, installs it with ``--no-deps`` into a new venv,
and runs ``python -m pipeline`` from there with two worker processes. The venv borrows the
already installed dependencies through a ``.pth`` line naming this venv's site-packages; a
plain path line does not run the ``.pth`` files there, so the editable install of this
checkout stays invisible, and cwd is outside the repo: every module comes from the wheel.
"""

import email
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile

import pandas as pd
import pytest
from packaging.requirements import Requirement

from tests.e2e import helpers

NUM_EXAMPLES = 24
STEP_TIMEOUT_SECONDS = 240
PACKAGES = ("gbp_ops", "pipeline")
REQUIRED_MODULES = (
    "gbp_ops/__init__.py", "gbp_ops/explainer.py", "gbp_ops/rewrite.py", "gbp_ops/loading.py",
    "pipeline/__init__.py", "pipeline/__main__.py", "pipeline/cli.py", "pipeline/stages/build.py",
    "pipeline/stages/model_handler.py", "pipeline/stages/read.py", "pipeline/outputs/sinks.py",
    "pipeline/outputs/loader.py",
)


def _run(command, cwd, timeout=STEP_TIMEOUT_SECONDS):
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                               timeout=timeout, check=False)
    assert completed.returncode == 0, (
        f"{' '.join(map(str, command))} failed ({completed.returncode}):\n"
        f"{completed.stdout[-3000:]}\n{completed.stderr[-5000:]}")
    return completed


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Copies the checkout's sources, builds the sdist and, from it, the wheel."""
    root = tmp_path_factory.mktemp("wheel")
    sources = root / "gbp-audit"
    shutil.copytree(helpers.REPO, sources, ignore=shutil.ignore_patterns(
        ".venv", ".git", "out", ".cache", "build", "dist", "*.egg-info", "__pycache__",
        ".pytest_cache"))
    dist = root / "dist"
    _run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(dist)], cwd=sources)
    (sdist,) = dist.glob("gbp-audit-*.tar.gz")
    _run([sys.executable, "-m", "pip", "wheel", str(sdist), "--no-deps", "--no-index",
          "--no-build-isolation", "--quiet", "-w", str(dist)], cwd=root)
    (wheel,) = dist.glob("gbp_audit-*.whl")
    return {"root": root, "sdist": sdist, "wheel": wheel}


@pytest.fixture(scope="module")
def venv(built):
    """A fresh venv with the wheel installed (no deps) and the existing deps borrowed."""
    target = built["root"] / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(target)], cwd=built["root"])
    python = target / "bin" / "python"
    probe = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site_packages = _run([str(python), "-c", probe], cwd=built["root"]).stdout.strip()
    with open(os.path.join(site_packages, "gbp_audit_test_deps.pth"), "w") as handle:
        handle.write(sysconfig.get_paths()["purelib"] + "\n")
    # --ignore-installed: never touch the editable install that the borrowed path shows.
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
          "--quiet", str(built["wheel"])], cwd=built["root"])
    return {"python": python, "prefix": target, "site_packages": site_packages}


def _wheel_metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name)), archive.namelist()


def test_wheel_and_sdist_hold_the_packages_and_no_tests(built):
    _, names = _wheel_metadata(built["wheel"])
    for module in REQUIRED_MODULES:
        assert module in names, f"{module} missing from the wheel"
    top_level = {name.split("/")[0] for name in names if "/" in name}
    assert top_level - {n for n in top_level if n.endswith(".dist-info")} == set(PACKAGES)
    with tarfile.open(built["sdist"]) as sdist:
        members = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert set(REQUIRED_MODULES) | {"setup.py"} <= members
    assert not any(name.startswith(("tests/", "out/", ".cache/")) for name in members)


def test_wheel_metadata_pins_a_stack_this_environment_satisfies(built):
    metadata, _ = _wheel_metadata(built["wheel"])
    assert metadata["Name"] == "gbp-audit"
    assert set(metadata.get_all("Provides-Extra")) == {"gcp", "gpu", "test"}
    requirements = [Requirement(text) for text in metadata.get_all("Requires-Dist")]
    by_extra = {}
    for requirement in requirements:
        extra = next((e for e in ("gcp", "gpu", "test") if requirement.marker
                      and requirement.marker.evaluate({"extra": e})), None)
        by_extra.setdefault(extra, []).append(requirement)
    base = {r.name: r for r in by_extra[None]}
    assert str(base["tensorflow"].specifier) == "==2.21.*"
    assert str(base["apache-beam"].specifier) == "==2.77.*"
    (gpu_tf,) = by_extra["gpu"]
    assert gpu_tf.name == "tensorflow" and gpu_tf.extras == {"and-cuda"}
    assert gpu_tf.specifier == base["tensorflow"].specifier
    beam_pins = {str(r.specifier) for r in requirements if r.name == "apache-beam"}
    assert beam_pins == {"==2.77.*"}, "every apache-beam pin (base, [gcp], [test]) must agree"
    # The dev/test venv was installed from these pins: they must hold (the GPU extra needs CUDA
    # wheels this machine does not have).
    for requirement in by_extra[None] + by_extra["gcp"] + by_extra["test"]:
        installed = importlib.metadata.version(requirement.name)
        assert requirement.specifier.contains(installed, prereleases=True), (
            f"{requirement} is not satisfied by the installed {installed}")
    python_version = ".".join(map(str, sys.version_info[:3]))
    assert metadata["Requires-Python"] and python_version in Requirement(
        f"python{metadata['Requires-Python']}").specifier


def test_imports_come_from_the_installed_wheel(venv, tmp_path):
    probe = ("import json, importlib.metadata as m, gbp_ops, pipeline, pipeline.cli;"
             "print(json.dumps({'gbp_ops': gbp_ops.__file__, 'pipeline': pipeline.__file__,"
             "'dist': str(m.distribution('gbp-audit').locate_file(''))}))")
    found = json.loads(_run([str(venv["python"]), "-c", probe], cwd=tmp_path).stdout)
    for key in ("gbp_ops", "pipeline", "dist"):
        assert os.path.realpath(found[key]).startswith(os.path.realpath(venv["prefix"])), found
        assert not os.path.realpath(found[key]).startswith(os.path.realpath(helpers.REPO))


def test_cli_from_the_installed_wheel_runs_with_two_worker_processes(venv, tmp_path):
    """Workers import the package from the wheel and share one model per machine
    (``explain.large_model``). One model per process, the default, runs with two worker
    processes in ``test_tfrecord_e2e``; a second wheel run would only repeat it."""
    arrays, _, _ = helpers.shapes_inputs(tmp_path, NUM_EXAMPLES, seed=21, num_shards=3)
    output = tmp_path / "out"
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    completed = _run([
        str(venv["python"]), "-m", "pipeline", "--config", helpers.DEMO_PRESET,
        "--set", f"source.pattern={tmp_path / 'data' / '*.tfrecord'}",
        "--set", f"model.path={tmp_path / 'model.keras'}",
        "--set", "explain.batch_size=8", "--set", "explain.large_model=true",
        "--output", str(output),
        "--runner=FnApiRunner", "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    ], cwd=workdir)
    assert f"{NUM_EXAMPLES} inputs -> {NUM_EXAMPLES} saliency rows" in completed.stdout

    manifest = json.loads((output / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["input"] == NUM_EXAMPLES == counts["saliency_rows"]
    assert counts["errors"] == 0 and counts["reconciled"]
    assert manifest["versions"]["gbp-audit"] == importlib.metadata.version("gbp-audit")
    assert manifest["config"]["explain"]["large_model"] is True
    frame = pd.read_parquet(output / "saliency")
    assert sorted(frame.example_id) == sorted(str(i) for i in arrays["ids"])
    assert len(pd.read_parquet(output / "errors")) == 0
    stats = pd.read_parquet(output / "stats")
    assert stats.loc[stats.group_kind == "overall", "example_count"].item() == NUM_EXAMPLES
