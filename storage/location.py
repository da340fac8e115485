"""Where the project's files live: a local folder or object storage, behind one interface.

Every path the project takes (the model store root, the reviews to score, the predictions' root,
labeled training data) is a local path (`file:///srv/models` too) or an object storage URI,
`s3://bucket/prefix` or `gs://bucket/prefix` (storage/objects.py, through fsspec, the filesystem
layer Prefect, Dask and pandas use; its S3 and GCS filesystems can refuse a write when the object
exists, `If-None-Match: *`, which is what the guarantees below rest on). Other protocols are
refused: `memory://` and the like would lose what is written. Credentials never go in the path:
a URI with a user or password in it is refused, so none reaches a run's parameters or logs.

How a write becomes visible whole differs by kind, and is kept here:
- a local folder: a temporary file beside the target, then `os.replace` (atomic) or `os.link`
  (atomic, and refused when the target exists);
- object storage: one PUT, or a completed multipart upload, is atomic (never half an object);
  `mode="create"` adds `If-None-Match: *`, refused when the object exists.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from storage.errors import InvalidParameterError
from storage.files import (
    fsync_directory,
    fsync_file,
    remove_stale_temporaries,
    temporary_path,
    write_bytes_atomically,
    write_bytes_durably,
)

__all__ = ["LocalLocation", "Location", "is_glob", "is_uri"]

# Protocols a run may read from and write to: the local disk and object storage that keeps
# what is written (`memory://` and the like would lose the predictions with the process).
SUPPORTED_PROTOCOLS = ("s3", "gs", "gcs")

# What link() raises on filesystems that have no hard links (some FUSE and network mounts).
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP}


def is_uri(text: str) -> bool:
    """Whether a path parameter names object storage or another fsspec filesystem."""
    return "://" in text


def is_glob(text: str) -> bool:
    """Whether a path parameter is a glob pattern (only asked when no such path exists)."""
    return any(character in text for character in "*?[")


def _refuse_credentials_in(text: str, parameter: str) -> None:
    parts = urlsplit(text)
    if parts.username is not None or parts.password is not None:
        # Say where credentials go without echoing the ones given.
        raise InvalidParameterError(
            f"{parameter}: credentials do not go in the path "
            f"({parts.scheme}://<user>:<secret>@...); set them in the environment instead"
        )


class Location(ABC):
    """A file or folder: on the local disk, or an object or prefix in object storage.

    `uri` is how it is named in records, logs and messages: an absolute local path, or
    `s3://bucket/key`. `Location.of(uri)` gives it back.
    """

    @staticmethod
    def of(target: str | os.PathLike[str] | Location, parameter: str = "path") -> Location:
        """The location a path parameter names. Raises ValueError for an empty one, a URI with
        credentials in it, or a filesystem fsspec does not know."""
        if isinstance(target, Location):
            return target
        text = os.fspath(target)
        if not text:
            raise InvalidParameterError(f"{parameter} is empty")
        if text.startswith("file://"):
            text = urlsplit(text).path
        if not is_uri(text):
            return LocalLocation(Path(text).absolute())
        _refuse_credentials_in(text, parameter)
        # Imported here: fsspec and its filesystems are needed only for object storage.
        from storage.objects import object_location

        return object_location(text, parameter)

    # ------------------------------------------------------------------ naming

    @property
    @abstractmethod
    def uri(self) -> str: ...

    @property
    @abstractmethod
    def name(self) -> str: ...

    @property
    @abstractmethod
    def parent(self) -> Location: ...

    @abstractmethod
    def joinpath(self, *parts: str) -> Location: ...

    def __truediv__(self, part: str) -> Location:
        return self.joinpath(part)

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"Location({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and self.uri == other.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    @property
    @abstractmethod
    def is_local(self) -> bool: ...

    @property
    def local_path(self) -> Path:
        """The path on this machine; ValueError for object storage."""
        raise InvalidParameterError(f"{self.uri} is not on the local disk")

    def contains(self, other: Location) -> bool:
        """Whether `other` is this location or lies below it (same filesystem)."""
        return other.uri == self.uri or other.uri.startswith(self.uri.rstrip("/") + "/")

    # ------------------------------------------------------------------ reading

    @abstractmethod
    def exists(self) -> bool: ...

    @abstractmethod
    def is_dir(self) -> bool: ...

    @abstractmethod
    def is_file(self) -> bool: ...

    @abstractmethod
    def read_bytes(self) -> bytes:
        """The whole file; FileNotFoundError when there is none."""

    @abstractmethod
    def open_read(self) -> IO[bytes]:
        """The file opened for reading (seekable), for libraries that read parts of it."""

    @abstractmethod
    def child_names(self) -> list[tuple[str, bool]]:
        """(name, is a folder) of each entry directly below this folder, sorted by name."""

    @abstractmethod
    def files_below(self) -> list[str]:
        """Paths, relative to this folder and '/'-separated, of every file below it, sorted."""

    @abstractmethod
    def local_copy(self) -> contextlib.AbstractContextManager[Path]:
        """The file on the local disk for the `with` block: itself, or a private download."""

    @abstractmethod
    def copy_to(self, target: Path) -> None:
        """Copy the file to the local path `target` (its folder created if missing)."""

    # ------------------------------------------------------------------ writing

    @abstractmethod
    def write_atomically(self, content: bytes) -> None:
        """Replace the file with `content`: readers see the old file or the new, never half."""

    @abstractmethod
    def create_exclusively(self, content: bytes) -> bool:
        """Write `content` if no file is here, whole or not at all; False when one is."""

    @abstractmethod
    def publish(self, finished: Path, *, exclusive: bool) -> bool:
        """Make the finished local file `finished` this file, whole, and delete `finished`.

        With `exclusive`, nothing is replaced: False when a file is already here. `finished`
        should lie in `self.staging_folder()`, so that a local publish is a rename.
        """

    @abstractmethod
    def staging_folder(self) -> Path:
        """A local folder for files on their way here (created if missing): beside the target
        on a local disk, so a publish is a rename; a private temporary folder otherwise."""

    def new_temporary(self) -> Path:
        """A path for a new temporary file on its way here, in `staging_folder()`, named so
        that `sweep_temporaries` can tell whether its writer lives."""
        return temporary_path(self.staging_folder(), self.name)

    def sweep_temporaries(self) -> list[Path]:
        """Delete the temporaries on their way here that a writer which died left behind."""
        return remove_stale_temporaries(self.staging_folder(), self.name)

    @abstractmethod
    def delete(self) -> None:
        """Delete the file if it is there."""


class LocalLocation(Location):
    """A path on this machine's disk (POSIX)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @property
    def uri(self) -> str:
        return str(self._path)

    @property
    def name(self) -> str:
        return self._path.name

    @property
    def parent(self) -> LocalLocation:
        return LocalLocation(self._path.parent)

    def joinpath(self, *parts: str) -> LocalLocation:
        return LocalLocation(self._path.joinpath(*parts))

    @property
    def is_local(self) -> bool:
        return True

    @property
    def local_path(self) -> Path:
        return self._path

    def contains(self, other: Location) -> bool:
        if not isinstance(other, LocalLocation):
            return False
        # Through symbolic links, as the kernel would follow them.
        mine, theirs = self._path.resolve(), other._path.resolve()
        return theirs == mine or mine in theirs.parents

    def exists(self) -> bool:
        return self._path.exists()

    def is_dir(self) -> bool:
        return self._path.is_dir()

    def is_file(self) -> bool:
        return self._path.is_file()

    def read_bytes(self) -> bytes:
        return self._path.read_bytes()

    def open_read(self) -> IO[bytes]:
        return self._path.open("rb")

    def child_names(self) -> list[tuple[str, bool]]:
        return sorted((entry.name, entry.is_dir()) for entry in os.scandir(self._path))

    def files_below(self) -> list[str]:
        return sorted(
            path.relative_to(self._path).as_posix()
            for path in self._path.rglob("*")
            if path.is_file()
        )

    @contextlib.contextmanager
    def local_copy(self) -> Iterator[Path]:
        yield self._path

    def copy_to(self, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._path, target)

    def write_atomically(self, content: bytes) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomically(self._path, content)

    def create_exclusively(self, content: bytes) -> bool:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        temporary = temporary_path(self._path.parent, self._path.name)
        write_bytes_durably(temporary, content)
        return self.publish(temporary, exclusive=True)

    def publish(self, finished: Path, *, exclusive: bool) -> bool:
        try:
            fsync_file(finished)
            if exclusive:
                try:
                    os.link(finished, self._path)  # atomic, and refused when the name exists
                except FileExistsError:
                    return False
                except OSError as error:
                    if error.errno not in _NO_HARD_LINKS:
                        raise
                    # A filesystem without hard links: checked, then renamed (not atomic).
                    if self._path.exists():
                        return False
                    os.replace(finished, self._path)
            else:
                os.replace(finished, self._path)
        finally:
            finished.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not every filesystem can fsync a folder
            fsync_directory(self._path.parent)
        return True

    def staging_folder(self) -> Path:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        return self._path.parent

    def delete(self) -> None:
        self._path.unlink(missing_ok=True)
