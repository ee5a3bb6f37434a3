"""Run artifacts through the real MLflow client and ``mlflow-artifacts:/``; then the same
files read by ratchet (its artifact index and blob store)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tests.mlflow_compat.conftest import RatchetServer
from tests.mlflow_compat.steps import value

pytestmark = pytest.mark.e2e

BLOB = bytes(range(256)) * 1200  # what the script writes as data/blob.bin
HELLO = "hello from mlflow\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


CONFIG = json.dumps({"alpha": 0.5, "layers": [1, 2]}, indent=2)  # mlflow.log_dict's form
FILES = {"hello.txt": sha(HELLO.encode()), "data/blob.bin": sha(BLOB),
         "tree/a.txt": sha(b"a\n"), "tree/sub/b.txt": sha(b"b\n"),
         "notes/readme.md": sha(b"# notes\nsome text\n")}


@pytest.fixture(scope="module")
def report(ratchet_server: RatchetServer, mlflow_python: str,
           mlflow_version: str) -> dict[str, Any]:
    return ratchet_server.run_client(mlflow_python, "artifacts.py", f"compat-{mlflow_version}")


def test_logged_run_has_a_proxied_artifact_uri(report: dict[str, Any]) -> None:
    logged = value(report, "log")
    assert logged["artifact_uri"].startswith("mlflow-artifacts:/")
    assert logged["artifact_uri"].endswith(f"/{logged['run_id']}/artifacts")


def test_list_artifacts(report: dict[str, Any]) -> None:
    listed = value(report, "list")
    root = {path: (is_dir, size) for path, is_dir, size in listed["root"]}
    assert root == {"hello.txt": (False, len(HELLO)), "data": (True, None),
                    "tree": (True, None), "notes": (True, None),
                    "config.json": (False, root.get("config.json", (None, None))[1])}
    assert root["config.json"][1] > 0
    assert listed["data"] == [["data/blob.bin", False, len(BLOB)]]
    assert sorted(map(tuple, listed["tree"])) == [("tree/a.txt", False, 2),
                                                  ("tree/sub", True, None)]
    assert listed["tree/sub"] == [["tree/sub/b.txt", False, 2]]
    assert listed["missing"] == []


def test_download_artifacts(report: dict[str, Any]) -> None:
    got = value(report, "download")
    assert got["hello"] == HELLO
    assert got["data"] == {"blob.bin": sha(BLOB)}
    everything = dict(got["all"])
    assert everything.pop("config.json")
    assert everything == FILES
    assert got["text"] == "# notes\nsome text\n"
    assert got["dict"] == {"alpha": 0.5, "layers": [1, 2]}
    assert got["by_uri"] == sha(BLOB)


def test_a_written_path_keeps_its_bytes(report: dict[str, Any]) -> None:
    """ratchet's artifacts are immutable: the same bytes again (a retried upload) is
    accepted, other bytes at a written path are refused (MLflow would overwrite)."""
    got = value(report, "rewrite")
    assert got["same_bytes"] is None
    assert got["other_bytes"] is not None
    assert got["content_after"] == HELLO


def test_artifacts_are_ratchet_artifacts(ratchet_server: RatchetServer,
                                         report: dict[str, Any]) -> None:
    from ratchet.tracking.client import TrackingClient

    run_id = value(report, "log")["run_id"]
    tracking = ratchet_server.workspace.client(TrackingClient)
    entries = {entry.path: entry for entry in tracking.list_artifacts(run_id)}
    assert set(FILES) | {"config.json"} <= set(entries)
    assert entries["data/blob.bin"].size == len(BLOB)
    assert tracking.read_artifact(run_id, "data/blob.bin") == BLOB
    assert tracking.read_artifact(run_id, "hello.txt").decode() == HELLO
    assert json.loads(tracking.read_artifact(run_id, "config.json")) == json.loads(CONFIG)
