"""`make deploy`: the work pools, the deployments of prefect.yaml, and the alerts (flows/alerts.py).

Run against a server: `PREFECT_API_URL=http://127.0.0.1:4200/api python -m flows.deploy`.
Every step can be repeated: existing pools are kept, deployments are updated in place, and the
alert is replaced rather than duplicated.

prefect.yaml is the one source of the deployments' names, tags, work pools, schedule defaults and
concurrency limits: `read_project` reads them (flows/serve.py serves from the same reading).
The names PROCESS_POOL, DOCKER_POOL (pool names), TRAINING, NIGHTLY_SCORING and
NIGHTLY_SCORING_DOCKER (`flow/deployment` names) can be imported from here: they are read from
prefect.yaml when first asked for, never at import.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import httpx

from flows.alerts import WEBHOOK_VARIABLE, AlertWindows, alert_windows, create_alerts

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.client.orchestration import PrefectClient
    from pydantic import BaseModel

    from flows.settings import Settings
    from storage import UserError

__all__ = [
    "PROJECT_DIR",
    "DeploymentConfig",
    "NightlySchedule",
    "Project",
    "deploy_from_prefect_yaml",
    "deploy_values",
    "ensure_work_pools",
    "enter_project_folder",
    "main",
    "nightly_schedule",
    "read_project",
    "schedule_in_words",
]

# The checkout holding prefect.yaml (the image keeps the same layout under /opt/review-scoring).
PROJECT_DIR = Path(__file__).resolve().parent.parent
# prefect.yaml's names of the deployments the code refers to; everything else about them is there.
_TRAINING_DEPLOYMENT = "on-demand"
_ALERTED_DEPLOYMENT = "nightly"
_DOCKER_DEPLOYMENT = "nightly-docker"

PROJECT_DIR_VARIABLE = "REVIEW_SCORING_PROJECT_DIR"
CRON_VARIABLE = "REVIEW_SCORING_SCHEDULE_CRON"
TIMEZONE_VARIABLE = "REVIEW_SCORING_SCHEDULE_TIMEZONE"
# The schedule in words ("nightly at 02:00 Europe/Paris") for the nightly deployment's description.
IN_WORDS_VARIABLE = "REVIEW_SCORING_SCHEDULE_IN_WORDS"
# The settings prefect.yaml pins in the process deployments' parameters, as `make deploy` reads
# them: the run form and the deployment page show where a run reads and writes.
PINNED_SETTINGS = {
    "REVIEW_SCORING_INPUT_DIR": "input_dir",
    "REVIEW_SCORING_OUTPUT_DIR": "output_dir",
    "REVIEW_SCORING_MODEL_STORE_ROOT": "model_store_root",
    "REVIEW_SCORING_MODEL_NAME": "model_name",
}
# What each type of work pool in prefect.yaml is for, said in the pool's description.
POOL_DESCRIPTIONS = {
    "process": "Runs the review-scoring flows as local processes",
    "docker": "Runs the review-scoring flows in containers of its image",
}


@dataclass(frozen=True)
class NightlySchedule:
    """When the nightly scoring runs: a cron expression read in an IANA time zone."""

    cron: str
    timezone: str


@dataclass(frozen=True)
class DeploymentConfig:
    """One deployment of prefect.yaml, as written there (schedule placeholders unfilled)."""

    name: str
    entrypoint: str
    description: str
    tags: list[str]
    work_pool: str
    schedules: list[dict[str, Any]] = field(default_factory=list)
    concurrency_limit: dict[str, Any] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    def filled(self, values: Mapping[str, str]) -> DeploymentConfig:
        """This deployment with the placeholders of its description and parameters filled in
        from `values` (deploy_values), as `prefect deploy` fills them from the environment
        flows.deploy gives it."""

        def fill(value: Any) -> Any:
            if isinstance(value, dict):
                return {key: fill(item) for key, item in value.items()}
            if isinstance(value, str):
                for name, text in values.items():
                    value = value.replace(f"{{{{ ${name} }}}}", text)
            return value

        return replace(self, description=fill(self.description), parameters=fill(self.parameters))

    def params_model(self) -> type[BaseModel]:
        """The pydantic model of the flow's one `params` argument (ScoreParams, TrainParams)."""
        import inspect

        default = inspect.signature(self.load_flow().fn).parameters["params"].default
        return type(default)

    def load_flow(self) -> Flow[..., Any]:
        """The flow of the entrypoint (`flows/scoring.py:score_flow`), imported as a module."""
        path, function = self.entrypoint.split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        return getattr(module, function)

    @property
    def full_name(self) -> str:
        """`<flow name>/<deployment name>`, as the API and `prefect deployment run` name it."""
        return f"{self.load_flow().name}/{self.name}"


@dataclass(frozen=True)
class Project:
    """What prefect.yaml declares: its deployments, work pools and schedule defaults."""

    deployments: list[DeploymentConfig]
    work_pools: dict[str, str]  # pool type -> pool name
    default_schedule: NightlySchedule

    def deployment(self, name: str) -> DeploymentConfig:
        """The deployment of that name; KeyError naming the ones there are."""
        for deployment in self.deployments:
            if deployment.name == name:
                return deployment
        known = ", ".join(deployment.name for deployment in self.deployments)
        raise KeyError(f"prefect.yaml has no deployment {name!r} (it has {known})")


def is_project_folder(folder: Path) -> bool:
    """Whether `folder` holds the project: prefect.yaml and the flows its entrypoints name."""
    return (folder / "prefect.yaml").is_file() and (folder / "flows" / "scoring.py").is_file()


def enter_project_folder(directory: str = "") -> dict[str, str]:
    """prefect.yaml's pull step: each deployment run starts in the project folder, since the
    entrypoints (flows/scoring.py:score_flow) are paths in it. `directory` is the worker's
    REVIEW_SCORING_PROJECT_DIR (its placeholder, unresolved, when the variable is unset); without
    it, the checkout this code was installed from. Anywhere else, the run ends Failed with one
    line that says where the worker must run, instead of a traceback."""
    named = "" if directory.startswith("{{") else directory.strip()
    folder = Path(named).expanduser() if named else PROJECT_DIR
    if is_project_folder(folder):
        os.chdir(folder)
        return {"directory": str(folder.resolve())}
    from storage import NotAFolderError

    where = (
        f"{PROJECT_DIR_VARIABLE}={named}, which"
        if named
        else f"{PROJECT_DIR_VARIABLE} is not set and {folder} (where this worker's code is)"
    )
    error = NotAFolderError(
        f"a review-scoring flow run starts in the project folder (the one holding prefect.yaml "
        f"and flows/), but {where} is not one: start the worker in the project folder with "
        f"`make worker`, or set {PROJECT_DIR_VARIABLE} to that folder in the worker's environment"
    )
    _fail_this_flow_run(error)
    raise error


def _fail_this_flow_run(error: UserError) -> None:
    """End the flow run this process was started for Failed with `error` (its worker then
    leaves it so, rather than reporting a crash, and Prefect's log of the error is dropped);
    nothing outside a run's process."""
    from tasks.failures import fail_run

    message = fail_run(error, str(error)).message
    flow_run_id = os.environ.get("PREFECT__FLOW_RUN_ID")
    if not flow_run_id:
        return
    from prefect.client.orchestration import get_client
    from prefect.states import Failed

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(flow_run_id), Failed(message=message), force=True)


def read_project(project_dir: Path = PROJECT_DIR) -> Project:
    """Read prefect.yaml in `project_dir`; FileNotFoundError when there is none."""
    import yaml

    config = yaml.safe_load((Path(project_dir) / "prefect.yaml").read_text(encoding="utf-8"))
    definitions = config["definitions"]
    deployments = [
        DeploymentConfig(
            name=item["name"],
            entrypoint=item["entrypoint"],
            description=" ".join(item.get("description", "").split()),
            tags=list(item.get("tags", [])),
            work_pool=item["work_pool"]["name"],
            schedules=list(item.get("schedules") or []),
            concurrency_limit=item.get("concurrency_limit"),
            parameters=dict(item.get("parameters") or {}),
        )
        for item in config["deployments"]
    ]
    return Project(
        deployments=deployments,
        work_pools={kind: pool["name"] for kind, pool in definitions["work_pools"].items()},
        default_schedule=NightlySchedule(**definitions["schedule_defaults"]),
    )


# The names other modules import, each read from prefect.yaml when first asked for.
_FROM_PREFECT_YAML: dict[str, Callable[[Project], str]] = {
    "PROCESS_POOL": lambda project: project.work_pools["process"],
    "DOCKER_POOL": lambda project: project.work_pools["docker"],
    "TRAINING": lambda project: project.deployment(_TRAINING_DEPLOYMENT).full_name,
    "NIGHTLY_SCORING": lambda project: project.deployment(_ALERTED_DEPLOYMENT).full_name,
    "NIGHTLY_SCORING_DOCKER": lambda project: project.deployment(_DOCKER_DEPLOYMENT).full_name,
}


def __getattr__(name: str) -> str:
    if name in _FROM_PREFECT_YAML:
        return _FROM_PREFECT_YAML[name](read_project())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def schedule_in_words(schedule: NightlySchedule) -> str:
    """'nightly at 02:00 Europe/Paris' for a daily cron; the cron itself with its zone otherwise.
    The UI shows a schedule's time in the browser's zone without saying so; this says the zone."""
    fields = schedule.cron.split()
    if len(fields) == 5 and fields[0].isdigit() and fields[1].isdigit() and fields[2:] == ["*"] * 3:
        hour, minute = int(fields[1]), int(fields[0])
        when = "nightly" if hour < 6 or hour >= 20 else "every day"
        return f"{when} at {hour:02d}:{minute:02d} {schedule.timezone}"
    return f"on the cron schedule '{schedule.cron}' in {schedule.timezone}"


def deploy_values(
    schedule: NightlySchedule, project_dir: Path = PROJECT_DIR, settings: Settings | None = None
) -> dict[str, str]:
    """The values of prefect.yaml's placeholders: the schedule, in cron and in words, and the
    settings pinned in the deployments' parameters. A relative path is made absolute from the
    project folder, where every run starts; an object storage URI is kept as it is."""
    from flows.settings import get_settings

    settings = settings or get_settings()
    values = {
        CRON_VARIABLE: schedule.cron,
        TIMEZONE_VARIABLE: schedule.timezone,
        IN_WORDS_VARIABLE: schedule_in_words(schedule),
    }
    for variable, name in PINNED_SETTINGS.items():
        value = str(getattr(settings, name))
        if name != "model_name" and "://" not in value:
            value = str((Path(project_dir) / value).resolve())
        values[variable] = value
    for deployment in read_project(project_dir).deployments:
        filled = deployment.filled(values)
        values[parameters_variable(deployment.name)] = parameters_table(
            filled.params_model(), filled.parameters.get("params") or {}
        )
    return values


def parameters_variable(deployment_name: str) -> str:
    """The placeholder of a deployment's parameter table: REVIEW_SCORING_PARAMETERS_NIGHTLY."""
    return "REVIEW_SCORING_PARAMETERS_" + deployment_name.upper().replace("-", "_")


def parameters_table(model: type[BaseModel], given: Mapping[str, Any]) -> str:
    """Every parameter of a deployment's runs, one a row, with the value they use (the
    deployment's, else the default): the deployment page's readable list (the Parameters tab
    shows the one `params` argument as a line of JSON, cut at its column). What each one is, the
    run form says."""
    values = model.model_validate(dict(given)).model_dump(mode="json")
    rows = ["", "", "| parameter | this deployment's runs use |", "|---|---|"]
    for name, value in values.items():
        shown = (
            "unset"
            if value is None
            else f"`{value if isinstance(value, str) else json.dumps(value)}`"
        )
        rows.append(f"| {name} | {shown} |")
    return "\n".join(rows)


def nightly_schedule(
    environ: Mapping[str, str] | None = None, project_dir: Path = PROJECT_DIR
) -> NightlySchedule:
    """The nightly schedule from the environment, prefect.yaml's defaults (02:00 UTC) otherwise;
    checked before use: ValueError naming the variables."""
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    environ = os.environ if environ is None else environ
    defaults = read_project(project_dir).default_schedule
    cron = environ.get(CRON_VARIABLE, "").strip() or defaults.cron
    timezone = environ.get(TIMEZONE_VARIABLE, "").strip() or defaults.timezone
    try:
        CronSchedule(cron=cron, timezone=timezone)
    except ValidationError as error:
        problems = "; ".join(problem["msg"] for problem in error.errors())
        raise ValueError(
            f"{CRON_VARIABLE}={cron!r} / {TIMEZONE_VARIABLE}={timezone!r}: {problems}"
        ) from None
    return NightlySchedule(cron=cron, timezone=timezone)


async def ensure_work_pools(client: PrefectClient, work_pools: Mapping[str, str]) -> list[str]:
    """Create the work pools (type -> name, as read_project gives them) that are missing;
    returns the names created. A Docker pool needs no Docker engine to exist: only its workers do.
    """
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.utilities import get_default_base_job_template_for_infrastructure_type

    created = []
    for pool_type, name in work_pools.items():
        try:
            await client.read_work_pool(name)
            continue
        except ObjectNotFound:
            pass
        template = await get_default_base_job_template_for_infrastructure_type(pool_type)
        if template is None:
            raise RuntimeError(f"the Prefect server knows no {pool_type!r} work pool type")
        try:
            await client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type=pool_type,
                    base_job_template=template,
                    description=POOL_DESCRIPTIONS.get(pool_type),
                )
            )
        except ObjectAlreadyExists:
            continue  # a worker started at the same time created it first: same pool
        created.append(name)
    return created


def deploy_from_prefect_yaml(
    project_dir: Path, values: Mapping[str, str], names: Sequence[str]
) -> None:
    """`prefect deploy` of the named deployments of the project's prefect.yaml, with its
    placeholders filled in from `values` (deploy_values)."""
    environment = {**os.environ, **values, "PREFECT_CLI_PROMPT": "false"}
    command = [sys.executable, "-m", "prefect", "deploy", "--no-prompt"]
    for name in names:
        command += ["--name", name]
    subprocess.run(command, cwd=project_dir, env=environment, check=True)


async def _ensure_work_pools(work_pools: Mapping[str, str]) -> list[str]:
    from prefect import get_client

    async with get_client() as client:
        return await ensure_work_pools(client, work_pools)


async def _create_alerts(
    webhook_url: str, deployment_name: str, windows: AlertWindows
) -> dict[str, UUID]:
    from prefect import get_client

    async with get_client() as client:
        return await create_alerts(client, webhook_url, deployment_name, windows)


def _name_upcoming_runs(full_names: Sequence[str]) -> int:
    """Plan and name the deployments' next runs now (flows/run_names.py), rather than leave the
    scheduler's random names in the Upcoming tab until the first night."""
    from prefect.client.orchestration import get_client

    from flows.run_names import name_upcoming_runs

    with get_client(sync_client=True) as client:
        return sum(
            len(name_upcoming_runs(client, client.read_deployment_by_name(full_name).id))
            for full_name in full_names
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Create the work pools, deploy prefect.yaml, and add the alert when its URL is set."""
    parser = argparse.ArgumentParser(prog="python -m flows.deploy", description=main.__doc__)
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=Path.cwd(),
        help="Folder with prefect.yaml (default: the current one)",
    )
    parser.add_argument(
        "--with-docker",
        action="store_true",
        help="Also create the Docker work pool and the nightly-docker deployment (`make deploy "
        "DOCKER=yes`); without it nobody who runs no Docker worker sees a pool that is never ready",
    )
    args = parser.parse_args(argv)
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        # Without it Prefect would deploy to a throw-away ephemeral server.
        print(
            "error: PREFECT_API_URL is not set; start `make server` and use `make deploy`, "
            "or point PREFECT_API_URL at your server",
            file=sys.stderr,
        )
        return 2
    try:
        project = read_project(args.project_dir)
        schedule = nightly_schedule(project_dir=args.project_dir)
        windows = alert_windows(schedule.cron, schedule.timezone)
        values = deploy_values(schedule, args.project_dir)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    docker_pool = project.work_pools["docker"]
    deployments = [
        deployment
        for deployment in project.deployments
        if args.with_docker or deployment.work_pool != docker_pool
    ]
    used_pools = {deployment.work_pool for deployment in deployments}
    work_pools = {kind: name for kind, name in project.work_pools.items() if name in used_pools}

    api_url = get_current_settings().api.url
    try:
        created = asyncio.run(_ensure_work_pools(work_pools))
    except httpx.HTTPError as error:
        print(f"error: cannot reach the Prefect server at {api_url}: {error}", file=sys.stderr)
        return 1
    pools = ", ".join(work_pools.values())
    print(f"work pools {pools}: created {', '.join(created) or 'none'}")
    try:
        deploy_from_prefect_yaml(
            args.project_dir, values, [deployment.name for deployment in deployments]
        )
    except subprocess.CalledProcessError as error:
        print(f"error: prefect deploy failed with status {error.returncode}", file=sys.stderr)
        return 1
    nightly = project.deployment(_ALERTED_DEPLOYMENT).full_name
    print(f"{nightly}: {values[IN_WORDS_VARIABLE]} (cron {schedule.cron!r})")
    named = _name_upcoming_runs([deployment.full_name for deployment in deployments])
    print(f"upcoming runs named: {named}")

    webhook_url = os.environ.get(WEBHOOK_VARIABLE, "").strip()
    created = asyncio.run(_create_alerts(webhook_url, nightly, windows))
    for name, automation_id in created.items():
        print(f"automation {name!r} ({automation_id})")
    if not webhook_url:
        print(f"alerts: {WEBHOOK_VARIABLE} is not set, so nothing calls a webhook")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
