"""Deployments on SQLite and PostgreSQL: plan revisions, compare-and-swap, rollback."""

from __future__ import annotations

import time

import pytest

from ratchet.config import Settings
from ratchet.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from ratchet.serving.deployments import DeploymentClient
from ratchet.serving.traffic_plan import TrafficPlan
from tests.serving.conftest import register_churn
from tests.team_server import acted


@pytest.fixture
def deployments(settings: Settings) -> DeploymentClient:
    return DeploymentClient(register_churn(settings).workspace)


def _tick() -> None:
    time.sleep(0.005)  # plan and alias times are milliseconds: keep events ordered


def test_create_status_history(deployments: DeploymentClient) -> None:
    status = deployments.create("churn", "churn@champion", description="main endpoint")
    assert status.revision == 1 and status.versions == {"primary": ("churn", 1)}
    with pytest.raises(AlreadyExists):
        deployments.create("churn", "churn/2")
    _tick()
    plan = TrafficPlan.canary("churn@champion", "churn/2", 10, key="customer_id")
    status = deployments.set_plan("churn", plan, reason="canary v2")
    assert status.revision == 2 and status.plan == plan
    assert status.versions == {"primary": ("churn", 1), "canary": ("churn", 2)}
    history = deployments.history("churn")
    assert [(r.revision, r.reason) for r in history] == [(1, "created"), (2, "canary v2")]
    assert [d.name for d in deployments.list_deployments()] == ["churn"]


def test_bad_input_is_refused_before_anything_is_stored(deployments: DeploymentClient) -> None:
    with pytest.raises(InvalidInput, match="deployment name"):
        deployments.create("../etc", "churn/1")
    with pytest.raises(NotFound):
        deployments.create("churn", "churn/9")
    with pytest.raises(NotFound):
        deployments.create("churn", "nope@champion")
    assert deployments.list_deployments() == []
    deployments.create("churn", "churn/1")
    with pytest.raises(NotFound):
        deployments.set_plan("churn", "churn@staging")
    with pytest.raises(NotFound):
        deployments.set_plan("other", "churn/1")
    assert deployments.status("churn").revision == 1


def test_compare_and_swap_on_revision(deployments: DeploymentClient) -> None:
    deployments.create("churn", "churn/1")
    deployments.set_plan("churn", "churn/2", expected_revision=1)
    with pytest.raises(Conflict, match="revision 2"):
        deployments.set_plan("churn", "churn/3", expected_revision=1)
    assert deployments.status("churn").versions["primary"] == ("churn", 2)


def test_rollback_undoes_an_alias_move(deployments: DeploymentClient) -> None:
    deployments.create("churn", "churn@champion")
    _tick()
    deployments.registry.set_alias("churn", "champion", 2)
    assert deployments.status("churn").versions["primary"] == ("churn", 2)
    _tick()
    status = deployments.rollback("churn")
    assert status.versions["primary"] == ("churn", 1)
    assert status.plan.to_dict() == {"kind": "single", "model": "churn/1"}
    assert "alias move" in (status.reason or "")
    # The alias itself is untouched: the deployment is pinned until a new plan is set.
    assert deployments.registry.resolve("churn@champion").version.version == 2


def test_rollback_undoes_a_plan_change_and_can_be_undone(deployments: DeploymentClient) -> None:
    deployments.create("churn", "churn@champion")
    _tick()
    deployments.set_plan("churn", TrafficPlan.canary("churn@champion", "churn/3", 25))
    _tick()
    back = deployments.rollback("churn")
    assert back.plan.kind == "single" and back.versions == {"primary": ("churn", 1)}
    _tick()
    again = deployments.rollback("churn")
    assert again.plan.kind == "canary"
    assert again.versions == {"primary": ("churn", 1), "canary": ("churn", 3)}
    assert [r.revision for r in deployments.history("churn")] == [1, 2, 3, 4]


def test_nothing_to_roll_back(deployments: DeploymentClient) -> None:
    deployments.create("churn", "churn/1")
    with pytest.raises(Conflict, match="no change to roll back"):
        deployments.rollback("churn")


def test_feedback_upserts(settings: Settings, deployments: DeploymentClient) -> None:
    store = deployments.registry.tracking.workspace.stores.deployments
    assert store.record_feedback([("r1", 0, "churn", 1), ("r1", 1, "churn", "yes")]) == 2
    store.record_feedback([("r1", 0, "churn", 0)])  # a correction: the newest wins
    rows = {(f.request_id, f.row): f.value for f in store.feedback("churn")}
    assert rows == {("r1", 0): 0, ("r1", 1): "yes"}
    assert store.feedback("other") == []


def test_delete(deployments: DeploymentClient) -> None:
    deployments.create("churn", "churn/1")
    deployments.delete("churn")
    with pytest.raises(NotFound):
        deployments.status("churn")
    with pytest.raises(NotFound):
        deployments.delete("churn")


def test_feedback_given_twice_in_one_call_keeps_the_last(deployments: DeploymentClient) -> None:
    store = deployments.registry.tracking.workspace.stores.deployments
    assert store.record_feedback([("r1", 0, "churn", 1), ("r1", 0, "churn", 0)]) == 1
    assert [f.value for f in store.feedback("churn")] == [0]


def test_serving_a_model_is_refused_when_the_deployment_serves_another_plan(
        deployments: DeploymentClient) -> None:
    deployments.create("churn", TrafficPlan.shadowed("churn@champion", "churn/2"))
    with pytest.raises(Conflict) as refused:
        deployments.ensure_serving("churn", "churn/1")
    message = str(refused.value)
    assert "shadow" in message and "churn@champion" in message
    assert "ratchet serve -d churn" in message
    assert "ratchet deploy set-plan churn --model churn/1" in message
    assert deployments.status("churn").revision == 1  # nothing changed
    deployments.set_plan("churn", "models:/churn/1")
    # The same model, however it is spelled, is served as it is.
    assert deployments.ensure_serving("churn", "churn/1").versions == {"primary": ("churn", 1)}
    # A new deployment is created with exactly the model asked for.
    assert deployments.ensure_serving("fresh", "churn/2").plan == TrafficPlan.single("churn/2")


@pytest.mark.parametrize("ref, fragment", [
    ("churn/9", "no version 9; it has versions 1, 2, 3; aliases @champion (v1)"),
    ("churn@nope", "no alias 'nope'; it has versions 1, 2, 3"),
    ("nope/1", "'nope'"),
])
def test_serving_a_reference_that_does_not_resolve_is_refused(
        deployments: DeploymentClient, ref: str, fragment: str) -> None:
    deployments.create("churn", "churn/1")  # exists: the reference is still checked
    for name in ("churn", "other"):
        with pytest.raises(NotFound) as refused:
            deployments.ensure_serving(name, ref)
        assert fragment in str(refused.value)
    assert [d.name for d in deployments.list_deployments()] == ["churn"]


def test_the_module_functions_list_and_get_deployments(deployments: DeploymentClient) -> None:
    """`ratchet.serving.list_deployments()` gives what `get_deployment` gives, for every
    deployment; one whose alias was deleted is still listed (that variant unresolved)."""
    import ratchet.serving

    ws = deployments.workspace
    assert ratchet.serving.list_deployments(workspace=ws) == []
    ratchet.serving.create_deployment("b-pinned", "churn/2", description="pinned",
                                      workspace=ws)
    ratchet.serving.create_deployment("a-champion", "churn@champion", workspace=ws)
    listed = ratchet.serving.list_deployments(workspace=ws)
    assert [d.name for d in listed] == ["a-champion", "b-pinned"]
    assert listed == [ratchet.serving.get_deployment(d.name, workspace=ws) for d in listed]
    status = ratchet.serving.set_plan("b-pinned", "churn/3", reason="v3", actor="ana",
                                      expected_revision=1, workspace=ws)
    assert status.revision == 2 and status.versions == {"primary": ("churn", 3)}
    assert acted(deployments.history("b-pinned")[-1].actor, "ana")
    deployments.registry.delete_alias("churn", "champion")
    broken, pinned = ratchet.serving.list_deployments(workspace=ws)
    assert broken.name == "a-champion" and broken.versions == {}
    assert pinned.versions == {"primary": ("churn", 3)}
