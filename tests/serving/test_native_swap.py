"""A real `ratchet serve` keeps serving v1 when its alias moves to a LightGBM v2 whose
model file crashes the native parser: the load is refused in a probe process."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import lightgbm as lgb

from ratchet.config import Settings
from ratchet.packaging import save_model
from ratchet.registry import RegistryClient
from ratchet.workspace import Workspace
from tests.serving.conftest import churn_frame, running_server, wait_until


def _register_lightgbm(registry: RegistryClient, tmp: Path, *, mutate: bool) -> int:
    X, y = churn_frame()
    X = X[["age", "income"]].astype(float)
    directory = tmp / f"lgbm-{'bad' if mutate else 'good'}"
    save_model(lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y), directory, input_example=X)
    if mutate:  # the mutation, in a file whose registered hash matches it
        path = directory / "model.txt"
        path.write_text(
            re.sub(r"right_child=-?\d+", "right_child=99999999999", path.read_text(), count=1)
        )
    with registry.tracking.start_run(experiment="native") as run:
        registry.tracking.log_artifacts(run.id, directory, "model")
    return registry.register(f"runs:/{run.id}/model", "lgbm").version


def test_server_keeps_serving_v1_when_v2_crashes_the_parser(
    serving_settings: Settings, tmp_path: Path
) -> None:
    registry = RegistryClient(Workspace(serving_settings))
    assert _register_lightgbm(registry, tmp_path, mutate=False) == 1
    assert _register_lightgbm(registry, tmp_path, mutate=True) == 2
    registry.set_alias("lgbm", "champion", 1)
    row = {"age": 52.0, "income": 61.5}

    def predict(url: str) -> httpx.Response:
        return httpx.post(f"{url}/predict", json={"inputs": [row]}, timeout=30)

    with running_server(
        serving_settings, tmp_path, "lgbm@champion", "--poll-interval", "0.1"
    ) as url:
        assert predict(url).json()["model_version"] == 1
        registry.set_alias("lgbm", "champion", 2)
        log = next(tmp_path.glob("server-*.log"))
        wait_until(
            lambda: "killed a probe process" in log.read_text(),
            timeout=120,
            what="the refusal of v2 in the server log",
        )
        for _ in range(5):
            response = predict(url)
            assert response.status_code == 200, response.text
            assert response.json()["model_version"] == 1
        assert httpx.get(f"{url}/health/ready", timeout=5).status_code == 200
        assert "model.txt" in log.read_text()
