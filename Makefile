# Every README command goes through here. Nothing needs more than Python >= 3.10 to start.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Local runs keep Prefect's SQLite database and settings inside the project.
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
# The UI's V1, not V2: Prefect 3.9's V2 bundle starts Amplitude (a request to amplitude.com) in
# every browser whatever the analytics setting says; V1 calls nothing but this server.
export PREFECT_SERVER_UI_V2_ENABLED ?= false
# A new SQLite database is migrated as the embedded server starts: over Prefect's 20 s on 2 cores.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export TF_CPP_MIN_LOG_LEVEL ?= 2
# Prefect's console, less the tracebacks of SQLite locks that Prefect retries (tasks/log_format.py).
export PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS ?= tasks.log_format.ConsoleHandler

# LOG_FORMAT=json: every log line of the server, worker, runs and commands is one JSON object
# (tasks/log_format.py), for Loki, Elasticsearch or CloudWatch; these are Prefect's own settings.
LOG_FORMAT ?= text
ifeq ($(LOG_FORMAT),json)
export PREFECT_LOGGING_FORMATTERS_JSON_CLASS := tasks.log_format.JsonLines
export PREFECT_LOGGING_HANDLERS_CONSOLE_FORMATTER := json
endif

DATA ?=
EPOCHS ?= 10
# The demo stops one epoch after the best validation loss (whose weights it keeps) instead of
# training the rest; RECIPE=best trains the best recipe (review-scoring recipes).
PATIENCE ?= 1
RECIPE ?= tutorial
SAMPLES ?= samples/reviews
PREFECT_PORT ?= 4200
WORKER_HEALTH_PORT ?= 8080

.PHONY: venv lock demo train score test test-fast image image-test lint bench server clean

# The environment is uv.lock's, every extra included, the same on every machine and in the image;
# --locked refuses a lock that pyproject.toml has moved away from (make lock). uv comes first, at
# the version the lock holds (tests/test_lock.py checks the two agree). Compiled at install, as pip
# did: where PYTHONDONTWRITEBYTECODE is set (CI here), every process would compile its imports again
# (TensorFlow, Prefect, Keras: 20.7 s instead of 10.5 s).
UV_VERSION = 0.13.10
UV = UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml uv.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) sync --locked --quiet --all-extras --compile-bytecode
	touch $@

# Refresh uv.lock: the newest releases within pyproject.toml's ranges, for every extra and
# platform; then make venv installs them. Commit the two files together.
lock: venv
	$(UV) lock --upgrade

# The main job: train (Keras download, or labeled Parquet with DATA=...), then score the samples.
demo: train score

TRAIN_OPTIONS = --recipe $(RECIPE) --epochs $(EPOCHS) --early-stopping-patience $(PATIENCE)

train: venv
ifeq ($(strip $(DATA)),)
	$(BIN)/review-scoring train $(TRAIN_OPTIONS)
else
	$(BIN)/review-scoring train --source parquet --data-path $(DATA) $(TRAIN_OPTIONS)
endif

score: venv
	$(BIN)/review-scoring score --input-path $(SAMPLES)
	$(BIN)/review-scoring models list imdb-sentiment

# Two test workers: the end-to-end tests mostly wait on servers and workers of their own.
# A module's tests share a worker (loadfile), so its module fixtures are built once; the
# end-to-end modules go first (tests/conftest.py). Not loadgroup: on pytest 9.2 it no longer
# groups (pytest-xdist issue 1386).
PYTEST_WORKERS = -n 2 --dist loadfile --no-loadscope-reorder
test: venv
	$(BIN)/python -m pytest -q $(PYTEST_WORKERS) -m "not image"

# The loop while working (under a minute on 2 cores): no Prefect API, S3, Dask, trained
# models, servers or browser.
test-fast: venv
	$(BIN)/python -m pytest -q $(PYTEST_WORKERS) -m "not (e2e or browser or s3 or dask or slow or image)"

# The worker image, built from the Dockerfile with buildah (no Docker engine; .ci/image says how
# the base is found), then its smoke test with podman (tests/image/): a user's run, the worker's
# health. IMAGE names it.
IMAGE ?= localhost/review-scoring:latest
image:
	IMAGE=$(IMAGE) .ci/image

image-test: venv image
	REVIEW_SCORING_IMAGE=$(IMAGE) $(BIN)/python -m pytest -q -m image tests/image

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: venv
	$(BIN)/python bench/bench_training.py --data ../shared/data/imdb
	$(BIN)/python bench/bench_scoring.py --data-dir ../shared/data/imdb
	$(BIN)/python bench/bench_distributed.py --data-dir ../shared/data/imdb

# A local Prefect server and UI on $(SERVER_URL), its SQLite under .prefect/. Every address it
# hands out comes from PREFECT_PORT, whatever PREFECT_API_URL the shell holds: the API the UI calls
# (PREFECT_SERVER_UI_API_URL) and the run links in alerts, `{{ flow_run|ui_url }}` (PREFECT_UI_URL).
# No prompt: the server is configured here, not by offering to rewrite a profile.
SERVER_URL = http://127.0.0.1:$(PREFECT_PORT)
server: venv
	PREFECT_SERVER_API_HOST=127.0.0.1 PREFECT_SERVER_API_PORT=$(PREFECT_PORT) \
	PREFECT_API_URL=$(SERVER_URL)/api PREFECT_SERVER_UI_API_URL=$(SERVER_URL)/api \
	PREFECT_UI_URL=$(SERVER_URL) \
		$(BIN)/prefect --no-prompt server start

clean:
	rm -rf $(VENV) .prefect .pytest_cache .ruff_cache

# --- Deployments (README, "Deployments and operations") ------------------------------------------
# deploy, worker and serve talk to `make server` unless PREFECT_API_URL names another server.
PREFECT_API_URL ?= http://127.0.0.1:$(PREFECT_PORT)/api
WORK_POOL ?= review-scoring
# Where the worker's flow runs start (prefect.yaml's pull step): this checkout.
REVIEW_SCORING_PROJECT_DIR ?= $(CURDIR)

.PHONY: deploy worker serve

# Work pools, the deployments of prefect.yaml, and the failure alert when
# REVIEW_SCORING_ALERT_WEBHOOK_URL is set. REVIEW_SCORING_SCHEDULE_CRON / _TIMEZONE move the night.
# DOCKER=yes adds the Docker pool and its nightly-docker deployment (for Docker workers only).
DOCKER ?= no
deploy: venv
	PREFECT_API_URL=$(PREFECT_API_URL) $(BIN)/python -m flows.deploy \
		$(if $(filter yes,$(DOCKER)),--with-docker)

# A worker for the project's process pool: it runs the deployments' flow runs as subprocesses.
# Its health endpoint, http://127.0.0.1:$(WORKER_HEALTH_PORT)/health, answers 200 while it polls the
# pool and 503 once it has missed 30 polls (5 minutes at Prefect's 10 s): what a supervisor asks.
worker: venv
	PREFECT_API_URL=$(PREFECT_API_URL) REVIEW_SCORING_PROJECT_DIR=$(REVIEW_SCORING_PROJECT_DIR) \
	PREFECT_WORKER_WEBSERVER_HOST=127.0.0.1 PREFECT_WORKER_WEBSERVER_PORT=$(WORKER_HEALTH_PORT) \
		$(BIN)/prefect worker start --pool $(WORK_POOL) --type process --with-healthcheck

# The one-process alternative to deploy + worker: serves both deployments until stopped.
serve: venv
	PREFECT_API_URL=$(PREFECT_API_URL) $(BIN)/python -m flows.serve
