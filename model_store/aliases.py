"""aliases.json and the alias history: which version each alias names, and where it was before.

docs/design.md, "A model version on disk": aliases.json ({"champion": 3, ...}) is replaced
atomically. Beside it, .alias-history.json lists every version each alias pointed to, oldest
first, with null where the alias was removed; `rollback` walks it back and `repair_aliases`
rebuilds aliases.json from it. Callers hold the model's lock while they change either file.

A change writes the history first, holding the aliases it leads to and the history before it,
then aliases.json, the commit. A writer that dies between the two leaves a history whose aliases
are not aliases.json's: the change never happened, and the history before it is the one read.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_store.errors import IntegrityError, NotFoundError
from storage.faults import fault_point
from storage.files import write_json_atomically

__all__ = [
    "ALIASES_FILE",
    "ALIAS_HISTORY_FILE",
    "AliasState",
    "checked_aliases",
    "checked_deleted",
    "checked_history",
    "read_alias_history",
    "read_aliases",
]

ALIASES_FILE = "aliases.json"
ALIAS_HISTORY_FILE = ".alias-history.json"


def read_aliases(model_dir: Path) -> dict[str, int]:
    """The aliases in `model_dir`/aliases.json ({} when there is none); IntegrityError if the
    file is not a JSON object of alias -> version number."""
    path = model_dir / ALIASES_FILE
    return checked_aliases(_read_json(path), str(path), ALIASES_FILE)


def read_alias_history(
    model_dir: Path, aliases: dict[str, int] | None = None
) -> dict[str, list[int | None]]:
    """The alias history in `model_dir` ({} when there is none): the one that led to `aliases`
    (aliases.json's) when given, else the newest one written."""
    path = model_dir / ALIAS_HISTORY_FILE
    stored = _read_json(path)
    if isinstance(stored, dict) and isinstance(stored.get("history"), dict):
        led_to = checked_aliases(stored.get("aliases"), str(path), ALIAS_HISTORY_FILE)
        key = "history" if aliases is None or led_to == aliases else "previous"
        return checked_history(stored.get(key), str(path), ALIAS_HISTORY_FILE)
    # Written before the history held its aliases: alias -> versions.
    return checked_history(stored, str(path), ALIAS_HISTORY_FILE)


def checked_aliases(aliases: Any, where: str, file_name: str) -> dict[str, int]:
    """`aliases` ({} for None) if it maps alias names to version numbers, else IntegrityError
    naming `where`."""
    if aliases is None:
        return {}
    if not isinstance(aliases, dict) or not all(_is_version(value) for value in aliases.values()):
        raise IntegrityError(f"{where} must map alias names to version numbers", files=[file_name])
    return aliases


def checked_history(history: Any, where: str, file_name: str) -> dict[str, list[int | None]]:
    """`history` ({} for None) if it maps aliases to lists of versions, else IntegrityError."""
    if history is None:
        return {}
    if not isinstance(history, dict) or not all(
        isinstance(versions, list) and all(v is None or _is_version(v) for v in versions)
        for versions in history.values()
    ):
        raise IntegrityError(f"{where} must map aliases to lists of versions", files=[file_name])
    return history


def checked_deleted(deleted: Any, where: str, file_name: str) -> list[int]:
    """`deleted` ([] for None) if it lists version numbers, else IntegrityError."""
    if deleted is None:
        return []
    if not isinstance(deleted, list) or not all(_is_version(number) for number in deleted):
        raise IntegrityError(f"{where}: 'deleted' must list version numbers", files=[file_name])
    return deleted


@dataclass
class AliasState:
    """Both alias files of one model, read together so that they can be changed together."""

    aliases: dict[str, int]
    history: dict[str, list[int | None]] = field(default_factory=dict)
    # Object storage only: the versions whose delete was committed with these aliases, so that
    # a move and a delete are decided on one state (a folder decides both under its lock).
    deleted: set[int] = field(default_factory=set)
    changed: bool = False  # by a move, a removal, a rollback or a delete: it needs writing
    _history_as_read: dict[str, list[int | None]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._history_as_read = {alias: list(versions) for alias, versions in self.history.items()}

    @classmethod
    def read(cls, model_dir: Path) -> AliasState:
        """Read both files; the history is caught up with aliases.json, which is the truth."""
        aliases = read_aliases(model_dir)
        return cls.stored(aliases, read_alias_history(model_dir, aliases))

    @classmethod
    def stored(
        cls,
        aliases: dict[str, int],
        history: dict[str, list[int | None]],
        deleted: Collection[int] = (),
    ) -> AliasState:
        """The state as stored, its history caught up with the aliases."""
        return cls(aliases, history, set(deleted))._caught_up()

    def write(self, model_dir: Path) -> None:
        """Replace both files: the history (with the aliases it leads to and the history before
        it), then aliases.json, the commit."""
        aliases = dict(sorted(self.aliases.items()))
        history = {
            "aliases": aliases,
            "history": dict(sorted(self.history.items())),
            "previous": dict(sorted(self._history_as_read.items())),
        }
        write_json_atomically(model_dir / ALIAS_HISTORY_FILE, history)
        fault_point("aliases.between-files")
        write_json_atomically(model_dir / ALIASES_FILE, aliases)

    def versions_of(self, alias: str) -> list[int]:
        """The versions `alias` pointed to, oldest first (removals left out)."""
        return [version for version in self.history.get(alias, []) if version is not None]

    def move(self, alias: str, version: int) -> bool:
        """Point `alias` at `version`; False when it already pointed there (not a move).
        NotFoundError when the version was deleted."""
        if version in self.deleted:
            raise NotFoundError(f"version {version} was deleted")
        if self.aliases.get(alias) == version:
            return False
        self.aliases[alias] = version
        self._record(alias, version)
        self.changed = True
        return True

    def remove(self, alias: str) -> None:
        """Remove `alias`; its history stays, ending with the removal."""
        del self.aliases[alias]
        self._record(alias, None)
        self.changed = True

    def roll_back(self, alias: str, published: Collection[int]) -> int | None:
        """Point `alias` at the version before its current one, skipping versions that are
        no longer published, and forget the moves undone; None when there is no such version."""
        current = self.aliases[alias]
        earlier = self.versions_of(alias)
        while earlier and (
            earlier[-1] == current or earlier[-1] not in published or earlier[-1] in self.deleted
        ):
            earlier.pop()
        if not earlier:
            return None
        self.aliases[alias] = earlier[-1]
        self.history[alias] = list(earlier)
        self.changed = True
        return earlier[-1]

    @classmethod
    def rebuilt_from_history(
        cls,
        history: dict[str, list[int | None]],
        published: Collection[int],
        deleted: Collection[int] = (),
    ) -> AliasState:
        """Aliases as the history last left them, keeping only those that name a published
        version: what aliases.json held when the history was last written."""
        aliases = {
            alias: versions[-1]
            for alias, versions in history.items()
            if versions and versions[-1] in published and versions[-1] not in deleted
        }
        return cls(aliases, history, set(deleted))._caught_up()

    @classmethod
    def rebuilt_from_aliases(cls, aliases: dict[str, int]) -> AliasState:
        """A fresh history that starts at the current aliases."""
        return cls(aliases, {alias: [version] for alias, version in aliases.items()})

    def _caught_up(self) -> AliasState:
        # aliases.json is written first: a writer that died between the two writes (or a hand
        # edit) leaves the history one move behind.
        for alias in set(self.history) | set(self.aliases):
            self._record(alias, self.aliases.get(alias))
        return self

    def _record(self, alias: str, version: int | None) -> None:
        versions = self.history.setdefault(alias, [])
        if (versions[-1] if versions else None) != version:
            versions.append(version)


def _read_json(path: Path) -> Any:
    """The JSON in `path`, None when the file does not exist, IntegrityError when not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:  # UnicodeDecodeError included
        raise IntegrityError(f"{path} is not valid JSON", files=[path.name]) from None


def _is_version(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
