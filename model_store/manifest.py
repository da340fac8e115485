"""manifest.json: what a version holds, with the sha256 and size of every file.

docs/design.md, "A model version on disk": the manifest is written last, and `manifest.sha256`
beside it records the manifest's own sha256, so an edited manifest is caught too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from model_store.errors import IntegrityError, InvalidInputError
from model_store.keras_model import collect_library_versions, keras_backend, source_of_code
from model_store.names import is_valid_name
from storage.files import dump_json, fsync_directory, sha256_of_file, write_bytes_durably

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_CHECKSUM_FILE",
    "MANIFEST_FILE",
    "ManifestRecord",
    "file_problems",
    "file_records",
    "json_text",
    "read_manifest",
    "utc_now_iso",
    "write_manifest",
]

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
MANIFEST_CHECKSUM_FILE = "manifest.sha256"


def utc_now_iso() -> str:
    """The current time as the manifest records it: ISO 8601, UTC, milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def file_records(folder: Path) -> dict[str, dict[str, Any]]:
    """{file name: {"sha256": ..., "bytes": ...}} for every file in `folder`, sorted by name."""
    return {
        path.name: {"sha256": sha256_of_file(path), "bytes": path.stat().st_size}
        for path in sorted(folder.iterdir())
    }


def write_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    """Write manifest.json and its checksum into a staging folder, then make its files read-only."""
    manifest_bytes = (dump_json(manifest) + "\n").encode("utf-8")
    manifest_path = folder / MANIFEST_FILE
    checksum_path = folder / MANIFEST_CHECKSUM_FILE
    for path in (manifest_path, checksum_path):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # from an earlier attempt with another number
    write_bytes_durably(manifest_path, manifest_bytes)
    checksum_line = f"{hashlib.sha256(manifest_bytes).hexdigest()}  {MANIFEST_FILE}\n"
    write_bytes_durably(checksum_path, checksum_line.encode("ascii"))
    for path in folder.iterdir():
        path.chmod(0o444)  # published files are not to be edited
    fsync_directory(folder)


def read_manifest(
    read_file: Callable[[str], bytes], name: str, version: int, *, check_checksum: bool = True
) -> dict[str, Any]:
    """The manifest of version `version` of `name`, whose files `read_file(file name)` reads
    (FileNotFoundError for a missing one).

    Raises IntegrityError when it is missing, edited (sha256 differs from manifest.sha256, when
    `check_checksum`), not JSON, or describes another version; `problems` holds the reason
    without the version's label.
    """
    label = f"version {version} of {name!r}"

    def corrupt(problem: str, file_name: str = MANIFEST_FILE) -> IntegrityError:
        return IntegrityError(f"{label}: {problem}", [problem], [file_name])

    try:
        manifest_bytes = read_file(MANIFEST_FILE)
    except FileNotFoundError:
        raise corrupt(f"missing file {MANIFEST_FILE}") from None
    if check_checksum:
        try:
            recorded = read_file(MANIFEST_CHECKSUM_FILE).decode("ascii").split()
        except (FileNotFoundError, UnicodeDecodeError):
            recorded = []
        if not recorded:
            raise corrupt(
                f"missing or unreadable file {MANIFEST_CHECKSUM_FILE}", MANIFEST_CHECKSUM_FILE
            )
        if hashlib.sha256(manifest_bytes).hexdigest() != recorded[0]:
            raise corrupt(
                f"{MANIFEST_FILE} was changed (sha256 differs from {MANIFEST_CHECKSUM_FILE})"
            )
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError:
        raise corrupt(f"{MANIFEST_FILE} is not valid JSON") from None
    if (
        not isinstance(manifest, dict)
        or manifest.get("model_name") != name
        or manifest.get("version") != version
        or not isinstance(manifest.get("files"), dict)
    ):
        raise corrupt(f"{MANIFEST_FILE} does not describe this version")
    return manifest


def file_problems(version_dir: Path, manifest: Mapping[str, Any]) -> dict[str, str]:
    """{file name: what is wrong} for the files of a version that differ from its manifest,
    are missing, or are not in it; empty when every file matches."""
    expected: dict[str, Any] = manifest["files"]
    problems: dict[str, str] = {}
    for file_name, record in sorted(expected.items()):
        problem = _file_problem(version_dir, file_name, record)
        if problem:
            problems[file_name] = problem
    allowed = set(expected) | {MANIFEST_FILE, MANIFEST_CHECKSUM_FILE}
    for entry in sorted(version_dir.iterdir()):
        if entry.name not in allowed:
            problems[entry.name] = f"unexpected file {entry.name}"
    return problems


def _file_problem(version_dir: Path, file_name: str, record: Any) -> str | None:
    if not is_valid_name(file_name) or not isinstance(record, dict):
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


def json_text(value: Any, what: str) -> str:
    """Compact JSON of a mapping argument, or InvalidInputError naming `what`."""
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} must be a mapping, not {type(value).__name__}")
    try:
        return dump_json(dict(value), indent=None)
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"{what} must be JSON serialisable: {error}") from None


@dataclass(frozen=True)
class ManifestRecord:
    """What a new version's manifest records beside its files, checked before anything is
    written."""

    name: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    data_fingerprint: str
    run_id: str | None

    @classmethod
    def checked(
        cls,
        name: str,
        params: Mapping[str, Any],
        metrics: Mapping[str, Any],
        data_fingerprint: str,
        run_id: str | None,
    ) -> ManifestRecord:
        """The record, or InvalidInputError naming the argument that cannot be stored."""
        if not isinstance(data_fingerprint, str):
            raise InvalidInputError("data_fingerprint must be a string")
        if run_id is not None and not isinstance(run_id, str):
            raise InvalidInputError("run_id must be a string or None")
        return cls(
            name,
            json.loads(json_text(params, "params")),
            json.loads(json_text(metrics, "metrics")),
            data_fingerprint,
            run_id,
        )

    def manifest_of(self, staged: Path) -> dict[str, Any]:
        """The manifest of the files staged in `staged`; its version is set per attempt."""
        return {
            "format_version": FORMAT_VERSION,
            "model_name": self.name,
            "version": None,
            "created_at": utc_now_iso(),
            "run_id": self.run_id,
            "params": self.params,
            "metrics": self.metrics,
            "data_fingerprint": self.data_fingerprint,
            "library_versions": collect_library_versions(),
            "source": source_of_code(),
            "keras_backend": keras_backend(),
            "files": file_records(staged),
        }
