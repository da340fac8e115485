"""What the tests and the benchmarks share, and neither owns: small synthetic data, real servers
(S3, Prefect, Dask, PostgreSQL, Chromium) started on loopback for the length of a `with` block,
helpers that drive the model store from child processes, and the behaviour checks a trained
model must pass. Not part of the installed package.

- `synthetic`: labeled reviews and the tiny recipe every test trains with
- `scoring`: review Parquet to score, a fake model, a job
- `store`: tiny Keras models, registering, child writers
- `behaviour`: minimum-functionality and direction checks of a trained model
- `s3`, `dask_cluster`, `servers`, `browser`: real processes on loopback
"""

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
