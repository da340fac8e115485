"""The operator's journey through the Prefect UI, in a real browser: `make server` on a port other
than 4200, `make deploy`, a process worker, then Chromium at 1440x1000 opening the dashboard, the
deployments, their run forms, a scoring run's artifacts, the page a failure alert links to, and a
Quick run of the nightly deployment on a checkout with no reviews yet.

One server, worker and browser serve the whole module; the flow runs (a tiny training, a nightly
scoring, two scoring runs that fail as expected) run one after another in the background while
the first pages are checked. Every page checked is saved as a PNG (the folder is printed at the
end). The browser may reach the server only: any other request is refused and recorded, and the
last test asserts there was none. Skipped, saying why, where Debian's Chromium is not installed
(`.ci/run` installs it).
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flows.deploy import DOCKER_POOL, NIGHTLY_SCORING, PROCESS_POOL, TRAINING
from testkit.browser import CHROMIUM, UiBrowser, chromium, follow
from testkit.servers import (
    REPO,
    RUN_TIMEOUT,
    ManagedProcess,
    PrefectServer,
    WebhookReceiver,
    deploy_project,
    describe,
    prefect_server,
    project_environment,
    start_worker,
    wait_for_final_state,
    wait_until,
)
from testkit.synthetic import TINY_RECIPE as TINY
from testkit.synthetic import write_labeled_dataset, write_labeled_parquet

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (as .ci/run does) "
        "to run the browser test",
    ),
]

MODEL_NAME = "imdb-sentiment"
REVIEW_FILES = 2
ROWS_PER_FILE = 40
UNKNOWN_VERSION = "99"
CORRUPT_FILE = "broken.parquet"
# The deployments read reviews from here, which does not exist yet: a new checkout's data/reviews.
LANDING = "landing"
# Where the shell of the issue pointed PREFECT_API_URL: `make server` must not follow it.
ANOTHER_SERVER = "http://127.0.0.1:4200/api"


@dataclass
class Journey:
    """What the module's tests look at: the server, its alerts, the browser, and the runs."""

    server: PrefectServer
    receiver: WebhookReceiver
    worker: ManagedProcess
    browser: UiBrowser
    deployment_ids: dict[str, str]  # `flow/deployment` -> id
    runs: dict[str, Future[Any]]  # started in this order: train, score, missing model, corrupt
    root: Path  # the journey's folders: models, reviews, the landing folder, predictions
    environment: dict[str, str]  # a command's, as `make` gives it, against this server

    def run(self, name: str) -> Any:
        """The flow run once it has ended (its future re-raises what went wrong starting it)."""
        return self.runs[name].result(timeout=4 * RUN_TIMEOUT)

    def alert_for(self, flow_run_id: object) -> dict[str, Any]:
        """The payload the failure webhook received for that run."""

        def received() -> dict[str, Any] | None:
            for request in self.receiver.received:
                if request["payload"].get("flow_run_id") == str(flow_run_id):
                    return request["payload"]
            return None

        return wait_until(received, 120, f"the failure alert for flow run {flow_run_id}")


def _run_in_order(
    api_url: str, worker: ManagedProcess, steps: dict[str, tuple[str, dict[str, Any]]]
) -> tuple[ThreadPoolExecutor, dict[str, Future[Any]]]:
    """Start each step's run from its deployment (`flow/deployment`, parameters) once the one
    before has ended, in a background thread; a future per step gives the ended flow run."""
    from prefect.client.orchestration import SyncPrefectClient

    def run(deployment_name: str, parameters: dict[str, Any]) -> Any:
        with SyncPrefectClient(api=api_url) as client:
            deployment = client.read_deployment_by_name(deployment_name)
            flow_run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
            return wait_for_final_state(client, flow_run.id, worker)

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journey-runs")
    futures = {name: executor.submit(run, *step) for name, step in steps.items()}
    return executor, futures


def _journey_runs(root: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """The runs an operator would see, their data written under `root`: a tiny training on
    labeled Parquet, the nightly scoring as its schedule starts it, and two expected failures
    (an unknown model version; a folder with one corrupt file beside a good one)."""
    dataset = write_labeled_dataset(root / "imdb", train_rows=500, test_rows=150)
    for index in range(REVIEW_FILES):
        write_labeled_parquet(root / "reviews" / f"reviews-{index}.parquet", ROWS_PER_FILE, index)
    corrupt = root / "corrupt"
    write_labeled_parquet(corrupt / "good.parquet", ROWS_PER_FILE, 7)
    (corrupt / CORRUPT_FILE).write_bytes(b"PAR1 this is not a Parquet file")
    corrupt_run = {"input_path": str(corrupt), "output_root": str(root / "corrupt-predictions")}
    reviews = {"input_path": str(root / "reviews")}
    return {
        "train": (TRAINING, {"params": {**TINY, "data_path": str(dataset)}}),
        "score": (NIGHTLY_SCORING, {"params": reviews}),
        "missing model": (
            NIGHTLY_SCORING,
            {"params": {**reviews, "model_ref": UNKNOWN_VERSION}},
        ),
        "corrupt file": (NIGHTLY_SCORING, {"params": corrupt_run}),
    }


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journey]:
    started, wall_started = time.monotonic(), time.time()
    root = tmp_path_factory.mktemp("ui")
    # The deployments point at a landing folder that is not there yet, as a new checkout's
    # data/reviews; the journey's scoring runs name their input.
    environment = {**project_environment(root), "REVIEW_SCORING_INPUT_DIR": str(root / LANDING)}
    # TensorFlow's log level as the project sets it, not as the test session does.
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)
    screenshots = root / "screenshots"

    timings: dict[str, float] = {}
    with (
        WebhookReceiver().running() as receiver,
        prefect_server(
            root / "server-home", {**environment, "PREFECT_API_URL": ANOTHER_SERVER}, REPO, ui=True
        ) as server,
    ):
        timings["server_s"] = time.monotonic() - started
        client_environment = {
            **environment,
            "PREFECT_API_URL": server.api_url,
            "PREFECT_HOME": str(root / "client-home"),
        }
        worker = start_worker(client_environment, root)
        executor = None
        try:
            deploy = deploy_project(client_environment, receiver.url)
            assert deploy.returncode == 0, f"{deploy.stdout[-3000:]}\n{deploy.stderr[-3000:]}"
            timings["deployed_s"] = time.monotonic() - started
            executor, runs = _run_in_order(server.api_url, worker, _journey_runs(root))
            from prefect.client.orchestration import SyncPrefectClient

            with SyncPrefectClient(api=server.api_url) as client:
                deployment_ids = {
                    name: str(client.read_deployment_by_name(name).id)
                    for name in (TRAINING, NIGHTLY_SCORING)
                }
            with chromium(server.url, root / "chromium-profile", screenshots) as browser:
                timings["browser_s"] = time.monotonic() - started
                yield Journey(
                    server,
                    receiver,
                    worker,
                    browser,
                    deployment_ids,
                    runs,
                    root,
                    client_environment,
                )
                for name, future in runs.items():
                    if future.done() and not future.exception():
                        ended = future.result().state.timestamp
                        timings[f"run {name} ended_s"] = ended.timestamp() - wall_started
                print(f"ui journey: requests blocked: {sorted(set(browser.blocked))}")
        except BaseException:
            print(worker.log_tail(), server.process.log_tail(), sep="\n")
            raise
        finally:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
            worker.stop()
            timings["total_s"] = time.monotonic() - started
            rounded = {name: round(seconds, 1) for name, seconds in timings.items()}
            print(f"ui journey: {json.dumps(rounded)}; screenshots in {screenshots}")


def _open_from_sidebar(journey: Journey, section: str) -> Any:
    """The UI's root, as a person opens it, then a section of its sidebar."""
    page = journey.browser.open(f"{journey.server.url}/")
    page.locator(".p-context-sidebar").get_by_text(section, exact=True).first.click()
    return page


def _open_tab(page: Any, name: str) -> None:
    """One of a page's tabs (a deployment's Parameters, a run's Artifacts): the first text of
    that name, as the tabs come first on the page."""
    page.get_by_text(name, exact=True).first.click()


def _form_field(page: Any, title: str) -> Any:
    """A field of the run form by its title ("Input Path"): the innermost form property whose
    label it is (the `params` object around it holds every label)."""
    label = re.compile(rf"^{re.escape(title)}( \(Optional\))?$")
    return (
        page.locator(".schema-form-property")
        .filter(has=page.locator(".schema-form-property__label").get_by_text(label))
        .last
    )


def _open_deployment(page: Any, journey: Journey, full_name: str) -> None:
    """From the deployments page, the page of one deployment (`flow/deployment`)."""
    deployment_name = full_name.split("/")[1]
    link = page.get_by_role("link", name=deployment_name, exact=True).first
    follow(page, link, journey.deployment_ids[full_name])


def _run_link(page: Any, flow_run_id: object) -> Any:
    """The link to a flow run's page in a list of runs (its text is the run's name), not the
    chart's dot above the list, an SVG link to the same page."""
    return page.locator(f"a[href*='/runs/flow-run/{flow_run_id}']:not(svg a)").first


# --- the UI reaches the API of its own server, and nothing else ----------------------------------


def test_the_dashboard_reads_from_its_own_server(journey: Journey) -> None:
    from playwright.sync_api import expect

    server, browser = journey.server, journey.browser
    with urllib.request.urlopen(f"{server.url}/ui-settings", timeout=10) as response:
        ui_settings = json.load(response)
    assert ui_settings["api_url"] == server.api_url  # not the shell's PREFECT_API_URL (4200)

    page = browser.open(f"{server.url}/")
    # Both cards are drawn from this server's API: its runs, and the project's work pool.
    expect(page.get_by_text("Flow Runs", exact=True).first).to_be_visible()
    expect(page.get_by_text(PROCESS_POOL, exact=True).first).to_be_visible()
    expect(page.get_by_text("Unable to connect")).to_have_count(0)
    browser.screenshot(page, "dashboard")
    assert browser.loopback_elsewhere() == [], "the UI called another server on this machine"
    page.close()


# --- issue 24, item 3: no Docker pool unless asked -----------------------------------------------


def test_no_docker_pool_or_deployment_unless_asked(journey: Journey) -> None:
    from playwright.sync_api import expect

    page = _open_from_sidebar(journey, "Work Pools")
    expect(page.get_by_text(PROCESS_POOL, exact=True).first).to_be_visible()
    expect(page.get_by_text(DOCKER_POOL, exact=True)).to_have_count(0)
    journey.browser.screenshot(page, "work pools")
    page.locator(".p-context-sidebar").get_by_text("Deployments", exact=True).first.click()
    expect(page.get_by_text("nightly", exact=True).first).to_be_visible()
    expect(page.get_by_text("nightly-docker", exact=True)).to_have_count(0)
    journey.browser.screenshot(page, "deployments")
    page.close()


# --- issue 24, items 1, 6 and 7: a deployment's page says when, where, and names what is next ----


def test_the_nightly_deployment_says_when_and_where(journey: Journey) -> None:
    """Item 1: the schedule in words with its zone; item 6: where its runs read and write, in
    its description and its Parameters tab; item 7: its upcoming runs already carry names."""
    from playwright.sync_api import expect

    page = _open_from_sidebar(journey, "Deployments")
    _open_deployment(page, journey, NIGHTLY_SCORING)
    _open_tab(page, "Description")
    description = page.get_by_text(re.compile("^Runs nightly at 02:00 UTC: scores"))
    expect(description).to_be_visible()
    for folder in (LANDING, "predictions", "models"):
        expect(description).to_contain_text(str(journey.root / folder))
    # Every parameter, one a row, with the value its runs use, inside the window.
    for parameter, value in (("input_path", journey.root / LANDING), ("model_ref", "champion")):
        row = page.get_by_role("row").filter(has=page.get_by_text(parameter, exact=True))
        used = row.get_by_role("cell").nth(1)
        expect(used).to_have_text(str(value))
        expect(used).to_be_in_viewport(ratio=1.0)
    journey.browser.screenshot(page, "nightly description", full_page=True)

    _open_tab(page, "Parameters")
    override = page.get_by_role("row").filter(has_text="params")
    for field, folder in (("input_path", LANDING), ("output_root", "predictions")):
        expect(override).to_contain_text(f'"{field}": "{journey.root / folder}"')
    journey.browser.screenshot(page, "nightly parameters tab")

    _open_tab(page, "Upcoming")
    expect(page.get_by_text(re.compile(r"^score \d{4}-")).first).to_be_visible()
    names = [
        text.strip()
        for text in page.locator("a[href*='/runs/flow-run/']:not(svg a)").all_inner_texts()
    ]
    night = re.compile(rf"^score \d{{4}}-\d{{2}}-\d{{2}} 02:00 {LANDING} (v\d+ \()?champion\)?$")
    assert names and all(night.match(name) for name in names), names
    journey.browser.screenshot(page, "nightly upcoming runs")
    page.close()


# --- a scoring run's page, with its artifacts ----------------------------------------------------


def _open_artifacts_of(journey: Journey, flow_run: Any) -> Any:
    """A flow run's page, from the runs list, on its Artifacts tab."""
    page = _open_from_sidebar(journey, "Runs")
    follow(page, _run_link(page, flow_run.id), str(flow_run.id))
    _open_tab(page, "Artifacts")
    return page


def test_a_scoring_run_shows_its_summary_table(journey: Journey) -> None:
    from playwright.sync_api import expect
    from prefect.client.schemas.objects import StateType

    scoring_run = journey.run("score")
    assert scoring_run.state.type == StateType.COMPLETED, describe(scoring_run)

    page = _open_artifacts_of(journey, scoring_run)
    summary_card = page.get_by_text("scoring-summary", exact=True).first
    expect(summary_card).to_be_visible()
    expect(page.get_by_text("scoring-progress", exact=True).first).to_be_visible()
    journey.browser.screenshot(page, "scoring run artifacts")
    summary_card.click()
    table = page.get_by_role("table").first
    expect(table).to_be_visible()
    for index in range(REVIEW_FILES):
        row = table.get_by_role("row").filter(has_text=f"reviews-{index}.parquet")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("scored")
    expect(table.get_by_role("row").filter(has_text="total")).to_contain_text(
        str(REVIEW_FILES * ROWS_PER_FILE)
    )
    journey.browser.screenshot(page, "scoring summary table")
    page.close()


def test_a_failed_files_error_reads_without_scrolling(journey: Journey) -> None:
    """Item 2: the failed file comes first, its error whole inside the window."""
    from playwright.sync_api import expect

    corrupt_run = journey.run("corrupt file")
    page = _open_artifacts_of(journey, corrupt_run)
    page.get_by_text("scoring-summary", exact=True).first.click()
    table = page.get_by_role("table").first
    expect(table).to_be_visible()
    rows = table.get_by_role("row")
    expect(rows.nth(1)).to_contain_text(CORRUPT_FILE)  # row 0 holds the headings
    error = rows.nth(1).get_by_role("cell").nth(2)  # file, outcome, error
    expect(error).to_contain_text(re.compile("Parquet", re.IGNORECASE))
    expect(error).to_be_in_viewport(ratio=1.0)
    box = error.bounding_box()
    assert box is not None and box["x"] + box["width"] <= page.viewport_size["width"], box
    journey.browser.screenshot(page, "failed file first")
    page.close()


def test_a_training_run_links_its_artifacts_and_keys_its_progress(journey: Journey) -> None:
    """Item 4: the epoch progress artifact has a key; item 8: the training report and metrics
    artifacts name the run that made them."""
    from playwright.sync_api import expect
    from prefect.client.schemas.objects import StateType

    training_run = journey.run("train")
    assert training_run.state.type == StateType.COMPLETED, describe(training_run)
    page = _open_artifacts_of(journey, training_run)
    expect(page.get_by_text("training-progress", exact=True).first).to_be_visible()
    # The run's artifacts are the run's: its "Flow run" section lists them, not "None".
    lines = [line.strip() for line in page.locator("body").inner_text().splitlines()]
    lines = [line for line in lines if line]
    after = lines[lines.index("Flow run") + 1 :]
    assert after and after[0] != "None", after[:5]
    if "Task runs" in lines:  # the section is drawn empty
        assert lines[lines.index("Task runs") + 1] == "None", "an artifact sits on a task"
    journey.browser.screenshot(page, "training run artifacts", full_page=True)
    page.close()
    for key in (f"{MODEL_NAME}-training", f"{MODEL_NAME}-metrics"):
        page = _open_artifacts_of(journey, training_run)
        page.get_by_text(key, exact=True).first.click()
        page.wait_for_url(re.compile("/artifacts/"))
        # Its page links to the run that made it (not "Flow run: None").
        run_link = page.locator(f"a[href*='/runs/flow-run/{training_run.id}']").first
        expect(run_link).to_be_visible()
        expect(run_link).to_contain_text(training_run.name)
        expect(page.get_by_text("Flow run: None")).to_have_count(0)
        if key.endswith("-training"):
            expect(page.get_by_text(re.compile("promoted to .* by this run")).first).to_be_visible()
            journey.browser.screenshot(page, "training report", full_page=True)
        page.close()
    log = journey.worker.log_path.read_text(errors="replace")
    for line in ("absl::InitializeLog", "oneDNN custom operations"):
        assert line not in log, f"{line!r} in the worker's terminal"


# --- the alert links to the run's page ---------------------------------------------------


def test_the_failure_alert_links_to_the_run_page(journey: Journey) -> None:
    from playwright.sync_api import expect
    from prefect.client.schemas.objects import StateType

    failed = journey.run("missing model")
    assert failed.state.type == StateType.FAILED, describe(failed)
    alert = journey.alert_for(failed.id)
    assert alert["url"] == journey.server.flow_run_page(failed.id), alert

    page = journey.browser.open(alert["url"])
    expect(page.get_by_text(failed.name, exact=True).first).to_be_visible()
    expect(page.get_by_text("Failed", exact=True).first).to_be_visible()
    expect(page.get_by_text(PROCESS_POOL, exact=True).first).to_be_visible()
    # Its logs, down to the engine's last line.
    expect(page.get_by_text(re.compile("Finished in state")).first).to_be_visible()
    journey.browser.screenshot(page, "alert link failed run")
    page.close()


def test_the_automations_read_in_words(journey: Journey) -> None:
    """Never silent (issue 22, item 3): each automation `make deploy` made reads in words in the
    UI: its name, what it does, its trigger with the tag and the states, not "A custom trigger"."""
    from playwright.sync_api import expect

    from flows.alerts import (
        ABSENCE_ALERT_NAME,
        ALERT_NAME,
        BAD_ENDINGS,
        DRIFT_ALERT_NAME,
        LOST_RUN_NAME,
    )

    page = journey.browser.open(f"{journey.server.url}/automations")
    for name in (LOST_RUN_NAME, ALERT_NAME, ABSENCE_ALERT_NAME, DRIFT_ALERT_NAME):
        expect(page.get_by_text(name, exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile("sends none for 90 s .* is set Crashed"))).to_be_visible()
    expect(page.get_by_text(re.compile("has Completed for 26 h"))).to_be_visible()
    expect(page.get_by_text(re.compile("finds its scores drifted .* with the PSI"))).to_be_visible()
    # The run-state automations read as such; the drift one (a project event, which the UI
    # calls "A custom trigger") reads in its description, checked above.
    triggers = page.locator(".automation-trigger-description-flow-run-state")
    expect(triggers).to_have_count(3)
    bad_endings = triggers.filter(has_text="enters")
    for state in BAD_ENDINGS:
        expect(bad_endings.get_by_text(state, exact=True)).to_be_visible()
    expect(bad_endings).to_contain_text("When any flow run with the tag")
    expect(bad_endings).to_contain_text("nightly")
    expect(page.get_by_text("A custom trigger")).to_have_count(1)
    journey.browser.screenshot(page, "automations", full_page=True)
    page.close()


def test_the_registry_view_follows_every_change(journey: Journey) -> None:
    """Item 8: the model's registry view, one table artifact with a fixed key, says which
    version is champion, since when and why, and keeps the history: the training run's
    registration and promotion, then a change made from the command line."""
    from playwright.sync_api import expect

    from tasks.registry_view import registry_key

    journey.run("train")
    command = [sys.executable, "-m", "flows.cli", "models", "alias", "set", MODEL_NAME, "canary"]
    command += ["1", "--reason", "canary for the weekend"]
    changed = subprocess.run(
        command, cwd=REPO, env=journey.environment, capture_output=True, text=True, timeout=300
    )
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert "not updated" not in changed.stderr, changed.stderr[-3000:]

    page = journey.browser.open(f"{journey.server.url}/artifacts/key/{registry_key(MODEL_NAME)}")
    journey.browser.screenshot(page, "model registry view history")
    expect(
        page.get_by_text(
            re.compile(r"^champion: v1 since .* \(promoted by training run train ")
        ).first
    ).to_be_visible()
    # The newest version of the view (the key's page lists them, newest first).
    page.get_by_role("listitem").first.get_by_role("link").first.click()
    table = page.get_by_role("table").first
    rows = table.get_by_role("row")
    expect(rows.nth(1)).to_contain_text("canary for the weekend")
    expect(rows.nth(1)).to_contain_text("command line")
    expect(rows.nth(2)).to_contain_text("promoted")
    expect(rows.nth(3)).to_contain_text("registered")
    journey.browser.screenshot(page, "model registry view", full_page=True)
    page.close()


# --- the run forms ------------------------------------------------------------------------------


def _parameter_models() -> dict[str, type]:
    from flows.scoring import ScoreParams
    from flows.training import TrainParams

    return {TRAINING: TrainParams, NIGHTLY_SCORING: ScoreParams}


def test_the_run_forms_show_every_parameter_as_written_with_where_it_reads(
    journey: Journey,
) -> None:
    """Custom run opens on the fields themselves, each with its title and default; item 5: each
    description reads as written; item 6: the paths show where the run reads and writes, not
    None."""
    from playwright.sync_api import expect

    pinned = {
        "model_store_root": str(journey.root / "models"),
        "input_path": str(journey.root / LANDING),
        "output_root": str(journey.root / "predictions"),
    }
    for full_name, model in _parameter_models().items():
        _, deployment_name = full_name.split("/")
        schema = model.model_json_schema()
        defaults = model().model_dump(mode="json")

        page = _open_from_sidebar(journey, "Deployments")
        _open_deployment(page, journey, full_name)
        page.get_by_role("button", name="Run", exact=True).first.click()
        page.get_by_text("Custom run").click()
        for name, field in schema["properties"].items():
            shown = _form_field(page, field["title"])
            expect(shown).to_be_visible()
            expect(shown.get_by_text(field["description"], exact=True).first).to_be_visible()
            value = shown.locator("input, textarea").first
            if isinstance(defaults[name], int | float) and not isinstance(defaults[name], bool):
                assert float(value.input_value()) == defaults[name], (name, value.input_value())
            if name in pinned:
                assert value.input_value() == pinned[name], name
                expect(shown.get_by_text(re.compile("Property is type"))).to_have_count(0)
        journey.browser.screenshot(page, f"{deployment_name} custom run form", full_page=True)
        page.close()


def test_the_run_list_reads_as_a_log(journey: Journey) -> None:
    """Item 7: scoring runs named by date and time, input and the model version that scored,
    training runs by recipe and data source; no two alike."""
    expected = {
        "train": re.compile(r"^train .*\blstm\b.*\bparquet\b"),
        "score": re.compile(r"^score \d{4}-\d{2}-\d{2} \d{2}:\d{2} reviews v1 \(champion\)$"),
        "missing model": re.compile(
            rf"^score \d{{4}}-\d{{2}}-\d{{2}} \d{{2}}:\d{{2}} reviews v{UNKNOWN_VERSION}$"
        ),
        "corrupt file": re.compile(
            r"^score \d{4}-\d{2}-\d{2} \d{2}:\d{2} corrupt v1 \(champion\)$"
        ),
    }
    runs = {name: journey.run(name) for name in expected}

    page = _open_from_sidebar(journey, "Runs")
    shown = {}
    for name, flow_run in runs.items():
        link = _run_link(page, flow_run.id)
        link.wait_for()
        shown[name] = link.inner_text().strip()
    journey.browser.screenshot(page, "run list", full_page=True)
    page.close()
    assert all(expected[name].match(text) for name, text in shown.items()), shown
    assert len(set(shown.values())) == len(shown), shown


def test_expected_failures_read_as_one_error_line(journey: Journey) -> None:
    """Item 5: an unknown model version and a corrupt input file each end Failed with a state
    message that says what failed, and log one ERROR line and no traceback."""
    from playwright.sync_api import expect
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.objects import StateType

    must_name: dict[str, Callable[[str], bool]] = {
        "missing model": lambda text: MODEL_NAME in text and UNKNOWN_VERSION in text,
        "corrupt file": lambda text: text.count(CORRUPT_FILE) == 1,
    }
    with SyncPrefectClient(api=journey.server.api_url) as client:
        for name, names_it in must_name.items():
            failed = journey.run(name)
            assert failed.state.type == StateType.FAILED, describe(failed)
            assert names_it(failed.state.message or ""), describe(failed)

            def logs(flow_run_id: Any = failed.id) -> list[Any] | None:
                records = client.read_logs(
                    log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
                )
                ended = any(
                    record.task_run_id is None and "Finished in state" in record.message
                    for record in records
                )
                return records if ended else None

            records = wait_until(logs, 60, f"the logs of {failed.name}")
            errors = [record.message for record in records if record.level >= logging.ERROR]
            assert len(errors) == 1, (name, errors)
            [error] = errors
            assert "\n" not in error and names_it(error), (name, error)
            assert not any("Traceback" in record.message for record in records), name

    failed = journey.run("missing model")
    page = journey.browser.open(journey.server.flow_run_page(failed.id))
    expect(page.get_by_text(re.compile("Finished in state")).first).to_be_visible()
    assert "Traceback" not in page.locator("body").inner_text()
    journey.browser.screenshot(page, "expected failure logs")
    page.close()


# --- issue 24, item 9: the nightly deployment out of the box ------------------------------------


def test_a_quick_run_on_a_new_checkout_says_what_to_set(journey: Journey) -> None:
    """`make deploy`, then Run > Quick run on the nightly deployment, with no reviews landed
    yet: the run ends Failed with one line that says what to set and where."""
    from playwright.sync_api import expect
    from prefect.client.orchestration import SyncPrefectClient

    from tasks.scoring.inputs import WHERE_REVIEWS_GO

    for name in journey.runs:  # one scoring run at a time: the others first
        journey.run(name)
    page = _open_from_sidebar(journey, "Deployments")
    _open_deployment(page, journey, NIGHTLY_SCORING)
    with SyncPrefectClient(api=journey.server.api_url) as client:
        deployment_id = journey.deployment_ids[NIGHTLY_SCORING]
        before = {flow_run.id for flow_run in client.read_flow_runs()}

        def quick_run() -> Any:
            return next(
                (
                    flow_run
                    for flow_run in client.read_flow_runs()
                    if flow_run.id not in before and str(flow_run.deployment_id) == deployment_id
                ),
                None,
            )

        # A click on the menu that lands as the page redraws is lost: click again only while
        # no run was created, so there is never a second one.
        for attempt in range(3):
            page.get_by_role("button", name="Run", exact=True).first.click()
            quick = page.get_by_text("Quick run", exact=True).first
            expect(quick).to_be_visible()
            quick.click()
            try:
                started = wait_until(quick_run, 20, "the quick run")
                break
            except TimeoutError:
                if attempt == 2:
                    raise
        ended = wait_for_final_state(client, started.id, journey.worker)
    message = ended.state.message or ""
    assert ended.state.is_failed() and "\n" not in message, describe(ended)
    assert f"input_path: {journey.root / LANDING} does not exist" in message, message
    assert WHERE_REVIEWS_GO in message, message
    page.goto(journey.server.flow_run_page(ended.id))
    expect(page.get_by_text(re.compile("REVIEW_SCORING_INPUT_DIR")).first).to_be_visible()
    journey.browser.screenshot(page, "quick run on a new checkout", full_page=True)
    page.close()


# --- issue 24, items 10 and 11: a quiet server, and nothing leaves the machine --------------------


def test_the_server_log_has_no_locked_database_and_nothing_left_the_machine(
    journey: Journey,
) -> None:
    for name in journey.runs:
        journey.run(name)
    log = journey.server.process.log_path.read_text(errors="replace")
    assert "database is locked" not in log, journey.server.process.log_tail()
    assert "Traceback" not in log, journey.server.process.log_tail()
    assert journey.browser.blocked == [], "the UI called another host"
