"""predictions(): DuckDB over the logged Parquet files, time windows, feedback join."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pytest

from ratchet.config import Settings
from ratchet.errors import IntegrityError, InvalidInput
from ratchet.serving.prediction_log import META_COLUMNS, LoggedRequest, PredictionLog
from ratchet.serving.prediction_query import predictions
from ratchet.workspace import Workspace

H10 = datetime(2024, 5, 1, 10, tzinfo=UTC)
MS10 = int(H10.timestamp() * 1000)
HOUR = 3_600_000


def request(request_id: str, timestamp_ms: int, *, deployment: str = "churn", n: int = 2,
            inputs: dict[str, list[Any]] | None = None, version: int = 3) -> LoggedRequest:
    return LoggedRequest(
        request_id=request_id, timestamp_ms=timestamp_ms, deployment=deployment,
        model_name="churn-model", model_version=version, variant="primary", latency_ms=2.0,
        inputs=inputs if inputs is not None else {"age": [30 + i for i in range(n)]},
        outputs={"prediction": [float(i) for i in range(n)]})


def log_all(root: str, *batches: list[LoggedRequest]) -> None:
    """Each batch becomes its own flush (its own files)."""
    with PredictionLog(root, flush_interval_s=3600) as log:
        for batch in batches:
            for entry in batch:
                assert log.record(entry)
            log.flush()


@pytest.fixture
def local(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / ".ratchet", db_url=f"sqlite:///{tmp_path / 'meta.db'}",
                    artifacts_uri=str(tmp_path / "artifacts"))


def keys(frame: pd.DataFrame) -> list[tuple[str, int]]:
    return list(zip(frame["request_id"], frame["row"].astype(int), strict=True))


def test_rows_come_back_ordered_across_files_and_hours(local: Settings) -> None:
    log_all(local.artifacts_uri,
            [request("b", MS10 + 5), request("late", MS10 + HOUR + 1, n=1)],
            [request("a", MS10 + 5), request("first", MS10, n=1)])
    frame = predictions("churn", workspace=Workspace(local))
    assert keys(frame) == [("first", 0), ("a", 0), ("a", 1), ("b", 0), ("b", 1), ("late", 0)]
    assert list(frame.columns) == [*META_COLUMNS, "input.age", "output.prediction"]
    assert frame["timestamp"].iloc[0] == pd.Timestamp(H10)
    assert str(frame["timestamp"].dtype) == "datetime64[ms, UTC]"
    assert frame["model_version"].tolist() == [3] * 6
    assert frame["input.age"].tolist() == [30, 30, 31, 30, 31, 30]


def test_window_is_half_open_and_takes_datetimes_or_epoch_ms(local: Settings) -> None:
    log_all(local.artifacts_uri, [request(f"r{i}", MS10 + i * HOUR // 2, n=1) for i in range(6)])

    def ids(since: Any = None, until: Any = None) -> list[str]:
        return predictions("churn", since, until, workspace=Workspace(local))["request_id"].tolist()

    assert ids() == [f"r{i}" for i in range(6)]
    assert ids(MS10 + HOUR, MS10 + 2 * HOUR) == ["r2", "r3"]  # until is excluded
    naive = datetime(2024, 5, 1, 11)  # naive means UTC
    assert ids(since=naive) == ["r2", "r3", "r4", "r5"]
    assert ids(until=naive + timedelta(milliseconds=1)) == ["r0", "r1", "r2"]
    plus2 = timezone(timedelta(hours=2))
    assert ids(datetime(2024, 5, 1, 13, 30, tzinfo=plus2), pd.Timestamp("2024-05-01T12:00Z")) \
        == ["r3"]
    assert ids(MS10 + HOUR, MS10 + HOUR) == []


def test_hours_outside_the_window_are_never_read(local: Settings) -> None:
    log_all(local.artifacts_uri, [request("r10", MS10, n=1), request("r12", MS10 + 2 * HOUR, n=1)])
    deployment_dir = Path(local.artifacts_uri) / "predictions" / "deployment=churn"
    (deployment_dir / "hour=2024-05-01T11").mkdir()
    (deployment_dir / "hour=2024-05-01T11" / "garbage.parquet").write_bytes(b"not parquet")
    (deployment_dir / "hour=2024-05-01T10" / ".half-written.parquet.tmp").write_bytes(b"x")
    (deployment_dir / "not-an-hour").mkdir()

    outside = predictions("churn", until=MS10 + HOUR, workspace=Workspace(local))
    assert outside["request_id"].tolist() == ["r10"]
    assert predictions("churn", since=MS10 + 2 * HOUR, workspace=Workspace(local))["request_id"].tolist() \
        == ["r12"]
    with pytest.raises(IntegrityError, match="deployment 'churn'"):
        predictions("churn", workspace=Workspace(local))  # the window includes the unreadable hour


def test_an_unknown_deployment_is_an_empty_frame(local: Settings) -> None:
    frame = predictions("nothing-logged", workspace=Workspace(local))
    assert frame.empty
    assert list(frame.columns) == list(META_COLUMNS)
    assert str(frame["timestamp"].dtype) == "datetime64[ms, UTC]"
    assert frame["row"].dtype == "Int32"
    with_fb = predictions("nothing-logged", workspace=Workspace(local), with_feedback=True)
    assert list(with_fb.columns) == [*META_COLUMNS, "feedback", "feedback_at"]


def test_columns_union_by_name_across_model_versions(local: Settings) -> None:
    log_all(local.artifacts_uri,
            [request("v3", MS10, n=1, inputs={"age": [41]}, version=3)],
            [request("v4", MS10 + 1, n=1, inputs={"age": [42], "income": [1.5]}, version=4)],
            [request("v5", MS10 + 2, n=1, inputs={"age": ["unknown"]}, version=5)])
    frame = predictions("churn", workspace=Workspace(local))
    assert frame["model_version"].tolist() == [3, 4, 5]
    assert frame["input.age"].tolist() == ["41", "42", "unknown"]  # int + string: string
    assert math.isnan(frame["input.income"].iloc[0])
    assert frame["input.income"].iloc[1] == 1.5


def test_deployments_are_kept_apart(local: Settings) -> None:
    log_all(local.artifacts_uri, [request("mine", MS10), request("other", MS10, deployment="x")])
    assert set(predictions("churn", workspace=Workspace(local))["request_id"]) == {"mine"}
    assert set(predictions("x", workspace=Workspace(local))["request_id"]) == {"other"}


def test_with_feedback_joins_on_request_and_row(settings: Settings) -> None:
    failed = LoggedRequest("r0", MS10, "churn", "churn-model", 3, "shadow", 0.0, {}, {},
                           status="error", error="rejected")  # logged with a null row
    log_all(settings.artifacts_uri, [request("r1", MS10), request("r2", MS10 + 1, n=1), failed])
    store = Workspace(settings).stores.deployments
    store.record_feedback([("r1", 1, "churn", {"label": 1}), ("r2", 0, "churn", 0),
                           ("r2", 5, "churn", 1),           # a row that was never logged
                           ("r1", 0, "other", "elsewhere")])  # another deployment's feedback
    store.record_feedback([("r2", 0, "churn", 1)])  # a correction: the newest value wins

    frame = predictions("churn", workspace=Workspace(settings), with_feedback=True)
    assert frame["row"].dtype == "Int32" and frame["row"].isna().tolist() == [True] + [False] * 3
    frame = frame.iloc[1:]
    assert keys(frame) == [("r1", 0), ("r1", 1), ("r2", 0)]
    assert frame["feedback"].tolist() == [None, {"label": 1}, 1]
    assert frame["feedback_at"].isna().tolist() == [True, False, False]
    assert frame["feedback_at"].iloc[1] <= pd.Timestamp.now(tz="UTC")
    assert "feedback" not in predictions("churn", workspace=Workspace(settings)).columns


@pytest.mark.parametrize("since, until, message", [
    ("2024-05-01", None, "since must be a datetime"),
    (None, 1.5e12, "until must be a datetime"),
    (True, None, "since must be a datetime"),
    (pd.NaT, None, "since must be a datetime"),
    (MS10 + 1, MS10, "is after until"),
])
def test_bad_windows_are_invalid_input(local: Settings, since: Any, until: Any,
                                       message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        predictions("churn", since, until, workspace=Workspace(local))


def test_bad_deployment_names_are_invalid_input(local: Settings) -> None:
    with pytest.raises(InvalidInput, match="deployment name"):
        predictions("../../etc", workspace=Workspace(local))


@pytest.fixture
def memory_root() -> Iterator[str]:
    name = f"ratchet-test-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


def test_an_fsspec_root_works_end_to_end(tmp_path: Path, memory_root: str) -> None:
    settings = Settings(home=tmp_path / ".ratchet", db_url=f"sqlite:///{tmp_path / 'meta.db'}",
                        artifacts_uri=memory_root)
    log_all(memory_root, [request("r1", MS10), request("r2", MS10 + HOUR, n=1)])
    stored = fsspec.filesystem("memory").find(memory_root.removeprefix("memory://"))
    assert len(stored) == 2 and all(p.endswith(".parquet") for p in stored)
    frame = predictions("churn", since=MS10 + 1, workspace=Workspace(settings))
    assert keys(frame) == [("r2", 0)]
    assert keys(predictions("churn", workspace=Workspace(settings))) == [("r1", 0), ("r1", 1), ("r2", 0)]


def test_a_log_reader_reads_each_file_once_and_matches_predictions(local: Settings) -> None:
    """A controller's ticks: the reader keeps rows it read, adds new files, and joins the
    feedback that arrived since; every read equals predictions() over the same window."""
    import time

    from ratchet.serving.prediction_query import LogReader

    now = time.time_ns() // 1_000_000
    reader = LogReader("churn", horizon_ms=2 * HOUR, workspace=Workspace(local))
    store = Workspace(local).stores.deployments
    log_all(local.artifacts_uri, [request("a", now - 1_000), request("b", now - 500, n=1)])
    first = reader.read(now - 10_000)
    assert keys(first) == [("a", 0), ("a", 1), ("b", 0)]
    log_all(local.artifacts_uri, [request("c", now - 200)], [request("d", now - 100, n=1)])
    store.record_feedback([("a", 1, "churn", 1), ("d", 0, "churn", 0)])
    for since in (now - 10_000, now - 600, now - 150, now):
        ours = reader.read(since)
        theirs = predictions("churn", since=since, with_feedback=True, workspace=Workspace(local))
        pd.testing.assert_frame_equal(ours.reset_index(drop=True),
                                      theirs.reset_index(drop=True))
    assert reader.read(now - 10_000)["feedback"].tolist() == [None, 1, None, None, None, 0]
    # Older than the horizon: read from the log directly, still the same answer.
    old = reader.read(now - 3 * HOUR)
    assert keys(old) == keys(predictions("churn", since=now - 3 * HOUR, workspace=Workspace(local)))


def _old_struct_file(settings: Settings, timestamp_ms: int) -> None:
    """A file as an older writer left it: ``input.x`` a struct column, ``output.prediction``
    text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ratchet.serving.prediction_log import hour_dir, meta_schema, to_table

    base = to_table([request("old", timestamp_ms, n=1, inputs={"age": [1]})])
    meta = base.select(list(META_COLUMNS)).cast(meta_schema())
    table = meta.append_column("input.x", pa.array([{"a": 1}])) \
        .append_column("input.age", pa.array(["one"])) \
        .append_column("output.prediction", pa.array(["yes"]))
    directory = Path(settings.artifacts_uri) / "predictions" / "deployment=churn" / \
        hour_dir(timestamp_ms)
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, directory / "old-writer-0.parquet")


def test_a_file_with_clashing_column_types_does_not_break_its_neighbours(
        local: Settings) -> None:
    log_all(local.artifacts_uri,
            [request("a", MS10 + 1, inputs={"x": [1.5, 2.5], "age": [30, 31]})],
            [request("b", MS10 + 3, inputs={"x": [3.5, 4.5], "age": [32, 33]})])
    _old_struct_file(local, MS10 + 2)
    frame = predictions("churn", since=H10, until=H10 + timedelta(hours=1), workspace=Workspace(local))
    assert keys(frame) == [("a", 0), ("a", 1), ("old", 0), ("b", 0), ("b", 1)]
    assert frame["input.x"].tolist() == ["1.5", "2.5", '{"a": 1}', "3.5", "4.5"]
    assert frame["input.age"].tolist() == ["30", "31", "one", "32", "33"]
    assert frame["output.prediction"].tolist() == ["0", "1", "yes", "0", "1"]
    assert frame["row"].dtype == "Int32" and str(frame["timestamp"].dt.tz) == "UTC"
    # The log reader (a controller's ticks) reads the same files the same way.
    from ratchet.serving.prediction_query import LogReader

    reader = LogReader("churn", horizon_ms=10 * 365 * 24 * HOUR, workspace=Workspace(local))
    assert keys(reader.read(MS10, with_feedback=False)) == keys(frame)
