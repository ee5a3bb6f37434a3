"""Reliability: concurrent writers, and a writer killed mid-upload."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ratchet.config import Settings
from ratchet.tracking import TrackingClient
from ratchet.workspace import Workspace

WRITERS = 8
SINGLE_POINTS = 150
BATCH_POINTS = 1000

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from ratchet.config import Settings
    from ratchet.tracking import TrackingClient
    from ratchet.workspace import Workspace

    db, home, shared_run, index, single, batch = sys.argv[1:7]
    index, single, batch = int(index), int(single), int(batch)
    client = TrackingClient(Workspace(Settings(home=Path(home), db_url=db,
                                     artifacts_uri=str(Path(home) / "artifacts"))))
    own = client.create_run("concurrency", name=f"writer-{index}").run_id
    for step in range(single):
        client.log_metric(shared_run, f"w{index}", float(step), step=step)
        client.log_metric(own, "single", float(step), step=step)
    client.log_batch(own, [("batch", float(i), i, 1000 + i) for i in range(batch)])
    client.log_params(shared_run, {f"p{index}": index})
    client.end_run(own)
    print(own)
""")


@pytest.mark.slow
def test_concurrent_writers_lose_nothing(backend_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    # The first process to touch a fresh SQLite file also races the others to migrate it.
    client_settings = Settings(home=home, db_url=backend_url,
                               artifacts_uri=str(home / "artifacts"))
    shared = None
    if backend_url.startswith("postgresql"):
        shared = TrackingClient(Workspace(client_settings)).create_run(
            "concurrency", name="shared").run_id
    else:
        # Create the shared run from a child too, so the parent never opened the DB first.
        setup = subprocess.run(
            [sys.executable, "-c", "import sys; from pathlib import Path; "
             "from ratchet.config import Settings; from ratchet.tracking import TrackingClient; "
             "from ratchet.workspace import Workspace; "
             "c = TrackingClient(Workspace(Settings(home=Path(sys.argv[2]), db_url=sys.argv[1], "
             "artifacts_uri=sys.argv[2] + '/a'))); "
             "print(c.create_run('concurrency', name='shared').run_id)",
             backend_url, str(home)], capture_output=True, text=True, check=True)
        shared = setup.stdout.strip()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, backend_url, str(home), shared, str(i),
             str(SINGLE_POINTS), str(BATCH_POINTS)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(WRITERS)
    ]
    own_runs = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        own_runs.append(out.strip())

    client = TrackingClient(Workspace(client_settings))
    shared_run = client.get_run(shared)
    assert shared_run.params == {f"p{i}": str(i) for i in range(WRITERS)}
    for i in range(WRITERS):
        history = client.metric_history(shared, f"w{i}")
        assert [m.value for m in history] == [float(s) for s in range(SINGLE_POINTS)]
        assert shared_run.metrics[f"w{i}"] == SINGLE_POINTS - 1
    for run_id in own_runs:
        run = client.get_run(run_id)
        assert run.status == "finished"
        assert len(client.metric_history(run_id, "single")) == SINGLE_POINTS
        assert len(client.metric_history(run_id, "batch")) == BATCH_POINTS
        assert run.metrics == {"single": SINGLE_POINTS - 1, "batch": BATCH_POINTS - 1}


UPLOADER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from ratchet.config import Settings
    from ratchet.tracking import TrackingClient
    from ratchet.workspace import Workspace

    db, home, run_id, big = sys.argv[1:5]
    client = TrackingClient(Workspace(Settings(home=Path(home), db_url=db,
                                     artifacts_uri=str(Path(home) / "artifacts"))))
    print("ready", flush=True)
    client.log_artifact(run_id, big, "data/big.bin")
    print("done", flush=True)
""")


def test_writer_killed_mid_upload_leaves_no_partial_artifact(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home, db_url=f"sqlite:///{home / 'ratchet.db'}",
                        artifacts_uri=str(home / "artifacts"))
    client = TrackingClient(Workspace(settings))
    run_id = client.create_run("kill").run_id
    big = tmp_path / "big.bin"
    with big.open("wb") as f:  # sparse: instant to create, slow enough to upload
        f.truncate(1 << 30)
    tmp_dir = home / "artifacts" / "tmp"
    proc = subprocess.Popen([sys.executable, "-c", UPLOADER, settings.db_url, str(home),
                             run_id, str(big)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        # Kill once the upload has started writing its temporary file.
        while not (tmp_dir.is_dir() and any(p.stat().st_size > 0 for p in tmp_dir.iterdir())):
            assert proc.poll() is None, "upload finished before it could be interrupted"
            assert time.monotonic() < deadline, "upload never started"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    reopened = TrackingClient(Workspace(settings))
    assert reopened.list_artifacts(run_id) == []
    blob_dir = home / "artifacts" / "blobs"
    assert not blob_dir.exists() or not any(p.is_file() for p in blob_dir.rglob("*"))
    small = tmp_path / "small.txt"
    small.write_text("still works")
    reopened.log_artifact(run_id, small)
    assert reopened.read_artifact(run_id, "small.txt") == b"still works"
    assert reopened.blobs.clean_temp(older_than_s=0) >= 1
    assert not any(tmp_dir.iterdir())
