"""Where the project's files live: a local folder or object storage, behind one interface.

Every path the project takes (the model store root, the reviews to score, the predictions' root,
labeled training data) is a local path or a URI that fsspec knows: `s3://bucket/prefix`,
`gs://bucket/prefix`, `file:///srv/models`. fsspec is the filesystem layer Prefect, Dask and
pandas use, and its S3, GCS and Azure filesystems can refuse a write when the object exists
(`If-None-Match: *`), which is what the guarantees below rest on.

Credentials come from where the filesystem's own library looks: for S3, botocore's chain
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, an instance or pod role;
AWS_ENDPOINT_URL for an S3-compatible server); for GCS, Google's default credentials. Never the
path: a URI with a user or password in it is refused, so none reaches a run's parameters or logs.

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
import socket
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from model_store._fs import (
    fsync_directory,
    fsync_file,
    sha256_of_file,
    write_bytes_atomically,
    write_bytes_durably,
)

__all__ = [
    "LocalLocation",
    "Location",
    "ObjectLocation",
    "StorageCredentialsError",
    "is_glob",
    "is_uri",
    "remove_stale_temporaries",
    "temporary_path",
]

TEMPORARY_SUFFIX = ".tmp"
# Temporaries older than this are stale even when their writer may live on another machine.
STALE_TEMPORARY_SECONDS = 6 * 3600

# Names of the exceptions credential chains raise when they find nothing (matched by name, so
# that neither botocore nor google-auth is imported here).
_NO_CREDENTIALS = {
    "NoCredentialsError": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, in "
    "the environment of the process that runs this (the worker), or give its machine a role",
    "PartialCredentialsError": "AWS credentials are incomplete: set both AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
    "DefaultCredentialsError": "set GOOGLE_APPLICATION_CREDENTIALS, or run `gcloud auth "
    "application-default login`, where this runs",
}


# What link() raises on filesystems that have no hard links (some FUSE and network mounts).
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP}


class StorageCredentialsError(PermissionError):
    """Object storage could not be reached for want of credentials; the message says which to
    set (and never holds any)."""


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
        raise ValueError(
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
            raise ValueError(f"{parameter} is empty")
        if text.startswith("file://"):
            text = urlsplit(text).path
        if not is_uri(text):
            return LocalLocation(Path(text).absolute())
        _refuse_credentials_in(text, parameter)
        from fsspec.core import url_to_fs

        try:
            # Listings are never cached: another writer's objects must show at once.
            filesystem, path = url_to_fs(text, use_listings_cache=False)
        except (ImportError, ValueError) as error:
            raise ValueError(
                f"{parameter}: cannot use {text.split('://')[0]}:// ({error})"
            ) from None
        return ObjectLocation(filesystem, path.rstrip("/"))

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
        raise ValueError(f"{self.uri} is not on the local disk")

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

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

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

    def sha256(self) -> str:
        with self.local_copy() as path:
            return sha256_of_file(path)

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

    @abstractmethod
    def delete(self) -> None:
        """Delete the file if it is there."""

    @abstractmethod
    def delete_tree(self) -> None:
        """Delete the folder and everything below it, if it is there."""


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
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{self._path.name}.", suffix=".tmp", dir=self._path.parent
        )
        os.close(descriptor)
        temporary_path = Path(temporary)
        write_bytes_durably(temporary_path, content)
        os.chmod(temporary_path, 0o644)  # mkstemp makes 0600; others read this file
        return self.publish(temporary_path, exclusive=True)

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

    def delete_tree(self) -> None:
        shutil.rmtree(self._path, ignore_errors=True)


class ObjectLocation(Location):
    """An object, or a prefix of objects, in object storage (any fsspec filesystem that can
    refuse a write to an existing object: S3, GCS, Azure)."""

    def __init__(self, filesystem: Any, path: str) -> None:
        self._fs = filesystem
        self._path = path

    @property
    def filesystem(self) -> Any:
        """The fsspec filesystem, for callers that hand it to another library."""
        return self._fs

    @property
    def path(self) -> str:
        """The filesystem's own form of the path: `bucket/key`."""
        return self._path

    @property
    def uri(self) -> str:
        return str(self._fs.unstrip_protocol(self._path))

    @property
    def name(self) -> str:
        return self._path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> ObjectLocation:
        return ObjectLocation(self._fs, self._path.rsplit("/", 1)[0])

    def joinpath(self, *parts: str) -> ObjectLocation:
        path = self._path
        for part in parts:
            for piece in part.split("/"):
                if piece in ("", "."):
                    continue
                if piece == "..":
                    raise ValueError(f"{self.uri}: '..' is not followed in object storage")
                path = f"{path}/{piece}"
        return ObjectLocation(self._fs, path)

    @property
    def is_local(self) -> bool:
        return False

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """The filesystem's errors, with a missing-credentials one said plainly."""
        try:
            yield
        except Exception as error:
            hint = _NO_CREDENTIALS.get(type(error).__name__)
            if hint is None:
                raise
            raise StorageCredentialsError(
                f"{self.uri}: no credentials to reach {self.uri.split('://')[0]}:// storage: {hint}"
            ) from None

    def exists(self) -> bool:
        with self._errors():
            return bool(self._fs.exists(self._path))

    def is_dir(self) -> bool:
        with self._errors():
            return bool(self._fs.isdir(self._path))

    def is_file(self) -> bool:
        with self._errors():
            return bool(self._fs.isfile(self._path))

    def read_bytes(self) -> bytes:
        with self._errors():
            return bytes(self._fs.cat_file(self._path))

    def open_read(self) -> IO[bytes]:
        with self._errors():
            return self._fs.open(self._path, "rb")  # type: ignore[no-any-return]

    def glob_files(self) -> list[ObjectLocation]:
        """The objects this location's path matches as a glob pattern (`**` recurses), sorted."""
        with self._errors():
            matches = self._fs.glob(self._path, detail=True)
        return [
            ObjectLocation(self._fs, path)
            for path, info in sorted(matches.items())
            if info.get("type") == "file"
        ]

    def glob_base(self) -> ObjectLocation:
        """The prefix of this glob pattern before its first wildcard."""
        parts: list[str] = []
        for part in self._path.split("/"):
            if is_glob(part):
                break
            parts.append(part)
        return ObjectLocation(self._fs, "/".join(parts))

    def child_names(self) -> list[tuple[str, bool]]:
        with self._errors():
            entries = self._fs.ls(self._path, detail=True)
        prefix = self._path + "/"
        children = {
            entry["name"].rstrip("/").removeprefix(prefix): entry["type"] == "directory"
            for entry in entries
            if entry["name"].rstrip("/") != self._path
        }
        return sorted(children.items())

    def files_below(self) -> list[str]:
        with self._errors():
            found = self._fs.find(self._path)
        prefix = self._path + "/"
        return sorted(path.removeprefix(prefix) for path in found if path.startswith(prefix))

    @contextlib.contextmanager
    def local_copy(self) -> Iterator[Path]:
        path = temporary_path(_private_staging_folder(), self.name or "object")
        try:
            self.copy_to(path)
            yield path
        finally:
            path.unlink(missing_ok=True)

    def copy_to(self, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._errors():
            self._fs.get_file(self._path, str(target))

    def write_atomically(self, content: bytes) -> None:
        with self._errors():
            self._fs.pipe_file(self._path, content)

    def create_exclusively(self, content: bytes) -> bool:
        with self._errors():
            try:
                self._fs.pipe_file(self._path, content, mode="create")
            except FileExistsError:
                return False
        return True

    def publish(self, finished: Path, *, exclusive: bool) -> bool:
        try:
            with self._errors():
                try:
                    self._fs.put_file(
                        str(finished), self._path, mode="create" if exclusive else "overwrite"
                    )
                except FileExistsError:
                    return False
        finally:
            finished.unlink(missing_ok=True)
        return True

    def staging_folder(self) -> Path:
        return _private_staging_folder()

    def delete(self) -> None:
        with self._errors(), contextlib.suppress(FileNotFoundError):
            self._fs.rm_file(self._path)

    def delete_tree(self) -> None:
        with self._errors():
            found = self._fs.find(self._path)
            if found:
                self._fs.rm(found)


def _private_staging_folder() -> Path:
    """This machine's folder for files on their way to or from object storage, private to its
    user. A writer killed mid-file leaves its temporary here; remove_stale_temporaries sweeps."""
    folder = Path(tempfile.gettempdir()) / f"review-scoring-staging-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def temporary_path(folder: Path, target_name: str) -> Path:
    """A new temporary file's path in `folder` for a file to be named `target_name`:
    `.<target name>.<host>.<pid>.<random>.tmp`, so that a sweep can tell a dead writer's
    (removed) from a live one's (left alone), and readers, which skip names starting with
    `.`, never see it."""
    token = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:12]}"
    return folder / f".{target_name}.{token}{TEMPORARY_SUFFIX}"


def remove_stale_temporaries(folder: Path, target_name: str) -> list[Path]:
    """Delete the temporaries of `target_name` in `folder` left by a writer that died (a crash,
    a SIGKILL): its process no longer runs on this host, or it is older than
    STALE_TEMPORARY_SECONDS."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    host = socket.gethostname()
    prefix = f".{target_name}."
    for candidate in folder.iterdir():
        name = candidate.name
        if not (name.startswith(prefix) and name.endswith(TEMPORARY_SUFFIX)):
            continue
        parts = name[len(prefix) : -len(TEMPORARY_SUFFIX)].rsplit(".", 2)
        try:
            age = time.time() - candidate.stat().st_mtime
        except FileNotFoundError:
            continue
        same_host_dead = (
            len(parts) == 3
            and parts[0] == host
            and parts[1].isdigit()
            and not _process_is_alive(int(parts[1]))
        )
        if same_host_dead or age > STALE_TEMPORARY_SECONDS:
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _process_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
