"""Benchmark scoring across runners and storage: threads, a local Dask cluster and an external
one of 1 or 2 workers, on the local disk and against an S3 server on loopback; print the figures
of issue 12 from one run.

    python bench/bench_distributed.py                       # 4 files of 50k IMDB reviews
    python bench/bench_distributed.py --rows-per-file 5000  # a quick look

Input: IMDB review text from ../shared/data/imdb, repeated to size, in --files files; the same
files are uploaded to a moto S3 server started on loopback (testkit/s3.py), which also
holds a copy of the model store. The model is the tutorial LSTM, untrained (throughput does not
depend on the weights). Every run is a fresh process that times `run_scoring` end to end
against one Prefect API; a run's rows/s is its rows over that wall time.

Measured:
  threads        the thread runner, 1 and 2 files at a time: the bar
  local-dask     a Dask cluster made for the run: one worker process, 2 files at a time
  cluster        an external `dask scheduler` with `dask worker --preload tasks.scoring.worker`
                 processes, started once: 1 worker of 2 threads, or 2 workers of 1 thread.
                 Its first run ("cold") loads the model on each worker; the second ("warm")
                 finds it loaded, as every night after the first does on long-lived workers
  storage        the same runs reading and writing s3:// on the loopback server
  filesystems    reading one input file from the S3 server through fsspec (s3fs) and through
                 pyarrow's own S3 filesystem, and writing one output through each
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))
sys.path.insert(0, str(REPOSITORY / "bench"))

DEFAULT_DATA = REPOSITORY.parent / "shared" / "data" / "imdb"
MODEL_NAME = "bench-lstm"
# Issue 12: a Dask worker on its own machine scores as fast as the thread runner on one.
TARGET_WORKER_RATIO = 1.0


def child_run(arguments: argparse.Namespace) -> dict[str, Any]:
    """One scoring run, timed end to end in this fresh process."""
    from flows.scoring import ScoreParams, run_scoring

    params = ScoreParams.model_validate_json(arguments.params)
    started = time.perf_counter()
    summary = run_scoring(params)
    seconds = time.perf_counter() - started
    return {
        "rows": summary.rows_scored,
        "seconds": round(seconds, 2),
        "rows_per_second": round(summary.rows_scored / seconds, 1),
        "scoring_phase_rows_per_second": summary.rows_per_second,
        "file_seconds": [result.seconds for result in summary.files],
    }


def child_filesystems(arguments: argparse.Namespace) -> dict[str, Any]:
    """Read one input and write one output on the S3 server through each filesystem layer."""
    import pyarrow.fs
    import pyarrow.parquet as pq
    import s3fs

    key = arguments.params  # bucket/key of one input
    fsspec_s3 = s3fs.S3FileSystem(skip_instance_cache=True)
    size = fsspec_s3.info(key)["size"]
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    arrow_s3 = pyarrow.fs.S3FileSystem(
        endpoint_override=endpoint, scheme="http", region="us-east-1", allow_bucket_creation=False
    )
    results: dict[str, Any] = {"bytes": size}

    def best_of(rounds: int, action: Any) -> float:
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            action()
            best = min(best, time.perf_counter() - started)
        return best

    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / "input.parquet"

        def fsspec_download_then_read() -> None:
            fsspec_s3.get_file(key, str(local))
            pq.read_table(local)

        def fsspec_read() -> None:
            with fsspec_s3.open(key, "rb") as stream:
                pq.read_table(stream)

        def arrow_read() -> None:
            pq.read_table(key, filesystem=arrow_s3)

        readers = {
            "fsspec: copy to disk, then read (the project's way)": fsspec_download_then_read,
            "fsspec: read through the file object": fsspec_read,
            "pyarrow S3FileSystem: read": arrow_read,
        }
        for label, reader in readers.items():
            results[label] = round(size / best_of(3, reader) / 1e6, 1)
        target = key.rsplit("/", 1)[0] + "/written.parquet"

        def fsspec_write() -> None:
            fsspec_s3.put_file(str(local), target, mode="create")
            fsspec_s3.rm_file(target)

        def arrow_write() -> None:
            with arrow_s3.open_output_stream(target) as stream:
                stream.write(local.read_bytes())
            arrow_s3.delete_file(target)

        results["fsspec: write only if absent (If-None-Match)"] = round(
            size / best_of(3, fsspec_write) / 1e6, 1
        )
        results["pyarrow S3FileSystem: write (no conditional write)"] = round(
            size / best_of(3, arrow_write) / 1e6, 1
        )
    return results


CHILDREN = {"run": child_run, "filesystems": child_filesystems}


def run_child(kind: str, params: str, environment: dict[str, str]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--params", params],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def dask_cluster(
    workers: int, threads: int, environment: dict[str, str], folder: Path
) -> Iterator[str]:
    """The cluster the README starts; how long it took to be ready is printed, not timed in
    any run."""
    from testkit.dask_cluster import running_dask_cluster

    started = time.perf_counter()
    with running_dask_cluster(workers, threads, environment, folder, 300) as address:
        print(
            f"  cluster of {workers} x {threads} ready in {time.perf_counter() - started:.1f} s "
            "(worker start with preload; not part of any run)",
            flush=True,
        )
        yield address


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--rows-per-file", type=int, default=50_000)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), help="IMDB Parquet folder")
    parser.add_argument("--work-dir", default=str(REPOSITORY / "bench" / "results" / "work"))
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_args(argv)
    if arguments.child:
        print(json.dumps(CHILDREN[arguments.child](arguments)))
        return 0

    from bench_scoring import register_recipe_model, write_input
    from prefect.testing.utilities import prefect_test_harness

    from testkit.dask_cluster import cluster_environment
    from testkit.s3 import new_bucket, running_s3_server

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    data_dir = Path(arguments.data_dir)
    results: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
        "files": arguments.files,
        "rows_per_file": arguments.rows_per_file,
        "runs": {},
    }
    print(f"load average at start: {results['load_average_at_start']}", flush=True)
    work_dir = Path(arguments.work_dir)
    source = write_input(
        data_dir,
        arguments.rows_per_file,
        work_dir / "inputs" / f"rows{arguments.rows_per_file}.parquet",
    )
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=work_dir)))
        server = stack.enter_context(running_s3_server())
        os.environ.update(server.environment())
        stack.enter_context(prefect_test_harness(server_startup_timeout=180))
        environment = cluster_environment()
        inputs = scratch / "inputs"
        inputs.mkdir()
        for number in range(arguments.files):
            os.link(source, inputs / f"part{number}.parquet")
        bucket = new_bucket("bench")
        import s3fs

        s3 = s3fs.S3FileSystem()
        for path in sorted(inputs.iterdir()):
            s3.put_file(str(path), f"{bucket}/inputs/{path.name}")
        register_recipe_model(scratch / "models", data_dir)
        register_recipe_model(f"{bucket}/models", data_dir)  # type: ignore[arg-type]
        storages = {
            "local": (str(inputs), str(scratch / "models"), scratch / "out"),
            "s3": (f"{bucket}/inputs", f"{bucket}/models", None),
        }

        def measure(label: str, storage: str, **settings: Any) -> dict[str, Any]:
            input_path, store, local_out = storages[storage]
            output_root = str(local_out / label) if local_out else f"{bucket}/out/{label}"
            params = {
                "input_path": input_path,
                "output_root": output_root,
                "model_store_root": store,
                "model_name": MODEL_NAME,
                **settings,
            }
            result = run_child("run", json.dumps(params), environment)
            result["load_average"] = round(os.getloadavg()[0], 2)
            results["runs"][label] = result
            print(
                f"  {label:34} {result['rows_per_second']:9,.0f} rows/s "
                f"({result['seconds']:.1f} s; load {result['load_average']})",
                flush=True,
            )
            return result

        for storage in ("local", "s3"):
            print(f"{storage}:", flush=True)
            if storage == "local":
                measure(f"{storage} threads x1", storage, max_concurrent_files=1)
            measure(f"{storage} threads x2", storage, max_concurrent_files=2)
            if storage == "local":
                measure(
                    f"{storage} local-dask 1 worker x2",
                    storage,
                    task_runner="local-dask",
                    max_concurrent_files=2,
                )
            for workers, threads in ((1, 2), (2, 1)):
                with dask_cluster(workers, threads, environment, scratch) as address:
                    for run in ("cold", "warm"):
                        measure(
                            f"{storage} cluster {workers}x{threads} {run}",
                            storage,
                            task_runner="dask",
                            dask_address=address,
                            max_concurrent_files=workers * threads,
                        )
        results["filesystems"] = run_child(
            "filesystems", f"{bucket.removeprefix('s3://')}/inputs/part0.parquet", environment
        )
    print_summary(results)
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(results, indent=2))
    return 0


def print_summary(results: dict[str, Any]) -> None:
    runs = results["runs"]
    rows = results["files"] * results["rows_per_file"]
    print(
        f"\n{results['files']} files x {results['rows_per_file']:,} rows = {rows:,} rows; "
        f"{results['cpus']} cpus; load average at start {results['load_average_at_start']}"
    )
    print(f"{'run':36} {'rows/s':>9} {'seconds':>8} {'vs local threads x2':>20}")
    bar = runs["local threads x2"]["rows_per_second"]
    for label, run in runs.items():
        print(
            f"{label:36} {run['rows_per_second']:9,.0f} {run['seconds']:8.1f} "
            f"{run['rows_per_second'] / bar:19.2f}x"
        )
    for storage in ("local", "s3"):
        threads = runs[f"{storage} threads x2"]["rows_per_second"]
        worker = runs[f"{storage} cluster 1x2 warm"]["rows_per_second"]
        cold = runs[f"{storage} cluster 1x2 cold"]["rows_per_second"]
        verdict = "met" if worker / threads >= TARGET_WORKER_RATIO * 0.95 else "NOT met"
        print(
            f"{storage}: one Dask worker (2 threads) / thread runner (2 files): warm "
            f"{worker / threads:.2f}x, cold {cold / threads:.2f}x "
            f"(target about {TARGET_WORKER_RATIO:.1f}x: {verdict})"
        )
    print("\nfilesystem layer on the loopback S3 server (MB/s, best of 3):")
    for label, value in results["filesystems"].items():
        if label != "bytes":
            print(f"  {label:56} {value:8.1f}")


if __name__ == "__main__":
    raise SystemExit(main())
