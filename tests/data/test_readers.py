"""Inputs ratchet.data.log accepts, and the clear errors for the ones it refuses."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ratchet.data.readers import open_source
from ratchet.errors import InvalidInput, NotFound


def _read(data: object) -> pa.Table:
    src = open_source(data)
    return pa.Table.from_batches(list(src.batches), schema=src.schema)


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"id": [1, 2, 3], "x": [0.5, None, 2.0], "c": ["a", "b", "a"]})


def test_frames_and_tables(frame: pd.DataFrame) -> None:
    assert _read(frame).num_rows == 3
    assert _read(pl.from_pandas(frame)).column_names == ["id", "x", "c"]
    assert _read(pl.from_pandas(frame).lazy()).num_rows == 3
    assert _read(pa.Table.from_pandas(frame)).schema.metadata is None  # canonical
    indexed = frame.set_index("id")
    assert _read(indexed).column_names == ["x", "c", "id"]  # a real index is kept


def test_files_and_directories(frame: pd.DataFrame, tmp_path: Path) -> None:
    frame.to_csv(tmp_path / "a.csv", index=False)
    with gzip.open(tmp_path / "b.csv.gz", "wt") as f:
        frame.to_csv(f, index=False)
    assert _read(tmp_path / "a.csv").num_rows == 3
    assert _read(tmp_path / "b.csv.gz").num_rows == 3
    parts = tmp_path / "parts"
    parts.mkdir()
    for i in range(3):
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), parts / f"p{i}.parquet")
    assert _read(parts).num_rows == 9
    csvs = tmp_path / "csvs"
    csvs.mkdir()
    for i in range(2):
        frame.to_csv(csvs / f"p{i}.csv", index=False)
    src = open_source(csvs)
    table = pa.Table.from_batches(list(src.batches), schema=src.schema)
    assert table.num_rows == 6 and src.bytes_read() == src.total_bytes


@pytest.mark.parametrize(
    "content, name, message",
    [
        (
            b"a,b,c\n1,2,3\n4,5\n",
            "ragged.csv",
            r"ragged.csv:3: ragged row: expected 3 columns, got 2",
        ),
        (b"\x00\x01\x02binary", "data.csv", "not a CSV text file"),
        (b"", "empty.csv", "the file is empty"),
        (b"a,b\n1,2\n", "table.parquet", "not a Parquet file"),
        (b"whatever", "data.xlsx", "unknown file type"),
    ],
)
def test_bad_files_name_the_place(tmp_path: Path, content: bytes, name: str, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=message) as err:
        _read(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_and_unsupported(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file"):
        _read(tmp_path / "nope.csv")
    with pytest.raises(InvalidInput, match=r"cannot log a builtins\.dict"):
        _read({"a": [1]})
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InvalidInput, match=r"no \.csv or \.parquet"):
        _read(tmp_path / "empty_dir")


def test_directory_with_different_columns(tmp_path: Path) -> None:
    d = tmp_path / "mixed"
    d.mkdir()
    pq.write_table(pa.table({"a": [1]}), d / "1.parquet")
    pq.write_table(pa.table({"b": [1]}), d / "2.parquet")
    with pytest.raises(InvalidInput, match="columns differ"):
        _read(d)


def test_csv_type_change_after_the_first_block(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    rows = "\n".join(str(i) for i in range(300_000))
    path.write_text(f"n\n{rows}\nnot-a-number\n")
    with pytest.raises(InvalidInput, match=r"late\.csv"):
        src = open_source(path)
        for _ in src.batches:
            pass


def test_large_input_streams(tmp_path: Path) -> None:
    n = 400_000
    pd.DataFrame({"a": np.arange(n), "b": np.random.default_rng(0).random(n)}).to_csv(
        tmp_path / "big.csv", index=False
    )
    src = open_source(tmp_path / "big.csv")
    sizes = [b.num_rows for b in src.batches]
    assert sum(sizes) == n and len(sizes) > 1  # several batches, never one whole table


def test_unnamed_index_is_dropped(frame: pd.DataFrame) -> None:
    filtered = pd.concat([frame, frame])[lambda d: d.id > 1]  # index 1, 2, 1, 2
    assert _read(filtered).column_names == ["id", "x", "c"]


def test_batch_rows_row_counts_and_skipped_names(frame: pd.DataFrame, tmp_path: Path) -> None:
    """What batch scoring relies on: batches of a given size, the row count up front
    (Parquet), and the same skipped names as Arrow's and Spark's dataset readers."""
    from ratchet.data.readers import read_frame

    big = pd.concat([frame] * 10, ignore_index=True)  # 30 rows
    d = tmp_path / "d"
    d.mkdir()
    big.to_csv(d / "a.csv", index=False)
    (d / "_SUCCESS").write_text("")
    (d / ".a.csv.tmp").write_text("half,written\n")
    (d / "_temporary").mkdir()
    (d / "_temporary" / "b.csv").write_text("other,columns\n1,2\n")
    src = open_source(d, batch_rows=8)
    assert [b.num_rows for b in src.batches] == [8, 8, 8, 6] and src.kind == "csv"
    big.to_parquet(tmp_path / "p.parquet", row_group_size=30)
    src = open_source(tmp_path / "p.parquet", batch_rows=8)
    assert src.rows == 30 and [b.num_rows for b in src.batches] == [8, 8, 8, 6]
    assert open_source(big, batch_rows=25).rows == 30
    big.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    pd.testing.assert_frame_equal(read_frame(tmp_path / "t.tsv"), read_frame(d))
    with pytest.raises(InvalidInput, match="batch_rows must be >= 1"):
        open_source(big, batch_rows=0)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(InvalidInput, match=r"unknown file type; use a \.parquet or \.csv"):
        read_frame(tmp_path / "x.json")
