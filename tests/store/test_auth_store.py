"""AuthStore and AuditStore against SQLite and PostgreSQL, and migration 0010 over a store
that already holds data."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from ratchet.clock import now_ms
from ratchet.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from ratchet.store import open_database
from ratchet.store import schema as t
from ratchet.store.audit_store import MAX_LIMIT, AuditStore
from ratchet.store.auth_store import AuthStore, Grant, TokenRecord, parse_token, user_name
from ratchet.store.database import HEAD_REVISION, Database, current_revision, upgrade
from ratchet.store.stores import SqlStores


def _record(auth: AuthStore, token_id: str) -> TokenRecord:
    [found] = [r for r in auth.list_tokens() if r.token_id == token_id]
    return found


@pytest.fixture
def auth(backend_url: str) -> AuthStore:
    return AuthStore(open_database(backend_url))


@pytest.fixture
def audit(backend_url: str) -> AuditStore:
    return AuditStore(open_database(backend_url))


def test_users_roles_and_canonical_names(auth: AuthStore) -> None:
    alice = auth.create_user("Alice", "admin")
    assert (alice.name, alice.role, alice.disabled_at) == ("alice", "admin", None)
    # Another spelling of the same name is the same user, on create and on lookup.
    for spelling in ("alice", " ALICE ", "\uff41lice"):  # full-width a
        with pytest.raises(AlreadyExists):
            auth.create_user(spelling, "reader")
        assert auth.get_user(spelling).name == "alice"
    auth.create_user("bob@example.com", "reader")
    assert [u.name for u in auth.list_users()] == ["alice", "bob@example.com"]
    assert auth.set_role("BOB@example.com", "writer").role == "writer"
    with pytest.raises(InvalidInput, match="reader, writer, admin"):
        auth.create_user("carol", "superuser")
    with pytest.raises(InvalidInput, match="reader, writer, admin"):
        auth.set_role("bob@example.com", "root")
    for bad in ("", "a b", "../x", "al\u200bice", "\u0430lice", "x" * 200):  # Cyrillic a
        with pytest.raises(InvalidInput):
            auth.create_user(bad, "reader")
    with pytest.raises(NotFound, match="ratchet users create"):
        auth.get_user("nobody")
    with pytest.raises(NotFound):
        auth.set_role("nobody", "reader")
    with pytest.raises(NotFound):
        auth.get_user("not a valid name")  # a name no user can have is simply not found


def test_the_last_enabled_admin_stays(auth: AuthStore) -> None:
    auth.create_user("alice", "admin")
    with pytest.raises(Conflict, match="last enabled admin"):
        auth.set_role("alice", "writer")
    with pytest.raises(Conflict, match="last enabled admin"):
        auth.disable_user("alice")
    auth.create_user("bob", "admin")
    assert auth.set_role("alice", "writer").role == "writer"
    with pytest.raises(Conflict):
        auth.disable_user("bob")
    assert auth.get_user("bob").disabled_at is None


def test_disable_and_enable(auth: AuthStore) -> None:
    auth.create_user("bob", "writer")
    issued = auth.create_token("bob")
    assert auth.verify_token(issued.token) is not None
    first = auth.disable_user("bob").disabled_at
    assert first is not None
    assert auth.disable_user("bob").disabled_at == first  # twice keeps the first time
    assert auth.verify_token(issued.token) is None
    with pytest.raises(Conflict, match="disabled"):
        auth.create_token("bob")
    assert auth.enable_user("bob").disabled_at is None
    assert auth.verify_token(issued.token) is not None
    with pytest.raises(NotFound):
        auth.disable_user("nobody")


def test_grants_replace_and_revoke(auth: AuthStore) -> None:
    auth.create_user("bob", "reader")
    assert auth.grant("bob", "model", "churn", "write") == Grant("bob", "model", "churn",
                                                                  "write")
    auth.grant("BOB", "model", " churn ", "admin")  # the same grant, replaced
    auth.grant("bob", "experiment", "Churn exp", "none")
    auth.grant("bob", "deployment", "churn-api", "read")
    assert auth.grants_of("bob") == [
        Grant("bob", "deployment", "churn-api", "read"),
        Grant("bob", "experiment", "Churn exp", "none"),
        Grant("bob", "model", "churn", "admin"),
    ]
    auth.revoke_grant("bob", "model", "churn")
    assert [g.kind for g in auth.grants_of("bob")] == ["deployment", "experiment"]
    with pytest.raises(NotFound, match="no grant"):
        auth.revoke_grant("bob", "model", "churn")
    with pytest.raises(NotFound, match="no user"):
        auth.revoke_grant("nobody", "model", "churn")
    with pytest.raises(NotFound, match="no user"):
        auth.grant("nobody", "model", "churn", "read")
    with pytest.raises(InvalidInput, match="none, read, write, admin"):
        auth.grant("bob", "model", "churn", "owner")
    with pytest.raises(InvalidInput, match="experiment, model, deployment"):
        auth.grant("bob", "dataset", "x", "read")
    with pytest.raises(InvalidInput):
        auth.grant("bob", "model", "a/b", "read")  # not a model name
    with pytest.raises(InvalidInput):
        auth.grant("bob", "deployment", "not portable!", "read")
    assert auth.grants_of("nobody") == []


def test_tokens_are_shown_once_and_stored_hashed(auth: AuthStore) -> None:
    auth.create_user("bob", "writer")
    issued = auth.create_token("bob", label="laptop")
    parsed = parse_token(issued.token)
    assert parsed is not None and parsed[0] == issued.token_id
    assert issued.token.startswith(f"rt_{issued.token_id}_") and len(parsed[1]) >= 43
    with auth.db.read() as conn:
        stored = conn.execute(select(t.api_tokens)).one()
    assert stored.secret_hash == hashlib.sha256(parsed[1].encode()).hexdigest()
    assert parsed[1] not in repr(tuple(stored))  # the secret itself is nowhere
    [record] = auth.list_tokens()
    assert not hasattr(record, "secret_hash") and not hasattr(record, "token")
    assert (record.token_id, record.user_name, record.label) == (issued.token_id, "bob",
                                                                 "laptop")
    user = auth.verify_token(issued.token)
    assert user is not None and (user.name, user.role) == ("bob", "writer")
    other = auth.create_token("bob")
    assert other.token != issued.token
    assert [r.token_id for r in auth.list_tokens("Bob")] == [issued.token_id, other.token_id]
    assert auth.list_tokens("nobody") == [] and auth.list_tokens("not valid!") == []
    with pytest.raises(NotFound):
        auth.create_token("nobody")


def test_verify_refuses_wrong_expired_and_revoked_tokens(auth: AuthStore) -> None:
    auth.create_user("bob", "writer")
    now = now_ms()
    issued = auth.create_token("bob", expires_at=now + 60_000)
    token_id, secret = parse_token(issued.token)  # type: ignore[misc]
    wrong = f"rt_{token_id}_{'A' * len(secret)}"
    unknown = f"rt_{'0' * 32}_{secret}"
    for bad in (wrong, unknown, "", "Bearer x", issued.token[:-1], "rt_" + token_id,
                issued.token + "\n\x00"):
        assert auth.verify_token(bad) is None, bad
    assert auth.verify_token(issued.token, now + 59_999) is not None
    assert auth.verify_token(issued.token, now + 60_000) is None  # expired
    auth.revoke_token(issued.token_id)
    revoked_at = _record(auth, issued.token_id).revoked_at
    assert revoked_at is not None and auth.verify_token(issued.token) is None
    assert auth.revoke_token(issued.token_id).revoked_at == revoked_at
    with pytest.raises(NotFound, match="ratchet tokens list"):
        auth.revoke_token("0" * 32)
    with pytest.raises(InvalidInput, match="future"):
        auth.create_token("bob", expires_at=now - 1)


def test_last_used_is_written_at_most_once_a_minute(auth: AuthStore) -> None:
    auth.create_user("bob", "reader")
    issued = auth.create_token("bob")
    assert _record(auth, issued.token_id).last_used_at is None
    t0 = now_ms()
    auth.verify_token(issued.token, t0)
    auth.verify_token(issued.token, t0 + 59_000)
    assert _record(auth, issued.token_id).last_used_at == t0
    auth.verify_token(issued.token, t0 + 60_000)
    assert _record(auth, issued.token_id).last_used_at == t0 + 60_000


def test_user_name_rule() -> None:
    assert user_name(" Bob.Smith+ci@Example.com ") == "bob.smith+ci@example.com"
    for bad in ("-bob", "bob/x", "bob:x", "b\u202eob", 7):
        with pytest.raises(InvalidInput):
            user_name(bad)


def test_audit_records_and_lists_newest_first(audit: AuditStore) -> None:
    ids = [audit.record("alice", "registry.set_alias", kind="model", resource="churn",
                        client="10.0.0.7",
                        detail={"alias": "champion", "version": 3, "x": float("nan")},
                        at=1000),
           audit.record("bob", "tracking.create_run", kind="experiment", resource="e",
                        at=2000),
           audit.record("alice", "users.create", at=3000, client="x" * 500)]
    events = audit.list_events()
    assert [e.event_id for e in events] == ids[::-1]
    first = events[-1]
    assert (first.actor, first.action, first.kind, first.resource, first.client, first.at) \
        == ("alice", "registry.set_alias", "model", "churn", "10.0.0.7", 1000)
    assert first.detail == {"alias": "champion", "version": 3, "x": None}
    assert events[0].client == "x" * 127 + "…" and events[0].detail is None
    long_one = audit.record("bob (" + "y" * 400 + ")", "tracking.log_batch",
                            resource=", ".join(["f" * 32] * 20))
    [event] = audit.list_events(action="tracking.log_batch")
    assert event.event_id == long_one and len(event.actor) == len(event.resource or "") == 256
    assert [e.at for e in audit.list_events(since=2000, until=5000)] == [3000, 2000]
    assert [e.at for e in audit.list_events(until=2000)] == [1000]
    assert [e.at for e in audit.list_events(actor="alice")] == [3000, 1000]
    assert [e.at for e in audit.list_events(action="tracking.create_run")] == [2000]
    assert [e.at for e in audit.list_events(kind="model", resource="churn")] == [1000]
    assert [e.at for e in audit.list_events(until=5000, limit=1)] == [3000]
    big = audit.record("alice", "data.log", detail={"rows": list(range(5000))})
    [event] = audit.list_events(action="data.log")
    assert event.event_id == big and event.detail is not None and event.detail["truncated"]
    for bad in ({"actor": ""}, {"action": "Registry Set"}, {"action": ""},
                {"kind": "x" * 17}):
        args = {"actor": "alice", "action": "a.b", **bad}
        with pytest.raises(InvalidInput):
            audit.record(args.pop("actor"), args.pop("action"), **args)
    with pytest.raises(InvalidInput):
        audit.list_events(limit=0)


def test_audit_limit_is_capped(audit: AuditStore) -> None:
    with audit.db.write() as conn:
        conn.execute(t.audit_log.insert(), [
            {"event_id": f"{i:032x}", "at": i, "actor": "a", "action": "x.y"}
            for i in range(MAX_LIMIT + 5)])
    events = audit.list_events(limit=10**9)
    assert len(events) == MAX_LIMIT and events[0].at == MAX_LIMIT + 4
    rest = audit.list_events(before=events[-1].event_id, limit=10**9)
    assert [e.at for e in rest] == [4, 3, 2, 1, 0]


def test_audit_pages_do_not_split_a_millisecond(audit: AuditStore) -> None:
    ids = [audit.record("a", "x.y", at=5) for _ in range(5)]
    first = audit.list_events(limit=2)
    second = audit.list_events(before=first[-1].event_id, limit=2)
    third = audit.list_events(before=second[-1].event_id, limit=2)
    seen = [e.event_id for e in first + second + third]
    assert seen == sorted(ids, reverse=True)
    with pytest.raises(NotFound, match="page back"):
        audit.list_events(before="f" * 32)


def test_the_stores_object_has_auth_and_audit(backend_url: str) -> None:
    stores = SqlStores(open_database(backend_url))
    assert isinstance(stores.auth, AuthStore) and stores.auth is stores.auth
    assert isinstance(stores.audit, AuditStore)


def test_migration_0010_over_a_store_with_data(backend_url: str) -> None:
    from sqlalchemy import MetaData, text

    db = Database(backend_url, migrate=False)
    found = MetaData()
    with db.engine.begin() as conn:
        found.reflect(conn)
        found.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    assert upgrade(db, "0009") == "0009"
    with db.write() as conn:
        conn.execute(text("INSERT INTO experiments (experiment_id, name, lifecycle, "
                          "created_at) VALUES (:i, 'kept', 'active', 1)"), {"i": "e" * 32})
    assert upgrade(db) == HEAD_REVISION == current_revision(db)
    with db.read() as conn:
        assert conn.execute(text("SELECT name FROM experiments")).scalar() == "kept"
    auth = AuthStore(db)
    auth.create_user("alice", "admin")
    assert auth.verify_token(auth.create_token("alice").token) is not None
    with db.write() as conn:
        conn.execute(t.server_replies.insert().values(key="k" * 64, actor="alice",
                                                      created_at=1, status=None, body=None))
