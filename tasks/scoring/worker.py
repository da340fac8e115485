"""What a Dask worker imports as it starts, so that a run's first file does not wait for it.

    dask worker tcp://scheduler:8786 --nthreads 2 --preload tasks.scoring.worker

TensorFlow, Keras, Prefect's task engine and the scoring tasks take 6 to 8 s of CPU to import
(measured on 2 cores); a worker started this way has paid that before it joins the cluster, and
a long-lived worker pays it once, not in every run. The model version itself is loaded by each
run's warm-up (flows.scoring), once per worker process.
"""

import keras  # noqa: F401
import prefect.task_engine  # noqa: F401
import tensorflow  # noqa: F401

import tasks.layers
import tasks.scoring.tasks  # noqa: F401
from tasks.failures import show_user_errors_as_one_line


def dask_setup(worker: object) -> None:
    """Called by Dask as the worker loads this preload: a user's error in a task run here logs
    one line, as it does in the flow's own process."""
    show_user_errors_as_one_line()
