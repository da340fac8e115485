"""Fixtures of the flow tests: the tiny model's store, here and on the test S3 server."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.store import copy_champion
from testkit.synthetic import TINY_MODEL_NAME


@pytest.fixture
def s3_store(s3_bucket: str, tiny_model_store: Path) -> str:
    """`<bucket>/models` holding the tiny model as v1, champion: registered there from the
    session's local store, as a team moving to object storage would."""
    return copy_champion(tiny_model_store, f"{s3_bucket}/models", TINY_MODEL_NAME)


@pytest.fixture(scope="module")
def model_store_root(tiny_model_store: Path) -> Path:
    """The session's store holding the tiny model as v1, champion."""
    return tiny_model_store
