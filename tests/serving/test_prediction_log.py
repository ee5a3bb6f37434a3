"""The prediction log writer: real Parquet files, real threads, real failing directories."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ratchet.errors import InvalidInput
from ratchet.serving.prediction_log import (
    META_COLUMNS,
    LoggedRequest,
    PredictionLog,
    hour_dir,
    hour_start_ms,
    meta_schema,
    to_table,
)

T0 = int(datetime(2024, 5, 1, 10, 59, 59, 999000, tzinfo=UTC).timestamp() * 1000)
QUIET = 3600.0  # a flush interval that never fires during a test: flushes are explicit


def request(request_id: str, timestamp_ms: int = T0, *, deployment: str = "churn", n: int = 2,
            inputs: dict[str, list[Any]] | None = None, **kw: Any) -> LoggedRequest:
    return LoggedRequest(
        request_id=request_id, timestamp_ms=timestamp_ms, deployment=deployment,
        model_name="churn-model", model_version=3, variant="primary", latency_ms=1.25,
        inputs=inputs if inputs is not None else {"age": list(range(n)), "plan": ["a"] * n},
        outputs={"prediction": [i % 2 for i in range(n)]}, **kw)


def files(root: Path) -> list[Path]:
    return sorted((root / "predictions").rglob("*.parquet"))


def read_all(root: Path) -> pa.Table:
    tables = [pq.read_table(f) for f in files(root)]
    return pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})


def test_round_trip_writes_one_row_per_prediction_row(tmp_path: Path) -> None:
    flushed: list[int] = []
    log = PredictionLog(str(tmp_path), flush_interval_s=QUIET, writer_id="w1",
                        on_flush=flushed.append)
    assert log.record(request("r1", n=2))
    assert log.record(request("r2", n=1, rows=[7], flags=[["age:out_of_range"]]))
    assert log.buffered == 3
    assert log.flush() == 3
    assert (log.written, log.buffered, log.dropped, flushed) == (3, 0, 0, [3])
    log.close()

    (path,) = files(tmp_path)
    assert path.name.startswith("w1-")
    table = pq.read_table(path)
    assert table.schema.names[:len(META_COLUMNS)] == list(META_COLUMNS)
    assert table.schema.remove_metadata().field("timestamp").type == pa.timestamp("ms", tz="UTC")
    for field in meta_schema():
        assert table.schema.field(field.name).type == field.type
    rows = table.to_pylist()
    assert [(r["request_id"], r["row"], r["input.age"], r["output.prediction"], r["flags"])
            for r in rows] == [("r1", 0, 0, 0, []), ("r1", 1, 1, 1, []),
                               ("r2", 7, 0, 0, ["age:out_of_range"])]
    first = rows[0]
    assert first["timestamp"] == datetime.fromtimestamp(T0 / 1000, UTC)
    assert (first["deployment"], first["model_name"], first["model_version"], first["variant"],
            first["status"], first["error"], first["latency_ms"]) == (
        "churn", "churn-model", 3, "primary", "ok", None, 1.25)


def test_partitions_by_deployment_and_hour(tmp_path: Path) -> None:
    with PredictionLog(str(tmp_path), flush_interval_s=QUIET, writer_id="w1") as log:
        log.record(request("a-10", T0, deployment="a"))
        log.record(request("a-11", T0 + 1, deployment="a"))  # the next millisecond: 11:00
        log.record(request("b-10", T0, deployment="b"))
        log.record(request("a-10-again", T0 - 5, deployment="a"))
    layout = sorted(str(p.parent.relative_to(tmp_path)) for p in files(tmp_path))
    assert layout == ["predictions/deployment=a/hour=2024-05-01T10",
                      "predictions/deployment=a/hour=2024-05-01T11",
                      "predictions/deployment=b/hour=2024-05-01T10"]
    a10 = pq.read_table(files(tmp_path)[0])
    assert sorted(set(a10.column("request_id").to_pylist())) == ["a-10", "a-10-again"]
    assert hour_dir(T0) == "hour=2024-05-01T10"
    assert hour_start_ms("hour=2024-05-01T11") == T0 + 1
    assert hour_start_ms("hour=2024-13-01T11") is None
    assert hour_start_ms("something-else") is None


def test_background_thread_flushes_once_flush_rows_are_buffered(tmp_path: Path) -> None:
    flushed = threading.Event()
    with PredictionLog(str(tmp_path), flush_interval_s=QUIET, flush_rows=4,
                       on_flush=lambda n: flushed.set()) as log:
        log.record(request("r1", n=2))
        log.record(request("r2", n=2))  # reaches flush_rows: wakes the writer
        assert flushed.wait(60), "the writer thread did not flush"
        assert log.written == 4
    assert read_all(tmp_path).num_rows == 4


def test_close_flushes_everything_and_is_idempotent(tmp_path: Path) -> None:
    dropped: list[int] = []
    log = PredictionLog(str(tmp_path), flush_interval_s=QUIET, on_drop=dropped.append)
    for i in range(5):
        log.record(request(f"r{i}", n=3))
    assert files(tmp_path) == []
    log.close()
    assert (log.written, log.buffered) == (15, 0)
    assert read_all(tmp_path).num_rows == 15
    log.close()  # again: nothing happens
    assert log.record(request("late")) is False  # after close nothing would write it
    assert (log.dropped, dropped) == (2, [2])


def test_full_buffer_drops_counts_and_reports(tmp_path: Path) -> None:
    dropped: list[int] = []
    log = PredictionLog(str(tmp_path), flush_interval_s=QUIET, max_buffered_rows=3,
                        flush_rows=100, on_drop=dropped.append)
    assert log.record(request("kept", n=2)) is True
    assert log.record(request("too-many", n=2)) is False
    assert log.record(request("fits", n=1)) is True
    assert log.record(request("full", n=1)) is False
    assert (log.dropped, log.buffered, dropped) == (3, 3, [2, 1])
    assert log.flush() == 3
    assert log.record(request("room-again", n=3)) is True  # flushing frees the space
    log.close()
    assert sorted(set(read_all(tmp_path).column("request_id").to_pylist())) == [
        "fits", "kept", "room-again"]


def test_malformed_entries_are_dropped_not_raised(tmp_path: Path) -> None:
    dropped: list[int] = []
    with PredictionLog(str(tmp_path), flush_interval_s=QUIET, on_drop=dropped.append) as log:
        ragged = request("r", inputs={"a": [1, 2], "b": [1]})
        assert log.record(ragged) is False
        assert log.record(request("r", rows=[0])) is False  # 1 row number for 2 rows
        assert log.record(replace(request("r"), model_version="3")) is False  # type: ignore[arg-type]
        assert log.record(None) is False  # type: ignore[arg-type]
        assert log.record(request("empty", n=0)) is True  # nothing to log
        assert log.record(request("good")) is True
    assert (log.written, dropped) == (2, [2, 1, 2, 1])


def test_a_failed_request_without_rows_keeps_its_error(tmp_path: Path) -> None:
    failed = LoggedRequest("shadow-1", T0, "churn", "churn-model", 4, "shadow", 0.0, {}, {},
                           status="error", error="age: expected int")
    with PredictionLog(str(tmp_path), flush_interval_s=QUIET) as log:
        assert log.record(failed)
        assert log.record(request("ok"))
    rows = read_all(tmp_path).to_pylist()
    assert [(r["request_id"], r["row"], r["status"], r["error"], r["input.age"])
            for r in rows] == [("shadow-1", None, "error", "age: expected int", None),
                               ("ok", 0, "ok", None, 0), ("ok", 1, "ok", None, 1)]


def test_callbacks_that_raise_do_not_break_logging(tmp_path: Path) -> None:
    def boom(n: int) -> None:
        raise RuntimeError("metrics are broken")

    with PredictionLog(str(tmp_path), flush_interval_s=QUIET, max_buffered_rows=2,
                       on_drop=boom, on_flush=boom) as log:
        assert log.record(request("r1")) is True
        assert log.record(request("r2")) is False
        assert log.flush() == 2


def test_failed_flush_keeps_rows_and_a_later_flush_writes_them(tmp_path: Path) -> None:
    # A file where a deployment directory should be: every write into it really fails.
    with PredictionLog(str(tmp_path), flush_interval_s=QUIET) as good:
        good.record(request("before", deployment="bad"))
    blocker = tmp_path / "predictions" / "deployment=broken"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a directory")
    before = {p: p.read_bytes() for p in files(tmp_path)}

    log = PredictionLog(str(tmp_path), flush_interval_s=QUIET)
    log.record(request("ok-1", deployment="fine"))
    log.record(request("lost-1", deployment="broken"))
    assert log.flush() == 2  # the healthy deployment is written anyway
    assert (log.written, log.buffered, log.dropped, log.flush_failures) == (2, 2, 0, 1)
    log.record(request("lost-2", deployment="broken"))
    assert log.flush() == 0
    assert (log.buffered, log.flush_failures) == (4, 2)

    blocker.unlink()
    assert log.flush() == 4
    log.close()
    assert (log.written, log.buffered, log.dropped) == (6, 0, 0)
    assert {p: p.read_bytes() for p in before} == before  # written files untouched
    ids = read_all(tmp_path).column("request_id").to_pylist()
    assert sorted(set(ids)) == ["before", "lost-1", "lost-2", "ok-1"]
    assert len(ids) == 8  # nothing written twice


def test_rows_still_failing_at_close_count_as_dropped(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    dropped: list[int] = []
    log = PredictionLog(str(blocker / "artifacts"), flush_interval_s=QUIET,
                        on_drop=dropped.append)
    log.record(request("r1", n=3))
    log.close()
    assert (log.written, log.dropped, log.buffered, dropped) == (0, 3, 0, [3])


def test_concurrent_recording_and_flushing_loses_nothing(tmp_path: Path) -> None:
    threads, per_thread = 8, 400
    attempted = [0] * threads
    kept: list[list[str]] = [[] for _ in range(threads)]
    log = PredictionLog(str(tmp_path), flush_interval_s=0.01, max_buffered_rows=2000,
                        flush_rows=200)
    assert log.record(request("warm-up", n=1)) and log.flush() == 1  # imports pyarrow
    attempted[0] = 1
    kept[0].append("warm-up")
    done = threading.Event()

    def producer(t: int) -> None:
        for i in range(per_thread):
            n = 1 + i % 3
            attempted[t] += n
            if log.record(request(f"t{t}-{i}", T0 + i * 997, n=n)):
                kept[t].append(f"t{t}-{i}")
            if i % 20 == 0:
                time.sleep(0.001)  # let the writers in, so that flushes overlap recording

    def flusher() -> None:
        while not done.is_set():
            log.flush()

    workers = [threading.Thread(target=producer, args=(t,)) for t in range(threads)]
    extra = threading.Thread(target=flusher)
    extra.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    done.set()
    extra.join()
    log.close()

    assert log.written + log.dropped == sum(attempted)
    table = read_all(tmp_path)
    assert table.num_rows == log.written
    assert set(table.column("request_id").to_pylist()) == {r for ids in kept for r in ids}
    keys = list(zip(table.column("request_id").to_pylist(), table.column("row").to_pylist(),
                    strict=True))
    assert len(set(keys)) == len(keys)  # no row written twice


def test_mixed_value_types_fall_back_to_strings() -> None:
    table = to_table([
        request("r1", inputs={"x": [1, 2], "when": [datetime(2024, 1, 1), None]}),
        request("r2", inputs={"x": ["a", None], "only_here": [None, None]}),
    ])
    assert table.schema.field("input.x").type == pa.string()
    assert table.column("input.x").to_pylist() == ["1", "2", "a", None]
    assert table.schema.field("input.when").type == pa.timestamp("us")
    assert table.column("input.only_here").to_pylist() == [None] * 4  # absent in r1: null
    assert table.schema.field("output.prediction").type == pa.int64()


def test_each_flush_may_have_its_own_columns(tmp_path: Path) -> None:
    with PredictionLog(str(tmp_path), flush_interval_s=QUIET) as log:
        log.record(request("v3", n=1, inputs={"age": [1]}))
        log.flush()
        log.record(request("v4", n=1, inputs={"age": ["old"], "income": [2.5]}))
    first, second = (pq.read_table(p) for p in files(tmp_path))
    names = {tuple(t.schema.names[len(META_COLUMNS):]) for t in (first, second)}
    assert names == {("input.age", "output.prediction"),
                     ("input.age", "input.income", "output.prediction")}


def test_invalid_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="writer_id"):
        PredictionLog(str(tmp_path), writer_id="a/b")
    with pytest.raises(InvalidInput, match="flush_rows"):
        PredictionLog(str(tmp_path), flush_rows=0)
    with pytest.raises(InvalidInput, match="flush_interval_s"):
        PredictionLog(str(tmp_path), flush_interval_s=-1)
    with pytest.raises(InvalidInput, match="artifact root is empty"):
        PredictionLog("")


def test_invalid_deployment_names_never_become_paths(tmp_path: Path) -> None:
    with PredictionLog(str(tmp_path / "art"), flush_interval_s=QUIET) as log:
        assert log.record(request("r", deployment="../escape")) is False
        assert log.record(request("r", deployment="a/b")) is False
        assert log.flush() == 0
    assert (log.written, log.dropped) == (0, 4)
    assert [p.name for p in tmp_path.iterdir()] == []  # not even the root was created


def test_default_writer_id_names_host_and_process(tmp_path: Path) -> None:
    import os

    with PredictionLog(str(tmp_path), flush_interval_s=QUIET) as log:
        assert log.writer_id.endswith(f"-{os.getpid()}")


def test_one_unencodable_request_costs_only_its_own_rows(tmp_path: Path) -> None:
    """A lone surrogate in one request of a 41-row flush: the other 40 rows are written."""
    dropped: list[int] = []
    log = PredictionLog(str(tmp_path), flush_interval_s=QUIET, on_drop=dropped.append)
    for i in range(40):
        assert log.record(request(f"ok{i}", n=1, inputs={"age": [i], "plan": ["a"]}))
    assert log.record(request("bad", n=1, inputs={"age": [1], "plan": ["\ud800"]}))
    assert log.flush() == 40
    log.close()
    table = read_all(tmp_path)
    assert table.num_rows == 40 and "bad" not in table.column("request_id").to_pylist()
    assert (log.written, log.dropped, dropped) == (40, 1, [1])


def test_a_bad_value_in_a_batch_drops_that_batch_only(tmp_path: Path) -> None:
    import numpy as np

    log = PredictionLog(str(tmp_path), flush_interval_s=QUIET)
    log.record(request("batch-ok", n=3, inputs={"age": np.arange(3), "plan": ["a"] * 3}))
    log.record(request("one", n=1, inputs={"age": np.arange(1), "plan": ["b"]}))
    log.record(request("batch-bad", n=2, inputs={"age": np.arange(2), "plan": ["c", "\udfff"]},
                       error=None))
    log.record(request("err", n=1, inputs={"age": [5], "plan": ["d"]}, status="error",
                       error="bad value \ud800"))
    assert log.flush() == 4
    log.close()
    table = read_all(tmp_path)
    assert table.column("request_id").to_pylist() == ["batch-ok"] * 3 + ["one"]
    assert table.column("row").to_pylist() == [0, 1, 2, 0]
    assert table.column("input.age").to_pylist() == [0, 1, 2, 0]
    assert log.dropped == 3


def test_objects_and_lists_are_stored_as_json_text(tmp_path: Path) -> None:
    """A signature-less model's {"x": {"a": 1}} must not make a struct column."""
    with PredictionLog(str(tmp_path), flush_interval_s=QUIET) as log:
        log.record(request("r1", n=2, inputs={"x": [{"a": 1}, None], "v": [[1, 2], [3]]}))
    table = read_all(tmp_path)
    assert table.schema.field("input.x").type == pa.string()
    assert table.schema.field("input.v").type == pa.string()
    assert table.column("input.x").to_pylist() == ['{"a": 1}', None]
    assert table.column("input.v").to_pylist() == ["[1, 2]", "[3]"]
    mixed = to_table([request("m", n=2, inputs={"x": [1, {"a": "\ud800"}]})])
    assert mixed.column("input.x").to_pylist() == ["1", '{"a": "\\ud800"}']
