"""The nights a backfill runs, and when: flows/backfill.py without a server (the end-to-end test,
tests/flows/test_e2e.py, backfills two nights through the real deployment and worker)."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from flows.backfill import MAX_NIGHTS, dates_between, night_start
from flows.cli import main
from storage import InvalidParameterError


def test_a_range_is_every_date_in_it_both_ends_included() -> None:
    assert dates_between(date(2026, 11, 29), date(2026, 12, 1)) == [
        date(2026, 11, 29),
        date(2026, 11, 30),
        date(2026, 12, 1),
    ]
    with pytest.raises(InvalidParameterError, match="before --from"):
        dates_between(date(2026, 12, 1), date(2026, 11, 29))
    with pytest.raises(InvalidParameterError, match=f"at most {MAX_NIGHTS}"):
        dates_between(date(2020, 1, 1), date(2026, 1, 1))


@pytest.mark.parametrize(
    ("night", "cron", "zone", "expected"),
    [
        (date(2026, 11, 1), "0 2 * * *", "UTC", datetime(2026, 11, 1, 2, tzinfo=timezone.utc)),
        # 00:30 in Paris is the evening before in UTC, and still that Paris night.
        (
            date(2026, 11, 27),
            "30 0 * * *",
            "Europe/Paris",
            datetime(2026, 11, 26, 23, 30, tzinfo=timezone.utc),
        ),
        # Summer time: 02:00 in Paris is 00:00 UTC.
        (date(2026, 7, 1), "0 2 * * *", "Europe/Paris", datetime(2026, 7, 1, tzinfo=timezone.utc)),
    ],
)
def test_a_night_starts_when_its_schedule_would_have_started_it(
    night: date, cron: str, zone: str, expected: datetime
) -> None:
    assert night_start(night, cron, zone) == expected


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--from", "2026-11-02", "--to", "2026-11-01"], "before --from"),
        (["--dates", "2026-11-02", "--partition", "day=x"], "has no {scheduled_date}"),
        (["--dates", "2026-11-02", "--from", "2026-11-01"], "not both"),
        (["--to", "2026-11-01"], "give --from and --to, or --dates"),
        (["--dates", "2026-11-02", "--partition", "../day={scheduled_date}"], "partition"),
    ],
)
def test_bad_backfill_options_are_one_line_before_anything_runs(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backfill", *arguments]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and message in error and "\n" not in error
