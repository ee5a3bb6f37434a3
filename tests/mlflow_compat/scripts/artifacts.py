"""Run artifacts through the real MLflow client and the ``mlflow-artifacts:/`` proxy:
log_artifact (file, into a directory), log_artifacts (a tree), log_text, log_dict, list,
download (a file and a directory), load_text/load_dict, and what happens to a path
written twice.

Usage: python artifacts.py PREFIX. Prints the digests of what came back.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import mlflow
import mlflow.artifacts
from _report import emit, raised, step
from mlflow import MlflowClient

prefix = sys.argv[1]
client = MlflowClient()
state: dict[str, Any] = {}
work = Path.cwd() / f"artifacts-{prefix}"
BLOB = bytes(range(256)) * 1200  # 300 KiB, every byte value


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): digest(p) for p in sorted(root.rglob("*"))
            if p.is_file()}


def destination(path: Path) -> str:
    """A download directory (MLflow 2.x needs it to exist; 3.x makes it)."""
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def listing(run_id: str, path: str | None = None) -> list[list[Any]]:
    return [[f.path, f.is_dir, f.file_size] for f in client.list_artifacts(run_id, path)]


@step("log")
def _() -> Any:
    (work / "in" / "tree" / "sub").mkdir(parents=True, exist_ok=True)
    (work / "in" / "hello.txt").write_text("hello from mlflow\n")
    (work / "in" / "blob.bin").write_bytes(BLOB)
    (work / "in" / "tree" / "a.txt").write_text("a\n")
    (work / "in" / "tree" / "sub" / "b.txt").write_text("b\n")
    mlflow.set_experiment(f"{prefix}-artifacts")
    with mlflow.start_run(run_name="artifacts") as run:
        mlflow.log_artifact(str(work / "in" / "hello.txt"))
        mlflow.log_artifact(str(work / "in" / "blob.bin"), artifact_path="data")
        mlflow.log_artifacts(str(work / "in" / "tree"), artifact_path="tree")
        mlflow.log_text("# notes\nsome text\n", "notes/readme.md")
        mlflow.log_dict({"alpha": 0.5, "layers": [1, 2]}, "config.json")
    state["run_id"] = run.info.run_id
    return {"run_id": run.info.run_id, "artifact_uri": run.info.artifact_uri}


@step("list")
def _() -> Any:
    run_id = state["run_id"]
    return {"root": listing(run_id), "data": listing(run_id, "data"),
            "tree": listing(run_id, "tree"), "tree/sub": listing(run_id, "tree/sub"),
            "missing": listing(run_id, "no-such-dir")}


@step("download")
def _() -> Any:
    run_id = state["run_id"]
    out = work / "out"
    hello = Path(client.download_artifacts(run_id, "hello.txt", destination(out / "file")))
    data = Path(client.download_artifacts(run_id, "data", destination(out / "dir")))
    everything = Path(mlflow.artifacts.download_artifacts(run_id=run_id,
                                                          dst_path=destination(out / "all")))
    return {"hello": hello.read_text(), "data": tree(data), "all": tree(everything),
            "text": mlflow.artifacts.load_text(f"runs:/{run_id}/notes/readme.md"),
            "dict": mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json"),
            "by_uri": digest(Path(mlflow.artifacts.download_artifacts(
                f"runs:/{run_id}/data/blob.bin", dst_path=destination(out / "uri"))))}


@step("rewrite")
def _() -> Any:
    """The same bytes again (a retried upload) and other bytes at a written path."""
    run_id = state["run_id"]
    same = raised(lambda: client.log_artifact(run_id, str(work / "in" / "hello.txt")))
    (work / "changed").mkdir(exist_ok=True)
    (work / "changed" / "hello.txt").write_text("changed\n")
    other = raised(lambda: client.log_artifact(run_id, str(work / "changed" / "hello.txt")))
    again = destination(work / "out" / "again")
    now = Path(client.download_artifacts(run_id, "hello.txt", again))
    return {"same_bytes": same, "other_bytes": other, "content_after": now.read_text()}


emit()
