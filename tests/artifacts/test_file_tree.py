"""ratchet.artifacts.file_tree: named files under an artifact root (the prediction log's
storage). The S3 side runs in tests/serving/test_prediction_log_s3.py."""

from __future__ import annotations

import os
from pathlib import Path

from ratchet.artifacts.file_tree import FileTree
from ratchet.serving.prediction_log import LogStorage


def test_local_tree_puts_atomically_and_lists_visible_files(tmp_path: Path) -> None:
    tree = FileTree(tmp_path / "root", "predictions")
    assert tree.local and tree.base == str(tmp_path / "root" / "predictions")
    hour = tree.path("deployment=churn", "hour=2024-05-01T10")
    assert tree.list(hour, dirs=False) == [] and tree.list(tree.path("nope"), dirs=True) == []
    tree.put(hour, "b.parquet", b"2")
    tree.put(hour, "a.parquet", b"1")
    tree.put(hour, "a.parquet", b"1 again")  # replaced whole
    Path(hour, ".c.parquet.tmp").write_bytes(b"in flight")
    Path(hour, "notes.txt").write_text("x")
    assert tree.list(hour, dirs=False, suffix=".parquet") == ["a.parquet", "b.parquet"]
    assert tree.list(hour, dirs=False) == ["a.parquet", "b.parquet", "notes.txt"]
    assert tree.list(tree.path("deployment=churn"), dirs=True) == ["hour=2024-05-01T10"]
    assert Path(hour, "a.parquet").read_bytes() == b"1 again"
    assert tree.url(os.path.join(hour, "a.parquet")) == os.path.join(hour, "a.parquet")

    class Connection:
        registered: list[object] = []

        def register_filesystem(self, fs: object) -> None:
            self.registered.append(fs)

    con = Connection()
    tree.register_with(con)  # a local tree needs no filesystem
    assert con.registered == []


def test_the_prediction_log_storage_is_a_file_tree(tmp_path: Path) -> None:
    storage = LogStorage(tmp_path)
    assert isinstance(storage, FileTree) and storage.base.endswith("predictions")
    d = storage.path("deployment=x", "hour=2024-05-01T10")
    storage.put(d, "a.parquet", b"x")
    storage.put(d, "b.json", b"x")
    assert storage.list(d, dirs=False) == ["a.parquet"]  # Parquet files only
