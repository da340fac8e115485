"""Both deployments served from one process: the alternative to a work pool and a worker.

`make serve` (python -m flows.serve) registers the deployments of prefect.yaml's process pool,
as prefect.yaml declares them (names, tags, descriptions, the nightly schedule, the concurrency
limit), then runs their flow runs in subprocesses of this one. Serving takes the deployments over
from the work pool; `make deploy` gives them back.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.alerts import HEARTBEAT_SECONDS, HEARTBEAT_VARIABLE
from flows.deploy import (
    PROJECT_DIR,
    DeploymentConfig,
    NightlySchedule,
    deploy_values,
    nightly_schedule,
    read_project,
)

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

__all__ = ["build_deployments", "main"]


def _runner_deployment(config: DeploymentConfig, schedule: NightlySchedule) -> RunnerDeployment:
    """One deployment of prefect.yaml (its placeholders filled in, `DeploymentConfig.filled`), to
    serve; its schedules are the nightly one, each keeping its `active` flag."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron

    limit = config.concurrency_limit
    return config.load_flow().to_deployment(
        name=config.name,
        tags=config.tags,
        description=config.description,
        parameters=config.parameters,
        schedules=[
            Cron(schedule.cron, timezone=schedule.timezone, active=item.get("active", True))
            for item in config.schedules
        ],
        concurrency_limit=(
            ConcurrencyLimitConfig(
                limit=limit["limit"],
                collision_strategy=ConcurrencyLimitStrategy(limit["collision_strategy"]),
            )
            if limit
            else None
        ),
    )


def build_deployments(
    schedule: NightlySchedule | None = None, project_dir: Path = PROJECT_DIR
) -> list[RunnerDeployment]:
    """The deployments of prefect.yaml's process pool (training on demand, scoring nightly)."""
    project = read_project(project_dir)
    schedule = schedule or nightly_schedule(project_dir=project_dir)
    values = deploy_values(schedule, project_dir)
    return [
        _runner_deployment(config.filled(values), schedule)
        for config in project.deployments
        if config.work_pool == project.work_pools["process"]
    ]


def main(
    argv: Sequence[str] | None = None, serve_function: Callable[..., Any] | None = None
) -> int:
    """Serve both deployments until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m flows.serve", description=main.__doc__)
    parser.add_argument(
        "--limit", type=int, default=None, help="Most flow runs at once (default: no limit)"
    )
    args = parser.parse_args(argv)
    if serve_function is None:
        from prefect import serve as serve_function
    try:
        deployments = build_deployments()
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # The served runs send heartbeats as often as the lost-run automation expects them.
    os.environ[HEARTBEAT_VARIABLE] = str(HEARTBEAT_SECONDS)
    # pause_on_shutdown=False: stopping or restarting this process leaves the nightly schedule on.
    serve_function(*deployments, pause_on_shutdown=False, limit=args.limit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
