"""``ratchet import mlflow`` over MLflow file stores written by hand exactly as MLflow lays
them out (no mlflow needed): the reader, the copier on every backend, reruns, hostile
stores, the CLI. Stores written by the real MLflow client: tests/mlflow_compat/test_import.py.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ratchet.config import Settings
from ratchet.errors import InvalidInput, NotFound
from ratchet.importing.mlflow_files import FileMlflowSource, parse_metric_line, read_meta
from ratchet.importing.mlflow_import import (
    ArtifactRoots,
    MlflowImporter,
    _missing,
    import_mlflow,
    new_status,
    open_source,
    run_digest,
    under,
)
from ratchet.store.mlflow_source import SourceRun
from ratchet.workspace import Workspace

RUN = "4c493f98bb534c94bda4ac9d6dcd8710"
RUN2 = "204b8cf12cac4640a2b33d8c97a2d698"
EXP = "207211418743607623"
MLMODEL = """\
artifact_path: model
flavors:
  python_function:
    loader_module: mlflow.sklearn
    model_path: model.pkl
    python_version: 3.11.7
  sklearn:
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.9.1
mlflow_version: 2.22.5
"""


# ---------------------------------------------------------------- an MLflow file store
def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_run(root: Path, exp: str, run_id: str, *, status: int = 3, end: int | None = 2000,
              points: int = 3, artifact_uri: str | None = None, name: str = "r1") -> Path:
    run = root / "mlruns" / exp / run_id
    uri = artifact_uri or str(run / "artifacts")
    _write(run / "meta.yaml", f"""\
artifact_uri: {uri}
end_time: {'null' if end is None else end}
entry_point_name: ''
experiment_id: '{exp}'
lifecycle_stage: active
run_id: {run_id}
run_name: {name}
run_uuid: {run_id}
source_name: ''
source_type: 4
source_version: ''
start_time: 1000
status: {status}
tags: []
user_id: alice
""")
    _write(run / "params" / "lr", "0.1")
    _write(run / "tags" / "mlflow.runName", name)
    _write(run / "tags" / "mlflow.user", "alice")
    _write(run / "metrics" / "loss", "".join(f"{1000 + i} {1 / (i + 1)} {i}\n"
                                             for i in range(points)))
    _write(run / "metrics" / "eval" / "acc", "1001 0.5 0\n1002 nan 1\n1002 nan 1\n")
    return run


def write_store(root: Path) -> Path:
    """An MLflow 2.x file store: Default, one experiment with a finished run (artifacts and
    a logged model) registered as churn v1 with an alias."""
    mlruns = root / "mlruns"
    _write(mlruns / "0" / "meta.yaml", f"""\
artifact_location: file://{mlruns}/0
creation_time: 1
experiment_id: '0'
last_update_time: 1
lifecycle_stage: active
name: Default
""")
    _write(mlruns / EXP / "meta.yaml", f"""\
artifact_location: {mlruns}/{EXP}
creation_time: 2
experiment_id: '{EXP}'
last_update_time: 2
lifecycle_stage: active
name: train
""")
    _write(mlruns / EXP / "tags" / "team", "ml")
    run = write_run(root, EXP, RUN)
    _write(run / "artifacts" / "notes" / "a.txt", "hello")
    _write(run / "artifacts" / "model" / "MLmodel", MLMODEL)
    _write(run / "artifacts" / "model" / "model.pkl", "not really a pickle")
    model = mlruns / "models" / "churn"
    _write(model / "meta.yaml", "creation_timestamp: 5\ndescription: the churn model\n"
                                "last_updated_timestamp: 5\nname: churn\n")
    _write(model / "tags" / "owner", "me")
    _write(model / "aliases" / "champion", "1")
    _write(model / "version-1" / "meta.yaml", f"""\
creation_timestamp: 6
current_stage: None
description: first
name: churn
run_id: {RUN}
source: {run}/artifacts/model
status: READY
storage_location: {run}/artifacts/model
version: 1
""")
    _write(model / "version-1" / "tags" / "ok", "yes")
    return mlruns


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return write_store(tmp_path / "source")


@pytest.fixture
def ws(settings: Settings) -> Workspace:
    """A workspace on each backend: SQLite, PostgreSQL and a live team server."""
    return Workspace(settings)


@pytest.fixture
def local_ws(tmp_path: Path) -> Workspace:
    return Workspace(Settings(home=tmp_path / ".ratchet",
                              db_url=f"sqlite:///{tmp_path / 'meta' / 'ratchet.db'}",
                              artifacts_uri=str(tmp_path / "artifacts")))


# ---------------------------------------------------------------- the file-store reader
def test_file_store_records(store: Path) -> None:
    source = open_source(str(store))
    assert isinstance(source, FileMlflowSource)
    exps = {e.name: e for e in source.experiments()}
    assert set(exps) == {"Default", "train"}
    assert exps["train"].tags == {"team": "ml"} and exps["Default"].experiment_id == "0"
    (run,) = source.runs(EXP)
    assert (run.run_id, run.name, run.status, run.start_time, run.end_time, run.user_id) == (
        RUN, "r1", "FINISHED", 1000, 2000, "alice")
    assert run.params == {"lr": "0.1"} and run.tags["mlflow.runName"] == "r1"
    assert source.metric_counts(RUN) == {"loss": 3, "eval/acc": 3}  # a '/' key is nested
    points = [p for page in source.metric_points(RUN, page=2) for p in page]
    assert len(points) == 6
    nan = [p for p in points if p[0] == "eval/acc" and math.isnan(p[1])]
    assert len(nan) == 2
    assert next(p for page in source.metric_points(RUN, ["loss"]) for p in page) == (
        "loss", 1.0, 0, 1000)
    (model,) = source.registered_models()
    assert (model.name, model.description, model.tags, model.aliases) == (
        "churn", "the churn model", {"owner": "me"}, {"champion": 1})
    (version,) = source.model_versions("churn")
    assert (version.version, version.run_id, version.tags, version.deleted) == (
        1, RUN, {"ok": "yes"}, False)
    assert source.logged_models() == []


def test_metric_lines() -> None:
    assert parse_metric_line("k", "5 2.5 7\n", "f:1") == ("k", 2.5, 7, 5)
    assert parse_metric_line("k", "5 inf", "f:1") == ("k", math.inf, 0, 5)  # no step: 0
    for bad in ("5", "x 1 2", "5 1 2 3", "5 one 2"):
        with pytest.raises(InvalidInput, match="f:1"):
            parse_metric_line("k", bad, "f:1")


def test_meta_yaml_is_safe_loaded_and_bounded(tmp_path: Path) -> None:
    evil = tmp_path / "meta.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['touch /tmp/pwned-by-import']\n")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        read_meta(evil)
    evil.write_text("- a list\n")
    with pytest.raises(InvalidInput, match="mapping"):
        read_meta(evil)
    evil.write_text("name: " + "x" * (2 << 20))
    with pytest.raises(InvalidInput, match="larger than"):
        read_meta(evil)


def test_symlinks_in_a_store_are_not_followed(store: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("password")
    run = store / EXP / RUN
    os.symlink(secret, run / "tags" / "stolen")
    os.symlink(tmp_path, run / "params" / "dir")
    os.symlink(tmp_path / "source", store / "999")  # an "experiment" that is a link
    source = FileMlflowSource(store)
    (read,) = source.runs(EXP)
    assert "stolen" not in read.tags and set(read.params) == {"lr"}
    assert "999" not in {e.experiment_id for e in source.experiments()}


# ---------------------------------------------------------------- pure helpers
def test_artifact_roots(tmp_path: Path) -> None:
    root = tmp_path / "art"
    (root / "a").mkdir(parents=True)
    roots = ArtifactRoots([root])
    assert roots.local_dir(str(root / "a")) == (root / "a").resolve()
    assert roots.local_dir(f"file://{root}/a") == (root / "a").resolve()
    assert roots.local_dir("mlflow-artifacts:/a") == (root / "a").resolve()
    assert roots.local_dir("mlflow-artifacts://host:5000/a") == (root / "a").resolve()
    for hostile in ("/etc", f"{root}/../../etc", f"file://{root}/../x", "mlflow-artifacts:/../..",
                    "s3://bucket/x", "relative/path", "file://otherhost/etc"):
        with pytest.raises(InvalidInput):
            roots.local_dir(hostile)
    os.symlink("/etc", root / "link")
    with pytest.raises(InvalidInput, match="outside the artifact root"):
        roots.local_dir(str(root / "link"))
    with pytest.raises(InvalidInput, match="--artifacts-root"):
        ArtifactRoots([]).local_dir(str(root))


def test_under() -> None:
    assert under("/a/b/c", "/a/b") == "c"
    assert under("file:///a/b/c/d", "/a/b/") == "c/d"
    assert under("/a/b", "file:///a/b") == ""
    assert under("/a/bc", "/a/b") is None
    assert under("mlflow-artifacts:/1/r/artifacts/m", "mlflow-artifacts:/1/r/artifacts") == "m"


def test_missing_points_is_a_multiset_difference() -> None:
    stored = Counter({(0, 1, repr(1.0)): 1, (1, 2, "nan"): 1})
    points = [("k", 1.0, 0, 1), ("k", 1.0, 0, 1), ("k", math.nan, 1, 2), ("k", 3.0, 2, 3)]
    assert list(_missing(stored, points)) == [("k", 1.0, 0, 1), ("k", 3.0, 2, 3)]


def test_run_digest_ignores_order_and_sees_every_value() -> None:
    points = [("a", 1.0, 0, 1), ("a", math.nan, 1, 2)]
    digest, n = run_digest({"p": "1"}, {"t": "x"}, points)
    assert n == 2
    assert run_digest({"p": "1"}, {"t": "x"}, points[::-1])[0] == digest
    assert run_digest({"p": "2"}, {"t": "x"}, points)[0] != digest
    assert run_digest({"p": "1"}, {"t": "x"}, [("a", 1.0, 0, 1), ("a", 0.0, 1, 2)])[0] != digest


def test_new_status() -> None:
    def src(status: str, end: int | None) -> SourceRun:
        return SourceRun("r", "1", "n", status, 1, end, "active", None, None)

    assert new_status(src("RUNNING", None), None) is None
    assert new_status(src("SCHEDULED", None), None) is None
    assert new_status(src("FINISHED", 5), None) == "finished"
    assert new_status(src("KILLED", 5), None) == "killed"


# ---------------------------------------------------------------- the copier
def test_import_verify_and_rerun(ws: Workspace, store: Path) -> None:
    report = import_mlflow(str(store), workspace=ws)
    assert report.problems == [], report.problems
    assert report.verification is not None and report.verification.ok, report.to_dict()
    c = report.copied
    assert (c.experiments, c.runs, c.params, c.tags, c.metric_points) == (2, 1, 1, 2, 6)
    assert (c.registered_models, c.model_versions, c.aliases) == (1, 1, 1)
    assert c.artifacts == 4  # 3 files + ratchet's manifest beside the MLmodel
    tracking, registry = ws.stores.tracking, ws.stores.registry
    exp = tracking.get_experiment("train")
    assert exp.experiment_id == EXP and exp.tags == {"team": "ml"}  # MLflow's id kept
    run = tracking.get_run(RUN)
    assert (run.experiment_id, run.name, run.status, run.start_time, run.end_time) == (
        EXP, "r1", "finished", 1000, 2000)
    assert run.code.user == "alice"
    history = tracking.metric_history(RUN, "eval/acc")
    assert [m.step for m in history] == [0, 1, 1] and math.isnan(history[-1].value)
    assert ws.blobs.read_bytes(next(e.digest for e in tracking.list_artifacts(RUN, "notes"))
                               ) == b"hello"
    version = registry.get_model_version("churn", 1)
    assert (version.run_id, version.artifact_path, version.flavor) == (RUN, "model", "mlflow")
    assert version.tags == {"ok": "yes"} and version.description == "first"
    assert version.manifest["safe"] is False  # a pickle: loading it needs trust
    model = registry.get_registered_model("churn")
    assert model.aliases == {"champion": 1} and model.tags == {"owner": "me"}
    assert model.description == "the churn model"

    again = import_mlflow(str(store), workspace=ws)
    assert again.problems == [] and again.verification is not None and again.verification.ok
    assert again.copied.runs_unchanged == 1
    nothing = {k: v for k, v in again.to_dict()["copied"].items() if k != "runs_unchanged"}
    assert set(nothing.values()) == {0}, nothing
    assert len(registry.alias_history("churn", "champion")) == 1  # not moved again


def test_a_running_run_gets_only_its_new_points(local_ws: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "source"
    store = write_store(root)
    write_run(root, EXP, RUN2, status=1, end=None, points=4, name="live")
    first = import_mlflow(str(store), workspace=local_ws)
    assert first.verification is not None and first.verification.ok
    tracking = local_ws.stores.tracking
    assert tracking.get_run(RUN2).status == "running"
    # MLflow went on logging (one point repeats an old one exactly) and finished the run.
    metrics = store / EXP / RUN2 / "metrics"
    with open(metrics / "loss", "a") as f:
        f.write("1003 0.25 3\n1100 0.1 10\n1101 0.05 11\n")
    _write(metrics / "new", "1200 7 0\n")
    meta = (store / EXP / RUN2 / "meta.yaml").read_text()
    (store / EXP / RUN2 / "meta.yaml").write_text(
        meta.replace("status: 1", "status: 3").replace("end_time: null", "end_time: 3000"))
    _write(store / EXP / RUN2 / "artifacts" / "late.txt", "late")
    second = import_mlflow(str(store), workspace=local_ws)
    assert second.problems == []
    assert second.verification is not None and second.verification.ok, second.to_dict()
    c = second.copied
    assert (c.runs, c.runs_updated, c.runs_unchanged, c.metric_points, c.artifacts) == (
        0, 1, 1, 4, 1)
    assert len(tracking.metric_history(RUN2, "loss")) == 7
    run = tracking.get_run(RUN2)
    assert (run.status, run.end_time) == ("finished", 3000)


def test_a_new_run_is_the_only_thing_copied(local_ws: Workspace, store: Path) -> None:
    import_mlflow(str(store), workspace=local_ws)
    write_run(store.parent, "0", RUN2, name="later")
    report = import_mlflow(str(store), workspace=local_ws)
    c = report.copied
    assert (c.runs, c.runs_unchanged, c.experiments, c.metric_points, c.model_versions) == (
        1, 1, 0, 6, 0)
    assert local_ws.stores.tracking.get_run(RUN2).experiment_id == "0"


def test_dry_run_writes_nothing(local_ws: Workspace, store: Path) -> None:
    report = import_mlflow(str(store), workspace=local_ws, dry_run=True)
    assert report.verification is None
    c = report.copied
    assert (c.experiments, c.runs, c.metric_points, c.artifacts, c.model_versions) == (
        2, 1, 6, 3, 1)
    assert local_ws.stores.tracking.list_experiments() == []
    assert local_ws.stores.registry.list_registered_models() == []


def test_choosing_experiments(local_ws: Workspace, store: Path) -> None:
    write_run(store.parent, "0", RUN2, name="default-run")
    report = import_mlflow(str(store), workspace=local_ws, experiments=["Default"])
    assert report.copied.runs == 1 and report.copied.model_versions == 0
    assert [e.name for e in local_ws.stores.tracking.list_experiments()] == ["Default"]
    with pytest.raises(NotFound, match="no experiment named 'nope'"):
        import_mlflow(str(store), workspace=local_ws, experiments=["nope"])


def test_hostile_locations_are_not_read(local_ws: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "source"
    store = write_store(root)
    outside = tmp_path / "outside"
    _write(outside / "secret.txt", "secret")
    write_run(root, EXP, RUN2, artifact_uri="/etc", name="etc")
    third = "0123456789abcdef0123456789abcdef"
    write_run(root, EXP, third, artifact_uri=f"{store}/../../outside", name="dotdot")
    version = store / "models" / "churn" / "version-2" / "meta.yaml"
    _write(version, f"name: churn\nversion: 2\nsource: {outside}\nrun_id: {RUN}\n"
                    "current_stage: None\n")
    progress: list[tuple[str, int, int]] = []
    importer = MlflowImporter(local_ws, open_source(str(store)),
                              progress=lambda *a: progress.append(a))
    report = importer.run()
    assert sum("outside the artifact root" in p for p in report.problems) == 2
    assert any("version 2: not copied" in p for p in report.problems)
    tracking = local_ws.stores.tracking
    assert tracking.list_artifacts(RUN2) == [] and tracking.list_artifacts(third) == []
    assert [v.version for v in local_ws.stores.registry.list_model_versions("churn")] == [1]
    assert tracking.get_run(RUN2).params == {"lr": "0.1"}  # the rest of the run is copied
    assert progress[0] == ("runs", 0, 3) and progress[-1] == ("models", 1, 1)
    # The user may allow that directory explicitly.
    allowed = import_mlflow(str(store), workspace=local_ws,
                            artifacts_roots=[store, outside.parent])
    assert [e.path for e in tracking.list_artifacts(third)] == ["secret.txt"]
    assert not any(third in p for p in allowed.problems)


def test_a_deleted_version_keeps_the_numbers_after_it(local_ws: Workspace,
                                                       store: Path) -> None:
    v1 = store / "models" / "churn" / "version-1" / "meta.yaml"
    v1.write_text(v1.read_text().replace("current_stage: None", "current_stage: Deleted_Internal"))
    v2 = v1.read_text().replace("version: 1", "version: 2").replace(
        "current_stage: Deleted_Internal", "current_stage: None")
    _write(store / "models" / "churn" / "version-2" / "meta.yaml", v2)
    (store / "models" / "churn" / "aliases" / "champion").write_text("2")
    report = import_mlflow(str(store), workspace=local_ws)
    assert "model 'churn' version 1: deleted in MLflow" in report.skipped
    assert report.problems == [] and report.verification is not None
    assert report.verification.ok and report.verification.counts["model_versions"] == (1, 1)
    registry = local_ws.stores.registry
    assert [v.version for v in registry.list_model_versions("churn")] == [2]
    assert registry.get_registered_model("churn").aliases == {"champion": 2}


def test_cli(local_ws: Workspace, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ratchet.cli.main import app

    settings = local_ws.settings
    monkeypatch.setenv("RATCHET_HOME", str(settings.home))
    monkeypatch.setenv("RATCHET_DB", settings.db_url)
    monkeypatch.setenv("RATCHET_ARTIFACTS", str(settings.artifacts_uri))
    runner = CliRunner()
    result = runner.invoke(app, ["import", "mlflow", str(store), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["verification"]["ok"] is True and data["copied"]["runs"] == 1
    assert data["verification"]["counts"]["metric_points"] == {"source": 6, "ratchet": 6}
    result = runner.invoke(app, ["import", "mlflow", str(store)])
    assert result.exit_code == 0, result.output
    assert "0 runs (0 updated, 1 unchanged)" in result.stdout
    assert "verified: the copy matches" in result.stdout
    result = runner.invoke(app, ["import", "mlflow", str(store.parent / "nope")])
    assert result.exit_code == 1 and "no such directory" in result.output


def test_mlflow_artifacts_locations_are_under_the_first_root(local_ws: Workspace,
                                                              tmp_path: Path) -> None:
    root = tmp_path / "source"
    store = write_store(root)
    served = tmp_path / "mlartifacts"  # an MLflow server's --artifacts-destination
    write_run(root, EXP, RUN2, artifact_uri=f"mlflow-artifacts:/{EXP}/{RUN2}/artifacts",
              name="proxied")
    _write(served / EXP / RUN2 / "artifacts" / "plot.txt", "plot")
    report = import_mlflow(str(store), workspace=local_ws, artifacts_roots=[served, store])
    assert report.problems == [] and report.verification is not None
    assert report.verification.ok, report.to_dict()
    assert [e.path for e in local_ws.stores.tracking.list_artifacts(RUN2)] == ["plot.txt"]


def test_a_version_number_ratchet_gave_to_other_files_is_not_merged(local_ws: Workspace,
                                                                     store: Path) -> None:
    import_mlflow(str(store), workspace=local_ws)
    # Another MLflow store whose churn v1 is a different run's model.
    other = write_store(store.parent.parent / "other")
    run = write_run(other.parent, EXP, RUN2, name="other")
    _write(run / "artifacts" / "model" / "MLmodel", MLMODEL)
    v1 = other / "models" / "churn" / "version-1" / "meta.yaml"
    v1.write_text(v1.read_text().replace(RUN, RUN2))
    _write(other / "models" / "churn" / "aliases" / "prod", "1")
    report = import_mlflow(str(other), workspace=local_ws)
    assert any("not merged" in p for p in report.problems), report.problems
    assert any("alias 'prod'" in p for p in report.problems)
    assert local_ws.stores.registry.get_model_version("churn", 1).run_id == RUN
    assert local_ws.stores.registry.get_registered_model("churn").aliases == {"champion": 1}
    assert report.verification is not None and not report.verification.ok


def write_logged_model(store: Path, model_id: str, source_run: str | None, files: Path) -> None:
    """An MLflow 3 logged model as its file store lays it out, and churn v1 made from it."""
    _write(store / EXP / "models" / model_id / "meta.yaml", f"""\
artifact_location: {files}
creation_timestamp: 7
experiment_id: '{EXP}'
last_updated_timestamp: 8
model_id: {model_id}
model_type: null
name: model
source_run_id: {source_run or 'null'}
status: 2
status_message: null
""")
    _write(files / "MLmodel", MLMODEL)
    _write(files / "model.pkl", "pickled")
    v1 = store / "models" / "churn" / "version-1" / "meta.yaml"
    _write(v1, f"""\
current_stage: None
model_id: {model_id}
name: churn
run_id: {source_run or 'null'}
source: models:/{model_id}
status: READY
storage_location: {files}
version: 1
""")


@pytest.mark.parametrize("in_a_run", [True, False], ids=["from-a-run", "outside-a-run"])
def test_mlflow3_logged_models(local_ws: Workspace, store: Path, in_a_run: bool) -> None:
    model_id = "m-94109096fd2342b4b06cd72713cb4c59"
    write_logged_model(store, model_id, RUN if in_a_run else None,
                       store / EXP / "models" / model_id / "artifacts")
    report = import_mlflow(str(store), workspace=local_ws)
    assert report.problems == [] and report.verification is not None
    assert report.verification.ok, report.to_dict()
    logged = local_ws.stores.logged_models.get(model_id)  # MLflow's id kept
    assert (logged.status, logged.name, logged.artifact_path) == (
        "ready", "model", f"models/{model_id}")
    assert (logged.artifact_run_id == RUN) is in_a_run  # else a holder run made for it
    files = {e.path for e in local_ws.stores.tracking.list_artifacts(
        logged.artifact_run_id, f"models/{model_id}")}
    assert {f"models/{model_id}/MLmodel", f"models/{model_id}/model.pkl",
            f"models/{model_id}/ratchet-model.json"} == files
    version = local_ws.stores.registry.get_model_version("churn", 1)
    assert (version.run_id, version.artifact_path) == (logged.artifact_run_id,
                                                       f"models/{model_id}")
    assert version.tags["ratchet.mlflow.model_id"] == model_id  # MLflow's API shows it
    again = import_mlflow(str(store), workspace=local_ws)
    assert again.problems == [] and again.copied.artifacts == 0
    assert again.copied.model_versions == 0


def test_version_numbers_are_kept_across_gaps(local_ws: Workspace, store: Path) -> None:
    """MLflow numbers stay: version 3 after a deleted version 2 is ratchet's version 3, and
    a version 2 that turns up later (it never can in MLflow) is reported, not renumbered."""
    run = store / EXP / RUN
    meta = (store / "models" / "churn" / "version-1" / "meta.yaml").read_text()
    _write(store / "models" / "churn" / "version-3" / "meta.yaml",
           meta.replace("version: 1", "version: 3").replace("first", "third"))
    _write(store / "models" / "churn" / "aliases" / "challenger", "3")
    report = import_mlflow(str(store), workspace=local_ws)
    assert report.verification is not None and report.verification.ok, report.to_dict()
    registry = local_ws.stores.registry
    assert [v.version for v in registry.list_model_versions("churn")] == [1, 3]
    assert registry.get_registered_model("churn").aliases == {"champion": 1, "challenger": 3}
    assert (run / "artifacts" / "model" / "MLmodel").exists()
    _write(store / "models" / "churn" / "version-2" / "meta.yaml",
           meta.replace("version: 1", "version: 2"))
    again = import_mlflow(str(store), workspace=local_ws)
    assert any("version 2: not copied" in p and "only grow" in p for p in again.problems)
    assert [v.version for v in registry.list_model_versions("churn")] == [1, 3]


def test_a_directory_that_is_not_a_file_store_is_refused(local_ws: Workspace,
                                                         tmp_path: Path) -> None:
    """A wrong directory is an error saying what to give, not an empty import that
    verifies as matching."""
    other = tmp_path / "not-mlruns"
    (other / "src").mkdir(parents=True)
    with pytest.raises(InvalidInput, match="is not an MLflow file store"):
        import_mlflow(str(other), workspace=local_ws)
