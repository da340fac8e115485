"""The one settings object: paths and names, read from REVIEW_SCORING_* environment variables.

Each path is a local path or an object storage URI (`s3://bucket/prefix`; storage/location.py),
so they are kept as text: a pathlib.Path would fold `s3://` into `s3:/`.
"""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from storage import InvalidParameterError, refuse_credentials_in
from storage.location import PATH_WITHOUT_CREDENTIALS
from storage.objects import SETTINGS_PREFIX, ObjectStorageSettings, checked_settings

__all__ = ["NO_CREDENTIALS_SCHEMA", "Settings", "get_settings"]

# Every path parameter's and setting's JSON schema: the Prefect UI's run form and the server's
# check of a deployment run's parameters refuse credentials in a path before a run exists.
NO_CREDENTIALS_SCHEMA = {"pattern": PATH_WITHOUT_CREDENTIALS}


class Settings(ObjectStorageSettings):
    """Where the model store, reviews and predictions live, which model to use, and how long
    object storage may take (the fields of ObjectStorageSettings, which storage reads itself)."""

    model_config = SettingsConfigDict(env_prefix=SETTINGS_PREFIX, extra="ignore")

    model_store_root: str = Field(
        json_schema_extra=NO_CREDENTIALS_SCHEMA,
        default="models",
        min_length=1,
        description="Root of the model store (path or URI)",
    )
    input_dir: str = Field(
        json_schema_extra=NO_CREDENTIALS_SCHEMA,
        default="data/reviews",
        min_length=1,
        description="Review Parquet to score (path or URI)",
    )
    output_dir: str = Field(
        json_schema_extra=NO_CREDENTIALS_SCHEMA,
        default="data/predictions",
        min_length=1,
        description="Where predictions go (path or URI)",
    )
    model_name: str = Field(default="imdb-sentiment", description="Model name in the store")
    # Scoring measured 18,300 rows/s here (README): a file of a million rows takes about a
    # minute, a night of a few files a few minutes. The bounds leave a wide margin above that
    # and still end a hung night long before the next one.
    file_timeout_seconds: float = Field(
        default=1800, gt=0, description="Scoring: seconds one file may take before it fails"
    )
    dask_worker_wait_seconds: float = Field(
        default=120,
        gt=0,
        description="Scoring on Dask: seconds without any worker before waiting files fail",
    )
    run_timeout_seconds: float = Field(
        default=6 * 3600,
        gt=0,
        description="Scoring: seconds a whole run may take before it ends TimedOut",
    )

    @field_validator("model_store_root", "input_dir", "output_dir")
    @classmethod
    def _no_credentials(cls, value: str, info: ValidationInfo) -> str:
        return refuse_credentials_in(value, info.field_name)

    def resolve(self, **given: str | None) -> Settings:
        """These settings with each given value that is not None in place of the setting of the
        same name: how a flow's optional path and name parameters fall back to the settings.

        The training flow:

            settings = get_settings().resolve(
                model_name=params.model_name, model_store_root=params.model_store_root
            )
            settings.model_name  # the parameter, else REVIEW_SCORING_MODEL_NAME, else the default

        The scoring flow names its parameters by the setting they override:
        `resolve(input_dir=params.input_path, output_dir=params.output_root, model_name=...,
        model_store_root=...)`.

        Raises ValueError for a name that is not a setting, or an empty string: "" never quietly
        means the default.
        """
        unknown = sorted(set(given) - set(type(self).model_fields))
        if unknown:
            raise InvalidParameterError(f"no such setting: {', '.join(unknown)}")
        empty = sorted(
            name for name, value in given.items() if value is not None and not str(value)
        )
        if empty:
            raise InvalidParameterError(
                f"{', '.join(empty)}: empty; leave it unset to use the setting"
            )
        overrides = {name: value for name, value in given.items() if value is not None}
        return checked_settings(
            lambda: type(self).model_validate({**self.model_dump(), **overrides})
        )


def get_settings() -> Settings:
    """Read the settings from the environment now (never at import time)."""
    return checked_settings(Settings)
