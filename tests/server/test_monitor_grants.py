"""Monitor results belong to their deployment: a writer kept out of one deployment can
neither rewrite its results nor point its report elsewhere, nor read them."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ratchet.errors import NotFound
from ratchet.server.app import ServerOptions, create_app
from ratchet.workspace import Workspace


def test_result_writes_and_reads_follow_the_deployment_grant(tmp_path: Path) -> None:
    workspace = Workspace.at(tmp_path / "home")
    auth = workspace.stores.auth
    auth.create_user("wes", "writer")
    auth.grant("wes", "deployment", "payments", "none")
    token = auth.create_token("wes").token
    monitor = workspace.stores.monitor
    theirs = monitor.add("payments", window_start=0, window_end=1, verdict="ok", rows=1,
                         result={"verdict": "ok"})
    mine = monitor.add("churn", window_start=0, window_end=1, verdict="ok", rows=1,
                       result={"verdict": "ok"})
    client = TestClient(create_app(workspace, ServerOptions(host="0.0.0.0",
                                                            allowed_hosts=("testserver",))),
                        base_url="http://testserver")
    headers = {"Authorization": f"Bearer {token}"}

    def call(method: str, body: dict[str, object]) -> int:
        return client.post(f"/api/v1/monitor/{method}", json=body, headers=headers).status_code

    assert call("set_result", {"result_id": theirs.result_id, "result": {"x": 1}}) == 403
    assert call("set_report_path", {"result_id": theirs.result_id, "path": "/etc/passwd"}) == 403
    assert call("get", {"result_id": theirs.result_id}) == 403
    assert monitor.get(theirs.result_id).result == {"verdict": "ok"}
    assert monitor.get(theirs.result_id).report_path is None
    assert call("set_result", {"result_id": mine.result_id, "result": {"x": 1}}) == 200
    assert call("get", {"result_id": mine.result_id}) == 200
    assert monitor.get(mine.result_id).result == {"x": 1}
    assert call("get", {"result_id": "nope"}) == 404
    with pytest.raises(NotFound, match="no monitor result"):
        monitor.get("nope")
