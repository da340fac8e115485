"""Loading labeled reviews from Parquet and imdb.npz; every bad input fails with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.text import OOV_ID, START_ID
from tasks.training.data import load_labeled_data, load_parquet_reviews, pad_data
from testkit.synthetic import write_labeled_dataset, write_labeled_parquet


def test_parquet_folder_splits_by_name_and_builds_vocabulary(tmp_path: Path) -> None:
    folder = write_labeled_dataset(tmp_path / "imdb", train_rows=60, test_rows=20)
    data = load_parquet_reviews(folder, num_words=50, maxlen=12)
    assert (len(data.train_ids), len(data.test_ids)) == (60, 20)
    assert data.vocabulary.source == "parquet"
    train_ids = data.train_ids.to_pylist()
    assert all(ids[0] == START_ID for ids in train_ids)
    assert max(max(ids) for ids in train_ids) < 50
    padded = pad_data(data)
    assert padded.x_train.shape == (60, 12) and padded.x_test.shape == (20, 12)
    assert set(np.unique(padded.y_train)) == {0.0, 1.0}
    assert data.fingerprint.startswith("sha256:")


def test_word_index_file_is_used_when_given(tmp_path: Path) -> None:
    folder = write_labeled_dataset(tmp_path / "imdb", train_rows=40, test_rows=10)
    index_path = tmp_path / "imdb_word_index.json"
    index_path.write_text(json.dumps({"great": 1, "awful": 2}))
    data = load_parquet_reviews(folder, word_index_path=index_path, num_words=100)
    assert data.vocabulary.word_index == {"great": 1, "awful": 2}
    assert set(data.train_ids.flatten().to_pylist()) <= {
        START_ID,
        OOV_ID,
        4,
        5,
    }


def test_single_file_is_split_by_test_fraction(tmp_path: Path) -> None:
    path = write_labeled_parquet(tmp_path / "reviews.parquet", rows=100, seed=3)
    data = load_parquet_reviews(path, test_fraction=0.25)
    assert (len(data.train_ids), len(data.test_ids)) == (75, 25)


def test_npz_in_keras_format_loads_like_keras(tmp_path: Path) -> None:
    # imdb.npz holds word ranks (1 = most frequent); load_data adds index_from and the start id.
    ranks = np.empty(4, dtype=object)
    ranks[:] = [[1, 2], [3], [1, 9], [2, 2, 3]]
    np.savez(
        tmp_path / "imdb.npz",
        x_train=ranks,
        y_train=np.array([1, 0, 1, 0]),
        x_test=ranks,
        y_test=np.array([0, 1, 0, 1]),
    )
    index = {"the": 1, "good": 2, "bad": 3, "rare": 9}
    (tmp_path / "imdb_word_index.json").write_text(json.dumps(index))
    data = load_labeled_data("npz", str(tmp_path / "imdb.npz"), num_words=8)
    sequences = sorted(tuple(ids) for ids in data.train_ids.to_pylist())
    # rank 9 + 3 = 12 is not below num_words=8, so it becomes the OOV id.
    assert sequences == sorted([(1, 4, 5), (1, 6), (1, 4, OOV_ID), (1, 5, 5, 6)])
    assert data.vocabulary.word_index == index


@pytest.mark.parametrize(
    "text_type",
    [pa.dictionary(pa.int32(), pa.string()), pa.large_string(), pa.string_view()],
    ids=["dictionary", "large_string", "string_view"],
)
def test_text_columns_scoring_accepts_load_for_training(tmp_path: Path, text_type) -> None:
    # What DuckDB, Polars and Spark write: the one contract is tasks.text.is_text_type.
    folder = write_labeled_dataset(tmp_path / "imdb", train_rows=40, test_rows=10)
    for path in folder.glob("*.parquet"):
        table = pq.read_table(path)
        column = table.schema.get_field_index("text")
        pq.write_table(table.set_column(column, "text", table["text"].cast(text_type)), path)
    assert pq.read_schema(folder / "train.parquet").field("text").type == text_type
    data = load_parquet_reviews(folder, num_words=50, maxlen=12)
    plain_folder = write_labeled_dataset(tmp_path / "plain", train_rows=40, test_rows=10)
    plain = load_parquet_reviews(plain_folder, num_words=50, maxlen=12)
    assert data.train_ids.equals(plain.train_ids) and data.test_ids.equals(plain.test_ids)


def test_a_path_with_wildcard_characters_is_taken_literally(tmp_path: Path) -> None:
    path = write_labeled_parquet(tmp_path / "reviews [2024].parquet", rows=40, seed=3)
    assert len(load_parquet_reviews(path).train_ids) == 32
    folder = write_labeled_dataset(tmp_path / "imdb[1]", train_rows=20, test_rows=10)
    assert len(load_labeled_data("parquet", str(folder)).test_ids) == 10
    # Without such a path, the same characters make a glob.
    data = load_labeled_data("parquet", str(tmp_path / "imdb?1?" / "*.parquet"))
    assert len(data.train_ids) + len(data.test_ids) == 30


def _write(path: Path, columns: dict) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"review": ["a", "b"], "label": [0, 1]}, "missing column 'text'"),
        ({"text": ["a", "b"], "stars": [0, 1]}, "missing column 'label'"),
        ({"text": ["a", "b"], "label": [0, 2]}, "row 1 has label 2"),
        ({"text": ["a", None], "label": [0, 1]}, "row 1 has an empty or null 'text'"),
        ({"text": ["a", "  "], "label": [0, 1]}, "row 1 has an empty or null 'text'"),
        ({"text": ["a", "b"], "label": [1, 1]}, "only label 1 present"),
        ({"text": ["a", "b"], "label": ["pos", "neg"]}, "labels must be 0 or 1"),
        ({"text": [1, 2], "label": [0, 1]}, "column 'text' must hold text, not int64"),
    ],
)
def test_bad_parquet_fails_naming_the_file(tmp_path: Path, columns: dict, message: str) -> None:
    path = _write(tmp_path / "train.parquet", columns)
    good = write_labeled_parquet(tmp_path / "test.parquet", rows=10, seed=1)
    with pytest.raises(ValueError, match=message) as error:
        load_parquet_reviews(path, test_path=good)
    assert "train" in str(error.value)


def test_missing_path_and_not_parquet_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"data_path: .*nowhere does not exist"):
        load_labeled_data("parquet", str(tmp_path / "nowhere"))
    bogus = tmp_path / "bogus.parquet"
    bogus.write_text("not parquet at all")
    with pytest.raises(ValueError, match=r"bogus\.parquet: cannot read as Parquet"):
        load_labeled_data("parquet", str(bogus))
    with pytest.raises(ValueError, match="data_path"):
        load_labeled_data("npz", None)


def test_prefect_visits_a_handful_of_items_of_what_training_passes_between_tasks(
    tmp_path: Path,
) -> None:
    # Prefect walks every item of a task's parameters: token ids as Python lists (12 million
    # ints for IMDB) cost it half a minute a walk, so what load and pad return must stay opaque.
    from prefect.utilities.collections import visit_collection

    labeled = load_parquet_reviews(
        write_labeled_dataset(tmp_path, train_rows=400, test_rows=100), num_words=60, maxlen=24
    )
    for value in (labeled, pad_data(labeled)):
        visited: list[object] = []
        visit_collection(value, visit_fn=visited.append, return_data=False)
        assert len(visited) < 20, f"{type(value).__name__}: {len(visited)} items visited"
