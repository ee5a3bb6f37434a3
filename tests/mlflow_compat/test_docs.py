"""docs/mlflow.md's example runs in the pinned MLflow 3 client against ``ratchet server``,
and what it wrote is ratchet's: the run, the registered version and its alias. (One client
is enough for the page; the same calls run in 2.x in test_registry.py and test_tracking.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mlflow_compat.conftest import MLFLOW_ENVS, RatchetServer, env_python

# With the 3.x client's other tests (one xdist group): on their worker, whose launcher
# has imported that client's mlflow already, and whose server is up.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("mlflow3")]
PAGE = Path(__file__).resolve().parents[2] / "docs" / "mlflow.md"


def test_the_mlflow_page_runs(ratchet_server: RatchetServer) -> None:
    python = env_python("3.17.2", MLFLOW_ENVS["3.17.2"])
    assert ratchet_server.run_client(python, "doc_page.py", str(PAGE)) == {"ok": True}
    runs = ratchet_server.cli_json("runs", "list", "--experiment", "iris")
    assert any(run["name"] == "logreg" and run["params"]["C"] == "0.5" for run in runs)
    model = ratchet_server.workspace.stores.registry.get_registered_model("iris-classifier")
    assert model.aliases["champion"] in range(1, (model.latest_version or 0) + 1)
