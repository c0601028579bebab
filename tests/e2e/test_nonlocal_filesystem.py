"""End to end with every path (shards, model, config, output) on a non-local Beam filesystem.

Beam 2.77 ships no in-memory filesystem, so this module registers ``mem://``: an object store
with GCS semantics (no directories, listing by prefix, ``exists`` is true only for objects,
rename = copy + delete). Anything in the pipeline that reaches for local disk (``os.path``,
``open``, ``tf.io.gfile``, a pyarrow path) instead of Beam ``FileSystems`` fails here, as it
would on ``gs://``. The runner is the in-process FnApiRunner, so all stages share the store.
"""

import hashlib
import io
import json
import os
import threading
import time
import types
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.io.filesystem import (
    BeamIOError,
    CompressedFile,
    CompressionTypes,
    FileMetadata,
    FileSystem,
)
from apache_beam.io.filesystems import FileSystems

import pipeline
from pipeline.launch import job
from pipeline.outputs import sinks
from pipeline.outputs.manifest import MANIFEST
from tests.e2e import helpers

SCHEME = "mem"
NUM_EXAMPLES = 20


class _ObjectWriter(io.BytesIO):
    """A write handle that stores its bytes as an object when closed (like a GCS upload)."""

    def __init__(self, store, path):
        super().__init__()
        self._store = store
        self._path = path

    def close(self):
        if not self.closed:
            self._store.put(self._path, self.getvalue())
        super().close()


class InMemoryObjectStore(FileSystem):
    """``mem://`` paths held in this process's memory, with GCS-like semantics."""

    _objects: ClassVar[dict] = {}  # path -> (bytes, mtime), shared by all instances
    _lock: ClassVar = threading.Lock()
    PREFIX = f"{SCHEME}://"

    @classmethod
    def scheme(cls):
        return SCHEME

    @classmethod
    def put(cls, path, data):
        with cls._lock:
            cls._objects[path] = (bytes(data), time.time())

    @classmethod
    def get(cls, path):
        with cls._lock:
            if path not in cls._objects:
                raise FileNotFoundError(path)
            return cls._objects[path][0]

    @classmethod
    def paths_under(cls, prefix):
        with cls._lock:
            return sorted(path for path in cls._objects if path.startswith(prefix))

    @classmethod
    def clear(cls):
        with cls._lock:
            cls._objects.clear()

    def join(self, basepath, *paths):
        if not basepath.startswith(self.PREFIX):
            raise ValueError(f"{basepath!r} is not a {SCHEME}:// path")
        path = basepath
        for part in paths:
            path = path.rstrip("/") + "/" + part.lstrip("/")
        return path

    def split(self, path):
        path = path.strip()
        if not path.startswith(self.PREFIX):
            raise ValueError(f"{path!r} is not a {SCHEME}:// path")
        last = path.rfind("/")
        if last < len(self.PREFIX):
            return path, ""
        return path[:last], path[last + 1:]

    def mkdirs(self, path):
        pass  # object stores have no directories

    def has_dirs(self):
        return False

    def _list(self, dir_or_prefix):
        for path in self.paths_under(dir_or_prefix):
            data, mtime = self._objects[path]
            yield FileMetadata(path, len(data), mtime)

    def create(self, path, mime_type="application/octet-stream",
               compression_type=CompressionTypes.AUTO):
        handle = _ObjectWriter(self, path)
        return self._compressed(handle, path, compression_type)

    def open(self, path, mime_type="application/octet-stream",
             compression_type=CompressionTypes.AUTO):
        handle = io.BytesIO(self.get(path))
        return self._compressed(handle, path, compression_type)

    @staticmethod
    def _compressed(handle, path, compression_type):
        compression_type = FileSystem._get_compression_type(path, compression_type)
        if compression_type == CompressionTypes.UNCOMPRESSED:
            return handle
        return CompressedFile(handle, compression_type=compression_type)

    def copy(self, source_file_names, destination_file_names):
        failures = {}
        for source, destination in zip(source_file_names, destination_file_names, strict=True):
            try:
                self.put(destination, self.get(source))
            except OSError as error:
                failures[(source, destination)] = error
        if failures:
            raise BeamIOError("Copy operation failed", failures)

    def rename(self, source_file_names, destination_file_names):
        self.copy(source_file_names, destination_file_names)
        with self._lock:
            for source in source_file_names:
                self._objects.pop(source, None)

    def exists(self, path):
        with self._lock:
            return path in self._objects

    def size(self, path):
        return len(self.get(path))

    def last_updated(self, path):
        with self._lock:
            if path not in self._objects:
                raise FileNotFoundError(path)
            return self._objects[path][1]

    def checksum(self, path):
        return hashlib.md5(self.get(path)).hexdigest()

    def metadata(self, path):
        try:
            return FileMetadata(path, self.size(path), self.last_updated(path))
        except OSError as error:
            raise BeamIOError("Metadata operation failed", {path: error}) from error

    def delete(self, paths):
        # As GCS: a path ending in '/' deletes everything under it, otherwise matching objects.
        for path in paths:
            targets = (self.paths_under(path) if path.endswith("/")
                       else [m.path for m in self.match([path])[0].metadata_list])
            with self._lock:
                for target in targets:
                    self._objects.pop(target, None)


def _copy_in(local_path, remote_path):
    with open(local_path, "rb") as handle:
        InMemoryObjectStore.put(remote_path, handle.read())


def _read_parquet(path):
    with FileSystems.open(path) as handle:
        return pq.read_table(pa.BufferReader(handle.read()))


@pytest.fixture(scope="module")
def remote_run(tmp_path_factory):
    """Builds local assets, copies them into mem://, runs the demo preset on mem:// paths."""
    InMemoryObjectStore.clear()
    local = tmp_path_factory.mktemp("nonlocal-assets")
    arrays, shards, _ = helpers.shapes_inputs(local, NUM_EXAMPLES, seed=11, num_shards=2)
    root = f"{SCHEME}://bucket/audit-test"
    for shard in shards:
        _copy_in(shard, f"{root}/data/{os.path.basename(shard)}")
    _copy_in(str(local / "model.keras"), f"{root}/models/model.keras")
    _copy_in(helpers.DEMO_PRESET, f"{root}/configs/demo.yaml")
    output = f"{root}/audits/run-1"

    # A path handled as local would appear as a relative 'mem:' folder in the working dir.
    workdir = tmp_path_factory.mktemp("nonlocal-cwd")
    previous = os.getcwd()
    os.chdir(workdir)
    try:
        manifest = pipeline.run([
            "--config", f"{root}/configs/demo.yaml",
            "--set", f"source.pattern={root}/data/*.tfrecord",
            "--set", f"model.path={root}/models/model.keras",
            "--set", "explain.batch_size=8",
            "--output", output,
            "--runner=FnApiRunner",
        ])
    finally:
        os.chdir(previous)
    yield {"root": root, "output": output, "manifest": manifest, "arrays": arrays,
           "local": local, "workdir": workdir}
    InMemoryObjectStore.clear()


def test_counts_reconcile_and_manifest_is_on_the_remote_filesystem(remote_run):
    manifest = remote_run["manifest"]
    assert manifest is not None, "cli.run found no manifest through Beam FileSystems"
    stored = json.loads(FileSystems.open(
        f"{remote_run['output']}/{MANIFEST}").read().decode("utf-8"))
    # cli.run adds where the launcher rendered the report and the timing; the rest is the
    # stored manifest.
    assert manifest["report"] == f"{remote_run['output']}/report.html"
    assert stored == {key: value for key, value in manifest.items()
                      if key not in job.LAUNCHER_FIELDS}
    counts = manifest["counts"]
    assert counts["input"] == NUM_EXAMPLES
    assert counts["saliency_rows"] == NUM_EXAMPLES
    assert counts["errors"] == 0 and counts["reconciled"]
    with open(remote_run["local"] / "model.keras", "rb") as handle:
        assert manifest["model_sha256"] == hashlib.sha256(handle.read()).hexdigest()


def test_every_table_is_published_and_readable_through_beam_filesystems(remote_run):
    output = remote_run["output"]
    saliency_files = [m.path for m in FileSystems.match([f"{output}/saliency/*.parquet"])[0]
                      .metadata_list]
    assert saliency_files
    saliency = pa.concat_tables([_read_parquet(path) for path in saliency_files])
    assert saliency.num_rows == NUM_EXAMPLES
    assert sorted(saliency.column("example_id").to_pylist()) == sorted(
        str(i) for i in remote_run["arrays"]["ids"])
    maps = np.stack(saliency.column("saliency").to_numpy(zero_copy_only=False))
    assert maps.shape == (NUM_EXAMPLES, helpers.IMAGE_SIZE * helpers.IMAGE_SIZE)
    assert np.isfinite(maps).all() and np.abs(maps).max() > 0

    stats_files = FileSystems.match([f"{output}/stats/*.parquet"])[0].metadata_list
    errors_files = FileSystems.match([f"{output}/errors/*.parquet"])[0].metadata_list
    assert len(stats_files) == 1 and len(errors_files) == 1
    stats = _read_parquet(stats_files[0].path).to_pandas()
    assert stats.loc[stats.group_kind == "overall", "example_count"].item() == NUM_EXAMPLES
    assert _read_parquet(errors_files[0].path).num_rows == 0
    published = sorted(path[len(output) + 1:] for path in InMemoryObjectStore.paths_under(
        f"{output}/") if path.endswith(".parquet"))
    assert sorted(remote_run["manifest"]["files"]) == published


def test_nothing_is_left_in_staging_and_nothing_touched_local_disk(remote_run):
    output = remote_run["output"]
    everything = InMemoryObjectStore.paths_under(f"{output}/")
    assert not [path for path in everything
                if sinks.STAGING_DIR in path or "beam-temp" in path or "write-probe" in path]
    assert os.listdir(remote_run["workdir"]) == []


def test_report_is_written_to_the_remote_filesystem(remote_run):
    if not remote_run["manifest"]["config"]["output"].get("report"):
        pytest.skip("the demo preset does not ask for a report")
    from pipeline import report

    page = FileSystems.open(f"{remote_run['output']}/{report.REPORT_HTML}").read()
    assert b"<html" in page.lower() and b'src="data:image/png;base64,' in page


def test_loaders_read_a_non_local_output(remote_run):
    output = remote_run["output"]
    frame = pipeline.load_saliency(output)
    assert len(frame) == NUM_EXAMPLES
    assert frame.saliency.iloc[0].shape == (helpers.IMAGE_SIZE, helpers.IMAGE_SIZE)
    only_class_1 = pipeline.load_saliency(output, classes=[1], maps=False)
    assert set(only_class_1.target) <= {1}
    assert len(pipeline.load_stats(output)) >= 1
    assert len(pipeline.load_errors(output)) == 0


def test_loader_gives_pyarrow_the_filesystem_of_the_uri_scheme(remote_run, monkeypatch, tmp_path):
    """The gs:// / s3:// branch: pyarrow's own filesystem for the scheme, scheme-less paths.

    pyarrow has no mem:// filesystem, so this stands one in: a local mirror of the bucket.
    """
    import pyarrow.fs as pafs

    from pipeline.outputs import loader

    for path in InMemoryObjectStore.paths_under(f"{remote_run['output']}/"):
        local = tmp_path / path[len(InMemoryObjectStore.PREFIX):]
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(InMemoryObjectStore.get(path))
    mirror = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    resolved = []

    def from_uri(uri):
        resolved.append(uri)
        return mirror, uri[len(InMemoryObjectStore.PREFIX):]

    monkeypatch.setattr(loader, "pafs", types.SimpleNamespace(
        FileSystem=types.SimpleNamespace(from_uri=from_uri)))
    frame = pipeline.load_saliency(remote_run["output"], classes=[0, 1], correct=None)
    assert resolved and len(frame) == NUM_EXAMPLES
    assert frame.saliency.iloc[0].shape == (helpers.IMAGE_SIZE, helpers.IMAGE_SIZE)
