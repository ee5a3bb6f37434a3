"""Principal (levels from roles and grants) and Authenticator (tokens, cache, limiter)."""

from __future__ import annotations

import inspect
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import update

from ratchet.clock import now_ms
from ratchet.errors import Forbidden, InvalidInput, TooManyAttempts, Unauthorized
from ratchet.server.auth import (
    LOCAL_ADMIN,
    Authenticator,
    FailureLimiter,
    Principal,
)
from ratchet.store import auth_store as auth_store_module
from ratchet.store import open_database
from ratchet.store import schema as t
from ratchet.store.auth_store import AuthStore


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


class CountingStore(AuthStore):
    """The real store, counting token checks (to see what the cache saves)."""

    verified = 0

    def verify_token(self, token: str, now_ms: int | None = None):  # type: ignore[no-untyped-def]
        self.verified += 1
        return super().verify_token(token, now_ms)


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    store = CountingStore(open_database(f"sqlite:///{tmp_path / 'auth.db'}"))
    store.create_user("alice", "admin")
    store.create_user("bob", "reader")
    return store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def authn(store: CountingStore, clock: Clock) -> Authenticator:
    return Authenticator(store, required=True, failures_per_minute=10, clock=clock)


def _bearer(store: AuthStore, user: str = "bob") -> str:
    return f"Bearer {store.create_token(user).token}"


# ------------------------------------------------------------------ Principal
def test_roles_give_a_level_everywhere() -> None:
    reader = Principal("bob", "reader", {})
    writer = Principal("carl", "writer", {})
    admin = Principal("alice", "admin", {})
    assert reader.level_for() == "read" and reader.level_for("model", "churn") == "read"
    assert reader.can("read") and not reader.can("write")
    assert writer.can("write", "model", "churn") and not writer.can("admin")
    assert admin.can("admin", "deployment", "api")
    assert Principal("x", "unknown-role", {}).level_for() == "none"
    assert LOCAL_ADMIN.role == "admin" and LOCAL_ADMIN.can("admin") and LOCAL_ADMIN.name
    # A user with the local admin's name and role is still not the local admin.
    assert Principal(LOCAL_ADMIN.name, "admin", {}) != LOCAL_ADMIN


def test_a_grant_wins_on_its_resource_up_and_down() -> None:
    up = Principal("bob", "reader", {("model", "churn"): "write"})
    assert up.can("write", "model", "churn")
    assert up.can("write", "model", " churn ")  # canonical spelling of the same name
    assert not up.can("write", "model", "other")
    assert not up.can("write", "experiment", "churn")  # another kind, another resource
    assert not up.can("write")  # no resource: the role's level
    down = Principal("carl", "writer", {("experiment", "secret"): "none",
                                        ("deployment", "api"): "read"})
    assert not down.can("read", "experiment", "secret")
    assert down.level_for("deployment", "api") == "read"
    assert down.can("write", "experiment", "open")
    # The admin role is admin everywhere, whatever a grant says.
    assert Principal("alice", "admin", {("model", "m"): "none"}).can("admin", "model", "m")


def test_can_anywhere_sees_roles_and_grants() -> None:
    reader = Principal("bob", "reader", {("model", "churn"): "write"})
    assert reader.can_anywhere("read") and reader.can_anywhere("write")
    assert not reader.can_anywhere("admin")
    shut_out = Principal("eve", "reader", {("model", "m"): "none"})
    assert shut_out.can_anywhere("read") and not shut_out.can_anywhere("write")
    assert Principal("z", "unknown", {}).can_anywhere("none")
    assert not Principal("z", "unknown", {}).can_anywhere("read")


def test_require_says_what_is_missing_and_how_to_get_it() -> None:
    bob = Principal("bob", "reader", {("model", "churn"): "write"})
    bob.require("write", "model", "churn")
    with pytest.raises(Forbidden, match=r"may not write on model 'other'.*ratchet users grant "
                                        r"bob --model other --level write"):
        bob.require("write", "model", "other")
    with pytest.raises(Forbidden, match="ratchet users set-role bob writer"):
        bob.require("write")
    with pytest.raises(Forbidden, match="only an admin"):
        bob.require("admin")
    assert Forbidden.http_status == 403
    with pytest.raises(InvalidInput, match="none, read, write, admin"):
        bob.can("owner")


def test_grants_cannot_be_changed_after_the_fact() -> None:
    grants = {("model", "churn"): "read"}
    bob = Principal("bob", "reader", grants)
    grants[("model", "churn")] = "admin"  # the caller's dict is copied
    assert bob.level_for("model", "churn") == "read"
    with pytest.raises(TypeError):
        bob.grants[("model", "x")] = "admin"  # type: ignore[index]


# ------------------------------------------------------------------ Authenticator
def test_no_header_is_the_local_admin_only_when_auth_is_off(store: CountingStore) -> None:
    off = Authenticator(store, required=False)
    assert off.authenticate(None, "127.0.0.1") is LOCAL_ADMIN
    assert off.authenticate("", "127.0.0.1") is LOCAL_ADMIN
    # A token that is there is checked even then: the audit log names the real caller.
    assert off.authenticate(_bearer(store), "127.0.0.1").name == "bob"
    with pytest.raises(Unauthorized):
        off.authenticate("Bearer rt_nope", "127.0.0.1")
    on = Authenticator(store, required=True)
    with pytest.raises(Unauthorized, match="ratchet tokens create --user NAME") as caught:
        on.authenticate(None, "10.0.0.1")
    assert caught.value.http_status == 401


def test_a_valid_token_is_its_user_with_grants(authn: Authenticator,
                                               store: CountingStore) -> None:
    store.grant("bob", "model", "churn", "write")
    header = _bearer(store)
    found = authn.authenticate(header, "10.0.0.1")
    assert (found.name, found.role) == ("bob", "reader")
    assert found.can("write", "model", "churn") and not found.can("write", "model", "x")
    assert authn.authenticate("bearer " + header.split()[1], "10.0.0.1").name == "bob"
    for bad in ("Basic Ym9iOnB3", "Bearer", "Bearer   ", "rt_x", header.replace("rt_", "rx_")):
        with pytest.raises(Unauthorized, match="ratchet tokens create"):
            authn.authenticate(bad, "10.0.0.2")


def test_checks_are_cached_briefly_and_revocation_wins_after(
        authn: Authenticator, store: CountingStore, clock: Clock) -> None:
    issued = store.create_token("bob")
    header = f"Bearer {issued.token}"
    for _ in range(50):
        authn.authenticate(header, "10.0.0.1")
    assert store.verified == 1  # one database check for 50 calls
    assert issued.token not in repr(authn._cache)  # keyed by a hash, not the token
    store.revoke_token(issued.token_id)
    clock.advance(4.9)
    assert authn.authenticate(header, "10.0.0.1").name == "bob"  # within the bound
    clock.advance(0.2)
    with pytest.raises(Unauthorized):
        authn.authenticate(header, "10.0.0.1")


def test_expired_tokens_disabled_users_and_grant_changes(
        authn: Authenticator, store: CountingStore, clock: Clock) -> None:
    store.create_user("carl", "writer")
    store.create_user("dora", "writer")
    expiring = store.create_token("bob", expires_at=now_ms() + 3_600_000)
    carl = f"Bearer {store.create_token('carl').token}"
    dora = f"Bearer {store.create_token('dora').token}"
    assert authn.authenticate(f"Bearer {expiring.token}", "c").name == "bob"
    assert authn.authenticate(carl, "c").can("write", "model", "churn")
    assert authn.authenticate(dora, "c").name == "dora"
    with store.db.write() as conn:  # the hour has passed
        conn.execute(update(t.api_tokens).where(t.api_tokens.c.token_id == expiring.token_id)
                     .values(expires_at=now_ms() - 1))
    store.grant("carl", "model", "churn", "none")  # grants go down too
    store.disable_user("dora")
    clock.advance(5.1)
    with pytest.raises(Unauthorized):
        authn.authenticate(f"Bearer {expiring.token}", "c")
    with pytest.raises(Unauthorized):
        authn.authenticate(dora, "c")
    assert not authn.authenticate(carl, "c").can("read", "model", "churn")
    store.grant("carl", "model", "churn", "admin")
    authn.forget()  # this process changed it: no need to wait
    assert authn.authenticate(carl, "c").can("admin", "model", "churn")


def test_failed_attempts_are_limited_per_client(authn: Authenticator, store: CountingStore,
                                                clock: Clock) -> None:
    good = _bearer(store)
    wrong = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for _ in range(10):
        with pytest.raises(Unauthorized):
            authn.authenticate(wrong, "10.0.0.9")
        clock.advance(1)
    # Past the limit even the right token is refused: guessing learns nothing more.
    with pytest.raises(TooManyAttempts) as caught:
        authn.authenticate(good, "10.0.0.9")
    assert caught.value.http_status == 429 and caught.value.retry_after == 50
    assert "10.0.0.9" in str(caught.value)
    assert authn.authenticate(good, "10.0.0.10").name == "bob"  # another client is fine
    clock.advance(30)
    with pytest.raises(TooManyAttempts) as caught:
        authn.authenticate(good, "10.0.0.9")
    assert caught.value.retry_after == 20
    clock.advance(20)  # the oldest failure left the window: one more attempt allowed
    assert authn.authenticate(good, "10.0.0.9").name == "bob"
    with pytest.raises(Unauthorized):
        authn.authenticate(wrong, "10.0.0.9")
    with pytest.raises(TooManyAttempts):
        authn.authenticate(good, "10.0.0.9")
    clock.advance(61)
    assert authn.authenticate(good, "10.0.0.9").name == "bob"


def test_missing_credentials_are_not_counted_as_guesses(authn: Authenticator,
                                                        store: CountingStore) -> None:
    for _ in range(30):
        with pytest.raises(Unauthorized):
            authn.authenticate(None, "10.0.0.5")
    assert authn.authenticate(_bearer(store), "10.0.0.5").name == "bob"


def test_the_limiter_counts_exactly_under_threads(authn: Authenticator,
                                                  store: CountingStore) -> None:
    wrong = "Bearer rt_" + "0" * 32 + "_" + "A" * 43

    def attempt(_: int) -> str:
        try:
            authn.authenticate(wrong, "10.1.1.1")
        except TooManyAttempts:
            return "limited"
        except Unauthorized:
            return "refused"
        return "accepted"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(200)))
    assert outcomes.count("accepted") == 0
    # A check and its failure are not one step, so a few racing attempts may get through
    # before the limit shows; never more than one per thread.
    assert 10 <= outcomes.count("refused") <= 10 + 8
    assert outcomes.count("limited") == 200 - outcomes.count("refused")


def test_limiter_bounds_and_config() -> None:
    with pytest.raises(InvalidInput, match="at least 1"):
        FailureLimiter(0)
    clock = Clock()
    limiter = FailureLimiter(2, clock=clock)
    limiter.fail("a")
    limiter.check("a")
    limiter.fail("a")
    with pytest.raises(TooManyAttempts):
        limiter.check("a")
    clock.advance(60)
    limiter.check("a")
    assert limiter._failures == {}  # forgotten once quiet


def test_the_secret_is_compared_in_constant_time(store: CountingStore,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real = auth_store_module.hmac.compare_digest

    def recording(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth_store_module.hmac, "compare_digest", recording)
    issued = store.create_token("bob")
    token_id = issued.token_id
    assert store.verify_token(issued.token) is not None
    assert store.verify_token(f"rt_{token_id}_{'A' * 43}") is None
    assert store.verify_token(f"rt_{'0' * 32}_{'A' * 43}") is None  # unknown id: same work
    assert len(calls) == 3 and all(len(a) == len(b) == 64 for a, b in calls)
    source = inspect.getsource(auth_store_module)
    assert "secret_hash ==" not in source and "== row.secret_hash" not in source


# ------------------------------------------------------------------ through the server
@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    """The team server's app in-process, bound (as far as it knows) to a LAN address."""
    from starlette.testclient import TestClient

    from ratchet.server.app import ServerOptions, create_app
    from ratchet.workspace import Workspace

    workspace = Workspace.at(tmp_path / "home")
    auth = workspace.stores.auth
    auth.create_user("alice", "admin")
    auth.create_user("bob", "reader")
    auth.grant("bob", "model", "churn", "write")
    app = create_app(workspace, ServerOptions(host="0.0.0.0",
                                              allowed_hosts=("testserver",)))
    client = TestClient(app, base_url="http://testserver")
    tokens = {name: auth.create_token(name).token for name in ("alice", "bob")}
    return client, workspace, tokens


def _call(client, method: str, body: dict, token: str | None = None):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(f"/api/v1/{method}", json=body, headers=headers)


def test_the_server_asks_for_a_token_and_checks_grants(served) -> None:  # type: ignore[no-untyped-def]
    client, workspace, tokens = served
    missing = _call(client, "auth/list_users", {})
    assert missing.status_code == 401
    assert "ratchet tokens create --user NAME" in missing.json()["error"]["message"]
    assert _call(client, "auth/list_users", {}, tokens["alice"]).status_code == 200
    assert _call(client, "auth/list_users", {}, tokens["bob"]).status_code == 403
    # A reader with a write grant on one model may change that model and no other.
    made = _call(client, "registry/create_registered_model", {"name": "churn"}, tokens["bob"])
    assert made.status_code == 200, made.text
    other = _call(client, "registry/create_registered_model", {"name": "fraud"},
                  tokens["bob"])
    assert other.status_code == 403
    assert "ratchet users grant bob --model fraud --level write" in other.text
    whoami = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {tokens['bob']}"})
    assert whoami.json()["grants"] == [{"kind": "model", "resource": "churn",
                                        "level": "write"}]
    # Nobody can ask the server whether a token is valid, nor write the audit log.
    for method in ("auth/verify_token", "audit/record"):
        assert _call(client, method, {"token": tokens["bob"]},
                     tokens["alice"]).status_code in (403, 404, 405)
    [event] = workspace.stores.audit.list_events(action="registry.create_registered_model")
    assert (event.actor, event.kind, event.resource) == ("bob", "model", "churn")
    assert event.client


def test_tokens_issued_over_the_api_work_and_guessing_is_stopped(served) -> None:  # type: ignore[no-untyped-def]
    client, _workspace, tokens = served
    _call(client, "auth/create_user", {"name": "carol", "role": "writer"}, tokens["alice"])
    issued = _call(client, "auth/create_token", {"user": "carol"}, tokens["alice"])
    assert issued.status_code == 200, issued.text
    carol = issued.json()["result"]["token"]
    listed = _call(client, "auth/list_tokens", {"user": "carol"}, tokens["alice"]).text
    assert carol.rsplit("_", 1)[1] not in listed and "secret_hash" not in listed
    assert client.get("/api/v1/whoami",
                      headers={"Authorization": f"Bearer {carol}"}).json()["name"] == "carol"
    wrong = carol[:-4] + ("AAAA" if not carol.endswith("AAAA") else "BBBB")
    for _ in range(10):
        assert _call(client, "auth/list_users", {}, wrong).status_code == 401
    limited = _call(client, "auth/list_users", {}, tokens["alice"])  # even the right one
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
