"""Local file plumbing: hashing, durable and atomic writes, locks, and temporary files.

Every temporary file the project writes is named by `temporary_path`, `.<target>.<host>.<pid>.
<random>.tmp`, beside its target (or in the private staging folder for object storage), and
`remove_stale_temporaries` is the one sweeper: it removes those whose writer died. Readers skip
names that start with `.`, so none ever sees a temporary. POSIX only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "dump_json",
    "exclusive_lock",
    "fsync_directory",
    "fsync_file",
    "private_staging_folder",
    "remove_stale_temporaries",
    "sha256_of_file",
    "temporary_path",
    "try_lock_nonblocking",
    "write_bytes_atomically",
    "write_bytes_durably",
    "write_json_atomically",
]

_CHUNK_BYTES = 1024 * 1024
TEMPORARY_SUFFIX = ".tmp"
# Temporaries older than this are stale even when their writer may live on another machine.
STALE_TEMPORARY_SECONDS = 6 * 3600


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
    """Write a new file (refused if one exists) readable by others, and fsync it."""
    with path.open("xb") as stream:
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
    temporary = temporary_path(path.parent, path.name)
    try:
        write_bytes_durably(temporary, content)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
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


def temporary_path(folder: Path, target_name: str) -> Path:
    """A new temporary file's path in `folder` for a file to be named `target_name`:
    `.<target name>.<host>.<pid>.<random>.tmp`, so that the sweeper can tell a dead writer's
    (removed) from a live one's (left alone)."""
    token = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:12]}"
    return folder / f".{target_name}.{token}{TEMPORARY_SUFFIX}"


def remove_stale_temporaries(folder: Path, target_name: str | None = None) -> list[Path]:
    """Delete the temporaries in `folder` (of `target_name` only, if given) whose writer died:
    its process no longer runs on this host, or the file is older than STALE_TEMPORARY_SECONDS.
    Returns what it removed."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    host = socket.gethostname()
    prefix = f".{target_name}." if target_name is not None else "."
    for candidate in folder.iterdir():
        name = candidate.name
        if not (name.startswith(prefix) and name.endswith(TEMPORARY_SUFFIX)):
            continue
        # `<target>.<host>` (either may hold dots), then the pid and the random token.
        head, _, pid = name.removesuffix(TEMPORARY_SUFFIX).rpartition(".")[0].rpartition(".")
        try:
            age = time.time() - candidate.stat().st_mtime
        except FileNotFoundError:
            continue
        same_host_dead = (
            head.endswith(f".{host}") and pid.isdigit() and not _process_is_alive(int(pid))
        )
        if same_host_dead or age > STALE_TEMPORARY_SECONDS:
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def private_staging_folder() -> Path:
    """This machine's folder for files on their way to or from object storage, private to its
    user. A writer killed mid-file leaves its temporary here; remove_stale_temporaries sweeps."""
    folder = Path(tempfile.gettempdir()) / f"review-scoring-staging-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _process_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
