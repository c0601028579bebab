"""Filesystem helpers over Beam ``FileSystems``, so local, gs:// and other schemes all work.

Local paths are read and listed without Beam, so the pandas loaders stay light; Beam is
imported on first use of a non-local path or of a write.
"""

import glob
import os
import posixpath
import tempfile

from gbp_ops import choices


def _file_systems():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def is_local(path):
    return "://" not in path


def join(base, *parts):
    """Joins path parts with the scheme's separator."""
    if is_local(base):
        return os.path.join(base, *parts)
    return _file_systems().join(base, *parts)


def read_bytes(path):
    """Whole-file bytes; raises FileNotFoundError when missing."""
    if is_local(path):
        with open(path, "rb") as handle:
            return handle.read()
    file_systems = _file_systems()
    if not file_systems.exists(path):
        raise FileNotFoundError(path)
    with file_systems.open(path) as handle:
        return handle.read()


def read_text(path):
    return read_bytes(path).decode("utf-8")


def write_bytes(path, data):
    with _file_systems().create(path) as handle:
        handle.write(data)


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def match(pattern):
    """Paths matching a glob pattern, sorted; empty list when nothing matches."""
    if is_local(pattern):
        return sorted(path for path in glob.glob(os.path.expanduser(pattern))
                      if os.path.isfile(path))
    try:
        results = _file_systems().match([pattern])
    except Exception:  # Beam raises BeamIOError when a pattern has no match on some systems.
        return []
    return sorted(metadata.path for result in results for metadata in result.metadata_list)


def delete(paths):
    """Deletes files or directories that exist; ignores the rest."""
    file_systems = _file_systems()
    existing = [path for path in paths if file_systems.exists(path)]
    if existing:
        file_systems.delete(existing)


def basename(path):
    return posixpath.basename(path.rstrip("/"))


def make_dirs(path):
    """Creates a directory (and parents) if the filesystem has directories and it is missing."""
    file_systems = _file_systems()
    if not file_systems.exists(path):
        file_systems.mkdirs(path)


def is_savedmodel_dir(path):
    """``gbp_ops.choices.is_savedmodel_dir`` through this module's filesystems: local paths
    without Beam, others through Beam ``FileSystems``."""
    exists = os.path.isfile if is_local(path) else _file_systems().exists
    return choices.is_savedmodel_dir(path, exists, join)


def _directory_files(path):
    """``[(relative path, size, modification time)]`` of every file under a directory."""
    if is_local(path):
        found = []
        for folder, _, names in os.walk(path):
            for name in names:
                status = os.stat(os.path.join(folder, name))
                found.append((os.path.relpath(os.path.join(folder, name), path),
                              status.st_size, status.st_mtime_ns))
        return sorted(found)
    prefix = path.rstrip("/") + "/"
    results = _file_systems().match([prefix + "**"])
    return sorted((metadata.path[len(prefix):], metadata.size_in_bytes,
                   metadata.last_updated_in_seconds)
                  for result in results for metadata in result.metadata_list)


def identity(path):
    """``(size, modification time)`` of a file, or of a SavedModel directory's files (total
    size, latest time, and the file count): changes when the model is replaced."""
    if is_savedmodel_dir(path):
        files = _directory_files(path)
        return (sum(size for _, size, _ in files), max(time for _, _, time in files),
                len(files))
    if is_local(path):
        status = os.stat(path)
        return status.st_size, status.st_mtime_ns
    metadata = _file_systems().match([path])[0].metadata_list[0]
    return metadata.size_in_bytes, metadata.last_updated_in_seconds


def local_copy(path):
    """A local path holding the file (or SavedModel directory) ``path`` names, read through
    Beam ``FileSystems``.

    Local paths are returned as they are. Remote models are copied once per machine into a temp
    folder named by a hash of the path and ``identity``, so a replaced model is fetched again.
    """
    if os.path.exists(path):
        return path
    import hashlib

    digest = hashlib.sha256(f"{path}|{identity(path)}".encode()).hexdigest()[:16]
    local_dir = os.path.join(tempfile.gettempdir(), f"gbp-model-{digest}")
    local_path = os.path.join(local_dir, basename(path))
    if os.path.exists(local_path):
        return local_path
    os.makedirs(local_dir, exist_ok=True)
    partial = f"{local_path}.{os.getpid()}.partial"
    if not is_savedmodel_dir(path):
        with open(partial, "wb") as handle:
            handle.write(read_bytes(path))
        os.replace(partial, local_path)  # atomic: concurrent workers never see half a file
        return local_path
    for relative, _, _ in _directory_files(path):
        target = os.path.join(partial, *relative.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as handle:
            handle.write(read_bytes(join(path, relative)))
    try:
        os.rename(partial, local_path)  # atomic for a directory too
    except OSError:  # another worker finished first; its copy is the same model
        import shutil

        shutil.rmtree(partial, ignore_errors=True)
    return local_path
