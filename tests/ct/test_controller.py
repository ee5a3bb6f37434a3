"""The continuous-training controller end to end, through the backtest's SimulatedWorld
(a server, a prediction log and a clock in memory) against a real scratch store and a real
training pipeline (defined below, as a user's training module would be): starting a cycle
by request, the gate rejecting, approval, a failing retrain, the lease, a promotion."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import update

import ratchet
from ratchet.config import load_settings
from ratchet.ct.backtesting import SimulatedWorld
from ratchet.ct.controller import CHAMPION, IMPORTANCE_TAG, STATUS_TAG, Controller
from ratchet.ct.gate import GatePolicy
from ratchet.ct.policy import CTPolicy, DataPolicy, MonitorPolicy, RolloutPolicy, Trigger
from ratchet.errors import InvalidInput
from ratchet.serving.deployments import DeploymentClient
from ratchet.serving.traffic_plan import TrafficPlan
from ratchet.store import schema as t
from ratchet.store.ct_state_store import CTStateStore, LeaseLost
from ratchet.workspace import Workspace

MODEL, LABEL = "ctm", "y"
INPUTS = ["x1", "x2"]
HERE = "tests.ct.test_controller"
T0 = 1_714_564_800_000  # 2024-05-01T12:00:00Z
MINUTE = 60_000


# ------------------------------------------------------------------ the training pipeline
@ratchet.step(dataset={"output": "ctm-train"})
def training_window(data: str) -> pd.DataFrame:
    """The labeled window the controller prepared, recorded as the training data."""
    return ratchet.data.get(data).to_pandas()


@ratchet.step(model={"output": MODEL})
def fit(train: pd.DataFrame, C: float = 1.0) -> Any:
    model = LogisticRegression(C=C)
    model.fit(train[INPUTS], train[LABEL].astype(int))
    return model


@ratchet.pipeline(experiment="ctm-ct")
def training(data: str, C: float = 1.0) -> Any:
    return fit(training_window(data), C)


@ratchet.step
def crash(data: str) -> int:
    raise RuntimeError(f"out of memory reading {data}")


@ratchet.pipeline(experiment="ctm-ct")
def failing_training(data: str) -> Any:
    return crash(data)


@ratchet.step
def the_same_rows() -> pd.DataFrame:
    return frame(400, seed=1)


@ratchet.pipeline(experiment="ctm-ct")
def same_training(data: str) -> Any:
    """Learns nothing from the data it is given: cached, it is one version forever."""
    training_window(data)
    return fit(the_same_rows())


@ratchet.step
def count_rows(data: str) -> int:
    return len(ratchet.data.get(data).to_pandas())


@ratchet.pipeline(experiment="ctm-ct")
def training_without_a_model(data: str) -> Any:
    return count_rows(data)


# ------------------------------------------------------------------ data
def frame(n: int, *, flipped: bool = False, seed: int = 0) -> pd.DataFrame:
    """Two readings and a label; ``flipped``: the concept changed (the label inverted)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], LABEL: 1 - y if flipped else y})


def policy(**overrides: Any) -> CTPolicy:
    values: dict[str, Any] = {
        "model": MODEL, "pipeline": f"{HERE}:training",
        "triggers": (Trigger("manual"),),
        "gate": GatePolicy(margin=0.0, min_holdout=100),
        "rollout": RolloutPolicy(shadow_requests=40, canary_percent=50, canary_requests=30,
                                 min_labels=10, max_prediction_shift=None),
        "data": DataPolicy(label=LABEL, rows=400, holdout=150, min_rows=200),
        "monitor": MonitorPolicy(rows=100, min_rows=1_000_000),  # no monitor runs here
    }
    values.update(overrides)
    return CTPolicy(**values)


@dataclass
class Scene:
    """A served model, its log and its clock; the champion trained on the first concept."""

    home: Path
    deployments: DeploymentClient
    policy: CTPolicy
    world: SimulatedWorld
    served: int = 0
    seed: int = 100

    @property
    def registry(self) -> Any:
        return self.deployments.registry

    @property
    def store(self) -> CTStateStore:
        return self.registry.tracking.workspace.stores.ct_state

    def controller(self, holder: str = "main", **overrides: Any) -> Controller:
        chosen = policy(**overrides) if overrides else self.policy
        self.world.policy = chosen
        return Controller(chosen, self.world, holder=holder)

    def serve(self, n: int, *, flipped: bool = False) -> None:
        """``n`` requests, a minute apart, answered as the plan says; labels arrive at
        once (the clock moves past them)."""
        self.seed += 1
        batch = frame(n, flipped=flipped, seed=self.seed)
        times = T0 + (self.served + np.arange(n)) * MINUTE
        self.world.serve(batch[INPUTS], times, batch[LABEL].to_numpy(), self.served)
        self.served += n
        self.world.now = int(times[-1]) + MINUTE

    def request(self, kind: str, **kwargs: Any) -> None:
        """What ``ratchet ct retrain|approve|reject`` leaves, stamped with the world's
        clock (so the event log reads in order)."""
        self.store.request(MODEL, kind, at=self.world.now, **kwargs)

    def events(self) -> list[str]:
        return [e.kind for e in self.registry.tracking.workspace.stores.ct_events.history(MODEL)]

    def plan(self) -> dict[str, Any]:
        return self.deployments.status(MODEL).plan.to_dict()

    def champion(self) -> int:
        return self.registry.get_model(MODEL).aliases[CHAMPION]


def train(deployments: DeploymentClient, data: pd.DataFrame) -> int:
    from ratchet.data.catalog import DataClient
    from ratchet.pipelines.pipeline_definition import load_pipeline
    from ratchet.pipelines.runner import PipelineRunner

    tracking = deployments.registry.tracking
    version = DataClient(tracking.workspace).log(data, "ctm-initial")
    run = PipelineRunner(load_pipeline(f"{HERE}:training"),
                         {"data": f"{version.name}@{version.version}"},
                         workspace=tracking.workspace).run()
    return int(max(o.model[1] for s in run.steps for o in s.outputs if o.model is not None))


def _scene(home: Path) -> Scene:

    deployments = DeploymentClient(Workspace(load_settings()))
    chosen = policy()
    world = SimulatedWorld(chosen, deployments, INPUTS, label_delay_ms=0)
    world.now = T0
    return Scene(home, deployments, chosen, world)


@pytest.fixture
def bare(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Scene:
    """An empty store: no model yet. The environment is restored afterwards (a pipeline
    step points the process's client at the store it runs against)."""
    home = workspace / ".ratchet"
    monkeypatch.setenv("RATCHET_HOME", str(home))
    monkeypatch.setenv("RATCHET_DB", f"sqlite:///{home / 'ratchet.db'}")
    monkeypatch.setenv("RATCHET_ARTIFACTS", str(home / "artifacts"))
    return _scene(home)


@pytest.fixture
def scene(bare: Scene) -> Scene:
    """v1 trained on the first concept is the champion, served under MODEL@champion."""
    first = train(bare.deployments, frame(400, seed=1))
    bare.registry.set_alias(MODEL, CHAMPION, first, reason="test: initial model")
    bare.deployments.ensure(MODEL, TrafficPlan.single(f"{MODEL}@{CHAMPION}"))
    return bare


def single() -> dict[str, Any]:
    return TrafficPlan.single(f"{MODEL}@{CHAMPION}").to_dict()


# ------------------------------------------------------------------ tests
def test_without_a_champion_alias_the_controller_says_what_to_do(bare: Scene) -> None:
    """The deployment already serves a pinned version (served before the loop was set
    up), but there is no champion alias for the loop to move forward."""
    first = train(bare.deployments, frame(300, seed=1))  # v1 registered, but no alias
    bare.deployments.ensure(MODEL, TrafficPlan.single(f"{MODEL}/{first}"))
    with pytest.raises(InvalidInput, match=r"no 'champion' alias.*ratchet models alias"):
        bare.controller().tick()


def test_without_a_champion_alias_or_a_deployment_the_error_says_what_to_do(
        bare: Scene) -> None:
    train(bare.deployments, frame(300, seed=1))
    with pytest.raises(InvalidInput, match="champion"):
        bare.controller().tick()


def test_with_no_trigger_it_keeps_watching(scene: Scene) -> None:
    scene.serve(300)
    result = scene.controller().tick()
    assert result.held_by is None and result.state == "watching"
    assert result.steps == [("watching", "watching", None)]
    assert scene.events() == []
    assert len(scene.registry.list_versions(MODEL)) == 1


def test_a_manual_retrain_request_starts_a_cycle(scene: Scene) -> None:
    scene.serve(300)
    scene.request("retrain", actor="ana", reason="new sensors")
    result = scene.controller(gate=GatePolicy(margin=0.5, min_holdout=100)).tick()
    assert result.steps[:3] == [("watching", "training", "trigger"),
                                ("training", "training", "data"),
                                ("training", "gating", "retrained")]
    state = scene.store.get(MODEL)
    assert state is not None and state.cycle == 1 and state.requests == []  # answered
    cycle = state.data["last_cycle"]
    assert cycle["number"] == 1 and cycle["champion"] == 1 and cycle["challenger"] == 2
    assert cycle["requested_by"] == "ana"
    assert cycle["trigger"][0]["kind"] == "manual"
    # The challenger learned from the labeled log (the newest rows held out for the gate).
    assert cycle["rows"] == {"train": 250, "holdout": 150}
    events = scene.registry.tracking.workspace.stores.ct_events.history(MODEL)
    assert [e.kind for e in events][:4] == ["retrain-requested", "trigger", "data", "retrained"]
    assert events[0].actor == "ana" and events[0].summary == "retrain requested: new sensors"
    assert events[1].summary.startswith("retrain #1: requested by hand")
    assert events[1].evidence["champion"] == 1
    assert events[3].evidence["version"] == 2
    assert scene.registry.get_version(MODEL, 2).tags["ratchet.ct.cycle"] == "1"


def test_a_challenger_that_loses_the_gate_is_rejected(scene: Scene) -> None:
    scene.serve(300)
    scene.request("retrain")
    controller = scene.controller(gate=GatePolicy(margin=0.5, min_holdout=100))
    result = controller.tick()
    assert result.state == "watching"
    assert [e for _, _, e in result.steps] == ["trigger", "data", "retrained", "gate",
                                               "rejected"]
    assert scene.events()[-2:] == ["gate", "rejected"]
    tags = scene.registry.get_version(MODEL, 2).tags
    assert tags[STATUS_TAG] == "rejected" and "needs to be better" in tags["ratchet.ct.reason"]
    assert scene.champion() == 1
    assert scene.plan() == single()
    state = scene.store.get(MODEL)
    assert state is not None and state.data["last_cycle"]["gate"]["passed"] is False


def test_with_approval_it_waits_then_an_approval_starts_the_shadow(scene: Scene) -> None:
    scene.serve(400, flipped=True)  # the concept changed: a retrained model wins the gate
    scene.request("retrain")
    controller = scene.controller(approval=True)
    assert controller.tick().state == "awaiting_approval"
    assert controller.tick().steps == []  # nothing to do until someone answers
    assert scene.plan() == single()
    scene.request("approve", actor="bo", cycle=1)
    result = controller.tick()
    assert result.state == "shadow"
    assert [e for _, _, e in result.steps] == ["approved", "shadow-started"]
    assert scene.plan() == TrafficPlan.shadowed(f"{MODEL}@{CHAMPION}", f"{MODEL}/2").to_dict()
    state = scene.store.get(MODEL)
    assert state is not None and state.requests == []


def test_with_approval_a_rejection_ends_the_cycle(scene: Scene) -> None:
    scene.serve(400, flipped=True)
    scene.request("retrain")
    controller = scene.controller(approval=True)
    assert controller.tick().state == "awaiting_approval"
    scene.request("approve", actor="old", cycle=0)  # for another cycle: ignored
    scene.request("reject", actor="cy", reason="not on a Friday")
    result = controller.tick()
    assert result.state == "watching"
    assert [e for _, _, e in result.steps] == ["disapproved", "rejected"]
    tags = scene.registry.get_version(MODEL, 2).tags
    assert tags[STATUS_TAG] == "rejected"
    assert tags["ratchet.ct.reason"] == "rejected by cy: not on a Friday"
    assert scene.champion() == 1 and scene.plan() == single()


def test_a_retrain_whose_pipeline_fails_goes_back_to_watching(scene: Scene) -> None:
    scene.serve(300)
    scene.request("retrain")
    result = scene.controller(pipeline=f"{HERE}:failing_training").tick()
    assert result.state == "watching"
    assert [e for _, _, e in result.steps] == ["trigger", "data", "retrain-failed"]
    failed = scene.registry.tracking.workspace.stores.ct_events.history(
        MODEL, kinds=("retrain-failed",))
    assert len(failed) == 1 and "out of memory" in failed[0].evidence["error"]
    assert len(scene.registry.list_versions(MODEL)) == 1 and scene.plan() == single()


def test_a_pipeline_that_registers_nothing_fails_the_retrain(scene: Scene) -> None:
    scene.serve(300)
    scene.request("retrain")
    result = scene.controller(pipeline=f"{HERE}:training_without_a_model").tick()
    assert result.state == "watching"
    assert result.steps[-1][2] == "retrain-failed"
    [failed] = scene.registry.tracking.workspace.stores.ct_events.history(
        MODEL, kinds=("retrain-failed",))
    assert "registered no version of 'ctm'" in failed.evidence["error"]


def test_two_controllers_on_one_model_only_one_acts(scene: Scene) -> None:
    scene.serve(300)
    scene.request("retrain")
    first, second = scene.controller("host-a"), scene.controller("host-b")
    acted = second.tick()
    assert acted.held_by is None and acted.steps[0][2] == "trigger"
    before = scene.store.get(MODEL)
    result = first.tick()
    assert result.held_by == "host-b" and result.steps == [] and result.state is None
    assert "another controller holds the lease (host-b)" in result.describe()
    assert scene.store.get(MODEL) == before  # nothing was done
    assert scene.events().count("trigger") == 1
    second.release()
    taken = first.tick()
    assert taken.held_by is None
    assert scene.store.get(MODEL).lease_holder == "host-a"  # type: ignore[union-attr]
    assert second.tick().held_by == "host-a"


@pytest.fixture
def scene_on(client_backend: dict[str, str], bare: Scene,
             monkeypatch: pytest.MonkeyPatch) -> Scene:
    """The scene with its metadata on each client backend (SQLite, PostgreSQL, a live
    team server)."""
    for key, value in client_backend.items():
        monkeypatch.setenv(key, value)
    fresh = _scene(bare.home)
    first = train(fresh.deployments, frame(400, seed=1))
    fresh.registry.set_alias(MODEL, CHAMPION, first, reason="test: initial model")
    fresh.deployments.ensure(MODEL, TrafficPlan.single(f"{MODEL}@{CHAMPION}"))
    return fresh


def test_two_controllers_ticking_at_once_only_one_acts(scene_on: Scene) -> None:
    scene = scene_on
    scene.serve(300)
    scene.request("retrain")
    controllers = [scene.controller(f"host-{i}", gate=GatePolicy(margin=0.5))
                   for i in range(2)]
    barrier = threading.Barrier(len(controllers))
    results: list[Any] = [None] * len(controllers)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = controllers[i].tick()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(controllers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    held = [r for r in results if r is not None and r.held_by is not None]
    acted = [r for r in results if r is not None and r.held_by is None]
    assert len(held) == 1 and len(acted) == 1, results
    assert acted[0].state == "watching" and held[0].steps == []
    assert scene.events().count("trigger") == 1 and scene.events().count("rejected") == 1
    assert len(scene.registry.list_versions(MODEL)) == 2  # one retrain, not two


class Takeover:
    """A World that lets another controller take the lease while this one is mid-step
    (as if this one had stalled past its lease)."""

    def __init__(self, inner: SimulatedWorld, store: CTStateStore) -> None:
        self.inner, self.store = inner, store
        self.deployments = inner.deployments
        self.armed = True

    def now_ms(self) -> int:
        return self.inner.now_ms()

    def log_now_ms(self) -> int:
        return self.inner.log_now_ms()

    def logged(self, since_ms: int) -> pd.DataFrame:
        if self.armed:
            self.armed = False
            with self.store.db.write() as conn:
                conn.execute(update(t.ct_controllers).values(lease_expires_at=1))
            other = self.store.acquire(MODEL, "usurper", 60_000)
            assert other is not None
            self.store.commit(other, "usurper", state=other.state, data=other.data)
        return self.inner.logged(since_ms)

    def monitor(self, window: pd.DataFrame, model: tuple[str, int]) -> dict[str, Any]:
        return self.inner.monitor(window, model)


def test_a_controller_that_lost_its_lease_mid_step_commits_nothing(scene: Scene) -> None:
    scene.serve(300)
    scene.request("retrain")
    world = Takeover(scene.world, scene.store)
    controller = Controller(scene.policy, world, holder="slow")
    with pytest.raises(LeaseLost):
        controller.tick()
    state = scene.store.get(MODEL)
    assert state is not None and state.state == "watching" and state.lease_holder == "usurper"
    assert [r["kind"] for r in state.requests] == ["retrain"]  # still pending
    assert scene.events() == ["retrain-requested"]


def test_a_promotion_leaves_exactly_one_champion_and_a_single_plan(scene: Scene) -> None:
    scene.serve(400, flipped=True)  # the concept changed: the retrained model wins
    scene.request("retrain")
    controller = scene.controller()
    result = controller.tick()
    assert result.state == "shadow", result.describe()
    assert [e for _, _, e in result.steps][-2:] == ["gate", "shadow-started"]
    shadowed = TrafficPlan.shadowed(f"{MODEL}@{CHAMPION}", f"{MODEL}/2").to_dict()
    assert scene.plan() == shadowed
    assert controller.tick().steps == []  # no shadow traffic yet: waits
    scene.serve(60, flipped=True)
    result = controller.tick()
    assert result.state == "canary", result.describe()
    assert [e for _, _, e in result.steps] == ["shadow-passed", "canary-started"]
    assert scene.plan() == TrafficPlan.canary(f"{MODEL}@{CHAMPION}", f"{MODEL}/2",
                                              50).to_dict()
    assert scene.champion() == 1  # not yet
    scene.serve(100, flipped=True)
    result = controller.tick()
    assert result.state == "watching", result.describe()
    assert [e for _, _, e in result.steps] == ["canary-passed", "promoted"]
    assert scene.champion() == 2
    holders = [v.version for v in scene.registry.list_versions(MODEL) if CHAMPION in v.aliases]
    assert holders == [2]
    assert scene.plan() == single()
    assert scene.registry.get_version(MODEL, 2).tags[STATUS_TAG] == "promoted"
    # Permutation importance is stored with both versions the gate compared.
    for version in (1, 2):
        importance = json.loads(scene.registry.get_version(MODEL, version).tags[
            IMPORTANCE_TAG])
        assert importance["top_features"] and set(importance["top_features"]) <= {"x1", "x2"}
    # So is the winner's label-free estimator, fit on the holdout the gate judged it on.
    from ratchet.monitoring.estimation import load_estimator

    estimator = load_estimator(scene.registry, MODEL, 2)
    assert estimator is not None and "gate's holdout" in estimator.note
    assert load_estimator(scene.registry, MODEL, 1) is None
    assert scene.events() == ["retrain-requested", "trigger", "data", "retrained", "gate",
                              "shadow-started", "shadow-passed", "canary-started",
                              "canary-passed", "promoted"]
    # The plan moved single -> shadow -> canary -> single: one revision each, no repeats.
    plans = [r.plan for r in scene.deployments.history(MODEL)]
    assert plans[-3:] == [shadowed, TrafficPlan.canary(f"{MODEL}@{CHAMPION}", f"{MODEL}/2",
                                                        50).to_dict(), single()]
    state = scene.store.get(MODEL)
    assert state is not None and state.data["last_cycle"]["challenger"] == 2
    # Ticking again finds nothing to do: one champion, still.
    assert controller.tick().state == "watching" and scene.champion() == 2


# ------------------------------------------------------------------ answering and running
def test_approval_is_accepted_only_while_a_challenger_waits(scene: Scene) -> None:
    from ratchet.errors import NotFound

    workspace = scene.deployments.workspace
    with pytest.raises(NotFound):
        ratchet.ct.request_retrain("no-such-model", workspace=workspace)
    with pytest.raises(InvalidInput, match="no challenger is waiting for approval "
                                           r"\(the controller is not started\)"):
        ratchet.ct.approve(MODEL, workspace=workspace)
    scene.serve(400, flipped=True)
    ratchet.ct.request_retrain(MODEL, actor="ana", reason="new sensors", workspace=workspace)
    controller = scene.controller(approval=True)
    assert controller.tick().state == "awaiting_approval"
    ratchet.ct.approve(MODEL, actor="bo", workspace=workspace)
    state = scene.store.get(MODEL)
    assert state is not None
    assert [(r["kind"], r["actor"], r.get("cycle")) for r in state.requests] == [
        ("approve", "bo", 1)]  # it answers this cycle, not a later one
    assert [e for _, _, e in controller.tick().steps] == ["approved", "shadow-started"]
    with pytest.raises(InvalidInput, match=r"\(the controller is shadow\)"):
        ratchet.ct.reject(MODEL, workspace=workspace)
    # The record, read back as `ratchet ct status` / `history` show it.
    assert ratchet.ct.get_controller_state(MODEL, workspace=workspace).state == "shadow"
    with pytest.raises(NotFound, match="no controller has run for model 'other'"):
        ratchet.ct.get_controller_state("other", workspace=workspace)
    events = ratchet.ct.list_events(MODEL, workspace=workspace)  # oldest first
    requests = [e for e in events if e.kind.endswith("-requested")]  # at wall-clock time
    assert [(e.kind, e.actor) for e in requests] == [("retrain-requested", "ana"),
                                                     ("approve-requested", "bo")]
    kinds = [e.kind for e in events if e not in requests]  # at the world's time
    assert kinds[0] == "trigger" and kinds[-1] == "shadow-started"
    assert [e.kind for e in ratchet.ct.list_events(
        MODEL, kinds=["approved", "gate"], workspace=workspace)] == ["gate", "approved"]


def test_run_ticks_until_stopped_and_releases_its_lease(scene: Scene) -> None:
    scene.serve(300)
    controller = scene.controller()
    stop = threading.Event()
    seen: list[Any] = []

    def on_tick(result: Any) -> None:
        seen.append(result)
        if len(seen) == 3:
            stop.set()

    assert controller.run(0.01, stop, on_tick=on_tick) == 3
    assert [r.state for r in seen] == ["watching"] * 3 and all(r.error is None for r in seen)
    state = scene.store.get(MODEL)
    assert state is not None and state.lease_holder is None  # another can start at once
    assert controller.run(0.01, stop) == 0  # already stopped: no tick


def test_run_reports_a_failed_tick_and_keeps_going(bare: Scene) -> None:
    """No champion alias: each tick fails with what to do; the loop does not end."""
    train(bare.deployments, frame(300, seed=1))
    seen: list[Any] = []
    assert bare.controller().run(0.01, max_iterations=2, on_tick=seen.append) == 2
    assert [r.describe() for r in seen] == [seen[0].describe()] * 2
    assert seen[0].error is not None and "no 'champion' alias" in seen[0].error
    assert seen[0].describe().startswith(f"{MODEL}: model {MODEL!r} has no 'champion'")
    with pytest.raises(InvalidInput, match="interval= must be a positive number"):
        bare.controller().run(0)
    with pytest.raises(InvalidInput, match="max_iterations= must be a positive integer"):
        bare.controller().run(1, max_iterations=0)


def test_after_a_concept_change_the_canary_answers_shift_as_the_gate_expected(
        scene: Scene) -> None:
    """The new concept says "1" far more often, so the challenger's answers are distributed
    unlike the champion's: the gate measured that shift on its holdout, and the canary's
    shift guard (at 0.2, well under it) expects it instead of rolling back a better model."""

    def serve_new_concept(n: int) -> None:
        scene.seed += 1
        rng = np.random.default_rng(scene.seed)
        x = rng.normal(size=(n, 2))
        batch = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1],
                              LABEL: (x[:, 0] + 1.2 > 0).astype(int)})
        times = T0 + (scene.served + np.arange(n)) * MINUTE
        scene.world.serve(batch[INPUTS], times, batch[LABEL].to_numpy(), scene.served)
        scene.served += n
        scene.world.now = int(times[-1]) + MINUTE

    serve_new_concept(400)
    scene.request("retrain")
    controller = scene.controller(rollout=RolloutPolicy(
        shadow_requests=40, canary_percent=50, canary_requests=60, min_labels=10,
        max_prediction_shift=0.2))
    assert controller.tick().state == "shadow"
    state = scene.store.get(MODEL)
    assert state is not None
    expected = state.data["cycle"]["gate"]["expected_shift"]
    assert expected > 0.2  # judged alone, the live shift would be an alarm
    scene.world.label_delay_ms = 10**12  # no live labels: the shift alone is judged
    serve_new_concept(60)
    assert controller.tick().state == "canary"
    serve_new_concept(300)  # twice canary_requests on the canary: it stops waiting for labels
    result = controller.tick()
    assert result.state == "watching", result.describe()
    assert [e for _, _, e in result.steps] == ["canary-passed", "promoted"]
    passed = scene.registry.tracking.workspace.stores.ct_events.history(
        MODEL, kinds=("canary-passed",))[0].evidence
    assert passed["prediction_shift"]["statistic"] > 0.2


def test_a_young_deployment_trains_on_its_first_data_but_holds_out_only_new_rows(
        scene: Scene) -> None:
    """Too few production rows: the first champion's training rows top up the training
    side, never the holdout — graded on rows it learned, the champion would always win."""
    from ratchet.data.catalog import DataClient

    scene.serve(240)
    scene.request("retrain")
    controller = scene.controller(gate=GatePolicy(margin=0.5, min_holdout=100))
    controller.tick()
    state = scene.store.get(MODEL)
    assert state is not None
    cycle = state.data["last_cycle"]
    # 400 rows: 160 of the first training data and 240 production rows; half of those
    # (never more) held out, the other half learned from with the first rows.
    assert cycle["rows"] == {"train": 280, "holdout": 120}
    holdout = DataClient(scene.registry.workspace).get(cycle["holdout"]).to_pandas()
    served = frame(240, seed=scene.seed).tail(120)  # the newest production rows, as served
    np.testing.assert_allclose(holdout["x1"].to_numpy(), served["x1"].to_numpy())

    scene.serve(20)  # 260 production rows: half of them is short of this gate's 200
    scene.request("retrain")
    fewer = scene.controller(gate=GatePolicy(margin=0.5, min_holdout=200),
                             data=DataPolicy(label=LABEL, rows=400, holdout=250,
                                             min_rows=200))
    fewer.tick()
    skipped = scene.registry.tracking.workspace.stores.ct_events.history(
        MODEL, kinds=("retrain-skipped",))
    assert skipped and "the gate's holdout needs 200 the champion never trained on" in \
        skipped[-1].summary


def test_a_retrain_that_hands_back_the_champion_itself_is_skipped(bare: Scene) -> None:
    """A pipeline whose cached steps return the champion's own version (nothing new to
    learn): no gate of the champion against itself, and the champion is not tagged as a
    rejected challenger."""
    from ratchet.data.catalog import DataClient
    from ratchet.pipelines.pipeline_definition import load_pipeline
    from ratchet.pipelines.runner import PipelineRunner

    workspace = bare.registry.tracking.workspace
    first = DataClient(workspace).log(frame(400, seed=1), "ctm-initial")
    PipelineRunner(load_pipeline(f"{HERE}:same_training"),
                   {"data": f"{first.name}@{first.version}"}, workspace=workspace).run()
    bare.registry.set_alias(MODEL, CHAMPION, 1, reason="test")
    bare.deployments.ensure(MODEL, TrafficPlan.single(f"{MODEL}@{CHAMPION}"))
    bare.serve(300)
    bare.request("retrain")
    result = bare.controller(pipeline=f"{HERE}:same_training").tick()
    assert result.state == "watching"
    assert [e for _, _, e in result.steps][-1] == "retrain-skipped"
    assert "returned the champion itself (v1)" in bare.registry.tracking.workspace.stores.ct_events.history(MODEL)[-1].summary
    assert set(bare.registry.get_version(MODEL, 1).tags) & {STATUS_TAG,
                                                            "ratchet.ct.cycle"} == set()
