"""What the store needs from where it lives: the few operations whose mechanics differ between a
local folder (local_backend.py: renames and locks) and object storage (object_backend.py:
objects created only if absent). The rules of the registry stay in store.py, the same for both.

Each guarantee, and how each kind keeps it (the table is in docs/design.md, "Storage"):
- a version appears whole: staged beside versions/ and renamed into versions/<N> | its
  manifest.json, the commit, is written last; no manifest, no version;
- two writers never share N: the rename fails if N exists | versions/<N>/.claim is created
  only if absent (If-None-Match: *);
- alias moves are compare-and-set: under the model's flock | the next alias-log entry is
  created only if absent, and a writer that loses reads the newest state and decides again;
- no alias names a deleted version: both under the flock | the delete is an alias-log entry
  that checks no alias points at the version, and moves check it is not among the deleted;
- a delete that dies midway: the tombstone is the commit, leftovers are removed by `repair` |
  the entry is the commit, leftovers are removed by `repair`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from model_store.aliases import AliasState
from model_store.entities import VersionState
from model_store.local_backend import LocalBackend
from model_store.object_backend import ObjectBackend
from storage import Location
from storage.objects import ObjectLocation

__all__ = ["StoreBackend", "backend_for"]

T = TypeVar("T")


class StoreBackend(Protocol):
    """The storage side of a model store rooted at one location."""

    def model_names(self) -> list[str]:
        """Valid model names under the root that have a published version, sorted."""

    def has_model(self, name: str) -> bool:
        """Whether `name` has a versions folder (any version, published or not)."""

    def published_numbers(self, name: str) -> list[int]:
        """The published, not deleted, version numbers of `name`, sorted."""

    def version_state(self, name: str, version: int) -> VersionState: ...

    def version_uri(self, name: str, version: int) -> str: ...

    def read_version_file(self, name: str, version: int, file_name: str) -> bytes:
        """One file of a version; FileNotFoundError when it is not there."""

    def version_files(self, name: str, version: int) -> contextlib.AbstractContextManager[Path]:
        """A local folder holding the version's files, for the `with` block."""

    def staging(self, name: str) -> contextlib.AbstractContextManager[Path]:
        """An empty local folder to write a new version into; removed afterwards."""

    def publish(self, name: str, staged: Path, seal: Callable[[Path, int], None]) -> int:
        """Publish the staged files as the next free version N and return N. `seal(staged, N)`
        writes the manifest for N into `staged` before N is made visible."""

    def read_aliases(self, name: str) -> AliasState: ...

    def change_aliases(self, name: str, change: Callable[[AliasState], T]) -> T:
        """Apply `change` to the current aliases and store the result as one compare-and-set
        step; `change` may run more than once, each time on the newest state."""

    def repair_aliases(self, name: str, published: list[int]) -> list[str]:
        """Rewrite unreadable alias records; the names of those rewritten."""

    def delete_version(
        self,
        name: str,
        version: int,
        tombstone: dict[str, object],
        check_aliases: Callable[[AliasState], None],
    ) -> None:
        """Delete a published version, leaving a tombstone, unless `check_aliases` raises on
        the aliases current at the time of the delete."""

    def finish_deletes(self, name: str) -> list[str]:
        """Finish the deletes that died midway (and undo any that never committed); what was
        done, one line per version."""


def backend_for(root: Location) -> StoreBackend:
    """The backend for a store rooted at `root`."""
    if isinstance(root, ObjectLocation):
        return ObjectBackend(root)
    return LocalBackend(root.local_path)
