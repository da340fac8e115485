"""Finding the Parquet files a path names: a dataset folder, a glob or a file, on the local disk
or in object storage (`s3://bucket/lake/`; storage/location.py).

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

from storage import InvalidParameterError, Location, MissingPathError, is_glob, locate
from storage.objects import ObjectLocation

__all__ = ["SkippedInput", "find_parquet_files", "is_glob", "relative_path"]


class SkippedInput(BaseModel):
    """A file or folder under the input path that is not read, and why."""

    path: str
    reason: str


PARQUET_SUFFIX = ".parquet"
# What Spark, Hadoop, pyarrow and friends write beside the data; pyarrow.dataset skips the same.
IGNORED_PREFIXES = ("_", ".")
_HIVE_FOLDER = re.compile(r"[^=]+=[^=]*")


def _glob_base(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard."""
    parts: list[str] = []
    for part in Path(pattern).parts:
        if is_glob(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _hive_root(folder: Location) -> Location:
    """The folder above any trailing `key=value` partition folders."""
    while _HIVE_FOLDER.fullmatch(folder.name) and folder.parent != folder:
        folder = folder.parent
    return folder


def _name_skip_reason(name: str) -> str | None:
    if name.startswith("."):
        return "hidden (a writer's checksum or temporary file)"
    if name.startswith("_"):
        return "writer metadata (names starting with '_' are not data)"
    if not name.lower().endswith(PARQUET_SUFFIX):
        return "not a .parquet file"
    return None


def _skip_reason(path: Path) -> str | None:
    if path.is_symlink() and not path.exists() and not path.name.startswith(IGNORED_PREFIXES):
        return "dangling symbolic link"
    return _name_skip_reason(path.name)


def relative_path(root: Location, location: Location) -> str:
    """`location`'s path under `root`, '/'-separated."""
    if root.is_local:
        return location.local_path.relative_to(root.local_path).as_posix()
    return location.uri.removeprefix(root.uri.rstrip("/") + "/")


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
) -> tuple[Location, list[Location], list[SkippedInput]]:
    """The input root, the Parquet files under it (sorted), and what was found and skipped.

    An existing path is taken literally, even with `*`, `?` or `[` in its name; otherwise a
    path with those characters is a glob (`**` recurses).
    """
    input_path = str(input_path)
    if not input_path:
        raise InvalidParameterError(f"{parameter} is empty: give a folder, glob or Parquet file")
    location = locate(input_path, parameter)
    if isinstance(location, ObjectLocation):
        root, found, skipped = _find_in_object_storage(location, input_path, parameter)
    else:
        local_root, paths, skipped = _find_on_disk(input_path, parameter)
        root, found = locate(local_root), [locate(path) for path in paths]
    if not found:
        what = "match the glob" if not location.exists() else "under the folder"
        raise MissingPathError(
            f"{parameter}: no .parquet files {what} {input_path}"
            + (f" ({len(skipped)} other entries skipped)" if skipped else "")
        )
    return _hive_root(root), found, skipped


def _find_on_disk(input_path: str, parameter: str) -> tuple[Path, list[Path], list[SkippedInput]]:
    path = Path(input_path)
    skipped: list[SkippedInput] = []
    if path.is_file():
        return path.absolute().parent, [path.absolute()], skipped
    if path.is_dir():
        root = path
        candidates: Iterable[Path] = _walk(path)
    elif is_glob(input_path):
        root = _glob_base(input_path)
        candidates = sorted(Path(match) for match in glob.glob(input_path, recursive=True))
    elif path.is_symlink():
        raise MissingPathError(f"{parameter}: {input_path} is a dangling symbolic link")
    else:
        raise MissingPathError(f"{parameter}: {input_path} does not exist")
    found: list[Path] = []
    for candidate in candidates:
        if candidate.is_dir() and not candidate.is_symlink():
            if candidate.name.startswith(IGNORED_PREFIXES):
                skipped.append(
                    SkippedInput(
                        path=str(candidate.absolute()),
                        reason="folder " + (_skip_reason(candidate) or "skipped"),
                    )
                )
            continue
        reason = _skip_reason(candidate)
        if reason is None:
            found.append(candidate.absolute())
        else:
            skipped.append(SkippedInput(path=str(candidate.absolute()), reason=reason))
    return root.absolute(), found, skipped


def _find_in_object_storage(
    location: ObjectLocation, input_path: str, parameter: str
) -> tuple[Location, list[Location], list[SkippedInput]]:
    """The same rules over object keys: a key below a skipped "folder" is skipped with it."""
    if location.is_file():
        return location.parent, [location], []
    if location.is_dir():
        root: ObjectLocation = location
        listed = location.objects_below()
    elif is_glob(input_path):
        root = location.glob_base()
        listed = location.glob_files()
    else:
        location.check_can_hold(parameter)  # a missing bucket is named as such
        raise MissingPathError(f"{parameter}: {input_path} does not exist")
    # Kept as listed: each knows its size and ETag, so planning needs no request per file.
    by_relative = {relative_path(root, found): found for found in listed}
    relatives = list(by_relative)
    found: list[Location] = []
    skipped: list[SkippedInput] = []
    skipped_folders: set[str] = set()
    for relative in relatives:
        *folders, name = relative.split("/")
        hidden = next(
            (index for index, folder in enumerate(folders) if folder.startswith(IGNORED_PREFIXES)),
            None,
        )
        if hidden is not None:
            folder = "/".join(folders[: hidden + 1])
            if folder not in skipped_folders:
                skipped_folders.add(folder)
                reason = _name_skip_reason(folders[hidden]) or "skipped"
                skipped.append(
                    SkippedInput(path=root.joinpath(folder).uri, reason=f"folder {reason}")
                )
            continue
        reason = _name_skip_reason(name)
        if reason is None:
            found.append(by_relative[relative])
        else:
            skipped.append(SkippedInput(path=root.joinpath(relative).uri, reason=reason))
    return root, found, skipped
