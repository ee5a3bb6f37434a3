"""A model whose name is not a portable file name (a space, ``?``) retrains: the
controller's datasets are named from a slug of the model's name plus a hash of it."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import ratchet
from ratchet.ct.backtesting import SimulatedWorld
from ratchet.ct.controller import CHAMPION, Controller, ct_dataset_name
from ratchet.data.catalog import DataClient
from ratchet.errors import InvalidInput
from ratchet.names import check_portable_name
from ratchet.pipelines.pipeline_definition import load_pipeline
from ratchet.pipelines.runner import PipelineRunner
from ratchet.serving.traffic_plan import TrafficPlan
from tests.ct import test_controller as ct
from tests.ct.test_controller import bare  # noqa: F401  (the fixture)

SPACED = "churn model"
HERE = "tests.ct.test_controller_names"


@ratchet.step(model={"output": SPACED})
def fit_spaced(train: pd.DataFrame) -> Any:
    return LogisticRegression().fit(train[ct.INPUTS], train[ct.LABEL].astype(int))


@ratchet.pipeline(experiment="churn-model-ct")
def spaced_training(data: str) -> Any:
    return fit_spaced(ct.training_window(data))


def test_portable_names_keep_their_datasets() -> None:
    assert ct_dataset_name("churn", "train") == "churn-ct-train"
    assert ct_dataset_name("churn.v2_a-b", "holdout") == "churn.v2_a-b-ct-holdout"


@pytest.mark.parametrize("name", ["churn model", "a?b", "a b", "\uff43hurn \u00fcn\u00efcode", "?#%",
                                  "<img src=x> {{7*7}}", "x" * 256, "modèle/é"])
def test_other_names_get_a_portable_stable_name_of_their_own(name: str) -> None:
    train, holdout = ct_dataset_name(name, "train"), ct_dataset_name(name, "holdout")
    assert check_portable_name("dataset", train) == train
    assert train.endswith("-ct-train") and holdout.endswith("-ct-holdout")
    assert train == ct_dataset_name(name, "train")  # stable
    assert train[:-len("-ct-train")] == holdout[:-len("-ct-holdout")]


def test_names_with_the_same_slug_do_not_share_a_history() -> None:
    names = ["a?b", "a b", "a  b", "a-b", "a/b"]
    datasets = {ct_dataset_name(n, "train") for n in names}
    assert len(datasets) == len(names)
    assert ct_dataset_name("a?b", "train").startswith("a-b-")
    long = ["x" * 200 + "?1", "x" * 200 + "?2"]  # the slug is cut: the hash still differs
    assert ct_dataset_name(long[0], "train") != ct_dataset_name(long[1], "train")


@pytest.fixture
def bare_on(client_backend: dict[str, str], bare: ct.Scene,  # noqa: F811
            monkeypatch: pytest.MonkeyPatch) -> ct.Scene:
    """An empty scene with its metadata on each client backend (SQLite, PostgreSQL, a
    live team server: the model's name travels in URLs there)."""
    for key, value in client_backend.items():
        monkeypatch.setenv(key, value)
    return ct._scene(bare.home)


def test_a_model_with_a_space_in_its_name_retrains_through_a_tick(bare_on: ct.Scene) -> None:
    scene = bare_on
    workspace = scene.registry.tracking.workspace
    with pytest.raises(InvalidInput):  # what the controller used to log: refused
        DataClient(workspace).log(ct.frame(10), f"{SPACED}-ct-train")
    version = DataClient(workspace).log(ct.frame(400, seed=1), "churn-initial")
    PipelineRunner(load_pipeline(f"{HERE}:spaced_training"),
                   {"data": f"{version.name}@{version.version}"}, workspace=workspace).run()
    scene.registry.set_alias(SPACED, CHAMPION, 1, reason="test: initial model")
    scene.deployments.ensure("churn-model", TrafficPlan.single(f"{SPACED}@{CHAMPION}"))
    policy = ct.policy(model=SPACED, pipeline=f"{HERE}:spaced_training",
                       deployment="churn-model")
    world = SimulatedWorld(policy, scene.deployments, ct.INPUTS, label_delay_ms=0)
    world.now = ct.T0
    ct.Scene(scene.home, scene.deployments, policy, world).serve(400, flipped=True)
    scene.store.request(SPACED, "retrain", actor="ana", at=world.now)

    result = Controller(policy, world, holder="main").tick()

    assert result.steps[:3] == [("watching", "training", "trigger"),
                                ("training", "training", "data"),
                                ("training", "gating", "retrained")]
    state = scene.store.get(SPACED)
    assert state is not None and state.state != "training" and state.cycle == 1
    train = ct_dataset_name(SPACED, "train")
    events = workspace.stores.ct_events.history(SPACED)
    retrained = next(e for e in events if e.kind == "retrained")
    assert retrained.evidence["train"] == f"{train}@1"
    assert retrained.evidence["holdout"] == f"{ct_dataset_name(SPACED, 'holdout')}@1"
    assert DataClient(workspace).get(f"{train}@1").to_pandas().shape[0] == 250
    assert len(scene.registry.list_versions(SPACED)) >= 2  # the challenger was trained
