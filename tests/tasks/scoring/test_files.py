"""Scoring one file (tasks.scoring.files) and writing its output (tasks.scoring.writing).

The model is a fake predictor passed in (no TensorFlow): these tests are about rows, files and
statuses. tests/flows/test_scoring_flow.py scores with a real model.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage import locate
from storage.faults import SimulatedCrash, crash_at
from tasks.scoring import (
    COMPLETION_MARKER,
    OUTPUT_COLUMNS,
    FileFailure,
    InputFileError,
    OutputConflictError,
    ScoringModel,
    ScoringPlan,
    score_file,
)
from tasks.scoring.prefetch import prefetched
from tasks.scoring.writing import read_output_stamp, settle_output_folders
from tasks.text import encode_texts, pad_sequences
from testkit.scoring import (
    FAKE_MANIFEST_SHA256,
    MALFORMED_STATUSES,
    MALFORMED_TEXTS,
    VOCABULARY,
    RecordingPredictor,
    fake_model,
    invalid_utf8_strings,
    job_for,
    malformed_table,
    resolved,
    write_parquet,
)


def test_a_malformed_file_keeps_every_row_and_carries_its_columns(tmp_path: Path) -> None:
    source = write_parquet(tmp_path / "in" / "messy.parquet", malformed_table())
    before = source.read_bytes()
    predictor = RecordingPredictor()
    job = job_for(source, tmp_path / "out", batch_size=4)
    result = score_file(job, fake_model(predictor))

    output = pq.read_table(job.output_path)
    rows = len(MALFORMED_TEXTS)
    assert result.outcome == "scored" and result.rows == rows == output.num_rows
    assert output.column_names == [
        *OUTPUT_COLUMNS,
        "input_label",  # renamed: `label` is an output column
        "rating",
        "source",
    ]
    assert output.schema.field("score").type == pa.float32()
    assert output.column("review_id").to_pylist() == malformed_table()["review_id"]
    assert output.column("input_label").to_pylist() == [index % 2 for index in range(rows)]
    assert output.column("source").to_pylist() == malformed_table()["source"]
    statuses = output.column("status").to_pylist()
    assert statuses == MALFORMED_STATUSES
    scores = output.column("score").to_pylist()
    labels = output.column("label").to_pylist()
    for status, score, label in zip(statuses, scores, labels, strict=True):
        if status == "ok":
            assert 0.0 <= score <= 1.0
            assert label == ("positive" if score >= 0.5 else "negative")
        else:
            assert score is None and label is None
    assert set(output.column("model_name").to_pylist()) == {"fake"}
    assert set(output.column("model_version").to_pylist()) == {3}
    assert result.status_counts == {"ok": 6, "null_text": 2, "empty_text": 3}
    # r0..r3 repeat: 11 ids, 4 distinct, so 7 rows repeat an earlier id.
    assert (result.null_ids, result.duplicate_ids) == (0, 7)
    assert max(predictor.batch_rows) <= 4  # streamed: never more than one batch at a time
    assert source.read_bytes() == before  # inputs are never modified
    assert [path.name for path in Path(job.output_path).parent.iterdir()] == ["messy.parquet"]


def test_scores_are_the_models_on_training_encoded_rows(tmp_path: Path) -> None:
    texts = ["great great movie", "awful plot", "The movie was great!", "was"]
    source = write_parquet(tmp_path / "in" / "parity.parquet", {"text": texts})
    job = job_for(source, tmp_path / "out", batch_size=3)
    score_file(job, fake_model())
    expected = RecordingPredictor()(pad_sequences(encode_texts(texts, VOCABULARY), maxlen=6))
    scores = pq.read_table(job.output_path).column("score").to_numpy()
    np.testing.assert_array_equal(scores, expected)


def test_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    rows, row_group, batch = 12_000, 1_000, 200
    texts = [f"review {row} " + "great plot " * 90 for row in range(rows)]  # ~1 kB each
    source = tmp_path / "in" / "big.parquet"
    source.parent.mkdir()
    pq.write_table(pa.table({"text": texts}), source, row_group_size=row_group, compression="none")
    allocated: list[int] = []

    def predict(token_ids: np.ndarray) -> np.ndarray:
        allocated.append(pa.default_memory_pool().bytes_allocated())
        return np.full(token_ids.shape[0], 0.7, dtype=np.float32)

    model = ScoringModel(name="fake", version=3, vocabulary=VOCABULARY, predict_prepared=predict)
    before = pa.default_memory_pool().bytes_allocated()
    score_file(job_for(source, tmp_path / "out", batch_size=batch), model)
    assert len(allocated) == rows // batch
    # The file holds ~12 MiB of text; Arrow holds a row group or two and the batches being
    # prepared ahead (about 4 MiB), never the file, and no more late in the file than early.
    held = [bytes_held - before for bytes_held in allocated]
    assert max(held) < 6 * 2**20, f"Arrow held {max(held) / 2**20:.1f} MiB while reading"
    half = len(held) // 2
    assert max(held[half:]) < max(held[:half]) + 2**20


def test_serial_and_prefetched_scoring_write_the_same_rows(tmp_path: Path) -> None:
    source = write_parquet(tmp_path / "in" / "same.parquet", malformed_table())
    tables = []
    for depth in (0, 2):
        job = job_for(source, tmp_path / f"out{depth}", batch_size=3)
        score_file(job, fake_model(), prefetch_batches=depth)
        tables.append(pq.read_table(job.output_path).drop_columns(["scored_at"]))
    assert tables[0].equals(tables[1])


def test_without_an_id_column_ids_are_the_relative_path_and_row_number(tmp_path: Path) -> None:
    source = write_parquet(tmp_path / "in" / "noids.parquet", {"text": ["a", "b", None, "c"]})
    job = job_for(source, tmp_path / "out", batch_size=3)
    job = job.model_copy(update={"relative_path": "day=1/noids.parquet"})
    result = score_file(job, fake_model())
    ids = pq.read_table(job.output_path).column("review_id").to_pylist()
    assert ids == ["day=1/noids:0", "day=1/noids:1", "day=1/noids:2", "day=1/noids:3"]
    assert (result.null_ids, result.duplicate_ids) == (0, 0)


def test_custom_column_names_and_integer_ids(tmp_path: Path) -> None:
    source = write_parquet(
        tmp_path / "in" / "custom.parquet", {"body": ["great", "awful"], "key": [10, 11]}
    )
    job = job_for(source, tmp_path / "out", text_column="body", id_column="key")
    score_file(job, fake_model())
    output = pq.read_table(job.output_path)
    assert output.column("review_id").to_pylist() == ["10", "11"]
    assert "body" not in output.column_names and "key" not in output.column_names


def test_a_named_id_column_that_is_missing_is_an_error_naming_it(tmp_path: Path) -> None:
    source = write_parquet(tmp_path / "in" / "day.parquet", {"text": ["a"], "review_id": ["1"]})
    job = job_for(source, tmp_path / "out", id_column="reviewid")
    with pytest.raises(InputFileError, match=r"day\.parquet: no id column 'reviewid'"):
        score_file(job, fake_model())


@pytest.mark.parametrize("repeated", ["note", "text"])
def test_repeated_column_names_are_an_error_naming_the_file_and_the_column(
    tmp_path: Path, repeated: str
) -> None:
    source = tmp_path / "in" / "dup.parquet"
    source.parent.mkdir(parents=True)
    columns = [pa.array(["great", "awful"]), pa.array(["a", "b"]), pa.array(["c", "d"])]
    names = ["text", "note", repeated]
    pq.write_table(pa.Table.from_arrays(columns, names=names), source)
    job = job_for(source, tmp_path / "out")
    with pytest.raises(
        InputFileError, match=rf"dup\.parquet: column names repeat \('{repeated}'\)"
    ):
        score_file(job, fake_model())
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.parquet"))


def test_null_and_repeated_ids_are_counted(tmp_path: Path) -> None:
    source = write_parquet(
        tmp_path / "in" / "ids.parquet",
        {"text": ["a", "b", "c", "d", "e"], "review_id": ["1", None, "1", None, "2"]},
        row_group_size=2,
    )
    result = score_file(job_for(source, tmp_path / "out", batch_size=2), fake_model())
    assert (result.rows, result.null_ids, result.duplicate_ids) == (5, 2, 1)


def test_an_empty_file_is_an_empty_night_with_the_schema(tmp_path: Path) -> None:
    source = write_parquet(
        tmp_path / "in" / "empty.parquet",
        {"text": pa.array([], type=pa.string()), "day": pa.array([], type=pa.int32())},
    )
    job = job_for(source, tmp_path / "out")
    result = score_file(job, fake_model())
    output = pq.read_table(job.output_path)
    assert result.outcome == "scored" and result.rows == 0 == output.num_rows
    assert output.column_names == [*OUTPUT_COLUMNS, "day"]
    assert score_file(job, fake_model()).outcome == "skipped"


def test_a_row_of_invalid_utf8_is_marked_and_the_rest_scored(tmp_path: Path) -> None:
    texts = invalid_utf8_strings([b"great movie", b"broken \xff bytes", b"awful plot"])
    source = write_parquet(tmp_path / "in" / "bytes.parquet", {"text": texts})
    job = job_for(source, tmp_path / "out")
    result = score_file(job, fake_model())
    output = pq.read_table(job.output_path)
    assert output.column("status").to_pylist() == ["ok", "invalid_utf8", "ok"]
    assert output.column("label").to_pylist()[1] is None
    assert result.status_counts == {"ok": 2, "invalid_utf8": 1}


def test_invalid_utf8_in_an_id_or_a_carried_column_is_replaced_flagged_and_readable(
    tmp_path: Path,
) -> None:
    import duckdb
    import pandas as pd
    import polars as pl

    source = write_parquet(
        tmp_path / "in" / "carried.parquet",
        {
            "text": ["great movie", "awful plot", "broken \xff text", "fine film"],
            "review_id": invalid_utf8_strings([b"r1", b"r\xff2", b"r3", b"r4"]),
            "note": invalid_utf8_strings([b"a", b"b", b"c", b"bad \xfe note"]),
        },
    )
    job = job_for(source, tmp_path / "out")
    result = score_file(job, fake_model())
    output = pq.read_table(job.output_path)
    output.validate(full=True)  # every string is UTF-8 now
    assert output.column("status").to_pylist() == [
        "ok",
        "invalid_utf8_in_review_id",
        "ok",
        "invalid_utf8_in_note",
    ]
    assert output.column("review_id").to_pylist() == ["r1", "r\ufffd2", "r3", "r4"]
    assert output.column("note").to_pylist()[3] == "bad \ufffd note"
    assert output.column("label").to_pylist()[1] is None and output.column("label")[0].is_valid
    assert result.rows == output.num_rows == 4
    assert result.status_counts == {
        "invalid_utf8_in_note": 1,
        "invalid_utf8_in_review_id": 1,
        "ok": 2,
    }
    # Every reader downstream reads the output as it is.
    assert len(pd.read_parquet(job.output_path)) == 4
    assert pl.read_parquet(job.output_path).height == 4
    counted = duckdb.sql(f"select count(*) from read_parquet('{job.output_path}')").fetchall()
    assert counted == [(4,)]


def test_a_current_output_is_skipped_and_a_changed_input_is_rescored(tmp_path: Path) -> None:
    source = write_parquet(tmp_path / "in" / "day.parquet", {"text": ["great", "awful", None]})
    job = job_for(source, tmp_path / "out")
    first = score_file(job, fake_model())
    predictor = RecordingPredictor()
    second = score_file(job, fake_model(predictor))
    assert second.outcome == "skipped" and predictor.batch_rows == []
    assert (second.rows, second.status_counts, second.score_counts) == (
        first.rows,
        first.status_counts,
        first.score_counts,
    )
    stamp, stats = read_output_stamp(locate(job.output_path))
    assert stamp["input_sha256"] == first.input_sha256 and stamp["model_version"] == 3
    assert stamp["relative_path"] == "day.parquet" and stats["rows"] == 3

    write_parquet(source, {"text": ["great", "great", "great", "great"]})
    third = score_file(job, fake_model())
    assert third.outcome == "scored" and third.rows == 4
    assert pq.read_table(job.output_path).num_rows == 4


def test_an_output_of_another_model_of_the_same_name_and_version_is_rescored(
    tmp_path: Path,
) -> None:
    """Another store's `fake v3` is another model: its outputs are not current for this one."""
    source = write_parquet(tmp_path / "in" / "day.parquet", {"text": ["great", "awful"]})
    job = job_for(source, tmp_path / "out")
    assert score_file(job, fake_model()).outcome == "scored"
    other_store = job.model_copy(update={"model": resolved(manifest_sha256="0" * 64)})
    predictor = RecordingPredictor()
    again = score_file(other_store, fake_model(predictor))
    assert again.outcome == "scored" and predictor.batch_rows == [2]
    output = pq.read_table(job.output_path)
    assert set(output.column("model_manifest_sha256").to_pylist()) == {"0" * 64}
    stamp, _ = read_output_stamp(locate(job.output_path))
    assert (stamp["model_manifest_sha256"], stamp["model_store"]) == ("0" * 64, "unused")


def test_another_inputs_output_is_never_replaced(tmp_path: Path) -> None:
    """Folder A's part-0 scored, then folder B's part-0 into the same root: refused, A kept."""
    first = write_parquet(tmp_path / "A" / "part-0.parquet", {"text": ["great"] * 20})
    second = write_parquet(tmp_path / "B" / "part-0.parquet", {"text": ["awful"] * 3})
    score_file(job_for(first, tmp_path / "out"), fake_model())
    with pytest.raises(OutputConflictError) as raised:
        score_file(job_for(second, tmp_path / "out"), fake_model())
    assert str(first) in str(raised.value) and str(second) in str(raised.value)
    assert pq.read_table(tmp_path / "out" / "fake" / "v3" / "part-0.parquet").num_rows == 20

    foreign = tmp_path / "out2" / "fake" / "v3" / "part-0.parquet"
    write_parquet(foreign, {"something": ["else"]})
    with pytest.raises(OutputConflictError, match="not written by review-scoring"):
        score_file(job_for(first, tmp_path / "out2"), fake_model())


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("text.parquet", lambda path: path.write_text("review,text\n1,hello\n"), "Parquet"),
        ("zero.parquet", lambda path: path.write_bytes(b""), "Parquet"),
        (
            "truncated.parquet",
            lambda path: path.write_bytes(
                _parquet_bytes({"text": ["a long enough review"] * 50})[:-30]
            ),
            "Parquet",
        ),
        ("notext.parquet", lambda path: write_parquet(path, {"body": ["x"]}), "'text'"),
    ],
)
def test_unreadable_files_fail_with_their_name_and_write_nothing(
    tmp_path: Path, name: str, make, message: str
) -> None:
    source = tmp_path / "in" / name
    source.parent.mkdir(parents=True, exist_ok=True)
    make(source)
    job = job_for(source, tmp_path / "out")
    with pytest.raises(InputFileError, match=message) as raised:
        score_file(job, fake_model())
    assert str(source) in str(raised.value)
    output_dir = Path(job.output_path).parent
    assert not output_dir.exists() or list(output_dir.iterdir()) == []


def test_corrupt_pages_fail_the_file_and_leave_no_temporary(tmp_path: Path) -> None:
    data = bytearray(_parquet_bytes({"text": [f"review number {i} " * 20 for i in range(400)]}))
    middle = len(data) // 2
    data[middle : middle + 200] = b"\xff" * 200  # garbage inside a data page, footer intact
    source = tmp_path / "in" / "corrupt.parquet"
    source.parent.mkdir(parents=True)
    source.write_bytes(bytes(data))
    job = job_for(source, tmp_path / "out", batch_size=16)
    with pytest.raises(InputFileError, match=r"corrupt\.parquet"):
        score_file(job, fake_model())
    output_dir = Path(job.output_path).parent
    assert not output_dir.exists() or list(output_dir.iterdir()) == []


def _parquet_bytes(columns: dict[str, list]) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink, compression="none")
    return sink.getvalue().to_pybytes()


def test_a_folder_is_marked_complete_only_when_every_file_in_it_succeeded(tmp_path: Path) -> None:
    sources = {
        day: write_parquet(tmp_path / "in" / f"day={day}" / "data_0.parquet", {"text": ["great"]})
        for day in ("1", "2")
    }
    jobs = {
        day: job_for(source, tmp_path / "out").model_copy(
            update={
                "relative_path": f"day={day}/data_0.parquet",
                "output_path": str(tmp_path / "out" / "fake" / "v3" / f"day={day}/data_0.parquet"),
            }
        )
        for day, source in sources.items()
    }
    done = score_file(jobs["1"], fake_model())
    stale_marker = Path(jobs["2"].output_path).parent / COMPLETION_MARKER
    stale_marker.parent.mkdir(parents=True)
    stale_marker.write_text("{}")  # from an earlier run: no longer true
    failure = FileFailure(
        input_path=jobs["2"].input_path,
        relative_path=jobs["2"].relative_path,
        output_path=jobs["2"].output_path,
        error="InputFileError: x",
    )
    plan = ScoringPlan(
        input_root=str(tmp_path / "in"),
        output_dir=str(tmp_path / "out" / "fake" / "v3"),
        jobs=list(jobs.values()),
        skipped=[],
        whole_folders_under="",
    )
    report = settle_output_folders(plan, [done], [failure], resolved(), run_id="run-1")
    assert report.completed == [str(Path(jobs["1"].output_path).parent)]
    marker = json.loads((Path(jobs["1"].output_path).parent / COMPLETION_MARKER).read_text())
    assert marker["flow_run_id"] == "run-1" and marker["model_version"] == 3
    assert marker["model_manifest_sha256"] == FAKE_MANIFEST_SHA256
    assert marker["rows"] == 1 and marker["files"] == [{"file": "data_0.parquet", "rows": 1}]
    assert not stale_marker.exists()


def test_prefetched_keeps_order_and_passes_errors_on() -> None:
    def slow_for_even(number: int) -> int:
        time.sleep(0.01 * (number % 2 == 0))  # later items finish first in the other thread
        return number * 10

    assert list(prefetched(iter(range(20)), slow_for_even, depth=3)) == [
        number * 10 for number in range(20)
    ]

    def failing():
        yield 1
        raise InputFileError("broken.parquet: bad page")

    with pytest.raises(InputFileError, match="broken"):
        list(prefetched(failing(), lambda number: number))

    def refuse(number: int) -> int:
        raise InputFileError(f"row {number}: cannot be prepared")

    with pytest.raises(InputFileError, match="row 0"):
        list(prefetched(iter(range(5)), refuse))


def test_prefetched_stops_its_producer_when_the_consumer_stops() -> None:
    produced: list[int] = []

    def endless():
        number = 0
        while True:
            produced.append(number)
            yield number
            number += 1

    for number in prefetched(endless(), lambda number: number, depth=2):
        if number == 3:
            break
    assert len(produced) <= 3 + 1 + 2 + 1  # consumed, in hand, queued, one blocked


def test_a_folder_being_rescored_loses_its_completion_marker_before_any_output_changes(
    tmp_path: Path,
) -> None:
    """A rescore that dies just before it publishes leaves the old output, and no `_SUCCESS`
    claiming the folder complete (hostile-test finding 3)."""
    source = write_parquet(tmp_path / "in" / "day.parquet", {"text": ["great", "awful"]})
    job = job_for(source, tmp_path / "out")
    score_file(job, fake_model())
    marker = Path(job.output_path).parent / COMPLETION_MARKER
    marker.write_text("{}")
    before = Path(job.output_path).read_bytes()
    write_parquet(source, {"text": ["great", "great", "great"]})
    with crash_at("score.before-publish"), pytest.raises(SimulatedCrash):
        score_file(job, fake_model())
    assert not marker.exists() and Path(job.output_path).read_bytes() == before
