"""Batch scoring reads its inputs with ratchet.data.readers (every format `ratchet data
log` accepts) and publishes its output atomically (ratchet.atomic)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pandas as pd
import pytest

from ratchet.errors import InvalidInput
from ratchet.registry import RegistryClient
from ratchet.serving.batch_scoring import score_file
from ratchet.serving.prediction_query import predictions
from tests.serving.conftest import churn_frame


def test_compressed_csv_tsv_and_parquet_score_alike(churn_registry: RegistryClient,
                                                    tmp_path: Path) -> None:
    ws = churn_registry.workspace
    X, _ = churn_frame(250, seed=3)
    with gzip.open(tmp_path / "in.csv.gz", "wt") as f:
        X.to_csv(f, index=False)
    X.to_csv(tmp_path / "in.tsv", sep="\t", index=False)
    X.to_parquet(tmp_path / "in.parquet")
    scored = {}
    for name in ("in.csv.gz", "in.tsv", "in.parquet"):
        out = tmp_path / f"{name}.scored.parquet"
        result = score_file("churn@champion", tmp_path / name, out, batch_rows=100,
                            workspace=ws, deployment="batch")
        assert (result.rows, result.batches) == (250, 3)  # 100 + 100 + 50
        scored[name] = pd.read_parquet(out)
    for name in ("in.tsv", "in.parquet"):
        pd.testing.assert_series_equal(scored[name]["prediction"],
                                       scored["in.csv.gz"]["prediction"])
    assert len(predictions("batch", workspace=ws)) == 750


def test_directories_skip_hidden_and_underscore_files(churn_registry: RegistryClient,
                                                      tmp_path: Path) -> None:
    X, _ = churn_frame(120, seed=5)
    d = tmp_path / "in"
    d.mkdir()
    X.iloc[:60].to_parquet(d / "part-0.parquet")
    X.iloc[60:].to_parquet(d / "part-1.parquet")
    (d / "_SUCCESS").write_text("")
    (d / ".part-2.parquet.tmp").write_bytes(b"half")
    (d / "_temporary").mkdir()
    (d / "_temporary" / "part-9.parquet").write_bytes(b"not parquet")
    out = tmp_path / "out.csv"
    result = score_file("churn/1", d, out, workspace=churn_registry.workspace, log=False)
    assert result.rows == 120 and len(pd.read_csv(out)) == 120
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~_umask()  # the user's umask decides


def test_a_failure_leaves_no_output_and_no_temporary(churn_registry: RegistryClient,
                                                     tmp_path: Path) -> None:
    X, _ = churn_frame(50, seed=6)
    X.to_csv(tmp_path / "in.csv", index=False)
    with open(tmp_path / "in.csv", "a") as f:
        f.write("40,1.0,basic,extra\n")  # a ragged row after the first batch
    out = tmp_path / "out.parquet"
    with pytest.raises(InvalidInput, match="ragged row"):
        score_file("churn/1", tmp_path / "in.csv", out, batch_rows=10,
                   workspace=churn_registry.workspace, log=False)
    assert not out.exists() and not list(tmp_path.glob(".out.parquet*"))
    (tmp_path / "in.json").write_text("{}")
    with pytest.raises(InvalidInput, match=r"use a \.parquet or \.csv.*\.tsv"):
        score_file("churn/1", tmp_path / "in.json", out, workspace=churn_registry.workspace,
                   log=False)
    assert not out.exists()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
