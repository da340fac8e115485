"""A path on this machine's disk behind the Location interface: a write becomes visible whole
through a temporary file beside the target, then `os.replace` (atomic) or `os.link` (atomic,
and refused when the target exists)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from storage.files import (
    fsync_directory,
    fsync_file,
    temporary_path,
    write_bytes_atomically,
    write_bytes_durably,
)
from storage.location import Location

__all__ = ["LocalLocation"]

# What link() raises on filesystems that have no hard links (some FUSE and network mounts).
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP}


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

    def facts(self) -> str:
        status = self._path.stat()
        return f"size={status.st_size};mtime_ns={status.st_mtime_ns}"

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
