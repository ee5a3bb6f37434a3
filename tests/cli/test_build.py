"""``ratchet build``: a bundle from the command line, its summary, JSON and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratchet.workspace import Workspace
from tests.cli.conftest import Invoke, assert_user_error, strict_json


@pytest.fixture
def iris_model(project: Path) -> None:
    """``iris`` v1 (@champion) in the project's store, registered through the Python API."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from ratchet.config import load_settings
    from ratchet.registry.client import RegistryClient

    X, y = load_iris(return_X_y=True, as_frame=True)
    registry = RegistryClient(Workspace(load_settings()))
    run = registry.tracking.create_run("iris")
    model = LogisticRegression(max_iter=500).fit(X, y)
    registry.log_model(run.run_id, model, name="iris", input_example=X.head(5))
    registry.tracking.end_run(run.run_id)
    registry.set_alias("iris", "champion", 1)


def test_help(cli: Invoke) -> None:
    result = cli("build", "--help")
    assert result.exit_code == 0, result.output
    for option in ("--output", "--deployment", "--port", "--replicas", "--image",
                   "--overwrite", "--json"):
        assert option in result.stdout
    assert "bundle" in result.stdout


def test_build_prints_what_it_wrote(cli: Invoke, project: Path, iris_model: None) -> None:
    result = cli("build", "iris@champion", "-o", "dist/iris", "--port", "9000")
    assert result.exit_code == 0, result.output
    out = project / "dist" / "iris"
    for name in ("bundle.json", "requirements.txt", "Dockerfile", "k8s/deployment.yaml",
                 "k8s/service.yaml", "k8s/hpa.yaml", "model/ratchet-model.json"):
        assert (out / name).is_file(), name
        assert name in result.stdout
    assert str(out) in result.stdout
    assert "models:/iris/1 (from iris@champion)" in result.stdout
    assert f"ratchet serve --bundle {out}" in result.stdout
    assert result.stderr == ""


def test_build_json(cli: Invoke, project: Path, iris_model: None) -> None:
    result = cli("build", "models:/iris/1", "-o", "out", "--deployment", "iris-api",
                 "--replicas", "3", "--image", "registry.example.com/iris:1", "--json")
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    assert data["directory"] == str(project / "out")
    assert (data["model_name"], data["model_version"], data["deployment"]) == \
        ("iris", 1, "iris-api")
    assert data["image"] == "registry.example.com/iris:1"
    assert "Dockerfile" in data["files"]
    assert strict_json((project / "out" / "bundle.json").read_text())["deployment"] == "iris-api"


def test_missing_model_is_one_line(cli: Invoke, project: Path) -> None:
    assert_user_error(cli("build", "nope@champion", "-o", "dist/nope"), "nope")
    assert not (project / "dist" / "nope").exists()


def test_existing_bundle_needs_overwrite(cli: Invoke, project: Path, iris_model: None) -> None:
    assert cli("build", "iris/1", "-o", "dist").exit_code == 0
    assert_user_error(cli("build", "iris/1", "-o", "dist"), "not empty", "--overwrite")
    result = cli("build", "iris/1", "-o", "dist", "--overwrite")
    assert result.exit_code == 0, result.output


def test_bad_options_are_usage_errors(cli: Invoke) -> None:
    missing = cli("build", "iris/1")
    assert missing.exit_code == 2 and "--output" in missing.output  # -o is required
    bad_port = cli("build", "iris/1", "-o", "x", "--port", "0")
    assert bad_port.exit_code == 2 and "--port" in bad_port.output
