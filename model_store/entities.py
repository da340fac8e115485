"""What the store hands back: a published version's record, and a version loaded to score."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["LoadedModel", "ModelVersion", "VersionState"]

# Whether versions/<N> is published, deleted (a tombstone) or was never published.
VersionState = Literal["published", "deleted", "missing"]


@dataclass(frozen=True)
class ModelVersion:
    """A published version: where it lives and what its manifest says.

    `problem` says why the manifest could not be read (the manifest is then empty); None when
    it was read.
    """

    name: str
    version: int
    path: str  # an absolute local path, or a URI in object storage
    manifest: dict[str, Any]
    aliases: tuple[str, ...] = ()
    problem: str | None = None

    @property
    def created_at(self) -> str | None:
        return self.manifest.get("created_at")

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.manifest.get("metrics") or {})

    @property
    def status(self) -> str:
        """ "ok", or "corrupt: <what is wrong>"."""
        return "ok" if self.problem is None else f"corrupt: {self.problem}"


@dataclass(frozen=True)
class LoadedModel:
    """A verified version loaded into memory: the Keras model and the vocabulary it needs."""

    model: Any
    vocabulary: dict[str, Any]
    manifest: dict[str, Any]
    name: str
    version: int
    path: str  # an absolute local path, or a URI in object storage
