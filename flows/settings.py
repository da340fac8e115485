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


def get_settings() -> Settings:
    """Read the settings from the environment now (never at import time)."""
    return Settings()
