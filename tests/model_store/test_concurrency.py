"""Writers in separate processes on a real folder: concurrent registrations get distinct
numbers, a writer killed at a fault point leaves no version, a live one is never swept.

The children register a `.keras` file saved once by the parent and check it with
`check_keras_archive` rather than Keras's safe mode: importing TensorFlow costs ~5 s of CPU per
process, and without it the children start together and really collide on version numbers.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from model_store import (
    ModelStore,
    NotFoundError,
)
from testkit.store import (
    CHILD_TIMEOUT_SECONDS,
    CONCURRENT_WRITERS,
    MODEL_NAME,
    finish,
    register,
    start_child,
    wait_for_files,
)

# ---------------------------------------------------------------------- concurrency

REGISTER_WORKER = """
    import sys, time
    from pathlib import Path
    from model_store import ModelStore, check_keras_archive

    class CountingStore(ModelStore):
        attempts = 0  # publish attempts: each one after the first lost a rename race

        def _write_manifest_for(self, staging_path, manifest, version):
            self.attempts += 1
            super()._write_manifest_for(staging_path, manifest, version)

    root, model_file, ready_file, go_file, index = sys.argv[1:]
    store = CountingStore(root, check_model=check_keras_archive)
    Path(ready_file).touch()
    while not Path(go_file).exists():  # start together, so the writers really collide
        time.sleep(0.001)
    version = store.register(
        "imdb-sentiment", Path(model_file), {"worker": int(index)}, params={"worker": int(index)},
        metrics={}, data_fingerprint="same-data", run_id=f"worker-{index}",
    )
    print(version.version, store.attempts - 1)
"""


def test_concurrent_registrations_get_distinct_gap_free_numbers(
    tmp_path: Path, tiny_model_file: Path
) -> None:
    root = tmp_path / "models"
    go_file = tmp_path / "go"
    ready_files = [tmp_path / f"ready-{index}" for index in range(CONCURRENT_WRITERS)]
    children = [
        start_child(REGISTER_WORKER, root, tiny_model_file, ready_files[index], go_file, index)
        for index in range(CONCURRENT_WRITERS)
    ]
    wait_for_files(ready_files)
    started = time.perf_counter()
    go_file.touch()
    outputs = [finish(child).split() for child in children]
    elapsed = time.perf_counter() - started
    versions = [int(version) for version, _ in outputs]
    lost_races = sum(int(retries) for _, retries in outputs)

    assert sorted(versions) == list(range(1, CONCURRENT_WRITERS + 1))
    store = ModelStore(root)
    assert store.verify_all(MODEL_NAME) == dict.fromkeys(range(1, CONCURRENT_WRITERS + 1))
    run_ids = {store.manifest(MODEL_NAME, version)["run_id"] for version in versions}
    assert run_ids == {f"worker-{index}" for index in range(CONCURRENT_WRITERS)}
    for index, version in enumerate(versions):  # each writer got the version with its own files
        assert store.manifest(MODEL_NAME, version)["params"] == {"worker": index}
    assert store.load(MODEL_NAME, "latest").version == CONCURRENT_WRITERS
    assert list((root / MODEL_NAME / ".staging").iterdir()) == []  # locks released, no leftovers
    print(
        f"\n[model_store] {CONCURRENT_WRITERS} processes registered versions "
        f"1..{CONCURRENT_WRITERS} concurrently in {elapsed:.2f} s "
        f"({lost_races} lost rename races retried with the next number)"
    )


# ---------------------------------------------------------------------- crashes

# The child dies (or stops) at a named fault point inside `register` (storage/faults.py):
# deterministic, no sleeps and no racing a kill against the writer.
WRITER = """
    import sys
    from pathlib import Path
    from model_store import ModelStore, check_keras_archive

    root, model_file = sys.argv[1:]
    version = ModelStore(root, check_model=check_keras_archive).register(
        "imdb-sentiment", Path(model_file), {}, params={}, metrics={}, data_fingerprint="",
        run_id="child", extra_files={"history.json": b"{}"},
    )
    print(version.version)
"""


@pytest.mark.parametrize("kill_point", ["register.staged", "register.before-commit"])
def test_killed_registration_leaves_no_version_and_is_cleaned_up(
    tmp_path: Path, tiny_model_file: Path, kill_point: str
) -> None:
    root = tmp_path / "models"
    child = start_child(WRITER, root, tiny_model_file, fault=kill_point)
    child.communicate(timeout=CHILD_TIMEOUT_SECONDS)
    assert child.returncode == -signal.SIGKILL

    store = ModelStore(root)
    staging = root / MODEL_NAME / ".staging"
    leftovers = sorted(path.name for path in staging.iterdir())
    assert len(leftovers) == 2  # the writer's folder and its lock file
    assert list((root / MODEL_NAME / "versions").iterdir()) == []
    assert store.list_models() == []
    assert store.list_versions(MODEL_NAME) == []
    with pytest.raises(NotFoundError, match="has no versions"):
        store.load(MODEL_NAME)

    assert register(store, tiny_model_file).version == 1
    assert list(staging.iterdir()) == []  # the dead writer's leftovers are gone
    store.verify(MODEL_NAME, 1)


def test_cleanup_spares_a_live_writer_that_then_publishes_the_next_number(
    tmp_path: Path, tiny_model_file: Path
) -> None:
    root = tmp_path / "models"
    child = start_child(WRITER, root, tiny_model_file, fault="register.before-commit:1:stop")
    try:
        _, status = os.waitpid(child.pid, os.WUNTRACED)  # until the child has stopped itself
        assert os.WIFSTOPPED(status), "the writer exited instead of pausing"
        staging = root / MODEL_NAME / ".staging"
        live_staging = sorted(path.name for path in staging.iterdir())

        store = ModelStore(root)
        assert register(store, tiny_model_file).version == 1  # takes the number the child holds
        assert sorted(path.name for path in staging.iterdir()) == live_staging  # not removed
    finally:
        os.kill(child.pid, signal.SIGCONT)
    # The child's rename onto versions/1 fails, so it rewrites its manifest and takes 2.
    assert int(finish(child)) == 2
    assert store.manifest(MODEL_NAME, 2)["run_id"] == "child"
    assert store.verify_all(MODEL_NAME) == {1: None, 2: None}
    assert list(staging.iterdir()) == []
