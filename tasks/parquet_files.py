"""Finding the Parquet files a path names: a dataset folder, a glob or a file.

A folder is walked recursively, as `pyarrow.dataset` reads a hive-partitioned dataset: files and
folders starting with `_` or `.` are what writers leave beside the data (`_SUCCESS`,
`_committed_*`, `.crc`, temporaries) and are skipped, and said to be. The root returned is the
folder above any hive partition folders (`day=2026-11-28`) at the end of the path, so a file's
path under it keeps its partitions. Training and scoring read their inputs through this.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

__all__ = ["SkippedInput", "find_parquet_files", "is_glob"]


class SkippedInput(BaseModel):
    """A file or folder under the input path that is not read, and why."""

    path: str
    reason: str


PARQUET_SUFFIX = ".parquet"
# What Spark, Hadoop, pyarrow and friends write beside the data; pyarrow.dataset skips the same.
IGNORED_PREFIXES = ("_", ".")
_HIVE_FOLDER = re.compile(r"[^=]+=[^=]*")


def is_glob(text: str) -> bool:
    """Whether a path parameter is a glob pattern (only asked when no such path exists)."""
    return any(character in text for character in "*?[")


def _glob_base(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard."""
    parts: list[str] = []
    for part in Path(pattern).parts:
        if is_glob(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _hive_root(folder: Path) -> Path:
    """The folder above any trailing `key=value` partition folders."""
    while _HIVE_FOLDER.fullmatch(folder.name) and folder.parent != folder:
        folder = folder.parent
    return folder


def _skip_reason(path: Path) -> str | None:
    name = path.name
    if name.startswith("."):
        return "hidden (a writer's checksum or temporary file)"
    if name.startswith("_"):
        return "writer metadata (names starting with '_' are not data)"
    if path.is_symlink() and not path.exists():
        return "dangling symbolic link"
    if not name.lower().endswith(PARQUET_SUFFIX):
        return "not a .parquet file"
    return None


def _walk(folder: Path) -> Iterable[Path]:
    """Every entry under `folder` that is not inside a skipped folder, in sorted order."""
    for directory, folders, files in os.walk(folder):
        folders.sort()
        yield from (Path(directory) / name for name in sorted(files))
        kept = [name for name in folders if not name.startswith(IGNORED_PREFIXES)]
        yield from (Path(directory) / name for name in folders if name not in kept)
        folders[:] = kept


def find_parquet_files(
    input_path: str | Path, parameter: str = "input_path"
) -> tuple[Path, list[Path], list[SkippedInput]]:
    """The input root, the Parquet files under it (sorted), and what was found and skipped.

    An existing path is taken literally, even with `*`, `?` or `[` in its name; otherwise a
    path with those characters is a glob (`**` recurses).
    """
    input_path = str(input_path)
    if not input_path:
        raise ValueError(f"{parameter} is empty: give a folder, glob or Parquet file")
    path = Path(input_path)
    skipped: list[SkippedInput] = []
    if path.is_file():
        return _hive_root(path.absolute().parent), [path], skipped
    if path.is_dir():
        root = path
        candidates: Iterable[Path] = _walk(path)
    elif is_glob(input_path):
        root = _glob_base(input_path)
        candidates = sorted(Path(match) for match in glob.glob(input_path, recursive=True))
    elif path.is_symlink():
        raise FileNotFoundError(f"{parameter}: {input_path} is a dangling symbolic link")
    else:
        raise FileNotFoundError(f"{parameter}: {input_path} does not exist")
    found: list[Path] = []
    for candidate in candidates:
        if candidate.is_dir() and not candidate.is_symlink():
            if candidate.name.startswith(IGNORED_PREFIXES):
                skipped.append(
                    SkippedInput(
                        path=str(candidate),
                        reason="folder " + (_skip_reason(candidate) or "skipped"),
                    )
                )
            continue
        reason = _skip_reason(candidate)
        if reason is None:
            found.append(candidate)
        else:
            skipped.append(SkippedInput(path=str(candidate), reason=reason))
    if not found:
        what = "match the glob" if not path.exists() else "under the folder"
        raise FileNotFoundError(
            f"{parameter}: no .parquet files {what} {input_path}"
            + (f" ({len(skipped)} other entries skipped)" if skipped else "")
        )
    return _hive_root(root.absolute()), found, skipped
