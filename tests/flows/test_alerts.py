"""The alerts' settings and the heartbeats they rely on, without a server
(tests/flows/test_lost_runs.py runs the automations for real)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import yaml

from flows.alerts import (
    HEARTBEAT_SECONDS,
    HEARTBEAT_VARIABLE,
    AlertWindows,
    alert_windows,
    schedule_interval,
)
from testkit import REPOSITORY


def test_by_default_a_run_is_lost_after_three_heartbeats_and_a_night_missing_after_26_hours() -> (
    None
):
    assert alert_windows("0 2 * * *", "Europe/Paris", environ={}) == AlertWindows(
        lost_run=timedelta(seconds=3 * HEARTBEAT_SECONDS), no_success=timedelta(hours=26)
    )
    # Sized from the schedule: every 15 minutes waits 30 minutes; weekly waits a week and 2 h.
    assert alert_windows("*/15 * * * *", "UTC", environ={}).no_success == timedelta(minutes=30)
    assert alert_windows("0 3 * * 1", "UTC", environ={}).no_success == timedelta(days=7, hours=2)


def test_the_interval_is_the_wall_clock_day_across_a_clock_change() -> None:
    before_summer_time = datetime(2026, 3, 28, 12, tzinfo=timezone.utc)
    assert schedule_interval("0 2 * * *", "Europe/Paris", before_summer_time) == timedelta(hours=23)


def test_the_windows_are_settings() -> None:
    environ = {
        "REVIEW_SCORING_LOST_RUN_SECONDS": "120",
        "REVIEW_SCORING_ALERT_NO_SUCCESS_SECONDS": "3600",
    }
    assert alert_windows("0 2 * * *", "UTC", environ) == AlertWindows(
        lost_run=timedelta(seconds=120), no_success=timedelta(hours=1)
    )


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("REVIEW_SCORING_LOST_RUN_SECONDS", "soon", "a whole number of seconds above 0"),
        ("REVIEW_SCORING_LOST_RUN_SECONDS", "30", "more than the 30 s between two heartbeats"),
        ("REVIEW_SCORING_ALERT_NO_SUCCESS_SECONDS", "-5", "a whole number of seconds above 0"),
    ],
)
def test_a_bad_window_is_refused_naming_the_variable(name: str, value: str, expected: str) -> None:
    with pytest.raises(ValueError, match=name) as raised:
        alert_windows("0 2 * * *", "UTC", {name: value})
    assert expected in str(raised.value)


def test_deploy_refuses_a_bad_window_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import prefect.settings

    from flows.deploy import main

    monkeypatch.setenv("REVIEW_SCORING_LOST_RUN_SECONDS", "10")
    with prefect.settings.temporary_settings({prefect.settings.PREFECT_API_URL: "http://x/api"}):
        assert main([]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: REVIEW_SCORING_LOST_RUN_SECONDS=10: more than the 30 s")


def test_every_run_of_every_deployment_sends_heartbeats_as_the_detector_expects() -> None:
    config = yaml.safe_load((REPOSITORY / "prefect.yaml").read_text())
    for deployment in config["deployments"]:
        environment: dict[str, Any] = deployment["work_pool"]["job_variables"]["env"]
        assert environment[HEARTBEAT_VARIABLE] == str(HEARTBEAT_SECONDS), deployment["name"]


def test_served_runs_send_heartbeats_as_the_detector_expects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.serve import main

    monkeypatch.setenv(HEARTBEAT_VARIABLE, "180")  # Prefect's default would be too rare
    assert main([], serve_function=lambda *args, **kwargs: None) == 0
    assert os.environ[HEARTBEAT_VARIABLE] == str(HEARTBEAT_SECONDS)
