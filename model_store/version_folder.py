"""The folder of one version, versions/<N>: the files it holds, and the tombstone of a deleted one.

docs/design.md, "A model version on disk": model.keras, vocabulary.json and extra files, then
manifest.json; a version is never changed once published. Deleting one leaves `.deleted` in
its folder, so the folder is never empty and N is never taken again.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model_store.errors import InvalidInputError, InvalidNameError
from model_store.keras_model import MODEL_FILE, write_model_file
from model_store.manifest import MANIFEST_CHECKSUM_FILE, MANIFEST_FILE
from model_store.names import validate_name, version_number
from storage.faults import fault_point
from storage.files import dump_json, fsync_directory, fsync_file, write_bytes_durably

__all__ = [
    "DELETED_MARKER",
    "VERSIONS_DIR",
    "VOCABULARY_FILE",
    "bury_version",
    "checked_extra_files",
    "is_deleted",
    "published_numbers",
    "remove_buried_files",
    "write_version_files",
]

VERSIONS_DIR = "versions"
VOCABULARY_FILE = "vocabulary.json"
DELETED_MARKER = ".deleted"
_RESERVED_FILE_NAMES = frozenset(
    {MODEL_FILE, VOCABULARY_FILE, MANIFEST_FILE, MANIFEST_CHECKSUM_FILE}
)


def published_numbers(versions_dir: Path) -> list[int]:
    """The version numbers in a versions/ folder that are published and not deleted, sorted."""
    if not versions_dir.is_dir():
        return []
    numbers = []
    for entry in os.scandir(versions_dir):
        number = version_number(entry.name)
        if (
            number is not None
            and entry.is_dir(follow_symlinks=False)
            and not os.path.lexists(os.path.join(entry.path, DELETED_MARKER))
        ):
            numbers.append(number)
    return sorted(numbers)


def is_deleted(version_dir: Path) -> bool:
    """Whether the version in `version_dir` was deleted (it holds a tombstone)."""
    return (version_dir / DELETED_MARKER).exists()


def checked_extra_files(
    extra_files: Mapping[str, bytes | os.PathLike[str]],
) -> dict[str, bytes | Path]:
    """The extra files of a registration as {file name: bytes or Path}, or InvalidNameError /
    InvalidInputError for a bad name, a reserved one, a missing file or a str."""
    checked: dict[str, bytes | Path] = {}
    for file_name, source in extra_files.items():
        validate_name(file_name, "extra file name")
        if file_name in _RESERVED_FILE_NAMES:
            raise InvalidNameError(f"extra file name {file_name!r} is reserved by the store")
        if isinstance(source, (bytes, bytearray, memoryview)):
            checked[file_name] = bytes(source)
        elif isinstance(source, os.PathLike):
            path = Path(source)
            if not path.is_file():
                raise InvalidInputError(f"extra file {file_name!r}: {path} is not a file")
            checked[file_name] = path
        else:
            # A str is refused on purpose: file content and file path would look the same.
            raise InvalidInputError(
                f"extra file {file_name!r} must be bytes or a Path, not {type(source).__name__}"
            )
    return checked


def write_version_files(
    folder: Path, model: Any, vocabulary_text: str, extras: Mapping[str, bytes | Path]
) -> None:
    """Write the model, the vocabulary and the extra files of a version into `folder`."""
    write_model_file(model, folder / MODEL_FILE)
    write_bytes_durably(folder / VOCABULARY_FILE, vocabulary_text.encode("utf-8"))
    for file_name, source in extras.items():
        target = folder / file_name
        if isinstance(source, Path):
            shutil.copyfile(source, target)
            fsync_file(target)
        else:
            write_bytes_durably(target, source)


def bury_version(version_dir: Path, tombstone: Mapping[str, Any]) -> None:
    """Write the tombstone into a version's folder, then remove everything else in it."""
    # Tombstone first: from now on readers see the version as deleted, and the folder is never
    # empty, so no writer can rename a new version onto this number.
    descriptor = os.open(version_dir / DELETED_MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        stream.write(dump_json(tombstone) + "\n")
        stream.flush()
        os.fsync(stream.fileno())
    fault_point("delete.committed")
    remove_buried_files(version_dir)


def remove_buried_files(version_dir: Path) -> list[str]:
    """Remove what a deleted version's folder still holds besides its tombstone (all of it
    but the tombstone, after a delete that died midway); the names removed."""
    removed = []
    for entry in sorted(os.scandir(version_dir), key=lambda entry: entry.name):
        if entry.name == DELETED_MARKER:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)
        removed.append(entry.name)
        fault_point("delete.removing")
    if removed:
        fsync_directory(version_dir)
    return removed
