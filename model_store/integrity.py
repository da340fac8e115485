"""Whether a published version is sound: its manifest reads and matches its checksum, its files
match the manifest, and its model passes the store's model check. A deleted version says so
instead of failing verification."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from model_store.backend import StoreBackend
from model_store.errors import IntegrityError, InvalidInputError, NotFoundError
from model_store.keras_model import MODEL_FILE
from model_store.manifest import file_problems, read_manifest

__all__ = ["read_version_manifest", "verify_model_file", "verify_version_files"]


def raise_if_deleted(backend: StoreBackend, name: str, version: int) -> None:
    """NotFoundError when the version was deleted (it holds a tombstone)."""
    if backend.version_state(name, version) == "deleted":
        raise NotFoundError(f"version {version} of {name!r} was deleted")


def read_version_manifest(
    backend: StoreBackend, name: str, version: int, *, check_checksum: bool = True
) -> dict[str, Any]:
    """The version's manifest; IntegrityError when it is unreadable or differs from its
    checksum, NotFoundError when the version was deleted."""

    def read_file(file_name: str) -> bytes:
        return backend.read_version_file(name, version, file_name)

    try:
        return read_manifest(read_file, name, version, check_checksum=check_checksum)
    except IntegrityError:
        raise_if_deleted(backend, name, version)  # a tombstone has no manifest
        raise


def verify_version_files(
    backend: StoreBackend, name: str, version: int, version_dir: Path | None = None
) -> dict[str, Any]:
    """Check a version's files against its manifest; return the manifest. `version_dir`
    holds its files if the caller has them at hand (else they are fetched)."""
    manifest = read_version_manifest(backend, name, version)
    if version_dir is None:
        with backend.version_files(name, version) as fetched:
            problems = file_problems(fetched, manifest)
    else:
        problems = file_problems(version_dir, manifest)
    if problems:
        raise_if_deleted(backend, name, version)
        raise IntegrityError(
            f"version {version} of {name!r} failed verification: {'; '.join(problems.values())}",
            list(problems.values()),
            list(problems),
        )
    return manifest


def verify_model_file(
    backend: StoreBackend, check_model: Callable[[Path], None], name: str, version: int
) -> None:
    """IntegrityError when the version's model.keras does not pass `check_model`."""
    try:
        with backend.version_files(name, version) as version_dir:
            check_model(version_dir / MODEL_FILE)
    except InvalidInputError as error:
        raise IntegrityError(
            f"version {version} of {name!r} failed verification: {error}",
            [str(error)],
            [MODEL_FILE],
        ) from None
