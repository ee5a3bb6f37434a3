"""The workspace: one root from which every client and store is built."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pytest

import ratchet
from ratchet import workspace as ws_module
from ratchet.config import Settings
from ratchet.data.catalog import DataClient
from ratchet.errors import InvalidInput, StoreUnavailable
from ratchet.registry.client import RegistryClient
from ratchet.serving.deployments import DeploymentClient
from ratchet.store.stores import SqlStores
from ratchet.tracking.client import TrackingClient
from ratchet.workspace import Workspace


def test_clients_of_a_workspace_share_it_and_are_made_once(tmp_path: Path) -> None:
    ws = Workspace.at(tmp_path / "home")
    tracking = ws.client(TrackingClient)
    assert ws.client(TrackingClient) is tracking
    registry, data, deployments = (ws.client(RegistryClient), ws.client(DataClient),
                                   ws.client(DeploymentClient))
    assert registry.tracking is tracking and data.tracking is tracking
    assert deployments.registry is registry
    assert {c.workspace for c in (tracking, registry, data, deployments)} == {ws}
    assert isinstance(ws.stores, SqlStores)
    assert registry.store is ws.stores.registry and tracking.store is ws.stores.tracking
    assert ws.settings.home == (tmp_path / "home").resolve()
    assert (tmp_path / "home" / "ratchet.db").exists()  # the stores opened the database


def test_a_client_made_directly_joins_its_workspace(tmp_path: Path) -> None:
    ws = Workspace.at(tmp_path)
    tracking = TrackingClient(ws)  # the first one made is the shared one
    registry = RegistryClient(ws)
    assert registry.tracking is tracking is ws.client(TrackingClient)
    assert TrackingClient(ws) is not tracking and ws.client(TrackingClient) is tracking


def test_public_functions_reach_the_workspace_they_are_given(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RATCHET_HOME", raising=False)
    mine = Workspace.at(tmp_path / "mine")
    version = ratchet.data.log(pd.DataFrame({"x": [1, 2]}), "numbers", workspace=mine)
    assert [v.version for v in ratchet.data.list_versions("numbers", workspace=mine)] == [1]
    assert ratchet.data.list_datasets() == []  # the ambient workspace is another one
    assert ratchet.data.get_version("numbers@1", workspace=mine).digest == version.digest


def test_use_makes_a_workspace_ambient_for_the_fluent_api(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RATCHET_HOME", raising=False)
    mine = Workspace.at(tmp_path / "mine")
    with ws_module.use(mine):
        assert ws_module.current() is mine
        with ratchet.start_run(experiment="e") as run:
            ratchet.log_metric("m", 1.0)
    assert ws_module.current() is not mine
    assert ratchet.get_run(run.id, workspace=mine).status == "finished"
    assert ratchet.search_runs(workspace=mine)[0].run_id == run.id
    assert len(ratchet.search_runs()) == 0


def test_use_is_per_thread(tmp_path: Path) -> None:
    mine = Workspace.at(tmp_path / "mine")
    seen: list[Workspace] = []
    with ws_module.use(mine):
        thread = threading.Thread(target=lambda: seen.append(ws_module.current()))
        thread.start()
        thread.join()
    assert seen and seen[0] is not mine  # a thread starts from the environment's default


def test_the_ambient_default_follows_the_environment(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATCHET_HOME", str(tmp_path / "a"))
    a = ws_module.current()
    assert ws_module.current() is a  # made once per selection
    monkeypatch.setenv("RATCHET_HOME", str(tmp_path / "b"))
    b = ws_module.current()
    assert b is not a and b.settings.home == tmp_path / "b"
    assert ws_module.resolve(None) is b and ws_module.resolve(a) is a


def test_a_workspace_argument_that_is_not_one_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"takes a ratchet.Workspace or None, got str "
                                           r"\(Workspace.at\('/tmp/x'\) for a folder\)"):
        ratchet.data.list_datasets(workspace="/tmp/x")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"got Settings$"):
        ws_module.resolve(Workspace.at(tmp_path).settings)  # type: ignore[arg-type]


def test_remote_mode_hides_the_password_and_says_when_the_server_is_down(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ratchet.remote.session import RemoteSession
    from tests.team_server import free_port

    monkeypatch.setattr(RemoteSession.__init__, "__kwdefaults__",  # the server stays down:
                        {"timeout_s": 60.0, "retries": 0, "backoff_s": 0.0})  # no retries
    settings = Settings(home=tmp_path, db_url=f"sqlite:///{tmp_path / 'db'}",
                        artifacts_uri=str(tmp_path / "artifacts"),
                        tracking_uri=f"http://user:secret@127.0.0.1:{free_port()}")
    ws = Workspace(settings)
    assert ws.remote and "secret" not in repr(ws) and "secret" not in repr(ws.stores)
    with pytest.raises(StoreUnavailable, match="did not answer") as refused:
        ws.client(TrackingClient).list_experiments()
    assert "secret" not in str(refused.value)
    with pytest.raises(StoreUnavailable):
        ratchet.data.list_datasets(workspace=ws)
    assert not (tmp_path / "db").exists()  # remote mode opens no local database
