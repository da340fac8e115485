"""Never silent (issue 22, items 1 to 3), end to end on a real `make server`, `make deploy`'s
step and process workers: a night that never completes alerts; a host lost mid-run (kill -9 of
the worker and of the run's process) ends its run Crashed and alerts within 3 minutes, and the
next night runs; a run cancelled by the concurrency limit and one past its timeout alert with
their reasons; a night whose scores drifted says so in its state and alerts (item 7).

Nothing is mocked: the run stops itself (SIGSTOP at a fault point) so that it is mid-scoring
when the host goes, then the worker's process group and the run's process are killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from flows.alerts import ABSENCE_ALERT_NAME, ALERT_NAME, DRIFT_ALERT_NAME, LOST_RUN_NAME
from flows.deploy import NIGHTLY_SCORING
from storage.faults import FAULT_VARIABLE
from testkit.servers import (
    REPO,
    ManagedProcess,
    WebhookReceiver,
    deploy_project,
    describe,
    prefect_server,
    project_environment,
    start_worker,
    stopped_process,
    wait_for_final_state,
    wait_until,
)
from testkit.store import train_tiny_store
from testkit.synthetic import TINY_MODEL_NAME, write_labeled_parquet

pytestmark = pytest.mark.e2e

NO_SUCCESS_SECONDS = 20  # the absence window here; by default one schedule interval + 2 h
ALERT_DEADLINE_SECONDS = 180  # the bound from the host's loss to the alert


def stopped_run_process(flow_run_id: object) -> int | None:
    """The pid of the stopped (SIGSTOP) process running that flow run, if there is one."""
    found = stopped_process(f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode())
    return found[0] if found else None


def alert_for(receiver: WebhookReceiver, flow_run_id: object, state: str) -> dict[str, Any] | None:
    for request in receiver.received:
        payload = request["payload"]
        if payload.get("flow_run_id") == str(flow_run_id) and payload.get("state") == state:
            return payload  # type: ignore[no-any-return]
    return None


def lose_the_host(worker: ManagedProcess, run_process: int | None) -> None:
    """kill -9 of everything the host ran: the worker's process group and the run's process."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.process.pid, signal.SIGKILL)
    if run_process:
        with contextlib.suppress(ProcessLookupError):
            os.kill(run_process, signal.SIGKILL)
    worker.process.wait(timeout=10)


def test_absent_nights_lost_hosts_and_cancelled_runs_all_alert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import StateType

    timings: dict[str, float] = {}
    train_tiny_store(tmp_path / "models", tmp_path / "imdb")
    write_labeled_parquet(tmp_path / "reviews" / "reviews.parquet", 30, 3)
    environment = project_environment(tmp_path)
    with (
        WebhookReceiver().running() as receiver,
        prefect_server(tmp_path / "server-home", environment, REPO) as server,
    ):
        client_environment = {
            **environment,
            "PREFECT_API_URL": server.api_url,
            "PREFECT_HOME": str(tmp_path / "client-home"),
            "REVIEW_SCORING_MODEL_NAME": TINY_MODEL_NAME,
            "REVIEW_SCORING_ALERT_NO_SUCCESS_SECONDS": str(NO_SUCCESS_SECONDS),
        }
        deploy = deploy_project(client_environment, receiver.url)
        deployed = time.monotonic()
        assert deploy.returncode == 0, f"{deploy.stdout[-3000:]}\n{deploy.stderr[-3000:]}"
        for name in (ALERT_NAME, LOST_RUN_NAME, ABSENCE_ALERT_NAME, DRIFT_ALERT_NAME):
            assert name in deploy.stdout, deploy.stdout

        with SyncPrefectClient(api=server.api_url) as client:
            nightly = client.read_deployment_by_name(NIGHTLY_SCORING)
            assert nightly.job_variables["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"

            # --- item 2: no worker, so no night completes: the absence alert ---------------
            def absence() -> dict[str, Any] | None:
                for request in receiver.received:
                    if request["payload"].get("state") == "NoSuccess":
                        return request["payload"]  # type: ignore[no-any-return]
                return None

            alert = wait_until(absence, NO_SUCCESS_SECONDS + 90, "the no-success alert")
            timings["no_success_alert_after_deploy_s"] = time.monotonic() - deployed
            assert alert["deployment"] == NIGHTLY_SCORING
            assert f"in the last {NO_SUCCESS_SECONDS} s" in alert["text"]
            assert alert["url"] == f"{server.url}/deployments/deployment/{nightly.id}"

            # --- item 1: a host lost mid-run --------------------------------------------------
            host = start_worker(
                {**client_environment, FAULT_VARIABLE: "score.before-publish:1:stop"},
                tmp_path / "host-1",
            )
            try:
                lost_run = client.create_flow_run_from_deployment(nightly.id)

                def run_stopped() -> int | None:
                    host.check_alive()
                    return stopped_run_process(lost_run.id)

                run_process = wait_until(run_stopped, 180, "the nightly run to stop mid-scoring")
                running = client.read_flow_run(lost_run.id)
                assert running.state.type == StateType.RUNNING, describe(running)

                # --- item 3: the concurrency limit cancels a second run, which alerts ----------
                cancelled = client.create_flow_run_from_deployment(nightly.id)
                cancelled = wait_for_final_state(client, cancelled.id, host)
                assert cancelled.state.type == StateType.CANCELLED, describe(cancelled)
                cancelled_alert = wait_until(
                    lambda: alert_for(receiver, cancelled.id, "Cancelled"), 60, "cancel alert"
                )
                assert "concurrency limit" in cancelled_alert["message"], cancelled_alert
                assert cancelled_alert["url"] == server.flow_run_page(cancelled.id)
            finally:
                run_process = stopped_run_process(lost_run.id)
                lose_the_host(host, run_process)
            lost = time.monotonic()

            def crashed() -> Any:
                flow_run = client.read_flow_run(lost_run.id)
                return flow_run if flow_run.state.type == StateType.CRASHED else None

            crashed_run = wait_until(crashed, ALERT_DEADLINE_SECONDS, "the lost run to crash")
            timings["crashed_after_host_loss_s"] = time.monotonic() - lost
            assert "no heartbeat" in crashed_run.state.message, describe(crashed_run)
            crash_alert = wait_until(
                lambda: alert_for(receiver, lost_run.id, "Crashed"),
                max(1.0, ALERT_DEADLINE_SECONDS - (time.monotonic() - lost)),
                "the crash alert",
            )
            timings["alert_after_host_loss_s"] = time.monotonic() - lost
            assert crash_alert["url"] == server.flow_run_page(lost_run.id)
            assert "no heartbeat" in crash_alert["message"]

            # --- item 3: a run past its timeout ends TimedOut, which alerts -------------------
            hurried = start_worker(
                {**client_environment, "REVIEW_SCORING_RUN_TIMEOUT_SECONDS": "1"},
                tmp_path / "host-hurried",
            )
            try:
                timed_out = client.create_flow_run_from_deployment(nightly.id)
                timed_out = wait_for_final_state(client, timed_out.id, hurried)
            finally:
                hurried.stop()
            assert timed_out.state.name == "TimedOut", describe(timed_out)
            timed_out_alert = wait_until(
                lambda: alert_for(receiver, timed_out.id, "TimedOut"), 60, "the timeout alert"
            )
            assert "exceeded timeout of 1.0 second" in timed_out_alert["message"], timed_out_alert

            # --- the next night starts normally, on a new host; its source changed: drift ----
            write_labeled_parquet(
                tmp_path / "reviews" / "changed.parquet", 400, 5, positive_only=True
            )
            second_host = start_worker(client_environment, tmp_path / "host-2")
            try:
                next_night = client.create_flow_run_from_deployment(nightly.id)
                next_night = wait_for_final_state(client, next_night.id, second_host)
            finally:
                second_host.stop()
            assert next_night.state.type == StateType.COMPLETED, describe(next_night)
            # Item 7: the verdict is in the runs list (the state's message) and alerts.
            assert next_night.state.message.startswith("drift: PSI"), describe(next_night)
            drift_alert = wait_until(
                lambda: alert_for(receiver, next_night.id, "Drift"), 60, "the drift alert"
            )
            assert drift_alert["rows"] >= 400 and drift_alert["psi"] > 0.2, drift_alert
            assert drift_alert["url"] == server.flow_run_page(next_night.id)
            assert drift_alert["deployment"] == "nightly"
            # Only the bad endings alerted: the completed night did not.
            assert alert_for(receiver, next_night.id, "Completed") is None

    with capsys.disabled():
        print("\nnever silent:", json.dumps({k: round(v, 1) for k, v in timings.items()}))
