"""Every command has working ``--help``, and a usage mistake anywhere is one ``error:`` line
with a pointer to ``--help`` (exit 2), as the quickstart promises: never Typer's box."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer

from ratchet.cli.main import app
from tests.cli.conftest import Invoke


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in getattr(group, "commands", {}).items():
        yield from _commands(command, (*path, name))


ALL = sorted(_commands(typer.main.get_command(app)))


def test_the_walk_finds_every_command() -> None:
    assert ("runs", "show") in ALL and ("ct", "retrain") in ALL and ("serve",) in ALL
    assert len(ALL) > 60


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "ratchet")
def test_help_works_and_flags_show_no_type(cli: Invoke, path: tuple[str, ...]) -> None:
    result = cli(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage: ratchet" in result.stdout
    assert "<bool>" not in result.stdout  # a flag takes no value


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "ratchet")
def test_unknown_option_is_one_line(cli: Invoke, path: tuple[str, ...]) -> None:
    result = cli(*path, "--no-such-option")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    command = " ".join(("ratchet", *path))
    assert lines[0].startswith("error: No such option: --no-such-option")
    assert lines[0].endswith(f"; see {command} --help")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["runs", "show"], "error: Missing argument 'run_id'; see ratchet runs show --help"),
        (["no-such-command"], "error: No such command 'no-such-command'; see ratchet --help"),
        (["runs", "list", "-n", "zero"], "error: Invalid value for '--max-results' / '-n'"),
        (["check", "churn/1", "--data", "missing.csv", "--label", "y"],
         "error: Invalid value for '--data'"),
    ],
)
def test_usage_errors_are_one_line(cli: Invoke, args: list[str], expected: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stdout == "" and "╭" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr


def test_a_bare_group_still_prints_its_help(cli: Invoke) -> None:
    result = cli("runs")
    assert "Usage: ratchet runs" in result.output and "error:" not in result.output


def test_a_path_the_system_refuses_is_one_line(cli: Invoke) -> None:
    from tests.cli.conftest import assert_user_error

    long_name = "x" * 300  # over NAME_MAX: the OS refuses it
    assert_user_error(cli("data", "infer-schema", long_name), "File name too long")
    assert_user_error(cli("build", "churn/1", "-o", long_name), "File name too long")
