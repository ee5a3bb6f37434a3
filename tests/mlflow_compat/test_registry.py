"""The model registry through the real MLflow client against ``ratchet server``; then from
ratchet's side: the versions are ratchet versions, aliases are one thing both ways, and
``ratchet serve`` serves the MLflow-registered (pickled) model only with ``--trust``."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.mlflow_compat.conftest import RatchetServer
from tests.mlflow_compat.steps import error_code, value
from tests.team_server import free_port

pytestmark = pytest.mark.e2e

SERVE_START_TIMEOUT_S = 90


def model_name(mlflow_version: str) -> str:
    return f"compat-{mlflow_version}-iris"


@pytest.fixture(scope="module")
def report(ratchet_server: RatchetServer, mlflow_python: str,
           mlflow_version: str) -> dict[str, Any]:
    return ratchet_server.run_client(mlflow_python, "registry.py", f"compat-{mlflow_version}",
                                     model_name(mlflow_version))


def test_log_model_registers_version_1(report: dict[str, Any]) -> None:
    logged = value(report, "log_and_register")
    assert logged["registered_version"] == "1"
    if value(report, "mlflow3"):
        assert logged["model_id"] and logged["model_uri"] == f"models:/{logged['model_id']}"
    else:
        assert logged["model_uri"] == f"runs:/{logged['run_id']}/model"


def test_alias_and_get_by_alias(report: dict[str, Any], mlflow_version: str) -> None:
    logged = value(report, "log_and_register")
    got = value(report, "alias")
    by_alias = got["by_alias"]
    assert (by_alias["name"], by_alias["version"]) == (model_name(mlflow_version), "1")
    assert by_alias["run_id"] == logged["run_id"]
    assert by_alias["status"] == "READY" and by_alias["current_stage"] == "None"
    assert by_alias["aliases"] == ["champion"]
    if value(report, "mlflow3"):  # the version's files are the logged model's
        assert by_alias["source"] == f"models:/{logged['model_id']}"
    else:  # the run's artifacts, through the proxy
        assert by_alias["source"] == (f"mlflow-artifacts:/{value(report, 'experiment_id')}/"
                                      f"{logged['run_id']}/artifacts/model")
    assert got["model_aliases"] == {"champion": "1"}
    assert [v["version"] for v in got["latest"]] == ["1"]


def test_register_the_runs_model_again(report: dict[str, Any]) -> None:
    again = value(report, "register_again")
    assert again["version"] == "2"
    assert again["run_id"] == value(report, "log_and_register")["run_id"]


def test_tags_and_descriptions(report: dict[str, Any]) -> None:
    assert value(report, "tags") == {"model_tags": {"team": "compat"},
                                     "description": "iris, through MLflow",
                                     "version_tags": {"validated": "yes"},
                                     "version_description": "first"}


def test_search_and_download_uri(report: dict[str, Any], mlflow_version: str) -> None:
    got = value(report, "search")
    name = model_name(mlflow_version)
    assert got["exact"] == [name] and name in got["like"]
    assert got["versions"] == ["1", "2"] and got["by_run"] == ["1", "2"]
    assert got["download_uri"].startswith("mlflow-artifacts:/")


def test_pyfunc_loads_by_alias_and_predicts_the_same(report: dict[str, Any]) -> None:
    original = value(report, "log_and_register")["predictions"]
    loaded = value(report, "load_by_alias")
    assert loaded["predictions"] == original
    assert loaded["by_version"] == original


def test_registry_errors(report: dict[str, Any]) -> None:
    got = value(report, "errors")
    assert error_code(got["missing_model"]) == "RESOURCE_DOES_NOT_EXIST"
    assert got["missing_model"]["status"] == 404
    assert error_code(got["duplicate_model"]) == "RESOURCE_ALREADY_EXISTS"
    # MLflow's own server answers a missing alias so (mlflow/store/model_registry).
    assert error_code(got["missing_alias"]) == "INVALID_PARAMETER_VALUE"
    assert got["missing_alias"]["status"] == 400
    assert error_code(got["missing_version"]) == "RESOURCE_DOES_NOT_EXIST"


def test_delete_alias(report: dict[str, Any]) -> None:
    assert value(report, "delete_alias") == {"champion": "1"}


# -- ratchet's side ------------------------------------------------------------------------

def test_versions_are_ratchet_versions(ratchet_server: RatchetServer, report: dict[str, Any],
                                       mlflow_version: str) -> None:
    from ratchet.registry.client import RegistryClient

    value(report, "tags")  # every MLflow step ran
    name = model_name(mlflow_version)
    run_id = value(report, "log_and_register")["run_id"]
    registry = ratchet_server.workspace.client(RegistryClient)
    first = registry.get_version(name, 1)
    assert first.run_id == run_id and first.aliases == ("champion",)
    assert first.content_hash and first.flavor
    assert [v.version for v in registry.list_versions(name)] == [1, 2]
    listed = ratchet_server.cli_json("models", "versions", name)
    assert [v["version"] for v in listed] == [1, 2]
    moves = registry.alias_history(name, "champion")
    assert [m.to_version for m in moves] == [1]


def test_aliases_are_one_thing_both_ways(ratchet_server: RatchetServer, report: dict[str, Any],
                                         mlflow_python: str, mlflow_version: str) -> None:
    """An alias ratchet moves is the alias MLflow's client reads and loads."""
    name = model_name(mlflow_version)
    logged = value(report, "log_and_register")
    ratchet_server.cli("models", "alias", "set", name, "challenger", "2",
                       "--reason", "moved by ratchet")
    seen = ratchet_server.run_client(mlflow_python, "registry_check.py", name, "challenger",
                                     json.dumps(logged["rows"]))
    assert value(seen, "alias") == {"version": "2",
                                    "aliases": {"champion": "1", "challenger": "2"}}
    assert value(seen, "load") == logged["predictions"]


def test_ratchet_serve_needs_trust_then_serves(ratchet_server: RatchetServer,
                                               report: dict[str, Any],
                                               mlflow_version: str) -> None:
    """The MLflow-registered model is pickled: `ratchet serve` refuses it without --trust
    and, with it, answers /predict and /invocations as the model predicts."""
    name = model_name(mlflow_version)
    logged = value(report, "log_and_register")
    value(report, "alias")
    refused = ratchet_server.cli("serve", f"{name}@champion", "--port", str(free_port()),
                                 check=False, timeout=90)
    assert refused.returncode != 0
    assert "--trust" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr

    with served(ratchet_server, f"{name}@champion", "--trust") as url:
        rows = logged["rows"]
        answer = post_json(f"{url}/predict", {"inputs": rows})
        assert [int(p) for p in answer["predictions"]] == logged["predictions"]
        assert answer["model_name"] == name and answer["model_version"] == 1
        mlflow_style = post_json(f"{url}/invocations", {"dataframe_records": rows})
        assert [int(p) for p in mlflow_style["predictions"]] == logged["predictions"]


def test_safety_follows_mlflows_format(ratchet_server: RatchetServer, report: dict[str, Any],
                                       mlflow_version: str) -> None:
    """A pickled MLflow model is unsafe in ratchet. MLflow 3 saves scikit-learn models with
    skops by default: ratchet loads those without running code, so `ratchet serve` needs
    no --trust for them."""
    from ratchet.registry.client import RegistryClient

    registry = ratchet_server.workspace.client(RegistryClient)
    logged = value(report, "log_and_register")
    pickled = registry.get_version(model_name(mlflow_version), 1)
    assert pickled.flavor == "mlflow" and pickled.manifest.get("safe") is False
    if not value(report, "mlflow3"):
        return  # MLflow 2 has no skops format
    name = f"{model_name(mlflow_version)}-skops"
    got = value(report, "skops")
    assert got["predictions"] == logged["predictions"]
    assert registry.get_version(name, 1).manifest.get("safe") is True
    with served(ratchet_server, f"{name}/1") as url:
        answer = post_json(f"{url}/predict", {"inputs": logged["rows"]})
        assert [int(p) for p in answer["predictions"]] == got["predictions"]


@contextlib.contextmanager
def served(ratchet_server: RatchetServer, model: str, *flags: str) -> Iterator[str]:
    """``ratchet serve MODEL`` (remote mode, on a free port) until the block ends."""
    port = free_port()
    log = ratchet_server.root / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "from ratchet.cli.main import main; main()", "serve",
             model, "--port", str(port), "--no-log", *flags],
            env=ratchet_server.remote_env(), cwd=ratchet_server.root, stdout=out,
            stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Any) -> None:
    deadline = time.monotonic() + SERVE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"ratchet serve exited ({process.returncode}):\n"
                        f"{log.read_text(errors='replace')[-3000:]}", pytrace=False)
        try:
            with urllib.request.urlopen(f"{url}/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(f"ratchet serve was not ready in {SERVE_START_TIMEOUT_S} s:\n"
                f"{log.read_text(errors='replace')[-3000:]}", pytrace=False)


def post_json(url: str, body: Any) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"POST {url} answered {exc.code}: {exc.read()[:2000]!r}") from None
