"""Real processes for the end-to-end and UI tests: a Prefect server (started by `make server`, as
people start it), a PostgreSQL cluster, a worker, and a webhook receiver, each started on loopback
and stopped by its own process id."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from testkit import REPOSITORY as REPO

__all__ = [
    "PREFECT",
    "REPO",
    "ManagedProcess",
    "PrefectServer",
    "WebhookReceiver",
    "deploy_project",
    "describe",
    "find_postgres_bin",
    "free_port",
    "postgres_cluster",
    "prefect_server",
    "project_environment",
    "start_process",
    "start_worker",
    "wait_for_final_state",
    "wait_until",
]

PREFECT = [sys.executable, "-m", "prefect"]

RUN_TIMEOUT = 300.0
# Variables an enclosing `make test` hands down; the `make server` started here takes none of them.
_OUTER_MAKE = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.5
) -> Any:
    """Poll until condition() returns something truthy; return it, or fail with `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def stopped_process(marker: bytes) -> tuple[int, int] | None:
    """(pid, parent pid) of a stopped (SIGSTOP) process whose environment holds `marker`, a
    `NAME=value` line: the one a fault point stopped, for a test to kill as a lost machine."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if fields[0] == "T" and marker in environment:
            return int(entry.name), int(fields[1])
    return None


@dataclass
class ManagedProcess:
    """A subprocess in its own process group, with its output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, characters: int = 4000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- {self.name} log ({self.log_path}) ---\n{text[-characters:]}"

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.process.returncode}\n{self.log_tail()}"
            )

    def stop(self, grace_seconds: float = 20.0) -> None:
        """SIGTERM to the group this process leads (its own children too), then SIGKILL."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                pass
        # Children that outlived their leader (a flow run of the worker) go with the group.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


def start_process(
    name: str, command: list[str], environment: Mapping[str, str], log_path: Path, cwd: Path
) -> ManagedProcess:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(environment),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group, so stop() reaches its children
        )
    return ManagedProcess(name=name, process=process, log_path=log_path)


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass(frozen=True)
class PrefectServer:
    """A running `make server`: its address (the UI's, http://127.0.0.1:PORT) and its process."""

    url: str
    process: ManagedProcess

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def flow_run_page(self, flow_run_id: object) -> str:
        """The UI page of a flow run, the link an alert must carry."""
        return f"{self.url}/runs/flow-run/{flow_run_id}"


@contextmanager
def prefect_server(
    home: Path,
    environment: Mapping[str, str],
    cwd: Path,
    startup_timeout: float = 180.0,
    ui: bool = False,
) -> Iterator[PrefectServer]:
    """`make server` on a free loopback port with its own PREFECT_HOME, using this interpreter's
    Prefect and never reinstalling the virtual environment.

    The database is SQLite under `home` unless `environment` names another one. Whatever
    PREFECT_API_URL `environment` holds, the Makefile points the server's UI and links at itself.
    The UI is off unless asked for (it adds start-up time).
    """
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    server_environment = {
        **{name: value for name, value in environment.items() if name not in _OUTER_MAKE},
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": str(ui).lower(),
    }
    command = [
        "make",
        "--no-print-directory",
        "-o",
        "venv",  # the checkout's .venv is what runs the tests, or it is not there at all
        "server",
        f"PREFECT_PORT={port}",
        f"BIN={Path(sys.executable).parent}",
    ]
    server = start_process("prefect server", command, server_environment, home / "server.log", cwd)
    running = PrefectServer(url=f"http://127.0.0.1:{port}", process=server)
    try:

        def ready() -> bool:
            server.check_alive()
            return _healthy(running.api_url)

        wait_until(ready, startup_timeout, f"the Prefect server at {running.url}", interval=1.0)
        yield running
    finally:
        server.stop()


def pool_has_a_worker(api_url: str) -> bool:
    """Whether the project's process pool lists a worker (it has synced with the server)."""
    from flows.deploy import PROCESS_POOL

    request = urllib.request.Request(
        f"{api_url}/work_pools/{PROCESS_POOL}/workers/filter",
        data=b"{}",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return bool(json.loads(response.read()))
    except (urllib.error.URLError, OSError):
        return False


def project_environment(root: Path) -> dict[str, str]:
    """This process's environment without Prefect or project settings, the project's folders
    (model store, reviews, predictions) under `root`, and this checkout as the runs' folder."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PREFECT_", "REVIEW_SCORING_"))
    }
    environment.update(
        {
            "REVIEW_SCORING_MODEL_STORE_ROOT": str(root / "models"),
            "REVIEW_SCORING_INPUT_DIR": str(root / "reviews"),
            "REVIEW_SCORING_OUTPUT_DIR": str(root / "predictions"),
            "REVIEW_SCORING_PROJECT_DIR": str(REPO),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
    )
    return environment


def start_worker(environment: Mapping[str, str], root: Path) -> ManagedProcess:
    """`make worker`'s process worker for the project's pool, its home and log under `root`.

    It may start before `make deploy`: it creates its pool itself when the pool is not there yet.
    """
    from flows.deploy import PROCESS_POOL

    return start_process(
        "worker",
        [*PREFECT, "worker", "start", "--pool", PROCESS_POOL, "--type", "process"],
        {
            **environment,
            "PREFECT_HOME": str(root / "worker-home"),
            "PREFECT_WORKER_QUERY_SECONDS": "2",  # each poll writes: spare SQLite
        },
        root / "worker.log",
        REPO,
    )


def deploy_project(
    environment: Mapping[str, str], webhook_url: str | None = None, *arguments: str
) -> subprocess.CompletedProcess[str]:
    """`make deploy`'s step, `python -m flows.deploy [arguments]`, with the failure alert when a
    webhook URL is given; returns the finished process for the caller to check."""
    alert = {"REVIEW_SCORING_ALERT_WEBHOOK_URL": webhook_url} if webhook_url else {}
    return subprocess.run(
        [sys.executable, "-m", "flows.deploy", *arguments],
        cwd=REPO,
        env={**environment, **alert},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def describe(flow_run: Any) -> str:
    """`name: state (message)`, for assertion messages."""
    return f"{flow_run.name}: {flow_run.state.name} ({flow_run.state.message or 'no message'})"


def wait_for_final_state(
    client: Any, flow_run_id: Any, worker: ManagedProcess, timeout: float = RUN_TIMEOUT
) -> Any:
    """The flow run once its state is final; TimeoutError with the worker's log otherwise."""

    def final() -> Any:
        worker.check_alive()
        flow_run = client.read_flow_run(flow_run_id)
        return flow_run if flow_run.state and flow_run.state.is_final() else None

    try:
        return wait_until(final, timeout, f"flow run {flow_run_id} to end", interval=1.0)
    except TimeoutError as error:
        raise TimeoutError(f"{error}\n{worker.log_tail()}") from None


def find_postgres_bin() -> Path | None:
    """Debian's PostgreSQL server binaries (initdb, pg_ctl), newest version first."""
    on_path = shutil.which("pg_ctl")
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda path: int(Path(path).parent.name) if Path(path).parent.name.isdigit() else 0,
        reverse=True,
    )
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


def _postgres_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as `postgres` (or `nobody`)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a postgres nor a nobody user exists")


@contextmanager
def postgres_cluster(bin_dir: Path, database: str = "prefect") -> Iterator[str]:
    """A throw-away cluster on a free loopback port; yields an asyncpg connection URL."""
    user = _postgres_user()
    run_as = ["runuser", "-u", user, "--"] if user else []
    # Not under pytest's tmp_path: as root that is 0700 and the postgres user cannot enter it.
    base = Path(tempfile.mkdtemp(prefix="review-scoring-pg-", dir="/tmp" if user else None))
    if user:
        shutil.chown(base, user=user)
    data_dir, log_path = base / "data", base / "server.log"
    port = free_port()

    def run(*command: str) -> None:
        result = subprocess.run(
            [*run_as, *command], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            log = log_path.read_text(errors="replace") if log_path.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}\n{log}"
            )

    started = False
    try:
        run(
            str(bin_dir / "initdb"),
            "--pgdata",
            str(data_dir),
            "--username",
            "prefect",
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-sync",
        )
        server_options = (
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        run(
            str(bin_dir / "pg_ctl"),
            "--pgdata",
            str(data_dir),
            "--log",
            str(log_path),
            "--options",
            server_options,
            "--wait",
            "--timeout",
            "60",
            "start",
        )
        started = True
        run(
            str(bin_dir / "createdb"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--username",
            "prefect",
            database,
        )
        yield f"postgresql+asyncpg://prefect@127.0.0.1:{port}/{database}"
    finally:
        if started:
            stop = [str(bin_dir / "pg_ctl"), "--pgdata", str(data_dir), "--mode", "fast", "stop"]
            subprocess.run(
                [*run_as, *stop],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class WebhookReceiver:
    """An HTTP server on loopback that records every POST body it receives."""

    received: list[dict[str, Any]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the receiver is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/alerts"

    @contextmanager
    def running(self) -> Iterator[WebhookReceiver]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", errors="replace")
                try:
                    payload = json.loads(body)
                except json.JSONDecodeError:
                    payload = {"unparsed": body}
                receiver.received.append(
                    {"path": self.path, "headers": dict(self.headers), "payload": payload}
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reports what it received."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=5)
