"""The continuous-training controller: a persisted state machine that watches a served
model, retrains it when a trigger fires, gates the challenger, rolls it out (shadow, then
canary) and promotes it, or rolls it back, by itself.

    watching ─trigger─▶ training ─▶ gating ─pass─▶ [approval] ─▶ shadow ─▶ canary ─▶ promoting
       ▲                                 └fail─▶ rejecting          └fail────┴──▶ rolling_back
       └──────────────────────────────────────────────────────────────────────────────┘

The state, the cycle's working data and the pending requests live in the metadata store
(``ct_controllers``). Each step reads the state, does its work, and commits the next state
together with its event in one compare-and-swap under a lease (``CTStateStore.commit``):
killed anywhere, a restarted controller finds either the old state (and redoes a step
whose effects were never recorded — each effect is idempotent: datasets are
content-addressed, the training pipeline's steps are cached, plans are compared before
they are set, aliases and tags are set to values) or the new one. A second controller
finds the lease taken and does nothing. The champion is a registry alias, so there is
never more than one; the deployment's plan names the alias, pinning only the challenger.

The same code runs live and in a backtest: everything it needs from the outside comes
from a ``World`` (the clock, the prediction log, the monitor), and the registry and
deployments it changes are real ones (a backtest's are in a scratch store).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ratchet.ct.gate import LoadedPredictor, decide, evaluate_model
from ratchet.ct.policy import CTPolicy
from ratchet.ct.rollout import (
    CANARY,
    PRIMARY,
    canary_check,
    expected_prediction_shift,
    shadow_check,
)
from ratchet.ct.triggers import Observations, evaluate_triggers, explain_triggers
from ratchet.errors import InvalidInput, LeaseLost, NotFound, RatchetError
from ratchet.ids import new_id
from ratchet.registry.model_cache import ModelCache
from ratchet.store.ct_state_store import ControllerState, EventSpec

if TYPE_CHECKING:
    import pandas as pd

    from ratchet.serving.deployments import DeploymentClient
    from ratchet.serving.traffic_plan import TrafficPlan
    from ratchet.workspace import Workspace

log = logging.getLogger(__name__)

WATCHING, TRAINING, GATING, APPROVAL, SHADOW, CANARY_STATE, PROMOTING, ROLLING_BACK, \
    REJECTING = ("watching", "training", "gating", "awaiting_approval", "shadow", "canary",
                 "promoting", "rolling_back", "rejecting")
STATES = (WATCHING, TRAINING, GATING, APPROVAL, SHADOW, CANARY_STATE, PROMOTING,
          ROLLING_BACK, REJECTING)
CHAMPION = "champion"
DAY_MS = 86_400_000
FIRST_SPAN_MS, LAST_SPAN_MS = 30 * DAY_MS, 100 * 365 * DAY_MS  # reads with no lookback
CYCLE_TAG, STATUS_TAG, IMPORTANCE_TAG = "ratchet.ct.cycle", "ratchet.ct.status", \
    "ratchet.importance"
# Run metrics that record a model's held-out score, in order of preference: a hand-set
# champion's baseline (holdout_accuracy, test_accuracy, ...).
BASELINE_PREFIXES = ("holdout_", "test_", "val_", "validation_")
SLUG_CHARS = 64        # of the model's name, in a dataset name that needs a slug
NAME_HASH_CHARS = 10   # of the exact model name's hash: 40 bits tell slugs apart


def ct_dataset_name(model: str, role: str) -> str:
    """The dataset the controller logs a cycle's ``role`` rows as (``train``, ``holdout``).

    Dataset names are portable file names and model names are not (``churn model``,
    ``a?b``), so a model whose ``<model>-ct-<role>`` is not portable gets an ASCII slug of
    its name plus a short hash of the exact name: stable across ticks and processes, and two
    names with the same slug (``a?b``, ``a b``) never share a history. A portable name keeps
    ``<model>-ct-<role>``, so existing workspaces keep their dataset histories."""
    import re
    import unicodedata

    from ratchet.hashing import hash_bytes
    from ratchet.names import check_portable_name

    plain = f"{model}-ct-{role}"
    try:
        return check_portable_name("dataset", plain)
    except InvalidInput:
        pass
    ascii_name = unicodedata.normalize("NFKD", model).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_name)[:SLUG_CHARS].strip("-._")
    digest = hash_bytes(model.encode("utf-8"))[:NAME_HASH_CHARS]
    return check_portable_name("dataset", f"{slug + '-' if slug else ''}{digest}-ct-{role}")


class World(Protocol):
    """What the controller needs from outside: time, the log, the monitor."""

    deployments: DeploymentClient

    def now_ms(self) -> int:
        """The controller's clock (wall time live; simulated in a backtest)."""

    def log_now_ms(self) -> int:
        """The prediction log's clock: where 'since now' starts for a rollout phase."""

    def logged(self, since_ms: int) -> pd.DataFrame:
        """Logged rows with ``timestamp >= since_ms`` (log clock), with ``feedback``."""

    def monitor(self, window: pd.DataFrame, model: tuple[str, int]) -> dict[str, Any]:
        """A monitor result (``run_monitor``'s shape) for ``window``, the champion's rows,
        against the training data in the champion's lineage."""


@dataclass(frozen=True)
class Outcome:
    """What a step decided: the next state, its data, and the event that records it."""

    state: str
    data: dict[str, Any]
    event: EventSpec | None = None
    cycle: int | None = None
    consumed: int = 0
    pause: bool = False              # stop ticking after this commit (nothing to do now)


@dataclass
class TickResult:
    model: str
    held_by: str | None = None       # another controller's lease: nothing was done
    steps: list[tuple[str, str, str | None]] = field(default_factory=list)  # from, to, event
    state: str | None = None
    error: str | None = None         # the tick failed (Controller.run keeps going)

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.model}: {self.error}"
        if self.held_by is not None:
            return f"{self.model}: another controller holds the lease ({self.held_by})"
        moves = "; ".join(f"{a} -> {b}" + (f" ({e})" if e else "") for a, b, e in self.steps
                          if a != b or e)
        return f"{self.model}: {self.state}" + (f" [{moves}]" if moves else "")


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()[-6:]}"


class Controller:
    def __init__(self, policy: CTPolicy, world: World, *, holder: str | None = None,
                 lease_ms: int = 60_000, actor: str = "ratchet-controller") -> None:
        self.policy = policy
        self.world = world
        self.deployments = world.deployments
        self.registry = world.deployments.registry
        self.workspace = world.deployments.workspace
        self.store = self.workspace.stores.ct_state
        # Versions loaded once, shared with the world's serving and monitor when it has a
        # cache (a backtest's, a LiveWorld's): the gate and the canary guard reuse them.
        shared = getattr(world, "models", None)
        self.models: ModelCache = shared if shared is not None else ModelCache(self.registry)
        self.holder = holder or default_holder()
        self.lease_ms = lease_ms
        self.actor = actor

    @classmethod
    def live(cls, policy: CTPolicy, *, workspace: Workspace | None = None,
             holder: str | None = None, lease_ms: int = 60_000,
             trust: bool = False) -> Controller:
        """The controller of ``policy``'s model for real: the wall clock, the deployment's
        prediction log and the workspace's registry and deployments. ``trust``: load
        versions whose format runs code when loaded (cloudpickle) to gate, monitor and
        guard them — only for models from a trusted source."""
        from ratchet.ct.live_world import LiveWorld
        from ratchet.serving.deployments import DeploymentClient
        from ratchet.workspace import resolve

        world = LiveWorld(policy, resolve(workspace).client(DeploymentClient), trust=trust)
        return cls(policy, world, holder=holder, lease_ms=lease_ms)

    # ------------------------------------------------------------------ driving
    def run(self, interval: float = 60.0, stop_event: threading.Event | None = None, *,
            max_iterations: int | None = None,
            on_tick: Callable[[TickResult], object] | None = None) -> int:
        """Tick every ``interval`` seconds until ``stop_event`` is set (or after
        ``max_iterations`` ticks), then release the lease; returns how many ticks ran.

        A tick that fails with a ratchet error (a model without a champion, a policy whose
        deployment cannot be made) is reported to ``on_tick`` as a result with ``error``
        set (and logged); the next tick retries. Anything else
        (a bug, ``KeyboardInterrupt``) ends the loop, the lease released on the way out.
        A stop request takes effect after the tick in progress (the CLI sets the event on
        Ctrl-C / SIGTERM). Pipeline schedules have the same loop: ``Scheduler.serve``.
        """
        if not isinstance(interval, int | float) or isinstance(interval, bool) \
                or not interval > 0:
            raise InvalidInput(f"interval= must be a positive number of seconds, "
                               f"got {interval!r}")
        if max_iterations is not None and (not isinstance(max_iterations, int)
                                           or isinstance(max_iterations, bool)
                                           or max_iterations < 1):
            raise InvalidInput(f"max_iterations= must be a positive integer, "
                               f"got {max_iterations!r}")
        stop = stop_event or threading.Event()
        ticks = 0
        try:
            while not stop.is_set():
                try:
                    result = self.tick()
                except RatchetError as exc:  # say it and keep watching: the next tick retries
                    # a warning unless on_tick reports it (the CLI prints it once)
                    log.log(logging.INFO if on_tick else logging.WARNING,
                            "controller %s: tick failed: %s", self.policy.model, exc)
                    result = TickResult(self.policy.model, error=str(exc))
                ticks += 1
                if on_tick is not None:
                    on_tick(result)
                if max_iterations is not None and ticks >= max_iterations:
                    break
                stop.wait(interval)
        finally:
            try:
                self.release()
            except Exception:  # the store is gone: the lease expires by itself
                log.exception("controller %s could not release its lease", self.holder)
        return ticks

    def tick(self, max_steps: int = 20) -> TickResult:
        """Advance until the loop has to wait (or ``max_steps`` commits)."""
        model = self.policy.model
        result = TickResult(model)
        state = self.store.acquire(model, self.holder, self.lease_ms)
        if state is None:
            current = self.store.get(model)
            result.held_by = current.lease_holder if current else "?"
            return result
        try:
            self._champion()  # a clear error before anything else needs the alias
            self._ensure_deployment()
        except Exception:
            self.release()
            raise
        with _Heartbeat(self):
            for _ in range(max_steps):
                handler: Callable[[ControllerState], Outcome | None] = getattr(
                    self, f"_{state.state}")
                outcome = handler(state)
                if outcome is None:
                    break
                before = state.state
                state = self.store.commit(
                    state, self.holder, state=outcome.state, data=outcome.data,
                    cycle=outcome.cycle, consumed_requests=outcome.consumed,
                    event=outcome.event, at=self.world.now_ms())
                result.steps.append((before, state.state,
                                     outcome.event.kind if outcome.event else None))
                if outcome.pause:
                    break
        result.state = state.state
        return result

    def release(self) -> None:
        self.store.release(self.policy.model, self.holder)

    def _ensure_deployment(self) -> None:
        from ratchet.serving.traffic_plan import TrafficPlan

        self.deployments.ensure(self.policy.deployment_name,
                                TrafficPlan.single(f"{self.policy.model}@{CHAMPION}"))

    # ------------------------------------------------------------------ watching
    def _watching(self, st: ControllerState) -> Outcome:
        policy, now = self.policy, self.world.now_ms()
        watch = dict(st.data.get("watch", {}))
        manual = [r for r in st.requests if r["kind"] == "retrain"]
        champion = self._champion()
        logged = self._recent(policy.monitor.rows)
        mine = _served_by(logged, champion)
        window = mine.tail(policy.monitor.rows)
        verdict, metrics, labeled, source = None, {}, 0, "realized"
        if len(window) >= policy.monitor.min_rows:
            result = self.world.monitor(window, (policy.model, champion))
            verdict = result.get("verdict")
            performance = result.get("performance") or {}
            labeled = int(performance.get("labeled") or 0)
            if labeled >= policy.monitor.min_rows:
                metrics = _numbers(performance.get("metrics"))
            elif (performance.get("estimated") or {}).get("calibrated"):
                # Labels are late: a calibrated label-free estimate stands in (stated).
                metrics, source = _numbers(performance["estimated"]), "estimated"
        if watch.get("baseline_for") != champion:
            recorded, why = self._recorded_baseline(champion)
            if recorded:
                watch.update(baseline=recorded, baseline_for=champion, baseline_source=why)
            elif metrics and source == "realized":
                watch.update(baseline=metrics, baseline_for=champion,
                             baseline_source="its first labeled window: the champion has no "
                             "recorded evaluation")
        baseline = watch.get("baseline", {}) if watch.get("baseline_for") == champion else {}
        since = watch.get("last_retrain_log_ms", 0)
        new_labels = int((logged["feedback"].notna() & (epoch_ms(logged["timestamp"])
                                                        >= since)).sum()) if len(logged) else 0
        retrains = [t for t in watch.get("retrains", []) if t > now - DAY_MS]
        obs = Observations(
            now=_dt(now), monitor_verdict=verdict, performance=metrics, baseline=baseline,
            new_labels=new_labels, manual=bool(manual),
            baseline_source=watch.get("baseline_source") if baseline else None,
            performance_source=source, window_rows=len(window), labeled_rows=labeled,
            min_rows=policy.monitor.min_rows,
            last_retrain_at=_dt(watch["last_retrain_at"]) if watch.get("last_retrain_at")
            else None, retrains_last_24h=len(retrains),
            last_checked_at=_dt(watch["last_checked_at"]) if watch.get("last_checked_at")
            else None)
        decision = evaluate_triggers(policy, obs)
        watch.update(last_checked_at=now, last_verdict=verdict, last_metrics=metrics)
        stale = len(st.requests)  # approvals/rejections with no cycle waiting are answered
        if not decision.retrain:
            watch["why"] = list(explain_triggers(policy, obs))  # for ratchet ct status
            event = None
            blocked = decision.blocked.split(":")[0] if decision.blocked else None
            if blocked and blocked != watch.get("last_blocked"):  # once per blocked spell
                event = EventSpec("trigger-blocked", decision.blocked or "", {
                    "fired": [f.__dict__ for f in decision.fired]}, self.actor)
            watch["last_blocked"] = blocked
            return Outcome(WATCHING, {**st.data, "watch": watch}, event, consumed=stale,
                           pause=True)
        watch.pop("why", None)
        watch.update(last_blocked=None, last_retrain_at=now,
                     last_retrain_log_ms=self.world.log_now_ms(), retrains=[*retrains, now])
        fired = [f.__dict__ for f in decision.fired]
        observed: dict[str, Any] = {"verdict": verdict, "metrics": metrics,
                                    "baseline": baseline, "new_labels": new_labels}
        cycle = {"number": st.cycle + 1, "champion": champion, "trigger": fired,
                 "observed": observed,
                 "requested_by": manual[0]["actor"] if manual else None}
        summary = "; ".join(f["reason"] for f in fired)
        return Outcome(TRAINING, {"watch": watch, "cycle": cycle},
                       EventSpec("trigger", f"retrain #{st.cycle + 1}: {summary}",
                                 {"fired": fired, **observed,
                                  "champion": champion}, self.actor),
                       cycle=st.cycle + 1, consumed=stale)

    # ------------------------------------------------------------------ training
    def _training(self, st: ControllerState) -> Outcome:
        cycle = dict(st.data["cycle"])
        if "train" not in cycle:
            return self._prepare_data(st, cycle)
        params = {**self.policy.params, "data": cycle["train"]}
        try:
            run, version = run_training(self.policy, self.workspace, cycle["train"])
        except RatchetError as exc:
            return self._back_to_watching(st, "retrain-failed",
                                          f"retrain #{st.cycle} failed: {exc}",
                                          {"error": str(exc), "params": params})
        if version == cycle["champion"]:  # the same recipe on the same rows: cached
            return self._back_to_watching(
                st, "retrain-skipped", f"retrain #{st.cycle}: the pipeline returned the "
                f"champion itself (v{version}): nothing new to learn from",
                {"version": version, "pipeline_run": run.run_id, "train": cycle["train"]})
        self.registry.set_tag(self.policy.model, CYCLE_TAG, str(st.cycle), version)
        cycle.update(challenger=version, pipeline_run=run.run_id)
        return Outcome(GATING, {**st.data, "cycle": cycle}, EventSpec(
            "retrained", f"retrain #{st.cycle}: {self.policy.model} v{version} from "
            f"{cycle['train']}", {"version": version, "pipeline_run": run.run_id,
                                  "params": params, "train": cycle["train"],
                                  "holdout": cycle["holdout"]}, self.actor))

    def _prepare_data(self, st: ControllerState, cycle: dict[str, Any]) -> Outcome:
        from ratchet.data.catalog import DataClient

        data_policy = self.policy.data
        logged = self._recent(data_policy.rows)
        size: int = data_policy.rows
        window: dict[str, Any] | None = None  # how a change point chose the rows
        if data_policy.window == "changepoint":
            # The rows since the champion's error rate last moved: its answers now on every
            # labeled row of the lookback, right or wrong (ratchet.ct.changepoint).
            from dataclasses import replace

            import pandas as pd

            from ratchet.ct.changepoint import error_series, window_since_change

            stamp = "input.\x00logged_at"  # each row's time, through labeled_rows' filter
            labeled = labeled_rows(logged.assign(**{stamp: logged["timestamp"]})
                                   if len(logged) else logged, data_policy.label,
                                   data_policy.timestamp)
            times = labeled.pop(stamp[6:]) if stamp[6:] in labeled.columns else None
            window = {"rule": "changepoint", "scanned": len(labeled),
                      "min_size": data_policy.holdout}
            change = None
            if len(labeled) >= 2 * data_policy.holdout:
                champion = self.models.load(self.policy.model, cycle["champion"])
                classes = getattr(champion.raw, "classes_", None)
                try:
                    answers = champion.predict(labeled.drop(columns=[data_policy.label]))
                except (RatchetError, ValueError, TypeError, KeyError) as exc:
                    window["note"] = (f"no change point: the champion could not answer the "
                                      f"logged rows ({exc}); default window")
                else:
                    errors = error_series(labeled[data_policy.label].to_numpy(), answers,
                                          None if classes is None else classes.tolist())
                    size, change = window_since_change(
                        errors, rows=data_policy.rows, smallest=data_policy.smallest_window,
                        min_size=data_policy.holdout)
            # A change found in an earlier cycle still holds when a champion trained since
            # then cannot show it (its errors before and after may match): the newer of the
            # two starts the window.
            watch = dict(st.data.get("watch", {}))
            logged_ms = epoch_ms(pd.to_datetime(times, utc=True)).to_numpy() \
                if times is not None and len(times) else None
            found_ms = int(logged_ms[change.index]) \
                if change is not None and logged_ms is not None else None
            remembered = watch.get("change_point_log_ms")
            if logged_ms is not None and remembered is not None and (
                    found_ms is None or remembered > found_ms) and \
                    int(logged_ms[0]) < remembered <= int(logged_ms[-1]):
                since = int((logged_ms >= remembered).sum())
                size = min(data_policy.rows, max(data_policy.smallest_window, since))
                window.update(watch.get("change_point") or {}, remembered=True,
                              rows_since=since, index=len(labeled) - since)
                found_ms = remembered
            elif change is not None and found_ms is not None:
                window.update(change.to_dict(), rows_since=len(labeled) - change.index)
            if found_ms is not None:
                # on the controller's clock (a backtest's log may be shifted from it)
                at = pd.Timestamp(found_ms + self.world.now_ms() - self.world.log_now_ms(),
                                  unit="ms", tz="UTC")
                window["at"] = at.isoformat()
                watch.update(change_point_log_ms=found_ms, change_point={
                    k: window[k] for k in ("rate_before", "rate_after", "statistic",
                                           "threshold", "dispersion") if k in window})
                st = replace(st, data={**st.data, "watch": watch})
            else:
                window.setdefault("note", "no change point: default window")
            frame = labeled.tail(size)
        else:
            frame = labeled_rows(logged, data_policy.label, data_policy.timestamp).tail(size)
        production = len(frame)
        if len(frame) < size:  # young deployment: top up with what trained it
            frame = self._with_training_data(frame, cycle["champion"], size)
        if len(frame) < data_policy.min_rows:
            return self._back_to_watching(
                st, "retrain-skipped", f"retrain #{st.cycle}: only {len(frame)} labeled rows "
                f"{_in_lookback(data_policy.lookback)}; the policy needs {data_policy.min_rows}",
                {"labeled": len(frame)})
        # The holdout is production rows only: rows that topped the window up trained the
        # champion, and a champion graded on its own training rows always looks better.
        # At most half of them, so the challenger also learns something the champion did
        # not (else the pipeline's cache hands back the champion itself).
        holdout_n = min(data_policy.holdout, production // 2)
        if holdout_n < self.policy.gate.min_holdout:
            return self._back_to_watching(
                st, "retrain-skipped", f"retrain #{st.cycle}: {production} labeled production "
                f"rows {_in_lookback(data_policy.lookback)}; the gate's holdout needs "
                f"{self.policy.gate.min_holdout} the champion never trained on",
                {"labeled": len(frame), "production": production})
        train, holdout = frame.iloc[:-holdout_n], frame.iloc[-holdout_n:]
        data = self.workspace.client(DataClient)
        name = self.policy.model
        train_v = data.log(train.reset_index(drop=True), ct_dataset_name(name, "train"))
        holdout_v = data.log(holdout.reset_index(drop=True), ct_dataset_name(name, "holdout"))
        cycle.update(train=f"{train_v.name}@{train_v.version}",
                     holdout=f"{holdout_v.name}@{holdout_v.version}",
                     rows={"train": len(train), "holdout": len(holdout)})
        why, evidence = "", {"train": cycle["train"], "holdout": cycle["holdout"],
                             **cycle["rows"]}
        if window is not None:
            evidence["window"] = window
            why = " (no change point: default window)"
            if "at" in window:
                rates = f": champion error rate {window['rate_before']:.3f} -> " \
                    f"{window['rate_after']:.3f}" if "rate_after" in window else ""
                found = ", found in an earlier cycle" if window.get("remembered") else ""
                why = f" (since a change point at {window['at'][:10]}{rates}{found})"
        return Outcome(TRAINING, {**st.data, "cycle": cycle}, EventSpec(
            "data", f"retrain #{st.cycle}: {len(train)} labeled rows to train on{why}, the "
            f"newest {len(holdout)} held out", evidence, self.actor))

    def _with_training_data(self, frame: pd.DataFrame, champion: int,
                            rows: int | None = None) -> pd.DataFrame:
        """The first champion's training rows (from lineage) before the labeled production
        rows, newest ``rows`` (default ``data.rows``) kept; the production rows alone when
        lineage has none."""
        import pandas as pd

        from ratchet.data.catalog import DataClient

        if CYCLE_TAG in (self.registry.get_version(self.policy.model, champion).tags or {}):
            return frame  # its training rows came from the log: they would repeat
        run = self.registry.lineage(f"models:/{self.policy.model}/{champion}").run
        inputs = [] if run is None else [i for i in run.inputs if i.role == "train"]
        if not inputs or inputs[0].version is None:
            return frame
        earlier = self.workspace.client(DataClient).get(
            f"{inputs[0].name}@{inputs[0].version}").to_pandas()
        columns = list(frame.columns) if len(frame.columns) else list(earlier.columns)
        if any(c not in earlier.columns for c in columns):
            return frame
        return pd.concat([earlier[columns], frame], ignore_index=True).tail(
            self.policy.data.rows if rows is None else rows)

    def _refit(self, st: ControllerState, cycle: dict[str, Any]) -> Outcome:
        """The gated challenger's recipe on all the window's rows (the pipeline's cached
        steps make a redone refit return the same version)."""
        import pandas as pd

        from ratchet.data.catalog import DataClient

        data = self.workspace.client(DataClient)
        name = self.policy.model
        rows = pd.concat([data.get(cycle["train"]).to_pandas(),
                          data.get(cycle["holdout"]).to_pandas()], ignore_index=True)
        window = data.log(rows, ct_dataset_name(name, "train"))
        params = {**self.policy.params, "data": f"{window.name}@{window.version}"}
        try:
            run, version = run_training(self.policy, self.workspace, params["data"])
        except RatchetError as exc:
            cycle["reason"] = f"refit failed: {exc}"
            return Outcome(ROLLING_BACK, {**st.data, "cycle": cycle}, EventSpec(
                "retrain-failed", cycle["reason"], {"params": params}, self.actor))
        self.registry.set_tag(name, CYCLE_TAG, str(st.cycle), version)
        self._inherit_calibration(cycle["challenger"], version)
        cycle.update(refit={"gated": cycle["challenger"], "data": params["data"],
                            "pipeline_run": run.run_id}, challenger=version)
        return Outcome(SHADOW, {**st.data, "cycle": cycle}, EventSpec(
            "refit", f"retrain #{st.cycle}: v{version} = v{cycle['refit']['gated']}'s "
            f"recipe on all {len(rows)} rows (holdout included)",
            {"version": version, "gated": cycle["refit"]["gated"], "rows": len(rows),
             "data": params["data"]}, self.actor))

    # ------------------------------------------------------------------ gate
    def _gating(self, st: ControllerState) -> Outcome:
        from ratchet.data.catalog import DataClient

        cycle = dict(st.data["cycle"])
        label = self.policy.data.label
        holdout = self.workspace.client(DataClient).get(cycle["holdout"]).to_pandas()
        features, y = holdout.drop(columns=[label]), holdout[label]
        gate = self.policy.gate
        model = self.policy.model
        challenger = self.models.load(model, cycle["challenger"])
        champion = self.models.load(model, cycle["champion"])
        latency_rows = 200 if gate.latency_budget_ms is not None else 0  # only if judged
        ours = evaluate_model(LoadedPredictor(challenger), features, y, policy=gate,
                              latency_rows=latency_rows)
        theirs = evaluate_model(LoadedPredictor(champion), features, y, policy=gate,
                                latency_rows=latency_rows)
        decision = decide(gate, theirs, ours,
                          data_checks_passed=_data_checks(holdout, label))
        for version, evaluation in ((cycle["challenger"], ours), (cycle["champion"], theirs)):
            self.registry.set_tag(model, IMPORTANCE_TAG, json.dumps(
                {"top_features": list(evaluation.top_features), "holdout": cycle["holdout"]}),
                version)
        cycle["gate"] = {"passed": decision.passed, "reasons": list(decision.reasons),
                         "flags": list(decision.flags), "challenger": ours.score,
                         "champion": theirs.score}
        # How differently the two answer the same rows: the canary's shift guard expects
        # that much change (after a concept change the answers should move).
        if ours.predictions is not None and theirs.predictions is not None:
            cycle["gate"]["expected_shift"] = expected_prediction_shift(theirs.predictions,
                                                                        ours.predictions)
        if decision.passed:  # its label-free estimator, fit where it was judged
            cycle["gate"]["calibration"] = self._calibrate(cycle["challenger"], challenger,
                                                           features, y, cycle["holdout"])
        verdict = "passed" if decision.passed else "failed"
        summary = (f"gate {verdict}: v{cycle['challenger']} {gate.metric} {ours.score:.4f} vs "
                   f"champion v{cycle['champion']} {theirs.score:.4f} on {ours.n} holdout rows")
        test = decision.evidence.get("test") or {}
        low, high = test.get("interval") or (None, None)
        if low is not None and high is not None:  # the statistical evidence, in brief
            summary += (f"; improvement in [{low:+.4f}, {high:+.4f}] at "
                        f"{gate.confidence * 100:g}% confidence ({test['name']})")
            cycle["gate"]["interval"] = [low, high]
        event = EventSpec("gate", summary, decision.to_dict(), self.actor)
        if not decision.passed:
            cycle["reason"] = "; ".join(decision.reasons)
            return Outcome(REJECTING, {**st.data, "cycle": cycle}, event)
        return Outcome(APPROVAL if self.policy.approval else SHADOW,
                       {**st.data, "cycle": cycle}, event)

    def _awaiting_approval(self, st: ControllerState) -> Outcome | None:
        cycle = dict(st.data["cycle"])
        answers = [(i, r) for i, r in enumerate(st.requests)
                   if r["kind"] in ("approve", "reject") and r.get("cycle") in (None, st.cycle)]
        if not answers:
            return None
        index, answer = answers[0]
        who = answer.get("actor") or "someone"
        if answer["kind"] == "approve":
            return Outcome(SHADOW, {**st.data, "cycle": cycle}, EventSpec(
                "approved", f"v{cycle['challenger']} approved by {who}", answer, who),
                consumed=index + 1)
        cycle["reason"] = f"rejected by {who}" + (f": {answer['reason']}"
                                                  if answer.get("reason") else "")
        return Outcome(REJECTING, {**st.data, "cycle": cycle}, EventSpec(
            "disapproved", cycle["reason"], answer, who), consumed=index + 1)

    # ------------------------------------------------------------------ rollout
    def _shadow(self, st: ControllerState) -> Outcome | None:
        from ratchet.serving.traffic_plan import TrafficPlan

        cycle = dict(st.data["cycle"])
        rollout = self.policy.rollout
        challenger = cycle["challenger"]
        if self.policy.data.refit and "refit" not in cycle:
            return self._refit(st, cycle)
        if rollout.shadow_requests == 0:
            return Outcome(CANARY_STATE, {**st.data, "cycle": cycle})
        if "shadow_since" not in cycle:
            plan = TrafficPlan.shadowed(f"{self.policy.model}@{CHAMPION}",
                                        f"{self.policy.model}/{challenger}")
            revision = self._ensure_plan(plan, f"ct: shadow v{challenger}")
            cycle.update(shadow_since=self.world.log_now_ms(), shadow_revision=revision)
            return Outcome(SHADOW, {**st.data, "cycle": cycle}, EventSpec(
                "shadow-started", f"v{challenger} answers a copy of live traffic (plan "
                f"revision {revision})", {"revision": revision, "version": challenger},
                self.actor))
        check = shadow_check(rollout, self.world.logged(cycle["shadow_since"]), challenger,
                             elapsed_ms=self.world.log_now_ms() - cycle["shadow_since"])
        if not check.done:
            return None
        if not check.passed:
            cycle["reason"] = "shadow: " + "; ".join(check.reasons)
            return Outcome(ROLLING_BACK, {**st.data, "cycle": cycle}, EventSpec(
                "shadow-failed", cycle["reason"], check.evidence, self.actor))
        disagreement = check.evidence.get("disagreement")
        note = f", disagreement {disagreement:.1%}" if disagreement is not None else ""
        return Outcome(CANARY_STATE, {**st.data, "cycle": cycle}, EventSpec(
            "shadow-passed", f"v{challenger} in shadow: {_rows(check.evidence)}{note}",
            check.evidence, self.actor))

    def _canary(self, st: ControllerState) -> Outcome | None:
        from ratchet.serving.traffic_plan import TrafficPlan

        cycle = dict(st.data["cycle"])
        rollout = self.policy.rollout
        challenger = cycle["challenger"]
        if "canary_since" not in cycle:
            plan = TrafficPlan.canary(f"{self.policy.model}@{CHAMPION}",
                                      f"{self.policy.model}/{challenger}",
                                      rollout.canary_percent)
            revision = self._ensure_plan(plan, f"ct: canary v{challenger} at "
                                               f"{rollout.canary_percent:g}%")
            cycle.update(canary_since=self.world.log_now_ms(), canary_revision=revision)
            return Outcome(CANARY_STATE, {**st.data, "cycle": cycle}, EventSpec(
                "canary-started", f"v{challenger} answers {rollout.canary_percent:g}% of "
                f"traffic (plan revision {revision})", {"revision": revision,
                                                        "percent": rollout.canary_percent},
                self.actor))
        loaded = self.models.load(self.policy.model, cycle["champion"])
        classes = getattr(loaded.raw, "classes_", None)
        check = canary_check(rollout, self.world.logged(cycle["canary_since"]), challenger,
                             metric=self.policy.gate.metric,
                             classes=list(classes.tolist()) if classes is not None else None,
                             expected_shift=(cycle.get("gate") or {}).get("expected_shift"),
                             elapsed_ms=self.world.log_now_ms() - cycle["canary_since"])
        if not check.done:
            return None
        if not check.passed:
            cycle["reason"] = "canary: " + "; ".join(check.reasons)
            return Outcome(ROLLING_BACK, {**st.data, "cycle": cycle}, EventSpec(
                "canary-failed", cycle["reason"], check.evidence, self.actor))
        return Outcome(PROMOTING, {**st.data, "cycle": cycle}, EventSpec(
            "canary-passed", f"v{challenger} on {rollout.canary_percent:g}%: "
            f"{_rows(check.evidence)}, {check.evidence['errors']} failed",
            check.evidence, self.actor))

    # ------------------------------------------------------------------ endings
    def _promoting(self, st: ControllerState) -> Outcome:
        from ratchet.serving.traffic_plan import TrafficPlan

        cycle = dict(st.data["cycle"])
        model, challenger = self.policy.model, cycle["challenger"]
        if self._champion() != challenger:
            self.registry.set_alias(model, CHAMPION, challenger, actor=self.actor,
                                    reason=f"ct: promoted after retrain #{st.cycle}")
        self._ensure_plan(TrafficPlan.single(f"{model}@{CHAMPION}"),
                          f"ct: v{challenger} promoted")
        self.registry.set_tag(model, STATUS_TAG, "promoted", challenger)
        watch = dict(st.data.get("watch", {}))
        gate = cycle.get("gate") or {}
        gated = (cycle.get("refit") or {}).get("gated", challenger)  # the version judged
        if gate.get("challenger") is not None:  # what it scored on the newest data
            watch.update(baseline={self.policy.gate.metric: gate["challenger"]},
                         baseline_for=challenger,
                         baseline_source=f"gate score at promotion, v{gated} on "
                         f"{cycle.get('rows', {}).get('holdout', '?')} holdout rows"
                         + (f", refit as v{challenger}" if gated != challenger else ""))
        else:  # its recorded evaluation or its first full window sets it
            watch.pop("baseline", None)
        return Outcome(WATCHING, {"watch": watch, "last_cycle": cycle}, EventSpec(
            "promoted", f"v{challenger} is champion (was v{cycle['champion']})",
            {"version": challenger, "previous": cycle["champion"], "gate": cycle.get("gate")},
            self.actor), pause=True)

    def _rolling_back(self, st: ControllerState) -> Outcome:
        return self._end_cycle(st, "rolled-back", "rolled back")

    def _rejecting(self, st: ControllerState) -> Outcome:
        return self._end_cycle(st, "rejected", "rejected")

    def _end_cycle(self, st: ControllerState, kind: str, word: str) -> Outcome:
        from ratchet.serving.traffic_plan import TrafficPlan

        cycle = dict(st.data["cycle"])
        model, challenger = self.policy.model, cycle["challenger"]
        self._ensure_plan(TrafficPlan.single(f"{model}@{CHAMPION}"),
                          f"ct: v{challenger} {word}")
        self.registry.set_tag(model, STATUS_TAG, kind, challenger)
        self.registry.set_tag(model, "ratchet.ct.reason", cycle.get("reason", "")[:4000],
                              challenger)
        return Outcome(WATCHING, {"watch": st.data.get("watch", {}), "last_cycle": cycle},
                       EventSpec(kind, f"v{challenger} {word}: {cycle.get('reason')}; "
                                 f"v{self._champion()} stays champion",
                                 {"version": challenger, "reason": cycle.get("reason")},
                                 self.actor), pause=True)

    def _back_to_watching(self, st: ControllerState, kind: str, summary: str,
                          evidence: Mapping[str, Any]) -> Outcome:
        cycle = dict(st.data.get("cycle", {}))
        cycle["reason"] = summary
        return Outcome(WATCHING, {"watch": st.data.get("watch", {}), "last_cycle": cycle},
                       EventSpec(kind, summary, evidence, self.actor), pause=True)

    # ------------------------------------------------------------------ effects
    def _recent(self, rows: int) -> pd.DataFrame:
        """The log's rows within ``data.lookback``; with none set, the newest span holding
        ``rows`` logged rows — 30 days, then four times longer each time, up to a century
        — so a deployment answering one row a day is watched and retrained on as many rows
        as a busy one. Only traffic extends it: a busy log's first span is read once, also
        while a new champion or late labels leave fewer of *its* rows (older spans would
        not hold more of those, and a busy history is large)."""
        now = self.world.log_now_ms()
        lookback = self.policy.data.lookback
        if lookback is not None:
            return self.world.logged(now - int(lookback.total_seconds() * 1000))
        span = FIRST_SPAN_MS
        while True:
            logged = self.world.logged(now - span)
            if span >= LAST_SPAN_MS or len(logged) >= rows:
                return logged
            span *= 4

    def _calibrate(self, version: int, loaded: Any, features: pd.DataFrame, y: pd.Series,
                   holdout: str) -> str:
        """Fit the version's label-free performance estimator on the gate's holdout (rows
        it did not train on) and keep it with the version, where monitor runs — and
        through them the performance triggers, while labels are late — find it. A
        holdout it cannot be fit on (too few rows) leaves the version without one:
        monitoring then estimates uncalibrated, and says so."""
        from ratchet.monitoring.estimation import fit_estimator, save_estimator

        source = f"v{version} on the gate's holdout {holdout}"
        try:  # CBPE for a classifier, DLE for a regressor; only the model's input columns
            estimator = fit_estimator(loaded, features, y, source=source)
        except InvalidInput as exc:
            return f"none: {exc}"
        save_estimator(self.registry, self.policy.model, version, estimator)
        return source

    def _inherit_calibration(self, gated: int, refit: int) -> None:
        """A refit version saw every row there is, so no rows are left to calibrate it on:
        it keeps the gated version's estimator (the same recipe, probabilities alike),
        and its note says so."""
        from ratchet.monitoring.estimation import (
            estimator_from_dict,
            load_estimator,
            save_estimator,
        )

        estimator = load_estimator(self.registry, self.policy.model, gated)
        if estimator is None:
            return
        data = estimator.to_dict()
        source = data["reference"].get("source", f"v{gated}'s holdout")
        data["reference"] = {**data["reference"],
                             "source": f"{source}, inherited by its refit v{refit}"}
        save_estimator(self.registry, self.policy.model, refit, estimator_from_dict(data))

    def _recorded_baseline(self, champion: int) -> tuple[dict[str, float], str]:
        """The champion's recorded evaluation: the held-out scores its training run logged
        (``holdout_<metric>``, else ``test_``, ``val_``, ``validation_``), for the
        metrics the policy watches. Training scores are not used: they flatter the model,
        and a baseline too high fires a retrain at once."""
        wanted = {t.metric for t in self.policy.triggers if t.metric} | \
            {self.policy.gate.metric}
        run = self.registry.lineage(f"models:/{self.policy.model}/{champion}").run
        if run is None:
            return {}, ""
        for prefix in BASELINE_PREFIXES:
            found = {m: float(run.metrics[f"{prefix}{m}"]) for m in wanted
                     if f"{prefix}{m}" in run.metrics}
            if found:
                names = ", ".join(f"{prefix}{m}" for m in sorted(found))
                return found, f"v{champion}'s training run {run.run_id[:8]} ({names})"
        return {}, ""

    def _champion(self) -> int:
        try:
            resolved = self.registry.resolve(f"models:/{self.policy.model}@{CHAMPION}")
        except NotFound:
            raise InvalidInput(f"model {self.policy.model!r} has no {CHAMPION!r} alias: the "
                               "controller moves a champion forward, so register one first "
                               f"(ratchet models alias set {self.policy.model} {CHAMPION} "
                               "VERSION)") from None
        assert resolved.version is not None
        return resolved.version.version

    def _ensure_plan(self, plan: TrafficPlan, reason: str) -> int:
        """Set the deployment's plan unless it already is this plan (a step redone after
        a crash must not stack revisions); a compare-and-swap on the revision read."""
        name = self.policy.deployment_name
        status = self.deployments.status(name)
        if status.plan.to_dict() == plan.to_dict():
            return status.revision
        return self.deployments.set_plan(name, plan, reason=reason, actor=self.actor,
                                          expected_revision=status.revision).revision


def run_training(policy: CTPolicy, workspace: Workspace, data: str) -> tuple[Any, int]:
    """Run the policy's pipeline on dataset ``data`` (``name@version``): the pipeline run
    and the version of ``policy.model`` it registered. Shared by the controller and the
    backtest's baselines, so both train the same way."""
    from ratchet.pipelines.pipeline_definition import load_pipeline
    from ratchet.pipelines.runner import PipelineRunner

    run = PipelineRunner(load_pipeline(policy.pipeline), {**policy.params, "data": data},
                         workspace=workspace).run()
    versions = [o.model[1] for s in run.steps for o in s.outputs
                if o.model is not None and o.model[0] == policy.model]
    if not versions:
        raise InvalidInput(f"pipeline {policy.pipeline} registered no version of "
                           f"{policy.model!r}: give its training step "
                           f"model={{'output': {policy.model!r}}}")
    return run, int(max(versions))


def labeled_rows(logged: pd.DataFrame, label: str, timestamp: str | None = None
                 ) -> pd.DataFrame:
    """The answered, labeled rows of a log frame as a training table: the model's inputs
    and the feedback as ``label``, oldest first, one row per (request, row); with
    ``timestamp``, each row's request time (UTC) as that column too: the time a features
    model's online vector was read as of."""
    import pandas as pd

    if not len(logged) or "feedback" not in logged.columns:
        return pd.DataFrame()
    rows = logged[(logged["variant"] == PRIMARY) | (logged["variant"] == CANARY)]
    rows = rows[(rows["status"] == "ok") & rows["feedback"].notna()]
    rows = rows.drop_duplicates(["request_id", "row"])
    inputs = [c for c in rows.columns if c.startswith("input.")]
    frame = pd.DataFrame({c.removeprefix("input."): rows[c].to_numpy() for c in inputs})
    if timestamp is not None:
        frame[timestamp] = rows["timestamp"].to_numpy()
    frame[label] = pd.Series(rows["feedback"].to_numpy()).infer_objects()
    return frame.dropna(axis=1, how="all")


def epoch_ms(times: pd.Series) -> pd.Series:
    """Timestamps (any resolution, UTC) as epoch milliseconds."""
    import pandas as pd

    return (times - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)


def _rows(evidence: dict[str, Any]) -> str:
    """A guard's evidence in words: "50 rows in 5 requests" (a request may hold many)."""
    rows, requests = evidence["rows"], evidence["requests"]
    return f"{rows} row{'s' if rows != 1 else ''} in {requests} request" \
        f"{'s' if requests != 1 else ''}"


def _served_by(logged: pd.DataFrame, version: int) -> pd.DataFrame:
    if not len(logged):
        return logged
    return logged[(logged["variant"] == PRIMARY) & (logged["model_version"] == version)]


def _data_checks(holdout: pd.DataFrame, label: str) -> bool:
    """The training window's basic checks: labels present, inputs not all missing."""
    return bool(len(holdout)) and not holdout[label].isna().any() and \
        not holdout.drop(columns=[label]).isna().all().any()


def _in_lookback(lookback: Any) -> str:
    return "in the log" if lookback is None else f"in the last {lookback}"


def _numbers(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    return {k: v for k, v in (metrics or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "n"}


def _dt(ms: int) -> Any:
    from ratchet.clock import to_datetime

    return to_datetime(ms)


class _Heartbeat:
    """Renews the lease while a step runs (training can outlast it)."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        c = self.controller

        def beat() -> None:
            while not self.stop.wait(c.lease_ms / 3000):
                try:
                    if c.store.acquire(c.policy.model, c.holder, c.lease_ms) is None:
                        log.error("controller %s: lost the lease", c.policy.model)
                        return
                except Exception as exc:  # a store hiccup: the commit will tell
                    log.warning("controller %s: lease renewal failed: %s", c.policy.model, exc)

        self.thread = threading.Thread(target=beat, name="ratchet-ct-lease", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


__all__ = [
    "STATES",
    "Controller",
    "LeaseLost",
    "Outcome",
    "TickResult",
    "World",
    "ct_dataset_name",
    "labeled_rows",
    "run_training",
]
