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
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import IO

from storage.errors import InvalidParameterError
from storage.files import (
    remove_stale_temporaries,
    temporary_path,
)

__all__ = [
    "PATH_WITHOUT_CREDENTIALS",
    "SUPPORTED_PROTOCOLS",
    "Location",
    "is_glob",
    "is_uri",
    "refuse_credentials_in",
]

# Protocols a run may read from and write to: the local disk and object storage that keeps
# what is written (`memory://` and the like would lose the predictions with the process).
SUPPORTED_PROTOCOLS = ("s3", "gs", "gcs")


def is_uri(text: str) -> bool:
    """Whether a path parameter names object storage or another fsspec filesystem."""
    return "://" in text


def is_glob(text: str) -> bool:
    """Whether a path parameter is a glob pattern (only asked when no such path exists)."""
    return any(character in text for character in "*?[")


# A path that is not a URI with a user or a password before its host (`s3://key:secret@bucket`,
# the secret perhaps holding '/'): bucket names hold none of ':', '@' and '/', so an '@' before
# the first '/', or after a ':' that comes before it, is credentials. Also the JSON-schema
# pattern of every path parameter, so a run form refuses it before a run (and its stored
# parameters) exists.
PATH_WITHOUT_CREDENTIALS = r"^(?![A-Za-z][A-Za-z0-9+.-]*://(?:[^/@]*@|[^/@:]*:[^@]*@))"
_CREDENTIALS_HINT = {
    "s3": "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS",
    "gcs": "GOOGLE_APPLICATION_CREDENTIALS",
}


def refuse_credentials_in(text: str, parameter: str) -> str:
    """The path, or InvalidParameterError when it holds a user or a password (never echoed)."""
    if re.match(PATH_WITHOUT_CREDENTIALS, text):
        return text
    scheme = text.split("://", 1)[0].lower()
    where = _CREDENTIALS_HINT.get(scheme, "the storage client's own variables")
    raise InvalidParameterError(
        f"{parameter}: credentials do not go in the path ({scheme}://<user>:<secret>@...); "
        f"set {where} in the environment of the process that runs this"
    )


class Location(ABC):
    """A file or folder: on the local disk, or an object or prefix in object storage.

    `uri` is how it is named in records, logs and messages: an absolute local path, or
    `s3://bucket/key`. `storage.locate(uri)` gives it back.
    """

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
    def facts(self) -> str:
        """What changes when the file's content does, without reading it: its size and
        modification time on a disk, its size and ETag (or generation) in object storage."""

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

    def object_store_options(self) -> dict[str, str]:
        """Options for Rust's `object_store` (delta-rs, Polars) to reach this place with the
        credentials this project's own client uses; none on a local disk."""
        return {}

    def check_can_hold(self, parameter: str) -> None:
        """Raise a UserError naming `parameter` when files cannot be written below this place
        at all (object storage: its bucket is missing). A local folder is made as needed."""
        return None

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
