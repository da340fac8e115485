"""tasks.prediction without Prefect or TensorFlow: a fake predictor is passed in as the model."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.evaluation import score_histogram
from tasks.prediction import (
    STATUS_EMPTY_TEXT,
    STATUS_NOT_STRING,
    STATUS_NULL_TEXT,
    STATUS_OK,
    FileFailure,
    FileResult,
    InputFileError,
    ModelRef,
    ScoringJob,
    ScoringModel,
    check_paths_do_not_overlap,
    classify_texts,
    compare_score_distributions,
    discover_inputs,
    encode_for_model,
    plan_jobs,
    prefetched,
    read_output_stamp,
    remove_stale_temporaries,
    render_distribution_markdown,
    score_counts,
    score_file,
    summarize_run,
    summary_table,
)
from tasks.text import Vocabulary, encode_texts, pad_sequences

WORD_INDEX = {"the": 1, "movie": 2, "great": 3, "awful": 4, "was": 5, "plot": 6}
VOCABULARY = Vocabulary(word_index=WORD_INDEX, num_words=8, maxlen=6)


class RecordingPredictor:
    """A stand-in for the Keras model: a score from the ids, and a log of the batch sizes."""

    def __init__(self) -> None:
        self.batch_rows: list[int] = []

    def __call__(self, token_ids: np.ndarray) -> np.ndarray:
        self.batch_rows.append(token_ids.shape[0])
        # "great" (id 6) pushes up, "awful" (id 7 >= num_words, so OOV 2) pushes down.
        great = (token_ids == 6).sum(axis=1)
        unknown = (token_ids == 2).sum(axis=1)
        return (1.0 / (1.0 + np.exp(-(great - unknown).astype(np.float32)))).astype(np.float32)


def fake_model(predictor: RecordingPredictor | None = None) -> ScoringModel:
    return ScoringModel.create(
        name="fake", version=3, vocabulary=VOCABULARY, predict=predictor or RecordingPredictor()
    )


def model_ref(histogram: list[float] | None = None) -> ModelRef:
    return ModelRef(store_root="unused", name="fake", version=3, test_score_histogram=histogram)


def job_for(input_path: Path, output_root: Path, batch_size: int = 4, **columns: str) -> ScoringJob:
    return ScoringJob(
        input_path=str(input_path),
        output_path=str(output_root / "fake" / "v3" / f"{input_path.stem}.parquet"),
        stem=input_path.stem,
        model=model_ref(),
        batch_size=batch_size,
        **columns,
    )


def write_parquet(path: Path, columns: dict[str, pa.Array | list], row_group_size: int = 5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


MALFORMED_TEXTS = [
    "The movie was great",
    None,
    "",
    "   \t\n",
    "awful awful plot " * 5000,  # very long: truncated to maxlen like training does
    "Ünïcödé 🎬 ça va — 映画 great\u200b\u3000",
    "great",
    "The plot...",
    None,
    "\u3000",
    "was great!",
]


def malformed_table() -> dict[str, pa.Array | list]:
    rows = len(MALFORMED_TEXTS)
    return {
        "review_id": [f"r{index % 4}" for index in range(rows)],  # duplicate ids on purpose
        "text": pa.array(MALFORMED_TEXTS, type=pa.string()),
        "label": pa.array([index % 2 for index in range(rows)], type=pa.int8()),
        "rating": pa.array([float(index) for index in range(rows)]),
        "source": [f"site-{index}" for index in range(rows)],
    }


# ------------------------------------------------------------------------------- classifying


def test_classify_texts_gives_each_row_a_status() -> None:
    column = pa.array(["good", None, "", "  ", "\u3000", "!!!", "é"], type=pa.string())
    statuses, ok_mask, texts = classify_texts(column)
    assert statuses.to_pylist() == [
        STATUS_OK,
        STATUS_NULL_TEXT,
        STATUS_EMPTY_TEXT,
        STATUS_EMPTY_TEXT,
        STATUS_EMPTY_TEXT,
        STATUS_OK,
        STATUS_OK,
    ]
    assert ok_mask.tolist() == [True, False, False, False, False, True, True]
    assert texts == ["good", "!!!", "é"]


@pytest.mark.parametrize(
    "column",
    [
        pa.array([1, None, 3], type=pa.int64()),
        pa.array([b"bytes", None, b"x"], type=pa.binary()),
        pa.array([1.5, None, 2.0]),
    ],
)
def test_non_string_text_column_is_rejected_row_by_row(column: pa.Array) -> None:
    statuses, ok_mask, texts = classify_texts(column)
    assert statuses.to_pylist() == [STATUS_NOT_STRING, STATUS_NULL_TEXT, STATUS_NOT_STRING]
    assert not ok_mask.any() and texts == []


def test_dictionary_and_large_string_columns_are_text() -> None:
    for column in (
        pa.array(["a", None, "b"]).dictionary_encode(),
        pa.array(["a", None, "b"], type=pa.large_string()),
    ):
        statuses, _, texts = classify_texts(column)
        assert statuses.to_pylist() == [STATUS_OK, STATUS_NULL_TEXT, STATUS_OK]
        assert texts == ["a", "b"]


def test_encoding_is_the_training_code_path() -> None:
    texts = ["The movie was GREAT!<br />", "awful, the plot the plot the plot the plot"]
    expected = pad_sequences(encode_texts(texts, VOCABULARY), maxlen=6)
    assert np.array_equal(encode_for_model(texts, fake_model()), expected)


def test_score_counts_bin_exactly_as_training() -> None:
    scores = np.array([0.0, 0.05, 0.1, 0.3, 0.5, 0.999, 1.0, 0.7, 0.2], dtype=np.float32)
    counts = score_counts(scores)
    assert counts.sum() == len(scores)
    assert [round(int(count) / len(scores), 6) for count in counts] == score_histogram(scores)


# -------------------------------------------------------------------------- inputs and paths


def test_discover_inputs_from_folder_glob_and_file(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    for name in ("b.parquet", "a.parquet"):
        write_parquet(folder / name, {"text": ["x"]})
    (folder / "notes.txt").write_text("not an input")
    (folder / ".hidden.parquet").write_bytes(b"")
    write_parquet(folder / "nested" / "c.parquet", {"text": ["x"]})
    assert [path.name for path in discover_inputs(str(folder))] == ["a.parquet", "b.parquet"]
    assert [path.name for path in discover_inputs(str(folder / "**" / "*.parquet"))] == [
        "a.parquet",
        "b.parquet",
        "c.parquet",
    ]
    assert discover_inputs(str(folder / "a.parquet")) == [folder / "a.parquet"]


def test_missing_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        discover_inputs(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="glob"):
        discover_inputs(str(tmp_path / "*.parquet"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        discover_inputs(str(tmp_path / "empty"))


def test_two_inputs_with_the_same_stem_are_an_error_naming_both(tmp_path: Path) -> None:
    first = write_parquet(tmp_path / "one" / "reviews.parquet", {"text": ["x"]})
    second = write_parquet(tmp_path / "two" / "reviews.parquet", {"text": ["x"]})
    with pytest.raises(ValueError, match="same stem") as raised:
        discover_inputs(str(tmp_path / "*" / "reviews.parquet"))
    assert str(first) in str(raised.value) and str(second) in str(raised.value)


@pytest.mark.parametrize(
    ("input_relative", "output_relative"),
    [
        ("data", "data/predictions"),  # output inside the input folder
        ("data/reviews", "data"),  # input folder inside the output root
        ("data", "data"),
        ("data/*.parquet", "data/out"),  # a glob's folder counts as the input folder
        ("data/predictions/x.parquet", "data/predictions"),  # an input file in the output root
    ],
)
def test_overlapping_input_and_output_are_refused(
    tmp_path: Path, input_relative: str, output_relative: str
) -> None:
    input_path = tmp_path / input_relative
    if input_path.suffix == ".parquet" and "*" not in input_relative:
        write_parquet(input_path, {"text": ["x"]})
    else:
        input_path.mkdir(parents=True, exist_ok=True)
    inputs = [input_path] if input_path.is_file() else []
    with pytest.raises(ValueError, match="output root"):
        check_paths_do_not_overlap(str(input_path), inputs, tmp_path / output_relative)


def test_side_by_side_folders_do_not_overlap(tmp_path: Path) -> None:
    (tmp_path / "data" / "reviews").mkdir(parents=True)
    check_paths_do_not_overlap(
        str(tmp_path / "data" / "reviews"), [], tmp_path / "data" / "predictions"
    )


def test_plan_jobs_places_outputs_under_model_and_version(tmp_path: Path) -> None:
    write_parquet(tmp_path / "in" / "day1.parquet", {"text": ["x"]})
    jobs = plan_jobs(str(tmp_path / "in"), tmp_path / "out", model_ref(), batch_size=7)
    assert [job.output_path for job in jobs] == [str(tmp_path / "out/fake/v3/day1.parquet")]
    assert jobs[0].batch_size == 7 and jobs[0].model.version == 3


# ------------------------------------------------------------------------------ scoring a file


def test_malformed_file_keeps_every_row_and_carries_columns(tmp_path: Path) -> None:
    source = write_parquet(tmp_path / "in" / "messy.parquet", malformed_table())
    before = source.read_bytes()
    predictor = RecordingPredictor()
    job = job_for(source, tmp_path / "out", batch_size=4)
    result = score_file(job, fake_model(predictor))

    output = pq.read_table(job.output_path)
    rows = len(MALFORMED_TEXTS)
    assert result.outcome == "scored" and result.rows == rows == output.num_rows
    assert output.column_names == [
        "review_id",
        "score",
        "label",
        "status",
        "model_name",
        "model_version",
        "scored_at",
        "input_label",  # renamed: `label` is an output column
        "rating",
        "source",
    ]
    assert output.schema.field("score").type == pa.float32()
    assert output.column("review_id").to_pylist() == malformed_table()["review_id"]
    assert output.column("input_label").to_pylist() == [index % 2 for index in range(rows)]
    assert output.column("source").to_pylist() == malformed_table()["source"]
    statuses = output.column("status").to_pylist()
    assert statuses == [
        "ok",
        "null_text",
        "empty_text",
        "empty_text",
        "ok",
        "ok",
        "ok",
        "ok",
        "null_text",
        "empty_text",
        "ok",
    ]
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
    assert max(predictor.batch_rows) <= 4  # streamed: never more than one batch at a time
    assert source.read_bytes() == before  # inputs are never modified
    assert [path.name for path in Path(job.output_path).parent.iterdir()] == ["messy.parquet"]


def test_scores_match_the_model_on_training_encoded_rows(tmp_path: Path) -> None:
    texts = ["great great movie", "awful plot", "The movie was great!", "was"]
    source = write_parquet(tmp_path / "in" / "parity.parquet", {"text": texts})
    predictor = RecordingPredictor()
    job = job_for(source, tmp_path / "out", batch_size=3)
    score_file(job, fake_model(predictor))
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

    model = ScoringModel.create(name="fake", version=3, vocabulary=VOCABULARY, predict=predict)
    before = pa.default_memory_pool().bytes_allocated()
    score_file(job_for(source, tmp_path / "out", batch_size=batch), model)
    assert len(allocated) == rows // batch
    # The file holds ~12 MiB of text; Arrow may hold a row group or two of it, never the file.
    held = max(allocated) - before
    assert held < 4 * 2**20, f"Arrow held {held / 2**20:.1f} MiB while reading"


def test_serial_and_prefetched_scoring_write_the_same_rows(tmp_path: Path) -> None:
    source = write_parquet(tmp_path / "in" / "same.parquet", malformed_table())
    tables = []
    for depth in (0, 2):
        job = job_for(source, tmp_path / f"out{depth}", batch_size=3)
        score_file(job, fake_model(), prefetch_batches=depth)
        tables.append(pq.read_table(job.output_path).drop_columns(["scored_at"]))
    assert tables[0].equals(tables[1])


def test_without_an_id_column_ids_are_stem_and_row_number(tmp_path: Path) -> None:
    source = write_parquet(tmp_path / "in" / "noids.parquet", {"text": ["a", "b", None, "c"]})
    job = job_for(source, tmp_path / "out", batch_size=3)
    score_file(job, fake_model())
    ids = pq.read_table(job.output_path).column("review_id").to_pylist()
    assert ids == ["noids:0", "noids:1", "noids:2", "noids:3"]


def test_custom_column_names_and_integer_ids(tmp_path: Path) -> None:
    source = write_parquet(
        tmp_path / "in" / "custom.parquet", {"body": ["great", "awful"], "key": [10, 11]}
    )
    job = job_for(source, tmp_path / "out", text_column="body", id_column="key")
    score_file(job, fake_model())
    output = pq.read_table(job.output_path)
    assert output.column("review_id").to_pylist() == ["10", "11"]
    assert "body" not in output.column_names and "key" not in output.column_names


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
    stamp, stats = read_output_stamp(Path(job.output_path))
    assert stamp["input_sha256"] == first.input_sha256 and stamp["model_version"] == 3
    assert stats["rows"] == 3

    write_parquet(source, {"text": ["great", "great", "great", "great"]})
    third = score_file(job, fake_model())
    assert third.outcome == "scored" and third.rows == 4
    assert pq.read_table(job.output_path).num_rows == 4


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
        (
            "norows.parquet",
            lambda path: write_parquet(path, {"text": pa.array([], type=pa.string())}),
            "no rows",
        ),
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


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    output_path = tmp_path / "out" / "day.parquet"
    output_path.parent.mkdir(parents=True)
    host = socket.gethostname()
    dead = output_path.parent / f".day.parquet.{host}.999999999.abc.tmp"
    alive = output_path.parent / f".day.parquet.{host}.{os.getpid()}.def.tmp"
    other_output = output_path.parent / f".other.parquet.{host}.999999999.abc.tmp"
    for path in (dead, alive, other_output):
        path.write_bytes(b"partial")
    assert remove_stale_temporaries(output_path) == [dead]
    assert alive.exists() and other_output.exists()


def test_prefetched_keeps_order_and_passes_errors_on() -> None:
    assert list(prefetched(iter(range(20)), depth=2)) == list(range(20))

    def failing():
        yield 1
        raise InputFileError("broken.parquet: bad page")

    with pytest.raises(InputFileError, match="broken"):
        list(prefetched(failing()))


def test_prefetched_stops_its_producer_when_the_consumer_stops() -> None:
    produced: list[int] = []

    def endless():
        number = 0
        while True:
            produced.append(number)
            yield number
            number += 1

    for number in prefetched(endless(), depth=2):
        if number == 3:
            break
    assert len(produced) <= 3 + 1 + 2 + 1  # consumed, in hand, queued, one blocked


# ------------------------------------------------------------------------ summary and drift


TEST_HISTOGRAM = [0.2, 0.1, 0.05, 0.05, 0.1, 0.1, 0.05, 0.05, 0.1, 0.2]


def test_same_distribution_is_not_drift() -> None:
    counts = [int(share * 10_000) for share in TEST_HISTOGRAM]
    report = compare_score_distributions(counts, 5_000, model_ref(TEST_HISTOGRAM), threshold=0.2)
    assert report.psi is not None and report.psi < 0.01 and not report.drifted
    assert report.run_positive_share == 0.5


def test_shifted_distribution_is_drift() -> None:
    counts = [0, 0, 0, 0, 0, 0, 0, 0, 3_000, 7_000]
    report = compare_score_distributions(counts, 10_000, model_ref(TEST_HISTOGRAM), threshold=0.2)
    assert report.drifted and report.psi > 0.2 and "drift" in report.message


def test_missing_test_histogram_is_said_not_failed() -> None:
    report = compare_score_distributions([1] * 10, 5, model_ref(None), threshold=0.2)
    assert report.psi is None and not report.drifted
    assert "no test_score_histogram" in report.message


def _result(name: str, outcome: str, statuses: dict[str, int], positives: int) -> FileResult:
    return FileResult(
        input_path=f"/in/{name}.parquet",
        output_path=f"/out/{name}.parquet",
        outcome=outcome,
        rows=sum(statuses.values()),
        status_counts=statuses,
        positives=positives,
        score_counts=[0] * 5 + [statuses.get("ok", 0)] + [0] * 4,
        seconds=2.0,
        input_sha256="0" * 64,
    )


def test_summary_adds_up_files_rejects_and_failures() -> None:
    results = [
        _result("a", "scored", {"ok": 8, "empty_text": 2}, positives=6),
        _result("b", "skipped", {"ok": 4, "null_text": 1}, positives=0),
    ]
    failures = [FileFailure(input_path="/in/c.parquet", error="InputFileError: /in/c.parquet: x")]
    summary = summarize_run(model_ref(TEST_HISTOGRAM), "/out", results, failures, 2.0, 0.2)
    assert (summary.files_total, summary.files_scored, summary.files_skipped) == (3, 1, 1)
    assert summary.files_failed == 1 and summary.failures == failures
    assert (summary.rows, summary.rows_scored, summary.rows_ok) == (15, 10, 12)
    assert summary.rejected_by_reason == {"empty_text": 2, "null_text": 1}
    assert summary.positive_share == 0.5 and summary.rows_per_second == 5.0
    assert summary.drift.rows == 8  # drift looks at the rows scored now

    table = summary_table(summary)
    assert [row["outcome"] for row in table[:3]] == ["scored", "skipped", "failed"]
    assert table[-1]["rows"] == 15 and "empty_text: 2" in table[-1]["rejected"]
    markdown = render_distribution_markdown(summary)
    assert "test split" in markdown and "/in/c.parquet" in markdown
    assert "Warning: drift" in markdown  # everything in one bin is far from TEST_HISTOGRAM
    json.dumps(table)  # the table artifact must be JSON
