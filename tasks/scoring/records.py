"""The small records that travel between the scoring tasks (paths and counts, never rows)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, Field

from storage import UserError
from tasks.contract import TEXT_COLUMN, TextCounts, TextProfile
from tasks.parquet_files import SkippedInput

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DriftReport",
    "DriftVerdict",
    "EarlierVersions",
    "FileFailure",
    "FileResult",
    "FolderReport",
    "InputFileError",
    "OutputConflictError",
    "ResolvedModel",
    "ScoringError",
    "ScoringJob",
    "ScoringPlan",
    "ScoringSummary",
    "SkippedInput",
    "TableCommit",
    "WordsReport",
    "WordsVerdict",
    "total_status_counts",
]


def total_status_counts(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Rows by status summed over files (or batches), sorted by status."""
    total: Counter[str] = Counter()
    for each in counts:
        total.update(each)
    return dict(sorted(total.items()))


# Rows read, tokenized and predicted at a time: one compiled predict block (tasks.scoring.model),
# the fastest block measured on 2 cores.
DEFAULT_BATCH_SIZE = 4096


class ScoringError(UserError, ValueError):
    """A reason a run or a file cannot be scored that the user can fix; its message says what
    and where."""


class InputFileError(ScoringError):
    """An input file that cannot be scored: not Parquet, corrupt, or missing a column."""


class OutputConflictError(ScoringError):
    """The output path holds another input's predictions; replacing them would lose them."""


class ResolvedModel(BaseModel):
    """One model version that a `model_ref` resolved to, and its test split's score shares."""

    store_root: str
    name: str
    version: int
    manifest_sha256: str | None = Field(
        default=None,
        description="What the version is (ModelStore.manifest_sha256), whatever its store, name "
        "and number",
    )
    test_score_histogram: list[float] | None = None
    test_positive_rate: float | None = None
    training_text: TextProfile | None = Field(
        default=None, description="The words of the version's training split"
    )


class ScoringJob(BaseModel):
    """One input file to score, and where its output goes."""

    input_path: str = Field(description="Absolute path of the input file")
    relative_path: str = Field(description="Its path under the input root, '/'-separated")
    output_path: str = Field(description="Absolute path of its output file")
    model: ResolvedModel
    text_column: str = TEXT_COLUMN
    id_column: str | None = Field(
        default=None,
        description="None: `review_id` when the file has it, else <relative path>:<row>",
    )
    batch_size: int = DEFAULT_BATCH_SIZE
    input_facts: str | None = Field(
        default=None, description="What the input's listing said of it (size, mtime or ETag)"
    )


class FileResult(BaseModel):
    """What scoring one file did: scored it now, or found a current output."""

    input_path: str
    relative_path: str
    output_path: str
    outcome: Literal["scored", "skipped"]
    rows: int
    status_counts: dict[str, int]
    positives: int
    score_counts: list[int]
    null_ids: int = 0
    duplicate_ids: int = 0
    seconds: float
    input_sha256: str
    text_counts: TextCounts = Field(default_factory=TextCounts)


class EarlierVersions(BaseModel):
    """The inputs labeled by earlier versions of the model, as they are now: kept after a
    promotion unless a rescore was asked for, and what rescoring them costs."""

    files: int = 0
    rows: int = 0
    versions: list[int] = Field(default_factory=list)
    rows_per_second: float | None = Field(
        default=None, description="The rate the last run that scored rows measured"
    )
    estimated_seconds: float | None = Field(
        default=None, description="How long rescoring them would take at that rate"
    )
    rescored: bool = Field(default=False, description="Whether this run rescores them")

    @property
    def words(self) -> str:
        """'120 files (24,000 rows) labeled by v1, v2: about 50 s at 480 rows/s to rescore'."""
        versions = ", ".join(f"v{version}" for version in self.versions)
        cost = (
            f"about {self.estimated_seconds:,.0f} s at {self.rows_per_second:,.0f} rows/s "
            "measured on this machine"
            if self.estimated_seconds is not None and self.rows_per_second
            else "no measured rate yet"
        )
        return f"{self.files} files ({self.rows:,} rows) labeled by {versions}: {cost}"


class ScoringPlan(BaseModel):
    """The jobs of a run, and what was found beside them and left alone."""

    input_root: str
    output_dir: str
    jobs: list[ScoringJob]
    skipped: list[SkippedInput]
    unchanged: list[FileResult] = Field(
        default_factory=list,
        description="Inputs the history says are scored by this model as they are now: counted, "
        "not read, no task",
    )
    earlier_versions: EarlierVersions = Field(default_factory=EarlierVersions)
    whole_folders_under: str | None = Field(
        default=None,
        description="The folder, relative to the input root, whose every file the run plans "
        "('' for the whole dataset, a partition's path for one partition); None for a file or a "
        "glob, whose folders may hold other inputs",
    )


class FolderReport(BaseModel):
    """What a run did to its output folders, each the unit of its input folder."""

    completed: list[str] = Field(
        default_factory=list, description="Output folders given a completion marker"
    )
    replaced: list[str] = Field(
        default_factory=list,
        description="Outputs removed: their inputs left a folder that is still there (re-landed)",
    )
    vanished: list[str] = Field(
        default_factory=list,
        description="Outputs kept although their input folder is gone (predictions outlive raw "
        "data; retire_vanished_outputs removes them)",
    )
    retired: list[str] = Field(
        default_factory=list, description="Outputs of a gone input folder, removed on request"
    )


class TableCommit(BaseModel):
    """What a run did to the predictions table."""

    table: str = Field(description="The table's location")
    version: int | None = Field(
        default=None, description="The table's version after the run (None: no table yet)"
    )
    committed: bool = Field(default=False, description="Whether this run made a commit")
    files_added: int = Field(default=0, description="Inputs whose rows the commit (re)placed")
    rows_added: int = 0
    files_removed: int = Field(default=0, description="Inputs whose rows the commit removed")
    refusals: int = Field(
        default=0,
        description="Times the commit was refused (another run's touched the same inputs) and "
        "worked out again",
    )
    error: str | None = Field(default=None, description="Why the commit did not land")


class FileFailure(BaseModel):
    """An input file whose task failed, and why."""

    input_path: str
    relative_path: str
    output_path: str
    error: str


DriftVerdict = Literal[
    "drift", "no drift", "too few rows to judge", "nothing scored", "no reference"
]


class DriftReport(BaseModel):
    """This run's score distribution next to the one on the model's held-out test split."""

    verdict: DriftVerdict = "no reference"
    rows: int
    run_histogram: list[float]
    test_histogram: list[float] | None
    run_positive_share: float | None
    test_positive_rate: float | None
    psi: float | None
    threshold: float
    drifted: bool
    message: str


WordsVerdict = Literal["changed", "as in training", "too few reviews to judge", "no reference"]


class WordsReport(BaseModel):
    """This run's reviews as the version's vocabulary sees them, next to its training split's:
    a change of language or source shows here before the scores move."""

    verdict: WordsVerdict
    reviews: int
    oov_share: float | None = Field(description="Share of words outside the vocabulary")
    training_oov_share: float | None
    length_histogram: list[float]
    training_length_histogram: list[float] | None
    length_psi: float | None = Field(description="PSI of review lengths against training")
    message: str


class ScoringSummary(BaseModel):
    """The run's result: counts, throughput, failures and the drift check."""

    model_name: str
    model_version: int
    model_manifest_sha256: str | None = None
    model_store: str | None = None
    flow_run_id: str | None = None
    flow_run_url: str | None = Field(default=None, description="The run's page in the UI")
    input_root: str
    output_dir: str
    files_total: int
    files_scored: int
    files_skipped: int
    files_failed: int
    rows: int = Field(description="Rows in the outputs of this run's inputs (scored or skipped)")
    rows_scored: int = Field(description="Rows scored by this run")
    rows_ok: int
    rejected_by_reason: dict[str, int]
    null_ids: int = Field(description="Rows whose review id is null")
    duplicate_ids: int = Field(
        description="Rows whose review id repeats an earlier one in its file"
    )
    positive_share: float | None
    rows_per_second: float
    seconds: float
    drift: DriftReport
    words: WordsReport | None = None
    failures: list[FileFailure]
    files: list[FileResult]
    skipped_inputs: list[SkippedInput] = Field(default_factory=list)
    completed_folders: list[str] = Field(
        default_factory=list, description="Output folders given a completion marker by this run"
    )
    outputs_replaced: list[str] = Field(
        default_factory=list, description="Outputs removed: their inputs left a re-landed folder"
    )
    outputs_of_vanished_inputs: list[str] = Field(
        default_factory=list, description="Outputs kept although their input folder is gone"
    )
    outputs_retired: list[str] = Field(
        default_factory=list, description="Outputs of gone input folders removed on request"
    )
    earlier_versions: EarlierVersions = Field(
        default_factory=EarlierVersions,
        description="Inputs labeled by earlier versions: kept, or rescored when asked",
    )
    table: TableCommit | None = Field(
        default=None, description="What the run did to the predictions table, if it writes one"
    )
