"""``ratchet ct``: requests to the controller, its status, one tick from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

import ratchet
from tests.cli.conftest import Invoke, assert_user_error

POLICY = """\
model: rain
pipeline: flows.py:training
triggers: [manual]
monitor: {rows: 100, min_rows: 50, multivariate: false}
"""


def _champion(project: Path) -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=200)})
    with ratchet.start_run(experiment="ct-cli"):
        ratchet.log_model(LogisticRegression().fit(X, X.x > 0), name="rain", input_example=X)
    ratchet.models.set_alias("rain", "champion", version=1)
    (project / "policy.yaml").write_text(POLICY)


def test_requests_status_and_a_tick(cli: Invoke, project: Path) -> None:
    _champion(project)
    assert_user_error(cli("ct", "status", "rain"), "no controller has run for model 'rain'")
    assert_user_error(cli("ct", "approve", "rain"), "no challenger is waiting for approval")

    done = cli("ct", "tick", "policy.yaml", "--json")
    assert done.exit_code == 0, done.output
    tick = json.loads(done.stdout)
    assert tick["model"] == "rain" and tick["state"] == "watching" and tick["held_by"] is None

    done = cli("ct", "retrain", "rain", "--actor", "ana", "--reason", "new sensors")
    assert done.exit_code == 0 and "retrain recorded for rain" in done.stdout
    status = json.loads(cli("ct", "status", "rain", "--json").stdout)
    assert status["state"] == "watching" and status["lease_holder"] is None
    assert [(r["kind"], r["actor"], r["reason"]) for r in status["requests"]] == [
        ("retrain", "ana", "new sensors")]
    history = json.loads(cli("ct", "history", "rain", "--json").stdout)
    assert [e["kind"] for e in history] == ["retrain-requested"]
    assert history[0]["actor"] == "ana"


def test_tick_with_a_bad_policy_says_which_field(cli: Invoke, project: Path) -> None:
    (project / "policy.yaml").write_text("model: rain\npipeline: flows.py:training\n"
                                         "rollout: {canary_percent: 150}\n")
    assert_user_error(cli("ct", "tick", "policy.yaml"), "canary_percent")


def test_tick_without_a_champion_says_what_to_do(cli: Invoke, project: Path) -> None:
    (project / "policy.yaml").write_text(POLICY)
    with ratchet.start_run(experiment="ct-cli"):
        X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
        ratchet.log_model(LogisticRegression().fit(X, [0, 0, 1, 1]), name="rain",
                          input_example=X)
    assert_user_error(cli("ct", "tick", "policy.yaml"), "no 'champion' alias")


def test_the_controller_daemon_ticks_and_stops_on_sigterm(project: Path) -> None:
    """`ratchet controller` as a process: it says what it is doing, stops gracefully on
    SIGTERM and releases its lease, so another controller can start at once."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from ratchet.config import load_settings
    from ratchet.store import open_database
    from ratchet.store.ct_state_store import CTStateStore

    _champion(project)
    process = subprocess.Popen(
        [sys.executable, "-m", "ratchet.cli.main", "controller", "policy.yaml",
         "--interval", "0.2"], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=os.environ.copy())
    store = CTStateStore(open_database(load_settings().db_url))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = store.get("rain")
        if state is not None and state.lease_holder is not None:
            break
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    else:
        raise AssertionError("the controller never took its lease")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "ticking every 0.2s" in out and "rain: watching" in out
    assert out.rstrip().endswith("controller stopped")
    final = store.get("rain")
    assert final is not None and final.state == "watching" and final.lease_holder is None


def test_tick_and_the_daemon_take_trust_for_the_models_they_load(cli: Invoke,
                                                                  project: Path) -> None:
    """The live loop loads versions to gate, monitor and guard them: --trust reaches the
    loader they share (cloudpickled models are refused without it)."""
    from ratchet.ct.controller import Controller
    from ratchet.ct.policy import load_policy

    _champion(project)
    policy = load_policy(project / "policy.yaml")
    assert Controller.live(policy).models.trust is False
    assert Controller.live(policy, trust=True).models.trust is True
    assert cli("ct", "tick", "policy.yaml", "--trust").exit_code == 0
    for command in (["ct", "tick", "--help"], ["controller", "--help"]):
        shown = cli(*command)
        assert "--trust" in shown.stdout and "trusted source" in shown.stdout
