"""aliases.json and the alias history: which version each alias names, and where it was before.

docs/design.md, "A model version on disk": aliases.json ({"champion": 3, ...}) is replaced
atomically. Beside it, .alias-history.json lists every version each alias pointed to, oldest
first, with null where the alias was removed; `rollback` walks it back and `repair_aliases`
rebuilds aliases.json from it. Callers hold the model's lock while they change either file.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_store.errors import IntegrityError
from storage.files import write_json_atomically

__all__ = [
    "ALIASES_FILE",
    "ALIAS_HISTORY_FILE",
    "AliasState",
    "checked_aliases",
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


def read_alias_history(model_dir: Path) -> dict[str, list[int | None]]:
    """The alias history in `model_dir` ({} when there is none), as stored."""
    path = model_dir / ALIAS_HISTORY_FILE
    return checked_history(_read_json(path), str(path), ALIAS_HISTORY_FILE)


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


@dataclass
class AliasState:
    """Both alias files of one model, read together so that they can be changed together."""

    aliases: dict[str, int]
    history: dict[str, list[int | None]] = field(default_factory=dict)
    changed: bool = False  # by a move, a removal or a rollback: the files need writing

    @classmethod
    def read(cls, model_dir: Path) -> AliasState:
        """Read both files; the history is caught up with aliases.json, which is the truth."""
        return cls.stored(read_aliases(model_dir), read_alias_history(model_dir))

    @classmethod
    def stored(cls, aliases: dict[str, int], history: dict[str, list[int | None]]) -> AliasState:
        """The state as stored, its history caught up with the aliases."""
        return cls(aliases, history)._caught_up()

    def write(self, model_dir: Path) -> None:
        """Replace both files, aliases.json first."""
        write_json_atomically(model_dir / ALIASES_FILE, dict(sorted(self.aliases.items())))
        write_json_atomically(model_dir / ALIAS_HISTORY_FILE, dict(sorted(self.history.items())))

    def versions_of(self, alias: str) -> list[int]:
        """The versions `alias` pointed to, oldest first (removals left out)."""
        return [version for version in self.history.get(alias, []) if version is not None]

    def move(self, alias: str, version: int) -> bool:
        """Point `alias` at `version`; False when it already pointed there (not a move)."""
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
        while earlier and (earlier[-1] == current or earlier[-1] not in published):
            earlier.pop()
        if not earlier:
            return None
        self.aliases[alias] = earlier[-1]
        self.history[alias] = list(earlier)
        self.changed = True
        return earlier[-1]

    @classmethod
    def rebuilt_from_history(
        cls, history: dict[str, list[int | None]], published: Collection[int]
    ) -> AliasState:
        """Aliases as the history last left them, keeping only those that name a published
        version: what aliases.json held when the history was last written."""
        aliases = {
            alias: versions[-1]
            for alias, versions in history.items()
            if versions and versions[-1] in published
        }
        return cls(aliases, history)._caught_up()

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
