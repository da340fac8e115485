"""Placing the outputs of a run's inputs (tasks.scoring.inputs), on real files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from storage import locate
from tasks.scoring import plan_jobs
from tasks.scoring.inputs import check_paths_do_not_overlap, partition_input_path
from testkit.scoring import resolved, write_parquet


@pytest.mark.parametrize(
    ("input_relative", "output_relative"),
    [
        ("data", "data/predictions"),  # output inside the input folder
        ("data/reviews", "data"),  # input folder inside the output root
        ("data", "data"),
        ("data/*.parquet", "data/out"),  # a glob's folder counts as the input folder
    ],
)
def test_overlapping_input_and_output_are_refused(
    tmp_path: Path, input_relative: str, output_relative: str
) -> None:
    write_parquet(tmp_path / "data" / "reviews" / "x.parquet", {"text": ["x"]})
    write_parquet(tmp_path / "data" / "x.parquet", {"text": ["x"]})
    with pytest.raises(ValueError, match="overlap"):
        plan_jobs(str(tmp_path / input_relative), tmp_path / output_relative, resolved())


def test_an_output_root_that_is_a_file_is_refused_at_once(tmp_path: Path) -> None:
    write_parquet(tmp_path / "in" / "x.parquet", {"text": ["x"]})
    (tmp_path / "out").write_text("a file")
    with pytest.raises(NotADirectoryError, match="output_root"):
        plan_jobs(str(tmp_path / "in"), tmp_path / "out", resolved())


def test_side_by_side_folders_do_not_overlap(tmp_path: Path) -> None:
    (tmp_path / "data" / "reviews").mkdir(parents=True)
    check_paths_do_not_overlap(
        locate(tmp_path / "data" / "reviews"), [], locate(tmp_path / "data" / "out")
    )


def test_outputs_mirror_the_inputs_relative_paths_under_model_and_version(
    tmp_path: Path,
) -> None:
    for day in ("2026-11-27", "2026-11-28"):
        write_parquet(tmp_path / "lake" / f"day={day}" / "data_0.parquet", {"text": ["x"]})
    plan = plan_jobs(str(tmp_path / "lake"), tmp_path / "out", resolved(), batch_size=7)
    assert plan.output_dir == str(tmp_path / "out" / "fake" / "v3")
    assert [job.relative_path for job in plan.jobs] == [
        "day=2026-11-27/data_0.parquet",
        "day=2026-11-28/data_0.parquet",
    ]
    assert [job.output_path for job in plan.jobs] == [
        str(tmp_path / "out/fake/v3/day=2026-11-27/data_0.parquet"),
        str(tmp_path / "out/fake/v3/day=2026-11-28/data_0.parquet"),
    ]
    assert plan.jobs[0].batch_size == 7 and plan.jobs[0].model.version == 3


def test_the_partition_of_the_scheduled_date(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for day in ("2026-11-26", "2026-11-27"):
        write_parquet(lake / f"day={day}" / "data_0.parquet", {"text": ["x"]})
    path = partition_input_path(str(lake), "day={scheduled_date}", date(2026, 11, 27))
    assert path == str(lake / "day=2026-11-27")
    with pytest.raises(FileNotFoundError, match=r"day=2026-11-28 not found.*day=2026-11-27"):
        partition_input_path(str(lake), "day={scheduled_date}", date(2026, 11, 28))
    with pytest.raises(ValueError, match="template"):
        partition_input_path(str(lake), "day={tomorrow}", date(2026, 11, 28))


@pytest.mark.parametrize(
    "partition", ["/etc", "../day=1", "day=1/../../x", "\\\\share\\x", "s3://other/day=1", ".."]
)
def test_a_partition_that_would_leave_the_input_path_is_refused(
    tmp_path: Path, partition: str
) -> None:
    from datetime import date

    from flows.scoring import ScoreParams
    from storage import InvalidParameterError
    from tasks.scoring.inputs import partition_input_path

    (tmp_path / "in" / "day=1").mkdir(parents=True)
    with pytest.raises(InvalidParameterError, match=r"partition: .* must be a folder below"):
        partition_input_path(str(tmp_path / "in"), partition, date(2026, 12, 1))
    with pytest.raises(ValueError, match="must be a folder below input_path"):
        ScoreParams(partition=partition)
    assert ScoreParams(partition="day={scheduled_date}").partition == "day={scheduled_date}"
    assert ScoreParams(partition="year=2026/day={scheduled_date}").partition
