"""``ratchet import mlflow`` over stores the real MLflow client (2.x and 3.x) wrote: SQLite,
PostgreSQL and a file store. Import, verify counts and digests, rerun (nothing copied), let
MLflow go on (a new run, new points of a running run), rerun (only those copied), and load
the imported registered model the ratchet way."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ratchet.config import Settings
from ratchet.importing import import_mlflow
from ratchet.importing.mlflow_import import ImportReport
from ratchet.workspace import Workspace
from tests.conftest import PG_ADMIN_URL
from tests.mlflow_compat.client_processes import ClientProcesses
from tests.mlflow_compat.conftest import SCRIPT_TIMEOUT_S, client_env

pytestmark = pytest.mark.e2e

# A program an MLflow user would write (no ratchet code): phase "start" fills a store,
# phase "more" (given the running run's id) adds a run, logs on and ends the running run.
SCRIPT = r'''
import json, math, sys
import mlflow
from mlflow import MlflowClient

uri, artifacts, phase = sys.argv[1], sys.argv[2], sys.argv[3]
mlflow.set_tracking_uri(uri)
mlflow.set_registry_uri(uri)
c = MlflowClient()
major = int(mlflow.__version__.split(".")[0])
if phase == "start":
    eid = c.create_experiment("churn", artifact_location=artifacts + "/churn",
                              tags={"team": "ml"})
    with mlflow.start_run(experiment_id=eid, run_name="train") as run:
        mlflow.log_params({"lr": 0.1, "depth": 3})
        mlflow.set_tags({"stage": "dev"})
        for i in range(30):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
        mlflow.log_metrics({"eval/acc": 0.9, "nan": math.nan})
        c.log_batch(run.info.run_id, metrics=[
            mlflow.entities.Metric("batch", float(i), 1000 + i, i) for i in range(200)])
        mlflow.log_text("hello", "notes/readme.txt")
        import sklearn
        from sklearn.linear_model import LogisticRegression
        model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
        where = {"name": "model"} if major >= 3 else {"artifact_path": "model"}
        # Requirements given: inferring them loads the model in a subprocess (5-10 s), and
        # the import does not read them.
        mlflow.sklearn.log_model(model, registered_model_name="churn",
                                 pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
                                 **where)
    c.set_registered_model_alias("churn", "champion", "1")
    c.set_registered_model_tag("churn", "owner", "me")
    c.set_model_version_tag("churn", "1", "validated", "yes")
    with mlflow.start_run(experiment_id=eid, run_name="child", nested=False) as child:
        mlflow.set_tag("mlflow.parentRunId", run.info.run_id)
        mlflow.log_metric("m", 1.0)
    gone = c.create_run(eid, run_name="gone")
    c.delete_run(gone.info.run_id)
    live = c.create_run("0", run_name="live")
    for i in range(5):
        c.log_metric(live.info.run_id, "progress", float(i), step=i)
    print(json.dumps({"train": run.info.run_id, "child": child.info.run_id,
                      "live": live.info.run_id}))
else:
    live = sys.argv[4]
    for i in range(5, 12):
        c.log_metric(live, "progress", float(i), step=i)
    c.set_terminated(live, "FINISHED")
    with mlflow.start_run(experiment_id="0", run_name="later") as later:
        mlflow.log_param("p", "x")
        mlflow.log_metric("m", 2.0)
    print(json.dumps({"later": later.info.run_id}))
'''


def run_mlflow(clients: ClientProcesses, python: str, cwd: Path, uri: str, artifacts: Path,
               *args: str, **env_extra: str) -> dict[str, Any]:
    script = cwd / "make_store.py"
    script.write_text(SCRIPT)
    done = clients.run(python, [str(script), uri, str(artifacts), *args], cwd=cwd,
                       env=client_env(**env_extra), timeout=SCRIPT_TIMEOUT_S)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if "FallbackAsyncAdaptedQueuePool" in done.stderr:
        pytest.fail("this MLflow 2.x venv has SQLAlchemy 2.1, whose pools MLflow 2.22's SQL "
                    "store cannot import: pin sqlalchemy<2.1 in pins/mlflow2.txt")
    assert done.returncode == 0 and lines, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def psycopg_path(tmp: Path) -> str:
    """A directory with only psycopg (3) on it, for the client venv's ``PYTHONPATH``: MLflow
    reaches PostgreSQL through SQLAlchemy's ``postgresql+psycopg`` dialect with it, so the
    pinned client venvs need no PostgreSQL driver of their own."""
    import psycopg

    site = Path(psycopg.__file__).resolve().parents[1]
    shim = tmp / "pg-driver"
    shim.mkdir(exist_ok=True)
    for entry in site.iterdir():
        if entry.name.split("-")[0].split(".")[0] in ("psycopg", "psycopg_binary"):
            (shim / entry.name).symlink_to(entry)
    return str(shim)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(Settings(home=tmp_path / ".ratchet",
                              db_url=f"sqlite:///{tmp_path / 'meta' / 'ratchet.db'}",
                              artifacts_uri=str(tmp_path / "blobs")))


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A throwaway PostgreSQL database for MLflow, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"mlflow_import_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0].split("://", 1)[1] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def assert_verified(report: ImportReport) -> None:
    assert report.problems == [], report.problems
    assert report.verification is not None and report.verification.ok, report.to_dict()


def assert_first_import(report: ImportReport, ws: Workspace, ids: dict[str, Any],
                        points: int | None = 30 + 2 + 200 + 1 + 5) -> None:
    assert_verified(report)
    c = report.copied
    assert (c.experiments, c.runs, c.registered_models, c.model_versions, c.aliases) == (
        2, 3, 1, 1, 1)
    assert report.verification is not None
    assert c.metric_points == report.verification.counts["metric_points"][0]
    if points is not None:
        assert c.metric_points == points
    assert any(s.endswith("deleted in MLflow") for s in report.skipped)
    tracking = ws.stores.tracking
    train = tracking.get_run(ids["train"])  # MLflow's run ids are kept
    assert train.status == "finished" and train.params == {"lr": "0.1", "depth": "3"}
    batch = tracking.metric_history(ids["train"], "batch")
    assert {m.step for m in batch} == set(range(200))
    assert len(batch) == 200 or points is None
    assert tracking.get_run(ids["child"]).parent_run_id == ids["train"]
    assert tracking.get_run(ids["live"]).status == "running"
    assert tracking.get_experiment("churn").tags == {"team": "ml"}
    registry = ws.stores.registry
    model = registry.get_registered_model("churn")
    assert model.aliases == {"champion": 1} and model.tags == {"owner": "me"}
    version = registry.get_model_version("churn", 1)
    assert version.run_id == ids["train"] and version.tags["validated"] == "yes"
    if version.artifact_path.startswith("models/"):  # MLflow 3: a logged model, same id
        model_id = version.artifact_path.split("/")[1]
        assert ws.stores.logged_models.get(model_id).status == "ready"
        assert version.tags["ratchet.mlflow.model_id"] == model_id
    # Servable the ratchet way (MLflow's sklearn pickle or skops: trust is explicit).
    from ratchet.registry.client import RegistryClient

    loaded = RegistryClient(ws).load("models:/churn@champion", trust=True)
    assert list(loaded.predict([[0.0], [3.0]])) == [0, 1]


def assert_nothing_new(report: ImportReport) -> None:
    assert_verified(report)
    copied = report.to_dict()["copied"]
    assert copied.pop("runs_unchanged") == 3
    assert set(copied.values()) == {0}, copied


def assert_only_new(report: ImportReport, ws: Workspace, ids: dict[str, Any],
                    later: dict[str, Any]) -> None:
    assert_verified(report)
    c = report.copied
    assert (c.runs, c.runs_updated, c.runs_unchanged) == (1, 1, 2)
    assert c.metric_points == 7 + 1  # the live run's new points and the new run's one
    assert c.model_versions == 0 and c.experiments == 0
    live = ws.stores.tracking.get_run(ids["live"])
    assert live.status == "finished" and live.end_time is not None
    assert len(ws.stores.tracking.metric_history(ids["live"], "progress")) == 12
    assert ws.stores.tracking.get_run(later["later"]).params == {"p": "x"}


def test_sqlite_store(mlflow_clients: ClientProcesses, mlflow_python: str, tmp_path: Path,
                      workspace: Workspace) -> None:
    store = tmp_path / "mlflow"
    store.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    ids = run_mlflow(mlflow_clients, mlflow_python, store, uri, store / "artifacts", "start")
    # The store's own directory is the default artifact root (Default's ./mlruns is in it).
    assert_first_import(import_mlflow(str(store / "mlflow.db"), workspace=workspace),
                        workspace, ids)
    assert_nothing_new(import_mlflow(uri, workspace=workspace))
    later = run_mlflow(mlflow_clients, mlflow_python, store, uri, store / "artifacts", "more",
                       ids["live"])
    assert_only_new(import_mlflow(uri, workspace=workspace), workspace, ids, later)


def test_postgresql_store(mlflow_clients: ClientProcesses, mlflow_python: str,
                          mlflow_version: str, tmp_path: Path, workspace: Workspace,
                          pg_database: str) -> None:
    artifacts = tmp_path / "artifacts"
    has_psycopg2 = mlflow_clients.run(mlflow_python, ["-c"], code="import psycopg2",
                                      cwd=tmp_path, env=client_env(),
                                      timeout=SCRIPT_TIMEOUT_S).returncode == 0
    if has_psycopg2:
        ids = run_mlflow(mlflow_clients, mlflow_python, tmp_path,
                         f"postgresql://{pg_database}", artifacts, "start")
    elif mlflow_version.startswith("2."):  # its queries need psycopg2's client-side casts
        pytest.fail("MLflow 2.x writes PostgreSQL through psycopg2 only: add "
                    "psycopg2-binary to tests/mlflow_compat/pins/mlflow2.txt")
    else:
        ids = run_mlflow(mlflow_clients, mlflow_python, tmp_path,
                         f"postgresql+psycopg://{pg_database}", artifacts, "start",
                         PYTHONPATH=psycopg_path(tmp_path))
    source = f"postgresql://{pg_database}"
    report = import_mlflow(source, workspace=workspace, artifacts_roots=[tmp_path])
    assert_first_import(report, workspace, ids)
    assert_nothing_new(import_mlflow(source, workspace=workspace, artifacts_roots=[tmp_path]))
    # Without an artifact root a database names no directory: artifacts are reported.
    bare = import_mlflow(source, workspace=workspace)
    assert any("--artifacts-root" in p for p in bare.problems)


def test_file_store(mlflow_clients: ClientProcesses, mlflow_python: str, tmp_path: Path,
                    workspace: Workspace) -> None:
    mlruns = tmp_path / "mlruns"
    ids = run_mlflow(mlflow_clients, mlflow_python, tmp_path, mlruns.as_uri(),
                     tmp_path / "artifacts", "start",
                     MLFLOW_ALLOW_FILE_STORE="true")  # 3.x keeps it behind this switch
    report = import_mlflow(str(mlruns), workspace=workspace, artifacts_roots=[tmp_path])
    # MLflow 3's file store writes each metric of a run that logs a model once more.
    assert_first_import(report, workspace, ids, points=None)
    assert_nothing_new(import_mlflow(mlruns.as_uri(), workspace=workspace,
                                     artifacts_roots=[tmp_path]))
    later = run_mlflow(mlflow_clients, mlflow_python, tmp_path, mlruns.as_uri(),
                       tmp_path / "artifacts", "more", ids["live"],
                       MLFLOW_ALLOW_FILE_STORE="true")
    assert_only_new(import_mlflow(str(mlruns), workspace=workspace, artifacts_roots=[tmp_path]),
                    workspace, ids, later)
