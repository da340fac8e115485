"""Both deployments served from one process: the alternative to a work pool and a worker.

`make serve` (python -m flows.serve) registers the same two deployments as prefect.yaml, under the
same names and with the same nightly schedule and concurrency limit, then runs their flow runs in
subprocesses of this one. Serving takes the deployments over from the work pool; `make deploy`
gives them back.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from flows.deploy import NightlySchedule, nightly_schedule

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

__all__ = ["SCORING_TAGS", "TRAINING_TAGS", "build_deployments", "main"]

# As in prefect.yaml (tests/test_deployments.py holds the two together).
TRAINING_NAME = "on-demand"
SCORING_NAME = "nightly"
TRAINING_TAGS = ["review-scoring", "training"]
SCORING_TAGS = ["review-scoring", "scoring", "nightly"]


def build_deployments(schedule: NightlySchedule | None = None) -> list[RunnerDeployment]:
    """Training on demand, and scoring on the nightly schedule, one run at a time."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron

    from flows.scoring import score_flow
    from flows.training import train_flow

    schedule = schedule or nightly_schedule()
    training = train_flow.to_deployment(
        name=TRAINING_NAME,
        tags=TRAINING_TAGS,
        description="Train a model version on demand; set the parameters in the run form.",
    )
    scoring = score_flow.to_deployment(
        name=SCORING_NAME,
        tags=SCORING_TAGS,
        description="Score the review Parquet in the input folder with the champion, nightly.",
        schedule=Cron(schedule.cron, timezone=schedule.timezone),
        # A run that would start while another is going is cancelled, as in prefect.yaml.
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
        ),
    )
    return [training, scoring]


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
    except ValueError as error:
        print(f"error: {error}")
        return 2
    # pause_on_shutdown=False: stopping or restarting this process leaves the nightly schedule on.
    serve_function(*deployments, pause_on_shutdown=False, limit=args.limit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
