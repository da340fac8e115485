"""The S3 client's bounds come from the settings (issue 22, item 4), without a server: what
botocore is given, what s3fs keeps of its own tries, and a bad setting named in one line."""

from __future__ import annotations

import pickle

import pytest

from storage import InvalidParameterError, StorageCredentialsError, locate
from storage.objects import ObjectLocation


def test_the_s3_client_takes_its_timeouts_and_tries_from_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REVIEW_SCORING_S3_CONNECT_TIMEOUT_SECONDS", "3")
    monkeypatch.setenv("REVIEW_SCORING_S3_READ_TIMEOUT_SECONDS", "7.5")
    monkeypatch.setenv("REVIEW_SCORING_S3_RETRIES", "4")
    location = locate("s3://a-bucket/reviews", "input_path")
    assert isinstance(location, ObjectLocation)
    filesystem = location._fs
    assert filesystem.config_kwargs == {
        "connect_timeout": 3.0,
        "read_timeout": 7.5,
        "retries": {"max_attempts": 5, "mode": "standard"},
    }
    # s3fs's own five tries around each call would multiply botocore's: one, also in a Dask
    # worker that unpickles the location.
    assert filesystem.retries == 1
    assert pickle.loads(pickle.dumps(location))._fs.retries == 1
    assert location.object_store_options()["connect_timeout"] == "3s"


@pytest.mark.parametrize(
    ("name", "value"),
    [("REVIEW_SCORING_S3_RETRIES", "-1"), ("REVIEW_SCORING_S3_READ_TIMEOUT_SECONDS", "never")],
)
def test_a_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidParameterError, match=f"^{name}: "):
        locate("s3://a-bucket/reviews", "input_path")


def test_credentials_in_the_endpoint_are_refused_before_any_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://key:secret@s3.example")
    with pytest.raises(StorageCredentialsError) as refused:
        locate("s3://a-bucket/reviews", "output_root")
    assert str(refused.value).startswith("output_root: AWS_ENDPOINT_URL_S3 holds a user name")
    assert "secret" not in str(refused.value)
