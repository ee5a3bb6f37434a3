"""``ratchet users`` and ``ratchet tokens``, in-process on SQLite and PostgreSQL, and the
examples of docs/server-access.md as real commands."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ratchet.store import open_database
from ratchet.store.audit_store import AuditStore
from ratchet.store.auth_store import AuthStore
from tests.cli.conftest import Invoke, assert_user_error, strict_json
from tests.docs_runner import run_page

DOCS = Path(__file__).parents[2] / "docs"


@pytest.fixture
def cli_on(cli: Invoke, backend_url: str, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setenv("RATCHET_DB", backend_url)
    return cli


@pytest.fixture
def store(cli_on: Invoke, backend_url: str) -> AuthStore:
    return AuthStore(open_database(backend_url))


def _ok(cli: Invoke, *args: str) -> str:
    result = cli(*args)
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


@pytest.mark.parametrize("args", [
    ["users"], ["users", "create"], ["users", "list"], ["users", "show"],
    ["users", "set-role"], ["users", "disable"], ["users", "enable"], ["users", "grant"],
    ["users", "revoke"], ["tokens"], ["tokens", "create"], ["tokens", "list"],
    ["tokens", "revoke"],
], ids=" ".join)
def test_help(cli: Invoke, args: list[str]) -> None:
    result = cli(*args, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout


def test_root_help_lists_the_groups(cli: Invoke) -> None:
    out = _ok(cli, "--help")
    assert "users" in out and "tokens" in out


def test_users_create_list_show_and_roles(cli_on: Invoke) -> None:
    out = _ok(cli_on, "users", "create", "Alice", "--role", "admin")
    assert "created user alice (admin)" in out and "ratchet tokens create --user alice" in out
    _ok(cli_on, "users", "create", "bob")  # reader by default: the least
    listed = strict_json(_ok(cli_on, "users", "list", "--json"))
    assert [(u["name"], u["role"], u["disabled_at"], u["grants"]) for u in listed] == [
        ("alice", "admin", None, []), ("bob", "reader", None, [])]
    table = _ok(cli_on, "users", "list")
    assert "alice" in table and "reader" in table and "active" in table
    assert "bob is now writer" in _ok(cli_on, "users", "set-role", "BOB", "writer")
    shown = strict_json(_ok(cli_on, "users", "show", "bob", "--json"))
    assert shown["role"] == "writer" and shown["created_at"].endswith("+00:00")
    assert_user_error(cli_on("users", "create", "alice"), "already exists")
    assert_user_error(cli_on("users", "create", "carol", "--role", "root"),
                      "reader, writer, admin")
    assert_user_error(cli_on("users", "set-role", "bob", "owner"), "reader, writer, admin")
    assert_user_error(cli_on("users", "show", "nobody"), "no user named 'nobody'")
    assert_user_error(cli_on("users", "create", "a b"), "user name")
    assert_user_error(cli_on("users", "set-role", "alice", "reader"), "last enabled admin")


def test_empty_lists_say_how_to_start(cli_on: Invoke) -> None:
    assert "ratchet users create NAME --role admin" in _ok(cli_on, "users", "list")
    assert strict_json(_ok(cli_on, "users", "list", "--json")) == []
    assert "ratchet tokens create --user NAME" in _ok(cli_on, "tokens", "list")
    assert strict_json(_ok(cli_on, "tokens", "list", "--json")) == []


def test_grants_on_each_kind(cli_on: Invoke, store: AuthStore) -> None:
    _ok(cli_on, "users", "create", "bob")
    assert "granted bob write on model churn" in _ok(
        cli_on, "users", "grant", "bob", "--model", "churn", "--level", "write")
    _ok(cli_on, "users", "grant", "bob", "--experiment", "My exp", "--level", "none")
    _ok(cli_on, "users", "grant", "bob", "--deployment", "churn-api", "--level", "admin")
    assert [(g.kind, g.resource, g.level) for g in store.grants_of("bob")] == [
        ("deployment", "churn-api", "admin"), ("experiment", "My exp", "none"),
        ("model", "churn", "write")]
    shown = _ok(cli_on, "users", "show", "bob")
    assert "churn-api" in shown and "My exp" in shown
    assert "model churn: write" in _ok(cli_on, "users", "list")
    out = _ok(cli_on, "users", "revoke", "bob", "--model", " churn ")
    assert "revoked the grant of bob on model churn" in out
    assert [g.kind for g in store.grants_of("bob")] == ["deployment", "experiment"]
    assert_user_error(cli_on("users", "revoke", "bob", "--model", "churn"), "no grant")
    assert_user_error(cli_on("users", "grant", "bob", "--level", "read"), "exactly one")
    assert_user_error(cli_on("users", "grant", "bob", "--model", "a", "--deployment", "b",
                             "--level", "read"), "exactly one")
    assert_user_error(cli_on("users", "grant", "bob", "--model", "m", "--level", "owner"),
                      "none, read, write, admin")
    assert_user_error(cli_on("users", "grant", "nobody", "--model", "m", "--level", "read"),
                      "no user named")
    assert cli_on("users", "grant", "bob", "--model", "m").exit_code == 2  # --level needed


def test_tokens_are_printed_once_and_listed_without_secrets(cli_on: Invoke,
                                                            store: AuthStore) -> None:
    _ok(cli_on, "users", "create", "bob", "--role", "writer")
    result = cli_on("tokens", "create", "--user", "bob", "--label", "ci job",
                    "--expires", "90d")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    token = lines[-1]  # the token alone on the last line of stdout
    assert token.startswith("rt_") and "valid until" in lines[0]
    assert "not shown again" in result.stderr
    user = store.verify_token(token)
    assert user is not None and user.name == "bob"
    listed = strict_json(_ok(cli_on, "tokens", "list", "--json"))
    [record] = listed
    assert record["user"] == "bob" and record["label"] == "ci job"
    assert record["status"] == "active" and record["expires_at"] is not None
    secret = token.rsplit("_", 1)[1]
    for out in (_ok(cli_on, "tokens", "list"), _ok(cli_on, "tokens", "list", "--json"),
                _ok(cli_on, "users", "list", "--json")):
        assert secret not in out and token not in out
    assert record["token_id"] in _ok(cli_on, "tokens", "list", "--user", "BOB")
    assert "no tokens for carol" in _ok(cli_on, "tokens", "list", "--user", "carol")
    out = _ok(cli_on, "tokens", "revoke", record["token_id"])
    assert f"revoked token {record['token_id']} of bob" in out
    assert store.verify_token(token) is None
    assert strict_json(_ok(cli_on, "tokens", "list", "--json"))[0]["status"] == "revoked"


def test_tokens_create_json_revoke_by_token_and_errors(cli_on: Invoke,
                                                       store: AuthStore) -> None:
    _ok(cli_on, "users", "create", "bob")
    issued = strict_json(_ok(cli_on, "tokens", "create", "--user", "bob", "--json"))
    assert issued["token"].startswith(f"rt_{issued['token_id']}_")
    assert issued["expires_at"] is None and issued["user"] == "bob"
    _ok(cli_on, "tokens", "revoke", issued["token"])  # the token itself names its id
    assert store.verify_token(issued["token"]) is None
    assert_user_error(cli_on("tokens", "create", "--user", "nobody"), "no user named")
    assert_user_error(cli_on("tokens", "create", "--user", "bob", "--expires", "3mo"),
                      "--expires")
    assert_user_error(cli_on("tokens", "create", "--user", "bob", "--expires", "10s"),
                      "at least 1min")
    assert_user_error(cli_on("tokens", "revoke", "f" * 32), "no token with id")
    _ok(cli_on, "users", "disable", "bob")
    assert_user_error(cli_on("tokens", "create", "--user", "bob"), "disabled",
                      "ratchet users enable bob")


def test_disable_and_enable_stop_and_restart_tokens(cli_on: Invoke, store: AuthStore) -> None:
    _ok(cli_on, "users", "create", "bob")
    token = store.create_token("bob").token
    assert "their tokens no longer work" in _ok(cli_on, "users", "disable", "bob")
    assert store.verify_token(token) is None
    assert "disabled" in _ok(cli_on, "users", "list")
    assert strict_json(_ok(cli_on, "users", "show", "bob", "--json"))["disabled_at"]
    _ok(cli_on, "users", "enable", "bob")
    assert store.verify_token(token) is not None
    assert_user_error(cli_on("users", "disable", "nobody"), "no user named")


def test_the_docs_page_runs(project: Path) -> None:
    run_page(DOCS / "server-access.md", [sys.executable, "-m", "ratchet.cli.main"])


def test_users_and_tokens_work_through_the_server(cli: Invoke, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Remote mode: an admin manages users from a client; a reader's token is refused."""
    from tests.team_server import start_team_server

    db_url = f"sqlite:///{tmp_path / 'server' / 'ratchet.db'}"
    server = start_team_server(db_url, tmp_path / "artifacts", tmp_path / "server")
    try:
        for key, value in server.client_env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("RATCHET_HOME", raising=False)
        _ok(cli, "users", "create", "dave", "--role", "reader")
        _ok(cli, "users", "grant", "dave", "--model", "churn", "--level", "write")
        issued = strict_json(_ok(cli, "tokens", "create", "--user", "dave", "--json"))
        listed = strict_json(_ok(cli, "users", "list", "--json"))
        assert {u["name"] for u in listed} == {"test-admin", "dave"}
        server_side = AuthStore(open_database(db_url))
        assert [g.resource for g in server_side.grants_of("dave")] == ["churn"]
        _ok(cli, "users", "disable", "dave")
        assert server_side.verify_token(issued["token"]) is None
        _ok(cli, "users", "enable", "dave")
        monkeypatch.setenv("RATCHET_TRACKING_TOKEN", issued["token"])
        assert_user_error(cli("users", "list"), "dave")  # a reader: 403, in one line
        monkeypatch.setenv("RATCHET_TRACKING_TOKEN", "rt_" + "0" * 32 + "_" + "A" * 43)
        assert_user_error(cli("users", "list"), "ratchet tokens create")  # 401
        actions = [e.action for e in AuditStore(open_database(db_url)).list_events()]
        assert "auth.create_user" in actions and "auth.create_token" in actions
    finally:
        server.stop()

