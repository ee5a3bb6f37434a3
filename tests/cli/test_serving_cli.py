"""``ratchet deploy``, ``ratchet predict`` and ``ratchet serve`` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ratchet.config import load_settings
from ratchet.serving.prediction_query import predictions
from ratchet.workspace import Workspace
from tests.cli.conftest import Invoke, assert_user_error
from tests.serving.conftest import churn_frame, register_churn


@pytest.fixture
def churn(project: Path) -> Path:
    register_churn(load_settings())
    return project


def test_deploy_lifecycle(cli: Invoke, churn: Path) -> None:
    created = cli("deploy", "create", "churn", "--model", "churn@champion", "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["versions"] == {"primary": {"model": "churn", "version": 1}}
    out = cli("deploy", "set-plan", "churn", "--model", "churn@champion", "--canary", "churn/2",
              "--percent", "10", "--reason", "try v2")
    assert out.exit_code == 0 and "revision 2" in out.stdout
    split = cli("deploy", "set-plan", "churn", "--split", "churn/1=70", "--split", "churn/2=30",
                "--key", "customer_id", "--json")
    assert json.loads(split.stdout)["plan"]["kind"] == "split"
    rolled = cli("deploy", "rollback", "churn", "--json")
    assert json.loads(rolled.stdout)["plan"] == {
        "kind": "canary", "model": "churn/1", "canary": "churn/2", "percent": 10.0, "key": None}
    history = json.loads(cli("deploy", "history", "churn", "--json").stdout)
    assert [h["revision"] for h in history] == [1, 2, 3, 4]
    assert "rollback" in history[-1]["reason"]
    assert "churn" in cli("deploy", "list").stdout
    assert "canary" in cli("deploy", "show", "churn").stdout
    assert cli("deploy", "delete", "churn").exit_code == 0


@pytest.mark.parametrize("args, message", [
    (["deploy", "show", "nope"], "no deployment named 'nope'"),
    (["deploy", "create", "x", "--canary", "churn/2"], "give --model"),
    (["deploy", "create", "x", "--model", "churn/1", "--canary", "churn/2"], "--percent"),
    (["deploy", "create", "x", "--model", "churn/1", "--split", "churn/2=1"], "--split takes"),
    (["deploy", "create", "x", "--split", "churn/2"], "expected MODEL=WEIGHT"),
    (["deploy", "create", "x", "--model", "churn/9"], "version 9"),
    (["serve", "churn@nope"], "no alias 'nope'"),
    (["serve", "churn@champion", "--unknown-category", "maybe"], "unknown_category"),
    (["serve"], "give a model to serve"),
    (["serve", "churn@champion", "--token-file", "no-such-file"], "cannot read token file"),
    (["serve", "churn@champion", "--auth", "everything"], "auth scope"),
])
def test_mistakes_are_one_line_errors(cli: Invoke, churn: Path, args: list[str],
                                      message: str) -> None:
    result = cli(*args)
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output


def test_predict_scores_a_file_and_logs(cli: Invoke, churn: Path) -> None:
    X, _ = churn_frame(2_500, seed=3)
    X.to_parquet(churn / "input.parquet")
    result = cli("predict", "churn@champion", "input.parquet", "-o", "scored.parquet",
                 "--batch-rows", "1000", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows"] == 2_500 and report["batches"] == 3 and report["model_version"] == 1
    assert report["log_dropped"] == 0
    scored = pd.read_parquet(churn / "scored.parquet")
    assert list(scored.columns[:3]) == ["age", "income", "plan"]
    assert {"prediction", "proba_0", "proba_1"} <= set(scored.columns)
    logged = predictions("churn")
    assert len(logged) == 2_500 and set(logged.variant) == {"batch"}
    again = cli("predict", "churn@champion", "input.parquet", "-o", "scored.parquet")
    assert again.exit_code != 0 and "exists" in again.output


def test_predict_csv_directory_and_bad_rows(cli: Invoke, churn: Path) -> None:
    X, _ = churn_frame(300, seed=4)
    (churn / "in").mkdir()
    X.iloc[:100].to_csv(churn / "in" / "a.csv", index=False)
    X.iloc[100:].to_csv(churn / "in" / "b.csv", index=False)
    ok = cli("predict", "churn/2", "in", "-o", "out.csv", "--no-log")
    assert ok.exit_code == 0, ok.output
    assert len(pd.read_csv(churn / "out.csv")) == 300
    bad = X.assign(plan=["gold", *list(X.plan[1:])])
    bad.to_parquet(churn / "bad.parquet")
    failed = cli("predict", "churn/1", "bad.parquet", "-o", "bad-out.parquet")
    assert failed.exit_code != 0 and "unknown category 'gold'" in failed.output
    assert not (churn / "bad-out.parquet").exists()
    assert not list(churn.glob(".bad-out*"))  # no temporary file left behind


def _serve_refused(churn: Path, *args: str) -> str:
    """``ratchet serve ARGS`` in a real process that must refuse: its one error line. (A
    server that starts instead is killed by the timeout and fails the test.)"""
    from tests.serving.conftest import _free_port

    try:
        done = subprocess.run(
            [sys.executable, "-m", "ratchet.cli.main", "serve", *args, "--port",
             str(_free_port())], cwd=churn, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"ratchet serve {' '.join(args)} started a server instead of refusing")
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return errors[0]


def test_serve_refuses_a_model_its_deployment_does_not_serve(cli: Invoke, churn: Path) -> None:
    created = cli("deploy", "create", "churn", "--model", "churn@champion", "--shadow",
                  "churn/2")
    assert created.exit_code == 0, created.output
    line = _serve_refused(churn, "churn/1")
    assert "serves shadow:" in line and "churn@champion" in line, line
    assert "ratchet serve -d churn" in line
    assert "ratchet deploy set-plan churn --model churn/1" in line
    assert "no version 9; it has versions 1, 2, 3" in _serve_refused(churn, "churn/9")
    assert "no alias 'nope'" in _serve_refused(churn, "churn@nope")


@pytest.fixture
def churnpy(churn: Path) -> Path:
    """churnpy v1: the churn pipeline saved with cloudpickle (loading it runs code)."""
    from ratchet.registry import RegistryClient
    from tests.serving.conftest import _pipeline

    registry = RegistryClient(Workspace(load_settings()))
    X, y = churn_frame()
    with registry.tracking.start_run(experiment="churn") as run:
        registry.log_model(run.id, _pipeline(1.0, "ignore").fit(X, y), name="churnpy",
                           input_example=X, flavor="python")
    return churn


def test_build_refuses_an_untrusted_model_unless_trusted(cli: Invoke, churnpy: Path) -> None:
    assert_user_error(cli("build", "churnpy/1", "-o", "dist"), "--trust", "python-flavor")
    assert not (churnpy / "dist").exists()
    built = cli("build", "churnpy/1", "-o", "dist", "--trust", "--json")
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout)["trust"] is True
    assert json.loads((churnpy / "dist" / "bundle.json").read_text())["trust"] is True
    # A bundle that does not record trust (built before --trust existed) says which flag.
    info = json.loads((churnpy / "dist" / "bundle.json").read_text())
    (churnpy / "dist" / "bundle.json").write_text(json.dumps({**info, "trust": False}))
    assert_user_error(cli("serve", "--bundle", "dist"), "ratchet serve --bundle dist --trust")
