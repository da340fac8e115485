"""Load labeled reviews (Keras IMDB download, an imdb.npz, or labeled Parquet) and pad them.

Every path may be local or in object storage (`s3://bucket/imdb/`; storage/location.py): a
file there is copied to this machine's disk to be read and hashed. No Prefect here: the task
wrappers are in tasks/training/tasks.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage import (
    BadDataError,
    InvalidParameterError,
    Location,
    MissingPathError,
    UserError,
    locate,
    sha256_of_file,
)
from tasks.contract import LABEL_COLUMN, TEXT_COLUMN, TextCounts, TextProfile
from tasks.parquet_files import find_parquet_files
from tasks.text import (
    DEFAULT_MAXLEN,
    DEFAULT_NUM_WORDS,
    OOV_ID,
    START_ID,
    Vocabulary,
    build_word_index,
    encode_texts,
    is_text_type,
    pad_sequences,
)

__all__ = [
    "KERAS_IMDB_URL",
    "DataSource",
    "DownloadError",
    "LabeledData",
    "PaddedData",
    "load_imdb_npz",
    "load_keras_imdb",
    "load_labeled_data",
    "load_parquet_reviews",
    "pad_data",
    "resolve_parquet_paths",
]

KERAS_IMDB_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz"
KERAS_IMDB_SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
KERAS_WORD_INDEX_URL = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb_word_index.json"
)
KERAS_WORD_INDEX_MD5 = "bfafd718b763782e994055a2d397834f"
DataSource = Literal["keras", "npz", "parquet"]


class DownloadError(UserError, RuntimeError):
    """The Keras IMDB download failed (offline?); the message says how to train from files."""


@dataclass
class LabeledData:
    """Token ids (unpadded) and 0/1 labels for a train and a test split, plus their vocabulary.

    Ids are Arrow list arrays, not Python lists: Prefect walks every element of a task's
    parameters, and 12 million ints cost it half a minute a walk.
    """

    train_ids: pa.LargeListArray
    train_labels: np.ndarray
    test_ids: pa.LargeListArray
    test_labels: np.ndarray
    vocabulary: Vocabulary
    fingerprint: str
    description: str  # where the reviews came from, in one line for the log


@dataclass
class PaddedData:
    """Fixed-length int32 matrices ready for the model."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    training_text: TextProfile | None = None  # the training split's words, before padding


def _fingerprint_line(name: str, local_file: Path) -> str:
    return f"{name}:{sha256_of_file(local_file)}\n"


def _fingerprint(lines: Sequence[str]) -> str:
    """One fingerprint for several files: each file's name and sha256, hashed together."""
    return "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()


def _existing_file(path: str | Path | Location, parameter: str) -> Location:
    location = locate(path, parameter)
    if not location.is_file():
        raise MissingPathError(f"{parameter}: {location} does not exist")
    return location


def _check_split(labels: np.ndarray, where: str) -> None:
    if len(labels) == 0:
        raise BadDataError(f"{where}: no reviews")
    classes = set(np.unique(labels).tolist())
    if not classes <= {0, 1}:
        raise BadDataError(f"{where}: labels must be 0 or 1, found {sorted(classes)}")
    if len(classes) < 2:
        raise BadDataError(f"{where}: only label {classes.pop()} present; both classes are needed")


def _ranks_to_ids(reviews: np.ndarray, vocabulary: Vocabulary) -> pa.LargeListArray:
    """Word ranks per review to [START, ids...], rare words OOV, as imdb.load_data does."""
    lengths = np.fromiter((len(review) for review in reviews), dtype=np.int64, count=len(reviews))
    ranks = (
        np.concatenate([np.asarray(review, dtype=np.int64) for review in reviews])
        if lengths.sum()
        else np.zeros(0, dtype=np.int64)
    )
    word_ids = ranks + vocabulary.index_from
    word_ids[word_ids >= vocabulary.num_words] = OOV_ID
    offsets = np.zeros(len(reviews) + 1, dtype=np.int64)
    np.cumsum(lengths + 1, out=offsets[1:])
    ids = np.full(offsets[-1], START_ID, dtype=np.int32)
    # Every position but each review's first (START) takes the review's next word.
    word_positions = np.ones(offsets[-1], dtype=bool)
    word_positions[offsets[:-1]] = False
    ids[word_positions] = word_ids
    return pa.LargeListArray.from_arrays(offsets, pa.array(ids, type=pa.int32()))


def load_imdb_npz(
    npz_path: str | Path | Location,
    word_index_path: str | Path | Location,
    num_words: int = DEFAULT_NUM_WORDS,
    maxlen: int = DEFAULT_MAXLEN,
    seed: int = 113,
) -> LabeledData:
    """Read Keras's imdb.npz (word ranks) the way keras.datasets.imdb.load_data does."""
    npz = _existing_file(npz_path, "npz_path")
    word_index = _existing_file(word_index_path, "word_index_path")
    with npz.local_copy() as npz_file:
        try:
            with np.load(npz_file, allow_pickle=True) as archive:
                arrays = {key: archive[key] for key in ("x_train", "y_train", "x_test", "y_test")}
        except (OSError, ValueError, KeyError) as error:
            raise BadDataError(f"{npz}: not a Keras imdb.npz file ({error})") from error
        fingerprint_lines = [_fingerprint_line(npz.name, npz_file)]
    vocabulary, index_line = _read_word_index(word_index, num_words, maxlen)
    # Same shuffle, start character and OOV rule as keras.datasets.imdb.load_data.
    rng = np.random.RandomState(seed)
    splits = []
    for x_key, y_key in (("x_train", "y_train"), ("x_test", "y_test")):
        order = np.arange(len(arrays[x_key]))
        rng.shuffle(order)
        ids = _ranks_to_ids(arrays[x_key][order], vocabulary)
        labels = np.asarray(arrays[y_key])[order].astype(np.int64)
        _check_split(labels, f"{npz} [{y_key}]")
        splits.append((ids, labels))
    (train_ids, train_labels), (test_ids, test_labels) = splits
    return LabeledData(
        train_ids=train_ids,
        train_labels=train_labels,
        test_ids=test_ids,
        test_labels=test_labels,
        vocabulary=vocabulary,
        fingerprint=_fingerprint([*fingerprint_lines, index_line]),
        description=f"Keras IMDB from {npz}",
    )


def _read_word_index(word_index: Location, num_words: int, maxlen: int) -> tuple[Vocabulary, str]:
    """A Keras word index as the vocabulary, and its fingerprint line."""
    with word_index.local_copy() as local_file:
        vocabulary = Vocabulary.from_word_index_file(
            local_file, num_words=num_words, maxlen=maxlen, source="keras"
        )
        return vocabulary, _fingerprint_line(word_index.name, local_file)


def load_keras_imdb(
    num_words: int = DEFAULT_NUM_WORDS, maxlen: int = DEFAULT_MAXLEN, seed: int = 113
) -> LabeledData:
    """Download (or reuse Keras's cache of) imdb.npz and its word index, then load them."""
    import keras

    try:
        npz_path = keras.utils.get_file("imdb.npz", KERAS_IMDB_URL, file_hash=KERAS_IMDB_SHA256)
        word_index_path = keras.utils.get_file(
            "imdb_word_index.json", KERAS_WORD_INDEX_URL, file_hash=KERAS_WORD_INDEX_MD5
        )
    except Exception as error:
        raise DownloadError(
            f"could not download the Keras IMDB dataset ({error}). Offline? Train from local "
            "files instead: source='parquet' with data_path=<folder with train.parquet and "
            "test.parquet> (e.g. make demo DATA=../shared/data/imdb), or source='npz' with "
            "data_path=<imdb.npz> and word_index_path=<imdb_word_index.json>."
        ) from error
    return load_imdb_npz(npz_path, word_index_path, num_words=num_words, maxlen=maxlen, seed=seed)


def resolve_parquet_paths(path: str | Path, parameter: str = "data_path") -> list[Location]:
    """The Parquet files a folder (recursive), glob or file names, sorted, as scoring finds them.

    Raises FileNotFoundError naming `parameter` when nothing is found.
    """
    return find_parquet_files(path, parameter)[1]


def _read_labeled_parquet(
    paths: Sequence[Location], text_column: str, label_column: str
) -> tuple[pa.Array, np.ndarray, list[str]]:
    """Texts and labels of the files, and each file's fingerprint line."""
    texts: list[pa.Array] = []
    labels: list[np.ndarray] = []
    fingerprint_lines: list[str] = []
    for path in paths:
        with path.local_copy() as local_file:
            try:
                table = pq.read_table(local_file, columns=None)
            except (OSError, pa.ArrowException) as error:
                raise BadDataError(f"{path}: cannot read as Parquet ({error})") from error
            fingerprint_lines.append(_fingerprint_line(path.name, local_file))
        for column in (text_column, label_column):
            if column not in table.column_names:
                raise BadDataError(
                    f"{path}: missing column {column!r} (columns: {', '.join(table.column_names)})"
                )
        text_type = table.schema.field(text_column).type
        if not is_text_type(text_type):
            raise BadDataError(f"{path}: column {text_column!r} must hold text, not {text_type}")
        file_texts = table.column(text_column).combine_chunks()
        if file_texts.type != pa.string():
            file_texts = file_texts.cast(pa.string())
        blank = pc.or_(pc.equal(pc.utf8_length(file_texts), 0), pc.utf8_is_space(file_texts))
        unusable = np.flatnonzero(blank.fill_null(True).to_numpy(zero_copy_only=False))
        if unusable.size:
            raise BadDataError(
                f"{path}: row {int(unusable[0])} has an empty or null {text_column!r}"
            )
        label_array = table.column(label_column)
        if label_array.null_count:
            raise BadDataError(
                f"{path}: column {label_column!r} has {label_array.null_count} nulls"
            )
        file_labels = np.asarray(label_array.to_numpy())
        if not np.issubdtype(file_labels.dtype, np.integer) and not np.issubdtype(
            file_labels.dtype, np.bool_
        ):
            raise BadDataError(f"{path}: labels must be 0 or 1 integers, got {file_labels.dtype}")
        bad = np.flatnonzero((file_labels != 0) & (file_labels != 1))
        if bad.size:
            raise BadDataError(
                f"{path}: row {int(bad[0])} has label {file_labels[bad[0]].item()!r}; "
                "labels must be 0 or 1"
            )
        texts.append(file_texts)
        labels.append(file_labels.astype(np.int64))
    return pa.concat_arrays(texts), np.concatenate(labels), fingerprint_lines


def _named(file_name: str, split: str) -> bool:
    """Whether a file in a dataset folder is `<split>*.parquet`."""
    return file_name.startswith(split) and file_name.endswith(".parquet")


def load_parquet_reviews(
    data_path: str | Path,
    test_path: str | Path | None = None,
    word_index_path: str | Path | None = None,
    num_words: int = DEFAULT_NUM_WORDS,
    maxlen: int = DEFAULT_MAXLEN,
    test_fraction: float = 0.2,
    seed: int = 113,
    text_column: str = TEXT_COLUMN,
    label_column: str = LABEL_COLUMN,
) -> LabeledData:
    """Labeled Parquet to ids with the Keras-compatible tokenizer.

    A folder holding train*.parquet and test*.parquet is split by name; otherwise the test split is
    `test_path`, or a seeded `test_fraction` of the data. The vocabulary comes from
    `word_index_path` or is built from the training texts.
    """
    data_location = locate(data_path, "data_path")
    train_paths: list[Location] = []
    test_paths: list[Location] = []
    if test_path is None and data_location.is_dir():
        files = [name for name, is_folder in data_location.child_names() if not is_folder]
        train_paths = [data_location / name for name in files if _named(name, "train")]
        test_paths = [data_location / name for name in files if _named(name, "test")]
        if not (train_paths and test_paths):
            train_paths, test_paths = [], []
    if not train_paths:
        train_paths = resolve_parquet_paths(data_path, "data_path")
    if test_path is not None:
        test_paths = resolve_parquet_paths(test_path, "test_path")
    train_texts, train_labels, fingerprint_lines = _read_labeled_parquet(
        train_paths, text_column, label_column
    )
    if test_paths:
        test_texts, test_labels, test_lines = _read_labeled_parquet(
            test_paths, text_column, label_column
        )
        fingerprint_lines += test_lines
    else:
        if not 0 < test_fraction < 1:
            raise InvalidParameterError(
                f"test_fraction must be between 0 and 1, got {test_fraction}"
            )
        order = np.random.RandomState(seed).permutation(len(train_texts))
        test_count = max(1, round(len(order) * test_fraction))
        test_rows, train_rows = order[:test_count], order[test_count:]
        test_texts, test_labels = train_texts.take(test_rows), train_labels[test_rows]
        train_texts, train_labels = train_texts.take(train_rows), train_labels[train_rows]
    _check_split(train_labels, f"{data_path} [train split]")
    _check_split(test_labels, f"{test_path or data_path} [test split]")

    if word_index_path is not None:
        vocabulary, index_line = _read_word_index(
            _existing_file(word_index_path, "word_index_path"), num_words, maxlen
        )
        fingerprint_lines.append(index_line)
    else:
        vocabulary = Vocabulary(
            word_index=build_word_index(train_texts),
            num_words=num_words,
            maxlen=maxlen,
            source="parquet",
        )
    return LabeledData(
        train_ids=encode_texts(train_texts, vocabulary),
        train_labels=train_labels,
        test_ids=encode_texts(test_texts, vocabulary),
        test_labels=test_labels,
        vocabulary=vocabulary,
        fingerprint=_fingerprint(fingerprint_lines),
        description=f"{len(train_texts)} train / {len(test_texts)} test reviews from Parquet",
    )


def load_labeled_data(
    source: DataSource,
    data_path: str | Path | None = None,
    test_path: str | Path | None = None,
    word_index_path: str | Path | None = None,
    num_words: int = DEFAULT_NUM_WORDS,
    maxlen: int = DEFAULT_MAXLEN,
    seed: int = 113,
) -> LabeledData:
    """Dispatch on the source; every source ends in the same ids and vocabulary form."""
    if source == "keras":
        return load_keras_imdb(num_words=num_words, maxlen=maxlen, seed=seed)
    if source == "npz":
        if data_path is None:
            raise InvalidParameterError(
                "data_path: source 'npz' needs the path of an imdb.npz file"
            )
        npz = locate(data_path, "data_path")
        index = (
            locate(word_index_path, "word_index_path")
            if word_index_path
            else npz.parent / "imdb_word_index.json"
        )
        return load_imdb_npz(npz, index, num_words=num_words, maxlen=maxlen, seed=seed)
    if source == "parquet":
        if data_path is None:
            raise InvalidParameterError("data_path: source 'parquet' needs a folder, glob or file")
        return load_parquet_reviews(
            data_path,
            test_path=test_path,
            word_index_path=word_index_path,
            num_words=num_words,
            maxlen=maxlen,
            seed=seed,
        )
    raise InvalidParameterError(f"source must be 'keras', 'npz' or 'parquet', got {source!r}")


def pad_data(data: LabeledData) -> PaddedData:
    """Pad and cut both splits with the vocabulary's own settings."""
    vocabulary = data.vocabulary

    def pad(ids: pa.LargeListArray) -> np.ndarray:
        return pad_sequences(ids, vocabulary.maxlen, vocabulary.padding, vocabulary.truncating)

    return PaddedData(
        x_train=pad(data.train_ids),
        y_train=data.train_labels.astype(np.float32),
        x_test=pad(data.test_ids),
        y_test=data.test_labels.astype(np.float32),
        training_text=TextCounts.of(data.train_ids).profile(),
    )
