"""The storage layer's local plumbing: one temporary-file scheme, one sweeper, fault points."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from storage import InvalidParameterError, locate
from storage.faults import FAULT_VARIABLE
from storage.files import remove_stale_temporaries, temporary_path, write_bytes_atomically


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    output_path = tmp_path / "out" / "day.parquet"
    output_path.parent.mkdir(parents=True)
    host = socket.gethostname()
    dead = output_path.parent / f".day.parquet.{host}.999999999.abc.tmp"
    alive = output_path.parent / f".day.parquet.{host}.{os.getpid()}.def.tmp"
    other_output = output_path.parent / f".other.parquet.{host}.999999999.abc.tmp"
    for path in (dead, alive, other_output):
        path.write_bytes(b"partial")
    assert locate(output_path).sweep_temporaries() == [dead]
    assert alive.exists() and other_output.exists()
    # Without a target, every dead writer's temporary in the folder goes (a store's folder).
    assert remove_stale_temporaries(output_path.parent) == [other_output]
    assert alive.exists()


def test_every_writer_names_its_temporaries_the_one_way_the_sweeper_reads(tmp_path: Path) -> None:
    temporary = temporary_path(tmp_path, "aliases.json")
    assert temporary.name.startswith(f".aliases.json.{socket.gethostname()}.{os.getpid()}.")
    assert temporary.name.endswith(".tmp")
    write_bytes_atomically(tmp_path / "aliases.json", b"{}")
    assert locate(tmp_path / "marker").create_exclusively(b"1") is True
    assert locate(tmp_path / "marker").create_exclusively(b"2") is False
    assert sorted(path.name for path in tmp_path.iterdir()) == ["aliases.json", "marker"]
    assert (tmp_path / "marker").read_bytes() == b"1"


@pytest.mark.parametrize("point", ["second:1", "second"])
def test_a_fault_point_kills_the_process_exactly_where_asked(point: str) -> None:
    code = (
        "from storage import fault_point\n"
        "fault_point('first'); print('after first', flush=True)\n"
        "fault_point('second'); print('after second', flush=True)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, FAULT_VARIABLE: point},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL
    assert child.stdout == "after first\n"


def test_a_fault_point_can_wait_for_its_nth_visit(monkeypatch: pytest.MonkeyPatch) -> None:
    from storage import fault_point

    monkeypatch.setenv(FAULT_VARIABLE, "elsewhere:1")
    fault_point("here")  # another point's fault never fires here
    monkeypatch.delenv(FAULT_VARIABLE)
    fault_point("elsewhere")  # unset, as in every real run: nothing happens


@pytest.mark.parametrize("uri", ["memory://models", "ftp://host/models", "http://host/x"])
def test_only_storage_that_keeps_what_is_written_is_accepted(uri: str) -> None:
    with pytest.raises(InvalidParameterError, match=r"model_store_root: .* is not supported"):
        locate(uri, "model_store_root")


@pytest.mark.parametrize(
    ("uri", "what_to_set"),
    [
        ("s3://AKIA:s3cr3t@bucket/models", "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        ("gs://user:s3cr3t@bucket/models", "set GOOGLE_APPLICATION_CREDENTIALS"),
    ],
)
def test_credentials_in_a_path_are_refused_without_echoing_them(uri: str, what_to_set: str) -> None:
    with pytest.raises(InvalidParameterError, match="credentials do not go in the path") as error:
        locate(uri, "output_root")
    assert "s3cr3t" not in str(error.value) and "output_root" in str(error.value)
    # The hint it promises: which variables to set instead (issue 23, item 9).
    assert what_to_set in str(error.value)
