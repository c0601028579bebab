"""Filesystem helpers over Beam ``FileSystems``, so local, gs:// and other schemes all work."""

import posixpath

from apache_beam.io.filesystems import FileSystems


def join(base, *parts):
    """Joins path parts with the scheme's separator."""
    return FileSystems.join(base, *parts)


def read_bytes(path):
    """Whole-file bytes; raises FileNotFoundError when missing."""
    if not FileSystems.exists(path):
        raise FileNotFoundError(path)
    with FileSystems.open(path) as handle:
        return handle.read()


def read_text(path):
    return read_bytes(path).decode("utf-8")


def write_bytes(path, data):
    with FileSystems.create(path) as handle:
        handle.write(data)


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def match(pattern):
    """Paths matching a glob pattern, sorted; empty list when nothing matches."""
    try:
        results = FileSystems.match([pattern])
    except Exception:  # Beam raises BeamIOError when a pattern has no match on some systems.
        return []
    return sorted(metadata.path for result in results for metadata in result.metadata_list)


def delete(paths):
    """Deletes files or directories that exist; ignores the rest."""
    existing = [path for path in paths if FileSystems.exists(path)]
    if existing:
        FileSystems.delete(existing)


def basename(path):
    return posixpath.basename(path.rstrip("/"))


def make_dirs(path):
    """Creates a directory (and parents) if the filesystem has directories and it is missing."""
    if not FileSystems.exists(path):
        FileSystems.mkdirs(path)
