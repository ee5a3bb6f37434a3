"""ScheduleStore against SQLite and PostgreSQL: schedules CRUD, the firing compare-and-swap,
and leases."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from ratchet.errors import AlreadyExists, InvalidInput, NotFound
from ratchet.store.schedule_store import ScheduleStore

T0 = 1_714_564_800_000  # 2024-05-01T12:00:00Z
MINUTE = 60_000


@pytest.fixture
def store(any_stores: Any) -> ScheduleStore:
    return any_stores.schedules  # type: ignore[no-any-return]


def _create(store: ScheduleStore, name: str = "nightly", **overrides: Any) -> Any:
    values: dict[str, Any] = {"pipeline_ref": "pkg.mod:nightly", "cron": "0 3 * * *",
                              "params": {"n": 2}, "next_run_at": T0}
    values.update(overrides)
    return store.create_schedule(name, **values)


def _concurrently(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(i)`` in ``n`` threads released together; return the results in order."""
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


# ---------------------------------------------------------------- schedules
def test_create_get_list_delete(store: ScheduleStore) -> None:
    created = _create(store, executor="local:2")
    assert created.name == "nightly" and created.pipeline_ref == "pkg.mod:nightly"
    assert created.params == {"n": 2} and created.executor == "local:2"
    assert created.enabled is True and created.next_run_at == T0
    assert created.last_run_at is None and created.last_pipeline_run_id is None
    assert len(created.schedule_id) == 32
    assert store.get_schedule("nightly") == created
    assert store.get_schedule_by_id(created.schedule_id) == created
    _create(store, "hourly", cron="0 * * * *", enabled=False)
    assert [s.name for s in store.list_schedules()] == ["hourly", "nightly"]

    with pytest.raises(AlreadyExists, match="replace"):
        _create(store)
    store.delete_schedule("hourly")
    assert [s.name for s in store.list_schedules()] == ["nightly"]
    with pytest.raises(NotFound, match="hourly"):
        store.delete_schedule("hourly")
    with pytest.raises(NotFound, match="nope"):
        store.get_schedule("nope")
    with pytest.raises(InvalidInput):
        _create(store, "")


def test_replace_keeps_identity_and_history(store: ScheduleStore) -> None:
    first = _create(store)
    assert store.claim_firing(first.schedule_id, expected_next_run_at=T0,
                              next_run_at=T0 + MINUTE, now=T0)
    store.record_pipeline_run(first.schedule_id, "r" * 32)
    replaced = _create(store, cron="*/5 * * * *", params={"n": 9}, next_run_at=T0 + 5 * MINUTE,
                       replace=True)
    assert replaced.schedule_id == first.schedule_id
    assert replaced.created_at == first.created_at
    assert (replaced.cron, replaced.params, replaced.next_run_at) == (
        "*/5 * * * *", {"n": 9}, T0 + 5 * MINUTE)
    assert replaced.last_run_at == T0 and replaced.last_pipeline_run_id == "r" * 32


def test_enable_disable_and_due(store: ScheduleStore) -> None:
    _create(store, "a", next_run_at=T0)
    _create(store, "b", next_run_at=T0 + MINUTE)
    _create(store, "c", next_run_at=T0 - MINUTE, enabled=False)
    assert [s.name for s in store.due_schedules(T0)] == ["a"]
    assert [s.name for s in store.due_schedules(T0 + MINUTE)] == ["a", "b"]
    enabled = store.set_enabled("c", True, next_run_at=T0 - 2 * MINUTE)
    assert enabled.enabled and enabled.next_run_at == T0 - 2 * MINUTE
    assert [s.name for s in store.due_schedules(T0)] == ["c", "a"]  # oldest first
    assert store.set_enabled("a", False).enabled is False
    assert [s.name for s in store.due_schedules(T0)] == ["c"]
    with pytest.raises(NotFound):
        store.set_enabled("zzz", True)


# ---------------------------------------------------------------- compare-and-swap
def test_claim_is_a_compare_and_swap(store: ScheduleStore) -> None:
    sid = _create(store).schedule_id
    assert not store.claim_firing(sid, expected_next_run_at=T0 - 1, next_run_at=T0 + MINUTE,
                                  now=T0)
    assert store.claim_firing(sid, expected_next_run_at=T0, next_run_at=T0 + MINUTE, now=T0)
    assert not store.claim_firing(sid, expected_next_run_at=T0, next_run_at=T0 + MINUTE, now=T0)
    claimed = store.get_schedule("nightly")
    assert claimed.next_run_at == T0 + MINUTE and claimed.last_run_at == T0
    store.set_enabled("nightly", False)
    assert not store.claim_firing(sid, expected_next_run_at=T0 + MINUTE,
                                  next_run_at=T0 + 2 * MINUTE, now=T0 + MINUTE)


def test_concurrent_claims_of_one_firing_have_one_winner(store: ScheduleStore) -> None:
    sid = _create(store).schedule_id
    for round_ in range(15):
        expected = T0 + round_ * MINUTE
        wins = _concurrently(8, lambda i, e=expected: store.claim_firing(  # type: ignore[misc]
            sid, expected_next_run_at=e, next_run_at=e + MINUTE, now=e))
        assert wins.count(True) == 1, (round_, wins)
    assert store.get_schedule("nightly").next_run_at == T0 + 15 * MINUTE


# ---------------------------------------------------------------- leases
def test_lease_is_exclusive_until_it_expires(store: ScheduleStore) -> None:
    lease = store.acquire_lease("scheduler", "a", 30_000, now=T0)
    assert lease is not None and (lease.holder, lease.acquired_at, lease.expires_at) == (
        "a", T0, T0 + 30_000)
    assert store.acquire_lease("scheduler", "b", 30_000, now=T0 + 29_999) is None
    assert store.get_lease("scheduler") == lease
    # The holder may acquire again: that extends it and keeps the acquisition time.
    again = store.acquire_lease("scheduler", "a", 30_000, now=T0 + 10_000)
    assert again is not None and (again.acquired_at, again.expires_at) == (T0, T0 + 40_000)
    assert store.acquire_lease("scheduler", "b", 30_000, now=T0 + 39_999) is None
    taken = store.acquire_lease("scheduler", "b", 30_000, now=T0 + 40_000)
    assert taken is not None and (taken.holder, taken.acquired_at) == ("b", T0 + 40_000)
    # Another name is another lease.
    assert store.acquire_lease("other", "a", 1_000, now=T0) is not None


def test_renew_extends_only_a_held_lease(store: ScheduleStore) -> None:
    store.acquire_lease("scheduler", "a", 30_000, now=T0)
    renewed = store.renew_lease("scheduler", "a", 30_000, now=T0 + 20_000)
    assert renewed is not None and renewed.expires_at == T0 + 50_000
    assert store.acquire_lease("scheduler", "b", 30_000, now=T0 + 45_000) is None
    assert store.renew_lease("scheduler", "b", 30_000, now=T0 + 45_000) is None
    # Once expired it is not renewed (someone may have taken it); acquire instead.
    assert store.renew_lease("scheduler", "a", 30_000, now=T0 + 50_000) is None
    assert store.acquire_lease("scheduler", "b", 30_000, now=T0 + 50_000) is not None
    assert store.renew_lease("scheduler", "a", 30_000, now=T0 + 50_001) is None
    assert store.get_lease("scheduler").holder == "b"  # type: ignore[union-attr]


def test_release(store: ScheduleStore) -> None:
    store.acquire_lease("scheduler", "a", 30_000, now=T0)
    assert not store.release_lease("scheduler", "b")
    assert store.release_lease("scheduler", "a")
    assert store.get_lease("scheduler") is None
    assert not store.release_lease("scheduler", "a")
    assert store.acquire_lease("scheduler", "b", 30_000, now=T0 + 1) is not None
    with pytest.raises(InvalidInput):
        store.acquire_lease("scheduler", "", 30_000)
    with pytest.raises(InvalidInput):
        store.acquire_lease("scheduler", "a", 0)


def test_concurrent_acquires_have_one_winner(store: ScheduleStore) -> None:
    for round_ in range(10):
        name = f"lease-{round_}"
        got = _concurrently(8, lambda i, n=name: store.acquire_lease(  # type: ignore[misc]
            n, f"holder-{i}", 30_000, now=T0))
        winners = [lease for lease in got if lease is not None]
        assert len(winners) == 1, (round_, got)
        assert store.get_lease(name) == winners[0]
    # An expired lease raced for by many: still one winner.
    got = _concurrently(8, lambda i: store.acquire_lease(
        "lease-0", f"late-{i}", 30_000, now=T0 + 60_000))
    assert sum(lease is not None for lease in got) == 1
