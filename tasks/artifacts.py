"""Artifacts of the flow run, not of the task that happened to make them: the UI's run page lists
them under "Flow run" (a task's would leave that section reading "None") and on each artifact's
page names the run. Outside a run (the command line) an artifact belongs to nobody."""

from __future__ import annotations

from typing import Any
from uuid import UUID

__all__ = ["flow_run_url", "run_artifact"]


def run_artifact(kind: str, key: str | None, data: Any, description: str) -> UUID:
    """Create an artifact of `kind` ("table", "markdown", "progress") on this flow run; returns
    its id (update_progress_artifact takes it). `data`: rows, markdown text, or a percentage."""
    from prefect import get_client
    from prefect.client.schemas.actions import ArtifactCreate
    from prefect.runtime import flow_run

    if kind == "table":
        from prefect.artifacts import TableArtifact

        data = TableArtifact(table=data).format()
    with get_client(sync_client=True) as client:
        created = client.create_artifact(
            ArtifactCreate(
                key=key,
                type=kind,
                data=data,
                description=description,
                flow_run_id=UUID(flow_run.id) if flow_run.id else None,
            )
        )
    return created.id


def flow_run_url() -> str | None:
    """This flow run's page in the UI; None outside a run, or on a temporary server, which has no
    UI (Prefect would write "None/flow-runs/...")."""
    from prefect.runtime import flow_run
    from prefect.settings import get_current_settings

    if not flow_run.id or not get_current_settings().ui_url:
        return None
    return str(flow_run.ui_url)
