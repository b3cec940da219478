"""Checkpoint: a directory of files, on the local disk or in a run's storage (Ray's
ray.train.Checkpoint)."""
import contextlib
import json
import os
import shutil
import tempfile

from shoal.train import _storage

_METADATA_FILE = ".metadata.json"


class Checkpoint:
    """A directory at `path` on `filesystem` (a pyarrow filesystem; None is the local disk).

    A training function makes one with `Checkpoint.from_directory(dir)` and passes it to
    `shoal.train.report`, which copies the files into the run's storage; what
    `get_checkpoint()` and `Result.checkpoint` answer point into that storage."""

    def __init__(self, path, filesystem=None):
        path = os.fspath(path)
        if filesystem is not None:
            import pyarrow.fs as pafs
            if isinstance(filesystem, pafs.LocalFileSystem):
                filesystem = None
            elif not isinstance(filesystem, pafs.FileSystem):
                raise TypeError(f"Checkpoint filesystem must be a pyarrow.fs.FileSystem, got "
                                f"{type(filesystem).__name__}")
        self.path = os.path.abspath(path) if filesystem is None else path
        self.filesystem = filesystem

    @classmethod
    def from_directory(cls, path):
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise ValueError(f"Checkpoint.from_directory: {path!r} is not a directory")
        return cls(path)

    def to_directory(self, path=None):
        """Copies the checkpoint's files into `path` (a new temporary directory by default)
        and answers that path."""
        target = os.fspath(path) if path is not None else tempfile.mkdtemp(prefix="shoal-checkpoint-")
        os.makedirs(target, exist_ok=True)
        _storage.download_dir(self.filesystem, self.path, target)
        return target

    @contextlib.contextmanager
    def as_directory(self):
        """The checkpoint as a local directory for the `with` block: the directory itself when
        it is local, else a temporary copy removed afterwards."""
        if self.filesystem is None:
            if not os.path.isdir(self.path):
                raise _storage.StorageError(f"checkpoint directory {self.path} does not exist")
            yield self.path
            return
        local = self.to_directory()
        try:
            yield local
        finally:
            shutil.rmtree(local, ignore_errors=True)

    def get_metadata(self):
        path = _storage.join(self.path, _METADATA_FILE)
        if not _storage.exists(self.filesystem, path):
            return {}
        return json.loads(_storage.read_text(self.filesystem, path))

    def set_metadata(self, metadata):
        if not isinstance(metadata, dict):
            raise TypeError(f"checkpoint metadata must be a dict, got {type(metadata).__name__}")
        _storage.write_text(self.filesystem, _storage.join(self.path, _METADATA_FILE), json.dumps(metadata))

    def update_metadata(self, metadata):
        merged = self.get_metadata()
        merged.update(metadata)
        self.set_metadata(merged)

    def __eq__(self, other):
        return isinstance(other, Checkpoint) and (self.path, _storage.uri(self.filesystem, "")) == (
            other.path, _storage.uri(other.filesystem, ""))

    def __hash__(self):
        return hash(self.path)

    def __repr__(self):
        kind = "local" if self.filesystem is None else self.filesystem.type_name
        return f"Checkpoint(filesystem={kind}, path={self.path})"
