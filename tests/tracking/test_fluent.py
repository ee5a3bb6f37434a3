"""The fluent API and the tracking client, as a user drives them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ratchet
from ratchet.errors import Conflict, InvalidInput, NotFound, RatchetError, StoreUnavailable
from ratchet.store import DatasetInput
from ratchet.tracking import fluent
from ratchet.workspace import Workspace


def test_run_finishes_and_records_everything(workspace_on: Path) -> None:
    with ratchet.start_run(experiment="churn", name="first", tags={"team": "ml"}) as run:
        ratchet.log_params({"C": 1.0, "kernel": "rbf"})
        ratchet.log_param("seed", 7)
        ratchet.log_metric("auc", 0.8, step=1)
        ratchet.log_metric("auc", 0.91, step=3)
        ratchet.log_metrics({"loss": 0.2, "acc": 0.9}, step=3)
        ratchet.set_tag("stage", "dev")
        assert ratchet.active_run_id() == run.id
    assert ratchet.active_run_id() is None
    got = ratchet.get_run(run.id)
    assert got.status == "finished" and got.end_time is not None and got.name == "first"
    assert got.params == {"C": "1.0", "kernel": "rbf", "seed": "7"}
    assert got.metrics == {"auc": 0.91, "loss": 0.2, "acc": 0.9}
    assert got.tags == {"team": "ml", "stage": "dev"}
    history = fluent.client().metric_history(run.id, "auc")
    assert [(m.step, m.value) for m in history] == [(1, 0.8), (3, 0.91)]
    assert got.code.python_version and got.code.host and got.code.packages.get("numpy")


def test_exception_marks_run_failed_and_records_error(workspace_on: Path) -> None:
    with pytest.raises(ZeroDivisionError), ratchet.start_run() as run:
        ratchet.log_metric("x", 1.0)
        1 / 0  # noqa: B018
    got = ratchet.get_run(run.id)
    assert got.status == "failed"
    assert got.error is not None and "ZeroDivisionError" in got.error and "1 / 0" in got.error
    assert ratchet.active_run_id() is None


def test_keyboard_interrupt_marks_run_killed(workspace: Path) -> None:
    with pytest.raises(KeyboardInterrupt), ratchet.start_run() as run:
        raise KeyboardInterrupt
    assert ratchet.get_run(run.id).status == "killed"


def test_system_exit(workspace: Path) -> None:
    with pytest.raises(SystemExit), ratchet.start_run() as clean:
        raise SystemExit(0)
    with pytest.raises(SystemExit), ratchet.start_run() as aborted:
        raise SystemExit(2)
    assert ratchet.get_run(clean.id).status == "finished"
    assert ratchet.get_run(aborted.id).status == "killed"


def test_artifact_for_a_missing_run_uploads_nothing(workspace: Path, tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    client = fluent.client()
    with pytest.raises(NotFound, match="no run"):
        client.log_artifact("0" * 32, f)
    assert not (Path(client.settings.artifacts_uri) / "blobs").exists()


def test_nested_runs(workspace: Path) -> None:
    with ratchet.start_run(experiment="tune") as parent:
        with pytest.raises(InvalidInput, match="nested=True"):
            ratchet.start_run()
        for i in range(3):
            with ratchet.start_run(nested=True, name=f"trial-{i}") as child:
                ratchet.log_metric("score", i)
                assert ratchet.active_run_id() == child.id
        assert ratchet.active_run_id() == parent.id
    children = fluent.client().child_runs(parent.id)
    assert [c.name for c in children] == ["trial-0", "trial-1", "trial-2"]
    assert {c.experiment_id for c in children} == {parent.experiment_id}
    assert all(c.parent_run_id == parent.id and c.status == "finished" for c in children)


def test_resume_and_manual_end(workspace: Path) -> None:
    run = ratchet.start_run(experiment="e")
    ratchet.end_run("killed")
    assert ratchet.get_run(run.id).status == "killed"
    with ratchet.start_run(run_id=run.id):
        ratchet.log_metric("late", 1.0)
    assert ratchet.get_run(run.id).status == "finished"
    with pytest.raises(InvalidInput, match="no active run"):
        ratchet.end_run()


def test_params_conflict_and_no_active_run(workspace: Path) -> None:
    with pytest.raises(InvalidInput, match="no active run"):
        ratchet.log_metric("x", 1.0)
    with ratchet.start_run():
        ratchet.log_param("C", 1)
        with pytest.raises(Conflict):
            ratchet.log_param("C", 2)
    with pytest.raises(NotFound):
        ratchet.get_run("0" * 32)
    assert issubclass(Conflict, RatchetError)


def test_artifacts_file_directory_and_download(workspace: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.txt"
    report.write_text("hello")
    plots = tmp_path / "plots"
    (plots / "sub").mkdir(parents=True)
    (plots / "a.png").write_bytes(b"\x89PNG a")
    (plots / "sub" / "b.png").write_bytes(b"\x89PNG b")
    with ratchet.start_run() as run:
        entry = ratchet.log_artifact(report)
        ratchet.log_artifacts(plots, "figures")
        ratchet.log_artifact(report, "copies/report.txt")  # same content: stored once
    client = fluent.client()
    assert entry.path == "report.txt" and entry.size == 5
    paths = [e.path for e in client.list_artifacts(run.id)]
    assert paths == ["copies/report.txt", "figures/a.png", "figures/sub/b.png", "report.txt"]
    assert client.read_artifact(run.id, "figures/sub/b.png") == b"\x89PNG b"
    out = client.download_artifacts(run.id, "figures", tmp_path / "out")
    assert (out / "sub" / "b.png").read_bytes() == b"\x89PNG b"
    single = client.download_artifacts(run.id, "report.txt", tmp_path / "single.txt")
    assert single.read_text() == "hello"
    blobs = list((Path(client.settings.artifacts_uri) / "blobs").rglob("*"))
    assert len([b for b in blobs if b.is_file()]) == 3  # report deduplicated


@pytest.mark.parametrize("bad", ["../escape.txt", "/etc/passwd", "a/../../b", "a\\b",
                                 "%2e%2e/x"])
def test_artifact_paths_that_escape_are_rejected(workspace: Path, tmp_path: Path,
                                                 bad: str) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    with ratchet.start_run(), pytest.raises(InvalidInput):
        ratchet.log_artifact(f, bad)


def test_symlinks_are_rejected(workspace: Path, tmp_path: Path) -> None:
    target = tmp_path / "secret.txt"
    target.write_text("secret")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    d = tmp_path / "d"
    d.mkdir()
    (d / "inner").symlink_to(target)
    with ratchet.start_run():
        with pytest.raises(InvalidInput, match="symlink"):
            ratchet.log_artifact(link)
        with pytest.raises(InvalidInput, match="symlink"):
            ratchet.log_artifacts(d)


def test_log_input_hook(workspace: Path) -> None:
    with ratchet.start_run() as run:
        ratchet.log_input(DatasetInput("churn", "ab" * 32, 3, "train", "s3://bucket/churn"))
    assert ratchet.get_run(run.id).inputs[0].name == "churn"


def test_search_runs_fluent(workspace_on: Path) -> None:
    for c, auc in [("0.1", 0.7), ("1.0", 0.95), ("1.0", 0.92), ("10", 0.99)]:
        with ratchet.start_run(experiment="s"):
            ratchet.log_param("C", c)
            ratchet.log_metric("auc", auc)
    runs = ratchet.search_runs("metrics.auc > 0.9 and params.C = '1.0'",
                               order_by=["metrics.auc DESC"])
    assert [r.metrics["auc"] for r in runs] == [0.95, 0.92]
    with pytest.raises(InvalidInput, match="position"):
        ratchet.search_runs("metrics.auc > ")
    first = ratchet.search_runs(order_by=["metrics.auc DESC"], max_results=3)
    rest = ratchet.search_runs(order_by=["metrics.auc DESC"], max_results=3,
                               page_token=first.next_page_token)
    assert [r.metrics["auc"] for r in first + rest] == [0.99, 0.95, 0.92, 0.7]
    assert rest.next_page_token is None


def test_unreachable_server_is_a_clear_error(workspace: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from ratchet.remote.session import RemoteSession
    from tests.team_server import free_port

    monkeypatch.setattr(RemoteSession.__init__, "__kwdefaults__",  # the server stays down:
                        {"timeout_s": 60.0, "retries": 0, "backoff_s": 0.0})  # no retries
    monkeypatch.setenv("RATCHET_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreUnavailable, match="did not answer"):
        ratchet.start_run()


def test_tracking_uri_must_be_http(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATCHET_TRACKING_URI", "file:///etc")
    with pytest.raises(RatchetError, match="http:// or https://"):
        ratchet.start_run()


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def test_code_version_is_captured_from_git(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    script = repo / "train.py"
    script.write_text(textwrap.dedent("""
        import ratchet
        with ratchet.start_run(experiment="git") as run:
            pass
        print(run.id)
    """))
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "init")
    commit = _git(repo, "rev-parse", "HEAD")

    def run_script() -> str:
        done = subprocess.run([sys.executable, "train.py"], cwd=repo, capture_output=True,
                              text=True, check=True)
        return done.stdout.strip()

    clean_id = run_script()
    script.write_text(script.read_text() + "\n# edited\n")
    dirty_id = run_script()
    script.write_text(script.read_text() + "\n# edited again\n")
    dirty2_id = run_script()

    from ratchet.config import load_settings
    from ratchet.tracking import TrackingClient

    client = TrackingClient(Workspace(load_settings(cwd=repo, env={})))
    clean, dirty, dirty2 = (client.get_run(i).code for i in (clean_id, dirty_id, dirty2_id))
    assert clean.git_commit == commit and clean.git_branch == "main"
    assert clean.git_dirty is False and clean.git_diff_hash is None
    assert clean.entry_point == "train.py"
    assert dirty.git_dirty is True and dirty.git_diff_hash
    assert dirty2.git_diff_hash != dirty.git_diff_hash  # different edits, different hashes
