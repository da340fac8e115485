"""Shared fixtures: a real Prefect API for flow tests, a real S3 server, one tiny trained model,
quiet TensorFlow."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.s3 import S3Server, forget_s3_clients, new_bucket, running_s3_server

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


# Markers drawn from what a test uses, so a new test is sorted without anyone remembering to.
_MARKER_OF_FIXTURE = {
    "s3_server": "s3",
    "dask_cluster": "dask",
    "prefect_api": "slow",
    "tiny_model_store": "slow",  # trains the tiny model once per worker
    "trained": "slow",  # a module's one training
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Markers drawn from what a test uses: every test that uses the S3 server is marked `s3`, a
    Dask cluster `dask`, and a Prefect API or a trained model `slow`; `make test-fast` runs what
    none of these (nor `e2e`, `browser`) marks.

    The end-to-end tests, the longest, are handed out first, so that the rest fills in around
    them: `make test` runs `-n 2 --dist loadfile --no-loadscope-reorder`, a module's tests on one
    worker (its module fixtures, a server or the browser journey, built once) in this order.
    """
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        for fixture, marker in _MARKER_OF_FIXTURE.items():
            if fixture in fixtures:
                item.add_marker(marker)
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A temporary Prefect server and database for the whole session (Prefect's own harness)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3 server (moto's server mode) on loopback, for the session."""
    with running_s3_server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`s3://<a new bucket>` on the test S3 server, with this process's AWS_* environment
    pointing at it (child processes inherit it)."""
    for key, value in s3_server.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    forget_s3_clients()
    yield new_bucket()
    forget_s3_clients()


@pytest.fixture(scope="session")
def tiny_model_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding v1 of a tiny model trained by the training code path, as champion.

    Trained once per session; tests that change a store copy this one.
    """
    from testkit.store import train_tiny_store

    return train_tiny_store(tmp_path_factory.mktemp("models"), tmp_path_factory.mktemp("labeled"))
