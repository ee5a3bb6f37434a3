"""A home that cannot be created or written, and a hostile ratchet.toml: one line each."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ratchet.cli.main import app
from ratchet.config import load_settings
from ratchet.errors import ConfigError
from tests.cli.conftest import assert_user_error


@pytest.mark.parametrize("home", ["file/sub", "/proc", "/proc/ratchet-home"])
@pytest.mark.parametrize("command", [["runs", "list"], ["models", "list"],
                                     ["monitor", "history", "churn"]])
def test_unusable_home_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   home: str, command: list[str]) -> None:
    # Tests run as root, which chmod cannot stop: a path under a regular file cannot be
    # created, and /proc cannot be written, whoever asks.
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RATCHET_HOME", home if home.startswith("/") else str(tmp_path / home))
    result = CliRunner().invoke(app, command)
    assert_user_error(result, "ratchet home", "RATCHET_HOME")


def test_deeply_nested_config_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "ratchet.toml").write_text("[ratchet]\nhome = " + "[" * 20_000 + "]" * 20_000)
    with pytest.raises(ConfigError, match="nested too deeply") as exc:
        load_settings(cwd=tmp_path, env={})
    assert "\n" not in str(exc.value)
