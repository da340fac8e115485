"""Static checks of the deployments: prefect.yaml, flows/serve.py, flows/deploy.py and the Makefile
agree with each other and with the flows, without a server (tests/flows/test_e2e.py runs them
for real).
prefect.yaml is the one source: flows.deploy.read_project reads it, and flows.serve serves that.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.deploy import (
    DOCKER_POOL,
    NIGHTLY_SCORING,
    NIGHTLY_SCORING_DOCKER,
    PROCESS_POOL,
    TRAINING,
    NightlySchedule,
    deploy_values,
    nightly_schedule,
    read_project,
    schedule_in_words,
)
from testkit import REPOSITORY as REPO


@pytest.fixture(scope="module")
def prefect_yaml() -> dict[str, Any]:
    return yaml.safe_load((REPO / "prefect.yaml").read_text())


def _deployment(config: dict[str, Any], full_name: str) -> dict[str, Any]:
    from prefect.flows import load_flow_from_entrypoint

    flow_name, name = full_name.split("/")
    matches = [item for item in config["deployments"] if item["name"] == name]
    matches = [
        item for item in matches if load_flow_from_entrypoint(item["entrypoint"]).name == flow_name
    ]
    assert len(matches) == 1, f"{full_name}: {len(matches)} deployments in prefect.yaml"
    return matches[0]


def _resolved(template: Any, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """What `prefect deploy` makes of `{{ $VARIABLE }}` placeholders in this environment."""
    from prefect.utilities.templating import apply_values

    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return apply_values(template, dict(os.environ), remove_notset=False)


def test_prefect_yaml_is_what_prefect_deploy_reads(prefect_yaml: dict[str, Any]) -> None:
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(prefect_yaml)
    assert {deployment.name for deployment in model.deployments} == {
        "on-demand",
        "nightly",
        "nightly-docker",
    }
    for deployment in model.deployments:
        path, function = deployment.entrypoint.split(":")
        assert (REPO / path).is_file() and function


def test_read_project_reads_what_prefect_deploy_reads(prefect_yaml: dict[str, Any]) -> None:
    from prefect.cli.deploy._models import PrefectYamlModel
    from prefect.flows import load_flow_from_entrypoint

    model = PrefectYamlModel.model_validate(prefect_yaml)
    project = read_project(REPO)
    assert [deployment.name for deployment in project.deployments] == [
        deployment.name for deployment in model.deployments
    ]
    for expected in model.deployments:
        read = project.deployment(expected.name)
        flow_name = load_flow_from_entrypoint(expected.entrypoint).name
        assert read.full_name == f"{flow_name}/{expected.name}"
        assert (read.entrypoint, read.tags, read.work_pool) == (
            expected.entrypoint,
            expected.tags,
            expected.work_pool.name,
        )
        assert read.description == expected.description
        limit = expected.concurrency_limit
        assert read.concurrency_limit == (limit.model_dump(exclude_none=True) if limit else None)
    # The names other modules import are prefect.yaml's.
    pools = prefect_yaml["definitions"]["work_pools"]
    assert (pools["process"]["name"], pools["docker"]["name"]) == (PROCESS_POOL, DOCKER_POOL)
    assert (TRAINING, NIGHTLY_SCORING, NIGHTLY_SCORING_DOCKER) == (
        "train/on-demand",
        "score/nightly",
        "score/nightly-docker",
    )
    with pytest.raises(KeyError, match="no deployment 'weekly'"):
        project.deployment("weekly")


def test_a_folder_without_prefect_yaml_is_refused(tmp_path: Path) -> None:
    from flows.serve import build_deployments

    with pytest.raises(FileNotFoundError):
        read_project(tmp_path)
    with pytest.raises(FileNotFoundError):
        build_deployments(NightlySchedule("0 2 * * *", "UTC"), project_dir=tmp_path)


def test_runs_start_in_the_project_folder_named_by_the_worker(
    prefect_yaml: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [step] = prefect_yaml["pull"]
    [(function_name, inputs)] = step.items()
    assert function_name == "flows.deploy.enter_project_folder"
    assert inputs == {"directory": "{{ $REVIEW_SCORING_PROJECT_DIR }}"}
    # Resolved as a flow run resolves it, with the variable its worker passes on, then run.
    from prefect.utilities.importtools import import_object

    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True)
    (project / "prefect.yaml").write_text("name: review-scoring\n")
    (project / "flows" / "scoring.py").write_text("")
    resolved = _resolved(inputs, {"REVIEW_SCORING_PROJECT_DIR": str(project)}, monkeypatch)
    monkeypatch.chdir(REPO)
    outputs = import_object(function_name)(**resolved)
    assert Path.cwd() == project and outputs["directory"] == str(project)


def test_training_runs_on_demand_in_the_process_pool(prefect_yaml: dict[str, Any]) -> None:
    training = _deployment(prefect_yaml, TRAINING)
    assert training["entrypoint"] == "flows/training.py:train_flow"
    assert not training.get("schedules") and not training.get("schedule")
    assert training["work_pool"]["name"] == PROCESS_POOL
    # Only where the version goes is pinned (`make deploy`'s settings); the run form (drawn
    # from TrainParams) sets the rest.
    assert set(training["parameters"]["params"]) == {"model_store_root", "model_name"}


@pytest.mark.parametrize(
    ("environment", "cron", "timezone"),
    [
        ({}, "0 2 * * *", "UTC"),
        ({"REVIEW_SCORING_SCHEDULE_TIMEZONE": "Europe/Paris"}, "0 2 * * *", "Europe/Paris"),
        ({"REVIEW_SCORING_SCHEDULE_CRON": "30 3 * * 1-5"}, "30 3 * * 1-5", "UTC"),
    ],
)
def test_scoring_runs_nightly_in_a_time_zone_that_can_be_set(
    prefect_yaml: dict[str, Any],
    environment: dict[str, str],
    cron: str,
    timezone: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.client.schemas.schedules import CronSchedule

    schedule = nightly_schedule(environment)
    assert schedule == NightlySchedule(cron=cron, timezone=timezone)
    # flows.deploy puts the schedule and the pinned settings into the environment of
    # `prefect deploy`.
    filled = deploy_values(schedule, REPO)
    for full_name, active in ((NIGHTLY_SCORING, True), (NIGHTLY_SCORING_DOCKER, False)):
        schedules = _deployment(prefect_yaml, full_name)["schedules"]
        # Its runs read their scheduled date in the schedule's zone.
        parameters = _resolved(
            _deployment(prefect_yaml, full_name)["parameters"], filled, monkeypatch
        )
        assert parameters["params"]["timezone"] == timezone
        [configured] = _resolved(schedules, filled, monkeypatch)
        assert configured.get("active", True) is active, full_name
        assert CronSchedule(cron=configured["cron"], timezone=configured["timezone"]) == (
            CronSchedule(cron=cron, timezone=timezone)
        )


def test_default_schedule_is_two_in_the_morning_utc() -> None:
    assert read_project(REPO).default_schedule == NightlySchedule("0 2 * * *", "UTC")
    assert nightly_schedule({}) == NightlySchedule("0 2 * * *", "UTC")


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"REVIEW_SCORING_SCHEDULE_TIMEZONE": "Mars/Olympus"}, "Invalid timezone"),
        ({"REVIEW_SCORING_SCHEDULE_CRON": "every night"}, "Invalid cron"),
    ],
)
def test_a_bad_schedule_is_refused_before_deploying(
    environment: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        nightly_schedule(environment)


def test_scoring_is_one_run_at_a_time_and_cancels_the_newcomer(
    prefect_yaml: dict[str, Any],
) -> None:
    for full_name in (NIGHTLY_SCORING, NIGHTLY_SCORING_DOCKER):
        scoring = _deployment(prefect_yaml, full_name)
        assert scoring["entrypoint"] == "flows/scoring.py:score_flow"
        assert scoring["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert _deployment(prefect_yaml, NIGHTLY_SCORING)["work_pool"]["name"] == PROCESS_POOL


def test_docker_deployment_uses_the_image_and_its_volumes(prefect_yaml: dict[str, Any]) -> None:
    docker = _deployment(prefect_yaml, NIGHTLY_SCORING_DOCKER)
    assert docker["work_pool"]["name"] == DOCKER_POOL
    job_variables = docker["work_pool"]["job_variables"]
    assert job_variables["image"] == "review-scoring:latest"
    mounted = {volume.split(":")[1] for volume in job_variables["volumes"]}
    # The folders the Dockerfile declares as volumes.
    dockerfile = (REPO / "Dockerfile").read_text()
    for folder in mounted:
        assert folder in dockerfile
    assert mounted == {"/opt/review-scoring/models", "/opt/review-scoring/data"}


def test_serve_builds_the_same_deployments_as_prefect_yaml(prefect_yaml: dict[str, Any]) -> None:
    from flows.serve import build_deployments

    schedule = NightlySchedule(cron="15 1 * * *", timezone="Asia/Tokyo")
    training, scoring = build_deployments(schedule)
    values = deploy_values(schedule, REPO)
    for served, full_name in ((training, TRAINING), (scoring, NIGHTLY_SCORING)):
        configured = _deployment(prefect_yaml, full_name)
        assert f"{served.flow_name}/{served.name}" == full_name
        assert served.entrypoint == configured["entrypoint"]
        assert served.tags == configured["tags"]
        description = " ".join(configured["description"].split())
        for name, value in values.items():
            description = description.replace(f"{{{{ ${name} }}}}", value)
        assert served.description == description and "{{" not in description
    assert "nightly at 01:15 Asia/Tokyo" in scoring.description
    assert training.schedules in (None, [])
    store = values["REVIEW_SCORING_MODEL_STORE_ROOT"]
    assert training.parameters == {
        "params": {"model_store_root": store, "model_name": values["REVIEW_SCORING_MODEL_NAME"]}
    }
    assert scoring.parameters["params"]["timezone"] == "Asia/Tokyo"
    assert scoring.parameters["params"]["input_path"] == values["REVIEW_SCORING_INPUT_DIR"]
    [served_schedule] = scoring.schedules
    assert served_schedule.active
    assert served_schedule.schedule.cron == "15 1 * * *"
    assert served_schedule.schedule.timezone == "Asia/Tokyo"
    configured_limit = _deployment(prefect_yaml, NIGHTLY_SCORING)["concurrency_limit"]
    assert scoring.concurrency_limit == configured_limit["limit"]
    assert (
        scoring.concurrency_options.collision_strategy.value
        == (configured_limit["collision_strategy"])
    )


def test_serve_keeps_the_schedule_on_when_it_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.serve import main

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setenv("REVIEW_SCORING_SCHEDULE_TIMEZONE", "Europe/Berlin")
    assert main([], serve_function=lambda *args, **kwargs: calls.append((args, kwargs))) == 0
    [(deployments, options)] = calls
    assert options["pause_on_shutdown"] is False
    assert [deployment.name for deployment in deployments] == ["on-demand", "nightly"]
    assert deployments[1].schedules[0].schedule.timezone == "Europe/Berlin"


def test_serve_refuses_a_bad_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.serve import main

    monkeypatch.setenv("REVIEW_SCORING_SCHEDULE_TIMEZONE", "Nowhere/Special")
    assert main([], serve_function=lambda *args, **kwargs: pytest.fail("served anyway")) == 2


def test_deploy_refuses_to_run_without_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PREFECT_API_URL, `prefect deploy` would fill a throw-away ephemeral server."""
    import prefect.settings

    from flows.deploy import main

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with prefect.settings.temporary_settings(restore_defaults={prefect.settings.PREFECT_API_URL}):
        assert main(["--project-dir", str(REPO)]) == 2


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (
            "server",
            ["server start", "PREFECT_SERVER_API_HOST=127.0.0.1", "PREFECT_SERVER_API_PORT=4200"],
        ),
        ("deploy", ["PREFECT_API_URL=http://127.0.0.1:4200/api", "python -m flows.deploy"]),
        (
            "worker",
            [
                "PREFECT_API_URL=http://127.0.0.1:4200/api",
                f"REVIEW_SCORING_PROJECT_DIR={REPO}",
                f"prefect worker start --pool {PROCESS_POOL} --type process",
            ],
        ),
        ("serve", ["python -m flows.serve"]),
    ],
)
def test_make_targets_run_what_the_readme_says(target: str, expected: list[str]) -> None:
    # Nothing from the caller: no PREFECT_API_URL, REVIEW_SCORING_* or MAKEFLAGS of `make test`.
    environment = {"PATH": os.environ["PATH"]}
    # -n prints the commands without running them; -o keeps the venv from being rebuilt.
    result = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", target],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    printed = " ".join(result.stdout.replace("\\\n", " ").split())
    for fragment in expected:
        assert fragment in printed, (fragment, printed)


def test_deploy_says_when_the_server_is_down(capsys: pytest.CaptureFixture[str]) -> None:
    import prefect.settings

    from flows.deploy import main
    from testkit.servers import free_port

    api_url = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    with prefect.settings.temporary_settings({prefect.settings.PREFECT_API_URL: api_url}):
        assert main(["--project-dir", str(REPO)]) == 1
    assert f"cannot reach the Prefect server at {api_url}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("cron", "timezone", "words"),
    [
        ("0 2 * * *", "Europe/Paris", "nightly at 02:00 Europe/Paris"),
        ("30 23 * * *", "UTC", "nightly at 23:30 UTC"),
        ("5 14 * * *", "Asia/Tokyo", "every day at 14:05 Asia/Tokyo"),
        ("*/15 * * * *", "UTC", "on the cron schedule '*/15 * * * *' in UTC"),
        ("0 2 * * 1", "America/New_York", "on the cron schedule '0 2 * * 1' in America/New_York"),
    ],
)
def test_the_schedule_reads_in_words_with_its_zone(cron: str, timezone: str, words: str) -> None:
    """Issue 24, item 1: the UI shows the next run in the browser's zone, unlabelled."""
    assert schedule_in_words(NightlySchedule(cron, timezone)) == words


def test_the_pinned_settings_are_where_the_runs_read_and_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 24, item 6: relative paths made absolute from the project folder (where runs
    start), object storage URIs as they are."""
    from flows.scoring import ScoreParams

    monkeypatch.setenv("REVIEW_SCORING_INPUT_DIR", "s3://reviews/landing")
    monkeypatch.setenv("REVIEW_SCORING_OUTPUT_DIR", "out/predictions")
    monkeypatch.delenv("REVIEW_SCORING_MODEL_STORE_ROOT", raising=False)
    monkeypatch.setenv("REVIEW_SCORING_MODEL_NAME", "reviews-en")
    (tmp_path / "prefect.yaml").write_text((REPO / "prefect.yaml").read_text())
    values = deploy_values(NightlySchedule("0 2 * * *", "UTC"), tmp_path)
    assert values["REVIEW_SCORING_INPUT_DIR"] == "s3://reviews/landing"
    assert values["REVIEW_SCORING_OUTPUT_DIR"] == str(tmp_path.resolve() / "out/predictions")
    assert values["REVIEW_SCORING_MODEL_STORE_ROOT"] == str(tmp_path.resolve() / "models")
    assert values["REVIEW_SCORING_MODEL_NAME"] == "reviews-en"
    assert values["REVIEW_SCORING_SCHEDULE_IN_WORDS"] == "nightly at 02:00 UTC"
    # The deployment page's readable list: every parameter, one a row, with its value.
    nightly = values["REVIEW_SCORING_PARAMETERS_NIGHTLY"].splitlines()
    assert "| input_path | `s3://reviews/landing` |" in "\n".join(nightly)
    assert "| partition | unset |" in "\n".join(nightly)
    assert len([row for row in nightly if row.startswith("| ")]) == 1 + len(
        ScoreParams.model_fields
    )


def test_every_parameter_description_is_plain_text() -> None:
    """Issue 24, item 5: the UI's form renders descriptions as markup, so `<output root>` or
    backticks would vanish from what the operator reads."""
    from flows.scoring import ScoreParams
    from flows.training import TrainParams

    for model in (ScoreParams, TrainParams):
        for name, field in model.model_json_schema()["properties"].items():
            description = field.get("description", "")
            assert description, f"{model.__name__}.{name} has no description"
            assert not set(description) & set("<>`*[]"), (name, description)
