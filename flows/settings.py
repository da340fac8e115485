"""The one settings object: paths and names, read from REVIEW_SCORING_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """Where the model store, reviews and predictions live, and which model to use."""

    model_config = SettingsConfigDict(env_prefix="REVIEW_SCORING_", extra="ignore")

    model_store_root: Path = Field(default=Path("models"), description="Root of the model store")
    input_dir: Path = Field(default=Path("data/reviews"), description="Review Parquet to score")
    output_dir: Path = Field(default=Path("data/predictions"), description="Where predictions go")
    model_name: str = Field(default="imdb-sentiment", description="Model name in the store")

    def resolve(self, **given: str | Path | None) -> Settings:
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
            raise ValueError(f"no such setting: {', '.join(unknown)}")
        empty = sorted(
            name for name, value in given.items() if value is not None and not str(value)
        )
        if empty:
            raise ValueError(f"{', '.join(empty)}: empty; leave it unset to use the setting")
        overrides = {name: value for name, value in given.items() if value is not None}
        return type(self).model_validate({**self.model_dump(), **overrides})


def get_settings() -> Settings:
    """Read the settings from the environment now (never at import time)."""
    return Settings()
