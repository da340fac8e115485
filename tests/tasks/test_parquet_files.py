"""Finding the Parquet files a path names (tasks.parquet_files), on real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import Location, locate
from tasks.parquet_files import find_parquet_files, relative_path
from testkit.scoring import write_parquet


def _names(inputs: list[Location], root: Location) -> list[str]:
    return [relative_path(root, location) for location in inputs]


def test_a_dataset_folder_is_read_recursively_and_writer_leftovers_are_said(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    for name in ("day=2/b.parquet", "day=1/a.parquet", "day=1/UPPER.PARQUET", "top.parquet"):
        write_parquet(lake / name, {"text": ["x"]})
    (lake / "_SUCCESS").write_text("")
    (lake / "day=1" / "_committed_123").write_text("{}")
    (lake / "day=1" / ".a.parquet.crc").write_bytes(b"crc")
    (lake / "notes.txt").write_text("not data")
    (lake / "_temporary" / "0").mkdir(parents=True)
    write_parquet(lake / "_temporary" / "0" / "half.parquet", {"text": ["x"]})
    (lake / "gone.parquet").symlink_to(tmp_path / "nowhere.parquet")

    root, inputs, skipped = find_parquet_files(str(lake))
    assert root.local_path == lake
    assert _names(inputs, root) == [
        "top.parquet",
        "day=1/UPPER.PARQUET",
        "day=1/a.parquet",
        "day=2/b.parquet",
    ]
    reasons = {Path(entry.path).name: entry.reason for entry in skipped}
    assert set(reasons) == {
        "_SUCCESS",
        "_committed_123",
        ".a.parquet.crc",
        "notes.txt",
        "_temporary",
        "gone.parquet",
    }
    assert "dangling" in reasons["gone.parquet"] and "not a .parquet" in reasons["notes.txt"]
    assert "hidden" in reasons[".a.parquet.crc"] and "metadata" in reasons["_SUCCESS"]


def test_a_glob_and_a_file_are_inputs_too(tmp_path: Path) -> None:
    for name in ("b.parquet", "a.parquet", "nested/c.parquet"):
        write_parquet(tmp_path / "in" / name, {"text": ["x"]})
    root, inputs, _ = find_parquet_files(str(tmp_path / "in" / "**" / "*.parquet"))
    assert root.local_path == tmp_path / "in"
    assert _names(inputs, root) == ["a.parquet", "b.parquet", "nested/c.parquet"]
    root, inputs, _ = find_parquet_files(str(tmp_path / "in" / "a.parquet"))
    assert (root.local_path, inputs) == (
        tmp_path / "in",
        [locate(tmp_path / "in" / "a.parquet")],
    )


@pytest.mark.parametrize("name", ["glob[1].parquet", "dir[2024]/x.parquet", "what?.parquet"])
def test_an_existing_path_with_glob_characters_is_taken_literally(
    tmp_path: Path, name: str
) -> None:
    path = write_parquet(tmp_path / "in" / name, {"text": ["x"]})
    target = path if "/" not in name else path.parent
    _, inputs, _ = find_parquet_files(str(target))
    assert [location.local_path for location in inputs] == [path]


def test_hive_partition_folders_in_the_input_path_are_kept_in_the_relative_path(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    write_parquet(lake / "year=2026" / "day=2026-11-28" / "data_0.parquet", {"text": ["x"]})
    for input_path in (
        lake / "year=2026" / "day=2026-11-28",
        lake / "year=2026" / "day=2026-11-28" / "data_0.parquet",
    ):
        root, inputs, _ = find_parquet_files(str(input_path))
        assert root.local_path == lake
        assert _names(inputs, root) == ["year=2026/day=2026-11-28/data_0.parquet"]


def test_missing_and_empty_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_parquet_files(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="glob"):
        find_parquet_files(str(tmp_path / "*.parquet"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "_SUCCESS").write_text("")
    with pytest.raises(FileNotFoundError, match=r"empty.*1 other entries skipped"):
        find_parquet_files(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="input_path is empty"):
        find_parquet_files("")
