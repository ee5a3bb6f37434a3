"""CT policies from Python and YAML, every field checked; triggers against observations."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from ratchet.ct.gate import GatePolicy
from ratchet.ct.policy import (
    DRIFT,
    MANUAL,
    CTPolicy,
    RolloutPolicy,
    Trigger,
    load_policy,
    policy_from_dict,
)
from ratchet.ct.triggers import Observations, evaluate_triggers
from ratchet.errors import InvalidInput

YAML = """\
model: churn
pipeline: flows:training
params: {days: 30}
triggers:
  - drift
  - {performance: accuracy, below: 0.7}
  - {performance: log_loss, drop: 0.05}
  - {schedule: "0 3 * * 1"}
  - {new_labels: 5000}
  - manual
cooldown: 6h
max_retrains_per_day: 2
gate: {metric: accuracy, margin: 0.01, slices: [plan], latency_budget_ms: 20}
rollout: {shadow_requests: 500, canary_percent: 10, canary_requests: 1000}
approval: true
"""
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_a_yaml_policy_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "churn.yaml"
    path.write_text(YAML)
    policy = load_policy(path)
    assert policy.deployment_name == "churn" and policy.params == {"days": 30}
    assert [t.describe() for t in policy.triggers] == [
        "drift", "accuracy below 0.7", "log_loss dropping by 0.05", "schedule '0 3 * * 1' (UTC)",
        "5000 new labeled rows", "manual"]
    assert policy.cooldown == timedelta(hours=6) and policy.approval
    assert policy.gate == GatePolicy(metric="accuracy", margin=0.01, slices=("plan",),
                                     latency_budget_ms=20)
    assert policy.rollout.canary_percent == 10
    assert policy_from_dict(policy.to_dict()) == policy
    assert yaml.safe_load(yaml.safe_dump(policy.to_dict())) == policy.to_dict()


@pytest.mark.parametrize("change, message", [
    ({"model": None}, "policy model"),
    ({"pipeline": "flows.training"}, "module:name"),
    ({"triggers": []}, "at least one"),
    ({"triggers": ["sometimes"]}, "triggers[0]"),
    ({"triggers": [{"performance": "accuracy"}]}, "exactly one of below"),
    ({"triggers": [{"performance": "accuracy", "below": "high"}]}, "expected a number"),
    ({"triggers": [{"schedule": "every day"}]}, "cron"),
    ({"triggers": [{"new_labels": 0}]}, "new_labels"),
    ({"cooldown": "soon"}, "cooldown"),
    ({"max_retrains_per_day": 0}, "max_retrains_per_day"),
    ({"gate": {"margin": -1}}, "margin"),
    ({"gate": {"metrik": "f1"}}, "gate: unknown field"),
    ({"rollout": {"canary_percent": 0}}, "canary_percent"),
    ({"retries": 3}, "unknown field(s) retries"),
    ({"data": {"label": "y", "timestamp": "y"}}, "data.timestamp must be a column name"),
    ({"data": {"timestamp": ""}}, "data.timestamp must be a column name"),
])
def test_mistakes_name_the_field(change: dict, message: str) -> None:
    data = {"model": "churn", "pipeline": "flows:training", **change}
    with pytest.raises(InvalidInput, match=re.escape(message)):
        policy_from_dict(data)


def test_bad_yaml_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(InvalidInput, match="invalid YAML"):
        load_policy(tmp_path / "bad.yaml")
    with pytest.raises(InvalidInput, match="no such policy file"):
        load_policy(tmp_path / "none.yaml")


def policy(**kwargs: object) -> CTPolicy:
    return policy_from_dict({"model": "churn", "pipeline": "flows:training", **kwargs})


def test_each_trigger_fires_on_its_own_evidence() -> None:
    p = policy(triggers=["drift", {"performance": "accuracy", "below": 0.7},
                         {"performance": "accuracy", "drop": 0.05}, {"new_labels": 100},
                         {"schedule": "0 3 * * *"}, "manual"], cooldown="0s")
    quiet = Observations(NOW, monitor_verdict="ok", performance={"accuracy": 0.8},
                         baseline={"accuracy": 0.82}, new_labels=10,
                         last_checked_at=NOW - timedelta(hours=1))
    assert not evaluate_triggers(p, quiet).retrain
    cases = {
        "drift": Observations(NOW, monitor_verdict="drift"),
        "performance": Observations(NOW, performance={"accuracy": 0.65}),
        "new_labels": Observations(NOW, new_labels=100),
        "schedule": Observations(NOW, last_checked_at=NOW - timedelta(hours=10)),
        "manual": Observations(NOW, manual=True),
    }
    for kind, obs in cases.items():
        decision = evaluate_triggers(p, obs)
        assert decision.retrain and [f.kind for f in decision.fired] == [kind], kind
    dropped = evaluate_triggers(p, Observations(NOW, performance={"accuracy": 0.74},
                                                baseline={"accuracy": 0.81}))
    assert dropped.retrain and "0.0700 worse" in dropped.fired[0].reason
    # Lower-is-better metrics fire upwards.
    loss = policy(triggers=[{"performance": "log_loss", "below": 0.5}])
    assert evaluate_triggers(loss, Observations(NOW, performance={"log_loss": 0.6})).retrain
    assert not evaluate_triggers(loss, Observations(NOW, performance={"log_loss": 0.4})).retrain


def test_cooldown_and_daily_limit_block_automatic_triggers_not_manual() -> None:
    p = policy(triggers=[DRIFT, MANUAL], cooldown="6h", max_retrains_per_day=2)
    recent = Observations(NOW, monitor_verdict="drift",
                          last_retrain_at=NOW - timedelta(hours=2))
    blocked = evaluate_triggers(p, recent)
    assert not blocked.retrain and "cooldown" in (blocked.blocked or "")
    busy = Observations(NOW, monitor_verdict="drift", last_retrain_at=NOW - timedelta(hours=7),
                        retrains_last_24h=2)
    assert "2 retrains" in (evaluate_triggers(p, busy).blocked or "")
    asked = Observations(NOW, manual=True, last_retrain_at=NOW - timedelta(minutes=5),
                         retrains_last_24h=5)
    assert evaluate_triggers(p, asked).retrain
    assert evaluate_triggers(p, Observations(NOW, monitor_verdict="drift",
                                             last_retrain_at=NOW - timedelta(hours=6))).retrain


def test_the_first_check_starts_the_schedule_clock() -> None:
    p = policy(triggers=[{"schedule": "0 * * * *"}], cooldown="0s")
    half_past = NOW + timedelta(minutes=30)
    assert not evaluate_triggers(p, Observations(half_past)).retrain  # no previous check
    assert not evaluate_triggers(p, Observations(
        half_past, last_checked_at=NOW + timedelta(minutes=10))).retrain  # 13:00 not yet
    assert evaluate_triggers(p, Observations(
        half_past, last_checked_at=NOW - timedelta(minutes=1))).retrain  # 12:00 passed


def test_objects_can_be_given_directly() -> None:
    p = CTPolicy(model="churn", pipeline="flows:training",
                 triggers=(Trigger(DRIFT),), rollout=RolloutPolicy(canary_percent=5))
    assert p.rollout.canary_percent == 5
    with pytest.raises(InvalidInput, match=r"rollout\.max_error_rate"):
        RolloutPolicy(max_error_rate=2)


def test_labeled_rows_carry_the_request_time_when_asked() -> None:
    import pandas as pd

    from ratchet.ct.controller import labeled_rows

    times = pd.to_datetime(["2026-03-01 10:00", "2026-03-01 11:00", "2026-03-01 12:00"],
                           utc=True)
    logged = pd.DataFrame({"request_id": ["a", "b", "c"], "row": [0, 0, 0],
                           "variant": ["primary"] * 3, "status": ["ok", "ok", "ok"],
                           "feedback": [1, None, 0], "timestamp": times,
                           "input.driver_id": [7, 8, 9]})
    plain = labeled_rows(logged, "label")
    assert list(plain.columns) == ["driver_id", "label"]
    timed = labeled_rows(logged, "label", "requested_at")
    assert list(timed.columns) == ["driver_id", "requested_at", "label"]
    assert timed["requested_at"].tolist() == [times[0], times[2]]
    policy = policy_from_dict({"model": "eta", "pipeline": "flows:training",
                               "data": {"label": "late", "timestamp": "requested_at"}})
    assert policy.data.timestamp == "requested_at"
    assert policy_from_dict(policy.to_dict()) == policy
