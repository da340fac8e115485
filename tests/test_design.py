"""docs/design.md stays true: its map of the house names every module, and only modules that are."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from testkit import REPOSITORY

PACKAGES = ("flows", "tasks", "model_store", "storage")


def house_map() -> str:
    text = (REPOSITORY / "docs" / "design.md").read_text()
    section = text.split("## The house", 1)[1]
    return section.split("```", 2)[1]


def test_the_map_names_every_module_and_no_module_that_is_gone() -> None:
    house = house_map()
    modules = sorted(
        path.relative_to(REPOSITORY)
        for package in PACKAGES
        for path in (REPOSITORY / package).rglob("*.py")
        if path.name != "__init__.py"
    )
    named = set(re.findall(r"\b([a-z_]+\.py)\b", house))
    missing = [str(module) for module in modules if module.name not in named]
    assert missing == [], f"modules docs/design.md does not name: {missing}"
    existing = {module.name for module in modules}
    gone = sorted(name for name in named if name not in existing)
    assert gone == [], f"docs/design.md names modules that do not exist: {gone}"
    for package in (*PACKAGES, "testkit", "tests", "bench"):
        assert re.search(rf"^{package}/", house, re.MULTILINE), package


def test_everything_below_the_task_wrappers_is_free_of_prefect_and_keras() -> None:
    import subprocess
    import sys

    prefect_free = [
        "storage",
        "storage.objects",
        "model_store",
        "tasks.contract",
        "tasks.failures",
        "tasks.parquet_files",
        "tasks.text",
        *(f"tasks.training.{name}" for name in ("data", "model", "evaluation", "registry")),
        *(
            f"tasks.scoring.{path.stem}"
            for path in sorted((REPOSITORY / "tasks" / "scoring").glob("*.py"))
            if path.stem not in ("__init__", "tasks", "worker")
        ),
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {prefect_free!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in ('prefect', 'keras', 'tensorflow') if m in sys.modules))\n"
    )
    imported = subprocess.run(
        [sys.executable, "-c", code], cwd=REPOSITORY, capture_output=True, text=True, check=True
    )
    assert imported.stdout.strip() == "[]"


@pytest.mark.slow
def test_make_test_runs_each_module_on_one_worker(tmp_path: Path) -> None:
    """The Makefile's worker options keep a module on one worker, so a module fixture (a
    server, the browser journey) is built once per run."""
    import subprocess
    import sys

    makefile = (REPOSITORY / "Makefile").read_text()
    (options,) = re.findall(r"^PYTEST_WORKERS = (.+)$", makefile, re.MULTILINE)
    for module in ("test_one", "test_two"):
        (tmp_path / f"{module}.py").write_text(
            "import os, pytest\n"
            "@pytest.mark.parametrize('case', range(6))\n"
            "def test_case(case):\n"
            f"    with open('{module}.workers', 'a') as out:\n"
            "        out.write(os.environ['PYTEST_XDIST_WORKER'] + '\\n')\n"
        )
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options.split()],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    for module in ("test_one", "test_two"):
        workers = (tmp_path / f"{module}.workers").read_text().split()
        assert len(workers) == 6 and len(set(workers)) == 1, (module, workers)
