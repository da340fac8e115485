"""The model store in object storage: a real S3 server on loopback (moto's server mode, see
testkit/s3.py) reached by the real S3 client, real tiny Keras models, writers in separate
processes. The same rules as in a folder, kept without renames or locks (model_store/backend.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from model_store import (
    AliasInUseError,
    IntegrityError,
    ModelStore,
    NotFoundError,
)
from storage import StorageCredentialsError, locate
from testkit import REPOSITORY
from testkit.s3 import SECRET_ACCESS_KEY, forget_s3_clients
from testkit.store import (
    CONCURRENT_WRITERS,
    MODEL_NAME,
    build_tiny_model,
    finish,
    promote_concurrently,
    register,
    sample_batch,
    start_child,
    wait_for_files,
)


def objects_under(uri: str) -> list[str]:
    """Every object key below `uri`, relative to it."""
    return locate(uri).files_below()


def test_register_load_alias_roundtrip_in_object_storage(s3_bucket: str, tmp_path: Path) -> None:
    root = f"{s3_bucket}/models"
    store = ModelStore(root)
    first_model = build_tiny_model(seed=1)
    first = register(store, first_model, extra_files={"history.json": b'{"loss": [0.5]}'})
    second = register(store, build_tiny_model(seed=2), metrics={"accuracy": 0.9})
    assert (first.version, second.version) == (1, 2)
    assert first.path == f"{root}/{MODEL_NAME}/versions/1"

    # The layout: each version's files, its claim, its manifest written last.
    keys = objects_under(f"{root}/{MODEL_NAME}")
    assert sorted(key for key in keys if key.startswith("versions/1/")) == [
        "versions/1/.claim",
        "versions/1/history.json",
        "versions/1/manifest.json",
        "versions/1/manifest.sha256",
        "versions/1/model.keras",
        "versions/1/vocabulary.json",
    ]
    assert store.list_models() == [MODEL_NAME]
    assert [version.version for version in store.list_versions(MODEL_NAME)] == [1, 2]

    loaded = store.load(MODEL_NAME, 1)
    np.testing.assert_allclose(
        loaded.model.predict(sample_batch(), verbose=0),
        first_model.predict(sample_batch(), verbose=0),
        rtol=1e-6,
    )
    assert store.load(MODEL_NAME, "latest").version == 2
    assert store.manifest(MODEL_NAME, 2)["metrics"] == {"accuracy": 0.9}

    assert store.set_alias(MODEL_NAME, "champion", 1) == 1
    assert store.set_alias(MODEL_NAME, "champion", 2) == 2
    assert store.resolve(MODEL_NAME, "champion") == 2
    assert store.rollback(MODEL_NAME, "champion") == 1
    assert store.aliases(MODEL_NAME) == {"champion": 1}
    assert store.alias_history(MODEL_NAME, "champion") == [1]
    entries = [key for key in objects_under(f"{root}/{MODEL_NAME}") if key.startswith("alias-log")]
    assert entries == [f"alias-log/{sequence:012d}.json" for sequence in (1, 2, 3)]
    store.verify_all(MODEL_NAME)  # every version sound
    assert store.verify_all(MODEL_NAME) == {1: None, 2: None}


REGISTRAR = """
    import sys, time
    from pathlib import Path
    from model_store import ModelStore, check_keras_archive

    root, model_file, ready_file, go_file, index = sys.argv[1:]
    store = ModelStore(root, check_model=check_keras_archive)
    store.list_models()  # connect before the start, so the writers really collide
    Path(ready_file).touch()
    while not Path(go_file).exists():
        time.sleep(0.001)
    version = store.register(
        "imdb-sentiment", Path(model_file), {"worker": int(index)}, params={"worker": int(index)},
        metrics={}, data_fingerprint="same-data", run_id=f"worker-{index}",
    )
    print(version.version)
"""


def test_concurrent_registrations_in_object_storage_get_distinct_gap_free_numbers(
    s3_bucket: str, tmp_path: Path, tiny_model_file: Path
) -> None:
    root = f"{s3_bucket}/models"
    go_file = tmp_path / "go"
    ready_files = [tmp_path / f"ready-{index}" for index in range(CONCURRENT_WRITERS)]
    children = [
        start_child(REGISTRAR, root, tiny_model_file, ready_files[index], go_file, index)
        for index in range(CONCURRENT_WRITERS)
    ]
    wait_for_files(ready_files)
    started = time.perf_counter()
    go_file.touch()
    versions = [int(finish(child)) for child in children]
    elapsed = time.perf_counter() - started

    assert sorted(versions) == list(range(1, CONCURRENT_WRITERS + 1))
    store = ModelStore(root)
    assert store.verify_all(MODEL_NAME) == dict.fromkeys(range(1, CONCURRENT_WRITERS + 1))
    for index, version in enumerate(versions):  # each writer got the version with its own files
        manifest = store.manifest(MODEL_NAME, version)
        assert (manifest["params"], manifest["run_id"]) == ({"worker": index}, f"worker-{index}")
    print(
        f"\n[model_store s3] {CONCURRENT_WRITERS} processes registered versions "
        f"1..{CONCURRENT_WRITERS} concurrently in {elapsed:.2f} s"
    )


# The child stops for good at the fault point just before its commit (manifest.json): every
# other object of the version is uploaded. It is then killed.
WRITER = """
    import sys
    from pathlib import Path
    from model_store import ModelStore, check_keras_archive

    root, model_file = sys.argv[1:]
    ModelStore(root, check_model=check_keras_archive).register(
        "imdb-sentiment", Path(model_file), {}, params={}, metrics={}, data_fingerprint="",
    )
"""


def test_a_registration_killed_before_its_commit_never_appears(
    s3_bucket: str, tiny_model_file: Path
) -> None:
    root = f"{s3_bucket}/models"
    store = ModelStore(root)
    register(store, tiny_model_file)
    child = start_child(WRITER, root, tiny_model_file, fault="register.before-commit:1:stop")
    try:
        _, status = os.waitpid(child.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), "the writer exited instead of stopping"
        uploaded = [key for key in objects_under(f"{root}/{MODEL_NAME}") if "versions/2/" in key]
        assert "versions/2/model.keras" in uploaded and "versions/2/manifest.json" not in uploaded
        # Half a version is no version: not listed, not loaded, not latest.
        assert [version.version for version in store.list_versions(MODEL_NAME)] == [1]
        assert store.resolve(MODEL_NAME, "latest") == 1
        with pytest.raises(NotFoundError, match="unknown version 2"):
            store.load(MODEL_NAME, 2)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)
    # The dead writer's number stays taken; the next writer gets the one after it.
    assert register(store, tiny_model_file).version == 3
    assert store.verify_all(MODEL_NAME) == {1: None, 3: None}


PROMOTER = """
    import json, sys, time
    from pathlib import Path
    from model_store import ModelStore

    root, version, ready_file, go_file = sys.argv[1:]
    store = ModelStore(root)
    store.aliases("imdb-sentiment")
    Path(ready_file).touch()
    while not Path(go_file).exists():
        time.sleep(0.001)
    decision = store.promote("imdb-sentiment", int(version))
    print(json.dumps([decision.promote, decision.previous_champion]))
"""


def test_concurrent_promotions_in_object_storage_crown_the_best_version(
    s3_bucket: str, tmp_path: Path, tiny_model_file: Path
) -> None:
    promote_concurrently(f"{s3_bucket}/models", PROMOTER, tmp_path, tiny_model_file)


def test_corrupt_objects_are_refused_and_a_damaged_alias_log_is_repaired(
    s3_bucket: str, tiny_model_file: Path
) -> None:
    root = f"{s3_bucket}/models"
    store = ModelStore(root)
    for _ in range(2):
        register(store, tiny_model_file)
    store.set_alias(MODEL_NAME, "champion", 1)
    store.set_alias(MODEL_NAME, "champion", 2)

    model_object = locate(f"{root}/{MODEL_NAME}/versions/1/model.keras")
    content = bytearray(model_object.read_bytes())
    content[-1] ^= 0x01  # same size, different bytes: only the sha256 can tell
    model_object.write_atomically(bytes(content))
    with pytest.raises(IntegrityError, match=r"version 1 .*model\.keras was changed") as error:
        store.load(MODEL_NAME, 1)
    assert error.value.files == ["model.keras"]
    assert "model.keras" in str(store.verify_all(MODEL_NAME)[1])
    with pytest.raises(IntegrityError, match="cannot point alias 'champion' at version 1"):
        store.set_alias(MODEL_NAME, "champion", 1)
    store.load(MODEL_NAME, 2)  # the other version is intact

    newest = locate(f"{root}/{MODEL_NAME}/alias-log/{2:012d}.json")
    newest.write_atomically(b'{"aliases": ')
    with pytest.raises(IntegrityError, match=r"alias-log/000000000002\.json is not valid JSON"):
        store.aliases(MODEL_NAME)
    assert store.repair_aliases(MODEL_NAME) == [f"{2:012d}.json"]
    # Rebuilt from the newest readable entry: the champion where that entry left it.
    assert store.aliases(MODEL_NAME) == {"champion": 1}
    assert store.repair_aliases(MODEL_NAME) == []


def test_delete_in_object_storage_is_refused_while_aliased_and_numbers_stay_taken(
    s3_bucket: str, tiny_model_file: Path
) -> None:
    root = f"{s3_bucket}/models"
    store = ModelStore(root)
    for _ in range(3):
        register(store, tiny_model_file)
    store.set_alias(MODEL_NAME, "champion", 2)
    with pytest.raises(AliasInUseError, match="aliases point at it: champion"):
        store.delete(MODEL_NAME, 2)
    assert store.resolve(MODEL_NAME, 2) == 2  # the refused delete left no tombstone

    assert store.delete(MODEL_NAME, 3) == 3
    assert [key for key in objects_under(f"{root}/{MODEL_NAME}") if "versions/3/" in key] == [
        "versions/3/.claim",
        "versions/3/.deleted",
    ]
    with pytest.raises(NotFoundError, match="version 3 of 'imdb-sentiment' was deleted"):
        store.set_alias(MODEL_NAME, "canary", 3)
    with pytest.raises(NotFoundError, match="was deleted"):
        store.delete(MODEL_NAME, 3)
    assert store.resolve(MODEL_NAME, "latest") == 2
    assert register(store, tiny_model_file).version == 4  # 3 is never given out again


def test_missing_credentials_give_one_clear_error(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = f"{s3_bucket}/models"
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(variable)
    forget_s3_clients()
    with pytest.raises(StorageCredentialsError, match="no credentials") as error:
        ModelStore(root).list_models()
    assert isinstance(error.value, PermissionError)  # an OSError: flows end Failed, say why
    assert "AWS_ACCESS_KEY_ID" in str(error.value) and "\n" not in str(error.value)

    # Through the command line: exit status 1 and one line naming where and what to set.
    environment = {**os.environ, "REVIEW_SCORING_MODEL_STORE_ROOT": root}
    completed = subprocess.run(
        [sys.executable, "-m", "flows.cli", "models", "list"],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 1, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {root}: no credentials"), lines


def test_credentials_in_a_path_are_refused_without_being_repeated() -> None:
    with pytest.raises(ValueError, match="credentials do not go in the path") as error:
        ModelStore(f"s3://AKIAEXAMPLE:{SECRET_ACCESS_KEY}@bucket/models")
    assert SECRET_ACCESS_KEY not in str(error.value) and "AKIAEXAMPLE" not in str(error.value)
