"""Deleting versions while others read and write: a delete is decided and committed in one step,
so a refused or killed delete never disturbs a reader, and `repair` finishes a killed one. On a
real folder and on the test S3 server (testkit/s3.py); deleters killed with SIGKILL at the fault
points of the delete (storage/faults.py), in child processes."""

from __future__ import annotations

import signal
import threading
from collections import Counter
from pathlib import Path

import pytest

from model_store import AliasInUseError, ModelStore, NotFoundError, check_keras_archive
from storage import locate
from testkit.store import MODEL_NAME, delete_in_child, register

READER_THREADS = 4


def store_of(root: str | Path, tiny_model_file: Path, versions: int) -> ModelStore:
    """A store at `root` holding `versions` versions, version 1 champion."""
    store = ModelStore(root, check_model=check_keras_archive)
    for _ in range(versions):
        register(store, tiny_model_file)
    store.set_alias(MODEL_NAME, "champion", 1)
    return store


def objects_of(store: ModelStore, version: int) -> list[str]:
    return locate(f"{store.root}/{MODEL_NAME}/versions/{version}").files_below()


def read_while_deleting(store: ModelStore, deletable: list[int]) -> None:
    """Readers resolve and load the champion and list the versions while deletes of the champion
    (each refused) and of the other versions run: no read may fail."""
    failures: Counter[str] = Counter()
    reads = Counter[str]()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                assert store.resolve(MODEL_NAME, "champion") == 1
                store.manifest(MODEL_NAME, "champion")
                store.verify(MODEL_NAME, "champion")
                assert 1 in [version.version for version in store.list_versions(MODEL_NAME)]
                reads["ok"] += 1
            except Exception as error:  # each one is a failure this test counts
                failures[f"{type(error).__name__}: {error}"] += 1

    readers = [threading.Thread(target=read) for _ in range(READER_THREADS)]
    for reader in readers:
        reader.start()
    refusals = 0
    try:
        for version in deletable:
            for _ in range(3):
                with pytest.raises(AliasInUseError):
                    store.delete(MODEL_NAME, "champion")
                refusals += 1
            assert store.delete(MODEL_NAME, version) == version
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    failed = sum(failures.values())
    assert not failures, (
        f"{failed} of {failed + reads['ok']} reads failed: {failures.most_common(3)}"
    )
    assert reads["ok"] > 0 and refusals == 3 * len(deletable)
    assert [version.version for version in store.list_versions(MODEL_NAME)] == [1]


def test_readers_never_fail_while_versions_are_deleted_in_a_folder(
    tmp_path: Path, tiny_model_file: Path
) -> None:
    read_while_deleting(store_of(tmp_path / "models", tiny_model_file, 5), [2, 3, 4, 5])


def test_readers_never_fail_while_versions_are_deleted_in_object_storage(
    s3_bucket: str, tiny_model_file: Path
) -> None:
    read_while_deleting(store_of(f"{s3_bucket}/models", tiny_model_file, 5), [2, 3, 4, 5])


def kill_deletes_at_every_step(store: ModelStore, leftovers_of_a_deleted_version: set[str]) -> None:
    """A delete killed at each of its steps is either not done at all or done, with leftovers
    that `repair` removes; a delete of the champion, killed or not, changes nothing."""
    root = store.root
    # The champion's delete is refused before its commit point: the child fails, not killed.
    refused = delete_in_child(root, 1, fault="aliases.before-commit")
    assert refused.returncode == 1 and "AliasInUseError" in refused.stderr, refused.stderr
    # Killed before its commit: not done.
    assert delete_in_child(root, 2, fault="aliases.before-commit").returncode == -signal.SIGKILL
    assert store.resolve(MODEL_NAME, 2) == 2
    store.verify(MODEL_NAME, 2)
    # Killed after its commit, before or while its files are removed: done, with leftovers.
    for version, fault in ((2, "delete.committed"), (3, "delete.removing:1")):
        assert delete_in_child(root, version, fault=fault).returncode == -signal.SIGKILL
        with pytest.raises(NotFoundError, match=f"version {version} of .* was deleted"):
            store.resolve(MODEL_NAME, version)
        assert version not in [found.version for found in store.list_versions(MODEL_NAME)]
        with pytest.raises(NotFoundError, match="was deleted"):
            store.set_alias(MODEL_NAME, "canary", version)
    assert "model.keras" in objects_of(store, 2) and len(objects_of(store, 3)) > 2

    repairs = store.repair(MODEL_NAME)
    assert [line.split(":")[0] for line in repairs] == ["versions/2", "versions/3"], repairs
    assert "model.keras" in repairs[0]
    for version in (2, 3):
        assert set(objects_of(store, version)) == leftovers_of_a_deleted_version
    assert store.repair(MODEL_NAME) == []
    # The champion was never disturbed, and 2 and 3 stay taken.
    assert store.resolve(MODEL_NAME, "champion") == 1
    store.load(MODEL_NAME, "champion")
    assert [version.version for version in store.list_versions(MODEL_NAME)] == [1, 4]


def test_a_delete_killed_at_any_step_in_a_folder_is_undone_or_finished_by_repair(
    tmp_path: Path, tiny_model_file: Path
) -> None:
    store = store_of(tmp_path / "models", tiny_model_file, 4)
    kill_deletes_at_every_step(store, {".deleted"})


def test_a_delete_killed_at_any_step_in_object_storage_is_undone_or_finished_by_repair(
    s3_bucket: str, tiny_model_file: Path
) -> None:
    store = store_of(f"{s3_bucket}/models", tiny_model_file, 4)
    kill_deletes_at_every_step(store, {".claim", ".deleted"})


def test_a_champion_buried_by_an_earlier_release_is_readable_and_repair_unburies_it(
    s3_bucket: str, tiny_model_file: Path
) -> None:
    # Before deletes were committed in the alias log, a delete wrote versions/<N>/.deleted
    # first and checked the aliases after: killed between the two, it buried the champion.
    store = store_of(f"{s3_bucket}/models", tiny_model_file, 2)
    marker = locate(f"{store.root}/{MODEL_NAME}/versions/1/.deleted")
    marker.write_atomically(b'{"deleted_at": "2026-11-30T01:00:00Z"}')

    assert store.resolve(MODEL_NAME, "champion") == 1
    store.load(MODEL_NAME, "champion")
    assert store.repair(MODEL_NAME) == [
        "versions/1: removed the tombstone of a delete that never committed"
    ]
    assert not marker.exists()
    assert store.repair(MODEL_NAME) == []
