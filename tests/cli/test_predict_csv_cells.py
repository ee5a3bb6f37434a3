"""``ratchet predict`` on a CSV file: a bad cell is reported at its own row and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratchet.config import load_settings
from tests.cli.conftest import Invoke
from tests.serving.conftest import churn_frame, register_churn


@pytest.fixture
def churn(project: Path) -> Path:
    register_churn(load_settings())
    return project


def test_one_bad_csv_cell_is_reported_at_its_row(cli: Invoke, churn: Path) -> None:
    """Issue 13: only row 300 had age=x, and every row 0..499 was reported as
    "expected an integer, got '70'"."""
    X, _ = churn_frame(500, seed=5)
    X["age"] = X["age"].astype(object)
    X.loc[300, "age"] = "x"
    X.to_csv(churn / "bad.csv", index=False)
    failed = cli("predict", "churn/1", "bad.csv", "-o", "out.parquet", "--no-log")
    assert failed.exit_code != 0
    assert "row 300, column 'age': expected an integer, got 'x'" in failed.output
    assert "(and " not in failed.output and "got '" + str(X.age[0]) not in failed.output
    # Fixed, the same file scores: CSV cells are read as their column's kind.
    X.loc[300, "age"] = 40
    X.to_csv(churn / "good.csv", index=False)
    ok = cli("predict", "churn/1", "good.csv", "-o", "out.parquet", "--no-log")
    assert ok.exit_code == 0, ok.output
