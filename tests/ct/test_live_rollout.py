"""The rollout against a real `ratchet serve` process: a canary that raises on some inputs,
or whose live accuracy is worse, is rolled back by the controller by itself, and no caller
sees a failure (a canary that raises is answered by the primary)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from ratchet.config import Settings
from ratchet.ct.controller import CHAMPION, STATUS_TAG, Controller
from ratchet.ct.live_world import LiveWorld
from ratchet.ct.policy import CTPolicy, MonitorPolicy, RolloutPolicy
from ratchet.registry import RegistryClient
from ratchet.serving.deployments import DeploymentClient
from ratchet.serving.traffic_plan import TrafficPlan
from tests.serving.conftest import _pipeline, churn_frame, running_server, wait_until

HOLDER = "live-test"


def _bad_model(registry: RegistryClient) -> int:
    """A challenger that learned the opposite of the rule: its live accuracy is poor."""
    X, y = churn_frame()
    model = _pipeline(1.0, "ignore").fit(X, 1 - y)
    with registry.tracking.start_run(experiment="churn") as run:
        version = registry.log_model(run.id, model, name="churn", input_example=X)
    return int(version.version)  # type: ignore[union-attr]


@pytest.mark.parametrize("case", ["raises", "worse"])
def test_a_bad_canary_is_rolled_back_by_itself_and_no_caller_fails(
        case: str, churn_registry: RegistryClient, serving_settings: Settings,
        tmp_path: Path) -> None:
    registry = churn_registry  # v1 champion; v3 raises on plans it never saw
    challenger = 3 if case == "raises" else _bad_model(registry)
    deployments = DeploymentClient(registry.workspace)
    deployments.ensure("churn", TrafficPlan.single(f"churn@{CHAMPION}"))
    policy = CTPolicy(
        model="churn", pipeline="unused.py:training",
        rollout=RolloutPolicy(shadow_requests=0, canary_percent=50, canary_requests=60,
                              max_error_rate=0.05, min_labels=20, max_accuracy_drop=0.05,
                              max_prediction_shift=None),
        monitor=MonitorPolicy(rows=200, min_rows=50, multivariate=False))
    # A cycle whose challenger passed its gate, about to start its canary.
    store = registry.tracking.workspace.stores.ct_state
    state = store.acquire("churn", HOLDER, 60_000)
    assert state is not None
    store.commit(state, HOLDER, state="canary", cycle=1, data={
        "watch": {}, "cycle": {"number": 1, "champion": 1, "challenger": challenger}})
    controller = Controller(policy, LiveWorld(policy, deployments), holder=HOLDER)

    X, y = churn_frame(600, seed=7)
    if case == "raises":  # a quarter of the rows carry a plan v3's encoder never saw
        X.loc[X.index % 4 == 0, "plan"] = "enterprise"
    statuses: list[int] = []
    with running_server(serving_settings, tmp_path, "--deployment", "churn",
                        "--unknown-category", "flag", "--poll-interval", "0.1",
                        "--log-flush", "0.1") as url, httpx.Client(base_url=url,
                                                                 timeout=30) as http:
        assert controller.tick().state == "canary"  # the plan is now canary at 50%
        wait_until(lambda: http.get("/v2/models/churn").status_code == 200, what="ready")
        wait_until(lambda: _serves(http, challenger), timeout=30, what="canary loaded")
        stop = threading.Event()
        ticker = threading.Thread(target=_tick_until_done, args=(controller, stop))
        ticker.start()
        try:
            for i, (row, label) in enumerate(zip(X.to_dict(orient="records"), y,
                                                 strict=True)):
                if stop.is_set():
                    break
                response = http.post("/predict", json={"inputs": [row]},
                                     headers={"X-Request-ID": f"q{i}"})
                statuses.append(response.status_code)
                http.post("/feedback", json={"request_id": f"q{i}", "row": 0,
                                             "value": int(label)})
            wait_until(stop.is_set, timeout=60, what="the controller to decide")
        finally:
            stop.set()
            ticker.join()

    assert statuses and set(statuses) == {200}, "a caller saw a failure"
    final = store.get("churn")
    assert final is not None and final.state == "watching"
    kinds = [e.kind for e in registry.tracking.workspace.stores.ct_events.history("churn")]
    assert kinds.count("canary-failed") == 1 and kinds.count("rolled-back") == 1
    assert "promoted" not in kinds
    failed = next(e for e in registry.tracking.workspace.stores.ct_events.history("churn")
                  if e.kind == "canary-failed")
    if case == "raises":
        assert "rows failed" in failed.summary, failed.summary
    else:
        assert "live accuracy" in failed.summary, failed.summary
    assert registry.resolve(f"models:/churn@{CHAMPION}").version.version == 1  # type: ignore[union-attr]
    assert registry.get_version("churn", challenger).tags[STATUS_TAG] == "rolled-back"
    assert deployments.status("churn").plan.to_dict() == \
        TrafficPlan.single(f"churn@{CHAMPION}").to_dict()


def _serves(http: httpx.Client, version: int) -> bool:
    """Some answer comes from ``version`` (the server picked up the canary plan)."""
    for _ in range(20):
        response = http.post("/predict", json={"inputs": [
            {"age": 30, "income": 50.0, "plan": "basic"}]})
        if response.headers.get("X-Model-Version") == str(version):
            return True
    return False


def _tick_until_done(controller: Controller, stop: threading.Event) -> Any:
    while not stop.is_set():
        if controller.tick().state == "watching":
            stop.set()
            return
        stop.wait(0.3)
