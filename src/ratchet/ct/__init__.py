"""``ratchet.ct``: the continuous-training loop — policies, triggers, the promotion gate,
rollout guards, the controller, backtests and ``ratchet check``.

    policy = ratchet.ct.load_policy("churn-policy.yaml")
    result = ratchet.ct.backtest(policy, history, time_column="day", start="2024-01-01")
    controller = ratchet.ct.Controller.live(policy)
    controller.tick()              # one step of the loop (cron, CI) ...
    controller.run(interval=60)    # ... or tick every minute until stopped
    ratchet.ct.approve("churn", reason="checked the slices")
    ratchet.ct.list_events("churn")     # the timeline, with evidence

Heavy modules (pandas, scikit-learn) are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ratchet.lazy import lazy_getattr

if TYPE_CHECKING:
    from ratchet.ct.approval import approve, reject, request_retrain
    from ratchet.ct.backtesting import BacktestResult, SimulatedWorld, backtest
    from ratchet.ct.check import CheckReport, run_check
    from ratchet.ct.controller import Controller, TickResult, World
    from ratchet.ct.gate import GateDecision, GatePolicy, ModelEvaluation, decide, evaluate_model
    from ratchet.ct.live_world import LiveWorld
    from ratchet.ct.policy import (
        CTPolicy,
        DataPolicy,
        MonitorPolicy,
        RolloutPolicy,
        Trigger,
        load_policy,
        policy_from_dict,
    )
    from ratchet.ct.rollout import RolloutCheck, canary_check, shadow_check
    from ratchet.ct.timeline import get_controller_state, list_events
    from ratchet.ct.triggers import Observations, TriggerDecision, evaluate_triggers

_LAZY = {
    "BacktestResult": "ratchet.ct.backtesting",
    "SimulatedWorld": "ratchet.ct.backtesting",
    "backtest": "ratchet.ct.backtesting",
    "approve": "ratchet.ct.approval",
    "reject": "ratchet.ct.approval",
    "request_retrain": "ratchet.ct.approval",
    "CheckReport": "ratchet.ct.check",
    "run_check": "ratchet.ct.check",
    "Controller": "ratchet.ct.controller",
    "TickResult": "ratchet.ct.controller",
    "World": "ratchet.ct.controller",
    "GateDecision": "ratchet.ct.gate",
    "GatePolicy": "ratchet.ct.gate",
    "ModelEvaluation": "ratchet.ct.gate",
    "decide": "ratchet.ct.gate",
    "evaluate_model": "ratchet.ct.gate",
    "LiveWorld": "ratchet.ct.live_world",
    "CTPolicy": "ratchet.ct.policy",
    "DataPolicy": "ratchet.ct.policy",
    "MonitorPolicy": "ratchet.ct.policy",
    "RolloutPolicy": "ratchet.ct.policy",
    "Trigger": "ratchet.ct.policy",
    "load_policy": "ratchet.ct.policy",
    "policy_from_dict": "ratchet.ct.policy",
    "RolloutCheck": "ratchet.ct.rollout",
    "canary_check": "ratchet.ct.rollout",
    "shadow_check": "ratchet.ct.rollout",
    "get_controller_state": "ratchet.ct.timeline",
    "list_events": "ratchet.ct.timeline",
    "Observations": "ratchet.ct.triggers",
    "TriggerDecision": "ratchet.ct.triggers",
    "evaluate_triggers": "ratchet.ct.triggers",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "BacktestResult",
    "CTPolicy",
    "CheckReport",
    "Controller",
    "DataPolicy",
    "GateDecision",
    "GatePolicy",
    "LiveWorld",
    "ModelEvaluation",
    "MonitorPolicy",
    "Observations",
    "RolloutCheck",
    "RolloutPolicy",
    "SimulatedWorld",
    "TickResult",
    "Trigger",
    "TriggerDecision",
    "World",
    "approve",
    "backtest",
    "canary_check",
    "decide",
    "evaluate_model",
    "evaluate_triggers",
    "get_controller_state",
    "list_events",
    "load_policy",
    "policy_from_dict",
    "reject",
    "request_retrain",
    "run_check",
    "shadow_check",
]
