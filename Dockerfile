# The worker image: the project and its CPU TensorFlow in a virtual environment, run as a non-root
# user. Build: docker build -t review-scoring:latest .
# Run a worker for the project's process pool (PREFECT_API_URL must reach the server):
#   docker run -e PREFECT_API_URL=http://prefect.example:4200/api \
#     -v review-scoring-models:/opt/review-scoring/models \
#     -v review-scoring-data:/opt/review-scoring/data review-scoring:latest
# or serve both deployments from the container instead: ... review-scoring:latest python -m flows.serve

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: uv.lock's packages, then the project, into /opt/venv --------------------------------
FROM ${PYTHON_IMAGE} AS build
# The uv of the lock (the Makefile's UV_VERSION); the venv gets the lock's versions and nothing else.
ARG UV_VERSION=0.13.10
# pip and uv trust the system's CA bundle (.ci/image mounts the host's there, with a proxy's CA).
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1 \
    UV_COMPILE_BYTECODE=1
# binutils' strip, for the slimming below: the build stage's only, so its version is not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/* \
    && python -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /src
# The dependencies first, in a layer of their own: a change of the code does not reinstall them.
# On linux/amd64 the project's dependency markers choose tensorflow-cpu (no CUDA libraries).
COPY pyproject.toml uv.lock README.md ./
# Then what the job never reads goes (measured, README "The image"): TensorFlow's C++ headers
# (287 MB, for building custom ops), libclang (62 MB, TensorFlow's build-time tool), the test
# suites packages ship, and the symbol tables of TensorFlow's libraries (about 200 MB; the
# dynamic symbols that loading needs stay).
RUN /opt/uv/bin/uv sync --locked --no-editable --no-install-project --extra dask --extra s3 \
    && site=$(echo /opt/venv/lib/python3*/site-packages) \
    && rm -rf "$site"/tensorflow/include "$site"/clang "$site"/pandas/tests \
       "$site"/pyarrow/tests "$site"/pyarrow/include "$site"/matplotlib/tests \
       "$site"/numpy/tests "$site"/numpy/*/tests "$site"/tornado/test \
    && find "$site/tensorflow" -name "*.so*" -type f -exec strip --strip-unneeded {} +
COPY flows/ flows/
COPY tasks/ tasks/
COPY model_store/ model_store/
COPY storage/ storage/
RUN /opt/uv/bin/uv sync --locked --no-editable --extra dask --extra s3

# --- runtime: the virtual environment, the flow sources, writable state only where it belongs -----
FROM ${PYTHON_IMAGE} AS runtime
ARG APP_UID=10001
RUN groupadd --system --gid "${APP_UID}" review-scoring \
    && useradd --system --uid "${APP_UID}" --gid review-scoring --create-home \
       --home-dir /home/review-scoring --shell /usr/sbin/nologin review-scoring
COPY --from=build /opt/venv /opt/venv
WORKDIR /opt/review-scoring
# The deployments' entrypoints are file paths (flows/scoring.py:score_flow) read from here.
COPY prefect.yaml ./
COPY flows/ flows/
COPY tasks/ tasks/
COPY model_store/ model_store/
COPY storage/ storage/
# The code stays root-owned and read-only; the user writes the store, the data and PREFECT_HOME.
RUN mkdir -p models data/reviews data/predictions /home/review-scoring/.prefect \
    && chown -R "${APP_UID}:${APP_UID}" models data /home/review-scoring/.prefect
# The commit the image was built from (.ci/image passes it), recorded in every model version's
# manifest: the image has no .git to ask.
ARG SOURCE_COMMIT=unknown
ARG SOURCE_TREE_CLEAN=unknown
# The Makefile's environment (tests/test_dockerfile.py keeps the two the same): the embedded
# server's start-up timeout, no analytics, the V1 UI, Prefect's console less retried SQLite locks.
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    PREFECT_SERVER_UI_V2_ENABLED=false \
    PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS=tasks.log_format.ConsoleHandler \
    REVIEW_SCORING_SOURCE_COMMIT=${SOURCE_COMMIT} \
    REVIEW_SCORING_SOURCE_TREE_CLEAN=${SOURCE_TREE_CLEAN} \
    PREFECT_HOME=/home/review-scoring/.prefect \
    REVIEW_SCORING_PROJECT_DIR=/opt/review-scoring \
    REVIEW_SCORING_MODEL_STORE_ROOT=/opt/review-scoring/models \
    REVIEW_SCORING_INPUT_DIR=/opt/review-scoring/data/reviews \
    REVIEW_SCORING_OUTPUT_DIR=/opt/review-scoring/data/predictions
VOLUME ["/opt/review-scoring/models", "/opt/review-scoring/data"]
USER ${APP_UID}:${APP_UID}
# The worker's health endpoint (--with-healthcheck): 200 while it polls its pool, 503 once it has
# missed 30 polls; a worker that is gone does not answer. Either way the container turns unhealthy.
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PREFECT_WORKER_WEBSERVER_PORT', '8080') + '/health', timeout=5)"]
CMD ["prefect", "worker", "start", "--pool", "review-scoring", "--type", "process", "--with-healthcheck"]
