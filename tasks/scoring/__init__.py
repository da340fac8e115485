"""Score review Parquet with a model version: plan the files, score each, sum up the run.

One module per concern, all free of Prefect except `tasks.scoring.tasks`, which holds the
`@task` wrappers the scoring flow calls:

- `contract`: output columns, row statuses, labels, the metadata stamped on each output
- `records`: the small records passed between tasks
- `model`: resolving a `model_ref` to a version, and loading it once per process
- `inputs`: finding the input files and placing their outputs
- `encoding`: each row's status, and training's tokenizer over the rows to score
- `prefetch`: preparing the next batches while the current one is predicted
- `files`: `score_file`, one input to one output
- `writing`: atomic outputs, stale temporaries, the `_SUCCESS` markers
- `history`: what was scored at an output root, so a night skips unchanged inputs unread
- `table`: the Delta Lake table of every current output under an output root
- `summary`: a run's totals and drift check; `report`: what the UI shows of them
"""

from tasks.scoring.contract import (
    COMPLETION_MARKER,
    OUTPUT_COLUMNS,
    STATUS_EMPTY_TEXT,
    STATUS_INVALID_UTF8,
    STATUS_NOT_STRING,
    STATUS_NULL_TEXT,
    STATUS_OK,
)
from tasks.scoring.encoding import classify_texts, encode_for_model
from tasks.scoring.files import score_file
from tasks.scoring.inputs import output_dir_for, plan_jobs
from tasks.scoring.model import (
    ScoringModel,
    compiled_predictor,
    keras_predictor,
    load_scoring_model,
    resolve_model,
    scoring_steps,
)
from tasks.scoring.records import (
    DEFAULT_BATCH_SIZE,
    DriftReport,
    FileFailure,
    FileResult,
    InputFileError,
    OutputConflictError,
    ResolvedModel,
    ScoringError,
    ScoringJob,
    ScoringPlan,
    ScoringSummary,
    SkippedInput,
)
from tasks.scoring.summary import compare_score_distributions, compare_words, summarize_run

__all__ = [
    "COMPLETION_MARKER",
    "DEFAULT_BATCH_SIZE",
    "OUTPUT_COLUMNS",
    "STATUS_EMPTY_TEXT",
    "STATUS_INVALID_UTF8",
    "STATUS_NOT_STRING",
    "STATUS_NULL_TEXT",
    "STATUS_OK",
    "DriftReport",
    "FileFailure",
    "FileResult",
    "InputFileError",
    "OutputConflictError",
    "ResolvedModel",
    "ScoringError",
    "ScoringJob",
    "ScoringModel",
    "ScoringPlan",
    "ScoringSummary",
    "SkippedInput",
    "classify_texts",
    "compare_score_distributions",
    "compare_words",
    "compiled_predictor",
    "encode_for_model",
    "keras_predictor",
    "load_scoring_model",
    "output_dir_for",
    "plan_jobs",
    "resolve_model",
    "score_file",
    "scoring_steps",
    "summarize_run",
]
