"""A versioned model store on the local filesystem: append-only versions, aliases, checksums.

Layout (see docs/design.md, "A model version on disk"):

    <root>/<model-name>/
      versions/<N>/          model.keras, vocabulary.json, extra files,
                             manifest.json (sha256 and size of every file), manifest.sha256
      aliases.json           {"champion": 3, ...}, replaced atomically
      .alias-history.json    {"champion": [1, 2, 3], ...}: versions each alias pointed to, in order
      .lock                  flock taken for alias changes and deletes
      .staging/              versions being written: <token>/ plus <token>.lock held by the writer
      .staging.lock          flock taken to create or clean staging folders

A version is written in `.staging/<token>/` and renamed to `versions/<N>`; the rename fails when
another writer took N first (the target is never empty), and the writer retries with the next
number. A deleted version keeps its folder with a `.deleted` tombstone, so N is never reused.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import sys
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from model_store._fs import (
    dump_json,
    exclusive_lock,
    fsync_directory,
    fsync_file,
    sha256_of_file,
    try_lock_nonblocking,
    write_bytes_durably,
    write_json_atomically,
)
from model_store.errors import (
    AliasInUseError,
    IntegrityError,
    InvalidInputError,
    InvalidNameError,
    ModelStoreError,
    NotFoundError,
)

__all__ = [
    "FORMAT_VERSION",
    "LATEST",
    "LoadedModel",
    "ModelStore",
    "ModelVersion",
    "collect_library_versions",
    "validate_alias",
    "validate_model_name",
]

FORMAT_VERSION = 1
LATEST = "latest"

MODEL_FILE = "model.keras"
VOCABULARY_FILE = "vocabulary.json"
MANIFEST_FILE = "manifest.json"
MANIFEST_CHECKSUM_FILE = "manifest.sha256"
DELETED_MARKER = ".deleted"
RESERVED_FILE_NAMES = frozenset(
    {MODEL_FILE, VOCABULARY_FILE, MANIFEST_FILE, MANIFEST_CHECKSUM_FILE}
)

VERSIONS_DIR = "versions"
ALIASES_FILE = "aliases.json"
ALIAS_HISTORY_FILE = ".alias-history.json"
MODEL_LOCK_FILE = ".lock"
STAGING_DIR = ".staging"
STAGING_LOCK_FILE = ".staging.lock"

# One path component, ASCII, no leading dot: safe on every filesystem and in URLs.
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DIGITS_PATTERN = re.compile(r"[0-9]+")
_NAME_RULE = "1-128 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"
# Far more than any real contention; only guards against a loop that never ends.
_MAX_PUBLISH_ATTEMPTS = 10_000


def validate_model_name(name: object) -> str:
    """Return `name` if it is a valid model name, else raise InvalidNameError."""
    return _validate_name(name, "model name")


def validate_alias(alias: object) -> str:
    """Return `alias` if it is a valid alias: a name that cannot be mistaken for a version."""
    alias = _validate_name(alias, "alias")
    if _DIGITS_PATTERN.fullmatch(alias) or alias.lower() == LATEST:
        raise InvalidNameError(f"invalid alias {alias!r}: it would read as a version reference")
    return alias


def _validate_name(value: object, kind: str) -> str:
    if not isinstance(value, str):
        raise InvalidNameError(f"{kind} must be a string, not {type(value).__name__}")
    if not _NAME_PATTERN.fullmatch(value) or ".." in value:
        raise InvalidNameError(f"invalid {kind} {value!r}: use {_NAME_RULE}, no '..'")
    return value


def _validate_file_name(file_name: object) -> str:
    file_name = _validate_name(file_name, "extra file name")
    if file_name in RESERVED_FILE_NAMES:
        raise InvalidNameError(f"extra file name {file_name!r} is reserved by the store")
    return file_name


def collect_library_versions() -> dict[str, str | None]:
    """Versions of Python and the libraries a saved model depends on (None if not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    candidates = {
        "keras": ("keras",),
        "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly"),
        "numpy": ("numpy",),
    }
    for library, distributions in candidates.items():
        # The imported module is what actually ran; the installed metadata is the fallback.
        module = sys.modules.get(library)
        version = getattr(module, "__version__", None) if module is not None else None
        for distribution in distributions:
            if version is not None:
                break
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                version = importlib.metadata.version(distribution)
        versions[library] = version
    return versions


def _keras_backend() -> str | None:
    keras_module = sys.modules.get("keras")
    if keras_module is None:
        return None
    with contextlib.suppress(Exception):
        return str(keras_module.config.backend())
    return None


def _utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _to_plain_json(value: Any, what: str) -> Any:
    """A copy of `value` made of plain JSON types, or InvalidInputError naming `what`."""
    try:
        return json.loads(dump_json(value, indent=None))
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"{what} must be JSON serialisable: {error}") from None


@dataclass(frozen=True)
class ModelVersion:
    """A published version: where it lives and what its manifest says."""

    name: str
    version: int
    path: Path
    manifest: dict[str, Any]
    aliases: tuple[str, ...] = ()

    @property
    def created_at(self) -> str | None:
        return self.manifest.get("created_at")

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.manifest.get("metrics") or {})


@dataclass(frozen=True)
class LoadedModel:
    """A verified version loaded into memory: the Keras model and the vocabulary it needs."""

    model: Any
    vocabulary: dict[str, Any]
    manifest: dict[str, Any]
    name: str
    version: int
    path: Path


@dataclass
class _Staging:
    """A private folder a writer fills; its lock file is flocked for as long as the writer lives."""

    path: Path
    lock_path: Path
    lock_descriptor: int

    def release(self) -> None:
        # Unlink before close: a cleaner that locks the file after this finds nothing to remove.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.lock_path)
        os.close(self.lock_descriptor)


class ModelStore:
    """Versioned Keras models with their vocabulary and metadata, under one root folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        # No filesystem access here: folders are created by the first registration.
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ModelStore({str(self.root)!r})"

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
        """
        validate_model_name(name)
        # Check every argument before touching the disk, so bad input leaves nothing behind.
        if not isinstance(vocabulary, Mapping):
            raise InvalidInputError(
                f"vocabulary must be a mapping, not {type(vocabulary).__name__}"
            )
        vocabulary_text = self._vocabulary_text(vocabulary)
        for value, what in ((params, "params"), (metrics, "metrics")):
            if not isinstance(value, Mapping):
                raise InvalidInputError(f"{what} must be a mapping, not {type(value).__name__}")
        plain_params = _to_plain_json(dict(params), "params")
        plain_metrics = _to_plain_json(dict(metrics), "metrics")
        if not isinstance(data_fingerprint, str):
            raise InvalidInputError("data_fingerprint must be a string")
        if run_id is not None and not isinstance(run_id, str):
            raise InvalidInputError("run_id must be a string or None")
        extras = self._checked_extra_files(extra_files or {})
        if isinstance(model, (str, os.PathLike)):
            _check_keras_archive(Path(model))
        elif not callable(getattr(model, "save", None)):
            raise InvalidInputError(
                f"model must be a Keras model or a .keras file path, not {type(model).__name__}"
            )

        model_dir = self.root / name
        (model_dir / VERSIONS_DIR).mkdir(parents=True, exist_ok=True)
        (model_dir / STAGING_DIR).mkdir(exist_ok=True)
        staging = self._open_staging(model_dir)
        try:
            self._stage_files(staging.path, model, vocabulary_text, extras)
            manifest: dict[str, Any] = {
                "format_version": FORMAT_VERSION,
                "model_name": name,
                "version": None,  # set by _publish, once per attempt
                "created_at": _utc_now_iso(),
                "run_id": run_id,
                "params": plain_params,
                "metrics": plain_metrics,
                "data_fingerprint": data_fingerprint,
                "library_versions": collect_library_versions(),
                "keras_backend": _keras_backend(),
                "files": {
                    path.name: {"sha256": sha256_of_file(path), "bytes": path.stat().st_size}
                    for path in sorted(staging.path.iterdir())
                },
            }
            version = self._publish(model_dir, staging.path, manifest)
        except BaseException:
            shutil.rmtree(staging.path, ignore_errors=True)
            staging.release()
            raise
        staging.release()
        return ModelVersion(name, version, model_dir / VERSIONS_DIR / str(version), manifest)

    @staticmethod
    def _vocabulary_text(vocabulary: Mapping[str, Any]) -> str:
        try:
            return dump_json(dict(vocabulary), indent=None)
        except (TypeError, ValueError) as error:
            raise InvalidInputError(f"vocabulary must be JSON serialisable: {error}") from None

    @staticmethod
    def _checked_extra_files(
        extra_files: Mapping[str, bytes | os.PathLike[str]],
    ) -> dict[str, bytes | Path]:
        checked: dict[str, bytes | Path] = {}
        for file_name, source in extra_files.items():
            _validate_file_name(file_name)
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

    def _open_staging(self, model_dir: Path) -> _Staging:
        staging_root = model_dir / STAGING_DIR
        # Under the staging lock, every folder in .staging/ has its lock file already held by
        # a live writer or not held at all (a dead one): the cleaner cannot race a new writer.
        with exclusive_lock(model_dir / STAGING_LOCK_FILE):
            self._remove_dead_staging(staging_root)
            token = f"{os.getpid()}-{uuid.uuid4().hex}"
            lock_path = staging_root / f"{token}.lock"
            descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                if not try_lock_nonblocking(descriptor):
                    raise ModelStoreError(f"could not lock new staging file {lock_path}")
                staging_path = staging_root / token
                staging_path.mkdir()
            except BaseException:
                os.unlink(lock_path)
                os.close(descriptor)
                raise
        return _Staging(staging_path, lock_path, descriptor)

    @staticmethod
    def _remove_dead_staging(staging_root: Path) -> list[str]:
        """Remove staging folders whose writer died (their lock is free); caller holds the
        staging lock. Returns the tokens removed."""
        tokens = {entry.name.removesuffix(".lock") for entry in os.scandir(staging_root)}
        removed: list[str] = []
        for token in sorted(tokens):
            lock_path = staging_root / f"{token}.lock"
            try:
                descriptor: int | None = os.open(lock_path, os.O_RDWR)
            except FileNotFoundError:
                # Writers create the lock before the folder and unlink it after their rename,
                # so a folder without a lock belongs to nobody.
                descriptor = None
            try:
                if descriptor is not None and not try_lock_nonblocking(descriptor):
                    continue  # its writer is alive
                leftover = staging_root / token
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        leftover.unlink()
                with contextlib.suppress(FileNotFoundError):
                    lock_path.unlink()
                removed.append(token)
            finally:
                if descriptor is not None:
                    os.close(descriptor)
        return removed

    def _stage_files(
        self,
        staging_path: Path,
        model: Any,
        vocabulary_text: str,
        extras: Mapping[str, bytes | Path],
    ) -> None:
        """Write the model, the vocabulary and the extra files into the staging folder."""
        model_path = staging_path / MODEL_FILE
        if isinstance(model, (str, os.PathLike)):
            shutil.copyfile(model, model_path)
        else:
            model.save(str(model_path))
            if not model_path.is_file():
                raise InvalidInputError(f"model.save() did not write {MODEL_FILE}")
        fsync_file(model_path)
        write_bytes_durably(staging_path / VOCABULARY_FILE, vocabulary_text.encode("utf-8"))
        for file_name, source in extras.items():
            target = staging_path / file_name
            if isinstance(source, Path):
                shutil.copyfile(source, target)
                fsync_file(target)
            else:
                write_bytes_durably(target, source)

    def _publish(self, model_dir: Path, staging_path: Path, manifest: dict[str, Any]) -> int:
        """Rename the staging folder to versions/<N>, taking the next free N; return N."""
        versions_dir = model_dir / VERSIONS_DIR
        for _attempt in range(_MAX_PUBLISH_ATTEMPTS):
            version = self._next_version_number(versions_dir)
            manifest["version"] = version
            _write_manifest(staging_path, manifest)
            try:
                # Atomic, and fails if versions/<N> exists: it is never empty (files or a
                # tombstone), so two writers can never both get N.
                os.rename(staging_path, versions_dir / str(version))
            except OSError as error:
                if error.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                    continue  # another writer took N first; look again
                raise
            fsync_directory(versions_dir)
            return version
        raise ModelStoreError(f"no free version number in {versions_dir} after many attempts")

    @staticmethod
    def _next_version_number(versions_dir: Path) -> int:
        # Deleted versions keep a tombstone folder, so they count here and are never reused.
        numbers = [_version_number(entry.name) for entry in os.scandir(versions_dir)]
        return 1 + max((number for number in numbers if number is not None), default=0)

    # ------------------------------------------------------------------ read

    def list_models(self) -> list[str]:
        """Names of the models that have at least one version, sorted."""
        if not self.root.is_dir():
            return []
        names = []
        for entry in os.scandir(self.root):
            is_model_name = _NAME_PATTERN.fullmatch(entry.name) and ".." not in entry.name
            if is_model_name and self._published_numbers_at(Path(entry.path) / VERSIONS_DIR):
                names.append(entry.name)
        return sorted(names)

    def list_versions(self, name: str) -> list[ModelVersion]:
        """The published versions of `name`, sorted by number, with their aliases."""
        self._existing_model_dir(name)
        aliases_by_version: dict[int, list[str]] = {}
        for alias, version in sorted(self.aliases(name).items()):
            aliases_by_version.setdefault(version, []).append(alias)
        versions = []
        for version in self._published_numbers(name):
            try:
                manifest = self._read_manifest(name, version, check_checksum=False)
            except NotFoundError:
                continue  # deleted while we were listing
            versions.append(
                ModelVersion(
                    name,
                    version,
                    self._version_dir(name, version),
                    manifest,
                    tuple(aliases_by_version.get(version, ())),
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
        if _DIGITS_PATTERN.fullmatch(ref):
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

    def verify(self, name: str, ref: int | str = LATEST) -> None:
        """Check every file of a version against its manifest; IntegrityError names the files."""
        self._verify_version(name, self.resolve(name, ref))

    def verify_all(self, name: str) -> dict[int, IntegrityError | None]:
        """Verify every version of `name`: version -> None when intact, else the error."""
        self._existing_model_dir(name)
        results: dict[int, IntegrityError | None] = {}
        for version in self._published_numbers(name):
            try:
                self._verify_version(name, version)
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
        manifest = self._verify_version(name, version)
        version_dir = self._version_dir(name, version)
        vocabulary = json.loads((version_dir / VOCABULARY_FILE).read_text(encoding="utf-8"))
        import keras  # here, not at the top: TensorFlow takes seconds to import

        model = keras.saving.load_model(str(version_dir / MODEL_FILE), safe_mode=True)
        return LoadedModel(
            model=model,
            vocabulary=vocabulary,
            manifest=manifest,
            name=name,
            version=version,
            path=version_dir,
        )

    # ------------------------------------------------------------------ aliases

    def aliases(self, name: str) -> dict[str, int]:
        """The aliases of `name` and the versions they point to, as aliases.json holds them."""
        model_dir = self._existing_model_dir(name)
        path = model_dir / ALIASES_FILE
        try:
            aliases = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            raise IntegrityError(f"{path} is not valid JSON", files=[ALIASES_FILE]) from None
        if not isinstance(aliases, dict) or not all(
            isinstance(version, int) and not isinstance(version, bool)
            for version in aliases.values()
        ):
            raise IntegrityError(
                f"{path} must map alias names to version numbers", files=[ALIASES_FILE]
            )
        return aliases

    def set_alias(self, name: str, alias: str, ref: int | str) -> int:
        """Point `alias` at the version `ref` names and return that version; history records
        each move (setting it to the version it already has changes nothing)."""
        validate_alias(alias)
        model_dir = self._existing_model_dir(name)
        with self._model_lock(model_dir):
            version = self.resolve(name, ref)  # under the lock: delete cannot race this
            aliases = self.aliases(name)
            history = self._read_alias_history(model_dir, aliases)
            if aliases.get(alias) == version:
                return version
            aliases[alias] = version
            history.setdefault(alias, []).append(version)
            self._write_alias_state(model_dir, aliases, history)
        return version

    def remove_alias(self, name: str, alias: str) -> None:
        """Remove `alias`; its history is kept."""
        validate_alias(alias)
        model_dir = self._existing_model_dir(name)
        with self._model_lock(model_dir):
            aliases = self.aliases(name)
            if alias not in aliases:
                raise NotFoundError(f"unknown alias {alias!r} of {name!r}; {self._describe(name)}")
            history = self._read_alias_history(model_dir, aliases)
            del aliases[alias]
            self._write_alias_state(model_dir, aliases, history)

    def rollback(self, name: str, alias: str) -> int:
        """Move `alias` back to the version it pointed to before (skipping deleted ones)."""
        validate_alias(alias)
        model_dir = self._existing_model_dir(name)
        with self._model_lock(model_dir):
            aliases = self.aliases(name)
            if alias not in aliases:
                raise NotFoundError(f"unknown alias {alias!r} of {name!r}; {self._describe(name)}")
            history = self._read_alias_history(model_dir, aliases)
            current = aliases[alias]
            earlier = list(history[alias])
            published = set(self._published_numbers(name))
            while earlier and (earlier[-1] == current or earlier[-1] not in published):
                earlier.pop()
            if not earlier:
                raise NotFoundError(
                    f"alias {alias!r} of {name!r} has no earlier version to roll back to "
                    f"(history: {_join(history[alias])})"
                )
            aliases[alias] = earlier[-1]
            history[alias] = earlier
            self._write_alias_state(model_dir, aliases, history)
            return earlier[-1]

    def alias_history(self, name: str, alias: str) -> list[int]:
        """The versions `alias` pointed to, oldest first; the last one is the current one."""
        validate_alias(alias)
        model_dir = self._existing_model_dir(name)
        history = self._read_alias_history(model_dir, self.aliases(name))
        if alias not in history:
            raise NotFoundError(
                f"alias {alias!r} of {name!r} was never set; {self._describe(name)}"
            )
        return list(history[alias])

    # ------------------------------------------------------------------ delete

    def delete(self, name: str, ref: int | str) -> int:
        """Delete a version (refused while an alias points at it) and return its number.

        A tombstone stays in versions/<N>, so the number is never given out again.
        """
        model_dir = self._existing_model_dir(name)
        with self._model_lock(model_dir):
            version = self.resolve(name, ref)
            pointing = sorted(
                alias for alias, target in self.aliases(name).items() if target == version
            )
            if pointing:
                raise AliasInUseError(
                    f"cannot delete version {version} of {name!r}: aliases point at it: "
                    f"{', '.join(pointing)}; move or remove them first"
                )
            version_dir = self._version_dir(name, version)
            # Tombstone first: from now on readers see the version as deleted, and the folder
            # is never empty, so no writer can rename a new version onto this number.
            tombstone = {"deleted_at": _utc_now_iso(), "model_name": name, "version": version}
            with contextlib.suppress(OSError, ValueError, ModelStoreError):
                tombstone["manifest"] = self._read_manifest(name, version, check_checksum=False)
            descriptor = os.open(
                version_dir / DELETED_MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444
            )
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                stream.write(dump_json(tombstone) + "\n")
                stream.flush()
                os.fsync(stream.fileno())
            for entry in os.scandir(version_dir):
                if entry.name == DELETED_MARKER:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            fsync_directory(version_dir)
        return version

    # ------------------------------------------------------------------ internals

    def _existing_model_dir(self, name: str) -> Path:
        validate_model_name(name)
        model_dir = self.root / name
        if not (model_dir / VERSIONS_DIR).is_dir():
            models = self.list_models()
            known = f"models: {', '.join(models)}" if models else f"no models in {self.root}"
            raise NotFoundError(f"unknown model {name!r}; {known}")
        return model_dir

    def _version_dir(self, name: str, version: int) -> Path:
        return self.root / name / VERSIONS_DIR / str(version)

    def _published_numbers(self, name: str) -> list[int]:
        return self._published_numbers_at(self.root / name / VERSIONS_DIR)

    @staticmethod
    def _published_numbers_at(versions_dir: Path) -> list[int]:
        if not versions_dir.is_dir():
            return []
        numbers = []
        for entry in os.scandir(versions_dir):
            number = _version_number(entry.name)
            if (
                number is not None
                and entry.is_dir(follow_symlinks=False)
                and not os.path.lexists(os.path.join(entry.path, DELETED_MARKER))
            ):
                numbers.append(number)
        return sorted(numbers)

    def _check_version(self, name: str, version: int, via_alias: str | None = None) -> int:
        version_dir = self._version_dir(name, version)
        exists = version >= 1 and version_dir.is_dir()
        deleted = exists and (version_dir / DELETED_MARKER).exists()
        if exists and not deleted:
            return version
        if via_alias:
            state = "which was deleted" if deleted else "which does not exist"
            message = f"alias {via_alias!r} of {name!r} points to version {version}, {state}"
        elif deleted:
            message = f"version {version} of {name!r} was deleted"
        else:
            message = f"unknown version {version} of {name!r}"
        raise NotFoundError(f"{message}; {self._describe(name)}")

    def _describe(self, name: str) -> str:
        """'versions: 1, 2, 3; aliases: champion -> 2', for error messages."""
        versions = _join(self._published_numbers(name)) or "none"
        try:
            aliases = self.aliases(name)
        except ModelStoreError:
            return f"versions: {versions}; aliases: unreadable"
        alias_text = ", ".join(f"{alias} -> {aliases[alias]}" for alias in sorted(aliases))
        return f"versions: {versions}; aliases: {alias_text or 'none'}"

    def _read_manifest(
        self, name: str, version: int, *, check_checksum: bool = True
    ) -> dict[str, Any]:
        version_dir = self._version_dir(name, version)
        label = f"version {version} of {name!r}"
        try:
            manifest_bytes = (version_dir / MANIFEST_FILE).read_bytes()
        except FileNotFoundError:
            if (version_dir / DELETED_MARKER).exists():
                raise NotFoundError(f"{label} was deleted") from None
            raise IntegrityError(
                f"{label}: missing file {MANIFEST_FILE}", files=[MANIFEST_FILE]
            ) from None
        if check_checksum:
            try:
                recorded = (
                    (version_dir / MANIFEST_CHECKSUM_FILE).read_text(encoding="ascii").split()
                )
            except (FileNotFoundError, UnicodeDecodeError):
                recorded = []
            if not recorded:
                raise IntegrityError(
                    f"{label}: missing or unreadable file {MANIFEST_CHECKSUM_FILE}",
                    files=[MANIFEST_CHECKSUM_FILE],
                )
            if _sha256_of_bytes(manifest_bytes) != recorded[0]:
                raise IntegrityError(
                    f"{label}: {MANIFEST_FILE} was changed (sha256 differs from "
                    f"{MANIFEST_CHECKSUM_FILE})",
                    files=[MANIFEST_FILE],
                )
        try:
            manifest = json.loads(manifest_bytes)
        except ValueError:
            raise IntegrityError(
                f"{label}: {MANIFEST_FILE} is not valid JSON", files=[MANIFEST_FILE]
            ) from None
        if (
            not isinstance(manifest, dict)
            or manifest.get("model_name") != name
            or manifest.get("version") != version
            or not isinstance(manifest.get("files"), dict)
        ):
            raise IntegrityError(
                f"{label}: {MANIFEST_FILE} does not describe this version", files=[MANIFEST_FILE]
            )
        return manifest

    def _verify_version(self, name: str, version: int) -> dict[str, Any]:
        """Check a version's files against its manifest; return the manifest."""
        manifest = self._read_manifest(name, version)
        version_dir = self._version_dir(name, version)
        label = f"version {version} of {name!r}"
        problems: list[str] = []
        files: list[str] = []
        expected: dict[str, Any] = manifest["files"]
        for file_name, record in sorted(expected.items()):
            problem = _check_file(version_dir, file_name, record)
            if problem:
                problems.append(problem)
                files.append(file_name)
        allowed = set(expected) | {MANIFEST_FILE, MANIFEST_CHECKSUM_FILE}
        for entry in sorted(os.listdir(version_dir)):
            if entry not in allowed:
                problems.append(f"unexpected file {entry}")
                files.append(entry)
        if problems:
            if (version_dir / DELETED_MARKER).exists():
                raise NotFoundError(f"{label} was deleted")
            raise IntegrityError(
                f"{label} failed verification: {'; '.join(problems)}", problems, files
            )
        return manifest

    @contextlib.contextmanager
    def _model_lock(self, model_dir: Path) -> Iterator[None]:
        with exclusive_lock(model_dir / MODEL_LOCK_FILE):
            # Temporary files of atomic writes in this folder are only made under this lock,
            # so any left now come from a writer that died: remove them.
            for entry in os.scandir(model_dir):
                if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
            yield

    @staticmethod
    def _read_alias_history(model_dir: Path, aliases: Mapping[str, int]) -> dict[str, list[int]]:
        path = model_dir / ALIAS_HISTORY_FILE
        try:
            history = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            history = {}
        except ValueError:
            raise IntegrityError(f"{path} is not valid JSON", files=[ALIAS_HISTORY_FILE]) from None
        if not isinstance(history, dict) or not all(
            isinstance(versions, list) for versions in history.values()
        ):
            raise IntegrityError(f"{path} must map aliases to lists", files=[ALIAS_HISTORY_FILE])
        # aliases.json is the truth and is written first; a writer that died between the two
        # writes (or a hand edit) leaves the history one move behind: catch it up.
        for alias, version in aliases.items():
            versions = history.setdefault(alias, [])
            if not versions or versions[-1] != version:
                versions.append(version)
        return history

    @staticmethod
    def _write_alias_state(
        model_dir: Path, aliases: Mapping[str, int], history: Mapping[str, list[int]]
    ) -> None:
        write_json_atomically(model_dir / ALIASES_FILE, dict(sorted(aliases.items())))
        write_json_atomically(model_dir / ALIAS_HISTORY_FILE, dict(sorted(history.items())))


def _check_file(version_dir: Path, file_name: str, record: Any) -> str | None:
    """What is wrong with one file of a version, or None."""
    if (
        not isinstance(file_name, str)
        or not _NAME_PATTERN.fullmatch(file_name)
        or ".." in file_name
        or not isinstance(record, dict)
    ):
        return f"manifest entry {file_name!r} is malformed"
    path = version_dir / file_name
    if not path.is_file() or path.is_symlink():
        return f"missing file {file_name}"
    size = path.stat().st_size
    if size != record.get("bytes"):
        return f"{file_name} was changed ({size} bytes, manifest says {record.get('bytes')})"
    if sha256_of_file(path) != record.get("sha256"):
        return f"{file_name} was changed (sha256 differs from the manifest)"
    return None


def _write_manifest(staging_path: Path, manifest: Mapping[str, Any]) -> None:
    """Write manifest.json and its checksum, then make the staged files read-only."""
    manifest_bytes = (dump_json(manifest) + "\n").encode("utf-8")
    manifest_path = staging_path / MANIFEST_FILE
    checksum_path = staging_path / MANIFEST_CHECKSUM_FILE
    for path in (manifest_path, checksum_path):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # from an earlier attempt with another number
    write_bytes_durably(manifest_path, manifest_bytes)
    checksum_line = f"{_sha256_of_bytes(manifest_bytes)}  {MANIFEST_FILE}\n"
    write_bytes_durably(checksum_path, checksum_line.encode("ascii"))
    for path in staging_path.iterdir():
        path.chmod(0o444)  # published files are not to be edited
    fsync_directory(staging_path)


def _check_keras_archive(path: Path) -> None:
    if not path.is_file():
        raise InvalidInputError(f"model file {path} does not exist")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise InvalidInputError(f"model file {path} is not a .keras archive")
    with zipfile.ZipFile(path) as archive:
        if "config.json" not in archive.namelist():
            raise InvalidInputError(f"model file {path} is not a .keras archive (no config.json)")


def _sha256_of_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _version_number(entry_name: str) -> int | None:
    """The number a versions/ entry stands for; None for anything else (e.g. '007', 'tmp')."""
    if _DIGITS_PATTERN.fullmatch(entry_name) and str(int(entry_name)) == entry_name:
        return int(entry_name)
    return None


def _join(numbers: list[int]) -> str:
    return ", ".join(str(number) for number in numbers)
