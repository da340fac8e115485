"""`make deploy`: the work pools, the deployments of prefect.yaml, and the failed-scoring alert.

Run against a server: `PREFECT_API_URL=http://127.0.0.1:4200/api python -m flows.deploy`.
Every step can be repeated: existing pools are kept, deployments are updated in place, and the
alert is replaced rather than duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

import httpx

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

__all__ = [
    "ALERT_NAME",
    "DEFAULT_CRON",
    "DEFAULT_TIMEZONE",
    "DOCKER_POOL",
    "NIGHTLY_SCORING",
    "NIGHTLY_SCORING_DOCKER",
    "PROCESS_POOL",
    "TRAINING",
    "NightlySchedule",
    "create_failure_alert",
    "deploy_from_prefect_yaml",
    "ensure_work_pools",
    "main",
    "nightly_schedule",
]

# Names shared by prefect.yaml, flows/serve.py, the Makefile and the README.
PROCESS_POOL = "review-scoring"
DOCKER_POOL = "review-scoring-docker"
TRAINING = "train/on-demand"
NIGHTLY_SCORING = "score/nightly"
NIGHTLY_SCORING_DOCKER = "score/nightly-docker"

CRON_VARIABLE = "REVIEW_SCORING_SCHEDULE_CRON"
TIMEZONE_VARIABLE = "REVIEW_SCORING_SCHEDULE_TIMEZONE"
WEBHOOK_VARIABLE = "REVIEW_SCORING_ALERT_WEBHOOK_URL"
DEFAULT_CRON = "0 2 * * *"
DEFAULT_TIMEZONE = "UTC"

ALERT_NAME = "review-scoring: nightly scoring failed"
WEBHOOK_BLOCK_NAME = "review-scoring-scoring-failed"
# Rendered by the server with the failed run in context; tojson keeps quotes in messages valid.
ALERT_PAYLOAD = """{
  "text": {{ ("Scoring run " ~ flow_run.name ~ " of " ~ deployment.name ~ " ended "
              ~ flow_run.state.name ~ ": " ~ flow_run.state.message)|tojson }},
  "flow_run_id": {{ flow_run.id|string|tojson }},
  "flow_run_name": {{ flow_run.name|tojson }},
  "deployment": {{ deployment.name|tojson }},
  "state": {{ flow_run.state.name|tojson }},
  "message": {{ flow_run.state.message|tojson }},
  "url": {{ flow_run|ui_url|tojson }}
}"""


@dataclass(frozen=True)
class NightlySchedule:
    """When the nightly scoring runs: a cron expression read in an IANA time zone."""

    cron: str
    timezone: str


def nightly_schedule(environ: Mapping[str, str] | None = None) -> NightlySchedule:
    """The nightly schedule from the environment, 02:00 UTC by default, checked before use."""
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    environ = os.environ if environ is None else environ
    cron = environ.get(CRON_VARIABLE, "").strip() or DEFAULT_CRON
    timezone = environ.get(TIMEZONE_VARIABLE, "").strip() or DEFAULT_TIMEZONE
    try:
        CronSchedule(cron=cron, timezone=timezone)
    except ValidationError as error:
        problems = "; ".join(problem["msg"] for problem in error.errors())
        raise ValueError(
            f"{CRON_VARIABLE}={cron!r} / {TIMEZONE_VARIABLE}={timezone!r}: {problems}"
        ) from None
    return NightlySchedule(cron=cron, timezone=timezone)


async def ensure_work_pools(client: PrefectClient) -> list[str]:
    """Create the process pool and the Docker pool when missing; returns the names created.

    A Docker pool needs no Docker engine to exist: only its workers do.
    """
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.utilities import get_default_base_job_template_for_infrastructure_type

    wanted = {
        PROCESS_POOL: ("process", "Runs the review-scoring flows as local processes"),
        DOCKER_POOL: ("docker", "Runs the review-scoring flows in containers of its image"),
    }
    created = []
    for name, (pool_type, description) in wanted.items():
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
                    name=name, type=pool_type, base_job_template=template, description=description
                )
            )
        except ObjectAlreadyExists:
            continue  # a worker started at the same time created it first: same pool
        created.append(name)
    return created


def deploy_from_prefect_yaml(project_dir: Path, schedule: NightlySchedule) -> None:
    """`prefect deploy --all` on the project's prefect.yaml, with the schedule filled in."""
    environment = {
        **os.environ,
        CRON_VARIABLE: schedule.cron,
        TIMEZONE_VARIABLE: schedule.timezone,
        "PREFECT_CLI_PROMPT": "false",
    }
    command = [sys.executable, "-m", "prefect", "deploy", "--all", "--no-prompt"]
    subprocess.run(command, cwd=project_dir, env=environment, check=True)


async def create_failure_alert(client: PrefectClient, webhook_url: str) -> UUID:
    """An automation that POSTs to the webhook when a nightly scoring run fails or crashes.

    The URL goes into a Webhook block (stored as a secret); an automation of the same name is
    replaced, so deploying again never sends two alerts.
    """
    from prefect.automations import AutomationCore, CallWebhook, EventTrigger, Posture
    from prefect.blocks.webhook import Webhook

    deployment = await client.read_deployment_by_name(NIGHTLY_SCORING)
    block = Webhook(method="POST", url=webhook_url, headers={"Content-Type": "application/json"})
    block_id = await block.asave(WEBHOOK_BLOCK_NAME, overwrite=True, client=client)
    for existing in await client.read_automations_by_name(ALERT_NAME):
        await client.delete_automation(existing.id)
    automation = AutomationCore(
        name=ALERT_NAME,
        description=f"POST to the {WEBHOOK_BLOCK_NAME!r} webhook when {NIGHTLY_SCORING} fails",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.id": f"prefect.deployment.{deployment.id}"},
            for_each={"prefect.resource.id"},
            posture=Posture.Reactive,
            threshold=1,
            within=0,
        ),
        actions=[CallWebhook(block_document_id=block_id, payload=ALERT_PAYLOAD)],
    )
    return await client.create_automation(automation)


async def _ensure_work_pools() -> list[str]:
    from prefect import get_client

    async with get_client() as client:
        return await ensure_work_pools(client)


async def _create_failure_alert(webhook_url: str) -> UUID:
    from prefect import get_client

    async with get_client() as client:
        return await create_failure_alert(client, webhook_url)


def main(argv: Sequence[str] | None = None) -> int:
    """Create the work pools, deploy prefect.yaml, and add the alert when its URL is set."""
    parser = argparse.ArgumentParser(prog="python -m flows.deploy", description=main.__doc__)
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=Path.cwd(),
        help="Folder with prefect.yaml (default: the current one)",
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
        schedule = nightly_schedule()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    api_url = get_current_settings().api.url
    try:
        created = asyncio.run(_ensure_work_pools())
    except httpx.HTTPError as error:
        print(f"error: cannot reach the Prefect server at {api_url}: {error}", file=sys.stderr)
        return 1
    print(f"work pools {PROCESS_POOL}, {DOCKER_POOL}: created {', '.join(created) or 'none'}")
    try:
        deploy_from_prefect_yaml(args.project_dir, schedule)
    except subprocess.CalledProcessError as error:
        print(f"error: prefect deploy failed with status {error.returncode}", file=sys.stderr)
        return 1
    print(f"{NIGHTLY_SCORING}: cron {schedule.cron!r} in {schedule.timezone}")

    webhook_url = os.environ.get(WEBHOOK_VARIABLE, "").strip()
    if webhook_url:
        automation_id = asyncio.run(_create_failure_alert(webhook_url))
        print(f"alert: automation {ALERT_NAME!r} ({automation_id}) calls the webhook")
    else:
        print(f"alert: {WEBHOOK_VARIABLE} is not set, so no failure alert was created")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
