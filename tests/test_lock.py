"""uv.lock: the one set of versions that make venv, CI and the image install.

uv itself answers whether the lock still matches pyproject.toml (`uv lock --check`, offline: a
lock that matches needs no index). The uv that reads it is the one in the project's venv, at the
version the Makefile and the Dockerfile bootstrap.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own TOML reader
    import tomli as tomllib

from testkit import REPOSITORY as REPO

UV = Path(sys.executable).parent / "uv"


def _lock_check(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(UV), "lock", "--check", "--offline", "--directory", str(project)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _copy_project(destination: Path) -> Path:
    destination.mkdir()
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy2(REPO / name, destination / name)
    return destination


def test_the_lock_matches_pyproject() -> None:
    assert UV.exists(), "uv is missing from the venv: it comes with the dev extra"
    result = _lock_check(REPO)
    assert result.returncode == 0, result.stderr


def test_a_dependency_added_without_make_lock_is_caught(tmp_path: Path) -> None:
    project = _copy_project(tmp_path / "project")
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace('"pandas>=2.2",', '"pandas>=2.2",\n    "tabulate>=0.9",', 1))
    # Offline, uv cannot resolve the new dependency either way (whether it says the lock needs
    # updating or finds no solution depends on its cache): the copy as it was passes.
    assert _lock_check(project).returncode != 0
    shutil.copy2(REPO / "pyproject.toml", pyproject)
    assert _lock_check(project).returncode == 0


def test_every_extra_is_locked() -> None:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    [project] = [package for package in lock["package"] if package["name"] == "review-scoring"]
    extras = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    assert set(project.get("optional-dependencies", {})) == extras


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("Makefile", r"^UV_VERSION = (\S+)$"),
        ("Dockerfile", r"^ARG UV_VERSION=(\S+)$"),
    ],
)
def test_make_venv_and_the_image_bootstrap_the_locked_uv(path: str, pattern: str) -> None:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    [locked] = [package["version"] for package in lock["package"] if package["name"] == "uv"]
    found = re.search(pattern, (REPO / path).read_text(), re.MULTILINE)
    assert found, f"{path}: no uv version"
    assert found.group(1) == locked, f"{path} bootstraps uv {found.group(1)}, the lock has {locked}"


def test_make_venv_ci_and_the_image_install_from_the_lock() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"\$\(UV\) sync --locked .*--all-extras --compile-bytecode", makefile)
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY pyproject.toml uv.lock" in dockerfile
    assert len(re.findall(r"uv sync --locked --no-editable", dockerfile)) == 2
    assert "pip install -e" not in makefile and 'pip install --no-cache-dir ".[' not in dockerfile
    assert "make test" in (REPO / ".ci" / "run").read_text()  # which installs through make venv


def test_the_build_metadata_is_the_current_form() -> None:
    """setuptools warned three times during every install that `license = { text = ... }` is
    deprecated; an SPDX expression needs setuptools 77 or newer to build."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert isinstance(pyproject["project"]["license"], str)
    assert pyproject["build-system"]["requires"] == ["setuptools>=77"]
