# The worker image: the project and its CPU TensorFlow in a virtual environment, run as a non-root
# user. Build: docker build -t review-scoring:latest .
# Run a worker for the project's process pool (PREFECT_API_URL must reach the server):
#   docker run -e PREFECT_API_URL=http://prefect.example:4200/api \
#     -v review-scoring-models:/opt/review-scoring/models \
#     -v review-scoring-data:/opt/review-scoring/data review-scoring:latest
# or serve both deployments from the container instead: ... review-scoring:latest python -m flows.serve

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install the package and its dependencies into /opt/venv -------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY flows/ flows/
COPY tasks/ tasks/
COPY model_store/ model_store/
COPY storage/ storage/
# On linux/amd64 the project's dependency markers choose tensorflow-cpu (no CUDA libraries).
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir ".[dask,s3]"

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
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
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
