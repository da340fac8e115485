"""The `review-scoring` command: options made from the flows' parameter models, clear errors."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flows.cli import _params_from, build_parser, main
from flows.scoring import ScoreParams
from flows.training import TrainParams
from tasks.training import ARCHITECTURES
from testkit import REPOSITORY as REPO
from testkit.servers import project_environment, wait_until
from testkit.synthetic import write_labeled_dataset


def test_every_flow_parameter_is_an_option() -> None:
    parser = build_parser()
    args = parser.parse_args(
        [
            "train",
            "--source",
            "parquet",
            "--data-path",
            "d",
            "--architecture",
            "gru",
            "--epochs",
            "3",
            "--no-restore-best-weights",
            "--pooling",
            "max",
        ]
    )
    params = _params_from(args, TrainParams)
    assert (params.source, params.architecture, params.epochs) == ("parquet", "gru", 3)
    assert params.restore_best_weights is False and params.pooling == "max"
    assert params.embedding_dim == 32  # untouched options keep the flow's defaults
    args = parser.parse_args(["score", "--input-path", "x", "--task-runner", "local-dask"])
    assert _params_from(args, ScoreParams).task_runner == "local-dask"
    with pytest.raises(SystemExit):
        parser.parse_args(["score", "--task-runner", "spark"])


def test_help_lists_every_option_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_status:
        main(["train", "--help"])
    assert exit_status.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    for name in TrainParams.model_fields:
        assert f"--{name.replace('_', '-')}" in shown, name
    assert "(default: 10000)" in shown and "(default: lstm)" in shown


@pytest.mark.parametrize("command", ["train", "score"])
def test_help_says_which_paths_take_uris_and_where_defaults_come_from(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 26, item 6: --help never said that paths may be s3:// (or gs://) URIs, nor that the
    store, the name, the input and the output fall back to REVIEW_SCORING_* settings."""
    monkeypatch.setenv("REVIEW_SCORING_MODEL_STORE_ROOT", "gs://team-models/reviews")
    with pytest.raises(SystemExit):
        main([command, "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "s3://bucket/prefix" in shown and "gs://bucket/prefix" in shown
    assert "REVIEW_SCORING_* environment variables" in shown
    params_class = TrainParams if command == "train" else ScoreParams
    options = re.split(r" (?=--[a-z-]+ [A-Z_{])", shown)
    for name in params_class.model_fields:
        if name.endswith(("_path", "_root")):
            flag = f"--{name.replace('_', '-')}"
            [help_text] = [option for option in options if option.startswith(f"{flag} ")]
            assert "a local path, or an s3:// or gs:// URI" in help_text, help_text
    [store] = [option for option in options if option.startswith("--model-store-root ")]
    assert "REVIEW_SCORING_MODEL_STORE_ROOT" in store and "now: gs://team-models/reviews" in store


def test_the_cli_and_the_ui_form_offer_the_one_list_of_architectures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    form = TrainParams.model_json_schema()["properties"]["architecture"]
    assert form["enum"] == list(ARCHITECTURES)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert f"--architecture {{{','.join(ARCHITECTURES)}}}" in capsys.readouterr().out


def test_impossible_parameter_is_one_line_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--maxlen", "0"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --maxlen:") and "\n" not in error


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("train", "--model-name"),
        ("train", "--data-path"),
        ("train", "--model-store-root"),
        ("score", "--input-path"),
        ("score", "--model-name"),
    ],
)
def test_an_empty_option_is_refused_not_taken_for_the_default(
    command: str, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, option, ""]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {option}:") and "empty" in error and "\n" not in error


def _train_without_data(tmp_path: Path, *options: str) -> list[str]:
    """A training that would fail on its data (there is none), if it ever got that far."""
    return ["train", "--source", "parquet", "--data-path", str(tmp_path / "no-data"), *options]


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), err
    return lines[-1]


def test_a_bad_model_name_fails_before_any_data_is_read(
    prefect_api: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_root = tmp_path / "models"
    command = _train_without_data(
        tmp_path, "--model-name", "../evil", "--model-store-root", str(store_root)
    )
    assert main(command) == 1
    error = _one_error_line(capsys)
    assert "invalid model name '../evil'" in error and "no-data" not in error
    assert not store_root.exists()


def test_a_store_root_that_is_a_file_fails_before_any_data_is_read(
    prefect_api: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_root = tmp_path / "models"
    store_root.write_text("not a folder")
    assert main(_train_without_data(tmp_path, "--model-store-root", str(store_root))) == 1
    error = _one_error_line(capsys)
    assert f"model_store_root: {store_root} is not a folder" in error and "no-data" not in error


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root writes in a 0o500 folder anyway"
)
def test_a_store_root_without_write_permission_fails_before_any_data_is_read(
    prefect_api: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_root = tmp_path / "models"
    store_root.mkdir(mode=0o500)
    try:
        assert main(_train_without_data(tmp_path, "--model-store-root", str(store_root))) == 1
    finally:
        store_root.chmod(0o700)
    error = _one_error_line(capsys)
    assert f"model_store_root: cannot write in {store_root}" in error


def test_the_data_is_checked_once_the_destination_is_fine(
    prefect_api: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = _train_without_data(tmp_path, "--model-store-root", str(tmp_path / "models"))
    assert main(command) == 1
    assert "data_path:" in _one_error_line(capsys)
    assert (tmp_path / "models").is_dir() and not any((tmp_path / "models").iterdir())


def test_a_scoring_error_is_one_line_too(
    prefect_api: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_root = tmp_path / "empty-store"
    command = ["score", "--model-store-root", str(store_root), "--input-path", str(tmp_path)]
    assert main(command) == 1
    assert "imdb-sentiment" in _one_error_line(capsys)


def test_models_command_uses_the_settings_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REVIEW_SCORING_MODEL_STORE_ROOT", str(tmp_path / "store"))
    assert main(["models", "show", "imdb-sentiment"]) == 1
    assert "imdb-sentiment" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("stop", "exit_status"),
    [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 128 + signal.SIGINT)],
)
def test_a_run_stopped_by_sigterm_or_ctrl_c_ends_cancelled(
    prefect_api: None, tmp_path: Path, stop: signal.Signals, exit_status: int
) -> None:
    """The real command in its own process, against the test server: stopped mid-training, it
    exits 128 + the signal with one `error:` line, and its run ends Cancelled (was Crashed, or
    left Running), so the UI says it was stopped, not lost."""
    import prefect.settings
    from prefect import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    data = write_labeled_dataset(tmp_path / "data", train_rows=4000, test_rows=100)
    environment = {
        **project_environment(tmp_path),
        "PREFECT_API_URL": prefect.settings.PREFECT_API_URL.value(),
    }
    # Enough epochs that the run is still training when it is stopped.
    command = [sys.executable, "-m", "flows.cli", "train", "--source", "parquet"]
    model_name = f"stopped-by-{stop.name.lower()}"
    command += ["--data-path", str(data), "--epochs", "500", "--model-name", model_name]
    with get_client(sync_client=True) as client:

        def start() -> subprocess.Popen[str]:
            return subprocess.Popen(
                command,
                cwd=REPO,
                env=environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

        child = start()
        restarts = [1]  # a child that could not reach the busy test server is started once more

        def training() -> Any:
            nonlocal child
            if child.poll() is not None:
                early = child.communicate()[1][-3000:]
                if not restarts:
                    raise AssertionError(f"the command ended early: {early}")
                restarts.pop()
                child = start()
                return None
            ours = [
                run
                for run in client.read_flow_runs(
                    sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=20
                )
                if (run.parameters.get("params") or {}).get("model_name") == model_name
            ]
            if not ours:
                return None
            task_runs = client.read_task_runs(
                task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[ours[0].id]))
            )
            training_now = any(
                run.name.startswith("train-") and run.state and run.state.is_running()
                for run in task_runs
            )
            return ours[0] if training_now else None

        flow_run = wait_until(training, 180, "the training to start", interval=0.5)
        child.send_signal(stop)
        _, stderr = child.communicate(timeout=120)
        ended = client.read_flow_run(flow_run.id)

    assert child.returncode == exit_status, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == (
        f"error: stopped by {stop.name}; the run ends Cancelled"
    )
    assert "Traceback" not in stderr, stderr[-3000:]
    assert ended.state.is_cancelled(), ended.state
    assert ended.state.message == f"stopped from the command line ({stop.name})"


_SWALLOWED_STOP = """
import os, signal, sys, time
from prefect import flow
from flows.stopping import StoppedBySignal, stop_signals_end_runs_cancelled

class SignalsWhileCollected:
    def __del__(self):
        os.kill(os.getpid(), {signal_number})
        for _ in range(200_000):  # the stop is raised here, in a destructor, and swallowed
            pass

@flow(name="stopped-in-a-destructor")
def busy() -> None:
    SignalsWhileCollected()
    time.sleep(60)

started = []
try:
    with stop_signals_end_runs_cancelled(started):
        busy.with_options(on_crashed=[lambda flow, run, state: started.append(run.id)])()
except StoppedBySignal as stopped:
    print(started[-1])
    sys.exit(128 + stopped.signal_number)
"""


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_swallowed_by_a_destructor_comes_again_until_the_command_stops(
    prefect_api: None, stop: signal.Signals
) -> None:
    """Python swallows an exception raised in a destructor, so a SIGTERM (Prefect's
    TerminationSignal while a flow runs) or Ctrl-C that lands in one was lost, and the command
    trained on for its 500 epochs (seen in CI). The signal now comes again until it stops the
    command, which then ends the run Cancelled, with no traceback on the terminal."""
    import prefect.settings
    from prefect import get_client

    environment = {**os.environ, "PREFECT_API_URL": prefect.settings.PREFECT_API_URL.value()}
    child = subprocess.run(
        [sys.executable, "-c", _SWALLOWED_STOP.format(signal_number=int(stop))],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=50,  # the flow sleeps 60 s when the stop is lost
    )
    assert child.returncode == 128 + stop, child.stderr[-3000:]
    assert "Traceback" not in child.stderr, child.stderr[-3000:]
    with get_client(sync_client=True) as client:
        ended = client.read_flow_run(child.stdout.strip().splitlines()[-1])
    assert ended.state.is_cancelled(), ended.state


def test_the_command_prints_none_of_tensorflows_start_up_lines(tiny_model_store: Path) -> None:
    """Issue 24, item 4: absl's, oneDNN's and the CPU guard's start-up lines reached every
    command's terminal when TF_CPP_MIN_LOG_LEVEL was not set (the Makefile and the image set it,
    a shell does not). `models verify` loads a model: TensorFlow starts, no flow runs."""
    from testkit.synthetic import TINY_MODEL_NAME

    environment = {
        **{name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"},
        "REVIEW_SCORING_MODEL_STORE_ROOT": str(tiny_model_store),
    }
    child = subprocess.run(
        [sys.executable, "-m", "flows.cli", "models", "verify", TINY_MODEL_NAME],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    for line in ("absl::InitializeLog", "oneDNN", "cpu_feature_guard", "TF_ENABLE_ONEDNN_OPTS"):
        assert line not in child.stderr, child.stderr[-3000:]


def test_score_prints_a_short_summary_and_the_whole_record_with_json(
    prefect_api: None,
    tiny_model_store: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A few lines (files, rows by status, where the outputs are, the run's page) instead of
    the whole JSON record, which grew with every file (6,000 lines for 200 files)."""
    import json

    from testkit.scoring import write_reviews
    from testkit.synthetic import TINY_MODEL_NAME

    for day in ("day1", "day2"):
        write_reviews(tmp_path / "reviews" / f"{day}.parquet", rows=30, seed=len(day))
    command = ["score", "--model-store-root", str(tiny_model_store)]
    command += ["--model-name", TINY_MODEL_NAME, "--input-path", str(tmp_path / "reviews")]
    command += ["--output-root", str(tmp_path / "out")]
    assert main(command) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) <= 5, lines
    assert lines[0].startswith(
        f"{TINY_MODEL_NAME} v1: 2 files scored, 0 skipped, 0 failed; 60 rows"
    )
    assert lines[1].startswith(f"outputs: {tmp_path / 'out' / TINY_MODEL_NAME / 'v1'} (1 folders")
    assert lines[-1].startswith("run: http") and "/flow-run/" in lines[-1]

    assert main([*command, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["files_scored"], record["files_skipped"]) == (0, 2)
    # Unchanged inputs are counted, not read: the record lists only the files a run processed.
    assert record["files"] == [] and record["flow_run_url"].endswith(record["flow_run_id"])


def test_train_prints_a_short_summary_and_the_whole_record_with_json(
    prefect_api: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 26, item 4: training printed its whole JSON record; now the version, its metrics,
    promoted or not, where it is and the run's page. The best recipe is what it trains."""
    import json

    data = write_labeled_dataset(tmp_path / "data", train_rows=300, test_rows=100)
    command = ["train", "--source", "parquet", "--data-path", str(data), "--recipe", "best"]
    command += ["--model-store-root", str(tmp_path / "models"), "--epochs", "2"]
    command += ["--hash-buckets", "4096", "--units", "8"]
    assert main(command) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4, lines
    assert re.match(
        r"^imdb-sentiment v1: test accuracy [01]\.\d{4}, AUC [01]\.\d{4} on 100 reviews "
        r"\(best recipe, ngrams, [12] epochs in \d+ s, weights of epoch [12]\)$",
        lines[0],
    ), lines[0]
    assert lines[1].startswith("promoted to champion: "), lines[1]
    assert lines[2] == f"model: {tmp_path / 'models' / 'imdb-sentiment' / 'versions' / '1'}"
    assert lines[3].startswith("run: http") and "/flow-run/" in lines[3]

    assert main([*command, "--json", "--promote", "never"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["version"], record["recipe"], record["promoted"]) == (2, "best", False)
    # The recipe's settings, less the ones given on the command line.
    from model_store import ModelStore

    params = ModelStore(tmp_path / "models").manifest("imdb-sentiment", 2)["params"]
    assert (params["num_words"], params["maxlen"], params["ngram_weighting"]) == (
        50_000,
        1000,
        "nb",
    )
    assert (params["hash_buckets"], params["units"]) == (4096, 8)


def test_recipes_lists_each_recipe_with_the_options_it_sets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tasks.training.recipes import RECIPES

    assert main(["recipes"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("tutorial (default): the Keras tutorial")
    assert "\nbest: " in shown
    sets = re.search(r"^best: .*\n  sets: +(.*)$", shown, re.MULTILINE)
    assert sets, shown
    # The options it lists are the recipe: given by hand they make the same parameters.
    parser = build_parser()
    by_hand = _params_from(parser.parse_args(["train", *sets.group(1).split()]), TrainParams)
    by_name = _params_from(parser.parse_args(["train", "--recipe", "best"]), TrainParams)
    assert by_hand.model_dump(exclude={"recipe"}) == by_name.model_dump(exclude={"recipe"})
    assert by_name.model_dump(include=set(RECIPES["best"].settings)) == RECIPES["best"].settings
    # The tutorial is every default; an option given beside a recipe wins over it.
    tutorial = _params_from(parser.parse_args(["train", "--recipe", "tutorial"]), TrainParams)
    assert tutorial == TrainParams()
    given = _params_from(
        parser.parse_args(["train", "--recipe", "best", "--units", "64"]), TrainParams
    )
    assert (given.units, given.architecture) == (64, "ngrams")
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--recipe", "fastest"])


@pytest.mark.parametrize("recipe", ["tutorial", "best"])
def test_the_demo_trains_no_epoch_that_early_stopping_would_throw_away(recipe: str) -> None:
    """Issue 26, item 5: `make demo` trained ten epochs of the tutorial's LSTM and kept the
    first's weights. Its training now stops one epoch after the best validation loss, and
    RECIPE=best trains the best recipe."""
    planned = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", "venv", "train", f"RECIPE={recipe}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    options = planned[planned.index("train") + 1 :]
    params = _params_from(build_parser().parse_args(["train", *options]), TrainParams)
    assert (params.recipe, params.early_stopping_patience) == (recipe, 1)
    assert params.restore_best_weights and params.epochs == 10


def test_an_expected_failure_reaches_the_terminal_once(prefect_api: None, tmp_path: Path) -> None:
    """Issue 26, item 4: an offline `make demo` printed its one clear error three times (the task
    run's and the flow run's "Finished in state Failed(...)", then the command's own line), with
    the failure hook's two "Running hook" lines. Now the command's line alone; the run's page
    keeps the rest (the lines still go to the API)."""
    import prefect.settings

    missing = tmp_path / "no-such-data"
    command = [sys.executable, "-m", "flows.cli", "train", "--source", "parquet"]
    child = subprocess.run(
        [*command, "--data-path", str(missing), "--model-store-root", str(tmp_path / "models")],
        cwd=REPO,
        env={
            **project_environment(tmp_path),
            "PREFECT_API_URL": prefect.settings.PREFECT_API_URL.value(),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 1, child.stderr[-3000:]
    errors = [line for line in child.stderr.splitlines() if str(missing) in line]
    assert len(errors) == 1 and errors[0].startswith("error: "), child.stderr[-3000:]
    assert "Running hook" not in child.stderr and "Traceback" not in child.stderr
    assert "Beginning flow run" in child.stderr  # the run's other lines are still there


def test_logs_switch_to_json_lines_with_the_run_the_file_and_the_counts(
    prefect_api: None, tiny_model_store: Path, tmp_path: Path
) -> None:
    """The setting (Prefect's logging settings, as `LOG_FORMAT=json` makes them) turns every log
    line of a run into one JSON object; without it, the lines stay as they were."""
    import json
    import re

    import prefect.settings

    from testkit.scoring import write_reviews
    from testkit.synthetic import TINY_MODEL_NAME

    write_reviews(tmp_path / "reviews" / "day1.parquet", rows=30, seed=1)
    command = [sys.executable, "-m", "flows.cli", "score", "--model-name", TINY_MODEL_NAME]
    command += ["--model-store-root", str(tiny_model_store)]
    command += ["--input-path", str(tmp_path / "reviews")]
    environment = {
        **project_environment(tmp_path),
        "PREFECT_API_URL": prefect.settings.PREFECT_API_URL.value(),
    }
    # What `make ... LOG_FORMAT=json` exports, read from make's own database.
    database = subprocess.run(
        ["make", "--no-print-directory", "-o", "venv", "-n", "-p", "LOG_FORMAT=json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    json_lines = dict(re.findall(r"^(PREFECT_LOGGING_\w+) := (\S+)$", database, re.MULTILINE))
    assert set(json_lines) == {
        "PREFECT_LOGGING_FORMATTERS_JSON_CLASS",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_FORMATTER",
    }
    prefect_line = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} \| ")

    def run(extra: dict[str, str], output_root: Path) -> list[str]:
        child = subprocess.run(
            [*command, "--output-root", str(output_root)],
            cwd=REPO,
            env={**environment, **extra},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert child.returncode == 0, child.stderr[-3000:]
        return child.stderr.splitlines()

    plain = run({}, tmp_path / "plain")
    assert any(prefect_line.match(line) for line in plain), plain
    lines = run(json_lines, tmp_path / "json")
    assert not any(prefect_line.match(line) for line in lines), lines
    records = [json.loads(line) for line in lines if line.startswith("{")]
    [scored] = [record for record in records if record.get("input_file") == "day1.parquet"]
    assert scored["rows"] == 30 and scored["status_counts"] == {"ok": 30}
    assert scored["flow_run_id"] and scored["task_run_name"] == "score-file day1.parquet"
    [summary] = [record for record in records if "files_scored" in record]
    assert (summary["files_scored"], summary["files_failed"], summary["rows_ok"]) == (1, 0, 30)
    assert summary["flow_run_id"] == scored["flow_run_id"]


def test_a_run_on_a_temporary_server_links_no_page(tiny_model_store: Path, tmp_path: Path) -> None:
    """Without PREFECT_API_URL the command runs on a temporary server that has no UI: its summary
    must not link to "None/flow-runs/...", as it did."""
    from testkit.scoring import write_reviews
    from testkit.synthetic import TINY_MODEL_NAME

    write_reviews(tmp_path / "reviews" / "day1.parquet", rows=5, seed=1)
    command = [sys.executable, "-m", "flows.cli", "score", "--model-name", TINY_MODEL_NAME]
    command += ["--model-store-root", str(tiny_model_store), "--input-path"]
    command += [str(tmp_path / "reviews"), "--output-root", str(tmp_path / "out")]
    environment = project_environment(tmp_path)
    environment["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    environment["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
    child = subprocess.run(
        command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=300
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert "None/" not in child.stdout and "run: " not in child.stdout, child.stdout
    assert child.stdout.startswith(f"{TINY_MODEL_NAME} v1: 1 files scored"), child.stdout


def test_the_command_line_adds_its_changes_to_the_view_and_emits_events(
    prefect_api: None, tiny_model_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 24, item 8: a promotion, a rollback and a delete from the command line each leave a
    row in the model's registry view, its description follows the champion, and every change is
    an event (tasks/registry_view.py)."""
    import json
    import shutil

    from prefect import get_client
    from prefect.artifacts import Artifact
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from model_store import ModelStore
    from tasks.registry_view import registry_key
    from testkit.servers import wait_until
    from testkit.store import build_tiny_model, register
    from testkit.synthetic import TINY_MODEL_NAME as NAME

    root = tmp_path / "models"
    shutil.copytree(tiny_model_store, root)
    store = ModelStore(root)
    for seed in (5, 6):  # v2 and v3
        register(store, build_tiny_model(seed), NAME)
    monkeypatch.setenv("REVIEW_SCORING_MODEL_STORE_ROOT", str(root))
    key = registry_key(NAME)

    assert main(["models", "promote", NAME, "2", "--reason", "canary looked fine"]) == 0
    assert main(["models", "rollback", NAME, "--reason", "v2 mislabels sarcasm"]) == 0
    assert main(["models", "delete", NAME, "3"]) == 0

    latest = Artifact.get(key)
    assert latest is not None and latest.type == "table"
    rows = json.loads(latest.data) if isinstance(latest.data, str) else latest.data
    assert [(row["change"], row["version"]) for row in rows] == [
        ("deleted", "v3"),
        ("rolled-back", "v1"),
        ("promoted", "v2"),
    ]
    assert rows[1]["why"] == "v2 mislabels sarcasm" and rows[1]["was"] == "v2"
    assert "no --reason given" in rows[0]["why"]
    assert latest.description.startswith("champion: v1 since ")
    assert "v2 mislabels sarcasm" in latest.description
    with get_client(sync_client=True) as client:
        versions = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
        assert len(versions) == 3  # the history of the view itself, one per command

        def events() -> list[str] | None:  # the server stores events a moment after
            found = client.request(
                "POST",
                "/events/filter",
                json={"filter": {"resource": {"id": [f"review-scoring.model.{NAME}"]}}},
            ).json()["events"]
            return sorted(event["event"] for event in found) if len(found) >= 3 else None

        emitted = wait_until(events, 60, "the registry's events")
    assert emitted == [
        "review-scoring.model.deleted",
        "review-scoring.model.promoted",
        "review-scoring.model.rolled-back",
    ]
