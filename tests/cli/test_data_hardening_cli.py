"""``ratchet data`` with hostile references: one ``error:`` line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.cli.conftest import Invoke, assert_user_error


@pytest.fixture
def logged(cli: Invoke, project: Path) -> None:
    pd.DataFrame({"a": [1, 2, 3]}).to_csv(project / "x.csv", index=False)
    assert cli("data", "log", str(project / "x.csv"), "--name", "x").exit_code == 0


@pytest.mark.parametrize("selector", ["99999999999999999999999", "9223372036854775808",
                                      "9" * 5000])
def test_a_version_too_large_for_the_store_is_a_one_line_error(
        cli: Invoke, logged: None, selector: str) -> None:
    result = cli("data", "show", f"x@{selector}", catch_exceptions=True)
    assert_user_error(result, "no dataset version is that large")


def test_the_largest_storable_version_is_simply_not_found(cli: Invoke, logged: None) -> None:
    assert_user_error(cli("data", "show", "x@9223372036854775807", catch_exceptions=True),
                      "has no version 9223372036854775807")


def test_non_ascii_digits_are_not_a_version(cli: Invoke, logged: None) -> None:
    # '²'.isdigit() is True but int('²') raises ValueError.
    assert_user_error(cli("data", "show", "x@²", catch_exceptions=True), "after '@'")
