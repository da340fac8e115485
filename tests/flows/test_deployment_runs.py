"""A deployment's runs as a worker starts them: the command a process worker runs for a flow run
(`python -m prefect.engine`, the run's id in PREFECT__FLOW_RUN_ID), against Prefect's test
server, for deployments made from prefect.yaml.

Where runs start: prefect.yaml's pull step (flows.deploy.enter_project_folder) puts each run in
the project folder, which the worker names in REVIEW_SCORING_PROJECT_DIR or, unset, the checkout
its code was installed from; a worker started anywhere else gets a Failed run that says in one
line where the worker must run, not a traceback.

When: the nightly scoring reads its scheduled date in the schedule's zone, which `make deploy`
sets from the schedule, so a run scheduled for 00:30 in Paris is named for that Paris date.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.deploy import enter_project_folder
from storage import NotAFolderError
from testkit import REPOSITORY as REPO
from testkit.servers import project_environment

NOT_A_PROJECT = "is not one: start the worker in the project folder with `make worker`"


def test_an_unset_project_folder_is_the_checkout_the_code_comes_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # The placeholder stays as it is when the worker has no REVIEW_SCORING_PROJECT_DIR.
    assert enter_project_folder("{{ $REVIEW_SCORING_PROJECT_DIR }}") == {"directory": str(REPO)}
    assert Path.cwd() == REPO


def test_a_folder_that_is_not_the_project_is_one_line_naming_it_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PREFECT__FLOW_RUN_ID", raising=False)
    with pytest.raises(NotAFolderError) as error:
        enter_project_folder(str(tmp_path))
    message = str(error.value)
    assert f"REVIEW_SCORING_PROJECT_DIR={tmp_path}, which {NOT_A_PROJECT}" in message
    assert "\n" not in message and Path.cwd() == tmp_path


def _run_process(flow_run_id: Any, cwd: Path, environment: dict[str, str]) -> str:
    """What a process worker starts for a flow run; its output."""
    import prefect.settings

    completed = subprocess.run(
        [sys.executable, "-m", "prefect.engine"],
        cwd=cwd,
        env={
            **environment,
            "PREFECT_API_URL": prefect.settings.PREFECT_API_URL.value(),
            "PREFECT__FLOW_RUN_ID": str(flow_run_id),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return completed.stdout + completed.stderr


def test_runs_of_a_worker_outside_the_project_start_there_or_fail_in_one_line(
    prefect_api: None, tmp_path: Path
) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    pull_steps = yaml.safe_load((REPO / "prefect.yaml").read_text())["pull"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    environment = project_environment(tmp_path)
    del environment["REVIEW_SCORING_PROJECT_DIR"]
    with get_client(sync_client=True) as client:
        deployment_id = client.create_deployment(
            flow_id=client.create_flow_from_name("train"),
            name="worker-folder",
            entrypoint="flows/training.py:train_flow",
            pull_steps=pull_steps,
        )

        def run(project_dir: str | None, parameters: dict[str, Any]) -> tuple[Any, str, str]:
            flow_run = client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
            named = {"REVIEW_SCORING_PROJECT_DIR": project_dir} if project_dir else {}
            output = _run_process(flow_run.id, elsewhere, {**environment, **named})
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id]))
            )
            return client.read_flow_run(flow_run.id), output, "\n".join(log.message for log in logs)

        # Named, but not the project: Failed, one line in the state, the logs and the output.
        flow_run, output, logs = run(str(elsewhere), {})
        assert flow_run.state.is_failed(), flow_run.state
        assert NOT_A_PROJECT in flow_run.state.message
        assert f"REVIEW_SCORING_PROJECT_DIR={elsewhere}" in flow_run.state.message
        assert NOT_A_PROJECT in logs
        assert "Traceback" not in logs and "Traceback" not in output, (logs, output)

        # Unset: the run starts in this checkout, whatever folder the worker is in; its flow
        # loads and runs (and ends on the data path it is given, which is not there).
        missing = tmp_path / "no-such-data"
        parameters = {"params": {"source": "parquet", "data_path": str(missing)}}
        flow_run, output, logs = run(None, parameters)
        assert flow_run.state.is_failed(), (flow_run.state, output[-3000:])
        assert str(missing) in flow_run.state.message and NOT_A_PROJECT not in logs


def test_a_nightly_run_at_half_past_midnight_in_paris_is_named_for_the_paris_date(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import prefect.settings
    from prefect import get_client
    from prefect.states import Scheduled

    from flows.deploy import NIGHTLY_SCORING
    from flows.deploy import main as deploy

    # `make deploy` with the night moved to 00:30 in Paris.
    monkeypatch.setenv("PREFECT_API_URL", prefect.settings.PREFECT_API_URL.value())
    monkeypatch.setenv("REVIEW_SCORING_SCHEDULE_CRON", "30 0 * * *")
    monkeypatch.setenv("REVIEW_SCORING_SCHEDULE_TIMEZONE", "Europe/Paris")
    # The folders `make deploy` pins in the deployment: the run's own.
    for name, value in project_environment(tmp_path).items():
        if name.startswith("REVIEW_SCORING_"):
            monkeypatch.setenv(name, value)
    assert deploy(["--project-dir", str(REPO)]) == 0
    # 23:30 UTC on 6 December is 00:30 on the 7th in Paris: the night of the 7th there.
    night = datetime(2026, 12, 6, 23, 30, tzinfo=timezone.utc)
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(NIGHTLY_SCORING)
        assert deployment.parameters["params"]["timezone"] == "Europe/Paris"
        [schedule] = deployment.schedules
        assert (schedule.schedule.cron, schedule.schedule.timezone) == (
            "30 0 * * *",
            "Europe/Paris",
        )
        flow_run = client.create_flow_run_from_deployment(
            deployment.id, state=Scheduled(scheduled_time=night)
        )
        output = _run_process(flow_run.id, REPO, project_environment(tmp_path))
        ran = client.read_flow_run(flow_run.id)
    # Named for its night in Paris (the store here is empty, so the run itself fails).
    assert ran.name.startswith("score 2026-12-07 00:30 "), (ran.name, output[-3000:])
    assert ran.name.endswith(" champion"), ran.name
    assert ran.state.is_failed() and "unknown model" in ran.state.message, ran.state
