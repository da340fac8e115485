"""A real S3 server on loopback for the object storage tests: moto in server mode, in a process of
its own, reached over HTTP by the project's real S3 client (s3fs and botocore). Nothing is
patched in the test process; the client finds the server and its credentials the way it would
in production, through AWS_* environment variables.

Every test gets a bucket of its own, so tests sharing the server never see each other's objects.

moto checks a conditional write (If-None-Match, If-Match) and then writes, in two steps, so two
threads of its server can both pass the check; S3 does both at once. The server here therefore
takes writes one at a time (reads stay concurrent), which is what the store's compare-and-set
relies on from a real S3.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

ACCESS_KEY_ID = "review-scoring-test"
# A secret the tests look for in logs and records, where it must never appear.
SECRET_ACCESS_KEY = "s3cr3t-" + uuid.uuid4().hex
_STARTUP_SECONDS = 60


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    process: subprocess.Popen[bytes]

    def environment(self) -> dict[str, str]:
        """What a process needs to reach this server: an endpoint and credentials, and no other
        source of them (no ~/.aws files, no instance metadata lookups off this machine)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_s3_server() -> Iterator[S3Server]:
    """Start moto's server on a free loopback port; stop it afterwards."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + _STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the S3 server exited with {process.returncode}")
            try:
                with urllib.request.urlopen(endpoint + "/moto-api/", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the S3 server did not answer on {endpoint}") from None
                time.sleep(0.1)
        yield S3Server(endpoint, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


BYTES_READ_PATH = "/_bytes_read"


def bytes_read_under(server: S3Server, uri: str) -> int:
    """Bytes of object content the server has served by GET below `uri` (s3://bucket/prefix)."""
    import json

    with urllib.request.urlopen(server.endpoint_url + BYTES_READ_PATH, timeout=10) as response:
        counts: dict[str, int] = json.loads(response.read())
    prefix = "/" + uri.removeprefix("s3://").rstrip("/") + "/"
    return sum(count for path, count in counts.items() if path.startswith(prefix))


def forget_s3_clients() -> None:
    """Drop fsspec's cached S3 filesystems, whose clients keep the credentials they started
    with, so that the next one reads the environment as it is now."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


def new_bucket(prefix: str = "test") -> str:
    """A fresh bucket on the server the environment names; returns its URI."""
    import s3fs

    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(skip_instance_cache=True).mkdir(name)
    return f"s3://{name}"


def _serve(port: int) -> None:
    """moto's server (as `python -m moto.server` runs it), taking one write at a time."""
    import json
    import threading

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    moto_app = DomainDispatcherApplication(create_backend_app)
    writes = threading.Lock()
    # Bytes of object content served by GET, by path: what a test asks /_bytes_read for.
    bytes_read: dict[str, int] = {}

    def one_write_at_a_time(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == BYTES_READ_PATH:
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(bytes_read).encode()]
        if environ["REQUEST_METHOD"] == "GET" and not environ.get("QUERY_STRING"):
            chunks = list(moto_app(environ, start_response))
            with writes:
                bytes_read[path] = bytes_read.get(path, 0) + sum(map(len, chunks))
            return chunks
        if environ["REQUEST_METHOD"] in ("GET", "HEAD"):
            return moto_app(environ, start_response)
        with writes:
            return list(moto_app(environ, start_response))

    run_simple(
        "127.0.0.1",
        port,
        one_write_at_a_time,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


def s3_filesystem() -> Any:
    import s3fs

    # No cached listings: objects replaced by a run must be read as they are now.
    return s3fs.S3FileSystem(use_listings_cache=False)


def upload(local: Path, uri: str) -> None:
    """Copy a local folder's files to `uri`/..., keeping their relative paths."""
    filesystem = s3_filesystem()
    target = uri.removeprefix("s3://")
    for path in sorted(local.rglob("*")):
        if path.is_file():
            filesystem.put_file(str(path), f"{target}/{path.relative_to(local).as_posix()}")


def keys_under(uri: str) -> list[str]:
    """Every object below `uri`, relative to it."""
    from storage import locate

    return locate(uri).files_below()


def read_predictions(uri: str) -> pa.Table:
    """The predictions under `uri` as a hive-partitioned dataset, read straight from S3."""
    import pyarrow.dataset as ds

    return ds.dataset(
        uri.removeprefix("s3://"),
        filesystem=s3_filesystem(),
        format="parquet",
        partitioning="hive",
        exclude_invalid_files=False,
    ).to_table()


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
