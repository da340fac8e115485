"""A model store in a local folder: versions staged and renamed into place, aliases changed under
the model's flock (POSIX). The layout is in store.py's docstring and docs/design.md."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from model_store.aliases import (
    ALIAS_HISTORY_FILE,
    ALIASES_FILE,
    AliasState,
    read_alias_history,
    read_aliases,
)
from model_store.entities import VersionState
from model_store.errors import IntegrityError, NotFoundError
from model_store.names import is_valid_name, version_number
from model_store.staging import publish_as_next_version, staging_folder
from model_store.version_folder import (
    VERSIONS_DIR,
    bury_version,
    is_deleted,
    published_numbers,
    remove_buried_files,
)
from storage.faults import fault_point
from storage.files import exclusive_lock, remove_stale_temporaries

__all__ = ["MODEL_LOCK_FILE", "LocalBackend"]

MODEL_LOCK_FILE = ".lock"
T = TypeVar("T")


class LocalBackend:
    """The storage side of a store rooted at a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def model_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in os.scandir(self.root)
            if is_valid_name(entry.name) and published_numbers(Path(entry.path) / VERSIONS_DIR)
        )

    def has_model(self, name: str) -> bool:
        return (self.root / name / VERSIONS_DIR).is_dir()

    def published_numbers(self, name: str) -> list[int]:
        return published_numbers(self.root / name / VERSIONS_DIR)

    def version_state(self, name: str, version: int) -> VersionState:
        version_dir = self._version_dir(name, version)
        if version < 1 or not version_dir.is_dir():
            return "missing"
        return "deleted" if is_deleted(version_dir) else "published"

    def version_uri(self, name: str, version: int) -> str:
        return str(self._version_dir(name, version))

    def read_version_file(self, name: str, version: int, file_name: str) -> bytes:
        return (self._version_dir(name, version) / file_name).read_bytes()

    @contextlib.contextmanager
    def version_files(self, name: str, version: int) -> Iterator[Path]:
        yield self._version_dir(name, version)

    @contextlib.contextmanager
    def staging(self, name: str) -> Iterator[Path]:
        model_dir = self.root / name
        (model_dir / VERSIONS_DIR).mkdir(parents=True, exist_ok=True)
        with staging_folder(model_dir) as path:
            yield path

    def publish(self, name: str, staged: Path, seal: Callable[[Path, int], None]) -> int:
        return publish_as_next_version(staged, self.root / name / VERSIONS_DIR, seal)

    def read_aliases(self, name: str) -> AliasState:
        return AliasState.read(self.root / name)

    def change_aliases(self, name: str, change: Callable[[AliasState], T]) -> T:
        model_dir = self.root / name
        with self._model_lock(model_dir):
            state = AliasState.read(model_dir)
            result = change(state)
            if state.changed:
                fault_point("aliases.before-commit")
                state.write(model_dir)
        return result

    def repair_aliases(self, name: str, published: list[int]) -> list[str]:
        """An unreadable aliases.json is rebuilt from the alias history (each alias where its
        last move left it, if that version is still published); an unreadable history restarts
        from aliases.json. If both are unreadable, both restart empty."""
        model_dir = self.root / name
        with self._model_lock(model_dir):
            aliases = _read_or_none(read_aliases, model_dir)
            history = _read_or_none(read_alias_history, model_dir)
            if aliases is None:
                state = AliasState.rebuilt_from_history(history or {}, published)
            elif history is None:
                state = AliasState.rebuilt_from_aliases(aliases)
            else:
                return []
            state.write(model_dir)
        return [
            file_name
            for file_name, content in ((ALIASES_FILE, aliases), (ALIAS_HISTORY_FILE, history))
            if content is None
        ]

    def delete_version(
        self,
        name: str,
        version: int,
        tombstone: dict[str, object],
        check_aliases: Callable[[AliasState], None],
    ) -> None:
        model_dir = self.root / name
        with self._model_lock(model_dir):
            check_aliases(AliasState.read(model_dir))
            fault_point("aliases.before-commit")
            try:
                bury_version(self._version_dir(name, version), tombstone)
            except FileExistsError:  # its tombstone: another delete got there first
                raise NotFoundError(f"version {version} of {name!r} was deleted") from None

    def finish_deletes(self, name: str) -> list[str]:
        versions_dir = self.root / name / VERSIONS_DIR
        repairs = []
        for entry in sorted(os.scandir(versions_dir), key=lambda entry: entry.name):
            version_dir = Path(entry.path)
            if version_number(entry.name) is None or not is_deleted(version_dir):
                continue
            removed = remove_buried_files(version_dir)
            if removed:
                repairs.append(
                    f"versions/{entry.name}: removed {', '.join(removed)} of a deleted version"
                )
        return repairs

    def _version_dir(self, name: str, version: int) -> Path:
        return self.root / name / VERSIONS_DIR / str(version)

    @contextlib.contextmanager
    def _model_lock(self, model_dir: Path) -> Iterator[None]:
        with exclusive_lock(model_dir / MODEL_LOCK_FILE):
            # A writer that died mid-write left its temporary here.
            remove_stale_temporaries(model_dir)
            yield


def _read_or_none(reader: Callable[[Path], object], model_dir: Path) -> object:
    """What `reader` returns, or None when the file it reads is damaged."""
    try:
        return reader(model_dir)
    except IntegrityError:
        return None
