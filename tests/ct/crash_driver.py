"""A continuous-training loop that can be SIGKILLed at a chosen step, for
``test_controller_crash.py``.

    python crash_driver.py --home DIR [--scenario promote|reject|rollback]
                           [--kill-at STATE[:before|after|during][:N]] [--holder NAME]
                           [--lease-ms MS] [--ticks N]
    python crash_driver.py --fork-server      # runs the above, one JSON line per run

One process plays the server and the controller: it serves the next chunk of a synthetic,
seeded stream (its concept changes after a few chunks, so the champion's live accuracy
drops and the controller retrains), sets the simulated clock and ticks the controller. The
simulated server's prediction log, its router's random state and the stream's cursor are
saved in the home directory after every chunk and every tick (written atomically), so a
restarted driver continues the same stream; a tick that a kill interrupted is finished at
the same simulated time before the next chunk is served (unless it had already done all it
would have: the controller moved into watching, which always ends a tick).

Scenarios (the policy waits for approval; the driver answers at the start of the first
tick that finds the challenger waiting): ``promote`` approves, and the challenger goes
through shadow and canary to promotion; ``reject`` rejects it; ``rollback`` approves, and a
strict bound on the shadow's disagreement with the champion rolls it back.

``--kill-at STATE:before`` SIGKILLs the process in ``CTStateStore.commit`` when the
controller leaves STATE (the N-th such commit that moves or records an event, default the
first) before the commit runs — the step's effects are done but not recorded;
``STATE:after`` right after it returned; ``STATE:during`` inside the step, right after its
first effect (``DURING``). Once per home directory (a marker file, written before the kill).
Nothing in ratchet is changed for it: the driver wraps the methods in its own process.

The training pipeline (``training``) is defined here too: the controller loads it by
reference (``.../crash_driver.py:training``).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

import ratchet
from ratchet.workspace import Workspace

MODEL, LABEL = "crashy", "y"
FEATURES = ["x0", "x1", "x2"]
SEED = 7
START_MS = 1_704_067_200_000   # 2024-01-01T00:00Z: the first served chunk's start
TICK_MS = 3_600_000            # one simulated hour per chunk (and per controller tick)
CHUNK = 100                    # requests per chunk
INITIAL = 400                  # rows before START_MS: they train the first champion
CHUNKS = 8                     # chunks served
CHANGE_AT = 2                  # the concept changes with this chunk (0-based)
WORLD_FILE, KILLED = "crash-world.pkl", "crash-killed-"


# ----------------------------------------------------------------------------- pipeline
@ratchet.step(dataset={"output": f"{MODEL}-train"})
def training_window(data: str) -> pd.DataFrame:
    return ratchet.data.get(data).to_pandas()


@ratchet.step(model={"output": MODEL})
def fit(train: pd.DataFrame) -> Any:
    model = LogisticRegression(max_iter=200)
    model.fit(train[FEATURES], train[LABEL].astype(int))
    return model


@ratchet.pipeline(experiment="crash-ct")
def training(data: str) -> Any:
    return fit(training_window(data))


# ----------------------------------------------------------------------------- the stream
def stream() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Inputs, times (epoch ms) and labels: y follows x0, then (from chunk CHANGE_AT) x1."""
    rng = np.random.default_rng(SEED)
    n = INITIAL + CHUNKS * CHUNK
    x = rng.normal(size=(n, len(FEATURES)))
    index = np.arange(n)
    offset = index - INITIAL   # served row number; negative: the initial training rows
    times = START_MS + (offset // CHUNK) * TICK_MS + (offset % CHUNK) * (TICK_MS // CHUNK)
    changed = offset >= CHANGE_AT * CHUNK
    labels = np.where(changed, x[:, 1] > 0, x[:, 0] > 0).astype(np.int64)
    return pd.DataFrame(x, columns=FEATURES), times.astype(np.int64), labels


def policy(scenario: str) -> Any:
    from ratchet.ct.gate import GatePolicy
    from ratchet.ct.policy import CTPolicy, DataPolicy, MonitorPolicy, RolloutPolicy, Trigger

    return CTPolicy(
        model=MODEL, pipeline=f"{Path(__file__).resolve()}:training",
        triggers=(Trigger("performance", metric="accuracy", below=0.6), Trigger("manual")),
        cooldown=timedelta(days=1), max_retrains_per_day=1,
        gate=GatePolicy(metric="accuracy", margin=0.0, min_holdout=50),
        rollout=RolloutPolicy(shadow_requests=50, canary_percent=50, canary_requests=40,
                              min_labels=10, max_accuracy_drop=0.2, max_prediction_shift=None,
                              max_disagreement=0.05 if scenario == "rollback" else None),
        approval=True,
        data=DataPolicy(label=LABEL, rows=200, holdout=100, min_rows=150,
                        lookback=timedelta(days=30)),
        monitor=MonitorPolicy(rows=200, min_rows=100, multivariate=False))


# ----------------------------------------------------------------------------- persistence
def save(home: Path, world: Any, cursor: int, seq: int | None) -> None:
    """The world after serving up to ``cursor``; ``seq``: the controller's seq when the
    tick at ``world.now`` began (None: that tick is done)."""
    log = world._log if world._log is not None else (
        pd.concat(world._parts, ignore_index=True) if world._parts else None)
    blob = pickle.dumps({"cursor": cursor, "now": world.now, "seq": seq, "log": log,
                         "random": world._random.getstate()})
    tmp = home / f"{WORLD_FILE}.tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, home / WORLD_FILE)


def load(home: Path, world: Any) -> tuple[int, int | None] | None:
    path = home / WORLD_FILE
    if not path.exists():
        return None
    saved = pickle.loads(path.read_bytes())
    world._parts = [saved["log"]] if saved["log"] is not None and len(saved["log"]) else []
    world._log = None
    world._random.setstate(saved["random"])
    world.now = saved["now"]
    return saved["cursor"], saved["seq"]


# ----------------------------------------------------------------------------- fault injection
# STATE:during kills right after the first of these calls made while the controller's
# STATE step runs: some of the step's effects done, the rest not.
DURING = {
    "training": ("ratchet.registry.client", "RegistryClient", "log_model"),  # in the fit step
    "gating": ("ratchet.registry.client", "RegistryClient", "set_tag"),
    "promoting": ("ratchet.registry.client", "RegistryClient", "set_alias"),
    "rolling_back": ("ratchet.serving.deployments", "DeploymentClient", "set_plan"),
}


def install_kill(home: Path, spec: str) -> None:
    """SIGKILL this process as ``spec`` says (see the module)."""
    import importlib

    from ratchet.ct.controller import Controller
    from ratchet.store.ct_state_store import CTStateStore

    target, _, rest = spec.partition(":")
    when, _, nth = rest.partition(":")
    when = when or "before"
    if when not in ("before", "after", "during") or (
            when == "during" and target not in DURING):
        raise SystemExit(f"--kill-at {spec}: say before or after (or during, for "
                         f"{', '.join(DURING)})")
    marker = home / f"{KILLED}{spec.replace(':', '-')}"
    if marker.exists():
        return

    def die() -> None:
        marker.write_text(spec)
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    if when == "during":
        module, cls_name, method = DURING[target]
        cls = getattr(importlib.import_module(module), cls_name)
        effect, handler = getattr(cls, method), getattr(Controller, f"_{target}")
        running = [False]

        def step(self: Any, *args: Any, **kwargs: Any) -> Any:
            running[0] = True
            try:
                return handler(self, *args, **kwargs)
            finally:
                running[0] = False

        def effect_then_die(self: Any, *args: Any, **kwargs: Any) -> Any:
            done = effect(self, *args, **kwargs)
            if running[0]:
                die()
            return done

        setattr(Controller, f"_{target}", step)
        setattr(cls, method, effect_then_die)
        return

    real = CTStateStore.commit
    seen = [0]

    def commit(self: Any, current: Any, holder: str, **kwargs: Any) -> Any:
        leaving = current.state == target and (
            kwargs["state"] != current.state or kwargs.get("event") is not None)
        if leaving:
            seen[0] += 1
        armed = leaving and seen[0] == int(nth or 1)
        if armed and when == "before":
            die()
        fresh = real(self, current, holder, **kwargs)
        if armed:
            die()
        return fresh

    CTStateStore.commit = commit  # type: ignore[method-assign]


# ----------------------------------------------------------------------------- the loop
def answer_approval(controller: Any, answer: str, now: int) -> None:
    """Approve or reject a challenger that waits for it (once per cycle)."""
    store = controller.store
    state = store.get(MODEL)
    if state is None or state.state != "awaiting_approval":
        return
    if any(r["kind"] in ("approve", "reject") and r.get("cycle") == state.cycle
           for r in state.requests):
        return  # asked and answered before a crash: the answer is still pending
    store.request(MODEL, answer, actor="driver", reason=f"crash driver: {answer}",
                  cycle=state.cycle, at=now)


def tick(controller: Any, answer: str | None, now: int, deadline_s: float = 30.0) -> None:
    if answer is not None:
        answer_approval(controller, answer, now)
    stop = time.monotonic() + deadline_s
    waited = False
    while True:
        result = controller.tick()
        if result.held_by is None:
            print(f"t={(now - START_MS) // TICK_MS}: {result.describe()}", flush=True)
            return
        if not waited:
            print(f"lease held by {result.held_by}: waiting for it to expire", flush=True)
            waited = True
        if time.monotonic() > stop:
            raise SystemExit(f"the lease stayed with {result.held_by} for {deadline_s}s")
        time.sleep(0.1)  # a killed controller's lease: wait for it to expire


def setup(home: Path, pol: Any, registry: Any, deployments: Any, history: pd.DataFrame,
          labels: np.ndarray) -> None:
    """The first champion (the policy's own pipeline on the initial rows) and its
    deployment, as ``backtest`` sets them up."""
    from ratchet.ct.controller import CHAMPION
    from ratchet.data.catalog import DataClient
    from ratchet.errors import NotFound
    from ratchet.pipelines.pipeline_definition import load_pipeline
    from ratchet.pipelines.runner import PipelineRunner
    from ratchet.serving.traffic_plan import TrafficPlan

    try:
        registry.resolve(f"models:/{MODEL}@{CHAMPION}")
        return  # set up before a crash
    except NotFound:  # not yet
        pass
    frame = history.iloc[:INITIAL].assign(**{LABEL: labels[:INITIAL]})
    data = DataClient(registry.workspace).log(frame, f"{MODEL}-initial")
    run = PipelineRunner(load_pipeline(pol.pipeline), {"data": f"{data.name}@{data.version}"},
                         workspace=registry.workspace).run()
    first = max(o.model[1] for s in run.steps for o in s.outputs if o.model is not None)
    registry.set_alias(MODEL, CHAMPION, first, reason="crash driver: initial model")
    deployments.ensure(pol.deployment_name, TrafficPlan.single(f"{MODEL}@{CHAMPION}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--scenario", choices=("promote", "reject", "rollback"),
                        default="promote")
    parser.add_argument("--kill-at", default=None)
    parser.add_argument("--holder", default="crash-driver")
    parser.add_argument("--lease-ms", type=int, default=2000)
    parser.add_argument("--ticks", type=int, default=CHUNKS, help="serve up to this chunk")
    args = parser.parse_args(argv)

    from ratchet.config import load_settings
    from ratchet.ct.backtesting import SimulatedWorld
    from ratchet.ct.controller import Controller
    from ratchet.registry import RegistryClient
    from ratchet.serving.deployments import DeploymentClient

    home = Path(args.home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    settings = load_settings(cwd=home, env={"RATCHET_HOME": str(home)})
    registry = RegistryClient(Workspace(settings))
    deployments = DeploymentClient(registry.workspace)
    pol = policy(args.scenario)
    history, times, labels = stream()
    setup(home, pol, registry, deployments, history, labels)
    if args.kill_at:
        install_kill(home, args.kill_at)

    world = SimulatedWorld(pol, deployments, FEATURES, label_delay_ms=0, seed=SEED)
    controller = Controller(pol, world, holder=args.holder, lease_ms=args.lease_ms,
                            actor="crash-driver")
    answer = "reject" if args.scenario == "reject" else "approve"
    found = controller.store.get(MODEL)
    print(json.dumps({"start": found.state if found else None,
                      "seq": found.seq if found else None}), flush=True)
    resumed = load(home, world)
    cursor, began = resumed if resumed is not None else (INITIAL, None)
    if began is not None and found is not None:
        # Killed during the tick at world.now. Every commit into watching ends a tick, so
        # if the controller moved and is watching, that tick had done all it would have;
        # otherwise finish it at the same simulated time, as an uninterrupted run would
        # have (without answering approvals again: that came before the tick).
        if found.state == "watching" and found.seq > began:
            print("the interrupted tick had finished", flush=True)
        else:
            print("finishing the interrupted tick", flush=True)
            tick(controller, None, world.now)
        save(home, world, cursor, None)
    end = min(INITIAL + args.ticks * CHUNK, len(history))
    while cursor < end:
        stop = cursor + CHUNK
        world.serve(history.iloc[cursor:stop], times[cursor:stop], labels[cursor:stop],
                    cursor)
        world.now = START_MS + ((cursor - INITIAL) // CHUNK + 1) * TICK_MS
        cursor = stop
        now_state = controller.store.get(MODEL)
        save(home, world, cursor, now_state.seq if now_state is not None else 0)
        tick(controller, answer, world.now)
        save(home, world, cursor, None)
    controller.release()
    state = controller.store.get(MODEL)
    print(json.dumps({"state": state.state if state else None,
                      "cycle": state.cycle if state else None}), flush=True)
    return 0


# ----------------------------------------------------------------------------- fork server
def fork_server() -> int:
    """``crash_driver.py --fork-server``: import everything once, then run each job read
    from stdin (a JSON line: ``argv``, ``log``, ``timeout``) in a forked child — its own
    process, as killable as a fresh one, without paying for the imports again — and answer
    with a JSON line: the child's ``returncode`` (``-9``: SIGKILLed). One job at a time."""
    import importlib
    import traceback

    from ratchet.pipelines.pipeline_definition import load_pipeline

    for module in ("ratchet.config", "ratchet.ct.backtesting", "ratchet.ct.controller",
                   "ratchet.data.catalog", "ratchet.monitoring.monitor",
                   "ratchet.monitoring.drift", "ratchet.monitoring.performance",
                   "ratchet.pipelines.runner", "ratchet.registry",
                   "ratchet.serving.deployments", "ratchet.serving.traffic_plan",
                   "ratchet.store.ct_event_store", "ratchet.tracking", "sklearn.inspection",
                   "skops.io"):
        importlib.import_module(module)
    from sklearn.utils.discovery import all_estimators

    all_estimators()  # imports every estimator's module, as loading a model does
    load_pipeline(f"{Path(__file__).resolve()}:training")
    while line := sys.stdin.readline():
        job = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: the job's output to its log, never back to the server
            code = 1
            try:
                signal.alarm(int(job["timeout"]))  # a hung job dies (SIGALRM) in time
                out = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(out, 1)
                os.dup2(out, 2)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                code = main(job["argv"])
            except SystemExit as exc:
                if not isinstance(exc.code, int):
                    print(exc.code, file=sys.stderr)
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(fork_server() if sys.argv[1:] == ["--fork-server"] else main())
