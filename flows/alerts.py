"""The automations `make deploy` creates so that no night ends badly in silence.

- **bad endings**: a nightly run that ends Failed, Crashed, Cancelled (the concurrency limit's
  included) or TimedOut POSTs to the webhook, with the run's page and the reason.
- **lost runs**: a run of the project that stops sending heartbeats (its host or process is gone)
  is set Crashed; the bad-endings alert then fires for it and the next night starts as usual.
  Runs send one every `HEARTBEAT_SECONDS` (prefect.yaml sets PREFECT_FLOWS_HEARTBEAT_FREQUENCY in
  the deployments' job variables).
- **drift**: a nightly run whose scores drifted from the version's held-out predictions (its
  `review-scoring.drift.detected` event) POSTs to the webhook, with the PSI and the rows judged.
- **absence**: no nightly run Completed within a window (one schedule interval plus a grace,
  or REVIEW_SCORING_ALERT_NO_SUCCESS_SECONDS) alerts, whatever the cause: worker down, pool
  paused, a run stuck before it started.

Each automation of the same name is replaced, so deploying again never sends two alerts. Their
triggers keep the shape the Prefect UI describes in words ("When any flow run ... enters ...").
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING
from uuid import UUID

from tasks.scoring.report import DRIFT_DETECTED

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

__all__ = [
    "ABSENCE_ALERT_NAME",
    "ALERT_NAME",
    "BAD_ENDINGS",
    "DRIFT_ALERT_NAME",
    "HEARTBEAT_SECONDS",
    "HEARTBEAT_VARIABLE",
    "LOST_RUN_NAME",
    "AlertWindows",
    "alert_windows",
    "create_alerts",
    "schedule_interval",
]

WEBHOOK_VARIABLE = "REVIEW_SCORING_ALERT_WEBHOOK_URL"
LOST_RUN_VARIABLE = "REVIEW_SCORING_LOST_RUN_SECONDS"
NO_SUCCESS_VARIABLE = "REVIEW_SCORING_ALERT_NO_SUCCESS_SECONDS"

ALERT_NAME = "review-scoring: nightly scoring ended badly"
LOST_RUN_NAME = "review-scoring: a run that stops sending heartbeats is Crashed"
ABSENCE_ALERT_NAME = "review-scoring: no nightly scoring completed"
DRIFT_ALERT_NAME = "review-scoring: nightly scores drifted"
WEBHOOK_BLOCK_NAME = "review-scoring-scoring-failed"
# What earlier releases named the bad-endings alert: replaced too, never left beside it.
_FORMER_NAMES = ("review-scoring: nightly scoring failed",)

# What prefect.yaml gives the deployments' runs, and flows.serve its own (Prefect's minimum is 30).
HEARTBEAT_VARIABLE = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"
HEARTBEAT_SECONDS = 30
# Three heartbeats missed: a run that is only slow to send one is not called lost.
DEFAULT_LOST_RUN_SECONDS = 3 * HEARTBEAT_SECONDS
# The runs an alert is about: tags every run of the deployments carries (prefect.yaml).
NIGHTLY_TAG = "nightly"
PROJECT_TAG = "review-scoring"
BAD_ENDINGS = ("Failed", "Crashed", "Cancelled", "TimedOut")
FINAL_STATES = ("Completed", *BAD_ENDINGS)

# Rendered by the server with the run in context; tojson keeps quotes in messages valid.
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


# A drift event is about a run: the run and its deployment come from the event's resources.
DRIFT_PAYLOAD = """{
  "text": {{ ("Scoring run " ~ flow_run.name ~ " of " ~ deployment.name ~ ": "
              ~ event.payload.message)|tojson }},
  "flow_run_id": {{ flow_run.id|string|tojson }},
  "flow_run_name": {{ flow_run.name|tojson }},
  "deployment": {{ deployment.name|tojson }},
  "state": "Drift",
  "message": {{ event.payload.message|tojson }},
  "psi": {{ event.payload.psi|tojson }},
  "rows": {{ event.payload.rows|tojson }},
  "url": {{ flow_run|ui_url|tojson }}
}"""


@dataclass(frozen=True)
class AlertWindows:
    """How long the automations wait: for a heartbeat, and for a Completed nightly run."""

    lost_run: timedelta
    no_success: timedelta


def schedule_interval(cron: str, timezone_name: str, now: datetime | None = None) -> timedelta:
    """The time between two consecutive runs of the schedule from `now` (24 h for a nightly
    cron; across a clock change, the wall-clock day)."""
    from prefect.server.schemas.schedules import CronSchedule

    start = now or datetime.now(timezone.utc)
    first, second = asyncio.run(
        CronSchedule(cron=cron, timezone=timezone_name).get_dates(n=2, start=start)
    )
    return second - first


def _seconds(environ: Mapping[str, str], name: str) -> timedelta | None:
    text = environ.get(name, "").strip()
    if not text:
        return None
    try:
        seconds = int(text)
    except ValueError:
        seconds = 0
    if seconds <= 0:
        raise ValueError(f"{name}={text!r}: a whole number of seconds above 0")
    return timedelta(seconds=seconds)


def alert_windows(
    cron: str, timezone_name: str, environ: Mapping[str, str] | None = None
) -> AlertWindows:
    """The windows from the environment, or by default: three missed heartbeats for a lost run;
    one schedule interval plus a grace (the interval, at most 2 h) without a Completed nightly
    run: 26 h for a nightly schedule. ValueError naming the variable for a bad value."""
    environ = os.environ if environ is None else environ
    lost_run = _seconds(environ, LOST_RUN_VARIABLE) or timedelta(seconds=DEFAULT_LOST_RUN_SECONDS)
    if lost_run <= timedelta(seconds=HEARTBEAT_SECONDS):
        raise ValueError(
            f"{LOST_RUN_VARIABLE}={int(lost_run.total_seconds())}: more than the "
            f"{HEARTBEAT_SECONDS} s between two heartbeats, or every run would be called lost"
        )
    no_success = _seconds(environ, NO_SUCCESS_VARIABLE)
    if no_success is None:
        interval = schedule_interval(cron, timezone_name)
        no_success = interval + min(interval, timedelta(hours=2))
    return AlertWindows(lost_run=lost_run, no_success=no_success)


def _in_words(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _runs_tagged(tag: str) -> dict[str, object]:
    """Trigger fields for any flow run with the tag, in the shape the UI describes in words."""
    return {
        "match": {"prefect.resource.id": "prefect.flow-run.*"},
        "match_related": {"prefect.resource.id": f"prefect.tag.{tag}"},
    }


async def _replace(client: PrefectClient, automation: object) -> UUID:
    name = automation.name  # type: ignore[attr-defined]
    for existing in await client.read_automations_by_name(name):
        await client.delete_automation(existing.id)
    return await client.create_automation(automation)  # type: ignore[arg-type]


async def create_lost_run_detector(client: PrefectClient, window: timedelta) -> UUID:
    """Crash a project run `window` after its last heartbeat unless it ended before."""
    from prefect.automations import AutomationCore, ChangeFlowRunState, EventTrigger, Posture
    from prefect.client.schemas.objects import StateType

    automation = AutomationCore(
        name=LOST_RUN_NAME,
        description=(
            f"A review-scoring flow run sends a heartbeat every {HEARTBEAT_SECONDS} s; one that "
            f"sends none for {_in_words(window)} (its host or process was lost) is set Crashed, "
            "which the bad-endings alert reports and which frees the nightly deployment's slot"
        ),
        trigger=EventTrigger(
            **_runs_tagged(PROJECT_TAG),  # type: ignore[arg-type]
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{s}" for s in FINAL_STATES)},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=window,
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                name="Crashed",
                message=(
                    f"no heartbeat for {_in_words(window)}: the host or the process running "
                    "this flow run was lost"
                ),
            )
        ],
    )
    return await _replace(client, automation)


async def _webhook_on_nightly_runs(
    client: PrefectClient,
    name: str,
    description: str,
    events: set[str],
    block_id: UUID,
    payload: str,
) -> UUID:
    """POST `payload` to the webhook for each nightly run that one of `events` is about."""
    from prefect.automations import AutomationCore, CallWebhook, EventTrigger, Posture

    automation = AutomationCore(
        name=name,
        description=description,
        trigger=EventTrigger(
            **_runs_tagged(NIGHTLY_TAG),  # type: ignore[arg-type]
            expect=events,
            for_each={"prefect.resource.id"},
            posture=Posture.Reactive,
            threshold=1,
            within=0,
        ),
        actions=[CallWebhook(block_document_id=block_id, payload=payload)],
    )
    return await _replace(client, automation)


async def create_failure_alert(client: PrefectClient, block_id: UUID, deployment_name: str) -> UUID:
    """POST to the webhook when a nightly run ends Failed, Crashed, Cancelled or TimedOut."""
    return await _webhook_on_nightly_runs(
        client,
        ALERT_NAME,
        f"POST to the {WEBHOOK_BLOCK_NAME!r} webhook when a run of {deployment_name} (any run "
        f"tagged {NIGHTLY_TAG!r}) ends {', '.join(BAD_ENDINGS)}, with its link and reason",
        {f"prefect.flow-run.{state}" for state in BAD_ENDINGS},
        block_id,
        ALERT_PAYLOAD,
    )


async def create_drift_alert(client: PrefectClient, block_id: UUID, deployment_name: str) -> UUID:
    """POST to the webhook when a nightly run's scores drifted from the version's held-out
    predictions (the run's `review-scoring.drift.detected` event)."""
    return await _webhook_on_nightly_runs(
        client,
        DRIFT_ALERT_NAME,
        f"POST to the {WEBHOOK_BLOCK_NAME!r} webhook when a run of {deployment_name} (tagged "
        f"{NIGHTLY_TAG!r}) finds its scores drifted from the model version's held-out test "
        f"split (event {DRIFT_DETECTED}), with the PSI, the rows judged and the run's link",
        {DRIFT_DETECTED},
        block_id,
        DRIFT_PAYLOAD,
    )


async def create_absence_alert(
    client: PrefectClient, block_id: UUID, deployment_name: str, window: timedelta
) -> UUID:
    """POST to the webhook when no nightly run Completed within `window`, again each window."""
    from prefect.automations import AutomationCore, CallWebhook, EventTrigger, Posture
    from prefect.settings import get_current_settings

    deployment = await client.read_deployment_by_name(deployment_name)
    ui_url = get_current_settings().ui_url or ""
    text = (
        f"No run of {deployment_name} Completed in the last {_in_words(window)}: "
        "is the worker up, the work pool or the deployment paused, a run stuck?"
    )
    payload = {
        "text": text,
        "deployment": deployment_name,
        "state": "NoSuccess",
        "window_seconds": int(window.total_seconds()),
        "url": f"{ui_url}/deployments/deployment/{deployment.id}",
    }
    automation = AutomationCore(
        name=ABSENCE_ALERT_NAME,
        description=(
            f"POST to the {WEBHOOK_BLOCK_NAME!r} webhook when no run of {deployment_name} "
            f"(tagged {NIGHTLY_TAG!r}) has Completed for {_in_words(window)}, and again every "
            f"{_in_words(window)} until one does"
        ),
        trigger=EventTrigger(
            **_runs_tagged(NIGHTLY_TAG),  # type: ignore[arg-type]
            expect={"prefect.flow-run.Completed"},
            posture=Posture.Proactive,
            threshold=1,
            within=window,
        ),
        # Static text: a proactive firing has no run to render (json.dumps keeps it valid).
        actions=[CallWebhook(block_document_id=block_id, payload=json.dumps(payload))],
    )
    return await _replace(client, automation)


async def create_alerts(
    client: PrefectClient,
    webhook_url: str | None,
    deployment_name: str,
    windows: AlertWindows,
) -> dict[str, UUID]:
    """The lost-run detector always; the two webhook alerts when a URL is given (it goes into a
    Webhook block, a secret). Returns the automations' ids by name."""
    from prefect.blocks.webhook import Webhook

    for name in _FORMER_NAMES:
        for existing in await client.read_automations_by_name(name):
            await client.delete_automation(existing.id)
    created = {LOST_RUN_NAME: await create_lost_run_detector(client, windows.lost_run)}
    if not webhook_url:
        return created
    block = Webhook(method="POST", url=webhook_url, headers={"Content-Type": "application/json"})
    block_id = await block.asave(WEBHOOK_BLOCK_NAME, overwrite=True, client=client)
    created[ALERT_NAME] = await create_failure_alert(client, block_id, deployment_name)
    created[ABSENCE_ALERT_NAME] = await create_absence_alert(
        client, block_id, deployment_name, windows.no_success
    )
    created[DRIFT_ALERT_NAME] = await create_drift_alert(client, block_id, deployment_name)
    return created
