"""The worker image, built (`make image`, buildah) and run (podman, runc): as its own user it
trains a tiny model and scores with it, its code is read-only, and its default command's worker
answers its HEALTHCHECK while it polls a Prefect server on the host.

`make image-test` builds the image and runs these; `make test` leaves them out (marker `image`).
Without podman, or without the image, they are skipped and say why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from testkit import REPOSITORY as REPO
from testkit.scoring import write_reviews
from testkit.servers import (
    free_port,
    pool_has_a_worker,
    prefect_server,
    project_environment,
    wait_until,
)
from testkit.synthetic import TINY_RECIPE, write_labeled_dataset

pytestmark = pytest.mark.image

IMAGE = os.environ.get("REVIEW_SCORING_IMAGE", "localhost/review-scoring:latest")
APP_UID = 10001
APP_ROOT = "/opt/review-scoring"
MODEL = "imdb-sentiment"


def _podman(*arguments: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *arguments], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def run_options() -> list[str]:
    """podman run's options here: runc, the host's network, and limits the sandbox allows (it
    refuses podman's default of a million open files and processes)."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (.ci/run installs it with buildah, runc, debootstrap)")
    if _podman("image", "exists", IMAGE).returncode != 0:
        pytest.skip(f"no image {IMAGE}: `make image-test` builds it, then runs these")
    files = min(int(subprocess.check_output(["sh", "-c", "ulimit -Hn"]).strip()), 65_536)
    for processes in (32_768, 4_096):
        options = ["--runtime", "runc", "--network", "host", "--ulimit", f"nofile={files}"]
        options += ["--ulimit", f"nproc={processes}"]
        if _podman("run", "--rm", *options, "--entrypoint", "true", IMAGE).returncode == 0:
            return options
    pytest.fail(f"podman cannot start {IMAGE} here: {_podman('run', '--rm', IMAGE, 'true').stderr}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prefect server on the host (`make server`) for the containers' runs and worker."""
    root = tmp_path_factory.mktemp("server")
    with prefect_server(root / "home", project_environment(root), REPO) as running:
        yield running.api_url


@pytest.fixture(scope="module")
def volumes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The image's two volumes as host folders its user owns, with labeled data and reviews."""
    root = tmp_path_factory.mktemp("volumes")
    folders = {"models": root / "models", "data": root / "data"}
    write_labeled_dataset(folders["data"] / "labeled", train_rows=300, test_rows=100)
    for day in ("day1", "day2"):
        write_reviews(folders["data"] / "reviews" / f"{day}.parquet", rows=40, seed=len(day))
    folders["models"].mkdir()
    for folder in folders.values():
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, APP_UID, APP_UID)
    return folders


def _run(
    run_options: list[str], volumes: dict[str, Path], server: str, *command: str
) -> subprocess.CompletedProcess[str]:
    mounts = [f"--volume={path}:{APP_ROOT}/{name}" for name, path in volumes.items()]
    return _podman(
        "run", "--rm", *run_options, *mounts, "--env", f"PREFECT_API_URL={server}", IMAGE, *command
    )


def test_the_user_is_fixed_and_the_code_read_only(run_options: list[str]) -> None:
    probe = (
        "id -u; for path in /opt/venv/bin /opt/review-scoring/flows /opt/review-scoring; do "
        'touch "$path/written" 2>/dev/null && echo "writable $path"; done; '
        "touch /home/review-scoring/.prefect/written && echo home writable"
    )
    child = _podman("run", "--rm", *run_options, "--entrypoint", "sh", IMAGE, "-c", probe)
    assert child.returncode == 0, child.stderr
    assert child.stdout.split("\n") == [str(APP_UID), "home writable", ""], child.stdout


def test_it_trains_then_scores_on_its_volumes(
    run_options: list[str], volumes: dict[str, Path], server: str
) -> None:
    recipe = {name: value for name, value in TINY_RECIPE.items() if name != "source"}
    options = [f"--{name.replace('_', '-')}={value}" for name, value in recipe.items()]
    trained = _run(
        run_options,
        volumes,
        server,
        *["review-scoring", "train", "--source", "parquet"],
        *["--data-path", f"{APP_ROOT}/data/labeled", *options],
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    summary = trained.stdout.strip().splitlines()
    assert summary[0].startswith(f"{MODEL} v1: test accuracy "), summary
    assert summary[1].startswith("promoted to champion"), summary
    assert summary[2] == f"model: {APP_ROOT}/models/{MODEL}/versions/1", summary
    assert "absl" not in trained.stderr and "oneDNN" not in trained.stderr, trained.stderr
    version = volumes["models"] / MODEL / "versions" / "1"
    manifest = json.loads((version / "manifest.json").read_text())
    # The commit the image was built from (.ci/image), as the manifest's source.
    environment = _podman("image", "inspect", "--format", "{{json .Config.Env}}", IMAGE)
    built_from = dict(line.split("=", 1) for line in json.loads(environment.stdout))
    assert manifest["source"]["commit"] == built_from["REVIEW_SCORING_SOURCE_COMMIT"]
    assert len(manifest["source"]["commit"]) == 40, manifest["source"]
    assert version.stat().st_uid == APP_UID

    scored = _run(run_options, volumes, server, "review-scoring", "score")
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert scored.stdout.startswith(f"{MODEL} v1: 2 files scored, 0 skipped, 0 failed; 80 rows")
    outputs = sorted((volumes["data"] / "predictions" / MODEL / "v1").glob("*.parquet"))
    assert [path.name for path in outputs] == ["day1.parquet", "day2.parquet"]
    assert sum(pq.read_metadata(path).num_rows for path in outputs) == 80


def test_the_default_command_is_a_worker_that_answers_its_healthcheck(
    run_options: list[str], volumes: dict[str, Path], server: str
) -> None:
    healthcheck = _podman("image", "inspect", "--format", "{{json .Config.Healthcheck}}", IMAGE)
    assert "/health" in healthcheck.stdout, f"the image has no HEALTHCHECK: {healthcheck.stdout}"
    port = free_port()
    name = f"review-scoring-worker-{port}"
    started = _podman(
        "run",
        "--detach",
        "--name",
        name,
        *run_options,
        "--env",
        f"PREFECT_API_URL={server}",
        "--env",
        f"PREFECT_WORKER_WEBSERVER_PORT={port}",
        IMAGE,
    )
    assert started.returncode == 0, started.stderr
    try:

        def polling() -> bool:
            state = _podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
            assert state == "true", _podman("logs", name).stderr[-3000:]
            return pool_has_a_worker(server)

        # It polls the project's pool on the host's server, and says so to its HEALTHCHECK.
        wait_until(polling, 180, f"the worker in {name} to poll its pool", interval=2.0)
        checked = _podman("healthcheck", "run", name)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            assert response.status == 200
    finally:
        _podman("rm", "--force", "--time", "5", name)
