"""A model store in object storage, where nothing can be renamed or locked: every step that must
not race is an object created only if absent (If-None-Match: *), and the object written last
is what makes a change visible.

    <root>/<model-name>/
      versions/<N>/.claim        created only if absent: N is this writer's from then on
      versions/<N>/...           model.keras, vocabulary.json, extra files, manifest.sha256
      versions/<N>/manifest.json written last, only if absent: the commit; no manifest, no
                                 version (a writer that died leaves an unlisted, unused N)
      versions/<N>/.deleted      the record of a deleted version, written after its delete
                                 committed (the version's other objects are then removed)
      alias-log/<sequence>.json  each alias change or delete is the next entry, created only if
                                 absent, holding every alias, the history and the deleted
                                 versions; the newest is the truth

A delete is decided and committed in one entry: the check that no alias names the version and
the version's place among the deleted are one conditional write, so a delete that dies before it
changed nothing, and one that dies after it is a deleted version whose leftover objects `repair`
removes. A move is decided on the same state, so it can never land on a deleted version.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from model_store.aliases import AliasState, checked_aliases, checked_deleted, checked_history
from model_store.entities import VersionState
from model_store.errors import IntegrityError, ModelStoreError, NotFoundError
from model_store.manifest import MANIFEST_FILE, utc_now_iso
from model_store.names import is_valid_name, version_number
from model_store.version_folder import DELETED_MARKER, VERSIONS_DIR
from storage.faults import fault_point
from storage.files import dump_json
from storage.objects import ObjectLocation

__all__ = ["ALIAS_LOG_DIR", "CLAIM_FILE", "ObjectBackend"]

CLAIM_FILE = ".claim"
ALIAS_LOG_DIR = "alias-log"
# Far more than real contention needs; only guards against a loop that never ends.
_MAX_ATTEMPTS = 1_000
T = TypeVar("T")


class ObjectBackend:
    """The storage side of a store rooted at an object storage prefix."""

    def __init__(self, root: ObjectLocation) -> None:
        self.root = root

    # ------------------------------------------------------------------ versions

    def model_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return [
            name
            for name, is_folder in self.root.child_names()
            if is_folder and is_valid_name(name) and self.published_numbers(name)
        ]

    def has_model(self, name: str) -> bool:
        return bool(self._version_objects(name))

    def published_numbers(self, name: str) -> list[int]:
        deleted = self._deleted(name)
        return sorted(
            number
            for number, files in self._version_objects(name).items()
            if _state(number, files, deleted) == "published"
        )

    def version_state(self, name: str, version: int) -> VersionState:
        if version < 1:
            return "missing"
        files = set(self._versions(name).joinpath(str(version)).files_below())
        return _state(version, files, self._deleted(name))

    def version_uri(self, name: str, version: int) -> str:
        return self._versions(name).joinpath(str(version)).uri

    def read_version_file(self, name: str, version: int, file_name: str) -> bytes:
        return self._versions(name).joinpath(str(version), file_name).read_bytes()

    @contextlib.contextmanager
    def version_files(self, name: str, version: int) -> Iterator[Path]:
        """The version's objects downloaded into a private folder (the claim and a tombstone
        left out: they are the protocol's, not the version's)."""
        folder_location = self._versions(name).joinpath(str(version))
        with _private_folder() as folder:
            for relative in folder_location.files_below():
                if relative not in (CLAIM_FILE, DELETED_MARKER):
                    folder_location.joinpath(relative).copy_to(folder / relative)
            yield folder

    @contextlib.contextmanager
    def staging(self, name: str) -> Iterator[Path]:
        with _private_folder() as folder:
            yield folder

    def publish(self, name: str, staged: Path, seal: Callable[[Path, int], None]) -> int:
        versions = self._versions(name)
        claim = {"claimed_at": utc_now_iso(), "host": socket.gethostname(), "pid": os.getpid()}
        for _attempt in range(_MAX_ATTEMPTS):
            numbers = self._version_objects(name)
            version = 1 + max(numbers, default=0)
            folder = versions.joinpath(str(version))
            if not folder.joinpath(CLAIM_FILE).create_exclusively(dump_json(claim).encode()):
                continue  # another writer claimed N first; look again
            seal(staged, version)
            # Under our claim nobody else writes here; the manifest goes last, and only if
            # absent, so a reader sees all of the version or none of it.
            for path in sorted(staged.iterdir()):
                if path.name != MANIFEST_FILE:
                    folder.joinpath(path.name).publish(path, exclusive=False)
            fault_point("register.before-commit")
            if not folder.joinpath(MANIFEST_FILE).publish(staged / MANIFEST_FILE, exclusive=True):
                raise ModelStoreError(
                    f"{folder.uri} was claimed by this writer but holds another manifest"
                )
            return version
        raise ModelStoreError(f"no free version number in {versions.uri} after many attempts")

    # ------------------------------------------------------------------ aliases

    def read_aliases(self, name: str) -> AliasState:
        return self._latest_aliases(name)[1]

    def change_aliases(self, name: str, change: Callable[[AliasState], T]) -> T:
        for attempt in range(_MAX_ATTEMPTS):
            sequence, state = self._latest_aliases(name)
            result = change(state)
            if not state.changed:
                return result
            fault_point("aliases.before-commit")
            if self._append_aliases(name, sequence + 1, state):
                return result
            # Another change took this entry: back off a little, then decide again on it.
            time.sleep(random.uniform(0, 0.01 * min(attempt + 1, 20)))
        raise ModelStoreError(f"could not change the aliases of {name!r}: too much contention")

    def repair_aliases(self, name: str, published: list[int]) -> list[str]:
        """A damaged newest entry is followed by one rebuilt from the newest readable entry
        (aliases kept only where they name a published version)."""
        for _attempt in range(_MAX_ATTEMPTS):
            entries = self._alias_entries(name)
            if not entries:
                return []
            sequence = entries[-1]
            try:
                self._read_alias_entry(name, sequence)
                return []
            except IntegrityError:
                pass
            readable: AliasState | None = None
            for earlier in reversed(entries[:-1]):
                with contextlib.suppress(IntegrityError):
                    readable = self._read_alias_entry(name, earlier)
                    break
            previous = readable or AliasState({})
            state = AliasState.rebuilt_from_history(previous.history, published, previous.deleted)
            if self._append_aliases(name, sequence + 1, state):
                return [_entry_name(sequence)]
        raise ModelStoreError(f"could not repair the aliases of {name!r}: too much contention")

    def delete_version(
        self,
        name: str,
        version: int,
        tombstone: dict[str, object],
        check_aliases: Callable[[AliasState], None],
    ) -> None:
        def decide(state: AliasState) -> None:
            if version in state.deleted:
                raise NotFoundError(f"version {version} of {name!r} was deleted")
            check_aliases(state)
            state.deleted.add(version)
            state.changed = True

        self.change_aliases(name, decide)
        fault_point("delete.committed")
        folder = self._versions(name).joinpath(str(version))
        folder.joinpath(DELETED_MARKER).write_atomically(dump_json(tombstone).encode())
        self._remove_deleted_objects(folder)

    def finish_deletes(self, name: str) -> list[str]:
        deleted = self._deleted(name)
        repairs = []
        for number, files in sorted(self._version_objects(name).items()):
            folder = self._versions(name).joinpath(str(number))
            if number in deleted:
                if DELETED_MARKER not in files:
                    record = {"deleted_at": utc_now_iso(), "model_name": name, "version": number}
                    folder.joinpath(DELETED_MARKER).write_atomically(dump_json(record).encode())
                removed = self._remove_deleted_objects(folder)
                if removed:
                    repairs.append(
                        f"versions/{number}: removed {', '.join(removed)} of a deleted version"
                    )
            elif DELETED_MARKER in files and MANIFEST_FILE in files:
                # A tombstone that no committed delete stands behind (written first by stores
                # before deletes were committed in the alias log): the version was never deleted.
                folder.joinpath(DELETED_MARKER).delete()
                repairs.append(
                    f"versions/{number}: removed the tombstone of a delete that never committed"
                )
        return repairs

    def _remove_deleted_objects(self, folder: ObjectLocation) -> list[str]:
        removed = []
        for relative in folder.files_below():
            if relative not in (DELETED_MARKER, CLAIM_FILE):
                folder.joinpath(relative).delete()
                removed.append(relative)
                fault_point("delete.removing")
        return removed

    # ------------------------------------------------------------------ internals

    def _versions(self, name: str) -> ObjectLocation:
        return self.root.joinpath(name, VERSIONS_DIR)

    def _version_objects(self, name: str) -> dict[int, set[str]]:
        """Each version number under versions/ and the names of its objects (one listing)."""
        objects: dict[int, set[str]] = {}
        for relative in self._versions(name).files_below():
            number_text, _, file_name = relative.partition("/")
            number = version_number(number_text)
            if number is not None and file_name:
                objects.setdefault(number, set()).add(file_name)
        return objects

    def _alias_log(self, name: str) -> ObjectLocation:
        return self.root.joinpath(name, ALIAS_LOG_DIR)

    def _alias_entries(self, name: str) -> list[int]:
        entries = []
        for relative in self._alias_log(name).files_below():
            stem, dot, suffix = relative.partition(".")
            if dot and suffix == "json" and stem.isdigit():
                entries.append(int(stem))
        return sorted(entries)

    def _latest_aliases(self, name: str) -> tuple[int, AliasState]:
        entries = self._alias_entries(name)
        if not entries:
            return 0, AliasState({})
        return entries[-1], self._read_alias_entry(name, entries[-1])

    def _read_alias_entry(self, name: str, sequence: int) -> AliasState:
        entry = self._alias_log(name).joinpath(_entry_name(sequence))
        file_name = f"{ALIAS_LOG_DIR}/{_entry_name(sequence)}"
        try:
            data = json.loads(entry.read_bytes())
        except FileNotFoundError:
            raise IntegrityError(f"{entry.uri} is missing", files=[file_name]) from None
        except ValueError:
            raise IntegrityError(f"{entry.uri} is not valid JSON", files=[file_name]) from None
        if not isinstance(data, dict):
            raise IntegrityError(f"{entry.uri} is not an alias-log entry", files=[file_name])
        return AliasState.stored(
            checked_aliases(data.get("aliases"), entry.uri, file_name),
            checked_history(data.get("history"), entry.uri, file_name),
            checked_deleted(data.get("deleted"), entry.uri, file_name),
        )

    def _deleted(self, name: str) -> set[int]:
        """The versions whose delete committed, by the newest readable alias-log entry."""
        for sequence in reversed(self._alias_entries(name)):
            with contextlib.suppress(IntegrityError):
                return self._read_alias_entry(name, sequence).deleted
        return set()

    def _append_aliases(self, name: str, sequence: int, state: AliasState) -> bool:
        entry = {
            "sequence": sequence,
            "written_at": utc_now_iso(),
            "aliases": dict(sorted(state.aliases.items())),
            "history": dict(sorted(state.history.items())),
            "deleted": sorted(state.deleted),
        }
        location = self._alias_log(name).joinpath(_entry_name(sequence))
        return location.create_exclusively((dump_json(entry) + "\n").encode("utf-8"))


def _state(version: int, files: set[str], deleted: set[int]) -> VersionState:
    """A version's state from its objects and the committed deletes."""
    if version in deleted or (DELETED_MARKER in files and MANIFEST_FILE not in files):
        return "deleted"  # the second: a version deleted before deletes were committed in the log
    return "published" if MANIFEST_FILE in files else "missing"


def _entry_name(sequence: int) -> str:
    # Zero-padded, so that names sort as numbers do in any listing.
    return f"{sequence:012d}.json"


@contextlib.contextmanager
def _private_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="review-scoring-model-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
