"""The model registry as the Prefect UI shows it: one table artifact per model, key
`<model>-registry`, written again on every change (a training run's registration and promotion
decision; a promotion, rollback, alias removal or delete from the command line), and one event per
change, `review-scoring.model.<change>`, about the resource `review-scoring.model.<model>`.

The table is the history, newest first; the artifact's description says which version is
champion now, since when and why. Prefect keeps each earlier table as an older version of the key.
The store stays the truth: the view says what changed, when, why and by whom.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel

from model_store import CHAMPION, ModelStore
from tasks.artifacts import run_artifact

__all__ = [
    "EVENT_PREFIX",
    "RegistryChange",
    "alias_changes",
    "publish_registry",
    "registry_description",
    "registry_key",
    "training_changes",
]

EVENT_PREFIX = "review-scoring.model."
# Moves that make a version champion, as the history's "change" column says them.
_MOVES = ("promoted", "rolled-back")

Change = Literal[
    "registered", "promoted", "not-promoted", "rolled-back", "alias-removed", "deleted"
]


class RegistryChange(BaseModel):
    """One change of a model's versions or aliases, as the registry view records it."""

    change: Change
    model_name: str
    version: int | None
    alias: str | None = None
    previous: int | None = None  # the version the alias named before
    reason: str
    by: str  # "training run <name>" or "command line (<user>)"
    at: datetime

    def row(self) -> dict[str, Any]:
        """The history table's row."""
        return {
            "when": f"{self.at.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC",
            "change": self.change,
            "alias": self.alias or "",
            "version": f"v{self.version}" if self.version is not None else "",
            "was": f"v{self.previous}" if self.previous is not None else "",
            "why": self.reason,
            "by": self.by,
        }


def registry_key(model_name: str) -> str:
    """The artifact key (lowercase letters, digits and dashes): `imdb-sentiment-registry`."""
    slug = "".join(character if character.isalnum() else "-" for character in model_name.lower())
    return f"{slug}-registry"


def training_changes(
    model_name: str,
    version: int,
    test_accuracy: float,
    promoted: bool,
    reason: str,
    previous_champion: int | None,
    by: str,
    alias: str = CHAMPION,
) -> list[RegistryChange]:
    """A training run's changes: the version registered, then promoted or not, with the rule's
    reason."""
    at = datetime.now(timezone.utc)
    return [
        RegistryChange(
            change="registered",
            model_name=model_name,
            version=version,
            reason=f"trained: test accuracy {test_accuracy:.4f}",
            by=by,
            at=at,
        ),
        RegistryChange(
            change="promoted" if promoted else "not-promoted",
            model_name=model_name,
            version=version,
            alias=alias,
            previous=previous_champion,
            reason=reason,
            by=by,
            at=at,
        ),
    ]


def alias_changes(
    model_name: str,
    before: Mapping[str, int],
    after: Mapping[str, int],
    deleted: Sequence[int],
    reason: str,
    by: str,
    rolled_back: bool = False,
) -> list[RegistryChange]:
    """The changes between two readings of a model's aliases, and the versions deleted."""
    at = datetime.now(timezone.utc)
    changes = []
    for alias in sorted(set(before) | set(after)):
        if before.get(alias) == after.get(alias):
            continue
        kind: Change = "alias-removed" if alias not in after else "promoted"
        if rolled_back and alias in after:
            kind = "rolled-back"
        changes.append(
            RegistryChange(
                change=kind,
                model_name=model_name,
                version=after.get(alias),
                alias=alias,
                previous=before.get(alias),
                reason=reason,
                by=by,
                at=at,
            )
        )
    changes += [
        RegistryChange(
            change="deleted", model_name=model_name, version=version, reason=reason, by=by, at=at
        )
        for version in deleted
    ]
    return changes


def registry_description(aliases: Mapping[str, int], rows: Sequence[Mapping[str, Any]]) -> str:
    """`champion: v2 since 2026-12-07 13:40:02 UTC (rolled-back by ...: why); aliases: ...`."""
    champion = aliases.get(CHAMPION)
    others = ", ".join(f"{alias} -> v{aliases[alias]}" for alias in sorted(aliases)) or "none"
    if champion is None:
        return f"no champion; aliases: {others}"
    for row in rows:  # newest first
        if (
            row.get("alias") == CHAMPION
            and row.get("version") == f"v{champion}"
            and row.get("change") in _MOVES
        ):
            return (
                f"champion: v{champion} since {row['when']} ({row['change']} by {row['by']}: "
                f"{row['why']}); aliases: {others}"
            )
    return f"champion: v{champion} (since before this view began); aliases: {others}"


def publish_registry(store_root: str, model_name: str, changes: Sequence[RegistryChange]) -> str:
    """Add the changes to the model's registry view and emit their events, through the Prefect
    API this process uses (a run's, or the command's); returns the description written."""
    from prefect import get_client
    from prefect.artifacts import Artifact
    from prefect.events import Event

    key = registry_key(model_name)
    with get_client(sync_client=True) as client:
        latest = Artifact.get(key)
        data = (
            json.loads(latest.data) if latest is not None and isinstance(latest.data, str) else []
        )
        earlier = data if isinstance(data, list) else []
        rows = [change.row() for change in reversed(changes)] + earlier
        description = registry_description(ModelStore(store_root).aliases(model_name), rows)
        run_artifact("table", key, rows, description)
        events = [
            Event(
                occurred=change.at,
                event=f"{EVENT_PREFIX}{change.change}",
                resource={
                    "prefect.resource.id": f"{EVENT_PREFIX}{model_name}",
                    "prefect.resource.name": model_name,
                },
                payload=change.model_dump(mode="json"),
            ).model_dump(mode="json")
            for change in changes
        ]
        client.request("POST", "/events", json=events).raise_for_status()
    return description
