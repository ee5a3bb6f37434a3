"""The online stores (SQLite file, real Redis on 127.0.0.1:6379 db 13): typed keys, the
newest-wins rule, batched atomic writes, many-view reads, clear errors."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ratchet.errors import InvalidInput, StoreUnavailable
from ratchet.features.online_connections import open_online_store, shared_online_store
from ratchet.features.online_store import OnlineStore, decode_key, encode_key, encode_key_columns

REDIS_URL = "redis://127.0.0.1:6379/13"  # this test file's own database, flushed here only


def _flush_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    if request.param == "sqlite":
        opened = open_online_store(f"sqlite:///{tmp_path / 'online.sqlite'}")
    else:
        _flush_redis()
        opened = open_online_store(REDIS_URL)
    yield opened
    opened.close()
    if request.param == "redis":
        _flush_redis()


pytestmark = pytest.mark.xdist_group("redis_db13")


def _payload(**values: object) -> str:
    return json.dumps(values)


# ---------------------------------------------------------------------------- keys

def test_keys_are_typed_and_unambiguous() -> None:
    assert encode_key([1]) != encode_key(["1"])
    assert encode_key([True]) != encode_key([1])
    assert encode_key([1, 23]) != encode_key([12, 3])
    assert encode_key(["a,b", "c"]) != encode_key(["a", "b,c"])
    assert encode_key(["a:b"]) == '["a:b"]'
    assert decode_key(encode_key([7, "x"]) or "") == [7, "x"]


def test_keys_normalize_numpy_and_integral_floats() -> None:
    assert encode_key([np.int64(5)]) == encode_key([5]) == encode_key([5.0]) == "[5]"
    assert encode_key([np.float32(5.0)]) == "[5]"
    assert encode_key([np.str_("x")]) == encode_key(["x"])
    assert encode_key([np.bool_(True)]) == encode_key([True])
    assert encode_key([1.5]) == "[1.5]"
    assert encode_key_columns([[1, 2.0, None, float("nan")]]) == ["[1]", "[2]", None, None]
    assert encode_key_columns([[1, 2], ["a", None]]) == ['[1,"a"]', None]


def test_missing_key_values_match_nothing() -> None:
    import pandas as pd

    assert encode_key([None]) is None
    assert encode_key([float("nan")]) is None
    assert encode_key([1, pd.NA]) is None
    assert encode_key([pd.NaT]) is None


@pytest.mark.parametrize("bad", [b"x", [1], float("inf")])
def test_keys_of_other_types_are_refused(bad: object) -> None:
    with pytest.raises(InvalidInput, match="key"):
        encode_key([bad])


def test_date_keys_are_refused_with_a_message() -> None:
    import datetime as dt

    with pytest.raises(InvalidInput, match="integer, a string or a bool"):
        encode_key([dt.date(2024, 1, 1)])


# ---------------------------------------------------------------------------- read / write

def test_write_then_read_round_trip(store: OnlineStore) -> None:
    written = store.write("stats", 3, [("[1]", 100, None, _payload(a=1.5, b="x", c=None)),
                                       ('["1"]', 200, 150, _payload(a=2, b="y", c=True))])
    assert written == 2
    one, two, missing = store.read([("stats", "[1]"), ("stats", '["1"]'), ("stats", "[2]")])
    assert one is not None and two is not None and missing is None
    assert (one.event_us, one.created_us, one.view_version) == (100, None, 3)
    assert one.values == {"a": 1.5, "b": "x", "c": None}
    assert (two.event_us, two.created_us) == (200, 150)
    assert two.values == {"a": 2, "b": "y", "c": True}
    assert store.read([]) == []


def test_views_are_separate_and_read_in_one_call(store: OnlineStore) -> None:
    store.write("a", 1, [("[1]", 10, None, _payload(x=1))])
    store.write("b", 1, [("[1]", 20, None, _payload(y=2))])
    store.write("a.b", 1, [("[1]", 30, None, _payload(z=3))])
    got = store.read([("b", "[1]"), ("a", "[1]"), ("a.b", "[1]"), ("a", "[1]"),
                      ("c", "[1]")])
    assert [g.values if g else None for g in got] == [{"y": 2}, {"x": 1}, {"z": 3}, {"x": 1},
                                                       None]


def test_an_older_event_never_replaces_a_newer_one(store: OnlineStore) -> None:
    store.write("v", 1, [("[1]", 200, None, _payload(x="new"))])
    store.write("v", 2, [("[1]", 100, 999, _payload(x="old"))])
    got = store.read([("v", "[1]")])[0]
    assert got is not None and got.values == {"x": "new"} and got.view_version == 1
    store.write("v", 2, [("[1]", 300, None, _payload(x="newer"))])
    got = store.read([("v", "[1]")])[0]
    assert got is not None and got.values == {"x": "newer"} and got.view_version == 2


def test_same_event_time_compares_created_time_nulls_lowest(store: OnlineStore) -> None:
    store.write("v", 1, [("[1]", 100, 50, _payload(x="c50"))])
    store.write("v", 1, [("[1]", 100, None, _payload(x="cnull"))])  # null < 50: kept c50
    store.write("v", 1, [("[1]", 100, 40, _payload(x="c40"))])
    got = store.read([("v", "[1]")])[0]
    assert got is not None and got.values == {"x": "c50"}
    store.write("v", 1, [("[1]", 100, 60, _payload(x="c60"))])
    got = store.read([("v", "[1]")])[0]
    assert got is not None and got.values == {"x": "c60"}


def test_full_ties_go_to_the_later_write(store: OnlineStore) -> None:
    store.write("v", 1, [("[1]", 100, 5, _payload(x="first"))])
    store.write("v", 1, [("[1]", 100, 5, _payload(x="second"))])
    store.write("v", 1, [("[2]", 100, None, _payload(x="first")),
                         ("[2]", 100, None, _payload(x="second"))])
    got = store.read([("v", "[1]"), ("v", "[2]")])
    assert [g.values["x"] if g else None for g in got] == ["second", "second"]


def test_a_batch_applies_its_rows_in_order_under_the_rule(store: OnlineStore) -> None:
    rows = [("[1]", 300, None, _payload(x=3)), ("[1]", 100, None, _payload(x=1)),
            ("[1]", 200, None, _payload(x=2))]
    store.write("v", 1, rows)
    got = store.read([("v", "[1]")])[0]
    assert got is not None and got.values == {"x": 3}


def test_negative_event_times_before_1970(store: OnlineStore) -> None:
    store.write("v", 1, [("[1]", -5_000_000, -6_000_000, _payload(x="a"))])
    store.write("v", 1, [("[1]", -6_000_000, None, _payload(x="older"))])
    got = store.read([("v", "[1]")])[0]
    assert got is not None and got.values == {"x": "a"} and got.created_us == -6_000_000


def test_many_entities_over_chunk_sizes(store: OnlineStore) -> None:
    n = 2_500
    rows = [(f"[{i}]", 1_700_000_000_000_000 + i, None, _payload(i=i, f=i / 7))
            for i in range(n)]
    assert store.write("big", 1, rows) == n
    lookups = [("big", f"[{i}]") for i in range(n + 10)]
    got = store.read(lookups)
    assert [g.values["i"] if g else None for g in got] == [*range(n), *[None] * 10]
    assert got[8] is not None and got[8].values["f"] == 8 / 7
    assert got[8].event_us == 1_700_000_000_000_008
    assert store.count("big") == n
    assert store.delete_view("big") == n
    assert store.count("big") == 0 and store.read([("big", "[1]")]) == [None]


def test_delete_view_leaves_other_views(store: OnlineStore) -> None:
    store.write("a", 1, [("[1]", 1, None, _payload(x=1))])
    store.write("ab", 1, [("[1]", 1, None, _payload(x=2))])
    assert store.delete_view("a") == 1
    got = store.read([("a", "[1]"), ("ab", "[1]")])
    assert got[0] is None and got[1] is not None


def test_concurrent_writers_keep_the_newest(store: OnlineStore) -> None:
    def writer(offset: int) -> None:
        for t in range(offset, 200, 4):
            store.write("v", 1, [(f"[{k}]", t, None, _payload(t=t)) for k in range(5)])

    threads = [threading.Thread(target=writer, args=(o,)) for o in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = store.read([("v", f"[{k}]") for k in range(5)])
    assert [g.values["t"] if g else None for g in got] == [199] * 5


def test_shared_store_is_one_per_uri(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'o.sqlite'}"
    assert shared_online_store(uri) is shared_online_store(uri)


# ---------------------------------------------------------------------------- SQLite specifics

def test_sqlite_batch_is_atomic(tmp_path: Path) -> None:
    store = open_online_store(f"sqlite:///{tmp_path / 'o.sqlite'}")
    store.write("v", 1, [("[1]", 1, None, _payload(x=1))])
    bad = [("[1]", 2, None, _payload(x=2)), ("[2]", 2, None, None)]  # NOT NULL payload
    with pytest.raises(StoreUnavailable, match="writing 2 rows"):
        store.write("v", 1, bad)  # type: ignore[arg-type]
    got = store.read([("v", "[1]"), ("v", "[2]")])
    assert got[0] is not None and got[0].values == {"x": 1} and got[1] is None
    store.close()


def test_sqlite_one_row_per_entity_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    store = open_online_store(f"sqlite:///{path}")
    store.write("v", 1, [("[1]", 1, None, _payload(a=1, b=2, c=3))])
    store.write("v", 1, [("[1]", 2, None, _payload(a=4, b=5, c=6))])
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT count(*) FROM online_features").fetchone()[0] == 1
    conn.close()
    store.close()


def test_sqlite_store_is_readable_from_other_threads_and_reopens_after_close(
        tmp_path: Path) -> None:
    store = open_online_store(f"sqlite:///{tmp_path / 'o.sqlite'}")
    store.write("v", 1, [("[1]", 1, None, _payload(a=1))])
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(store.read([("v", "[1]")])[0]))
    thread.start()
    thread.join()
    assert seen[0] is not None
    store.close()
    got = store.read([("v", "[1]")])[0]  # a new connection
    assert got is not None and got.values == {"a": 1}
    store.close()


def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "not.sqlite"
    path.write_bytes(b"this is not a database file, just text " * 100)
    with pytest.raises(StoreUnavailable, match="cannot be opened as the online store"):
        open_online_store(f"sqlite:///{path}")


def test_sqlite_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is a directory"):
        open_online_store(f"sqlite:///{tmp_path}")


def test_sqlite_creates_missing_folders(tmp_path: Path) -> None:
    store = open_online_store(f"sqlite:///{tmp_path / 'a' / 'b' / 'online.sqlite'}")
    assert (tmp_path / "a" / "b" / "online.sqlite").is_file()
    store.close()


@pytest.mark.parametrize("uri", ["", "mysql://x/y", "sqlite://", "sqlite:///:memory:", None])
def test_bad_uris(uri: object) -> None:
    with pytest.raises(InvalidInput):
        open_online_store(uri)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- Redis specifics

def test_redis_unreachable_is_a_clear_503() -> None:
    store = open_online_store("redis://:secret@127.0.0.1:1/0")
    with pytest.raises(StoreUnavailable, match="cannot be reached") as info:
        store.read([("v", "[1]")])
    assert "secret" not in str(info.value) and info.value.http_status == 503
    with pytest.raises(StoreUnavailable, match="cannot be reached"):
        store.write("v", 1, [("[1]", 1, None, "{}")])
    store.close()


def test_redis_layout_one_value_per_entity_under_the_prefix() -> None:
    import redis

    _flush_redis()
    store = open_online_store(REDIS_URL)
    store.write("drivers", 4, [("[7]", 100, None, _payload(a=1))])
    client = redis.Redis.from_url(REDIS_URL)
    assert client.keys("*") == [b"ratchet:features:drivers:[7]"]
    assert client.get("ratchet:features:drivers:[7]") == b'100::4:{"a": 1}'
    client.close()
    store.close()
    _flush_redis()


def test_redis_bad_url() -> None:
    with pytest.raises(InvalidInput, match="not a Redis URL"):
        open_online_store("redis://127.0.0.1:notaport/0")


def test_a_reader_sees_another_process_writes(store: OnlineStore, tmp_path: Path) -> None:
    import subprocess
    import sys

    uri = (REDIS_URL if store.uri.startswith("redis")
           else f"sqlite:///{tmp_path / 'online.sqlite'}")
    store.write("v", 1, [("[1]", 1, None, _payload(x="before"))])
    assert store.read([("v", "[1]")])[0] is not None  # this thread's connection is open
    code = ("import sys; from ratchet.features.online_connections import open_online_store; "
            "s = open_online_store(sys.argv[1]); "
            "s.write('v', 2, [('[1]', 2, None, '{\"x\": \"after\"}')]); s.close()")
    subprocess.run([sys.executable, "-c", code, uri], check=True, timeout=120)
    got = store.read([("v", "[1]")])[0]
    assert got is not None and got.values == {"x": "after"} and got.view_version == 2


def test_redis_database_out_of_range_is_named() -> None:
    store = open_online_store("redis://127.0.0.1:6379/99")
    with pytest.raises(StoreUnavailable, match="Redis refused reading features: DB index"):
        store.read([("v", "[1]")])
    store.close()


def test_sqlite_folder_that_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreUnavailable, match="cannot create"):
        open_online_store(f"sqlite:///{blocker / 'sub' / 'online.sqlite'}")


def test_readers_never_see_half_a_batch(store: OnlineStore) -> None:
    """A batch lands whole: a reader reading every key at once sees one batch's values."""
    keys = [f"[{k}]" for k in range(200)]
    store.write("v", 1, [(key, 0, None, _payload(t=0)) for key in keys])
    done = threading.Event()
    seen: list[set[int]] = []

    def reader() -> None:
        while not done.is_set():
            entries = store.read([("v", key) for key in keys])
            seen.append({e.values["t"] for e in entries if e is not None})

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for t in range(1, 40):
            store.write("v", 1, [(key, t, None, _payload(t=t)) for key in keys])
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert seen and all(len(values) == 1 for values in seen)
    assert max(max(values) for values in seen) <= 39
