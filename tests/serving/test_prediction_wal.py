"""Durable mode of the prediction log (flush_interval_s=0, ``ratchet serve --log-flush 0``):
real writer processes killed with SIGKILL, real segment files, real locks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ratchet.config import Settings
from ratchet.registry import RegistryClient
from ratchet.serving.prediction_log import PredictionLog
from ratchet.workspace import Workspace
from tests.serving.conftest import ROW, _free_port, running_server, wait_until

WRITER = textwrap.dedent("""
    import os, signal, sys
    from datetime import datetime
    from ratchet.serving.prediction_log import LoggedRequest, PredictionLog

    root, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    log = PredictionLog(root, flush_interval_s=0, writer_id="dead")
    for i in range(n):
        assert log.record(LoggedRequest(
            f"r{i}", 1714557600000 + i, "churn", "m", 1, "primary", 1.0,
            {"x": [float(i)], "when": [datetime(2024, 5, 1, 10, i % 60)], "obj": [{"k": i}],
             "text": ["\\u00e9t\\u00e9"]},
            {"prediction": [i % 2]}))
    if mode == "copy-then-flush":  # as if the process died between the write and the delete
        os.link(log._wal.path, sys.argv[4])
        print(log._wal.path, flush=True)
        log.flush()
    if mode == "wait":
        print("ready", flush=True)
        sys.stdin.readline()
        log.close()
        sys.exit(0)
    print("acknowledged", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def _writer(root: Path, n: int, mode: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(n), mode, *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _rows(root: Path) -> pa.Table:
    files = sorted((root / "predictions").rglob("*.parquet"))
    if not files:
        return pa.table({"request_id": pa.array([], pa.string())})
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")


def test_rows_a_killed_writer_acknowledged_are_replayed_by_the_next(tmp_path: Path) -> None:
    writer = _writer(tmp_path, 50, "kill")
    out, _ = writer.communicate(timeout=60)
    assert "acknowledged" in out and writer.returncode == -signal.SIGKILL
    assert _rows(tmp_path).num_rows == 0  # nothing reached Parquet before the kill
    (segment,) = (tmp_path / "predictions" / ".wal").glob("*.wal")
    with PredictionLog(str(tmp_path), flush_interval_s=0, writer_id="next") as log:
        pass
    assert log.written == 50 and log.dropped == 0
    table = _rows(tmp_path).sort_by("timestamp")
    assert table.column("request_id").to_pylist() == [f"r{i}" for i in range(50)]
    assert table.column("input.x").to_pylist() == [float(i) for i in range(50)]
    assert table.schema.field("input.when").type == pa.timestamp("us")
    assert table.column("input.obj").to_pylist()[:2] == ['{"k": 0}', '{"k": 1}']
    assert set(table.column("input.text").to_pylist()) == {"\u00e9t\u00e9"}
    assert not segment.exists() and not list(segment.parent.glob("*.wal"))
    with PredictionLog(str(tmp_path), flush_interval_s=0) as again:
        pass
    assert again.written == 0 and _rows(tmp_path).num_rows == 50  # replayed once only


def test_a_segment_replayed_after_its_files_were_written_is_not_duplicated(
        tmp_path: Path) -> None:
    backup = tmp_path / "backup.wal"
    writer = _writer(tmp_path, 20, "copy-then-flush", str(backup))
    out, _ = writer.communicate(timeout=60)
    segment = Path(out.splitlines()[0])
    assert _rows(tmp_path).num_rows == 20 and not segment.exists()
    os.rename(backup, segment)  # the delete "never happened"
    with PredictionLog(str(tmp_path), flush_interval_s=0) as log:
        pass
    assert log.written == 20 and not segment.exists()
    ids = _rows(tmp_path).column("request_id").to_pylist()
    assert sorted(ids) == sorted(f"r{i}" for i in range(20))


def test_a_live_writers_segment_is_never_replayed(tmp_path: Path) -> None:
    writer = _writer(tmp_path, 10, "wait")
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    with PredictionLog(str(tmp_path), flush_interval_s=0, writer_id="sibling") as sibling:
        pass
    assert sibling.written == 0 and _rows(tmp_path).num_rows == 0
    writer.communicate("\n", timeout=60)
    assert writer.returncode == 0
    assert sorted(_rows(tmp_path).column("request_id").to_pylist()) == \
        sorted(f"r{i}" for i in range(10))
    assert not list((tmp_path / "predictions" / ".wal").glob("*.wal"))


def test_ratchet_serve_log_flush_0_keeps_every_acknowledged_row_through_sigkill(
        churn_registry: RegistryClient, serving_settings: Settings, tmp_path: Path) -> None:
    from ratchet.serving.prediction_query import predictions

    port = _free_port()
    env = {**os.environ, "RATCHET_HOME": str(serving_settings.home),
           "RATCHET_DB": serving_settings.db_url,
           "RATCHET_ARTIFACTS": serving_settings.artifacts_uri}
    with (tmp_path / "server.log").open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "ratchet.cli.main", "serve", "churn@champion",
             "--log-flush", "0", "--port", str(port)], env=env, cwd=tmp_path, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                return httpx.get(f"{url}/health/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout=90, what="server ready")
        acknowledged = []
        with httpx.Client(base_url=url, timeout=30) as http:
            for i in range(40):
                r = http.post("/predict", json={"inputs": [ROW]},
                              headers={"X-Request-ID": f"acked-{i}"})
                assert r.status_code == 200, r.text
                acknowledged.append(f"acked-{i}")
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
    # A new server replays the dead one's write-ahead segment on start.
    with running_server(serving_settings, tmp_path, "--deployment", "churn",
                        "--log-flush", "0"):
        wait_until(lambda: set(acknowledged) <= set(
            predictions("churn", workspace=Workspace(serving_settings))["request_id"]), timeout=30,
            what="the replayed rows")
    logged = predictions("churn", workspace=Workspace(serving_settings))
    assert sorted(logged["request_id"]) == sorted(acknowledged)  # each exactly once


def test_rows_storage_refused_until_close_are_kept_for_the_next_writer(tmp_path: Path) -> None:
    """Durable mode: rows that could not be written by close are not dropped; the next
    writer replays them, and the rows that were written are not written twice."""
    from tests.serving.test_prediction_log import request

    blocker = tmp_path / "predictions" / "deployment=broken"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where a directory should be: writes into it fail")
    log = PredictionLog(str(tmp_path), flush_interval_s=0)
    assert log.record(request("ok-1", deployment="fine"))
    assert log.record(request("lost-1", deployment="broken"))
    log.flush()
    assert log.record(request("lost-2", deployment="broken"))
    log.close()
    assert (log.written, log.dropped) == (2, 0)
    assert list((tmp_path / "predictions" / ".wal").glob("*.wal"))
    blocker.unlink()
    with PredictionLog(str(tmp_path), flush_interval_s=0) as replay:
        pass
    assert replay.written in (4, 6)  # 6 if ok-1 shared a segment with lost-1: rewritten
    ids = _rows(tmp_path).column("request_id").to_pylist()
    assert sorted(ids) == ["lost-1", "lost-1", "lost-2", "lost-2", "ok-1", "ok-1"]
    assert not list((tmp_path / "predictions" / ".wal").glob("*.wal"))


def test_a_power_loss_safe_segment_has_a_durable_name(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """fsync=True: the segment's directory entry is fsynced too (ratchet.atomic.fsync_dir),
    or the fsynced appends could sit in a file no directory names after a power loss."""
    from ratchet.serving import prediction_wal

    synced: list[str] = []
    monkeypatch.setattr(prediction_wal, "fsync_dir", synced.append)
    durable = prediction_wal.Segment.create(str(tmp_path / "a"), "w1", fsync=True)
    fast = prediction_wal.Segment.create(str(tmp_path / "b"), "w1")
    try:
        assert synced == [str(tmp_path / "a")]
    finally:
        durable.delete()
        fast.delete()
