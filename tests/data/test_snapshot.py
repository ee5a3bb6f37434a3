"""Canonical snapshots: the same content gives the same digest however it was batched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ratchet.data.readers import open_source
from ratchet.data.snapshot import ROW_GROUP_ROWS, write_snapshot
from ratchet.errors import InvalidInput


def _snap(data: object, path: Path) -> str:
    src = open_source(data)
    return write_snapshot(src.batches, src.schema, path).digest


def test_digest_ignores_batching_and_frame_library(tmp_path: Path) -> None:
    n = ROW_GROUP_ROWS + 12_345
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({  # strings and nulls: their Parquet pages follow Arrow chunks
        "a": np.arange(n), "b": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
        "plan": rng.choice(["basic", "plus", "pro"], n), "id": [f"id-{i}" for i in range(n)],
    })
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    one = _snap(frame, tmp_path / "1.parquet")
    for size in (999, 1000, 7000, 65_536, 100_000):
        batches = table.to_batches(max_chunksize=size)
        reader = pa.RecordBatchReader.from_batches(table.schema, batches)
        assert _snap(reader, tmp_path / f"b{size}.parquet") == one, size
    assert _snap(pl.from_pandas(frame), tmp_path / "3.parquet") == one
    changed = frame.copy()
    changed.loc[5, "b"] = -1.0
    assert _snap(changed, tmp_path / "4.parquet") != one
    meta = pq.ParquetFile(tmp_path / "1.parquet").metadata
    assert meta.num_rows == n and meta.row_group(0).num_rows == ROW_GROUP_ROWS


def test_empty_and_malformed_tables(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="empty"):
        _snap(pd.DataFrame({"a": pd.Series([], dtype="int64")}), tmp_path / "e.parquet")
    with pytest.raises(InvalidInput, match="no columns"):
        _snap(pd.DataFrame(), tmp_path / "n.parquet")
    dupes = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(InvalidInput, match="duplicate column"):
        _snap(dupes, tmp_path / "d.parquet")
