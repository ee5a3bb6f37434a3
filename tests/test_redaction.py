"""Credentials never show: reprs, error messages and ``ratchet db info``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ratchet.config import Settings
from ratchet.redaction import redact_endpoint, redact_text, redact_url

SECRET = "hunter2"


@pytest.mark.parametrize("url,shown", [
    ("postgresql+psycopg://bob:hunter2@db.example:5432/ratchet",
     "postgresql+psycopg://bob:***@db.example:5432/ratchet"),
    ("postgresql://h/db?user=bob&password=hunter2&sslmode=require",
     "postgresql://h/db?user=bob&password=***&sslmode=require"),
    ("postgresql://bob:p%40ss:hunter2@h/db", "postgresql://bob:***@h/db"),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ("postgresql://bob@h/db", "postgresql://bob@h/db"),
    ("s3://bucket/ratchet", "s3://bucket/ratchet"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_endpoint_and_text() -> None:
    assert redact_endpoint("https://hooks.example/T0/B0/hunter2?x=1") == \
        "https://hooks.example/***"
    assert redact_endpoint("http://u:hunter2@127.0.0.1:8080") == "http://127.0.0.1:8080/***"
    assert redact_endpoint("not a url") == "***"
    text = redact_text("cannot reach postgresql://bob:hunter2@h:5/db: refused")
    assert SECRET not in text and "postgresql://bob:***@h:5/db" in text


def test_settings_repr_hides_passwords(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, db_url=f"postgresql+psycopg://bob:{SECRET}@db/r",
                        artifacts_uri=f"s3://key:{SECRET}@bucket/x",
                        tracking_uri=f"https://u:{SECRET}@ratchet.example")
    for shown in (repr(settings), str(settings), f"{settings}", repr([settings])):
        assert SECRET not in shown and "bob:***@db/r" in shown
    assert settings.db_url.endswith(f"{SECRET}@db/r")  # the value itself is intact


def test_data_client_repr_hides_the_password(pg_url: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import ratchet.data

    # Trust authentication ignores the password, so the client really connects with it.
    with_password = pg_url.replace("postgres@", f"postgres:{SECRET}@", 1)
    assert SECRET in with_password
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RATCHET_HOME", str(tmp_path / ".ratchet"))
    monkeypatch.setenv("RATCHET_DB", with_password)
    client = ratchet.data.client()
    assert SECRET not in repr(client) and "postgres:***@" in repr(client)
    assert SECRET not in repr(client.tracking.settings)


def test_db_info_hides_every_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from ratchet.cli.main import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RATCHET_HOME", str(tmp_path / ".ratchet"))
    monkeypatch.setenv("RATCHET_DB", f"postgresql+psycopg://bob:{SECRET}@127.0.0.1:1/r")
    monkeypatch.setenv("RATCHET_ARTIFACTS", f"s3://key:{SECRET}@bucket/x")
    monkeypatch.setenv("RATCHET_TRACKING_URI", f"https://u:{SECRET}@ratchet.example")
    result = CliRunner().invoke(app, ["db", "info", "--json"])
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    info = json.loads(result.stdout)
    assert info["db"] == "postgresql+psycopg://bob:***@127.0.0.1:1/r"
    assert info["artifacts"] == "s3://key:***@bucket/x"


def test_optuna_storage_errors_hide_the_password() -> None:
    from ratchet.errors import InvalidInput
    from ratchet.tuning.storage import _open_rdb

    with pytest.raises(InvalidInput) as exc:
        _open_rdb(f"sqlite://bob:{SECRET}@/x.db", schema="s")
    assert SECRET not in str(exc.value)
