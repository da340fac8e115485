"""The model store on a real folder (tmp_path) with real tiny Keras models; no mocks.

Several tests run writers in separate processes. Those children register a `.keras` file saved
once by the parent instead of building a model, and check it with `check_keras_archive` rather
than Keras's safe mode: importing TensorFlow costs ~5 s of CPU per process, and without it the
children start together and really collide on version numbers.

The fixtures and helpers here are shared by the other test_model_store_* files.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model_store import (
    AliasInUseError,
    IntegrityError,
    InvalidInputError,
    InvalidNameError,
    LoadedModel,
    ModelStore,
    ModelStoreError,
    NotFoundError,
    check_keras_archive,
)
from testkit.store import (
    MODEL_NAME,
    VOCABULARY,
    build_tiny_model,
    child_environment,
    flip_last_byte,
    register,
    sample_batch,
    snapshot,
)

# ---------------------------------------------------------------------- register and load


def test_register_load_roundtrip_by_number_latest_and_alias(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    first_model, second_model = build_tiny_model(seed=1), build_tiny_model(seed=2)
    history_source = tmp_path / "history.json"
    history_source.write_text('{"loss": [0.7, 0.5]}')

    first = register(
        store,
        first_model,
        run_id="flow-run-1",
        extra_files={"history.json": history_source, "curves.png": b"\x89PNG fake"},
    )
    second = register(store, second_model, metrics={"accuracy": np.float32(0.8), "auc": 0.9})
    third = register(store, first_model)

    assert [first.version, second.version, third.version] == [1, 2, 3]
    assert first.path == str(tmp_path / "models" / MODEL_NAME / "versions" / "1")
    assert [version.version for version in store.list_versions(MODEL_NAME)] == [1, 2, 3]
    assert store.list_models() == [MODEL_NAME]
    assert store.resolve(MODEL_NAME) == 3
    published_first = snapshot(Path(first.path))

    batch = sample_batch()
    loaded = store.load(MODEL_NAME, 1)
    assert isinstance(loaded, LoadedModel)
    assert (loaded.name, loaded.version, loaded.path) == (MODEL_NAME, 1, first.path)
    np.testing.assert_allclose(
        loaded.model(batch, training=False), first_model(batch, training=False), rtol=1e-6
    )
    assert loaded.vocabulary == VOCABULARY
    assert (Path(first.path) / "history.json").read_text() == '{"loss": [0.7, 0.5]}'
    assert (Path(first.path) / "curves.png").read_bytes() == b"\x89PNG fake"

    assert store.load(MODEL_NAME, "latest").version == 3
    assert store.load(MODEL_NAME).version == 3
    assert store.set_alias(MODEL_NAME, "champion", 2) == 2
    by_alias = store.load(MODEL_NAME, "champion")
    assert by_alias.version == 2
    np.testing.assert_allclose(
        by_alias.model(batch, training=False),
        second_model(batch, training=False),
        rtol=1e-6,
    )

    manifest = store.manifest(MODEL_NAME, 1)
    assert manifest == first.manifest == loaded.manifest
    assert {
        "model_name",
        "version",
        "created_at",
        "run_id",
        "params",
        "metrics",
        "data_fingerprint",
        "library_versions",
        "files",
        "format_version",
    } <= set(manifest)
    assert (manifest["model_name"], manifest["version"], manifest["run_id"]) == (
        MODEL_NAME,
        1,
        "flow-run-1",
    )
    assert manifest["params"] == {"embedding_dim": 4, "epochs": 1}
    assert manifest["data_fingerprint"] == "sha256:abc"
    assert datetime.fromisoformat(manifest["created_at"]).utcoffset() == timedelta(0)
    assert set(manifest["library_versions"]) >= {"python", "keras", "tensorflow", "numpy"}
    assert all(manifest["library_versions"].values())
    # The commit of the code that registered it, and whether the checkout had changes: git's word.
    checkout = Path(__file__).resolve().parents[2]
    head, status = (
        subprocess.run(
            ["git", "-C", str(checkout), *arguments], capture_output=True, text=True, check=True
        ).stdout
        for arguments in (["rev-parse", "HEAD"], ["status", "--porcelain"])
    )
    assert manifest["source"] == {"commit": head.strip(), "tree_clean": not status.strip()}
    assert set(manifest["files"]) == {
        "model.keras",
        "vocabulary.json",
        "history.json",
        "curves.png",
    }
    for file_name, record in manifest["files"].items():
        content = (Path(first.path) / file_name).read_bytes()
        assert record == {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}
    assert store.manifest(MODEL_NAME, 2)["metrics"] == {"accuracy": pytest.approx(0.8), "auc": 0.9}
    assert store.manifest(MODEL_NAME, 2)["run_id"] is None

    # Later operations never touch a published version.
    register(store, first_model)
    store.set_alias(MODEL_NAME, "champion", 1)
    store.rollback(MODEL_NAME, "champion")
    store.delete(MODEL_NAME, 4)
    store.verify(MODEL_NAME, 1)
    assert snapshot(Path(first.path)) == published_first
    assert all(mode & 0o222 == 0 for *_, mode in published_first.values())


@pytest.mark.parametrize(
    ("commit", "clean", "expected"),
    [
        ("0123abc", "true", {"commit": "0123abc", "tree_clean": True}),
        ("0123abc", "false", {"commit": "0123abc", "tree_clean": False}),
        ("0123abc", "", {"commit": "0123abc", "tree_clean": None}),
    ],
)
def test_an_image_records_the_commit_it_was_built_from(
    tmp_path: Path,
    tiny_model_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    commit: str,
    clean: str,
    expected: dict[str, Any],
) -> None:
    """The image has no .git: its build's SOURCE_COMMIT and SOURCE_TREE_CLEAN (Dockerfile ENV)."""
    monkeypatch.setenv("REVIEW_SCORING_SOURCE_COMMIT", commit)
    monkeypatch.setenv("REVIEW_SCORING_SOURCE_TREE_CLEAN", clean)
    store = ModelStore(tmp_path / "models")
    registered = register(store, tiny_model_file)
    assert store.manifest(MODEL_NAME, registered.version)["source"] == expected


def test_resolve_accepts_numbers_digit_strings_latest_and_aliases(
    three_versions: ModelStore,
) -> None:
    store = three_versions
    store.set_alias(MODEL_NAME, "champion", "2")

    assert store.resolve(MODEL_NAME, 1) == 1
    assert store.resolve(MODEL_NAME, "3") == 3
    assert store.resolve(MODEL_NAME, "latest") == 3
    assert store.resolve(MODEL_NAME, "champion") == 2
    assert store.aliases(MODEL_NAME) == {"champion": 2}
    aliases_file = Path(store.root) / MODEL_NAME / "aliases.json"
    assert json.loads(aliases_file.read_text()) == {"champion": 2}
    assert [v.aliases for v in store.list_versions(MODEL_NAME)] == [(), ("champion",), ()]

    with pytest.raises(NotFoundError) as unknown_version:
        store.resolve(MODEL_NAME, 7)
    assert str(unknown_version.value) == (
        "unknown version 7 of 'imdb-sentiment'; versions: 1, 2, 3; aliases: champion -> 2"
    )
    with pytest.raises(
        NotFoundError, match=r"unknown alias 'staging'.*versions: 1, 2, 3; aliases: champion -> 2"
    ):
        store.load(MODEL_NAME, "staging")
    with pytest.raises(NotFoundError, match="unknown model 'other'; models: imdb-sentiment"):
        store.resolve("other", 1)
    with pytest.raises(InvalidNameError):
        store.resolve(MODEL_NAME, True)  # a bool is not a version number


def test_a_model_without_versions_is_reported_clearly(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "nowhere")
    assert store.list_models() == []
    with pytest.raises(NotFoundError, match="unknown model 'imdb-sentiment'; no models in"):
        store.load(MODEL_NAME)
    assert not (tmp_path / "nowhere").exists()  # reading creates nothing


def test_bad_arguments_are_refused_before_anything_is_written(
    tmp_path: Path, tiny_model_file: Path
) -> None:
    store = ModelStore(tmp_path / "models")
    with pytest.raises(InvalidInputError, match="vocabulary must be JSON serialisable"):
        store.register(
            MODEL_NAME,
            tiny_model_file,
            {"bad": object()},
            params={},
            metrics={},
            data_fingerprint="",
        )
    with pytest.raises(InvalidInputError, match="must be bytes or a Path"):
        register(store, tiny_model_file, extra_files={"notes.txt": "text or path?"})
    with pytest.raises(InvalidNameError, match="reserved"):
        register(store, tiny_model_file, extra_files={"manifest.json": b"{}"})
    with pytest.raises(InvalidNameError):
        register(store, tiny_model_file, extra_files={"../escape.txt": b""})
    with pytest.raises(InvalidInputError, match=r"is not a \.keras archive"):
        register(store, write_not_a_zip(tmp_path / "x.keras"))
    with pytest.raises(InvalidInputError, match="must be a Keras model"):
        register(store, object())
    assert not (tmp_path / "models").exists()


def write_not_a_zip(path: Path) -> Path:
    path.write_bytes(b"not a zip")
    return path


def test_a_model_safe_mode_refuses_is_refused_at_register_and_reported_by_verify(
    tmp_path: Path, lambda_model: Any
) -> None:
    store = ModelStore(tmp_path / "models")
    lambda_file = tmp_path / "lambda.keras"
    lambda_model.save(lambda_file)
    for model in (lambda_model, lambda_file):
        with pytest.raises(InvalidInputError, match="does not load with Keras safe_mode=True"):
            register(store, model)
    assert store.list_models() == []
    assert list((tmp_path / "models" / MODEL_NAME / ".staging").iterdir()) == []

    # A version published without that check (by an older store, say) fails verification.
    register(ModelStore(store.root, check_model=check_keras_archive), lambda_file)
    with pytest.raises(IntegrityError, match=r"version 1 .* safe_mode=True: .*`Lambda`") as error:
        store.verify(MODEL_NAME, 1)
    assert error.value.files == ["model.keras"]
    assert "safe_mode" in str(store.verify_all(MODEL_NAME)[1])


# ---------------------------------------------------------------------- tampering


@pytest.mark.parametrize("file_name", ["model.keras", "vocabulary.json", "history.json"])
def test_changed_file_is_refused_at_load_and_verify(
    store_with_extra_file: ModelStore, file_name: str
) -> None:
    store = store_with_extra_file
    path = Path(store.list_versions(MODEL_NAME)[0].path) / file_name
    path.chmod(0o644)
    flip_last_byte(path)

    with pytest.raises(IntegrityError, match=rf"version 1 .*{file_name} was changed") as error:
        store.load(MODEL_NAME, 1)
    assert error.value.files == [file_name]
    assert "\n" not in str(error.value)
    with pytest.raises(IntegrityError, match=file_name):
        store.verify(MODEL_NAME, 1)
    results = store.verify_all(MODEL_NAME)
    assert results[2] is None and file_name in str(results[1])
    store.load(MODEL_NAME, 2)  # the other version is intact


def test_changed_manifest_is_refused_at_load_and_verify(store_with_extra_file: ModelStore) -> None:
    store = store_with_extra_file
    path = Path(store.list_versions(MODEL_NAME)[0].path) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["metrics"]["accuracy"] = 0.99  # a "better" model, still valid JSON
    path.chmod(0o644)
    path.write_text(json.dumps(manifest, indent=2))

    for action in (store.load, store.verify, store.manifest):
        with pytest.raises(IntegrityError, match=r"manifest\.json was changed"):
            action(MODEL_NAME, 1)
    assert "manifest.json" in str(store.verify_all(MODEL_NAME)[1])


def test_a_version_with_an_unreadable_manifest_is_listed_as_corrupt(
    store_with_extra_file: ModelStore,
) -> None:
    store = store_with_extra_file
    path = Path(store.list_versions(MODEL_NAME)[0].path) / "manifest.json"
    path.chmod(0o644)
    path.write_text('{"model_name": ')

    first, second = store.list_versions(MODEL_NAME)  # the damaged one hides nothing
    assert (first.version, first.status) == (1, "corrupt: manifest.json is not valid JSON")
    assert (first.manifest, first.metrics, first.created_at) == ({}, {}, None)
    assert (second.version, second.status, second.problem) == (2, "ok", None)
    assert "manifest.json was changed" in str(store.verify_all(MODEL_NAME)[1])


def test_missing_and_unexpected_files_are_reported(store_with_extra_file: ModelStore) -> None:
    store = store_with_extra_file
    version_dir = Path(store.list_versions(MODEL_NAME)[0].path)
    (version_dir / "history.json").unlink()
    (version_dir / "evil.py").write_text("print('hi')")

    with pytest.raises(IntegrityError) as error:
        store.verify(MODEL_NAME, 1)
    assert "missing file history.json" in str(error.value)
    assert "unexpected file evil.py" in str(error.value)
    assert sorted(error.value.files) == ["evil.py", "history.json"]

    (version_dir / "manifest.sha256").unlink()
    with pytest.raises(IntegrityError, match=r"missing or unreadable file manifest\.sha256"):
        store.load(MODEL_NAME, 1)


# ---------------------------------------------------------------------- names

BAD_NAMES = ["/", "..", "a/b", "", " x", "x y", "é", ".hidden", "a\\b", "x\n", "a..b", "x" * 129]


@pytest.mark.parametrize("bad_name", BAD_NAMES)
def test_bad_model_names_are_refused(tmp_path: Path, tiny_model_file: Path, bad_name: str) -> None:
    store = ModelStore(tmp_path / "models")
    with pytest.raises(InvalidNameError, match="invalid model name"):
        register(store, tiny_model_file, name=bad_name)
    for action in (store.load, store.resolve, store.verify, store.list_versions):
        with pytest.raises(InvalidNameError):
            action(bad_name)
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("bad_alias", [*BAD_NAMES, "7", "0012", "latest", "LATEST"])
def test_bad_aliases_are_refused(tmp_path: Path, tiny_model_file: Path, bad_alias: str) -> None:
    store = ModelStore(tmp_path)
    register(store, tiny_model_file)
    with pytest.raises(InvalidNameError, match="alias"):
        store.set_alias(MODEL_NAME, bad_alias, 1)
    with pytest.raises(InvalidNameError):
        store.rollback(MODEL_NAME, bad_alias)
    assert store.aliases(MODEL_NAME) == {}


def test_good_names_are_accepted(tmp_path: Path, tiny_model_file: Path) -> None:
    store = ModelStore(tmp_path)
    for name in ["imdb-sentiment", "a", "Model_2.keras-v1", "x" * 128]:
        register(store, tiny_model_file, name=name)
        store.set_alias(name, "v1.0-rc_1", "latest")
    assert len(store.list_models()) == 4


# ---------------------------------------------------------------------- delete


def test_delete_is_refused_while_aliased_and_numbers_are_never_reused(
    three_versions: ModelStore, tiny_model_file: Path
) -> None:
    store = three_versions
    store.set_alias(MODEL_NAME, "champion", 3)
    store.set_alias(MODEL_NAME, "canary", 3)

    with pytest.raises(AliasInUseError, match="aliases point at it: canary, champion"):
        store.delete(MODEL_NAME, 3)
    with pytest.raises(AliasInUseError):
        store.delete(MODEL_NAME, "champion")
    store.verify(MODEL_NAME, 3)

    store.set_alias(MODEL_NAME, "champion", 1)
    store.remove_alias(MODEL_NAME, "canary")
    assert store.delete(MODEL_NAME, "latest") == 3
    assert [version.version for version in store.list_versions(MODEL_NAME)] == [1, 2]
    assert store.resolve(MODEL_NAME, "latest") == 2
    with pytest.raises(NotFoundError, match="version 3 of 'imdb-sentiment' was deleted"):
        store.load(MODEL_NAME, 3)
    with pytest.raises(NotFoundError):
        store.set_alias(MODEL_NAME, "champion", 3)
    with pytest.raises(NotFoundError):
        store.delete(MODEL_NAME, 3)

    assert register(store, tiny_model_file).version == 4
    store.delete(MODEL_NAME, 2)
    assert register(store, tiny_model_file).version == 5
    assert [version.version for version in store.list_versions(MODEL_NAME)] == [1, 4, 5]
    assert store.verify_all(MODEL_NAME) == {1: None, 4: None, 5: None}


def test_errors_share_one_base_class_and_one_line_messages(tmp_path: Path) -> None:
    for error_class in (NotFoundError, IntegrityError, InvalidNameError, AliasInUseError):
        assert issubclass(error_class, ModelStoreError)
    with pytest.raises(ModelStoreError) as error:
        ModelStore(tmp_path).set_alias("a\nb", "champion", 1)
    assert "\n" not in str(error.value)


def test_importing_the_store_imports_neither_prefect_nor_keras() -> None:
    code = (
        "import sys, model_store, model_store.cli; "
        "print(sorted({'prefect', 'keras', 'tensorflow'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=child_environment(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_version_is_known_by_its_manifest_sha256_wherever_its_store_lives(
    tmp_path: Path, tiny_model_file: Path
) -> None:
    import shutil

    first, second = ModelStore(tmp_path / "first"), ModelStore(tmp_path / "second")
    register(first, tiny_model_file)
    register(second, tiny_model_file)  # the same name and number, registered apart
    identity = first.manifest_sha256(MODEL_NAME, 1)
    manifest_file = Path(first.root) / MODEL_NAME / "versions" / "1" / "manifest.json"
    assert identity == hashlib.sha256(manifest_file.read_bytes()).hexdigest()
    assert second.manifest_sha256(MODEL_NAME, 1) != identity
    shutil.copytree(tmp_path / "first", tmp_path / "copy")  # a copy is the same model
    assert ModelStore(tmp_path / "copy").manifest_sha256(MODEL_NAME, "latest") == identity
