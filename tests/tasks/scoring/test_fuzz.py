"""Property-based: whatever review tables come in, every row comes out once with one status.

Hypothesis generates the tables (extra columns of several types, nulls, empty and blank texts,
odd Unicode, 0 to a few thousand rows, several files); each goes through planning and file
scoring with a fake predictor, as tests/tasks/scoring/test_files.py does.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.scoring import STATUS_OK, plan_jobs, score_file
from tasks.scoring.contract import STATUS_EMPTY_TEXT, STATUS_NOT_STRING, STATUS_NULL_TEXT
from testkit.scoring import fake_model, resolved

STATUSES = {STATUS_OK, STATUS_EMPTY_TEXT, STATUS_NULL_TEXT, STATUS_NOT_STRING}
EXAMPLES = 60

texts = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "\t\n", "\u3000", "great movie", "awful<br />plot", "don't"]),
    st.text(max_size=60),  # any Unicode, surrogates excluded (Arrow strings are UTF-8)
)
extra_columns = st.dictionaries(
    st.sampled_from(["rating", "label", "score", "source", "when", "flag", "status"]),
    st.sampled_from(["int", "float", "string", "bool", "timestamp"]),
    max_size=3,
)


def _column(kind: str, rows: int, draw: st.DrawFn) -> pa.Array:
    values = draw(st.lists(st.booleans(), min_size=rows, max_size=rows))
    if kind == "int":
        return pa.array([index if keep else None for index, keep in enumerate(values)], pa.int64())
    if kind == "float":
        return pa.array([index / 3 if keep else None for index, keep in enumerate(values)])
    if kind == "bool":
        return pa.array(values)
    if kind == "timestamp":
        return pa.array(list(range(rows)), pa.timestamp("s"))
    return pa.array([f"v{index}" if keep else None for index, keep in enumerate(values)])


@st.composite
def review_tables(draw: st.DrawFn) -> pa.Table:
    rows = draw(st.one_of(st.integers(0, 40), st.integers(500, 3000)))
    if rows > 40:  # many rows: a repeating sample keeps generation fast
        sample = draw(st.lists(texts, min_size=1, max_size=20))
        column = [sample[index % len(sample)] for index in range(rows)]
    else:
        column = draw(st.lists(texts, min_size=rows, max_size=rows))
    text_type = draw(st.sampled_from([pa.string(), pa.large_string(), "dictionary", "int"]))
    if text_type == "dictionary":
        text = pa.array(column, pa.string()).dictionary_encode()
    elif text_type == "int":
        text = pa.array([None if value is None else len(value) for value in column], pa.int64())
    else:
        text = pa.array(column, text_type)
    table = {"text": text}
    if draw(st.booleans()):
        table["review_id"] = pa.array([f"id-{index}" for index in range(rows)])
    for name, kind in draw(extra_columns).items():
        table[name] = _column(kind, rows, draw)
    return pa.table(table)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(tables=st.lists(review_tables(), min_size=1, max_size=3), batch_size=st.integers(1, 700))
def test_rows_in_equal_rows_out_each_with_exactly_one_status(
    tables: list[pa.Table], batch_size: int
) -> None:
    if max(table.num_rows for table in tables) > 40:
        batch_size = max(batch_size, 64)  # thousands of one-row batches add time, not cases
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        (folder / "in").mkdir()
        for number, table in enumerate(tables):
            pq.write_table(table, folder / "in" / f"part-{number}.parquet")
        plan = plan_jobs(str(folder / "in"), folder / "out", resolved(), batch_size=batch_size)
        assert len(plan.jobs) == len(tables)
        for job, table in zip(plan.jobs, tables, strict=True):
            result = score_file(job, fake_model())
            output = pq.read_table(job.output_path)
            assert result.rows == output.num_rows == table.num_rows
            expected_ids = (
                table.column("review_id").to_pylist()
                if "review_id" in table.column_names
                else [f"{Path(job.relative_path).stem}:{row}" for row in range(table.num_rows)]
            )
            assert output.column("review_id").to_pylist() == expected_ids
            statuses = output.column("status").to_pylist()
            assert set(statuses) <= STATUSES
            labels = output.column("label").to_pylist()
            for status, label in zip(statuses, labels, strict=True):
                assert (label is not None) == (status == STATUS_OK)
            assert sum(result.status_counts.values()) == table.num_rows
        leftovers = list((folder / "out").rglob(".*"))
        assert leftovers == [], leftovers
    finally:
        shutil.rmtree(folder)
