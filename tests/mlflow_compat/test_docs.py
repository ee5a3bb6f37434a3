"""docs/mlflow.md's example runs in each pinned MLflow client against ``ratchet server``,
and what it wrote is ratchet's: the run, the registered version and its alias."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mlflow_compat.conftest import RatchetServer

pytestmark = pytest.mark.e2e
PAGE = Path(__file__).resolve().parents[2] / "docs" / "mlflow.md"


def test_the_mlflow_page_runs(ratchet_server: RatchetServer, mlflow_python: str) -> None:
    assert ratchet_server.run_client(mlflow_python, "doc_page.py", str(PAGE)) == {"ok": True}
    runs = ratchet_server.cli_json("runs", "list", "--experiment", "iris")
    assert any(run["name"] == "logreg" and run["params"]["C"] == "0.5" for run in runs)
    model = ratchet_server.workspace.stores.registry.get_registered_model("iris-classifier")
    assert model.aliases["champion"] in range(1, (model.latest_version or 0) + 1)
