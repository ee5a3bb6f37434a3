"""Settings: ratchet.toml found upward, environment overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratchet.config import (
    ensure_home,
    find_config_file,
    load_settings,
    write_starter_config,
)
from ratchet.errors import ConfigError


def test_defaults_without_config(tmp_path: Path) -> None:
    s = load_settings(cwd=tmp_path, env={})
    assert s.home == tmp_path / ".ratchet"
    assert s.db_url == f"sqlite:///{tmp_path / '.ratchet' / 'ratchet.db'}"
    assert s.artifacts_uri == str(tmp_path / ".ratchet" / "artifacts")
    assert s.config_file is None and s.tracking_uri is None


def test_config_found_upward_and_relative_to_file(tmp_path: Path) -> None:
    (tmp_path / "ratchet.toml").write_text(
        '[ratchet]\nhome = "store"\nartifacts = "s3://bucket/x"\n')
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    s = load_settings(cwd=deep, env={})
    assert s.config_file == tmp_path / "ratchet.toml"
    assert s.home == tmp_path / "store"
    assert s.db_url.endswith(str(tmp_path / "store" / "ratchet.db"))
    assert s.artifacts_uri == "s3://bucket/x"
    assert find_config_file(deep) == tmp_path / "ratchet.toml"


def test_environment_overrides_file(tmp_path: Path) -> None:
    (tmp_path / "ratchet.toml").write_text('[ratchet]\nhome = "store"\ndb = "x.db"\n')
    env = {"RATCHET_HOME": "elsewhere", "RATCHET_DB": "postgresql+psycopg://u@h/db",
           "RATCHET_ARTIFACTS": "arts", "RATCHET_TRACKING_URI": "http://127.0.0.1:1"}
    s = load_settings(cwd=tmp_path, env=env)
    assert s.home == tmp_path / "elsewhere"
    assert s.db_url == "postgresql+psycopg://u@h/db"
    assert s.artifacts_uri == str(tmp_path / "arts")
    assert s.tracking_uri == "http://127.0.0.1:1"
    # a bare path for the db means a SQLite file, relative to the config file
    assert load_settings(cwd=tmp_path, env={}).db_url == f"sqlite:///{tmp_path / 'x.db'}"


@pytest.mark.parametrize("text, message", [
    ("[ratchet\nhome=1", "not valid TOML"),
    ("[ratchet]\nhom = 'x'\n", "unknown key"),
    ("[ratchet]\nhome = 3\n", "must be a string"),
    ("ratchet = 3\n", "must be a table"),
])
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "ratchet.toml").write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_settings(cwd=tmp_path, env={})
    assert "ratchet.toml" in str(err.value)


def test_starter_config_round_trips(tmp_path: Path) -> None:
    path = write_starter_config(tmp_path)
    assert load_settings(cwd=tmp_path, env={}).config_file == path
    with pytest.raises(ConfigError, match="--force"):
        write_starter_config(tmp_path)
    write_starter_config(tmp_path, force=True)


def test_home_ignores_itself(tmp_path: Path) -> None:
    home = ensure_home(load_settings(cwd=tmp_path, env={}))
    assert (home / ".gitignore").read_text().strip().endswith("*")


def test_bad_database_url_is_a_config_error(tmp_path: Path) -> None:
    from ratchet.store import Database

    with pytest.raises(ConfigError, match="unsupported database"):
        Database("mysql://x@y/z")
    with pytest.raises(ConfigError, match="not a database URL"):
        Database("::::")
