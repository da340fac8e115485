"""The Keras side of a version: model.keras written, checked and loaded, library versions.

docs/design.md, "A model version on disk": loading uses `keras.saving.load_model(...,
safe_mode=True)`, so the store only publishes archives that load that way. Keras is imported
inside the functions that need it: TensorFlow takes seconds to import.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from model_store.errors import InvalidInputError
from storage.files import fsync_file

__all__ = [
    "MODEL_FILE",
    "check_keras_archive",
    "check_loads_in_safe_mode",
    "check_model_argument",
    "collect_library_versions",
    "keras_backend",
    "load_keras_model",
    "source_of_code",
    "write_model_file",
]

MODEL_FILE = "model.keras"
_CONFIG_MEMBER = "config.json"
# Real configs are kilobytes; a bigger one is refused before it is read into memory.
_MAX_CONFIG_BYTES = 64 * 1024 * 1024
# sha256 of the config.json texts that passed the safe-mode check in this process: the check
# reads nothing else, so the same architecture registered again is not rebuilt again.
_CONFIGS_THAT_LOAD: set[str] = set()


def check_model_argument(model: Any) -> None:
    """Refuse (InvalidInputError) anything but a Keras model or the path of a .keras archive."""
    if isinstance(model, (str, os.PathLike)):
        check_keras_archive(Path(model))
    elif not callable(getattr(model, "save", None)):
        raise InvalidInputError(
            f"model must be a Keras model or a .keras file path, not {type(model).__name__}"
        )


def check_keras_archive(path: Path) -> None:
    """Refuse (InvalidInputError) a file that is not a .keras archive; Keras is not imported."""
    _parse_config(path, _read_config_text(path))


def check_loads_in_safe_mode(path: Path) -> None:
    """Refuse (InvalidInputError) a .keras archive that Keras would not load with safe_mode=True.

    Only the architecture is rebuilt, not the weights: what safe mode refuses (a Python lambda,
    a layer that runs outside code) sits in config.json, and this costs tens of milliseconds.
    """
    config_text = _read_config_text(path)
    digest = hashlib.sha256(config_text).hexdigest()
    if digest in _CONFIGS_THAT_LOAD:
        return
    config = _parse_config(path, config_text)
    import keras

    config["compile_config"] = None  # as load_model(compile=False): no optimizer to build
    try:
        keras.saving.deserialize_keras_object(config, safe_mode=True)
    except Exception as error:  # any failure means load_model would fail too
        reason = " ".join(str(error).split()).split(". ")[0] or type(error).__name__
        raise InvalidInputError(
            f"{MODEL_FILE} does not load with Keras safe_mode=True: {reason}"
        ) from None
    _CONFIGS_THAT_LOAD.add(digest)


def write_model_file(model: Any, target: Path) -> None:
    """Save a Keras model to `target` (or copy a .keras file there) and flush it to disk."""
    if isinstance(model, (str, os.PathLike)):
        shutil.copyfile(model, target)
    else:
        model.save(str(target))
        if not target.is_file():
            raise InvalidInputError(f"model.save() did not write {MODEL_FILE}")
    fsync_file(target)


def load_keras_model(path: Path) -> Any:
    """The Keras model saved at `path`, loaded in safe mode."""
    import keras

    return keras.saving.load_model(str(path), safe_mode=True)


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


# Where the code that trained a version came from: an image has no .git, so its build records the
# commit in these (the Dockerfile's SOURCE_COMMIT, SOURCE_TREE_CLEAN); a checkout asks git.
SOURCE_COMMIT_VARIABLE = "REVIEW_SCORING_SOURCE_COMMIT"
SOURCE_TREE_CLEAN_VARIABLE = "REVIEW_SCORING_SOURCE_TREE_CLEAN"


def source_of_code() -> dict[str, Any]:
    """{"commit": the project's git commit, "tree_clean": whether the checkout had no changes};
    None for what cannot be known (an installed wheel, no git)."""
    commit = os.environ.get(SOURCE_COMMIT_VARIABLE, "")
    if commit and commit != "unknown":
        clean = {"true": True, "false": False}.get(os.environ.get(SOURCE_TREE_CLEAN_VARIABLE, ""))
        return {"commit": commit, "tree_clean": clean}
    checkout = Path(__file__).resolve().parent.parent
    if not (checkout / ".git").exists():
        return {"commit": None, "tree_clean": None}
    try:
        head, status = (
            subprocess.run(
                ["git", "-C", str(checkout), *arguments],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout
            for arguments in (["rev-parse", "HEAD"], ["status", "--porcelain"])
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "tree_clean": None}
    return {"commit": head.strip(), "tree_clean": not status.strip()}


def keras_backend() -> str | None:
    """The backend of the Keras already imported ("tensorflow", "jax"...), None if none is."""
    keras_module = sys.modules.get("keras")
    if keras_module is None:
        return None
    with contextlib.suppress(Exception):
        return str(keras_module.config.backend())
    return None


def _read_config_text(path: Path) -> bytes:
    """The config.json member of a .keras archive, or InvalidInputError."""
    if not path.is_file():
        raise InvalidInputError(f"model file {path} does not exist")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise InvalidInputError(f"model file {path} is not a .keras archive")
    with zipfile.ZipFile(path) as archive:
        if _CONFIG_MEMBER not in archive.namelist():
            raise InvalidInputError(f"model file {path} is not a .keras archive (no config.json)")
        if archive.getinfo(_CONFIG_MEMBER).file_size > _MAX_CONFIG_BYTES:
            raise InvalidInputError(f"model file {path}: config.json is too big")
        return archive.read(_CONFIG_MEMBER)


def _parse_config(path: Path, config_text: bytes) -> dict[str, Any]:
    try:
        config = json.loads(config_text)
    except ValueError:
        config = None
    if not isinstance(config, dict):
        raise InvalidInputError(f"model file {path} is not a .keras archive (bad config.json)")
    return config
