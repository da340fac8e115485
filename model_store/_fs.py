"""Filesystem helpers: hashing, durable and atomic writes, exclusive locks (POSIX only)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_CHUNK_BYTES = 1024 * 1024


def sha256_of_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so big models do not fill memory."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_file(path: Path) -> None:
    """Flush a file's data to disk (files written by others, e.g. Keras, included)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_directory(path: Path) -> None:
    """Flush a directory, so that a rename or a new entry in it survives a power cut."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_bytes_durably(path: Path, content: bytes) -> None:
    """Write a new file and fsync it; used inside private staging folders only."""
    with path.open("wb") as stream:
        stream.write(content)
        stream.flush()
        os.fsync(stream.fileno())


def dump_json(data: Any, *, indent: int | None = 2) -> str:
    """JSON text as the store writes it: UTF-8 friendly, numpy scalars turned into numbers."""
    separators = None if indent is not None else (",", ":")
    return json.dumps(
        data, indent=indent, ensure_ascii=False, default=_json_default, separators=separators
    )


def _json_default(value: Any) -> Any:
    # numpy scalars (np.float32 metrics, np.int64 counts) are common in params and metrics.
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_json_atomically(path: Path, data: Any) -> None:
    """Replace `path` with JSON so that readers see the old file or the new one, never half."""
    write_bytes_atomically(path, (dump_json(data) + "\n").encode("utf-8"))


def write_bytes_atomically(path: Path, content: bytes) -> None:
    """Replace `path` with `content` so that readers see the old file or the new one, never
    half: a temporary file in the same folder, flushed, then renamed over it."""
    descriptor, temporary_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fchmod(stream.fileno(), 0o644)  # mkstemp makes 0600; others read this file
            os.fsync(stream.fileno())
        os.replace(temporary_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary_name)
        raise
    fsync_directory(path.parent)


@contextlib.contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `lock_path` (created if needed) for the `with` block.

    The kernel drops the lock when the holder dies, so a crashed writer never blocks others.
    """
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing the descriptor releases the lock


def try_lock_nonblocking(descriptor: int) -> bool:
    """Take an exclusive flock if nobody holds one; False when another descriptor has it."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
