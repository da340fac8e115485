"""Flow run names that tell runs apart from the moment they exist, in the runs list and a
deployment's Upcoming tab: `score 2026-12-08 02:00 reviews v3 (champion)`.

The engine names a run as it starts (the flows' `flow_run_name`); the server's scheduler names
the runs it plans with random words, and so does the UI's run form. `name_upcoming_runs` (each
scoring run as it starts, and `make deploy`) plans the deployment's next runs itself, as the
scheduler would (the same runs: they are keyed by deployment and time), and names every run of
it still waiting to start.
"""

from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from uuid import UUID
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

    from flows.scoring import ScoreParams
    from flows.training import TrainParams

__all__ = [
    "name_this_deployments_upcoming_runs",
    "name_upcoming_runs",
    "scoring_run_name",
    "training_run_name",
]

# How many waiting runs of a deployment are named at a time: the scheduler plans three ahead.
MOST_RUNS_NAMED = 50


def _last_part(path: str) -> str:
    """`reviews` of `/data/reviews/` or `s3://bucket/reviews`."""
    return PurePosixPath(path.split("://", 1)[-1].rstrip("/")).name or path


def _model_version(store_root: str, model_name: str, ref: str) -> str:
    """`v3 (champion)` for an alias the store resolves now, `v3` for a number; the reference as
    given when the store cannot say (the run itself then fails, saying why)."""
    if ref.isdigit():
        return f"v{int(ref)}"
    try:
        from model_store import ModelStore

        return f"v{ModelStore(store_root).resolve(model_name, ref)} ({ref})"
    except Exception:  # a name must never stop a run: the run reports a missing model itself
        return ref


def scoring_run_name(params: ScoreParams, scheduled: datetime | None) -> str:
    """`score <scheduled date and time, in the run's zone> <partition or input> <version>`."""
    from flows.settings import get_settings
    from tasks.scoring.inputs import partition_folder
    from tasks.scoring.records import ScoringError

    settings = get_settings().resolve(
        model_store_root=params.model_store_root,
        model_name=params.model_name,
        input_dir=params.input_path,
    )
    when = (scheduled or datetime.now(dt_timezone.utc)).astimezone(ZoneInfo(params.timezone))
    what = _last_part(settings.input_dir)
    if params.partition:
        try:
            what = partition_folder(params.partition, when.date())
        except ScoringError:  # the run itself says what is wrong with its template
            what = params.partition
    version = _model_version(settings.model_store_root, settings.model_name, params.model_ref)
    return f"score {when:%Y-%m-%d %H:%M} {what} {version}"


def training_run_name(params: TrainParams) -> str:
    """`train lstm on parquet imdb`: a list of runs reads as a log of recipes and data."""
    data = f" {_last_part(params.data_path)}" if params.data_path else ""
    return f"train {params.architecture} on {params.source}{data}"


def _name_for(flow_name: str, parameters: dict[str, Any], scheduled: datetime | None) -> str | None:
    from flows.scoring import ScoreParams
    from flows.training import TrainParams

    params = parameters.get("params") or {}
    if flow_name == "score":
        return scoring_run_name(ScoreParams.model_validate(params), scheduled)
    if flow_name == "train":
        return training_run_name(TrainParams.model_validate(params))
    return None


def name_upcoming_runs(client: SyncPrefectClient, deployment_id: UUID) -> dict[UUID, str]:
    """Plan the deployment's scheduled runs now, as the server's scheduler would, then name each
    of its runs still waiting to start; returns the runs renamed (id -> new name)."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    deployment = client.read_deployment(deployment_id)
    if deployment.schedules:
        # The scheduler's own planning (same defaults, same idempotency keys): nothing it plans
        # later is left with a random name.
        client.request(
            "POST", "/deployments/{id}/schedule", path_params={"id": deployment_id}, json={}
        ).raise_for_status()
    flow_name = client.read_flow(deployment.flow_id).name
    waiting = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
        ),
        limit=MOST_RUNS_NAMED,
    )
    renamed: dict[UUID, str] = {}
    for flow_run in waiting:
        name = _name_for(flow_name, flow_run.parameters, flow_run.expected_start_time)
        if name and name != flow_run.name:
            client.update_flow_run(flow_run.id, name=name)
            renamed[flow_run.id] = name
    return renamed


def name_this_deployments_upcoming_runs() -> None:
    """In a deployment's run: name_upcoming_runs for its deployment, so the night the scheduler
    adds as this one starts has a name too. A failure is logged, never raised: names are not
    worth a night."""
    from prefect import get_run_logger
    from prefect.client.orchestration import get_client
    from prefect.runtime import deployment

    deployment_id = deployment.id
    if not deployment_id:
        return
    try:
        with get_client(sync_client=True) as client:
            name_upcoming_runs(client, UUID(str(deployment_id)))
    except Exception as error:  # reported, and the night goes on
        get_run_logger().warning("could not name the upcoming runs: %s", error)
