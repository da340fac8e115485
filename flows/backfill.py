"""`review-scoring backfill`: score past nights as the nightly deployment would have scored them.

Each date becomes a run of the nightly deployment (`score/nightly`), scheduled at the moment its
schedule would have started it that night (the cron in the schedule's zone), with the partition
of that date. Why runs of the deployment rather than one run over all the dates: each night is
then what a real night is, with the worker's settings and storage, the run name and
`{scheduled_date}` of that night, its own state, logs and artifacts, and the failure alert when
it fails; the UI lists them under the deployment, and one bad night fails alone. They go one
after the other, each started when the one before ended: the deployment runs one at a time and
cancels a run that arrives while another is going, and a slow backfill never stacks up on the
worker ahead of a real night.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from storage import InvalidParameterError

__all__ = ["backfill", "dates_between", "night_start"]

# The most nights one command backfills: a typo in a year should not queue a decade of runs.
MAX_NIGHTS = 366


def dates_between(first: date, last: date) -> list[date]:
    """Every date from `first` to `last`, both included; InvalidParameterError when the range is
    empty or longer than MAX_NIGHTS."""
    if last < first:
        raise InvalidParameterError(f"--to {last} is before --from {first}")
    nights = (last - first).days + 1
    if nights > MAX_NIGHTS:
        raise InvalidParameterError(
            f"--from {first} --to {last} is {nights} nights; backfill at most {MAX_NIGHTS} at once"
        )
    return [first + timedelta(days=offset) for offset in range(nights)]


def night_start(night: date, cron: str, timezone: str) -> datetime:
    """When the schedule (`cron` in `timezone`) starts its run on `night`, as a UTC moment."""
    import asyncio

    from prefect.server.schemas.schedules import CronSchedule

    zone = ZoneInfo(timezone)
    midnight = datetime.combine(night, time(0), tzinfo=zone)
    schedule = CronSchedule(cron=cron, timezone=timezone)
    [start] = asyncio.run(schedule.get_dates(n=1, start=midnight))
    if start.astimezone(zone).date() != night:
        raise InvalidParameterError(f"the schedule {cron!r} ({timezone}) has no run on {night}")
    return datetime.fromtimestamp(start.timestamp(), tz=ZoneInfo("UTC"))


def backfill(
    client: Any,
    deployment_name: str,
    nights: Sequence[date],
    partition: str,
    report: Callable[[str], None],
    poll_seconds: float = 2.0,
) -> list[Any]:
    """Run the deployment once per night, one run after the other; the runs, as they ended."""
    import time as clock

    from prefect.states import Scheduled

    deployment = client.read_deployment_by_name(deployment_name)
    if not deployment.schedules:
        raise InvalidParameterError(f"{deployment_name} has no schedule to backfill")
    schedule = deployment.schedules[0].schedule
    parameters = dict(deployment.parameters or {})
    params = {**dict(parameters.get("params") or {}), "partition": partition}
    params.setdefault("timezone", schedule.timezone)
    ended = []
    for night in nights:
        start = night_start(night, schedule.cron, schedule.timezone)
        flow_run = client.create_flow_run_from_deployment(
            deployment.id,
            parameters={**parameters, "params": params},
            state=Scheduled(scheduled_time=start),
            tags=["backfill"],
        )
        while not (flow_run.state and flow_run.state.is_final()):
            clock.sleep(poll_seconds)
            flow_run = client.read_flow_run(flow_run.id)
        report(f"{night}: {flow_run.name}: {flow_run.state.name}" + _message(flow_run))
        ended.append(flow_run)
    return ended


def _message(flow_run: Any) -> str:
    message = flow_run.state.message if not flow_run.state.is_completed() else None
    return f" ({message})" if message else ""
