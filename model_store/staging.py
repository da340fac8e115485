"""Staging folders: where a version is written before it is renamed into versions/<N>.

docs/design.md, "A model version on disk": the rename, which fails when another writer took N
first, is what stops two writers from taking the same number.

    <model-name>/.staging/<token>/       the files of a version being written
    <model-name>/.staging/<token>.lock   flocked by its writer for as long as the writer lives
    <model-name>/.staging.lock           flocked to create staging folders or remove dead ones
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from model_store.errors import ModelStoreError
from model_store.names import version_number
from storage.faults import fault_point
from storage.files import exclusive_lock, fsync_directory, try_lock_nonblocking

__all__ = [
    "STAGING_DIR",
    "STAGING_LOCK_FILE",
    "next_version_number",
    "publish_as_next_version",
    "remove_dead_staging",
    "staging_folder",
]

STAGING_DIR = ".staging"
STAGING_LOCK_FILE = ".staging.lock"
# Far more than any real contention; only guards against a loop that never ends.
_MAX_PUBLISH_ATTEMPTS = 10_000


@contextlib.contextmanager
def staging_folder(model_dir: Path) -> Iterator[Path]:
    """A new, empty staging folder of `model_dir`, locked as live while the block runs.

    The folder is removed if the block raises; on success the block has renamed it away.
    """
    staging_root = model_dir / STAGING_DIR
    staging_root.mkdir(exist_ok=True)
    # Under the staging lock, every folder in .staging/ has its lock file already held by a
    # live writer or not held at all (a dead one): the cleaner cannot race a new writer.
    with exclusive_lock(model_dir / STAGING_LOCK_FILE):
        remove_dead_staging(staging_root)
        token = f"{os.getpid()}-{uuid.uuid4().hex}"
        lock_path = staging_root / f"{token}.lock"
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            if not try_lock_nonblocking(descriptor):
                raise ModelStoreError(f"could not lock new staging file {lock_path}")
            path = staging_root / token
            path.mkdir()
        except BaseException:
            os.unlink(lock_path)
            os.close(descriptor)
            raise
    try:
        yield path
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    finally:
        # Unlink before close: a cleaner that locks the file after this finds nothing to remove.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
        os.close(descriptor)


def remove_dead_staging(staging_root: Path) -> list[str]:
    """Remove staging folders whose writer died (their lock is free); the caller holds the
    staging lock. Returns the tokens removed."""
    tokens = {entry.name.removesuffix(".lock") for entry in os.scandir(staging_root)}
    removed: list[str] = []
    for token in sorted(tokens):
        lock_path = staging_root / f"{token}.lock"
        try:
            descriptor: int | None = os.open(lock_path, os.O_RDWR)
        except FileNotFoundError:
            # Writers create the lock before the folder and unlink it after their rename,
            # so a folder without a lock belongs to nobody.
            descriptor = None
        try:
            if descriptor is not None and not try_lock_nonblocking(descriptor):
                continue  # its writer is alive
            leftover = staging_root / token
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
            with contextlib.suppress(FileNotFoundError):
                lock_path.unlink()
            removed.append(token)
        finally:
            if descriptor is not None:
                os.close(descriptor)
    return removed


def publish_as_next_version(
    staging_path: Path, versions_dir: Path, prepare: Callable[[Path, int], None]
) -> int:
    """Rename the staging folder to versions/<N>, taking the next free N; return N.

    `prepare(staging_path, N)` runs before each attempt (it writes the manifest for N).
    """
    for _attempt in range(_MAX_PUBLISH_ATTEMPTS):
        version = next_version_number(versions_dir)
        prepare(staging_path, version)
        fault_point("register.before-commit")
        try:
            # Atomic, and fails if versions/<N> exists: it is never empty (files or a
            # tombstone), so two writers can never both get N.
            os.rename(staging_path, versions_dir / str(version))
        except OSError as error:
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                continue  # another writer took N first; look again
            raise
        fsync_directory(versions_dir)
        return version
    raise ModelStoreError(f"no free version number in {versions_dir} after many attempts")


def next_version_number(versions_dir: Path) -> int:
    """1 + the highest number in versions/; deleted versions keep a tombstone, so they count."""
    numbers = [version_number(entry.name) for entry in os.scandir(versions_dir)]
    return 1 + max((number for number in numbers if number is not None), default=0)
