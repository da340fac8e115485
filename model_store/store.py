"""The registry's rules: append-only numbered versions, aliases that only name sound versions.

The layout and how each kind of storage keeps these rules are in docs/design.md ("A model
version on disk") and backend.py; the plumbing lives beside this module, one concern each.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from model_store.aliases import AliasState
from model_store.backend import backend_for
from model_store.entities import LoadedModel, ModelVersion
from model_store.errors import (
    AliasInUseError,
    IntegrityError,
    InvalidNameError,
    ModelStoreError,
    NotFoundError,
)
from model_store.integrity import (
    read_version_manifest,
    verify_model_file,
    verify_version_files,
)
from model_store.keras_model import (
    MODEL_FILE,
    check_loads_in_safe_mode,
    check_model_argument,
    load_keras_model,
)
from model_store.manifest import (
    MANIFEST_FILE,
    ManifestRecord,
    json_text,
    utc_now_iso,
    write_manifest,
)
from model_store.names import (
    CHAMPION,
    LATEST,
    is_version_reference,
    validate_alias,
    validate_model_name,
)
from model_store.promotion import (
    PROMOTION_METRIC,
    PromotionDecision,
    PromotionMode,
    decide_promotion,
    metric_value,
)
from model_store.version_folder import (
    VOCABULARY_FILE,
    checked_extra_files,
    write_version_files,
)
from storage import Location, fault_point, locate

__all__ = ["LoadedModel", "ModelStore", "ModelVersion"]


class ModelStore:
    """Versioned Keras models with their vocabulary and metadata, under one root: a local folder
    or an object storage prefix (`s3://bucket/models`; storage/location.py).

    `check_model(path)` is called on each model.keras before it is published and by `verify`;
    it raises InvalidInputError to refuse the file. The default rebuilds the model's
    architecture with Keras in safe mode, which imports Keras; `check_keras_archive` only
    checks that the file is a .keras archive, without Keras.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | Location,
        *,
        check_model: Callable[[Path], None] = check_loads_in_safe_mode,
    ) -> None:
        # No storage access here: folders are created by the first registration.
        self.location = locate(root, "model_store_root")
        self._backend = backend_for(self.location)
        self._check_model = check_model

    @property
    def root(self) -> str:
        """The root as records and messages name it: an absolute path or a URI."""
        return self.location.uri

    def __repr__(self) -> str:
        return f"ModelStore({self.root!r})"

    # ------------------------------------------------------------------ register

    def register(
        self,
        name: str,
        model: Any,
        vocabulary: Mapping[str, Any],
        *,
        params: Mapping[str, Any],
        metrics: Mapping[str, Any],
        data_fingerprint: str,
        run_id: str | None = None,
        extra_files: Mapping[str, bytes | os.PathLike[str]] | None = None,
    ) -> ModelVersion:
        """Publish a new version of `name` and return it; its number is 1 + the highest so far.

        `model` is a Keras model (saved with `model.save`) or the path of a `.keras` file
        (copied as it is). `extra_files` maps file names to bytes or to paths of files to copy.
        A model that does not pass `check_model` is refused with InvalidInputError.
        """
        validate_model_name(name)
        # Check every argument before touching the disk, so bad input leaves nothing behind.
        vocabulary_text = json_text(vocabulary, "vocabulary")
        record = ManifestRecord.checked(name, params, metrics, data_fingerprint, run_id)
        extras = checked_extra_files(extra_files or {})
        check_model_argument(model)

        with self._backend.staging(name) as staging_path:
            write_version_files(staging_path, model, vocabulary_text, extras)
            self._check_model(staging_path / MODEL_FILE)
            fault_point("register.staged")
            manifest = record.manifest_of(staging_path)
            version = self._backend.publish(
                name,
                staging_path,
                lambda path, number: self._write_manifest_for(path, manifest, number),
            )
        return ModelVersion(name, version, self._backend.version_uri(name, version), manifest)

    def _write_manifest_for(
        self, staging_path: Path, manifest: dict[str, Any], version: int
    ) -> None:
        """Seal the staged files as version `version`: each publish attempt calls this."""
        manifest["version"] = version
        write_manifest(staging_path, manifest)

    # ------------------------------------------------------------------ read

    def list_models(self) -> list[str]:
        """Names of the models that have at least one version, sorted."""
        return self._backend.model_names()

    def list_versions(self, name: str) -> list[ModelVersion]:
        """The published versions of `name`, sorted by number, with their aliases.

        A version whose manifest cannot be read is listed with an empty manifest and its
        `problem`, so one damaged version does not hide the others.
        """
        self._existing_model_dir(name)
        aliases_by_version: dict[int, list[str]] = {}
        for alias, version in sorted(self.aliases(name).items()):
            aliases_by_version.setdefault(version, []).append(alias)
        versions = []
        for version in self._published_numbers(name):
            problem = None
            try:
                manifest = self._read_manifest(name, version, check_checksum=False)
            except NotFoundError:
                continue  # deleted while we were listing
            except IntegrityError as error:
                manifest, problem = {}, "; ".join(error.problems)
            versions.append(
                ModelVersion(
                    name,
                    version,
                    self._backend.version_uri(name, version),
                    manifest,
                    tuple(aliases_by_version.get(version, ())),
                    problem,
                )
            )
        return versions

    def resolve(self, name: str, ref: int | str = LATEST) -> int:
        """The version number `ref` names: an int, a digit string, "latest" or an alias."""
        self._existing_model_dir(name)
        if isinstance(ref, bool) or not isinstance(ref, (int, str)):
            raise InvalidNameError(
                f"version reference must be an int or a str, not {type(ref).__name__}"
            )
        if isinstance(ref, int):
            return self._check_version(name, ref)
        if is_version_reference(ref):
            return self._check_version(name, int(ref))
        if ref == LATEST:
            published = self._published_numbers(name)
            if not published:
                raise NotFoundError(f"model {name!r} has no versions; {self._describe(name)}")
            return published[-1]
        validate_alias(ref)
        aliases = self.aliases(name)
        if ref not in aliases:
            raise NotFoundError(f"unknown alias {ref!r} of {name!r}; {self._describe(name)}")
        return self._check_version(name, aliases[ref], via_alias=ref)

    def manifest(self, name: str, ref: int | str = LATEST) -> dict[str, Any]:
        """The manifest of a version, after checking it against manifest.sha256."""
        return self._read_manifest(name, self.resolve(name, ref))

    def manifest_sha256(self, name: str, ref: int | str = LATEST) -> str:
        """What a version is, wherever its store lives: the sha256 of its manifest.json (checked
        against manifest.sha256), which holds the sha256 of every file of the version. Two
        stores' `v1` of one name have different ones unless one is a copy of the other."""
        version = self.resolve(name, ref)
        self._read_manifest(name, version)
        manifest_bytes = self._backend.read_version_file(name, version, MANIFEST_FILE)
        return hashlib.sha256(manifest_bytes).hexdigest()

    def verify(self, name: str, ref: int | str = LATEST) -> None:
        """Check every file of a version against its manifest, and that its model passes
        `check_model`; IntegrityError names the files and what is wrong."""
        version = self.resolve(name, ref)
        self._verify_version(name, version)
        self._verify_model(name, version)

    def verify_all(self, name: str) -> dict[int, IntegrityError | None]:
        """Verify every version of `name`: version -> None when sound, else the error."""
        self._existing_model_dir(name)
        results: dict[int, IntegrityError | None] = {}
        for version in self._published_numbers(name):
            try:
                self._verify_version(name, version)
                self._verify_model(name, version)
            except IntegrityError as error:
                results[version] = error
            except NotFoundError:
                continue  # deleted meanwhile
            else:
                results[version] = None
        return results

    def load(self, name: str, ref: int | str = LATEST) -> LoadedModel:
        """Verify a version, then load its model (Keras safe mode) and vocabulary."""
        version = self.resolve(name, ref)
        with self._backend.version_files(name, version) as version_dir:
            manifest = self._verify_version(name, version, version_dir)
            vocabulary = json.loads((version_dir / VOCABULARY_FILE).read_text(encoding="utf-8"))
            model = load_keras_model(version_dir / MODEL_FILE)
        return LoadedModel(
            model=model,
            vocabulary=vocabulary,
            manifest=manifest,
            name=name,
            version=version,
            path=self._backend.version_uri(name, version),
        )

    @contextlib.contextmanager
    def verified_files(self, name: str, ref: int | str = LATEST) -> Iterator[tuple[int, Path]]:
        """(the version, a local folder with its files, checked against its manifest): the
        folder itself, or a temporary copy of one in object storage (gone after the block)."""
        version = self.resolve(name, ref)
        with self._backend.version_files(name, version) as version_dir:
            self._verify_version(name, version, version_dir)
            yield version, version_dir

    # ------------------------------------------------------------------ aliases

    def aliases(self, name: str) -> dict[str, int]:
        """The aliases of `name` and the versions they point to, as aliases.json holds them."""
        self._existing_model_dir(name)
        return dict(self._backend.read_aliases(name).aliases)

    def set_alias(self, name: str, alias: str, ref: int | str) -> int:
        """Point `alias` at the version `ref` names and return that version; history records
        each move (setting it to the version it already has changes nothing). A version that
        fails verification is refused with IntegrityError."""

        def move(state: AliasState) -> int:
            version = self.resolve(name, ref)  # in the same step: delete cannot race this
            self._verify_target(name, alias, version)
            state.move(alias, version)
            return version

        return self._change_aliases(name, alias, move)

    def promote(
        self,
        name: str,
        ref: int | str,
        alias: str = CHAMPION,
        *,
        mode: PromotionMode = "auto",
        metric: str = PROMOTION_METRIC,
    ) -> PromotionDecision:
        """Apply the promotion rule (`decide_promotion`) for version `ref` against the holder of
        `alias`, and move the alias if it says so, all under the model's lock: concurrent
        promotions never compare against a holder that another one is replacing."""

        def decide(state: AliasState) -> PromotionDecision:
            version = self.resolve(name, ref)
            new_value = metric_value(self._read_manifest(name, version), metric)
            holder = state.aliases.get(alias)
            decision = decide_promotion(
                mode,
                new_value,
                holder,
                None if holder is None else self._metric_of(name, holder, metric),
                alias=alias,
                metric=metric,
            )
            if decision.promote:
                self._verify_target(name, alias, version)
                state.move(alias, version)
            return decision

        return self._change_aliases(name, alias, decide)

    def remove_alias(self, name: str, alias: str) -> None:
        """Remove `alias`; its history is kept."""
        self._change_aliases(name, alias, lambda state: state.remove(alias), existing=True)

    def rollback(self, name: str, alias: str) -> int:
        """Move `alias` back to the version it pointed to before (skipping deleted ones)."""

        def roll_back(state: AliasState) -> int:
            history_text = ", ".join(map(str, state.versions_of(alias)))
            version = state.roll_back(alias, self._published_numbers(name))
            if version is None:
                raise NotFoundError(
                    f"alias {alias!r} of {name!r} has no earlier version to roll back to "
                    f"(history: {history_text})"
                )
            self._verify_target(name, alias, version)
            return version

        return self._change_aliases(name, alias, roll_back, existing=True)

    def alias_history(self, name: str, alias: str) -> list[int]:
        """The versions `alias` pointed to, oldest first; the last one is the current one."""
        validate_alias(alias)
        self._existing_model_dir(name)
        state = self._backend.read_aliases(name)
        if alias not in state.history:
            raise NotFoundError(
                f"alias {alias!r} of {name!r} was never set; {self._describe(name)}"
            )
        return state.versions_of(alias)

    def repair_aliases(self, name: str) -> list[str]:
        """Rewrite whichever alias record is unreadable; return the names of those rewritten.

        In a folder, an unreadable aliases.json is rebuilt from the alias history (each alias
        where its last move left it, if that version is still published); an unreadable
        history restarts from aliases.json; if both are unreadable, both restart empty. In
        object storage, a damaged newest alias-log entry is followed by one rebuilt from the
        newest readable entry.
        """
        self._existing_model_dir(name)
        return self._backend.repair_aliases(name, self._published_numbers(name))

    def repair(self, name: str) -> list[str]:
        """Repair what a command that died midway left in `name`: finish a delete that was
        committed (its leftover files), drop a tombstone no committed delete stands behind, and
        rewrite an unreadable alias record (`repair_aliases`). One line per repair; [] when
        there was nothing to repair."""
        self._existing_model_dir(name)
        repairs = self._backend.finish_deletes(name)
        rewritten = self.repair_aliases(name)
        return repairs + [f"{file_name}: rewritten (it was unreadable)" for file_name in rewritten]

    # ------------------------------------------------------------------ delete

    def delete(self, name: str, ref: int | str) -> int:
        """Delete a version (refused while an alias points at it) and return its number.

        A tombstone stays in versions/<N>, so the number is never given out again.
        """
        self._existing_model_dir(name)
        version = self.resolve(name, ref)

        def check_aliases(state: AliasState) -> None:
            pointing = sorted(alias for alias, target in state.aliases.items() if target == version)
            if pointing:
                raise AliasInUseError(
                    f"cannot delete version {version} of {name!r}: aliases point at it: "
                    f"{', '.join(pointing)}; move or remove them first"
                )

        tombstone: dict[str, Any] = {
            "deleted_at": utc_now_iso(),
            "model_name": name,
            "version": version,
        }
        with contextlib.suppress(OSError, ValueError, ModelStoreError):
            tombstone["manifest"] = self._read_manifest(name, version, check_checksum=False)
        self._backend.delete_version(name, version, tombstone, check_aliases)
        return version

    # ------------------------------------------------------------------ internals

    def _existing_model_dir(self, name: str) -> None:
        validate_model_name(name)
        if not self._backend.has_model(name):
            models = self.list_models()
            known = f"models: {', '.join(models)}" if models else f"no models in {self.root}"
            raise NotFoundError(f"unknown model {name!r}; {known}")

    def _published_numbers(self, name: str) -> list[int]:
        return self._backend.published_numbers(name)

    def _check_version(self, name: str, version: int, via_alias: str | None = None) -> int:
        state = self._backend.version_state(name, version)
        if state == "published":
            return version
        deleted = state == "deleted"
        if via_alias:
            state_text = "which was deleted" if deleted else "which does not exist"
            message = f"alias {via_alias!r} of {name!r} points to version {version}, {state_text}"
        elif deleted:
            message = f"version {version} of {name!r} was deleted"
        else:
            message = f"unknown version {version} of {name!r}"
        raise NotFoundError(f"{message}; {self._describe(name)}")

    def _describe(self, name: str) -> str:
        """'versions: 1, 2, 3; aliases: champion -> 2', for error messages."""
        versions = ", ".join(map(str, self._published_numbers(name))) or "none"
        try:
            aliases = self.aliases(name)
        except ModelStoreError:
            return f"versions: {versions}; aliases: unreadable"
        alias_text = ", ".join(f"{alias} -> {aliases[alias]}" for alias in sorted(aliases))
        return f"versions: {versions}; aliases: {alias_text or 'none'}"

    def _read_manifest(
        self, name: str, version: int, *, check_checksum: bool = True
    ) -> dict[str, Any]:
        return read_version_manifest(self._backend, name, version, check_checksum=check_checksum)

    def _metric_of(self, name: str, version: int, metric: str) -> float | None:
        """The `metric` of a version; None when it has none or its manifest is unreadable."""
        try:
            return metric_value(self._read_manifest(name, version), metric)
        except ModelStoreError:
            return None

    def _verify_version(
        self, name: str, version: int, version_dir: Path | None = None
    ) -> dict[str, Any]:
        return verify_version_files(self._backend, name, version, version_dir)

    def _verify_model(self, name: str, version: int) -> None:
        verify_model_file(self._backend, self._check_model, name, version)

    def _verify_target(self, name: str, alias: str, version: int) -> None:
        """Refuse to point `alias` at a version whose files differ from its manifest."""
        try:
            self._verify_version(name, version)
        except IntegrityError as error:
            raise IntegrityError(
                f"cannot point alias {alias!r} at version {version} of {name!r}: "
                f"{'; '.join(error.problems)}",
                error.problems,
                error.files,
            ) from None

    def _change_aliases(
        self,
        name: str,
        alias: str,
        change: Callable[[AliasState], Any],
        *,
        existing: bool = False,
    ) -> Any:
        """Apply `change` to the aliases of `name` in one compare-and-set step (under the model's
        lock in a folder; retried on the newest state in object storage); `existing` requires
        `alias` to be set already."""
        validate_alias(alias)
        self._existing_model_dir(name)

        def checked(state: AliasState) -> Any:
            if existing and alias not in state.aliases:
                raise NotFoundError(f"unknown alias {alias!r} of {name!r}; {self._describe(name)}")
            return change(state)

        return self._backend.change_aliases(name, checked)
