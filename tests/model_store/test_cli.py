"""`review-scoring models ...` through a real argparse parser, on a real store in tmp_path."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest

from model_store import ModelStore, check_keras_archive
from model_store.cli import add_models_parser, run_models_command
from testkit.store import MODEL_NAME

# The fixtures every test_model_store_* file shares.
METRICS_BY_VERSION = [
    {"accuracy": 0.71, "auc": 0.78, "loss": 0.61},
    {"accuracy": 0.82, "auc": 0.88, "loss": 0.42},
    {"accuracy": 0.85, "auc": 0.91, "loss": 0.37},
]


@pytest.fixture
def store(tmp_path: Path, tiny_model_file: Path) -> ModelStore:
    """Three versions of imdb-sentiment, champion -> 2."""
    store = ModelStore(tmp_path / "models")
    for index, metrics in enumerate(METRICS_BY_VERSION):
        store.register(
            MODEL_NAME,
            tiny_model_file,
            {"word_index": {"great": 4}},
            params={"epochs": 2},
            metrics=metrics,
            data_fingerprint="sha256:abc",
            run_id=f"run-{index + 1}",
        )
    store.set_alias(MODEL_NAME, "champion", 2)
    return store


def run_cli(store: ModelStore, *argv: str) -> tuple[int, str, str]:
    """Parse `review-scoring models <argv>` as the console script would and run it."""
    parser = argparse.ArgumentParser(prog="review-scoring")
    add_models_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["models", *argv])
    stdout, stderr = io.StringIO(), io.StringIO()
    code = run_models_command(args, store.root, stdout=stdout, stderr=stderr)
    return code, stdout.getvalue(), stderr.getvalue()


def assert_one_error_line(stderr: str, *fragments: str) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_list_models_and_versions_as_table_and_json(store: ModelStore) -> None:
    code, out, _ = run_cli(store, "list")
    assert code == 0
    assert out.splitlines()[0].split() == ["MODEL", "VERSIONS", "LATEST", "ALIASES"]
    assert out.splitlines()[1].split() == [MODEL_NAME, "3", "3", "champion", "->", "2"]

    code, out, _ = run_cli(store, "list", MODEL_NAME)
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["VERSION", "CREATED", "ACCURACY", "AUC", "LOSS", "ALIASES", "STATUS"]
    assert rows[1].split()[0] == "2"
    assert rows[1].split()[-5:] == ["0.8200", "0.8800", "0.4200", "champion", "ok"]
    assert [row.split()[0] for row in rows] == ["1", "2", "3"]

    code, out, _ = run_cli(store, "list", MODEL_NAME, "--json")
    assert code == 0
    versions = json.loads(out)
    assert [version["version"] for version in versions] == [1, 2, 3]
    assert versions[1]["aliases"] == ["champion"]
    assert versions[2]["metrics"] == METRICS_BY_VERSION[2]
    assert [version["status"] for version in versions] == ["ok", "ok", "ok"]
    assert json.loads(run_cli(store, "list", "--json")[1]) == [
        {"name": MODEL_NAME, "versions": [1, 2, 3], "latest": 3, "aliases": {"champion": 2}}
    ]


def test_show_prints_the_manifest(store: ModelStore) -> None:
    code, out, _ = run_cli(store, "show", MODEL_NAME, "champion", "--json")
    assert code == 0
    assert json.loads(out) == store.manifest(MODEL_NAME, 2)

    code, out, _ = run_cli(store, "show", MODEL_NAME)
    assert code == 0
    assert "version:          3" in out
    assert "run id:           run-3" in out
    assert "model.keras" in out and "vocabulary.json" in out


def test_verify_reports_each_version_and_fails_on_tampering(store: ModelStore) -> None:
    code, out, err = run_cli(store, "verify", MODEL_NAME)
    assert (code, err) == (0, "")
    assert out.splitlines() == ["version 1: ok", "version 2: ok", "version 3: ok"]

    vocabulary = Path(store.root) / MODEL_NAME / "versions" / "2" / "vocabulary.json"
    vocabulary.chmod(0o644)
    vocabulary.write_text('{"word_index": {"great": 5}}')

    code, out, err = run_cli(store, "verify", MODEL_NAME)
    assert code == 1
    assert "version 2: FAILED" in out and "vocabulary.json" in out
    assert_one_error_line(err, "1 of 3", "2")

    code, out, err = run_cli(store, "verify", MODEL_NAME, "champion", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["results"][0]["version"] == 2 and not report["results"][0]["ok"]
    assert "vocabulary.json" in report["results"][0]["error"]
    assert_one_error_line(err)

    code, out, _ = run_cli(store, "verify", MODEL_NAME, "1", "--json")
    assert code == 0
    assert json.loads(out)["results"] == [{"version": 1, "ok": True, "error": None}]


def test_promote_rollback_and_alias_commands(store: ModelStore) -> None:
    code, out, _ = run_cli(store, "promote", MODEL_NAME, "3")
    assert code == 0 and out.strip() == f"champion -> version 3 of {MODEL_NAME} (was 2)"
    assert store.aliases(MODEL_NAME) == {"champion": 3}

    code, out, _ = run_cli(store, "rollback", MODEL_NAME)
    assert code == 0 and "version 2" in out
    assert store.aliases(MODEL_NAME) == {"champion": 2}

    code, _, err = run_cli(store, "rollback", MODEL_NAME)
    assert code == 1
    assert_one_error_line(err, "no earlier version")

    assert run_cli(store, "promote", MODEL_NAME, "latest", "--alias", "canary")[0] == 0
    assert run_cli(store, "alias", "set", MODEL_NAME, "staging", "1")[0] == 0
    assert store.aliases(MODEL_NAME) == {"champion": 2, "canary": 3, "staging": 1}
    assert run_cli(store, "alias", "remove", MODEL_NAME, "staging")[0] == 0
    assert store.aliases(MODEL_NAME) == {"champion": 2, "canary": 3}


def test_list_marks_a_corrupt_version_and_lists_the_others(store: ModelStore) -> None:
    manifest = Path(store.root) / MODEL_NAME / "versions" / "2" / "manifest.json"
    manifest.chmod(0o644)
    manifest.write_text("{")

    code, out, err = run_cli(store, "list", MODEL_NAME)
    assert (code, err) == (0, "")
    rows = out.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["1", "2", "3"]
    assert rows[1].split()[:2] == ["2", "-"]
    assert rows[1].endswith("champion  corrupt: manifest.json is not valid JSON")
    assert rows[0].endswith("ok") and rows[2].endswith("ok")
    versions = json.loads(run_cli(store, "list", MODEL_NAME, "--json")[1])
    assert versions[1]["status"] == "corrupt: manifest.json is not valid JSON"
    assert run_cli(store, "list")[0] == 0


def test_promote_onto_a_corrupt_version_is_refused(store: ModelStore) -> None:
    vocabulary = Path(store.root) / MODEL_NAME / "versions" / "3" / "vocabulary.json"
    vocabulary.chmod(0o644)
    vocabulary.write_text('{"word_index": {"great": 5}}')

    for argv in (["promote", MODEL_NAME, "3"], ["alias", "set", MODEL_NAME, "canary", "3"]):
        code, out, err = run_cli(store, *argv)
        assert (code, out) == (1, "")
        assert_one_error_line(
            err, "at version 3 of 'imdb-sentiment'", "vocabulary.json was changed"
        )
    assert store.aliases(MODEL_NAME) == {"champion": 2}


def test_a_corrupt_aliases_json_names_its_fix_and_repair_applies_it(
    store: ModelStore,
) -> None:
    (Path(store.root) / MODEL_NAME / "aliases.json").write_text('{"champion": ')
    for argv in (["promote", MODEL_NAME, "3"], ["list"], ["show", MODEL_NAME]):
        code, _, err = run_cli(store, *argv)
        assert code == 1
        assert_one_error_line(
            err,
            "aliases.json is not valid JSON",
            f"review-scoring models repair {MODEL_NAME}",
        )

    code, out, err = run_cli(store, "repair", MODEL_NAME)
    assert (code, err) == (0, "")
    assert out.strip().splitlines() == [
        f"repaired {MODEL_NAME} aliases.json: rewritten (it was unreadable)",
        "aliases: champion -> 2",
    ]
    assert run_cli(store, "promote", MODEL_NAME, "3")[0] == 0
    for command in (["repair"], ["alias", "repair"]):  # the older spelling does the same
        code, out, _ = run_cli(store, *command, MODEL_NAME)
        assert code == 0 and "sound" in out and "champion -> 3" in out


def test_verify_reports_a_model_that_safe_mode_refuses(
    store: ModelStore, lambda_model: Any, tmp_path: Path
) -> None:
    lambda_file = tmp_path / "lambda.keras"
    lambda_model.save(lambda_file)
    unchecked = ModelStore(store.root, check_model=check_keras_archive)
    unchecked.register(MODEL_NAME, lambda_file, {}, params={}, metrics={}, data_fingerprint="")

    code, out, err = run_cli(store, "verify", MODEL_NAME)
    assert code == 1
    assert out.splitlines()[:3] == ["version 1: ok", "version 2: ok", "version 3: ok"]
    assert out.splitlines()[3].startswith("version 4: FAILED: version 4 of 'imdb-sentiment'")
    assert "does not load with Keras safe_mode=True" in out
    assert_one_error_line(err, "1 of 4", "4")


def test_delete_is_refused_while_aliased(store: ModelStore) -> None:
    code, _, err = run_cli(store, "delete", MODEL_NAME, "2")
    assert code == 1
    assert_one_error_line(err, "cannot delete version 2", "champion")

    code, out, _ = run_cli(store, "delete", MODEL_NAME, "1")
    assert code == 0 and "deleted version 1" in out
    assert [version.version for version in store.list_versions(MODEL_NAME)] == [2, 3]


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["show", "other-model"], ["unknown model 'other-model'", MODEL_NAME]),
        (["show", MODEL_NAME, "9"], ["unknown version 9", "versions: 1, 2, 3", "champion -> 2"]),
        (["verify", MODEL_NAME, "staging"], ["unknown alias 'staging'"]),
        (["promote", MODEL_NAME, "2", "--alias", "../x"], ["invalid alias"]),
        (["list", "a/b"], ["invalid model name"]),
        (["alias", "remove", MODEL_NAME, "nope"], ["unknown alias 'nope'"]),
    ],
)
def test_errors_are_one_line_with_exit_code_1(
    store: ModelStore, argv: list[str], fragments: list[str]
) -> None:
    code, out, err = run_cli(store, *argv)
    assert (code, out) == (1, "")
    assert_one_error_line(err, *fragments)


def test_usage_errors_exit_with_2(store: ModelStore) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(store, "promote", MODEL_NAME)
    assert exit_info.value.code == 2


def test_empty_store_lists_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, out, _ = run_cli(ModelStore(tmp_path / "empty"), "list")
    assert code == 0 and "no models" in out
    assert json.loads(run_cli(ModelStore(tmp_path / "empty"), "list", "--json")[1]) == []


def test_a_store_root_that_is_not_there_is_an_error_not_an_empty_list(tmp_path: Path) -> None:
    for arguments in (("list",), ("list", "--json")):
        code, out, err = run_cli(ModelStore(tmp_path / "typo"), *arguments)
        assert (code, out) == (1, "")
        assert_one_error_line(err, f"no model store at {tmp_path / 'typo'}", "model_store_root")
