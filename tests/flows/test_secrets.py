"""A secret in a path never reaches the Prefect server: the command line, a deployment run's
parameters and the settings refuse it before a run exists, and the server's database, logs and
artifacts hold no trace of it afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path
from typing import Any

import pytest

from flows.cli import main
from flows.scoring import ScoreParams, score_flow
from flows.settings import get_settings
from storage import InvalidParameterError

# A secret key as AWS writes them, '/' included: urlsplit alone did not see it as one.
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
SECRET_URI = f"s3://AKIAEXAMPLE:{SECRET}@reviews-bucket/nightly"


def cli(*argv: str) -> tuple[int, str]:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(argv))
    return code, stderr.getvalue()


def server_database() -> Path:
    from prefect.settings import get_current_settings

    url = get_current_settings().server.database.connection_url.get_secret_value()
    return Path(url.split(":///", 1)[1])


def everything_the_server_holds() -> bytes:
    """The server's SQLite files, and every log and artifact its API gives out."""

    async def read() -> str:
        from prefect import get_client

        async with get_client() as client:
            runs = await client.read_flow_runs()
            logs = await client.read_logs()
            artifacts = await client.read_artifacts()
        return "\n".join(
            [str(run.parameters) + str(run.state) for run in runs]
            + [log.message for log in logs]
            + [str(artifact.data) + str(artifact.description) for artifact in artifacts]
        )

    database = server_database()
    files = [database, *database.parent.glob(database.name + "-*")]
    return b"".join(path.read_bytes() for path in files) + asyncio.run(read()).encode()


@pytest.mark.parametrize(
    "path",
    [
        SECRET_URI,
        f"s3://AKIAEXAMPLE:{SECRET.replace('/', '')}@reviews-bucket/x",
        "s3://AKIAEXAMPLE@reviews-bucket/x",
        f"gs://user:{SECRET}@bucket/x",
    ],
)
def test_every_form_of_credentials_in_a_path_is_refused_without_echoing_it(path: str) -> None:
    with pytest.raises(ValueError, match="credentials do not go in the path") as error:
        ScoreParams(output_root=path)
    assert SECRET not in str(error.value.errors()[0]["msg"])
    assert "AKIAEXAMPLE" not in str(error.value.errors()[0]["msg"])


def test_keys_with_at_signs_and_colons_are_still_paths() -> None:
    for path in ("s3://bucket/user@example.com/x", "s3://bucket/a:b@c", "/data/a@b", "x:y"):
        assert ScoreParams(input_path=path).input_path == path


def test_no_secret_reaches_the_server_from_the_cli_a_deployment_or_the_settings(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The command line: every path option, refused before a run exists.
    for argv in (
        ("score", "--input-path", SECRET_URI),
        ("score", "--output-root", SECRET_URI),
        ("score", "--model-store-root", SECRET_URI),
        ("train", "--source", "parquet", "--data-path", SECRET_URI),
        ("train", "--model-store-root", SECRET_URI),
    ):
        code, stderr = cli(*argv)
        assert code == 2 and "credentials do not go in the path" in stderr, (argv, stderr)
        assert len(stderr.splitlines()) == 1 and SECRET not in stderr

    # A setting: refused as the command starts, the same way (one line, exit 1).
    monkeypatch.setenv("REVIEW_SCORING_OUTPUT_DIR", SECRET_URI)
    code, stderr = cli("score", "--input-path", str(tmp_path))
    assert code == 1 and "REVIEW_SCORING_OUTPUT_DIR" in stderr and SECRET not in stderr
    with pytest.raises(InvalidParameterError) as error:
        get_settings()
    assert SECRET not in str(error.value) and error.value.__cause__ is None
    monkeypatch.delenv("REVIEW_SCORING_OUTPUT_DIR")

    # A deployment's run: the server checks the parameters against the form's schema.
    async def run_from_deployment() -> Any:
        from prefect import get_client
        from prefect.exceptions import PrefectHTTPStatusError

        deployment = await score_flow.ato_deployment(name="secrets")
        deployment_id = await deployment.aapply()
        async with get_client() as client:
            with pytest.raises(PrefectHTTPStatusError) as refused:
                await client.create_flow_run_from_deployment(
                    deployment_id, parameters={"params": {"output_root": SECRET_URI}}
                )
            return refused.value.response.status_code

    assert asyncio.run(run_from_deployment()) in (409, 422)

    assert SECRET.encode() not in everything_the_server_holds()
    assert b"AKIAEXAMPLE" not in everything_the_server_holds()
