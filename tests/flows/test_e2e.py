"""End to end, with real processes: `make server` on PostgreSQL (SQLite without it), `make deploy`'s
deploy step on prefect.yaml, a process worker, the two deployments run through the API, and the
failure alert, with its link to the run's page, reaching a webhook receiver on loopback.

Nothing is mocked. PostgreSQL needs Debian's postgresql package (`.ci/run` installs it); without
it the test runs on SQLite and says so.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from flows.alerts import ALERT_NAME
from flows.deploy import (
    DOCKER_POOL,
    NIGHTLY_SCORING,
    NIGHTLY_SCORING_DOCKER,
    PROCESS_POOL,
    TRAINING,
)
from model_store import ModelStore
from tasks.scoring.table import TABLE_FOLDER
from testkit.servers import (
    REPO,
    WebhookReceiver,
    deploy_project,
    describe,
    find_postgres_bin,
    postgres_cluster,
    prefect_server,
    project_environment,
    start_process,
    start_worker,
    wait_for_final_state,
    wait_until,
)
from testkit.synthetic import TINY_RECIPE as TINY
from testkit.synthetic import write_labeled_dataset, write_labeled_parquet

pytestmark = pytest.mark.e2e

MODEL_NAME = "imdb-sentiment"
REVIEW_FILES = 3
ROWS_PER_FILE = 40
# The PostgreSQL case also shows that the time zone can be set; SQLite keeps the default (UTC).
TIMEZONE_BY_DATABASE = {"sqlite": None, "postgresql": "Europe/Paris"}


@pytest.fixture
def database() -> Iterator[tuple[str, str | None]]:
    """PostgreSQL, what a shared server uses, and its connection URL; SQLite (None: under
    PREFECT_HOME) where PostgreSQL's binaries are missing. The browser test, tests/flows/test_ui.py,
    runs the whole journey on SQLite behind `make server` in any case."""
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        print(
            "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin "
            "or on PATH (`apt-get install -y postgresql`, as .ci/run does): running on SQLite"
        )
        yield "sqlite", None
        return
    with postgres_cluster(bin_dir) as url:
        yield "postgresql", url


def _base_environment(tmp_path: Path, timezone: str | None) -> dict[str, str]:
    """The project's environment under tmp_path, with the schedule's time zone when given."""
    environment = project_environment(tmp_path)
    if timezone:
        environment["REVIEW_SCORING_SCHEDULE_TIMEZONE"] = timezone
    return environment


def _next_nightly_run(timezone: str, now: datetime) -> datetime:
    """The next 02:00 on the wall clock of `timezone` after `now`."""
    local_now = now.astimezone(ZoneInfo(timezone))
    candidate = local_now.replace(hour=2, minute=0, second=0, microsecond=0)
    if candidate <= local_now:
        candidate += timedelta(days=1)  # wall-clock arithmetic: still 02:00 across DST
    return candidate


def _artifacts_of(client: Any, flow_run_id: UUID) -> dict[str, Any]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    )
    return {artifact.key: artifact for artifact in artifacts if artifact.key}


def _serve_takes_over_and_stops_without_pausing(
    client: Any, environment: dict[str, str], tmp_path: Path, nightly_id: UUID
) -> None:
    """`make serve` takes the same deployments over; stopping it leaves the schedule on."""
    before = client.read_deployment_by_name(NIGHTLY_SCORING).last_polled
    serving = start_process(
        "serve", [sys.executable, "-m", "flows.serve"], environment, tmp_path / "serve.log", REPO
    )
    try:

        def polling() -> Any:
            serving.check_alive()
            deployment = client.read_deployment_by_name(NIGHTLY_SCORING)
            # The server stamps last_polled when the started runner asks for this deployment's
            # runs: only then is the runner up, with its shutdown handling in place.
            polled = deployment.last_polled and "being served" in serving.log_path.read_text()
            return deployment if polled and deployment.last_polled != before else None

        try:
            deployment = wait_until(polling, 120, "flows.serve to poll for its runs")
        except TimeoutError as error:
            raise TimeoutError(f"{error}\n{serving.log_tail()}") from None
        assert deployment.id == nightly_id  # same deployment: the alert still watches it
        [schedule] = deployment.schedules
        assert schedule.active and schedule.schedule.cron == "0 2 * * *"
        # SIGTERM, as systemd or Docker stop it for a restart: the runner's graceful shutdown,
        # which pauses the schedules with Prefect's default pause_on_shutdown=True.
        serving.process.send_signal(signal.SIGTERM)
        assert serving.process.wait(timeout=60) is not None
    finally:
        serving.stop()
    stopped = client.read_deployment_by_name(NIGHTLY_SCORING)
    assert not stopped.paused, serving.log_tail()
    assert all(schedule.active for schedule in stopped.schedules), serving.log_tail()


def test_deployments_end_to_end(
    database: tuple[str, str | None],
    tmp_path: Path,
    record_property: Any,
) -> None:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import ObjectNotFound

    database_kind, database_url = database
    timezone = TIMEZONE_BY_DATABASE[database_kind]
    expected_timezone = timezone or "UTC"
    timings: dict[str, float] = {}
    started = time.monotonic()

    dataset = write_labeled_dataset(tmp_path / "imdb", train_rows=500, test_rows=150)
    review_paths = [
        write_labeled_parquet(
            tmp_path / "reviews" / f"reviews-{index}.parquet", ROWS_PER_FILE, 10 + index
        )
        for index in range(REVIEW_FILES)
    ]
    environment = _base_environment(tmp_path, timezone)
    server_environment = dict(environment)
    if database_url:
        server_environment["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url

    with (
        WebhookReceiver().running() as receiver,
        prefect_server(tmp_path / "server-home", server_environment, REPO) as server,
    ):
        timings["server_start_s"] = time.monotonic() - started
        client_environment = {
            **environment,
            "PREFECT_API_URL": server.api_url,
            "PREFECT_HOME": str(tmp_path / "client-home"),
        }
        # The worker starts while the deployments are made.
        worker = start_worker(client_environment, tmp_path)
        try:
            step = time.monotonic()
            deploy = deploy_project(client_environment, receiver.url)
            timings["deploy_s"] = time.monotonic() - step
            assert deploy.returncode == 0, f"{deploy.stdout[-3000:]}\n{deploy.stderr[-3000:]}"

            with SyncPrefectClient(api=server.api_url) as client:
                # --- what `make deploy` made ----------------------------------------------
                training = client.read_deployment_by_name(TRAINING)
                nightly = client.read_deployment_by_name(NIGHTLY_SCORING)
                assert training.work_pool_name == PROCESS_POOL and not training.schedules
                assert nightly.work_pool_name == PROCESS_POOL
                assert client.read_work_pool(PROCESS_POOL).type == "process"
                # Docker's pool and deployment only when asked (issue 24, item 3): a pool no
                # worker ever polls reads red / Not Ready for everyone else.
                pools = {pool.name for pool in client.read_work_pools()}
                assert DOCKER_POOL not in pools, pools
                with pytest.raises(ObjectNotFound):
                    client.read_deployment_by_name(NIGHTLY_SCORING_DOCKER)

                [schedule] = nightly.schedules
                assert schedule.active
                assert schedule.schedule.cron == "0 2 * * *"
                assert schedule.schedule.timezone == expected_timezone
                assert nightly.global_concurrency_limit.limit == 1
                assert nightly.concurrency_options.collision_strategy.value == "CANCEL_NEW"
                with_docker = deploy_project(client_environment, receiver.url, "--with-docker")
                assert with_docker.returncode == 0, with_docker.stderr[-3000:]
                nightly_docker = client.read_deployment_by_name(NIGHTLY_SCORING_DOCKER)
                assert nightly_docker.work_pool_name == DOCKER_POOL
                assert client.read_work_pool(DOCKER_POOL).type == "docker"
                assert nightly_docker.job_variables["image"] == "review-scoring:latest"
                [docker_schedule] = nightly_docker.schedules
                assert not docker_schedule.active
                assert docker_schedule.schedule.timezone == expected_timezone
                [automation] = client.read_automations_by_name(ALERT_NAME)
                assert automation.enabled
                assert "prefect.tag.nightly" in json.dumps(
                    automation.trigger.model_dump(mode="json")
                )

                # --- the server schedules the next nightly run on its own -----------------
                def scheduled_runs() -> list[Any]:
                    return client.read_flow_runs(
                        deployment_filter=DeploymentFilter(
                            id=DeploymentFilterId(any_=[nightly.id])
                        ),
                        flow_run_filter=FlowRunFilter(
                            state=FlowRunFilterState(
                                type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])
                            )
                        ),
                    )

                step, before = time.monotonic(), datetime.now(ZoneInfo("UTC"))
                runs_ahead = wait_until(scheduled_runs, 90, "the scheduler to plan nightly runs")
                timings["first_scheduled_run_appeared_s"] = time.monotonic() - step
                next_run = min(run.expected_start_time for run in runs_ahead)
                # Computed from before and after the scheduler ran, in case 02:00 fell between.
                expected = {
                    _next_nightly_run(expected_timezone, moment)
                    for moment in (before, datetime.now(ZoneInfo("UTC")))
                }
                assert next_run in expected, (next_run, expected)
                # Named from the moment they exist (issue 24, item 7), not "hissing-goose".
                night = re.compile(r"^score \d{4}-\d{2}-\d{2} 02:00 reviews (v\d+ \()?champion\)?$")
                assert all(night.match(run.name) for run in runs_ahead), [
                    run.name for run in runs_ahead
                ]

                # --- training on demand, with tiny parameters set through the API ---------
                step = time.monotonic()
                training_run = client.create_flow_run_from_deployment(
                    training.id, parameters={"params": {**TINY, "data_path": str(dataset)}}
                )
                training_run = wait_for_final_state(client, training_run.id, worker)
                timings["training_run_s"] = time.monotonic() - step
                assert training_run.state.type == StateType.COMPLETED, describe(training_run)
                store = ModelStore(tmp_path / "models")
                assert store.aliases(MODEL_NAME) == {"champion": 1}
                assert store.manifest(MODEL_NAME, 1)["run_id"] == str(training_run.id)

                # --- scoring, as the nightly schedule starts it (no parameters) -----------
                # Two runs at once: the concurrency limit of 1 lets one run and cancels the other.
                step = time.monotonic()
                first = client.create_flow_run_from_deployment(nightly.id)
                second = client.create_flow_run_from_deployment(nightly.id)
                scoring_runs = [
                    wait_for_final_state(client, run.id, worker) for run in (first, second)
                ]
                timings["scoring_runs_s"] = time.monotonic() - step
                by_state = {run.state.type: run for run in scoring_runs}
                assert set(by_state) == {StateType.COMPLETED, StateType.CANCELLED}, [
                    describe(run) for run in scoring_runs
                ]
                scoring_run, cancelled_run = (
                    by_state[StateType.COMPLETED],
                    by_state[StateType.CANCELLED],
                )
                assert "concurrency limit" in (cancelled_run.state.message or "")

                output_dir = tmp_path / "predictions" / MODEL_NAME / "v1"
                assert sorted(path.name for path in output_dir.glob("*.parquet")) == sorted(
                    path.name for path in review_paths
                )
                correct = rows = 0
                for review_path in review_paths:
                    inputs = pq.read_table(review_path).to_pydict()
                    outputs = pq.read_table(output_dir / review_path.name).to_pydict()
                    assert outputs["review_id"] == inputs["review_id"]
                    assert set(outputs["status"]) == {"ok"}
                    assert set(outputs["model_version"]) == {1}
                    rows += len(inputs["label"])
                    correct += sum(
                        (label == "positive") == bool(truth)
                        for label, truth in zip(outputs["label"], inputs["label"], strict=True)
                    )
                assert correct / rows > 0.8, f"accuracy {correct}/{rows}"
                # The nightly deployment writes the predictions table by default.
                table = DeltaTable(str(tmp_path / "predictions" / TABLE_FOLDER))
                assert table.to_pyarrow_table().num_rows == rows
                assert table.history()[0]["flow_run_id"] == str(scoring_run.id)

                # --- the runs' artifacts, read back through the API -----------------------
                training_artifacts = _artifacts_of(client, training_run.id)
                assert {f"{MODEL_NAME}-metrics", f"{MODEL_NAME}-training"} <= set(
                    training_artifacts
                )
                assert "v1" in (training_artifacts[f"{MODEL_NAME}-training"].data or "")
                scoring_artifacts = _artifacts_of(client, scoring_run.id)
                assert {"scoring-progress", "scoring-summary"} <= set(scoring_artifacts)
                assert float(scoring_artifacts["scoring-progress"].data) == pytest.approx(100.0)
                assert str(REVIEW_FILES * ROWS_PER_FILE) in str(
                    scoring_artifacts["scoring-summary"].data
                )

                # --- a failed scoring run reaches the webhook -----------------------------
                step = time.monotonic()
                failing = client.create_flow_run_from_deployment(
                    nightly.id, parameters={"params": {"model_ref": "99"}}
                )
                failing = wait_for_final_state(client, failing.id, worker)
                timings["failed_run_s"] = time.monotonic() - step
                assert failing.state.type == StateType.FAILED, describe(failing)

                step = time.monotonic()

                def alert_for_failing_run() -> dict[str, Any] | None:
                    for request in receiver.received:
                        if request["payload"].get("flow_run_id") == str(failing.id):
                            return request
                    return None

                alert = wait_until(alert_for_failing_run, 120, "the failure alert webhook call")
                timings["alert_after_failure_s"] = time.monotonic() - step
                assert alert["payload"]["state"] == "Failed"
                assert alert["payload"]["deployment"] == "nightly"
                assert alert["headers"].get("Content-Type") == "application/json"
                # The link to the run's page in the UI of the server that ran it (PREFECT_UI_URL).
                assert alert["payload"]["url"] == server.flow_run_page(failing.id)
                # The failed and the cancelled runs alerted, the completed one did not.
                alerted = {
                    request["payload"].get("flow_run_id"): request["payload"]["state"]
                    for request in receiver.received
                }
                assert alerted == {
                    str(failing.id): "Failed",
                    str(cancelled_run.id): "Cancelled",
                }, receiver.received

                # --- backfill: two past nights, each a run of the nightly deployment ------
                nights = ("2026-11-01", "2026-11-02")
                for night in nights:
                    write_labeled_parquet(
                        tmp_path / "reviews" / f"day={night}" / "reviews.parquet", 20, 7
                    )
                step = time.monotonic()
                command = [sys.executable, "-m", "flows.cli", "backfill", "--from", nights[0]]
                command += ["--to", nights[1], "--partition", "day={scheduled_date}"]
                backfilled = subprocess.run(
                    command,
                    cwd=REPO,
                    env=client_environment,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                timings["backfill_two_nights_s"] = time.monotonic() - step
                assert backfilled.returncode == 0, backfilled.stdout + backfilled.stderr[-3000:]
                night_runs = sorted(
                    client.read_flow_runs(
                        deployment_filter=DeploymentFilter(
                            id=DeploymentFilterId(any_=[nightly.id])
                        ),
                        flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["backfill"])),
                    ),
                    key=lambda run: run.expected_start_time,
                )
                assert [run.name for run in night_runs] == [
                    f"score {night} 02:00 day={night} v1 (champion)" for night in nights
                ]
                for night, night_run in zip(nights, night_runs, strict=True):
                    assert night_run.state.type == StateType.COMPLETED, describe(night_run)
                    # Started, as far as the run knows, when the schedule would have started it.
                    local_start = night_run.expected_start_time.astimezone(
                        ZoneInfo(expected_timezone)
                    )
                    assert (local_start.date().isoformat(), local_start.hour) == (night, 2)
                    assert f"{night}: {night_run.name}: Completed" in backfilled.stdout
                    night_output = output_dir / f"day={night}" / "reviews.parquet"
                    assert pq.read_table(night_output).num_rows == 20

                worker.stop()  # serving is the alternative to the worker, not beside it
                step = time.monotonic()
                _serve_takes_over_and_stops_without_pausing(
                    client, client_environment, tmp_path, nightly.id
                )
                timings["serve_take_over_and_stop_s"] = time.monotonic() - step
        except BaseException:
            print(worker.log_tail(), server.process.log_tail(), sep="\n")
            raise
        finally:
            worker.stop()

    timings["total_s"] = time.monotonic() - started
    figures = {
        "database": database_kind,
        "timings_s": {name: round(seconds, 1) for name, seconds in timings.items()},
        "states": {
            "training": training_run.state.name,
            "scoring": [run.state.name for run in scoring_runs],
            "failing_scoring": failing.state.name,
        },
        "cancelled_message": cancelled_run.state.message,
        "next_nightly_run": next_run.isoformat(),
        "nightly_runs_planned_ahead": len(runs_ahead),
        "alert_payload": alert["payload"],
        "schedule": f"{schedule.schedule.cron} {schedule.schedule.timezone}",
    }
    record_property("e2e_figures", json.dumps(figures))
    print("e2e figures:", json.dumps(figures))
