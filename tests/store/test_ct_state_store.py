"""CTStateStore against SQLite and PostgreSQL: the controller's row, its lease, the
compare-and-swap commit (state and event together or not at all) and the requests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import update

from ratchet.errors import Conflict
from ratchet.store import schema as t
from ratchet.store.ct_event_store import CTEventStore
from ratchet.store.ct_state_store import (
    INITIAL_STATE,
    ControllerState,
    CTStateStore,
    EventSpec,
    LeaseLost,
)
from tests.team_server import acted, database_of

TTL = 60_000


@pytest.fixture
def store(any_stores: Any) -> CTStateStore:
    return any_stores.ct_state  # type: ignore[no-any-return]


def _held(store: CTStateStore, model: str = "churn", holder: str = "a") -> ControllerState:
    state = store.acquire(model, holder, TTL)
    assert state is not None
    return state


def _expire(store: CTStateStore, model: str = "churn") -> None:
    """Make the current lease a thing of the past, as if its holder had died long ago."""
    with database_of(store).write() as conn:
        conn.execute(update(t.ct_controllers).where(t.ct_controllers.c.model == model)
                     .values(lease_expires_at=1))


def _kinds(store: CTStateStore, model: str = "churn") -> list[str]:
    return [e.kind for e in CTEventStore(database_of(store)).history(model)]


def _concurrently(n: int, fn: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn(i)
        except BaseException as exc:  # re-raised in the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


# ---------------------------------------------------------------- the row and the lease
def test_acquire_creates_the_row_watching(store: CTStateStore) -> None:
    assert store.get("churn") is None
    before = int(time.time() * 1000)
    state = _held(store)
    assert (state.model, state.state, state.seq, state.cycle) == ("churn", INITIAL_STATE, 0, 0)
    assert INITIAL_STATE == "watching"
    assert state.data == {} and state.requests == []
    assert state.lease_holder == "a"
    assert state.lease_expires_at is not None and state.lease_expires_at >= before + TTL
    assert store.get("churn") == state
    assert [s.model for s in store.list_states()] == ["churn"]
    assert _kinds(store) == []  # taking a lease is not an event


def test_a_live_lease_is_exclusive_until_it_expires(store: CTStateStore) -> None:
    first = _held(store, holder="a")
    assert store.acquire("churn", "b", TTL) is None
    assert store.get("churn") == first  # the refused acquire changed nothing
    # The holder renews (extends) its own lease.
    renewed = store.acquire("churn", "a", TTL)
    assert renewed is not None and renewed.lease_holder == "a"
    assert renewed.lease_expires_at is not None and first.lease_expires_at is not None
    assert renewed.lease_expires_at >= first.lease_expires_at
    # Another model is another lease.
    assert store.acquire("other", "b", TTL) is not None
    _expire(store)
    taken = store.acquire("churn", "b", TTL)
    assert taken is not None and taken.lease_holder == "b"
    assert store.acquire("churn", "a", TTL) is None


def test_a_tiny_ttl_runs_out(store: CTStateStore) -> None:
    assert store.acquire("churn", "a", 1) is not None
    time.sleep(0.02)
    taken = store.acquire("churn", "b", TTL)
    assert taken is not None and taken.lease_holder == "b"


def test_release_frees_the_lease(store: CTStateStore) -> None:
    _held(store, holder="a")
    store.release("churn", "b")  # not the holder: nothing happens
    assert store.acquire("churn", "b", TTL) is None
    store.release("churn", "a")
    released = store.get("churn")
    assert released is not None
    assert released.lease_holder is None and released.lease_expires_at is None
    assert released.state == INITIAL_STATE  # the state stays
    taken = store.acquire("churn", "b", TTL)
    assert taken is not None and taken.lease_holder == "b"


def test_concurrent_acquires_have_one_winner(store: CTStateStore) -> None:
    for round_ in range(5):
        model = f"model-{round_}"
        got = _concurrently(6, lambda i, m=model: store.acquire(  # type: ignore[misc]
            m, f"holder-{i}", TTL))
        winners = [s for s in got if s is not None]
        assert len(winners) == 1, (round_, got)
        current = store.get(model)
        assert current is not None and current.lease_holder == winners[0].lease_holder
    assert len(store.list_states()) == 5


# ---------------------------------------------------------------- commits
def test_commit_moves_the_state_and_records_its_event_together(store: CTStateStore) -> None:
    state = _held(store)
    moved = store.commit(state, "a", state="training", data={"cycle": {"number": 1}},
                         cycle=1, event=EventSpec("trigger", "retrain #1: manual",
                                                  {"fired": ["manual"]}, "controller"),
                         at=1_000)
    assert (moved.state, moved.seq, moved.cycle) == ("training", 1, 1)
    assert moved.data == {"cycle": {"number": 1}}
    assert moved.lease_holder == "a" and store.get("churn") == moved
    [event] = CTEventStore(database_of(store)).history("churn")
    assert (event.kind, event.summary, event.actor, event.at) == (
        "trigger", "retrain #1: manual", "controller", 1_000)
    assert event.evidence == {"fired": ["manual"]}
    # The next commit builds on the new seq; the cycle stays when not given.
    again = store.commit(moved, "a", state="gating", data={"x": 1})
    assert (again.state, again.seq, again.cycle, again.data) == ("gating", 2, 1, {"x": 1})
    assert _kinds(store) == ["trigger"]  # no event given, none recorded


def test_a_stale_seq_loses_and_changes_nothing(store: CTStateStore) -> None:
    state = _held(store)
    moved = store.commit(state, "a", state="training", data={"n": 1},
                         event=EventSpec("trigger", "first"))
    with pytest.raises(LeaseLost, match="seq 0") as info:
        store.commit(state, "a", state="gating", data={"n": 2},
                     event=EventSpec("gate", "second"))
    assert isinstance(info.value, Conflict)
    assert store.get("churn") == moved
    assert _kinds(store) == ["trigger"]


def test_a_non_holder_cannot_commit(store: CTStateStore) -> None:
    state = _held(store, holder="a")
    with pytest.raises(LeaseLost):
        store.commit(state, "b", state="training", data={"n": 1},
                     event=EventSpec("trigger", "by b"))
    assert store.get("churn") == state
    assert _kinds(store) == []


def test_a_commit_after_the_lease_expired_loses(store: CTStateStore) -> None:
    state = _held(store)
    _expire(store)
    expired = store.get("churn")
    with pytest.raises(LeaseLost):
        store.commit(state, "a", state="training", data={"n": 1},
                     event=EventSpec("trigger", "too late"))
    assert store.get("churn") == expired
    assert _kinds(store) == []
    # Also with a tiny ttl that ran out for real.
    short = store.acquire("churn", "a", 1)
    assert short is not None
    time.sleep(0.02)
    with pytest.raises(LeaseLost):
        store.commit(short, "a", state="training", data={})
    # ... and once another holder took the expired lease, the old holder stays out.
    taken = store.acquire("churn", "b", TTL)
    assert taken is not None
    with pytest.raises(LeaseLost):
        store.commit(taken, "a", state="training", data={})
    assert store.commit(taken, "b", state="training", data={}).seq == taken.seq + 1


def test_a_released_lease_cannot_commit(store: CTStateStore) -> None:
    state = _held(store)
    store.release("churn", "a")
    with pytest.raises(LeaseLost):
        store.commit(state, "a", state="training", data={})
    assert store.get("churn").state == INITIAL_STATE  # type: ignore[union-attr]


def test_a_commit_for_a_model_without_a_row_loses(store: CTStateStore) -> None:
    ghost = ControllerState("ghost", "watching", 0, 0, {}, [], 0, "a", None)
    with pytest.raises(LeaseLost):
        store.commit(ghost, "a", state="training", data={})
    assert store.get("ghost") is None


def test_a_bad_event_rolls_the_state_change_back(store: CTStateStore) -> None:
    state = _held(store)
    with pytest.raises(Exception, match="kind"):
        store.commit(state, "a", state="training", data={"n": 1},
                     event=EventSpec("", "no kind"))
    assert store.get("churn") == state
    assert _kinds(store) == []


def test_concurrent_commits_from_one_read_have_one_winner(store: CTStateStore) -> None:
    state = _held(store)

    def commit(i: int) -> bool:
        try:
            store.commit(state, "a", state=f"s{i}", data={"i": i},
                         event=EventSpec("step", f"commit {i}"))
        except LeaseLost:
            return False
        return True

    wins = _concurrently(5, commit)
    assert wins.count(True) == 1, wins
    current = store.get("churn")
    assert current is not None and current.seq == 1
    assert current.state == f"s{wins.index(True)}"
    assert _kinds(store) == ["step"]


# ---------------------------------------------------------------- requests
def test_requests_are_appended_with_an_event(store: CTStateStore) -> None:
    # A request needs no lease, and creates the row if needed.
    first = store.request("churn", "retrain", actor="ana", reason="new data", at=5_000)
    assert first.state == INITIAL_STATE and first.seq == 0
    assert acted(first.requests[0].pop("actor"), "ana")
    assert first.requests == [{"kind": "retrain", "reason": "new data", "cycle": None,
                               "at": 5_000}]
    second = store.request("churn", "approve", actor="bo", cycle=3)
    assert [r["kind"] for r in second.requests] == ["retrain", "approve"]
    assert second.requests[1]["cycle"] == 3 and isinstance(second.requests[1]["at"], int)
    assert second.seq == 0  # a request does not invalidate the controller's read
    events = CTEventStore(database_of(store)).history("churn")
    assert [e.kind for e in events] == ["retrain-requested", "approve-requested"]
    assert acted(events[0].actor, "ana") and acted(events[1].actor, "bo")
    assert events[0].summary == "retrain requested: new data"
    assert events[1].summary == "approve requested"
    assert {k: v for k, v in events[0].evidence.items() if k != "actor"} == first.requests[0]


def test_a_commit_consumes_only_the_oldest_requests(store: CTStateStore) -> None:
    store.request("churn", "retrain", actor="ana")
    store.request("churn", "approve", actor="bo")
    state = _held(store)
    assert len(state.requests) == 2
    # A request that arrives between the controller's read and its commit survives.
    store.request("churn", "reject", actor="cy", reason="late")
    moved = store.commit(state, "a", state="training", data={}, consumed_requests=2,
                         event=EventSpec("trigger", "manual"))
    assert [r["kind"] for r in moved.requests] == ["reject"]
    assert acted(moved.requests[0]["actor"], "cy")
    assert moved.seq == state.seq + 1
    # Consuming none keeps them; consuming more than there are empties the list.
    kept = store.commit(moved, "a", state="gating", data={})
    assert [r["kind"] for r in kept.requests] == ["reject"]
    emptied = store.commit(kept, "a", state="watching", data={}, consumed_requests=5)
    assert emptied.requests == []
    assert _kinds(store) == ["retrain-requested", "approve-requested", "reject-requested",
                             "trigger"]


def test_a_lost_commit_consumes_no_requests(store: CTStateStore) -> None:
    state = _held(store)
    store.request("churn", "retrain")
    store.commit(state, "a", state="training", data={})  # seq 0 -> 1
    with pytest.raises(LeaseLost):
        store.commit(state, "a", state="gating", data={}, consumed_requests=1)
    after = store.get("churn")
    assert after is not None and [r["kind"] for r in after.requests] == ["retrain"]


# ---------------------------------------------------------------- JSON
def test_json_data_round_trips(store: CTStateStore) -> None:
    data: dict[str, Any] = {
        "watch": {"baseline": {"accuracy": 0.8125, "f1": 0.5}, "retrains": [1, 2, 3],
                  "last_verdict": None, "last_blocked": "cooldown"},
        "cycle": {"number": 7, "champion": 3, "gate": {"passed": True, "reasons": []},
                  "note": "ünïcødé — ok ✅", "big": 2**53, "neg": -1.5e-9},
        "flag": False,
    }
    state = _held(store)
    moved = store.commit(state, "a", state="canary", data=data)
    assert moved.data == data
    assert store.get("churn").data == data  # type: ignore[union-attr]
    assert store.list_states()[0].data == data
    # A value JSON does not know is stored as its text, not refused.
    when = datetime(2024, 5, 1, 12, tzinfo=UTC)
    odd = store.commit(moved, "a", state="canary", data={"when": when})
    assert odd.data == {"when": str(when)}
