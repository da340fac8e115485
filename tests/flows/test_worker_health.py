"""The worker's health (issue 22, item 6): `make worker` starts Prefect's worker with its health
endpoint, and the image's HEALTHCHECK asks it. A real `make server` and `make worker`; the
HEALTHCHECK's own command, read from the Dockerfile, run here as Docker would run it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from testkit import REPOSITORY
from testkit.servers import (
    free_port,
    pool_has_a_worker,
    prefect_server,
    project_environment,
    start_process,
    wait_until,
)

pytestmark = pytest.mark.e2e

QUERY_SECONDS = 1  # the worker's poll interval here: unhealthy after 30 missed polls


def dockerfile_healthcheck() -> list[str]:
    """The HEALTHCHECK's command, exec form, as the Dockerfile declares it."""
    text = (REPOSITORY / "Dockerfile").read_text().replace("\\\n", " ")
    found = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])\s*$", text, flags=re.MULTILINE)
    assert found, "the Dockerfile declares no HEALTHCHECK in exec form"
    command: list[str] = json.loads(found.group(1))
    return command


def health_status(port: int) -> int | None:
    """The endpoint's HTTP status; None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return None


def test_the_worker_answers_healthy_while_it_polls_and_unhealthy_once_it_cannot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environment = project_environment(tmp_path)
    healthcheck = dockerfile_healthcheck()
    assert (
        healthcheck[0] == "python"
        and "--with-healthcheck" in (REPOSITORY / "Dockerfile").read_text().split("CMD [")[-1]
    )
    port = free_port()
    with prefect_server(tmp_path / "server-home", environment, REPOSITORY) as server:
        worker = start_process(
            "worker",
            [
                "make",
                "--no-print-directory",
                "-o",
                "venv",
                "worker",
                f"BIN={Path(sys.executable).parent}",
                f"PREFECT_API_URL={server.api_url}",
                f"WORKER_HEALTH_PORT={port}",
            ],
            {
                **environment,
                "PREFECT_HOME": str(tmp_path / "worker-home"),
                "PREFECT_WORKER_QUERY_SECONDS": str(QUERY_SECONDS),
            },
            tmp_path / "worker.log",
            REPOSITORY,
        )
        probe_environment = {**environment, "PREFECT_WORKER_WEBSERVER_PORT": str(port)}

        def healthcheck_exit() -> int:
            return subprocess.run(
                [sys.executable, *healthcheck[1:]],
                env=probe_environment,
                capture_output=True,
                timeout=30,
                check=False,
            ).returncode

        try:

            def healthy() -> bool:
                worker.check_alive()
                return health_status(port) == 200

            wait_until(healthy, 120, "the worker's health endpoint to answer 200")
            # Until its first sync Prefect counts every loop as a poll: wait until the pool
            # knows the worker, so that what follows is a worker that polled and then could not.
            wait_until(
                lambda: pool_has_a_worker(server.api_url), 120, "the worker to join its pool"
            )
            assert health_status(port) == 200 and healthcheck_exit() == 0, worker.log_tail()

            server.process.stop()  # the API is gone: the worker can no longer poll its pool
            lost = time.monotonic()
            wait_until(lambda: health_status(port) != 200, 30 * QUERY_SECONDS + 60, "unhealthy")
            seconds = time.monotonic() - lost
            status = health_status(port)
            assert healthcheck_exit() != 0
        finally:
            worker.stop()
    with capsys.disabled():
        print(
            f"\nworker health: 200 while polling; {status or 'no answer'} {seconds:.0f} s after "
            f"the API went away (poll interval {QUERY_SECONDS} s, window 30 polls)"
        )
