"""A scoring run killed at a fault point (the third file written, not yet published) resumes:
the rerun sweeps the dead writer's temporary, skips what was published, and every input row
appears exactly once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from flows.scoring import (
    run_scoring,
)
from testkit.scoring import score_in_child_until_fault, write_reviews
from testkit.scoring import score_params as params_for
from testkit.synthetic import TINY_MODEL_NAME


def test_a_killed_run_resumes_and_every_row_appears_exactly_once(
    prefect_api: None, model_store_root: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "reviews"
    files = 6
    rows_per_file = 2_000
    for number in range(files):
        write_reviews(inputs / f"part{number}.parquet", rows=rows_per_file, seed=number)
    # One file at a time; the run dies with the third file's output written but not published.
    params = params_for(model_store_root, inputs, tmp_path / "out", max_concurrent_files=1)
    output_dir = tmp_path / "out" / TINY_MODEL_NAME / "v1"
    score_in_child_until_fault(params, "score.before-publish:3")
    done_at_kill = sorted(path.stem for path in output_dir.glob("*.parquet"))
    temporaries_at_kill = list(output_dir.glob(".*.tmp"))
    assert done_at_kill == ["part0", "part1"]
    assert len(temporaries_at_kill) == 1  # the third file's, whole but never published

    summary = run_scoring(params)
    assert summary.files_skipped == len(done_at_kill)
    assert summary.files_scored == files - len(done_at_kill)
    assert not list(output_dir.glob(".*")), "temporary files remain"
    ids = []
    for path in sorted(output_dir.glob("*.parquet")):
        ids.extend(pq.read_table(path, columns=["review_id"]).column("review_id").to_pylist())
    expected = [f"part{n}/{row}" for n in range(files) for row in range(rows_per_file)]
    assert sorted(ids) == sorted(expected)  # every input row exactly once
    print(
        json.dumps(
            {
                "files": files,
                "rows": len(expected),
                "outputs_at_kill": len(done_at_kill),
                "temporaries_at_kill": len(temporaries_at_kill),
                "rerun_scored": summary.files_scored,
                "rerun_skipped": summary.files_skipped,
                "output_rows": len(ids),
            }
        )
    )
