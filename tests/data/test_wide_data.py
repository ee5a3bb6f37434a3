"""Wide data: profiles are built in batches of columns, and past MAX_COLUMNS a clear error.

One SELECT over 3,000 columns crashed DuckDB (SIGSEGV), so the wide cases run in a child
process: on a regression the test fails instead of killing the suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ratchet.data.profile import (
    COLUMN_BATCH,
    MAX_COLUMNS,
    StreamingProfile,
    profile_parquet,
    profile_table,
)
from ratchet.errors import InvalidInput
from tests.data.test_profile import _mixed_table


def _run(code: str, cwd: Path) -> dict:
    """Run ``code`` in a fresh interpreter with its own store; it prints one JSON line."""
    env = {"PATH": "/usr/bin:/bin", "RATCHET_HOME": str(cwd / ".ratchet"), "HOME": str(cwd)}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_batches_of_columns_give_the_same_profile_as_one_query(tmp_path: Path) -> None:
    table = _mixed_table(n=1_500)
    path = tmp_path / "mixed.parquet"
    pq.write_table(table, path, row_group_size=400)
    assert table.num_columns <= COLUMN_BATCH  # the default is the single-query path
    whole = profile_parquet(path).to_dict()
    for batch in (1, 3, 5):
        assert profile_parquet(path, column_batch=batch).to_dict() == whole
        assert profile_table(table, column_batch=batch).to_dict() == \
            profile_table(table).to_dict()


def test_a_streamed_profile_of_wide_data_runs_its_first_pass_on_the_file(
        tmp_path: Path) -> None:
    table = _mixed_table(n=1_500)
    path = tmp_path / "mixed.parquet"
    pq.write_table(table, path)

    def streamed(batch: int) -> dict:
        profile = StreamingProfile(table.schema, column_batch=batch)
        for b in table.to_batches(max_chunksize=300):
            profile.feed(b)
        profile.close()
        return profile.finish(path).to_dict()

    narrow, wide = streamed(COLUMN_BATCH), streamed(4)
    for a, b in zip(narrow["columns"], wide["columns"], strict=True):
        # Reservoir quantiles are sampled (not reproducible run to run), and a parallel
        # sum's last bits depend on how the rows were chunked: compare the rest exactly.
        inexact = {"quantiles": None, "mean": None, "std": None}
        assert {**a, **inexact} == {**b, **inexact}, a["name"]
        assert (a["quantiles"] is None) == (b["quantiles"] is None)
        for key in ("mean", "std"):
            assert a[key] == (None if b[key] is None else pytest.approx(b[key], rel=1e-12))
    assert narrow["rows"] == wide["rows"] == 1_500


def test_bad_column_batch_is_refused() -> None:
    with pytest.raises(InvalidInput, match="column_batch"):
        profile_table(pa.table({"a": [1]}), column_batch=0)


@pytest.mark.slow
def test_a_csv_of_3000_columns_and_one_row_is_logged(tmp_path: Path) -> None:
    columns = 3_000
    csv = tmp_path / "wide.csv"
    csv.write_text(",".join(f"c{i}" for i in range(columns)) + "\n"
                   + ",".join(f"{i * 0.5}" for i in range(columns)) + "\n")
    out = _run(f"""
        import json, ratchet
        v = ratchet.data.log({str(csv)!r}, name="wide")
        c = v.profile.column("c2999")
        print(json.dumps({{"rows": v.row_count, "columns": len(v.profile.columns),
                          "min": c.min, "max": c.max, "nulls": c.nulls,
                          "kind": c.semantic_type}}))
    """, tmp_path)
    assert out == {"rows": 1, "columns": columns, "min": 1499.5, "max": 1499.5, "nulls": 0,
                   "kind": "constant"}


def test_data_wider_than_the_limit_is_a_clear_error(tmp_path: Path) -> None:
    out = _run(f"""
        import json
        import pyarrow as pa
        import ratchet
        from ratchet.data.profile import profile_table
        from ratchet.errors import InvalidInput

        table = pa.table({{f"c{{i}}": [1.0] for i in range({MAX_COLUMNS + 1})}})
        errors = []
        for call in (lambda: ratchet.data.log(table, name="too-wide"),
                     lambda: profile_table(table)):
            try:
                call()
                errors.append(None)
            except InvalidInput as e:
                errors.append(str(e))
        print(json.dumps({{"errors": errors, "datasets": len(ratchet.data.list_datasets())}}))
    """, tmp_path)
    assert out["datasets"] == 0  # nothing stored
    for message in out["errors"]:
        assert message is not None and "10,001 columns" in message and "at most 10,000" in message


def test_the_small_data_path_matches_the_large_data_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Up to UNPIVOT_MAX_ROWS, pass 1 unpivots columns of one type into one grouped query and
    pass 2 aggregates lists: every number must be the one the per-column queries give."""
    import ratchet.data.profile as profile_module

    mixed = _mixed_table(n=1_500)
    # Every type twice, so that each one forms a group of columns.
    table = pa.table({**{n: mixed[n] for n in mixed.column_names},
                      **{f"{n} again": mixed[n] for n in mixed.column_names}})
    path = tmp_path / "twice.parquet"
    pq.write_table(table, path, row_group_size=400)  # several row groups: several threads
    assert table.num_rows <= profile_module.UNPIVOT_MAX_ROWS
    small = (profile_table(table).to_dict(), profile_parquet(path).to_dict())
    monkeypatch.setattr(profile_module, "UNPIVOT_MAX_ROWS", 0)
    assert (profile_table(table).to_dict(), profile_parquet(path).to_dict()) == small
