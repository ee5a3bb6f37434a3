"""A logged directory never reads through a symlink that leads outside it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ratchet
from ratchet.data.profile import profile_parquet
from ratchet.errors import InvalidInput, NotFound


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("a\n999\n")
    return outside / "secret.csv"


@pytest.fixture
def data_dir(workspace: Path) -> Path:
    d = workspace / "data"
    d.mkdir()
    (d / "a.csv").write_text("a\n1\n2\n")
    return d


def _nothing_logged() -> None:
    with pytest.raises(NotFound):
        ratchet.data.get("d")


def test_a_link_to_a_file_outside_is_refused_and_named(data_dir: Path, secret: Path) -> None:
    (data_dir / "b.csv").symlink_to(secret)
    with pytest.raises(InvalidInput) as e:
        ratchet.data.log(data_dir, name="d")
    assert "b.csv" in str(e.value) and str(secret) in str(e.value)
    _nothing_logged()


def test_a_relative_link_escaping_with_dotdot_is_refused(data_dir: Path, secret: Path) -> None:
    (data_dir / "sub").mkdir()
    (data_dir / "sub" / "b.csv").symlink_to(Path("..", "..", "..", "outside", "secret.csv"))
    assert (data_dir / "sub" / "b.csv").resolve() == secret.resolve()
    with pytest.raises(InvalidInput, match=r"b\.csv"):
        ratchet.data.log(data_dir, name="d")
    _nothing_logged()


def test_a_link_to_a_directory_outside_is_refused(data_dir: Path, secret: Path) -> None:
    (data_dir / "more").symlink_to(secret.parent, target_is_directory=True)
    with pytest.raises(InvalidInput, match="more"):
        ratchet.data.log(data_dir, name="d")
    _nothing_logged()


def test_links_inside_the_directory_add_nothing(data_dir: Path) -> None:
    (data_dir / "alias.csv").symlink_to(data_dir / "a.csv")
    (data_dir / "sub").mkdir()
    (data_dir / "sub" / "c.csv").write_text("a\n3\n")
    (data_dir / "sub-again").symlink_to(data_dir / "sub", target_is_directory=True)
    v = ratchet.data.log(data_dir, name="d")
    assert sorted(v.to_pandas()["a"]) == [1, 2, 3]  # each real file read once


def test_a_path_given_directly_is_followed(workspace: Path, secret: Path,
                                           data_dir: Path) -> None:
    link = workspace / "mine.csv"
    link.symlink_to(secret)
    assert list(ratchet.data.log(link, name="d").to_pandas()["a"]) == [999]
    root = workspace / "data-link"
    root.symlink_to(data_dir, target_is_directory=True)
    assert list(ratchet.data.log(root, name="e").to_pandas()["a"]) == [1, 2]


def test_parquet_directories_follow_the_same_rule(workspace: Path, tmp_path: Path) -> None:
    d = workspace / "pq"
    d.mkdir()
    pq.write_table(pa.table({"a": [1, 2]}), d / "a.parquet")
    pq.write_table(pa.table({"a": [999]}), tmp_path / "secret.parquet")
    (d / "b.parquet").symlink_to(tmp_path / "secret.parquet")
    with pytest.raises(InvalidInput, match=r"b\.parquet"):
        profile_parquet(d)
    with pytest.raises(InvalidInput, match=r"b\.parquet"):
        ratchet.data.log(d, name="d")
    (d / "b.parquet").unlink()
    pq.write_table(pa.table({"a": [3]}), d / "c.pq")  # .pq counts for the profile too
    v = ratchet.data.log(d, name="d")
    assert v.profile.rows == v.row_count == 3
    pd.testing.assert_series_equal(v.to_pandas()["a"], pd.Series([1, 2, 3], name="a"))
